"""The workspace's state read from disk (no engine needed), and its one-line-per-lane view."""

from __future__ import annotations

import time
from typing import Any

from engine import ledger
from engine.config import Config
from engine.lane import LaneRecord
from engine.workspace import Workspace


def offline_snapshot(config: Config) -> dict[str, Any]:
    from engine.metrics import MetricsWatcher

    workspace = Workspace(config)
    lanes: dict[str, Any] = {}
    names = [lane.name for lane in config.lanes]
    for name in names:
        record = LaneRecord.load(workspace.lane_json(name), name)
        data = record.to_dict()
        if not workspace.lane_json(name).exists():
            data["state"] = "not started"
        frontier, _warnings = ledger.lane_frontier(workspace, name)
        data["frontier"] = frontier.to_dict(config.loop.plateau_runs)
        watcher = MetricsWatcher(name, workspace.runs_dir(name), config.experiment.direction,
                                 lambda event: None, metric=config.experiment.metric,
                                 summarize_profiles=False)
        watcher.scan_once(emit=False)
        data["metrics"] = watcher.state.to_dict()
        lanes[name] = data
    return {
        "workspace": str(workspace.root), "experiment": config.experiment.name,
        "metric": config.experiment.metric, "direction": config.experiment.direction,
        "scripted": config.agent.scripted_demo,
        "total_cost_usd": round(sum(l["counters"]["cost_usd"] for l in lanes.values()), 6),
        "lanes": lanes,
    }


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    seconds = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def status_lines(snapshot: dict[str, Any]) -> list[str]:
    metric = snapshot.get("metric", "metric")
    lines = [f"{snapshot.get('experiment')} — {snapshot.get('workspace')} — engine "
             f"{snapshot.get('engine', '?')}" + (" — SCRIPTED DEMO MODEL" if snapshot.get("scripted") else "")]
    lines.append(f"{'lane':<10} {'state':<16} {'runs':>5} {'best ' + metric:>18} {'change':>8} "
                 f"{'cost':>9}  last activity")
    for name, lane in snapshot.get("lanes", {}).items():
        frontier = lane.get("frontier", {}) or {}
        change = frontier.get("change_pct")
        lines.append(
            f"{name:<10} {lane.get('state', '?'):<16} {frontier.get('runs', 0):>5} "
            f"{_number(frontier.get('best')):>18} "
            f"{'-' if change is None else f'{change:+.1f}%':>8} "
            f"${lane.get('counters', {}).get('cost_usd', 0.0):>8.4f}  {_ago(lane.get('last_activity'))}"
        )
    return lines
