"""One lane in the lane list: state icon and word, name, runs, best and change, sparkline."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.tui.store import STATE_ICONS

STATE_STYLES = {
    "running": "green", "starting": "cyan", "pausing": "yellow", "paused": "yellow",
    "stopping": "magenta", "stopped": "dim", "needs_attention": "bold red",
}


def fmt_number(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}"
    return "–"


def fmt_next_injection(info: Any) -> str:
    if not isinstance(info, dict):
        return "–"
    turns, seconds = info.get("turns_left"), info.get("seconds_left")
    parts = []
    if isinstance(turns, (int, float)):
        parts.append(f"{int(turns)}t")
    if isinstance(seconds, (int, float)):
        parts.append(f"{int(seconds) // 60}m{int(seconds) % 60:02d}s")
    return "/".join(parts) or "–"


def lane_best(lane: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(best, change_pct, runs) from the ledger frontier, else the metrics watcher."""
    frontier = lane.get("frontier") or {}
    metrics = lane.get("metrics") or {}
    best = frontier.get("best")
    change = frontier.get("change_pct")
    if best is None:
        best = (metrics.get("best") or {}).get("value")
        change = metrics.get("change_pct")
    runs = frontier.get("runs")
    if runs is None:
        runs = metrics.get("runs")
    return best, change, runs


def lane_text(lane: dict[str, Any], index: int) -> Text:
    state = lane.get("state", "?")
    icon, word = STATE_ICONS.get(state, ("?", state))
    style = STATE_STYLES.get(state, "")
    best, change, runs = lane_best(lane)
    text = Text()
    text.append(f"{index} " if index <= 9 else "  ", style="dim")
    text.append(f"{icon} {word:<9}", style=style)
    text.append(f" {lane.get('name', '?')}", style="bold")
    text.append(f"\n  runs {runs if runs is not None else 0}  best {fmt_number(best)}")
    if isinstance(change, (int, float)):
        text.append(f" ({change:+.1f}%)", style="green" if change != 0 else "")
    policy = lane.get("policy") or {}
    text.append(f"\n  next inj {fmt_next_injection(lane.get('next_injection'))}"
                f"  blocks {policy.get('stops_blocked', 0)}", style="dim")
    if state == "needs_attention" and lane.get("needs_attention_reason"):
        text.append(f"\n  {clean(lane['needs_attention_reason'])[:60]}", style="red")
    return text


class LaneCard(Widget):
    DEFAULT_CSS = """
    LaneCard { height: auto; padding: 0 1; margin-bottom: 1; }
    LaneCard.-selected { background: $primary 25%; }
    LaneCard.-attention { border-left: thick $error; }
    LaneCard Sparkline { height: 1; margin: 0 2; }
    LaneCard Static { height: auto; }
    """

    class Clicked(Message):
        def __init__(self, lane: str):
            super().__init__()
            self.lane = lane

    def __init__(self, name: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.lane_name = name
        self._last_text: str = ""
        self._last_points: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="lane-text")
        yield Sparkline([], summary_function=min)

    def show(self, lane: dict[str, Any], index: int, selected: bool) -> None:
        text = lane_text(lane, index)
        if text.plain != self._last_text:
            self._last_text = text.plain
            self.query_one(Static).update(text)
        self.set_class(selected, "-selected")
        self.set_class(lane.get("state") == "needs_attention", "-attention")
        points = list((lane.get("metrics") or {}).get("best_history") or [])[-200:]
        if points != self._last_points:
            self._last_points = points
            spark = self.query_one(Sparkline)
            direction_max = lane.get("_direction") == "maximize"
            spark.summary_function = max if direction_max else min
            spark.data = points

    def on_click(self) -> None:
        self.post_message(self.Clicked(self.lane_name))
