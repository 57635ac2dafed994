"""What the TUI renders from: the engine's snapshot and per-lane buffers of events.

Nothing here touches a widget. The engine connection's reader only calls
:meth:`LaneStore.ingest`, which appends to plain deques; one timer in the UI flushes them
into the widgets (docs/architecture.md, "Streaming lanes in Textual").
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from autoresearch_tui.engine.client import LANE_SNAPSHOT
from autoresearch_tui.engine.core.render import clean, decision_row, figure, transcript_lines
from autoresearch_tui.engine.core.snapshot import LaneSnapshot, Snapshot

TRANSCRIPT_LINES = 5000
"""Lines kept per lane in memory and in a transcript widget."""
DECISIONS_KEPT = 1000

DECISION_TYPES = frozenset({
    "injection", "stop_blocked", "stop_allowed", "retrospective", "merge", "error",
    "tool_denied", "user_message", "warning", "config",
})


def _is_decision(event: dict[str, Any]) -> bool:
    """Events that are decisions only in some forms: a lane needing attention, a confirmation's
    verdict, a failed correctness check."""
    kind = event.get("type")
    return ((kind == "lane_state" and event.get("state") == "needs_attention")
            or (kind == "confirmation" and event.get("phase") == "finished")
            or (kind == "check_finished" and not event.get("passed")))


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


def display_state(lane: LaneSnapshot) -> tuple[str, str, str]:
    """(state key, icon, word) to show: `waiting` while a running lane's run queues for a slot."""
    if lane.state == "running" and lane.waiting_for_device:
        return ("waiting", *WAITING_ICON)
    icon, word = STATE_ICONS.get(lane.state, ("?", lane.state))
    return lane.state, icon, word


def lease_line(lane: LaneSnapshot) -> str | None:
    """"waiting for device (2nd in queue)" / "on slot 1 (chips 4,5,6,7)", or None."""
    text = (lane.lease or {}).get("text")
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
        if kind in DECISION_TYPES or _is_decision(event):
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
    """Everything the screen shows, as plain data: the engine's snapshot plus per-lane feeds.

    Figures (state, runs, best, counters) come only from the engine's snapshots: the whole
    snapshot on attach and every few seconds, and a lane's snapshot whenever the engine
    pushes one. Events only feed the transcripts, the Decisions tab and the alerts."""

    def __init__(self, snapshot: Snapshot | None = None):
        self.snapshot: Snapshot = snapshot or Snapshot()
        self.feeds: dict[str, LaneFeed] = {}
        self.alerts: deque[Alert] = deque(maxlen=100)
        self.alert_after = time.time()
        """Events older than this (replayed history) never raise alerts."""
        self.dirty_lanes: set[str] = set()
        self.events_seen = 0
        self.resync_needed = False
        """The engine said this client fell behind: take a new snapshot."""
        self._listeners: dict[str, list] = {}
        for name in self.snapshot.lanes:
            self.feed(name)

    @property
    def lanes(self) -> dict[str, LaneSnapshot]:
        return self.snapshot.lanes

    def lane_names(self) -> list[str]:
        return list(self.lanes)

    def feed(self, name: str) -> LaneFeed:
        feed = self.feeds.get(name)
        if feed is None:
            feed = self.feeds[name] = LaneFeed(name)
        return feed

    def set_snapshot(self, snapshot: Snapshot | dict[str, Any]) -> None:
        if not isinstance(snapshot, Snapshot):
            snapshot = Snapshot.from_dict(snapshot)
        self.snapshot = snapshot
        for name in snapshot.lanes:
            self.feed(name)
        self.dirty_lanes.update(snapshot.lanes)

    def listen(self, lane: str, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """`callback(event)` for each new event of `lane` (must only append); returns the undo."""
        self._listeners.setdefault(lane, []).append(callback)
        return lambda: self._listeners.get(lane, []).remove(callback) if callback in self._listeners.get(lane, []) else None

    def set_lane(self, lane: LaneSnapshot) -> None:
        self.snapshot.lanes[lane.name] = lane
        self.feed(lane.name)
        self.dirty_lanes.add(lane.name)

    def ingest(self, event: dict[str, Any]) -> None:
        """The only thing the connection's reader calls: cheap appends, no widgets."""
        self.events_seen += 1
        kind = event.get("type")
        if kind == LANE_SNAPSHOT:
            self.set_lane(LaneSnapshot.from_dict(event.get("lane_snapshot")))
            return
        name = event.get("lane")
        if kind == "resync" or not isinstance(name, str) or name == "-":
            if kind == "resync":
                self.resync_needed = True
                self.alerts.append(Alert("-", "resync", "the UI fell behind; refreshing", "information"))
            return
        feed = self.feed(name)
        if event.get("ts", 0) and feed.history_loaded and event.get("ts", 0) <= feed.last_ts \
                and kind != "lane_state":
            return  # already shown from history
        feed.append_event(event)
        for callback in self._listeners.get(name, ()):
            callback(event)
        self.dirty_lanes.add(name)
        if isinstance(event.get("ts"), (int, float)) and event["ts"] >= self.alert_after:
            self._maybe_alert(name, event)

    def _maybe_alert(self, name: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "lane_state" and event.get("state") == "needs_attention":
            self.alerts.append(Alert(name, f"lane {name} needs attention",
                                     clean(event.get("reason", "")) or "see the Decisions tab", "error"))
        elif kind == "run_recorded" and event.get("new_best"):
            change = event.get("change_pct")
            value = event.get("metric_value")
            shown = figure(value, 4)
            text = f"run {event.get('run_id')}: {shown}"
            if isinstance(change, (int, float)):
                text += f" ({change:+.1f}% vs baseline)"
            self.alerts.append(Alert(name, f"new best in lane {name}", text, "information"))
        elif kind == "merge" and event.get("ok") is False:
            self.alerts.append(Alert(name, f"merge of lane {name} failed",
                                     clean(event.get("message", "")), "error"))
