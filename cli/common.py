"""What every command shares: `--config`, loading it, talking to a running engine, printing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from autoresearch_tui.engine.config import Config, find_config, load_config
from autoresearch_tui.engine.core.events import dumps
from autoresearch_tui.engine.core.render import format_event

PROG = "autoresearch-tui"


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


def error(command: str | None, message: str) -> None:
    """`autoresearch-tui <command>: message` on stderr."""
    prefix = f"{PROG} {command}" if command else PROG
    print(f"{prefix}: {message}", file=sys.stderr)


async def request(workspace, op: str, *, raw: bool = False, **args: Any) -> dict[str, Any]:
    """One request to the workspace's running engine; raises EngineClientError (a refusal
    too, unless `raw`: then the reply comes back whatever it says)."""
    from autoresearch_tui.engine.client import EngineClient
    from autoresearch_tui.engine.protocol import socket_path

    client = await EngineClient.connect(socket_path(workspace.root))
    try:
        return await (client.request_raw if raw else client.request)(op, **args)
    finally:
        await client.close()


def request_sync(workspace, op: str, *, raw: bool = False, **args: Any) -> dict[str, Any]:
    import asyncio  # here, not at the top: `status` with no engine never needs it

    return asyncio.run(request(workspace, op, raw=raw, **args))


def print_event_json(event: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(dumps(event) + "\n")
    stream.flush()


def print_event_line(event: dict[str, Any]) -> None:
    print(format_event(event), flush=True)


def attach(args: argparse.Namespace) -> int:
    """Start the engine if none runs, attach the UI; on detach the engine keeps running."""
    import gc
    import sys

    from autoresearch_tui.engine.daemon.control import DaemonError, running_pid, spawn_daemon
    from autoresearch_tui.engine.protocol import socket_path
    from autoresearch_tui.engine.workspace import Workspace

    config = config_from_args(args)
    workspace = Workspace(config)
    pid = running_pid(workspace)
    if not pid:
        print(f"starting the engine for {config.workspace} …", file=sys.stderr)
        try:
            pid = spawn_daemon(config)
        except (DaemonError, OSError) as exc:
            error(None, f"cannot start the engine: {exc}")
            return 1

    from autoresearch_tui.tui.app import AutoresearchApp  # textual only when the UI runs
    from autoresearch_tui.tui.bridge import EngineBridge
    from autoresearch_tui.tui.store import LaneStore

    store = LaneStore()
    bridge = EngineBridge(socket_path(workspace.root), store)
    app = AutoresearchApp(config.tui, bridge=bridge, store=store)
    gc.set_threshold(50_000, 20, 20)  # fewer, shorter collections while streaming (docs/architecture.md)
    result = app.run()
    if result == "stop":
        print("engine stopping: lanes stop and logs are flushed")
    else:
        print(f"detached: the engine keeps running (pid {pid}). "
              f"Re-attach: autoresearch-tui --config {config.path}  "
              f"Stop it: autoresearch-tui stop --config {config.path}")
    return 0
