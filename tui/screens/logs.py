"""The full logs view (l): a lane's events from the engine's history, paged backwards, and
following new events as they arrive. The engine's own tool answers appear here in full."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Label, Log

from autoresearch_tui.engine.client import EngineClientError
from autoresearch_tui.engine.core.render import clean, engine_tool_answer, format_event

PAGE = 500
FOLLOW_EVERY_S = 0.25


def log_lines(event: dict) -> list[str]:
    """An event as the logs view shows it: one line, plus the full answer of an engine tool."""
    lines = [format_event(event)]
    if event.get("type") == "tool_result" and engine_tool_answer(event) is not None:
        lines += ["    " + line for line in clean(event.get("output", "")).split("\n")]
    return lines


class LogsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="logs_close"),
        Binding("o", "older", "Older events", tooltip="Load the previous page of events", id="logs_older"),
        Binding("G", "newest", "Newest", tooltip="Reload the newest events", id="logs_newest"),
    ]

    def __init__(self, bridge, lane: str, store=None):
        super().__init__()
        self.bridge = bridge
        self.lane = lane
        self.store = store
        self.lines: list[str] = []
        self.oldest_ts: float | None = None
        self.newest_ts: float = 0.0
        self.exhausted = False
        self._pending: list[dict] = []
        self._stop_listening = None
        self.loaded = False
        """The first page is in; until then new events wait (they may be in that page)."""

    def compose(self) -> ComposeResult:
        yield Label(f"lane {self.lane} — full logs", id="logs-title", markup=False)
        yield Log(highlight=False, id="logs-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        if self.store is not None:  # new events arrive through the UI's own connection
            self._stop_listening = self.store.listen(self.lane, self._pending.append)
            self.set_interval(FOLLOW_EVERY_S, self._follow, name="logs-follow")
        self.load(newest=True)

    def on_unmount(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()

    def _follow(self) -> None:
        if not self.loaded:
            return
        events = [e for e in self._pending if isinstance(e.get("ts"), (int, float)) and e["ts"] > self.newest_ts]
        self._pending.clear()
        if not events:
            return
        self.newest_ts = events[-1]["ts"]
        lines = [line for event in events for line in log_lines(event)]
        self.lines.extend(lines)
        log = self.query_one(Log)
        at_end = log.is_vertical_scroll_end or log.max_scroll_y == 0
        log.write_lines(lines, scroll_end=at_end)
        self._update_title()

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
        if not self.is_running:  # closed while the page was out: its Log is being removed
            return
        events = reply.get("events", [])
        lines = [line for event in events for line in log_lines(event)]
        if newest and events:
            self.newest_ts = max(self.newest_ts, events[-1].get("ts", 0) or 0)
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
        self.loaded = True
        if not newest:
            log.scroll_to(y=len(lines), animate=False)
        self._update_title()

    def _update_title(self) -> None:
        title = f"lane {self.lane} — full logs: {len(self.lines)} lines"
        title += " (start of the log)" if self.exhausted else " (o: older)"
        if self.store is not None:
            title += " · following new events"
        self.query_one("#logs-title", Label).update(title)

    def action_older(self) -> None:
        self.load(newest=False)

    def action_newest(self) -> None:
        self.load(newest=True)

    def action_close(self) -> None:
        self.dismiss(None)
