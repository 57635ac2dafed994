"""`demo`: the whole product offline, on the bundled example, with a scripted model."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

from autoresearch_tui.cli.common import attach, print_event_line
from autoresearch_tui.engine.config import load_config


def register_cli(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the product offline on the bundled example with a scripted model (no API key)",
        description="Create a throwaway workspace with the bundled JAX example and run two lanes "
        "against the bundled scripted model: real edits, real benchmark runs, no API key.",
    )
    demo.add_argument("dir", nargs="?", help="workspace folder (default: a new temporary folder)")
    demo.add_argument("--codex", action="store_true",
                      help="lane b runs OpenAI's Codex CLI (scripted too) beside lane a's Claude Code; "
                           "needs the pinned Codex CLI (`npm install` in the checkout)")
    demo.add_argument("--headless", action="store_true",
                      help="no UI: run in the foreground and print events")
    demo.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                      help="with --headless: stop after this many seconds")
    demo.add_argument("--keep", action="store_true",
                      help="keep the temporary workspace afterwards (a DIR you name is always kept)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.demo.workspace import create_demo_workspace

    config_path = create_demo_workspace(Path(args.dir) if args.dir else None, codex=args.codex)
    config = load_config(config_path)
    throwaway = args.dir is None and not args.keep
    codex_lanes = [lane.name for lane in config.lanes if lane.agent == "codex"]
    print(f"Scripted demo workspace: {config.workspace}\n"
          "(the model is scripted; edits and benchmark runs are real; "
          + ("removed when the demo ends, unless --keep)" if throwaway else "kept afterwards)")
          + (f"\nlane {', '.join(codex_lanes)}: the real Codex CLI, against the scripted Responses server"
             if codex_lanes else ""), file=sys.stderr)
    try:
        if args.headless:
            from autoresearch_tui.engine.daemon.server import run_foreground

            return asyncio.run(run_foreground(config, duration=args.duration, on_event=print_event_line))
        args.config = str(config_path)
        return attach(args)
    finally:
        _leave_workspace(config, throwaway)


def _leave_workspace(config, throwaway: bool) -> None:
    """Remove a throwaway demo workspace once no engine runs in it; else say where it is."""
    from autoresearch_tui.engine.daemon.control import running_pid
    from autoresearch_tui.engine.workspace import Workspace

    workspace = Workspace(config)
    deadline = time.monotonic() + 30  # an engine told to stop is finishing its lanes
    while running_pid(workspace) and time.monotonic() < deadline:
        time.sleep(0.2)
    where = config.workspace
    if running_pid(workspace):
        print(f"The demo engine still runs in {where}. Stop it with: autoresearch-tui stop "
              f"--config {config.path}" + (f", then remove {where}" if throwaway else ""), file=sys.stderr)
    elif throwaway:
        shutil.rmtree(where, ignore_errors=True)
        print(f"Removed the demo workspace {where} (--keep keeps it).", file=sys.stderr)
    else:
        print(f"The demo workspace is kept at {where}.", file=sys.stderr)
