"""The key table (?)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help_close")]

    def __init__(self, rows: list[tuple[str, str, str]]):
        """rows: (keys, what, binding id)."""
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2))
        table.add_column("key", style="bold")
        table.add_column("action")
        table.add_column(Text("id (remap in [tui.keys])"), style="dim")
        for keys, what, binding_id in self.rows:
            table.add_row(keys, what, binding_id)
        with Vertical(classes="dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(table)
            yield Label("Every action is also in the command palette (ctrl+p). Escape: close",
                        classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
