"""`demo`: the whole product offline, on the bundled example, with a scripted model."""

from __future__ import annotations

import argparse
import asyncio
import sys
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
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.demo.workspace import create_demo_workspace

    config_path = create_demo_workspace(Path(args.dir) if args.dir else None, codex=args.codex)
    config = load_config(config_path)
    codex_lanes = [lane.name for lane in config.lanes if lane.agent == "codex"]
    print(f"Scripted demo workspace: {config.workspace}\n"
          f"(the model is scripted; edits and benchmark runs are real)"
          + (f"\nlane {', '.join(codex_lanes)}: the real Codex CLI, against the scripted Responses server"
             if codex_lanes else ""), file=sys.stderr)
    if args.headless:
        from autoresearch_tui.engine.daemon.server import run_foreground

        return asyncio.run(run_foreground(config, duration=args.duration, on_event=print_event_line))
    args.config = str(config_path)
    return attach(args)
