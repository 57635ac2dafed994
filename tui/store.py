"""Per-lane buffers the TUI renders from, and the event → text formatting.

Nothing here touches a widget. The engine connection's reader only calls
:meth:`LaneStore.ingest`, which appends to plain deques; one timer in the UI flushes them
into the widgets (docs/architecture.md, "Streaming lanes in Textual").
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from autoresearch_tui.engine.core.render import clean, decision_row, transcript_lines

TRANSCRIPT_LINES = 5000
"""Lines kept per lane in memory and in a transcript widget."""
DECISIONS_KEPT = 1000

DECISION_TYPES = frozenset({
    "injection", "stop_blocked", "stop_allowed", "retrospective", "merge", "error",
    "tool_denied", "user_message", "warning",
})
STATE_ICONS = {
    "starting": ("◌", "starting"),
    "running": ("●", "running"),
    "pausing": ("◐", "pausing"),
    "paused": ("⏸", "paused"),
    "stopping": ("◍", "stopping"),
    "stopped": ("■", "stopped"),
    "needs_attention": ("⚠", "needs attention"),
}
WAITING_ICON = ("⧗", "waiting")
"""A running lane whose benchmark queues for a device slot (shown distinctly from running)."""


def display_state(lane: dict[str, Any]) -> tuple[str, str, str]:
    """(state key, icon, word) to show: `waiting` while a running lane's run queues for a slot."""
    state = lane.get("state", "?")
    lease = lane.get("lease") or {}
    if state == "running" and isinstance(lease, dict) and lease.get("state") == "waiting":
        return ("waiting", *WAITING_ICON)
    icon, word = STATE_ICONS.get(state, ("?", state))
    return state, icon, word


def lease_line(lane: dict[str, Any]) -> str | None:
    """"waiting for device (2nd in queue)" / "on slot 1 (chips 4,5,6,7)", or None."""
    lease = lane.get("lease")
    if not isinstance(lease, dict):
        return None
    text = lease.get("text")
    return clean(text) if isinstance(text, str) and text else None


def ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@dataclass
class LaneFeed:
    """One lane's buffered output. Views remember `(generation, total)` they have shown."""

    name: str
    lines: deque = field(default_factory=lambda: deque(maxlen=TRANSCRIPT_LINES))
    total: int = 0
    """Lines ever appended (views diff against it)."""
    generation: int = 0
    """Bumped when the buffer is rebuilt (history prepended): views redraw from scratch."""
    decisions: deque = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    decisions_total: int = 0
    history_loaded: bool = False
    first_ts: float | None = None
    last_ts: float = 0.0

    def append_event(self, event: dict[str, Any]) -> None:
        ts = event.get("ts", 0.0)
        if isinstance(ts, (int, float)):
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            self.last_ts = max(self.last_ts, ts)
        lines = transcript_lines(event)
        if lines:
            self.lines.extend(lines)
            self.total += len(lines)
        kind = event.get("type")
        if kind in DECISION_TYPES or (kind == "lane_state" and event.get("state") == "needs_attention"):
            self.decisions.append(decision_row(event))
            self.decisions_total += 1

    def prepend_history(self, events: Iterable[dict[str, Any]]) -> None:
        """Older events (from the history op) go before what is buffered."""
        older = LaneFeed(self.name)
        for event in events:
            older.append_event(event)
        lines = list(older.lines) + list(self.lines)
        decisions = list(older.decisions) + list(self.decisions)
        self.lines = deque(lines, maxlen=TRANSCRIPT_LINES)
        self.decisions = deque(decisions, maxlen=DECISIONS_KEPT)
        self.total += older.total
        self.decisions_total += older.decisions_total
        if older.first_ts is not None:
            self.first_ts = min(self.first_ts or older.first_ts, older.first_ts)
            self.last_ts = max(self.last_ts, older.last_ts)
        self.generation += 1
        self.history_loaded = True


@dataclass
class Alert:
    lane: str
    title: str
    message: str
    severity: str = "warning"


