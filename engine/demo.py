"""`autoresearch-tui demo`: the whole product offline, against the bundled scripted model.

A throwaway workspace with the bundled JAX example and two lanes; the engine starts its
own scripted model server (no API key, nothing leaves the machine). Edits, benchmark
runs, ledger rows, stop interceptions and merges are all real.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path

from engine.config import load_config

DEMO_LOOP = """\
[loop]
reinject_every_turns = 8
reinject_every_minutes = 10
retrospective_every_stops = 3
plateau_runs = 6
max_consecutive_blocks = 5
"""


def register_cli(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the product offline on the bundled example with a scripted model (no API key)",
        description="Create a throwaway workspace with the bundled JAX example and run two lanes "
        "against the bundled scripted model: real edits, real benchmark runs, no API key.",
    )
    demo.add_argument("dir", nargs="?", help="workspace folder (default: a new temporary folder)")
    demo.add_argument("--headless", action="store_true",
                      help="no UI: run in the foreground and print events")
    demo.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                      help="with --headless: stop after this many seconds")
    demo.set_defaults(func=cmd_demo)


def create_demo_workspace(folder: Path | None = None) -> Path:
    """A workspace whose engine uses the scripted model; returns its config path."""
    from engine.init_workspace import create_workspace

    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="autoresearch-demo-"))
    config_path = folder / "autoresearch.toml"
    if config_path.exists():
        text = config_path.read_text(encoding="utf-8")
        if "scripted_demo = true" not in text:
            raise SystemExit(f"autoresearch-tui: {config_path} exists and is not a demo workspace")
        return config_path
    config_path = create_workspace(folder, lanes=("a", "b"))
    text = config_path.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^\[agent\]\n", "[agent]\nscripted_demo = true               "
                  "# offline demo: the bundled scripted model, no API key\n", text, count=1)
    if "scripted_demo" not in text:
        text += "\n[agent]\nscripted_demo = true\n"
    text = re.sub(r"(?ms)^\[loop\]\n.*?(?=^\[)", DEMO_LOOP + "\n", text, count=1)
    config_path.write_text(text, encoding="utf-8")
    load_config(config_path)  # fail here, loudly, if the demo config is wrong
    return config_path


def cmd_demo(args: argparse.Namespace) -> int:
    config_path = create_demo_workspace(Path(args.dir) if args.dir else None)
    config = load_config(config_path)
    print(f"Scripted demo workspace: {config.workspace}\n"
          f"(the model is scripted; edits and benchmark runs are real)", file=sys.stderr)
    if args.headless:
        from engine.commands import print_event_line, run_headless

        return asyncio.run(run_headless(config, duration=args.duration, on_event=print_event_line))
    from tui.main import attach

    args.config = str(config_path)
    return attach(args)
