"""The line above a lane's tabs: state, next injection, blocked stops, turns, cost, focus."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from autoresearch_tui.engine.core.lane_state import NEEDS_ATTENTION
from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.tui.store import lease_line
from autoresearch_tui.tui.widgets.lane_card import agent_text, figures_text, fmt_next_injection, state_text


class LaneSummary(Static):
    DEFAULT_CSS = """
    LaneSummary { height: auto; padding: 0 1; background: $surface; }
    """

    def show(self, lane: LaneSnapshot | None, metric: str = "") -> None:
        if lane is None:
            self.update(Text("no lane selected", style="dim"))
            return
        text = Text()
        text.append(f"lane {clean(lane.name)}  ", style="bold")
        text.append_text(agent_text(lane, with_model=True))
        text.append("  ")
        text.append_text(state_text(lane))
        if lease_line(lane):
            text.append(f" ({lease_line(lane)})", style=state_text(lane).style)
        text.append("  │  ")
        text.append_text(figures_text(lane, metric, vs=" vs baseline"))
        text.append(f"\nnext injection in {fmt_next_injection(lane.next_injection)}")
        text.append(f"  │  stops blocked {lane.policy.stops_blocked}")
        text.append(f"  retros {lane.policy.retrospectives}")
        text.append(f"  │  turns {lane.counters.turns}  cost ${lane.counters.cost_usd:.2f}")
        if lane.state == NEEDS_ATTENTION and lane.needs_attention_reason:
            text.append(f"\n⚠ {clean(lane.needs_attention_reason)}", style="bold red")
        if lane.focus:
            text.append(f"\nfocus: {clean(lane.focus)}", style="dim")
        self.update(text)
