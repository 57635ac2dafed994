"""Engine lifecycle commands: `run` (foreground, no UI), `daemon`, `start`, `stop`."""

from __future__ import annotations

import argparse
import asyncio

from autoresearch_tui.cli.common import (
    config_from_args, config_parent, error, print_event_json, print_event_line,
)
from autoresearch_tui.engine.daemon.control import DaemonError, running_pid, spawn_daemon, stop_engine
from autoresearch_tui.engine.workspace import Workspace

STOP_WAIT_S = 60


def register_cli(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        parents=[config_parent()],
        help="run all lanes in the foreground with no UI",
        description="Run every lane of the workspace in the foreground, without the UI. "
        "Stops gracefully on Ctrl+C / SIGTERM or after --duration.",
    )
    run.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                     help="stop after this many seconds (default: run until interrupted)")
    run.add_argument("--events-jsonl", action="store_true",
                     help="print every event as one JSON object per line on stdout")
    run.set_defaults(func=cmd_run)

    daemon = subparsers.add_parser("daemon", parents=[config_parent()],
                                   help="run the engine daemon in the foreground (used by start)")
    daemon.set_defaults(func=cmd_daemon)
    start = subparsers.add_parser("start", parents=[config_parent()],
                                  help="start the engine in the background (no UI)")
    start.set_defaults(func=cmd_start)
    stop = subparsers.add_parser("stop", parents=[config_parent()],
                                 help="stop the engine gracefully (lanes stopped, logs flushed)")
    stop.set_defaults(func=cmd_stop)


def cmd_run(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.daemon.server import run_foreground

    config = config_from_args(args)
    if args.duration is not None and args.duration <= 0:
        error(None, "--duration must be positive")
        return 2
    printer = print_event_json if args.events_jsonl else print_event_line
    try:
        return asyncio.run(run_foreground(config, duration=args.duration, on_event=printer))
    except DaemonError as exc:
        error(None, str(exc))
        return 1


def cmd_daemon(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.daemon.server import configure_logging, serve_forever

    config = config_from_args(args)
    configure_logging(Workspace(config))
    try:
        return asyncio.run(serve_forever(config))
    except DaemonError as exc:
        error(None, str(exc))
        return 1


def cmd_start(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    pid = running_pid(Workspace(config))
    if pid:
        print(f"engine already running (pid {pid}) for {config.workspace}")
        return 0
    try:
        pid = spawn_daemon(config)
    except DaemonError as exc:
        error(None, str(exc))
        return 1
    print(f"engine started (pid {pid}) for {config.workspace}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    config = config_from_args(args, check_repo=False)
    stopped, message = stop_engine(Workspace(config), timeout=STOP_WAIT_S)
    if stopped:
        print(message)
        return 0
    error(None, message)
    return 1
