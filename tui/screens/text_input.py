"""A small form of text fields (send a message, add a lane)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class TextInputScreen(ModalScreen[dict[str, str] | None]):
    """Fields are (key, label, placeholder); Enter in the last field submits; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="input_cancel")]

    def __init__(self, title: str, fields: list[tuple[str, str, str]]):
        super().__init__()
        self.title_text = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            for key, label, placeholder in self.fields:
                yield Label(label, markup=False)
                yield Input(placeholder=placeholder, id=f"field-{key}")
            yield Label("Enter: send   Escape: cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
            return
        self.dismiss({key: self.query_one(f"#field-{key}", Input).value for key, _, _ in self.fields})

    def action_cancel(self) -> None:
        self.dismiss(None)
