"""What the engine tells its clients about a workspace: typed snapshots.

The engine builds a `Snapshot` (engine/supervisor.py; engine/offline.py from disk when no
engine runs), sends it as JSON (`snapshot` op, `status --json`), and pushes a `LaneSnapshot`
whenever a lane changes. The TUI reads these objects and never re-derives a figure the
engine already computed: there is one best per lane, the ledger's frontier.

`from_dict` is tolerant, as every reader of the protocol must be: unknown fields are
ignored, missing or mistyped ones take their defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .lane_state import STARTING, LaneRecord, LaneRecordError

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an integer no float can hold
        return None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any, default: str | None = "") -> str | None:
    return value if isinstance(value, str) else default


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


@dataclass
class FrontierView:
    """A lane's ledger frontier as clients see it (core/ledger.Frontier.to_dict)."""

    metric_name: str = "metric"
    direction: str = "minimize"
    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    baseline: float | None = None
    baseline_run: str | None = None
    best: float | None = None
    best_run: str | None = None
    best_commit: str | None = None
    change_pct: float | None = None
    runs_since_best: int = 0
    noise: float | None = None
    noise_pct: float | None = None
    noise_source: str | None = None
    plateau: bool = False
    best_history: list[float] = field(default_factory=list)
    """The running best after each run that counted (oldest first), for the sparkline."""
    best_keep_run: str | None = None
    """The measured keep that is the best (what a merge takes); None while it is the baseline."""
    best_confirmed: bool = False
    """The best held up when re-measured A/B against the incumbent."""
    best_evidence: dict[str, Any] | None = None
    """That confirmation: candidate and incumbent re-measures, medians, gain, noise band."""
    claimed_runs: int = 0
    """Runs whose value only the agent claimed (never the baseline, the best or merged)."""
    unconfirmed: list[str] = field(default_factory=list)
    """Keeps whose confirmation is pending or was cut short."""
    rejected: list[str] = field(default_factory=list)
    """Keeps whose gain did not hold when re-measured."""
    confirmation_runs: int = 0
    error: str | None = None
    """Why the ledger could not be read (then every figure is empty)."""

    @classmethod
    def from_dict(cls, data: Any) -> "FrontierView":
        data = _dict(data) or {}
        counts = _dict(data.get("counts")) or {}
        history = data.get("best_history")
        return cls(
            metric_name=_str(data.get("metric_name"), "metric"),
            direction="maximize" if data.get("direction") == "maximize" else "minimize",
            runs=_int(data.get("runs")),
            counts={str(k): _int(v) for k, v in counts.items()},
            baseline=_number(data.get("baseline")),
            baseline_run=_str(data.get("baseline_run"), None),
            best=_number(data.get("best")),
            best_run=_str(data.get("best_run"), None),
            best_commit=_str(data.get("best_commit"), None),
            change_pct=_number(data.get("change_pct")),
            runs_since_best=_int(data.get("runs_since_best")),
            noise=_number(data.get("noise")),
            noise_pct=_number(data.get("noise_pct")),
            noise_source=_str(data.get("noise_source"), None),
            plateau=data.get("plateau") is True,
            best_history=[v for v in (_number(x) for x in history) if v is not None]
            if isinstance(history, list) else [],
            best_keep_run=_str(data.get("best_keep_run"), None),
            best_confirmed=data.get("best_confirmed") is True,
            best_evidence=_dict(data.get("best_evidence")),
            claimed_runs=_int(data.get("claimed_runs")),
            unconfirmed=_strings(data.get("unconfirmed")),
            rejected=_strings(data.get("rejected")),
            confirmation_runs=_int(data.get("confirmation_runs")),
            error=_str(data.get("error"), None),
        )


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass
class LiveMetrics:
    """What the lane's benchmarks report as they run (the metrics watcher), not a verdict."""

    latest_summary: dict[str, Any] | None = None
    live_step_time_ms: float | None = None
    live_run_id: str | None = None
    latest_profile: dict[str, Any] | None = None
    loading: bool = False
    """True while the engine is still reading the lane's run history (just after it starts)."""

    @classmethod
    def from_dict(cls, data: Any) -> "LiveMetrics":
        data = _dict(data) or {}
        return cls(latest_summary=_dict(data.get("latest_summary")),
                   live_step_time_ms=_number(data.get("live_step_time_ms")),
                   live_run_id=_str(data.get("live_run_id"), None),
                   latest_profile=_dict(data.get("latest_profile")),
                   loading=data.get("loading") is True)


