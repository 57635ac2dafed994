"""A lane's transcript: a `Log` fed in batches from a `LaneFeed`."""

from __future__ import annotations

import itertools

from textual.widgets import Log

from tui.feed import TRANSCRIPT_LINES, LaneFeed


class TranscriptLog(Log):
    """`Log` with a line limit that keeps repainting once full.

    Textual 8.2.8's `Log.write_lines` refreshes only the span of the new lines; after it
    drops old lines every visible line moves, so the whole widget must repaint (DESIGN.md).
    The live tail follows unless the user scrolled up (Log's own behaviour)."""

    DEFAULT_CSS = """
    TranscriptLog { scrollbar-size-vertical: 1; }
    """

    def __init__(self, *, max_lines: int = TRANSCRIPT_LINES, id: str | None = None,
                 classes: str | None = None):
        super().__init__(highlight=False, max_lines=max_lines, id=id, classes=classes)
        self.lane: str | None = None
        self._generation = -1
        self._seen = 0
        self.lines_written = 0

    def write_lines(self, lines, scroll_end=None):  # type: ignore[override]
        before = self.line_count
        batch = list(lines)
        super().write_lines(batch, scroll_end)
        if self.max_lines is not None and before + len(batch) > self.max_lines:
            self.refresh()
        return self

    def sync(self, feed: LaneFeed) -> int:
        """Write what `feed` has that this log has not shown; returns the lines written."""
        if feed.name != self.lane or feed.generation != self._generation:
            self.clear()
            self.lane = feed.name
            self._generation = feed.generation
            self._seen = feed.total - len(feed.lines)
        new = feed.total - self._seen
        if new <= 0:
            return 0
        available = len(feed.lines)
        new = min(new, available)
        if self.max_lines is not None:
            new = min(new, self.max_lines)
        batch = list(itertools.islice(feed.lines, available - new, None))
        self.write_lines(batch)
        self._seen = feed.total
        self.lines_written += len(batch)
        return len(batch)
