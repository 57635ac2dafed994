"""The top line: experiment, engine status, total cost, uptime, scripted-demo label."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

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
        self.snapshot: dict[str, Any] = {}

    def show(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.refresh_text()

    def watch_connection(self, value: str) -> None:
        self.set_class(value not in ("connected", "connecting"), "-disconnected")
        self.refresh_text()

    def refresh_text(self) -> None:
        snap = self.snapshot
        text = Text()
        if snap.get("scripted"):
            # First, so no terminal is too narrow to show it: nothing here is a real model.
            text.append(" SCRIPTED DEMO MODEL ", style="bold black on yellow")
            text.append("  ")
        # Most important first: a narrow terminal clips the end of the line.
        text.append(str(snap.get("experiment", "?")), style="bold")
        metric = snap.get("metric")
        if metric:
            arrow = "↓" if snap.get("direction") == "minimize" else "↑"
            text.append(f" ({metric} {arrow})")
        text.append("  │  ")
        if self.connection == "connected":
            text.append("engine running", style="green")
        elif self.connection == "connecting":
            text.append("engine: connecting…", style="yellow")
        else:
            text.append(f"engine DISCONNECTED: {self.connection} — press c to reconnect", style="bold red")
        cost = snap.get("total_cost_usd")
        if isinstance(cost, (int, float)) and not snap.get("scripted"):  # scripted tokens cost nothing
            text.append(f"  │  cost ${cost:.2f}")
        devices = snap.get("devices")
        if isinstance(devices, dict) and isinstance(devices.get("busy_share"), (int, float)):
            slots = devices.get("slots") or []
            leased = sum(1 for slot in slots if isinstance(slot, dict) and slot.get("state") == "leased")
            queued = len(devices.get("queue") or [])
            text.append(f"  │  device {devices.get('platform', '?')} busy {devices['busy_share'] * 100:.0f}%")
            text.append(f" ({leased}/{len(slots)} slots" + (f", {queued} queued)" if queued else ")"), style="dim")
        started = snap.get("started_at")
        if isinstance(started, (int, float)):
            text.append(f"  │  up {format_duration(CLOCK() - started)}")
        if self.connection == "connected" and snap.get("pid"):
            text.append(f"  │  pid {snap['pid']}", style="dim")
        self.update(text)
