"""The lane list on the left of the main screen."""

from __future__ import annotations

from textual.containers import VerticalScroll

from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.tui.widgets.lane_card import LaneCard


class LaneList(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    LaneList { width: 38; border-right: solid $panel; }
    """

    def show(self, lanes: dict[str, LaneSnapshot], selected: str | None) -> None:
        cards = {card.lane_name: card for card in self.query(LaneCard)}
        for name in list(cards):
            if name not in lanes:
                cards.pop(name).remove()
        for index, (name, lane) in enumerate(lanes.items(), start=1):
            card = cards.get(name)
            if card is None:
                card = LaneCard(name)
                self.mount(card)
                card.call_after_refresh(card.show, lane, index, name == selected)
                continue
            card.show(lane, index, name == selected)
