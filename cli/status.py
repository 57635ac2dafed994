"""Reading a workspace: `status` (one line per lane, or JSON) and `logs LANE`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from typing import Callable

from autoresearch_tui.cli.common import (
    config_from_args, config_parent, error, print_event_json, print_event_line, request_sync,
)
from autoresearch_tui.engine.core.events import tidy_numbers
from autoresearch_tui.engine.core.lane_state import NEEDS_ATTENTION
from autoresearch_tui.engine.core.render import clean, cluster_text, figure, one_line
from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.workspace import Workspace


def register_cli(subparsers) -> None:
    status = subparsers.add_parser("status", parents=[config_parent()],
                                   help="one line per lane: state, runs, best, change, cost, last activity")
    status.add_argument("--json", action="store_true", help="the whole snapshot as JSON")
    status.set_defaults(func=cmd_status)
    logs = subparsers.add_parser("logs", parents=[config_parent()], help="read a lane's events")
    logs.add_argument("lane")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    logs.add_argument("--since", metavar="TIME",
                      help="only events after TIME: 10m, 2h, 1d, a unix time or an ISO date")
    logs.add_argument("--type", dest="types", metavar="TYPES",
                      help="comma-separated event types, e.g. stop_blocked,retrospective; "
                           "per-step metrics are hidden unless you name `step` (or `metric`)")
    logs.add_argument("--limit", type=int, default=200, help="how many past events (default 200)")
    logs.add_argument("--json", action="store_true", help="raw JSON lines")
    logs.set_defaults(func=cmd_logs)


def cmd_status(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.client import EngineClientError
    from autoresearch_tui.engine.offline import offline_snapshot

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    snapshot = None
    engine = "not running"
    pid = running_pid(workspace)  # the lock says whether an engine lives, not the socket
    if pid:
        try:
            snapshot = request_sync(workspace, "snapshot")["snapshot"]
            snapshot["engine"] = "running"
        except EngineClientError as exc:
            engine = f"running (pid {pid}) but not answering"
            error(None, f"the engine (pid {pid}) is running but does not answer on its socket ({exc}); "
                        "a vanished socket is recreated within seconds: try again, or `stop` it. "
                        "Showing what is on disk")
    if snapshot is None:
        snapshot = offline_snapshot(config).to_dict()
        snapshot["engine"] = engine
    if args.json:
        print(json.dumps(tidy_numbers(snapshot), indent=2, default=str))
    else:
        for line in status_lines(snapshot):
            print(line)
    return 0


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    seconds = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def status_lines(snapshot: dict) -> list[str]:
    metric = snapshot.get("metric", "metric")
    lines = [f"{snapshot.get('experiment')} — {snapshot.get('workspace')} — engine "
             f"{snapshot.get('engine', '?')}" + (" — SCRIPTED DEMO MODEL" if snapshot.get("scripted") else "")]
    lines.append(f"{'lane':<10} {'agent':<7} {'state':<16} {'runs':>5} {'best ' + metric:>18} {'change':>8} "
                 f"{'cost':>9}  last activity")
    config = snapshot.get("config") or {}
    if config.get("error"):
        lines.insert(1, f"config: autoresearch.toml changed but does not load: {config['error']}")
    elif config.get("needs_restart"):
        lines.insert(1, f"config: autoresearch.toml changed {', '.join(config['needs_restart'])}: "
                        "restart the engine to apply (`autoresearch-tui stop`, then start)")
    for name, lane in snapshot.get("lanes", {}).items():
        frontier = lane.get("frontier", {}) or {}
        change = frontier.get("change_pct")
        state = str(lane.get("state", "?"))
        lease = lane.get("lease") or {}
        if lease.get("state") == "waiting":  # running, but its benchmark queues for a slot
            state = lease.get("text") or "waiting for device"
        retry = (lane.get("api_retry") or {}).get("message")
        lines.append(
            f"{name:<10} {lane.get('agent', 'claude'):<7} {state:<16} {frontier.get('runs', 0):>5} "
            f"{figure(frontier.get('best')):>18} "
            f"{'-' if change is None else f'{change:+.1f}%':>8} "
            f"${lane.get('counters', {}).get('cost_usd', 0.0):>8.4f}  {_ago(lane.get('last_activity'))}"
            + (f"  {retry}" if retry else "")
        )
        if lane.get("state") == NEEDS_ATTENTION and lane.get("needs_attention_reason"):
            lines.append(f"{'':<10} why: {one_line(lane['needs_attention_reason'], 300)}")
    lines.extend(device_lines(snapshot.get("devices")))
    if isinstance(snapshot.get("cluster"), dict):
        lines.extend(cluster_lines(snapshot["cluster"]))
    return [clean(line) for line in lines]  # a folder or a reason may hold escape sequences


def cluster_lines(cluster: dict) -> list[str]:
    """The Ray cluster: connection, free and total resources, and its alive nodes."""
    lines = [f"runner: ray at {cluster.get('address', '?')}: {cluster_text(cluster)}"]
    for node in cluster.get("nodes") or []:
        if isinstance(node, dict):
            resources = ", ".join(f"{k}={v:g}" for k, v in (node.get("resources") or {}).items()
                                  if isinstance(v, (int, float)))
            lines.append(f"  node {node.get('name') or str(node.get('node_id', '?'))[:12]} ({node.get('ip')}): {resources}")
    return lines


def device_lines(devices: dict | None) -> list[str]:
    """Per slot leased or free (lane, since when), and the host's busy share since start."""
    if not isinstance(devices, dict) or not devices.get("slots"):
        return []
    busy = devices.get("busy_share")
    share = f"{busy * 100:.0f}%" if isinstance(busy, (int, float)) else "-"
    noun = "core" if devices.get("platform") == "cpu" else "chip"
    lines = [f"devices: {devices.get('platform', '?')}, {devices.get('chips', '?')} {noun}s, "
             f"{len(devices['slots'])} slot(s); busy {share} of the time since the engine started"]
    for slot in devices["slots"]:
        chips = ",".join(str(c) for c in slot.get("chips", []))
        if slot.get("state") == "leased":
            what = f"leased by {slot.get('lane')} ({slot.get('purpose')}), taken {_ago(slot.get('since'))}"
        else:
            what = "free"
        lines.append(f"  slot {slot.get('index')} ({noun}s {chips}): {what}")
    queue = devices.get("queue") or []
    if queue:
        lines.append("  queue: " + ", ".join(f"{w.get('lane')} (waiting, queued {_ago(w.get('since'))})" for w in queue))
    return lines


