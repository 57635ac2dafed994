"""Quit: detach (the engine keeps running) or stop the engine."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("d", "choose('detach')", "Detach", id="quit_detach"),
        Binding("s", "choose('stop')", "Stop engine", id="quit_stop"),
        Binding("escape,c", "choose(None)", "Cancel", id="quit_cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Quit autoresearch-tui", classes="dialog-title")
            yield Static("Detach leaves the engine and every lane running; re-attach any time.\n"
                         "Stop engine stops all lanes (sessions stay resumable) and the engine.",
                         classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Detach (d)", variant="primary", id="detach")
                yield Button("Stop engine (s)", variant="error", id="stop")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
