"""The top line: experiment, engine status, total cost, uptime, scripted-demo label."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from autoresearch_tui.engine.core.render import clean, cluster_text
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
        self.update(self.header_text(self.size.width or 200))

    def on_resize(self) -> None:
        self.refresh_text()

    def header_text(self, width: int) -> Text:
        """The parts that fit in `width`, most important first; a part never shows in half
        and no separator is left hanging."""
        snap = self.snapshot
        parts: list[Text] = []
        if snap.scripted:
            # First, so no terminal is too narrow to show it: nothing here is a real model.
            parts.append(Text(" SCRIPTED DEMO MODEL ", style="bold black on yellow"))
        title = Text(clean(snap.experiment or "?"), style="bold")
        if snap.metric:
            title.append(f" ({clean(snap.metric)} {'↓' if snap.direction == 'minimize' else '↑'})")
        parts.append(title)
        if self.connection == "connected":
            parts.append(Text("engine running", style="green"))
        elif self.connection == "connecting":
            parts.append(Text("engine: connecting…", style="yellow"))
        else:
            parts.append(Text(f"engine DISCONNECTED: {self.connection} — press c to reconnect", style="bold red"))
        if not snap.scripted:  # scripted tokens cost nothing
            parts.append(Text(f"cost ${snap.total_cost_usd:.2f}"))
        devices = snap.devices
        if devices and isinstance(devices.get("busy_share"), (int, float)):
            slots = devices.get("slots") or []
            leased = sum(1 for slot in slots if isinstance(slot, dict) and slot.get("state") == "leased")
            queued = len(devices.get("queue") or [])
            part = Text(f"device {clean(devices.get('platform', '?'))} busy {devices['busy_share'] * 100:.0f}%")
            part.append(f" ({leased}/{len(slots)} slots" + (f", {queued} queued)" if queued else ")"), style="dim")
            parts.append(part)
        if snap.cluster:
            text = cluster_text(snap.cluster)
            style = "bold red" if snap.cluster.get("connection") == "unreachable" else ""
            parts.append(Text(clean(text), style=style))
        if snap.started_at is not None:
            parts.append(Text(f"up {format_duration(CLOCK() - snap.started_at)}"))
        if self.connection == "connected" and snap.pid:
            parts.append(Text(f"pid {snap.pid}", style="dim"))
        room = max(1, width - 2)  # the widget's padding
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, part in enumerate(parts):
            separator = "" if index == 0 else ("  " if index == 1 and snap.scripted else "  │  ")
            if index and text.cell_len + len(separator) + part.cell_len > room:
                break
            text.append(separator)
            text.append_text(part)
        return text