def parse_since(text: str | None) -> float | None:
    """'10m', '2h', '1d', '30s', a unix time, or an ISO date/time (local)."""
    if not text:
        return None
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


def event_filter(text: str | None) -> Callable[[dict], bool]:
    """What `logs --type` keeps: the named types; per-step metrics only when asked for
    (`step`, or `metric`). Raises ValueError naming the known types for an unknown one."""
    from autoresearch_tui.engine.core.events import EVENT_TYPES, STEP_TYPE, is_step

    wanted = {t.strip() for t in (text or "").split(",") if t.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES) - {STEP_TYPE})
    if unknown:
        raise ValueError(f"unknown event type{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} (known: {', '.join(EVENT_TYPES)}, "
                         f"and {STEP_TYPE} for per-step metrics)")
    if not wanted:
        return lambda event: not is_step(event)
    steps = STEP_TYPE in wanted or "metric" in wanted
    types = wanted - {STEP_TYPE}
    return lambda event: (event.get("type") in types and (steps or not is_step(event))) or (
        steps and is_step(event))


def cmd_logs(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.core.events import iter_events, tail_events

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    if args.lane not in {lane.name for lane in config.lanes} and not workspace.lane_dir(args.lane).is_dir():
        error("logs", f"no lane named {args.lane!r}")
        return 2
    try:
        keep = event_filter(args.types)
    except ValueError as exc:
        error("logs", f"--type: {exc}")
        return 2
    path = workspace.events_path(args.lane)
    since = parse_since(args.since)
    show = print_event_json if args.json else print_event_line
    last_ts = time.time()
    # --since streams (a week of events can be gigabytes); the last --limit events are few.
    events = (iter_events(path, since=since) if since is not None
              else tail_events(path, limit=args.limit, where=keep))
    for event in events:
        if keep(event):
            show(event)
            last_ts = event.get("ts", last_ts)
    if not args.follow:
        return 0
    try:
        while True:
            time.sleep(0.5)
            for event in iter_events(path, since=last_ts):
                last_ts = event.get("ts", last_ts)
                if keep(event):
                    show(event)
    except KeyboardInterrupt:
        return 0
