"""The `autoresearch-tui` command line: the composition root.

main.py builds the parser from one module per command group; each module imports only
cli/common.py and the library code it drives. With no COMMAND, `common.attach` starts the
engine if needed and runs the TUI. Imports run one way: cli -> tui -> engine -> engine/core.
"""