@dataclass
class LaneSnapshot(LaneRecord):
    """A lane as clients see it: its lane.json record plus what the engine knows now."""

    next_injection: dict[str, float] | None = None
    """{"turns_left", "seconds_left"}; None while the lane is not running."""
    fork: str = ""
    focus: str = ""
    model: str = ""
    """The model the lane's agent was told to use ("" = the agent CLI's default)."""
    frontier: FrontierView = field(default_factory=FrontierView)
    metrics: LiveMetrics = field(default_factory=LiveMetrics)
    device: dict[str, Any] | None = None
    """TPU duty cycle and HBM of the lane's chips, where an accelerator reports them."""
    lease: dict[str, Any] | None = None
    """The lane's device lease: {"state": "waiting", "position", "text"} while its run queues
    for a slot, {"state": "leased", "slot", ...} while it holds one, else None."""
    storage: dict[str, Any] | None = None
    """Writes of the lane's own files: {"fault": "disk full at ..." or None, "lost_events",
    "pending_events", "failed_saves"}."""
    warning: str | None = None
    """Why the lane's lane.json could not be used (status with no engine)."""

    @property
    def waiting_for_device(self) -> bool:
        return bool(self.lease) and self.lease.get("state") == "waiting"
    api_retry: dict[str, Any] | None = None
    """While the lane's agent CLI retries the API: attempt, max_retries, delay_s, error, message."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, name: str | None = None) -> "LaneSnapshot":
        data = _dict(data) or {}
        lane_name = _str(data.get("name"), None) or name or "?"
        try:
            record = LaneRecord.from_dict(data, lane_name)
        except LaneRecordError:  # a newer or broken engine: show what can be shown
            record = LaneRecord(name=lane_name, state=_str(data.get("state"), STARTING))
        injection = _dict(data.get("next_injection"))
        return cls(
            **{item.name: getattr(record, item.name) for item in fields(LaneRecord)},
            next_injection={k: v for k, v in injection.items() if _number(v) is not None} if injection else None,
            fork=_str(data.get("fork")),
            focus=_str(data.get("focus")),
            model=_str(data.get("model")),
            frontier=FrontierView.from_dict(data.get("frontier")),
            metrics=LiveMetrics.from_dict(data.get("metrics")),
            device=_dict(data.get("device")),
            lease=_dict(data.get("lease")),
            storage=_dict(data.get("storage")),
            warning=_str(data.get("warning"), None),
            api_retry=_dict(data.get("api_retry")),
        )


@dataclass
class Snapshot:
    workspace: str = ""
    experiment: str = ""
    metric: str = ""
    direction: str = "minimize"
    started_at: float | None = None
    pid: int | None = None
    scripted: bool = False
    total_cost_usd: float = 0.0
    lanes: dict[str, LaneSnapshot] = field(default_factory=dict)
    engine: str | None = None
    """"running" or "not running" (set by `status`)."""
    devices: dict[str, Any] | None = None
    """The host's accelerator: platform, chips, slots (leased or free, by whom, since when),
    the queue and the busy share since the engine started (engine/devices/leases.py)."""
    cluster: dict[str, Any] | None = None
    """[runner] kind = "ray": the connection ("connected", "connecting", "unreachable" with its
    error), the cluster's free and total resources, its alive nodes, runs queued and running."""
    config: dict[str, Any] = field(default_factory=dict)
    """The engine's last reload of autoresearch.toml: changed_at, applied, needs_restart,
    removed_lanes, error (empty before any change)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Snapshot":
        data = _dict(data) or {}
        lanes = _dict(data.get("lanes")) or {}
        pid = data.get("pid")
        return cls(
            workspace=_str(data.get("workspace")),
            experiment=_str(data.get("experiment")),
            metric=_str(data.get("metric")),
            direction="maximize" if data.get("direction") == "maximize" else "minimize",
            started_at=_number(data.get("started_at")),
            pid=pid if _int(pid, -1) > 0 else None,
            scripted=data.get("scripted") is True,
            total_cost_usd=_number(data.get("total_cost_usd")) or 0.0,
            lanes={str(name): LaneSnapshot.from_dict(lane, str(name)) for name, lane in lanes.items()},
            engine=_str(data.get("engine"), None),
            devices=_dict(data.get("devices")),
            cluster=_dict(data.get("cluster")),
            config=_dict(data.get("config")) or {},
        )
