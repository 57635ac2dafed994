"""The full logs view (l): a lane's events from the engine's history, paged backwards."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Label, Log

from autoresearch_tui.engine.client import EngineClientError
from autoresearch_tui.engine.core.render import format_event
from autoresearch_tui.engine.core.render import clean

PAGE = 500


class LogsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="logs_close"),
        Binding("o", "older", "Older events", tooltip="Load the previous page of events", id="logs_older"),
        Binding("G", "newest", "Newest", tooltip="Reload the newest events", id="logs_newest"),
    ]

    def __init__(self, bridge, lane: str):
        super().__init__()
        self.bridge = bridge
        self.lane = lane
        self.lines: list[str] = []
        self.oldest_ts: float | None = None
        self.exhausted = False

    def compose(self) -> ComposeResult:
        yield Label(f"lane {self.lane} — full logs", id="logs-title", markup=False)
        yield Log(highlight=False, id="logs-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self.load(newest=True)

    @work(exclusive=True, group="logs")
    async def load(self, newest: bool = False) -> None:
        before = None if newest else self.oldest_ts
        if not newest and self.exhausted:
            self.notify("no older events", title="logs")
            return
        try:
            reply = await self.bridge.request("history", lane=self.lane, limit=PAGE, before=before)
        except EngineClientError as exc:
            self.notify(str(exc), title="logs", severity="error")
            return
        events = reply.get("events", [])
        lines = []
        for event in events:
            lines.extend(clean(format_event(event)).split("\n"))
        log = self.query_one(Log)
        if newest:
            self.lines = lines
            self.exhausted = len(events) < PAGE
        else:
            self.lines = lines + self.lines
            self.exhausted = len(events) < PAGE
        if events:
            self.oldest_ts = events[0].get("ts") if newest or self.oldest_ts is None else min(
                self.oldest_ts, events[0].get("ts", self.oldest_ts))
        log.clear()
        log.write_lines(self.lines, scroll_end=newest)
        if not newest:
            log.scroll_to(y=len(lines), animate=False)
        title = f"lane {self.lane} — full logs: {len(self.lines)} lines"
        title += " (start of the log)" if self.exhausted else " (o: older)"
        self.query_one("#logs-title", Label).update(title)

    def action_older(self) -> None:
        self.load(newest=False)

    def action_newest(self) -> None:
        self.load(newest=True)

    def action_close(self) -> None:
        self.dismiss(None)
