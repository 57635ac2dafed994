"""The engine's control API on a real workspace (real SDK and CLI against the scripted model)."""

from __future__ import annotations

import os

import pytest

from autoresearch_tui.engine.config import load_config
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.setup.init_workspace import create_workspace
from autoresearch_tui.engine.supervisor import Engine
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


async def test_a_lane_added_at_run_time_is_appended_to_the_config_and_nothing_else_changes(tmp_path, model):
    path = create_workspace(tmp_path / "ws", lanes=("a",))
    os.chmod(path, 0o640)
    before = path.read_text()
    model.set_script(lambda request: Turn.tool("Bash", {"command": "sleep 0.2"}))
    engine = Engine(load_config(path), env={**os.environ, **cli_env(tmp_path / "home", model.base_url)})
    await engine.start()
    try:
        answer = engine.add_lane("b", focus="the optimizer")
        await wait_until(lambda: any(r.contains("lane b of experiment") for r in model.main_requests),
                         what="lane b working")
    finally:
        await engine.stop()
    after = path.read_text()
    assert after.startswith(before) and "# main repo, relative to this file" in after
    assert after[len(before):].strip() == '[[lanes]]\nname = "b"\nfocus = "the optimizer"'
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [lane.name for lane in load_config(path).lanes] == ["a", "b"]
    assert answer == "lane b added (recorded in autoresearch.toml)"


async def test_an_edited_config_is_applied_live_where_it_can_be_and_the_rest_is_named(tmp_path, model):
    from autoresearch_tui.cli.status import status_lines
    from autoresearch_tui.engine.core.events import read_events

    path = create_workspace(tmp_path / "ws", lanes=("a",))
    model.set_script(lambda request: Turn.tool("Bash", {"command": "sleep 0.2"}))
    engine = Engine(load_config(path), env={**os.environ, **cli_env(tmp_path / "home", model.base_url)})

    def notices():
        return [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "config"]

    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 1, what="lane a working")
        text = path.read_text()
        edited = (text.replace("plateau_runs = 8", "plateau_runs = 3")
                      .replace('model = ""', 'model = "claude-other"')
                      .replace('focus = ""', 'focus = "only the optimizer"', 1)
                  + '\n[[lanes]]\nname = "b"\n')
        path.write_text(edited)
        await wait_until(lambda: notices(), what="the config notice")
        notice = notices()[0]
        lane = engine.lanes["a"]
        assert lane.settings.plateau_runs == 3 and engine.config.loop.plateau_runs == 3
        assert "only the optimizer" in lane.program
        assert engine.config.agent.model == ""  # the agent's process keeps its model
        assert notice["needs_restart"] == ["agent.model"]
        assert "loop.plateau_runs: 8 → 3" in notice["message"] and "lanes added and started: b" in notice["message"]
        await wait_until(lambda: any(r.contains("lane b of experiment") for r in model.main_requests),
                         what="the new lane working")
        answer = engine.pause("a")
        assert answer.startswith("lane a paus") and "still runs with the old agent.model" in answer
        assert any("restart the engine to apply" in line for line in status_lines(engine.snapshot()))

        path.write_text(edited.replace("plateau_runs = 3", "plateau_runs = -1"))
        await wait_until(lambda: len(notices()) >= 2, what="the bad edit's notice")
        assert "does not load" in notices()[1]["message"] and "loop.plateau_runs" in notices()[1]["message"]
        assert engine.lanes["a"].settings.plateau_runs == 3  # the engine goes on as it was
    finally:
        await engine.stop()
