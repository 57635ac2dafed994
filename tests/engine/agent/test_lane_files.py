"""The lane's own files: the write guard keeps the agent's Write/Edit tools off what the
engine keeps (ledger, lane.json, events, a run's log and metrics), and a malformed
lane.json never stops the engine: it is set aside with a warning and the lane starts
fresh (its ledger and runs untouched)."""

from __future__ import annotations

import os

import pytest

from autoresearch_tui.engine.agent.lane import Lane
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.core.ledger import columns
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.offline import offline_snapshot
from autoresearch_tui.engine.supervisor import Engine
from tests.support import make_workspace, wait_until


@pytest.fixture
def lane(tmp_path):
    config = make_workspace(tmp_path)
    from autoresearch_tui.engine.workspace import Workspace

    return Lane("a", config, Workspace(config), publish=lambda event: None,
                session_factory=lambda lane: None)  # never opened: no session runs here


@pytest.mark.parametrize("relative", [
    "results.tsv", "lane.json", "lane.json.bad-20260101T000000", "events.jsonl", "events.3.jsonl",
    "runs/0001/run.log", "runs/0001/metrics.jsonl", "runs/0001/metrics.cache.json",
    "runs/0001/.process-group.json", "runs/0001/run.json",
])
def test_the_agent_may_not_write_the_engines_files(lane, relative):
    target = lane.workspace.lane_dir("a") / relative
    reason = lane.check_write("Write", str(target), None)
    assert reason is not None and "the engine keeps that file" in reason


@pytest.mark.parametrize("relative", [
    ".repo/proj/model.py", "retrospectives/2026-01-01-a-retrospective.md", "notes.md",
    "runs/0001/profile/trace.json", "runs/0001/plot.png",
])
def test_the_agent_may_write_its_fork_retrospectives_and_notes(lane, relative):
    assert lane.check_write("Write", str(lane.workspace.lane_dir("a") / relative), None) is None


def test_a_path_through_the_fork_to_the_ledger_is_refused(lane):
    fork = lane.workspace.fork_dir("a")
    fork.mkdir(parents=True)
    assert "the engine keeps that file" in lane.check_write("Edit", "../../results.tsv", fork)
    (fork / "ledger-link").symlink_to(lane.workspace.ledger_path("a"))
    assert "the engine keeps that file" in lane.check_write("Write", "ledger-link", fork)


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_the_real_agent_is_denied_overwriting_the_ledger(tmp_path):
    config = make_workspace(tmp_path)
    with ScriptedModelServer() as model:
        engine = Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url)},
                        backoff_base_s=0.05)
        ledger = engine.workspace.ledger_path("a")
        ledger.parent.mkdir(parents=True, exist_ok=True)
        ledger.write_text("\t".join(columns("step_time_ms")) + "\n")
        model.set_script([Turn.tool("Write", {"file_path": str(ledger), "content": "forged\n"}),
                          Turn.tool("Bash", {"command": "echo after"})])
        await engine.start()
        try:
            await wait_until(lambda: len(model.main_requests) >= 2, what="the Write's answer")
            answer = model.main_requests[1].tool_result_text()
        finally:
            await engine.stop()
    assert "the engine keeps that file" in answer
    assert ledger.read_text() == "\t".join(columns("step_time_ms")) + "\n"


@pytest.mark.parametrize("content", [b'{"counters": []}', b'"str"', b"\xff\xfe\x00garbage",
                                     b'{"state": "bogus"}', b'{"counters": {"turns": -4}}',
                                     b'{"session_id": 12}', b"[" * 100_000])
def test_a_malformed_lane_json_is_set_aside_and_the_lane_starts_fresh_from_its_ledger(tmp_path, content):
    config = make_workspace(tmp_path)
    from autoresearch_tui.engine.workspace import Workspace

    workspace = Workspace(config)
    lane_dir = workspace.lane_dir("a")
    lane_dir.mkdir(parents=True)
    workspace.lane_json("a").write_bytes(content)
    workspace.ledger_path("a").write_text(
        "\t".join(columns("step_time_ms")) + "\n"
        + "\t".join(["0001", "2026-01-01T00:00:00Z", "", "10", "keep", "baseline",
                     *[""] * (len(columns("step_time_ms")) - 6)]) + "\n")
    offline = offline_snapshot(config).lanes["a"]  # `status` with no engine: a warning, no crash
    assert "lane.json" in offline.warning
    engine = Engine(config, env=dict(os.environ))
    record = engine.lanes["a"].record
    assert record.state == "starting" and record.session_id is None and record.counters.turns == 0
    kept = list(lane_dir.glob("lane.json.bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == content
    warnings = [e for e in read_events(workspace.events_path("a")) if e["type"] == "warning"]
    assert warnings and "unusable" in warnings[0]["message"] and kept[0].name in warnings[0]["message"]
    assert engine.lane_snapshot("a").frontier.runs == 1  # fresh from the ledger
