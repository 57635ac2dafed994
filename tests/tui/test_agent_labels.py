"""Each lane shows its agent: in the lane list, the lane's header line and the grid."""

from __future__ import annotations

import pytest

from autoresearch_tui.engine.core.snapshot import Snapshot
from autoresearch_tui.tui.store import LaneStore
from autoresearch_tui.tui.widgets.lane_card import agent_text
from tests.tui.support import FakeBridge, fixed_snapshot, screen_text


def snapshot_with_agents() -> Snapshot:
    data = fixed_snapshot()
    data["lanes"]["b"].update(agent="codex", model="gpt-5.5")
    return Snapshot.from_dict(data)


def test_the_agent_label_names_the_cli_and_its_model():
    lanes = snapshot_with_agents().lanes
    assert agent_text(lanes["b"]).plain == "codex" and agent_text(lanes["b"], with_model=True).plain == "codex gpt-5.5"
    assert agent_text(lanes["a"]).plain == "claude"  # the default


@pytest.mark.parametrize("size", [(130, 36), (80, 30)])
async def test_the_lane_list_the_lane_header_and_the_grid_show_each_lanes_agent(size):
    from autoresearch_tui.engine.config import TuiConfig
    from autoresearch_tui.tui.app import AutoresearchApp

    store = LaneStore(snapshot_with_agents())
    store.alert_after = float("inf")
    app = AutoresearchApp(TuiConfig(), bridge=FakeBridge(store), store=store)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        await pilot.press("2")  # select lane b
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "lane b  codex gpt-5.5" in text
        lane_list = [line.split("│")[0] for line in text.splitlines()]
        cards = [line.strip() for line in lane_list if line.strip()]
        # each card: its state line first, its agent beside the sparkline, nothing wrapped
        agents = [line.split()[0] for line in cards if line.split()[0] in ("claude", "codex")]
        assert agents[:3] == ["claude", "codex", "claude"]  # lanes a, b, c (d may be below the fold)
        assert any(line.startswith("2 ⏸ paused") and line.endswith(" b") for line in cards)
        await pilot.press("g")  # the grid
        await pilot.pause(0.3)
        assert any("b codex" in line for line in screen_text(app).splitlines())
