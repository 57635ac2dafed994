"""The `autoresearch-tui` command line.

Subcommands live next to the code they drive: each module in COMMAND_MODULES exposes
`register_cli(subparsers)` which adds its parser and sets `func=<callable(args) -> int>`.
No subcommand attaches the TUI (imported lazily so headless commands never load textual).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pathlib import Path

from engine.config import Config, ConfigError, find_config, load_config

COMMAND_MODULES = (
    "engine.commands",
    "engine.init_workspace",
    "engine.demo",
    "engine.install_hooks",
    "engine.profile_summary",
    "engine.merge",
    "engine.report",
)


def config_parent() -> argparse.ArgumentParser:
    """Parent parser giving a subcommand `--config FILE` (also accepted before it)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", default=argparse.SUPPRESS,
        help="autoresearch.toml (default: nearest from the current folder upward)",
    )
    return parent


def config_from_args(args: argparse.Namespace, *, check_repo: bool = True) -> Config:
    """Load the config named by --config, or the nearest one from cwd upward."""
    path = Path(args.config) if getattr(args, "config", None) else find_config()
    return load_config(path, check_repo=check_repo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoresearch-tui",
        description="Run guarded Claude autoresearch loops side by side. With no COMMAND, "
        "attach the terminal UI to this workspace's engine, starting the engine if none runs.",
        epilog="Try it offline: autoresearch-tui demo",
    )
    parser.add_argument("--config", help="autoresearch.toml (default: nearest from cwd upward)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not built yet
            raise
        module.register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    try:
        if func is None:
            from tui.main import attach  # lazy: textual only when the UI runs

            return attach(args)
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"autoresearch-tui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
