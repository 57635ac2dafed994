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
