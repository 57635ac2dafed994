"""A lane's transcript: a `Log` fed in batches from a `LaneFeed`."""

from __future__ import annotations

import itertools

from textual.widgets import Log

from autoresearch_tui.tui.store import TRANSCRIPT_LINES, LaneFeed


class TranscriptLog(Log):
    """`Log` with a line limit that keeps repainting once full.

    Textual 8.2.8's `Log.write_lines` refreshes only the span of the new lines; after it
    drops old lines every visible line moves, so the whole widget must repaint (docs/architecture.md).

    The live tail follows unless the *user* scrolled up. `Log` decides that from the scroll
    position at write time, which goes wrong after a clear and rewrite (a lane switch: the
    scroll happens before the new size is laid out, the view ends up above the end, and the
    log stops following for good). So following is our own flag: off when the user scrolls
    up, on again when the view reaches the end."""

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
        self.follow = True

    def write_lines(self, lines, scroll_end=None):  # type: ignore[override]
        before = self.line_count
        batch = list(lines)
        follow = self.follow if scroll_end is None else scroll_end
        super().write_lines(batch, False)
        if follow and not self.is_vertical_scrollbar_grabbed:
            # After the next layout, so a size that just changed (lane switch) is used.
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        if self.max_lines is not None and before + len(batch) > self.max_lines:
            self.refresh()
        return self

    # The user's own ways of scrolling up stop the follow; reaching the end resumes it.
    def _user_scrolled_up(self) -> None:
        self.follow = False

    def action_scroll_up(self) -> None:
        self._user_scrolled_up()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._user_scrolled_up()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._user_scrolled_up()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event) -> None:
        self._user_scrolled_up()
        super()._on_mouse_scroll_up(event)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value >= self.max_scroll_y:
            self.follow = True

    def sync(self, feed: LaneFeed) -> int:
        """Write what `feed` has that this log has not shown; returns the lines written."""
        if feed.name != self.lane or feed.generation != self._generation:
            self.clear()
            self.follow = True  # a lane shown afresh starts at its live tail
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
