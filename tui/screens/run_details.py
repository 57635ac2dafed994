"""A run's diff and log (from the Runs tab, Enter)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Log

from autoresearch_tui.engine.core.render import clean


class RunDetailsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close", id="run_close")]

    def __init__(self, lane: str, details: dict[str, Any]):
        super().__init__()
        self.lane = lane
        self.details = details

    def compose(self) -> ComposeResult:
        row = self.details.get("row") or {}
        head = Text()
        head.append(f"lane {self.lane} · run {self.details.get('run_id', row.get('run_id', '?'))}", style="bold")
        head.append(f"  {row.get('status', '')}  metric {row.get('metric', '–')}  commit {str(row.get('commit') or '')[:10]}")
        if row.get("description"):
            head.append(f"\n{clean(row['description'])}")
        with Vertical(classes="dialog wide"):
            yield Label(head, classes="dialog-title")
            yield Log(highlight=False, id="run-details-log")
            yield Label("Escape: close", classes="dialog-hint")

    def on_mount(self) -> None:
        log = self.query_one(Log)
        diff = clean(self.details.get("diff") or "(no diff: this run has no commit)")
        run_log = clean(self.details.get("log") or "(no run.log for this run)")
        lines = ["── diff " + "─" * 40, *diff.split("\n"), "", "── run.log " + "─" * 37, *run_log.split("\n")]
        log.write_lines(lines, scroll_end=False)
        log.scroll_home(animate=False)
        log.focus()

    def action_close(self) -> None:
        self.dismiss(None)
