"""One lane's live transcript tail in grid mode (Enter zooms into the lane)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.tui.widgets.lane_card import agent_text, figures_text, state_text
from autoresearch_tui.tui.widgets.transcript import TranscriptLog

GRID_LINES = 400


class GridPane(Vertical, can_focus=True):
    DEFAULT_CSS = """
    GridPane { border: round $panel; height: 1fr; }
    GridPane:focus, GridPane.-selected { border: round $primary; }
    GridPane > .pane-title { height: 1; background: $panel; }
    GridPane TranscriptLog { height: 1fr; scrollbar-size-vertical: 0; overflow-x: hidden; }
    """
    BINDINGS = [Binding("enter", "zoom", "Zoom", tooltip="Open this lane's full view", id="grid_zoom")]

    class Zoom(Message):
        def __init__(self, lane: str):
            super().__init__()
            self.lane = lane

    class Clicked(Message):
        """A click selects this pane's lane."""

        def __init__(self, lane: str):
            super().__init__()
            self.lane = lane

    def __init__(self, lane: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.lane = lane
        self._shown: tuple[LaneSnapshot, int] | None = None

    def on_mount(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def compose(self) -> ComposeResult:
        yield Static(self.lane, classes="pane-title")
        yield TranscriptLog(max_lines=GRID_LINES)

    @property
    def log_widget(self) -> TranscriptLog:
        return self.query_one(TranscriptLog)

    def show(self, lane: LaneSnapshot, index: int) -> None:
        self._shown = (lane, index)
        if not self.children:
            return
        title = Text()
        title.append(f"{index} {clean(lane.name)} ", style="bold")
        title.append_text(agent_text(lane))
        title.append(" ")
        title.append_text(state_text(lane))
        title.append("  ")
        title.append_text(figures_text(lane))
        self.query_one(".pane-title", Static).update(title)

    def action_zoom(self) -> None:
        self.post_message(self.Zoom(self.lane))

    def on_click(self) -> None:
        self.focus()
        self.post_message(self.Clicked(self.lane))
