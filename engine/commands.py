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

    daemon = subparsers.add_parser("daemon", parents=[config_parent()],
                                   help="run the engine daemon in the foreground (used by start)")
    daemon.set_defaults(func=cmd_daemon)
    start = subparsers.add_parser("start", parents=[config_parent()],
                                  help="start the engine in the background (no UI)")
    start.set_defaults(func=cmd_start)
    stop = subparsers.add_parser("stop", parents=[config_parent()],
                                 help="stop the engine gracefully (lanes stopped, logs flushed)")
    stop.set_defaults(func=cmd_stop)
    status = subparsers.add_parser("status", parents=[config_parent()],
                                   help="one line per lane: state, runs, best, change, cost, last activity")
    status.add_argument("--json", action="store_true", help="the whole snapshot as JSON")
    status.set_defaults(func=cmd_status)
    finish = subparsers.add_parser(
        "stop-experiment", parents=[config_parent()],
        help="stop every lane, write the final REPORT.md and progress.png (forks are kept)",
        description="Stop the engine gracefully, then write the experiment's final report. "
        "Forks are kept unless --remove-forks, and even then only when every recorded commit "
        "is reachable from the main repo (use --archive-runs to make them so).")
    finish.add_argument("--remove-forks", action="store_true",
                        help="delete the lanes' forks when no recorded commit would be lost")
    finish.add_argument("--archive-runs", action="store_true",
                        help="first copy every run ref into the main repo (refs/autoresearch/...)")
    finish.set_defaults(func=cmd_stop_experiment)
    logs = subparsers.add_parser("logs", parents=[config_parent()], help="read a lane's events")
    logs.add_argument("lane")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    logs.add_argument("--since", metavar="TIME",
                      help="only events after TIME: 10m, 2h, 1d, a unix time or an ISO date")
    logs.add_argument("--type", dest="types", metavar="TYPES",
                      help="comma-separated event types, e.g. stop_blocked,retrospective")
    logs.add_argument("--limit", type=int, default=200, help="how many past events (default 200)")
    logs.add_argument("--json", action="store_true", help="raw JSON lines")
    logs.set_defaults(func=cmd_logs)


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
        value = event.get("metric_value")
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else "-"
        detail = f"{event.get('run_id')} {event.get('status')} {shown} {_one_line(event.get('description', ''))}"
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


def cmd_daemon(args: argparse.Namespace) -> int:
    from engine.daemon import DaemonError, configure_logging, serve_forever
    from engine.workspace import Workspace

    config = config_from_args(args)
    configure_logging(Workspace(config))
    try:
        return asyncio.run(serve_forever(config))
    except DaemonError as exc:
        print(f"autoresearch-tui: {exc}", file=sys.stderr)
        return 1


def cmd_start(args: argparse.Namespace) -> int:
    from engine.daemon import DaemonError, running_pid, spawn_daemon
    from engine.workspace import Workspace

    config = config_from_args(args)
    pid = running_pid(Workspace(config))
    if pid:
        print(f"engine already running (pid {pid}) for {config.workspace}")
        return 0
    try:
        pid = spawn_daemon(config)
    except DaemonError as exc:
        print(f"autoresearch-tui: {exc}", file=sys.stderr)
        return 1
    print(f"engine started (pid {pid}) for {config.workspace}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from engine.daemon import running_pid
    from engine.workspace import Workspace

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    pid = running_pid(workspace)
    if not pid:
        print("no engine is running for this workspace")
        return 0
    reply = asyncio.run(_request(workspace, "stop_engine"))
    print(reply.get("message", "stopping"))
    deadline = time.monotonic() + 60
    while running_pid(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(workspace):
        print("the engine did not stop within 60s", file=sys.stderr)
        return 1
    print("engine stopped")
    return 0


async def _request(workspace, op: str, **args):
    from engine.client import EngineClient
    from engine.protocol import socket_path

    client = await EngineClient.connect(socket_path(workspace.root))
    try:
        return await client.request(op, **args)
    finally:
        await client.close()


def cmd_status(args: argparse.Namespace) -> int:
    from engine.daemon import running_pid
    from engine.status import offline_snapshot, status_lines
    from engine.workspace import Workspace

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    snapshot = None
    if running_pid(workspace):
        from engine.client import EngineClientError

        try:
            snapshot = asyncio.run(_request(workspace, "snapshot"))["snapshot"]
            snapshot["engine"] = "running"
        except EngineClientError as exc:
            print(f"autoresearch-tui: engine not answering ({exc}); showing what is on disk",
                  file=sys.stderr)
    if snapshot is None:
        snapshot = offline_snapshot(config)
        snapshot["engine"] = "not running"
    if args.json:
        print(json.dumps(snapshot, indent=2, default=str))
    else:
        for line in status_lines(snapshot):
            print(line)
    return 0


def parse_since(text: str | None) -> float | None:
    """'10m', '2h', '1d', '30s', a unix time, or an ISO date/time (local)."""
    if not text:
        return None
    import datetime as dt
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - seconds
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise SystemExit(f"autoresearch-tui: --since {text!r}: use 10m, 2h, 1d, a unix time or an ISO date")


def cmd_logs(args: argparse.Namespace) -> int:
    from engine.events import tail_events
    from engine.workspace import Workspace

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    if args.lane not in {lane.name for lane in config.lanes} and not workspace.lane_dir(args.lane).is_dir():
        print(f"autoresearch-tui: no lane named {args.lane!r}", file=sys.stderr)
        return 2
    path = workspace.events_path(args.lane)
    types = {t.strip() for t in args.types.split(",") if t.strip()} if args.types else None
    since = parse_since(args.since)
    show = print_event_json if args.json else print_event_line
    events = tail_events(path, limit=args.limit if since is None else 10**9, types=types, since=since)
    for event in events:
        show(event)
    if not args.follow:
        return 0
    last_ts = events[-1]["ts"] if events else time.time()
    try:
        while True:
            time.sleep(0.5)
            fresh = tail_events(path, limit=10**6, types=types, since=last_ts)
            for event in fresh:
                show(event)
            if fresh:
                last_ts = fresh[-1]["ts"]
    except KeyboardInterrupt:
        return 0


def cmd_stop_experiment(args: argparse.Namespace) -> int:
    from engine.daemon import running_pid
    from engine.forks import ForkError, archive_runs, remove_fork
    from engine.report import write_report
    from engine.workspace import Workspace

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    if running_pid(workspace):
        status = cmd_stop(args)
        if status:
            return status
    report = write_report(workspace)
    print(f"report: {report} (plot: {report.with_name('progress.png')})")
    failed = 0
    for lane in config.lanes:
        if not workspace.fork_dir(lane.name).exists():
            continue
        if args.archive_runs:
            count = archive_runs(workspace, lane.name)
            print(f"lane {lane.name}: {count} run refs archived in the main repo")
        if args.remove_forks:
            try:
                remove_fork(workspace, lane.name)
                print(f"lane {lane.name}: fork removed")
            except ForkError as exc:
                failed += 1
                print(f"lane {lane.name}: fork kept: {exc}", file=sys.stderr)
        else:
            print(f"lane {lane.name}: fork kept at {workspace.fork_dir(lane.name)}")
    return 1 if failed else 0
