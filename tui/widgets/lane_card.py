"""One lane in the lane list: state icon and word, name, runs, best and change, sparkline."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from autoresearch_tui.engine.core.lane_state import NEEDS_ATTENTION
from autoresearch_tui.engine.core.render import clean, figure
from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.tui.store import display_state, ordinal_suffix

STATE_STYLES = {
    "running": "green", "starting": "cyan", "pausing": "yellow", "paused": "yellow",
    "stopping": "magenta", "stopped": "dim", "needs_attention": "bold red",
    "waiting": "bold cyan",
}
SPARKLINE_POINTS = 60
"""The running best over the lane's last runs (a long history would squash the recent ones)."""


def fmt_number(value: Any) -> str:
    return "–" if value is None else figure(value, 4)


def fmt_next_injection(info: dict[str, float] | None) -> str:
    """`3t/9m42s`; `–` when the lane is not running (nothing counts down)."""
    if not info:
        return "–"
    turns, seconds = info.get("turns_left"), info.get("seconds_left")
    parts = []
    if isinstance(turns, (int, float)):
        parts.append(f"{int(turns)}t")
    if isinstance(seconds, (int, float)):
        parts.append(f"{int(seconds) // 60}m{int(seconds) % 60:02d}s")
    return "/".join(parts) or "–"


def sparkline_points(history: list[float], direction: str) -> list[float]:
    """The last SPARKLINE_POINTS of the running best, on a log scale when they span more
    than 10×, so the stretch where the lane is now stays readable (a first, huge baseline
    would otherwise flatten everything after it to one bar)."""
    points = [v for v in history[-SPARKLINE_POINTS:] if isinstance(v, (int, float))]
    if len(points) < 2:
        return points
    low, high = min(points), max(points)
    if low > 0 and high / low > 10:
        points = [math.log10(v) for v in points]
    # A sparkline draws high bars for high values; for a minimized metric, up must mean better.
    return [-v for v in points] if direction == "minimize" else points


AGENT_STYLES = {"claude": "dim", "codex": "cyan"}


def agent_text(lane: LaneSnapshot, with_model: bool = False) -> Text:
    """`codex` (or `codex gpt-5.5`): which agent CLI runs the lane."""
    label = f"{lane.agent} {lane.model}" if with_model and lane.model else lane.agent
    return Text(clean(label), style=AGENT_STYLES.get(lane.agent, ""))


def state_text(lane: LaneSnapshot, width: int = 0) -> Text:
    """`● running` (or `⧗ waiting` while its run queues for a device), styled by state."""
    shown, icon, word = display_state(lane)
    return Text(f"{icon} {word:<{width}}", style=STATE_STYLES.get(shown, ""))


def figures_text(lane: LaneSnapshot, metric: str = "", vs: str = "") -> Text:
    """`runs 7  best 7.9 (-21.0%)`: the ledger's figures, the same in every view."""
    frontier = lane.frontier
    text = Text(f"runs {frontier.runs}  best {metric + ' ' if metric else ''}{fmt_number(frontier.best)}")
    if frontier.change_pct is not None:
        text.append(f" ({frontier.change_pct:+.1f}%{vs})", style="green" if frontier.change_pct != 0 else "")
    return text


def lane_text(lane: LaneSnapshot, index: int) -> Text:
    text = Text()
    text.append(f"{index} " if index <= 9 else "  ", style="dim")
    text.append_text(state_text(lane, width=9))
    text.append(f" {clean(lane.name)}", style="bold")
    text.append("\n  ")
    text.append_text(figures_text(lane))
    text.append(f"\n  next inj {fmt_next_injection(lane.next_injection)}"
                f"  blocks {lane.policy.stops_blocked}", style="dim")
    if lane.waiting_for_device:  # short enough for the lane list; the summary has the full line
        position = (lane.lease or {}).get("position")
        place = f"{position}{ordinal_suffix(position)} " if isinstance(position, int) else ""
        text.append(f"\n  {place}in the device queue", style=STATE_STYLES["waiting"])
    if lane.state == NEEDS_ATTENTION and lane.needs_attention_reason:
        text.append(f"\n  {clean(lane.needs_attention_reason)}", style="red")
    elif lane.api_retry and lane.api_retry.get("message"):
        text.append(f"\n  ↻ {clean(str(lane.api_retry['message']))[:60]}", style="yellow")
    return text


class LaneCard(Widget):
    DEFAULT_CSS = """
    LaneCard { height: auto; padding: 0 1; margin-bottom: 1; }
    LaneCard.-selected { background: $primary 25%; }
    LaneCard.-attention { border-left: thick $error; }
    LaneCard.-waiting { border-left: thick $accent; }
    LaneCard .card-bottom { height: 1; margin: 0 2; }
    LaneCard .card-agent { width: auto; height: 1; margin-right: 1; }
    LaneCard Sparkline { height: 1; width: 1fr; }
    LaneCard .lane-text { height: auto; }
    """

    class Clicked(Message):
        def __init__(self, lane: str):
            super().__init__()
            self.lane = lane

    def __init__(self, name: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.lane_name = name
        self._last_text: str = ""
        self._last_agent: str = ""
        self._last_points: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="lane-text")
        # The agent shares the sparkline's row: a narrow lane list has no room on the lines above.
        with Horizontal(classes="card-bottom"):
            yield Static("", classes="card-agent")
            yield Sparkline([], summary_function=max)

    def show(self, lane: LaneSnapshot, index: int, selected: bool) -> None:
        if not self.query(".card-agent"):  # the bottom row mounts a moment after the card
            self.call_after_refresh(self.show, lane, index, selected)
            return
        text = lane_text(lane, index)
        if text.plain != self._last_text:
            self._last_text = text.plain
            self.query_one(".lane-text", Static).update(text)
        agent = agent_text(lane)
        if agent.plain != self._last_agent:
            self._last_agent = agent.plain
            self.query_one(".card-agent", Static).update(agent)
        self.set_class(selected, "-selected")
        self.set_class(lane.state == NEEDS_ATTENTION, "-attention")
        self.set_class(lane.waiting_for_device, "-waiting")
        points = sparkline_points(lane.frontier.best_history, lane.frontier.direction)
        if points != self._last_points:
            self._last_points = points
            self.query_one(Sparkline).data = points

    def on_click(self) -> None:
        self.post_message(self.Clicked(self.lane_name))
