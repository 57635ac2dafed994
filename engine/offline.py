"""The workspace's state read from disk, for `status` when no engine runs."""

from __future__ import annotations

from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.core.lane_state import NOT_STARTED, LaneRecord, LaneRecordError
from autoresearch_tui.engine.core.snapshot import FrontierView, LaneSnapshot, LiveMetrics, Snapshot
from autoresearch_tui.engine.runs.metrics import MetricsWatcher
from autoresearch_tui.engine.runs.record import lane_frontier
from autoresearch_tui.engine.workspace import Workspace


def offline_snapshot(config: Config) -> Snapshot:
    workspace = Workspace(config)
    lanes: dict[str, LaneSnapshot] = {}
    for lane in config.lanes:
        name = lane.name
        warning = None
        try:
            record = LaneRecord.load(workspace.lane_json(name), name)
        except LaneRecordError as exc:
            record = LaneRecord(name=name)  # the engine quarantines it when it starts
            warning = f"{workspace.lane_json(name)}: {exc}"
        snapshot = LaneSnapshot(**record.__dict__, warning=warning)
        if not workspace.lane_json(name).exists():
            snapshot.state = NOT_STARTED
        snapshot.fork, snapshot.focus = str(workspace.fork_dir(name)), lane.focus
        snapshot.agent = lane.agent  # what the lane runs now, even before it has a lane.json
        frontier, _warnings = lane_frontier(workspace, name)
        snapshot.frontier = FrontierView.from_dict(frontier.to_dict(config.loop.plateau_runs))
        watcher = MetricsWatcher(name, workspace.runs_dir(name), lambda event: None,
                                 metric=config.experiment.metric, summarize_profiles=False,
                                 max_metrics_bytes=int(config.experiment.max_metrics_mb * (1 << 20)))
        watcher.scan_once(emit=False)  # cached per-run aggregates: cheap whatever the history
        snapshot.metrics = LiveMetrics.from_dict(watcher.snapshot())
        lanes[name] = snapshot
    return Snapshot(
        workspace=str(workspace.root), experiment=config.experiment.name,
        metric=config.experiment.metric, direction=config.experiment.direction,
        scripted=config.agent.scripted_demo,
        total_cost_usd=round(sum(lane.counters.cost_usd for lane in lanes.values()), 6),
        lanes=lanes, engine="not running",
    )
