"""`autoresearch-tui`: the parser, built from one module per command group.

Every module in COMMAND_GROUPS exposes `register_cli(subparsers)`, which adds its parsers
and sets `func=<callable(args) -> int>`. A module that fails to import is a broken
install, and says so. No COMMAND attaches the TUI (imported lazily, so headless commands
never load textual or the agent SDK).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from autoresearch_tui.cli.common import PROG, attach, error
from autoresearch_tui.engine.config import ConfigError
from autoresearch_tui.engine.daemon.control import DaemonError
from autoresearch_tui.engine.protocol import SocketLocationError

COMMAND_GROUPS = (
    "autoresearch_tui.cli.lifecycle",
    "autoresearch_tui.cli.status",
    "autoresearch_tui.cli.experiment",
    "autoresearch_tui.cli.bench",
    "autoresearch_tui.cli.demo",
    "autoresearch_tui.cli.claude_hooks",
    "autoresearch_tui.cli.profile",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run guarded Claude autoresearch loops side by side. With no COMMAND, "
        "attach the terminal UI to this workspace's engine, starting the engine if none runs.",
        epilog="Try it offline: autoresearch-tui demo",
    )
    parser.add_argument("--config", help="autoresearch.toml (default: nearest from cwd upward)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_GROUPS:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    from autoresearch_tui.engine.core.secrets import register_secrets_from_env

    register_secrets_from_env(os.environ)  # whatever this command writes or prints stays key-free
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    try:
        if func is None:
            return attach(args)
        return int(func(args) or 0)
    except ConfigError as exc:
        error(None, str(exc))
        return 2
    except (DaemonError, SocketLocationError) as exc:  # a one-line reason, never a traceback
        error(None, str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`logs a | head -1`): that is how a pipe ends, not an error.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
