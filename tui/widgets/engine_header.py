"""The top line: experiment, engine status, total cost, uptime, scripted-demo label."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.engine.core.snapshot import Snapshot

CLOCK = time.time
"""Where "now" comes from (tests pin it)."""


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


class EngineHeader(Static):
    DEFAULT_CSS = """
    EngineHeader { dock: top; height: 1; background: $panel; color: $foreground; padding: 0 1; }
    EngineHeader.-disconnected { background: $error 30%; }
    """

    connection: reactive[str] = reactive("connecting")
    """"connected", "connecting" or a sentence saying why it is not."""

    def __init__(self, **kwargs: Any):
        super().__init__("", **kwargs)
        self.snapshot = Snapshot()

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.refresh_text()

    def watch_connection(self, value: str) -> None:
        self.set_class(value not in ("connected", "connecting"), "-disconnected")
        self.refresh_text()

    def refresh_text(self) -> None:
        snap = self.snapshot
        text = Text()
        if snap.scripted:
            # First, so no terminal is too narrow to show it: nothing here is a real model.
            text.append(" SCRIPTED DEMO MODEL ", style="bold black on yellow")
            text.append("  ")
        # Most important first: a narrow terminal clips the end of the line.
        text.append(clean(snap.experiment or "?"), style="bold")
        if snap.metric:
            arrow = "↓" if snap.direction == "minimize" else "↑"
            text.append(f" ({clean(snap.metric)} {arrow})")
        text.append("  │  ")
        if self.connection == "connected":
            text.append("engine running", style="green")
        elif self.connection == "connecting":
            text.append("engine: connecting…", style="yellow")
        else:
            text.append(f"engine DISCONNECTED: {self.connection} — press c to reconnect", style="bold red")
        if not snap.scripted:  # scripted tokens cost nothing
            text.append(f"  │  cost ${snap.total_cost_usd:.2f}")
        if snap.started_at is not None:
            text.append(f"  │  up {format_duration(CLOCK() - snap.started_at)}")
        if self.connection == "connected" and snap.pid:
            text.append(f"  │  pid {snap.pid}", style="dim")
        self.update(text)
