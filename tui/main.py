"""`autoresearch-tui` with no subcommand: attach the UI to the workspace's engine."""

from __future__ import annotations

import argparse
import gc
import sys

from engine.cli import config_from_args
from engine.daemon import DaemonError, running_pid, spawn_daemon
from engine.protocol import socket_path
from engine.workspace import Workspace


def attach(args: argparse.Namespace) -> int:
    """Start the engine if none runs, attach the UI; on detach the engine keeps running."""
    config = config_from_args(args)
    workspace = Workspace(config)
    pid = running_pid(workspace)
    if not pid:
        print(f"starting the engine for {config.workspace} …", file=sys.stderr)
        try:
            pid = spawn_daemon(config)
        except DaemonError as exc:
            print(f"autoresearch-tui: cannot start the engine: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"autoresearch-tui: cannot start the engine: {exc}", file=sys.stderr)
            return 1

    from tui.app import AutoresearchApp
    from tui.client import EngineBridge
    from tui.feed import LaneStore

    store = LaneStore()
    bridge = EngineBridge(socket_path(workspace.root), store)
    app = AutoresearchApp(config.tui, bridge=bridge, store=store)
    gc.set_threshold(50_000, 20, 20)  # fewer, shorter collections while streaming (DESIGN.md)
    result = app.run()
    if result == "stop":
        print("engine stopping: lanes stop and logs are flushed")
    else:
        print(f"detached: the engine keeps running (pid {pid}). "
              f"Re-attach: autoresearch-tui --config {config.path}  "
              f"Stop it: autoresearch-tui stop --config {config.path}")
    return 0
