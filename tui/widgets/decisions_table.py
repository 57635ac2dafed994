"""The Decisions tab: injections, blocked stops, retrospectives, merges, errors."""

from __future__ import annotations

import itertools
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from autoresearch_tui.tui.store import LaneFeed

WHAT_STYLES = {"stop": "yellow", "injection": "cyan", "retrospective": "magenta", "merge": "green",
               "error": "red", "warning": "yellow", "state": "red"}


class DecisionsTable(DataTable):
    DEFAULT_CSS = """
    DecisionsTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.lane: str | None = None
        self._generation = -1
        self._seen = 0

    def on_mount(self) -> None:
        self.add_column("time", width=8)
        self.add_column("decision", width=28)
        self.add_column("reason")

    def sync(self, feed: LaneFeed) -> int:
        if feed.name != self.lane or feed.generation != self._generation:
            self.clear()
            self.lane = feed.name
            self._generation = feed.generation
            self._seen = feed.decisions_total - len(feed.decisions)
        new = min(feed.decisions_total - self._seen, len(feed.decisions))
        if new <= 0:
            return 0
        at_end = self.cursor_row >= self.row_count - 1
        for ts, what, reason in itertools.islice(feed.decisions, len(feed.decisions) - new, None):
            style = next((s for k, s in WHAT_STYLES.items() if k in what), "")
            if "FAILED" in what:
                style = "bold red"
            self.add_row(Text(ts), Text(what, style=style), Text(reason))
        self._seen = feed.decisions_total
        if at_end:
            self.move_cursor(row=self.row_count - 1)
        return new
