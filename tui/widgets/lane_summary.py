"""The line above a lane's tabs: state, next injection, blocked stops, turns, cost, focus."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.tui.store import display_state, lease_line
from autoresearch_tui.tui.widgets.lane_card import STATE_STYLES, fmt_next_injection, fmt_number, lane_best


class LaneSummary(Static):
    DEFAULT_CSS = """
    LaneSummary { height: auto; padding: 0 1; background: $surface; }
    """

    def show(self, lane: dict[str, Any] | None, metric: str = "") -> None:
        if not lane:
            self.update(Text("no lane selected", style="dim"))
            return
        state = lane.get("state", "?")
        shown, icon, word = display_state(lane)
        counters = lane.get("counters") or {}
        policy = lane.get("policy") or {}
        best, change, runs = lane_best(lane)
        text = Text()
        text.append(f"lane {lane.get('name')}  ", style="bold")
        text.append(f"{icon} {word}", style=STATE_STYLES.get(shown, ""))
        if lease_line(lane):
            text.append(f" ({lease_line(lane)})", style=STATE_STYLES.get(shown, ""))
        text.append(f"  │  runs {runs or 0}  best {metric} {fmt_number(best)}")
        if isinstance(change, (int, float)):
            text.append(f" ({change:+.1f}% vs baseline)")
        text.append(f"\nnext injection in {fmt_next_injection(lane.get('next_injection'))}")
        text.append(f"  │  stops blocked {policy.get('stops_blocked', 0)}")
        text.append(f"  retros {policy.get('retrospectives', 0)}")
        text.append(f"  │  turns {counters.get('turns', 0)}  cost ${counters.get('cost_usd', 0) or 0:.2f}")
        if state == "needs_attention" and lane.get("needs_attention_reason"):
            text.append(f"\n⚠ {clean(lane['needs_attention_reason'])}", style="bold red")
        if lane.get("focus"):
            text.append(f"\nfocus: {clean(lane['focus'])}", style="dim")
        self.update(text)
