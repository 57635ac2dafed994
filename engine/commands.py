"""Engine subcommands: `run` (headless, foreground)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import TextIO

from engine.cli import config_from_args, config_parent
from engine.events import Event


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


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.duration is not None and args.duration <= 0:
        print("autoresearch-tui: --duration must be positive", file=sys.stderr)
        return 2
    printer = print_event_json if args.events_jsonl else print_event_line
    return asyncio.run(run_headless(config, duration=args.duration, on_event=printer))


async def run_headless(config, *, duration=None, on_event=None, env=None) -> int:
    from engine.engine import Engine

    engine = Engine(config, env=env)
    if on_event:
        engine.subscribe(on_event)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_event.set)
    try:
        await engine.run_until_stopped(duration=duration, stop_event=stop_event)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def print_event_json(event: Event, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
    stream.flush()


def format_event(event: Event) -> str:
    """One readable line for a person (used by `run` and `logs`)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("ts", 0)))
    kind = event.get("type", "?")
    lane = event.get("lane", "-")
    detail = ""
    if kind == "assistant_text":
        detail = _one_line(event.get("text", ""))
    elif kind == "tool_use":
        detail = f"{event.get('tool')} {_one_line(json.dumps(event.get('input', {}), ensure_ascii=False))}"
    elif kind == "tool_result":
        detail = ("ERROR " if event.get("is_error") else "") + _one_line(event.get("output", ""))
    elif kind == "lane_state":
        detail = f"{event.get('state')}" + (f" ({event['reason']})" if event.get("reason") else "")
    elif kind in ("stop_blocked", "stop_allowed", "injection", "retrospective", "tool_denied"):
        detail = " ".join(str(x) for x in (event.get("kind") or event.get("phase") or "", event.get("reason", "")) if x)
    elif kind == "run_recorded":
        detail = (f"{event.get('run_id')} {event.get('status')} {event.get('metric_value')} "
                  f"{_one_line(event.get('description', ''))}")
    elif kind == "merge":
        detail = event.get("message", "")
    elif kind in ("error", "warning"):
        detail = event.get("message", "")
    elif kind == "cost":
        detail = f"${event.get('total_cost_usd', 0):.4f}"
    elif kind == "user_message":
        detail = f"{event.get('delivery')}: {_one_line(event.get('text', ''))}"
    else:
        extra = {k: v for k, v in event.items() if k not in ("ts", "lane", "type")}
        detail = _one_line(json.dumps(extra, ensure_ascii=False, default=str))
    return f"{stamp} {lane:<8} {kind:<14} {detail}"


def print_event_line(event: Event) -> None:
    print(format_event(event), flush=True)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
