"""Grid mode: every lane's transcript tail side by side."""

from __future__ import annotations

import math

from textual.containers import Grid

from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.tui.widgets.grid_pane import GridPane


class LaneGrid(Grid, can_focus=False):
    DEFAULT_CSS = """
    LaneGrid { grid-size: 2; grid-gutter: 0; height: 1fr; }
    """

    def panes(self) -> dict[str, GridPane]:
        return {pane.lane: pane for pane in self.query(GridPane)}

    def show(self, lanes: dict[str, LaneSnapshot], selected: str | None) -> None:
        panes = self.panes()
        for name in lanes:
            if name not in panes:
                pane = GridPane(name)
                self.mount(pane)
                panes[name] = pane
        count = max(1, len(lanes))
        columns = 1 if count == 1 else 2 if count <= 4 else 3 if count <= 9 else 4
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = math.ceil(count / columns)
        for index, (name, lane) in enumerate(lanes.items(), start=1):
            pane = panes[name]
            pane.show(lane, index)
            pane.set_class(name == selected, "-selected")
