"""The workspace's state read from disk, for `status` when no engine runs."""

from __future__ import annotations

from typing import Any

from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.core.lane_state import NOT_STARTED, LaneRecord, LaneRecordError
from autoresearch_tui.engine.runs.record import lane_frontier
from autoresearch_tui.engine.workspace import Workspace


def offline_snapshot(config: Config) -> dict[str, Any]:
    from autoresearch_tui.engine.runs.metrics import MetricsWatcher

    workspace = Workspace(config)
    lanes: dict[str, Any] = {}
    for lane in config.lanes:
        name = lane.name
        try:
            data = LaneRecord.load(workspace.lane_json(name), name).to_dict()
        except LaneRecordError as exc:
            data = LaneRecord(name=name).to_dict()
            data["warning"] = f"{workspace.lane_json(name)}: {exc}"
        if not workspace.lane_json(name).exists():
            data["state"] = NOT_STARTED
        frontier, _warnings = lane_frontier(workspace, name)
        data["frontier"] = frontier.to_dict(config.loop.plateau_runs)
        watcher = MetricsWatcher(name, workspace.runs_dir(name), config.experiment.direction,
                                 lambda event: None, metric=config.experiment.metric,
                                 summarize_profiles=False,
                                 max_metrics_bytes=int(config.experiment.max_metrics_mb * (1 << 20)))
        watcher.scan_once(emit=False)  # cached per-run aggregates: cheap whatever the history
        data["metrics"] = watcher.snapshot()
        lanes[name] = data
    return {
        "workspace": str(workspace.root), "experiment": config.experiment.name,
        "metric": config.experiment.metric, "direction": config.experiment.direction,
        "scripted": config.agent.scripted_demo,
        "total_cost_usd": round(sum(l["counters"]["cost_usd"] for l in lanes.values()), 6),
        "lanes": lanes,
    }
