"""No COMMAND: attach the UI to the workspace's engine, starting the engine if none runs."""

from __future__ import annotations

import argparse
import gc

from autoresearch_tui.cli.common import config_from_args, error
from autoresearch_tui.engine.daemon.control import DaemonError, running_pid, spawn_daemon
from autoresearch_tui.engine.protocol import socket_path
from autoresearch_tui.engine.workspace import Workspace


def attach(args: argparse.Namespace) -> int:
    """Start the engine if none runs, attach the UI; on detach the engine keeps running."""
    import sys

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
