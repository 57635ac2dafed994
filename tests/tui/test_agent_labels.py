"""Each lane shows its agent: in the lane list, the lane's header line and the grid."""

from __future__ import annotations

from autoresearch_tui.engine.core.snapshot import Snapshot
from autoresearch_tui.tui.store import LaneStore
from autoresearch_tui.tui.widgets.lane_card import lane_text
from tests.tui.support import FakeBridge, fixed_snapshot, screen_text


def snapshot_with_agents() -> Snapshot:
    data = fixed_snapshot()
    data["lanes"]["b"].update(agent="codex", model="gpt-5.5")
    return Snapshot.from_dict(data)


def test_the_lane_card_names_the_agent():
    lanes = snapshot_with_agents().lanes
    assert lane_text(lanes["b"], 2).plain.splitlines()[0].endswith(" b  codex")
    assert lane_text(lanes["a"], 1).plain.splitlines()[0].endswith(" a  claude")  # the default


async def test_the_lane_list_the_lane_header_and_the_grid_show_each_lanes_agent():
    from autoresearch_tui.engine.config import TuiConfig
    from autoresearch_tui.tui.app import AutoresearchApp

    store = LaneStore(snapshot_with_agents())
    store.alert_after = float("inf")
    app = AutoresearchApp(TuiConfig(), bridge=FakeBridge(store), store=store)
    async with app.run_test(size=(130, 36)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("2")  # select lane b
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "lane b  codex gpt-5.5" in text
        lines = text.splitlines()
        assert any(" a  claude" in line for line in lines) and any(" b  codex" in line for line in lines)
        await pilot.press("g")  # the grid
        await pilot.pause(0.3)
        assert any("b codex" in line for line in screen_text(app).splitlines())