class LaneStore:
    """Everything the screen shows, as plain data: the snapshot plus per-lane feeds."""

    def __init__(self, snapshot: dict[str, Any] | None = None):
        self.snapshot: dict[str, Any] = snapshot or {"lanes": {}}
        self.feeds: dict[str, LaneFeed] = {}
        self.alerts: deque[Alert] = deque(maxlen=100)
        self.alert_after = time.time()
        """Events older than this (replayed history) never raise alerts."""
        self.dirty_lanes: set[str] = set()
        self.events_seen = 0
        for name in self.snapshot.get("lanes", {}):
            self.feed(name)

    @property
    def lanes(self) -> dict[str, dict[str, Any]]:
        return self.snapshot.setdefault("lanes", {})

    def lane_names(self) -> list[str]:
        return list(self.lanes)

    def feed(self, name: str) -> LaneFeed:
        feed = self.feeds.get(name)
        if feed is None:
            feed = self.feeds[name] = LaneFeed(name)
        return feed

    def set_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        for name in snapshot.get("lanes", {}):
            self.feed(name)
        self.dirty_lanes.update(snapshot.get("lanes", {}))

    def ingest(self, event: dict[str, Any]) -> None:
        """The only thing the connection's reader calls: cheap appends, no widgets."""
        self.events_seen += 1
        name = event.get("lane")
        kind = event.get("type")
        if kind == "resync" or not isinstance(name, str) or name == "-":
            if kind == "resync":
                self.alerts.append(Alert("-", "resync", "the UI fell behind; refreshing", "information"))
            return
        feed = self.feed(name)
        if event.get("ts", 0) and feed.history_loaded and event.get("ts", 0) <= feed.last_ts \
                and kind != "lane_state":
            return  # already shown from history
        feed.append_event(event)
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = {"name": name, "state": "starting", "counters": {}, "policy": {},
                                        "frontier": {}, "metrics": {}}
        self._fold(lane, event)
        self.dirty_lanes.add(name)
        if isinstance(event.get("ts"), (int, float)) and event["ts"] >= self.alert_after:
            self._maybe_alert(name, event)

    def _fold(self, lane: dict[str, Any], event: dict[str, Any]) -> None:
        """Keep the snapshot's per-lane figures current between snapshot refreshes."""
        kind = event.get("type")
        if kind == "lane_state":
            lane["state"] = event.get("state", lane.get("state"))
            if event.get("state") == "needs_attention":
                lane["needs_attention_reason"] = event.get("reason", "")
        elif kind == "run_recorded":
            frontier = lane.setdefault("frontier", {})
            frontier["runs"] = (frontier.get("runs") or 0) + 1
            for key in ("baseline", "best", "change_pct", "runs_since_best"):
                if event.get(key) is not None:
                    frontier[key] = event[key]
            if event.get("new_best"):
                frontier["best_run"] = event.get("run_id")
        elif kind == "metric" and event.get("kind") == "summary" and event.get("best") is not None:
            metrics = lane.setdefault("metrics", {})
            history = metrics.setdefault("best_history", [])
            history.append(event["best"])
            del history[:-200]
        elif kind == "stop_blocked":
            policy = lane.setdefault("policy", {})
            policy["stops_blocked"] = (policy.get("stops_blocked") or 0) + 1
        elif kind == "tool_use":
            counters = lane.setdefault("counters", {})
            counters["tool_uses"] = (counters.get("tool_uses") or 0) + 1
        elif kind == "lease_wait":  # the next snapshot brings the exact place in the queue
            position = event.get("position")
            place = f"{position}{ordinal_suffix(position)} in queue" if isinstance(position, int) else "queued"
            lane["lease"] = {"state": "waiting", "position": position, "since": event.get("ts"),
                             "text": f"waiting for device ({place})"}
        elif kind == "lease_acquired":
            chips = ",".join(str(c) for c in event.get("chips") or [])
            lane["lease"] = {"state": "leased", "slot": event.get("slot"), "since": event.get("ts"),
                             "text": f"on slot {event.get('slot')} (chips {chips})"}
        elif kind in ("lease_released", "lease_cancelled"):
            lane["lease"] = None

    def _maybe_alert(self, name: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "lane_state" and event.get("state") == "needs_attention":
            self.alerts.append(Alert(name, f"lane {name} needs attention",
                                     clean(event.get("reason", "")) or "see the Decisions tab", "error"))
        elif kind == "run_recorded" and event.get("new_best"):
            change = event.get("change_pct")
            value = event.get("metric_value")
            shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
            text = f"run {event.get('run_id')}: {shown}"
            if isinstance(change, (int, float)):
                text += f" ({change:+.1f}% vs baseline)"
            self.alerts.append(Alert(name, f"new best in lane {name}", text, "information"))
        elif kind == "merge" and event.get("ok") is False:
            self.alerts.append(Alert(name, f"merge of lane {name} failed",
                                     clean(event.get("message", "")), "error"))
