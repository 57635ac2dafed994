"""The scripted demo agent continues from a lane's real state (ledger and fork), after an
engine restart and in a lane added after a merge, and re-measures the commit it names.

Its tool calls are carried out for real here: Bash and Edit in the real fork (git), the
ledger through the real record_run (with the run.json the engine writes). Only the
benchmark's number is scripted (from the fork's code: jax runs take minutes on this
machine), so the test follows the agent over dozens of turns in a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from autoresearch_tui.engine.config import load_config
from autoresearch_tui.engine.core.git import git_out
from autoresearch_tui.engine.demo.agent import LANE_STATUS, RECORD_RUN, RUN_BENCHMARK, DemoAgent
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ToolUseBlock
from autoresearch_tui.engine.demo.workspace import create_demo_workspace
from autoresearch_tui.engine.repo.forks import ensure_fork
from autoresearch_tui.engine.repo.merge import merge_lane
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.runs.measure import measured_code
from autoresearch_tui.engine.runs.run_info import update_run_info
from autoresearch_tui.engine.workspace import Workspace


def measured_ms(fork: Path) -> float:
    code = (fork / "model.py").read_text()
    jitted = "step_fn = jax.jit(train_step)" in code
    callback = "jax.debug.callback(_check_finite" in code
    return {(False, True): 92.0, (False, False): 60.0, (True, True): 6.2, (True, False): 5.0}[(jitted, callback)]


class Harness:
    """Plays the CLI and the engine for one lane: each tool call is carried out for real."""

    def __init__(self, workspace: Workspace, lane: str):
        self.workspace, self.lane = workspace, lane
        self.fork = ensure_fork(workspace, lane)
        self.calls: list[ToolUseBlock] = []
        self.texts: list[str] = []
        self.answer = "start"
        self.count = 0

    def request(self) -> ModelRequest:
        self.count += 1
        body = {"system": f"Primary working directory: {self.fork}",
                "messages": [{"role": "user", "content": f"You are lane {self.lane} of experiment example."},
                             {"role": "assistant", "content": "..."},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                           "content": self.answer}]}]}
        return ModelRequest(self.count, "POST", "/v1/messages", {}, {"x-claude-code-session-id": "s"},
                            body, time.time(), kind="main")

    def run(self, agent: DemoAgent, turns: int) -> None:
        for _ in range(turns):
            turn = agent(self.request())
            self.texts += [b.text for b in turn.blocks if hasattr(b, "text")]
            call = next((b for b in turn.blocks if isinstance(b, ToolUseBlock)), None)
            self.answer = "Stop hook feedback: Do not stop" if call is None else self.carry_out(call)

    def carry_out(self, call: ToolUseBlock) -> str:
        self.calls.append(call)
        data = call.input
        if call.name == "Bash":
            done = subprocess.run(data["command"], shell=True, cwd=self.fork, capture_output=True, text=True)
            return done.stdout + done.stderr
        if call.name == "Edit":
            path = Path(data["file_path"])
            path.write_text(path.read_text().replace(data["old_string"], data["new_string"]))
            return "edited"
        if call.name in ("Read", "Write"):
            if call.name == "Write":
                Path(data["file_path"]).parent.mkdir(parents=True, exist_ok=True)
                Path(data["file_path"]).write_text(data["content"])
            return "ok"
        if call.name == RUN_BENCHMARK:
            run_id, run_dir = record.allocate_run(self.workspace, self.lane)
            value = measured_ms(self.fork)
            (run_dir / "metrics.jsonl").write_text(json.dumps(
                {"v": 1, "kind": "summary", "step_time_median_s": value / 1000}) + "\n")
            commit, dirty = measured_code(self.fork)  # what the engine's run.json says it measured
            update_run_info(run_dir, run_id=run_id, lane=self.lane, purpose="benchmark", status="ok",
                            commit=commit, dirty=dirty)
            return (f"run_id={run_id} run_dir={run_dir} status=ok exit_code=0 wall=1.0s\n"
                    f"step_time_ms (median): {value:.3f}")
        if call.name == RECORD_RUN:
            # confirm_runs=0: the A/B confirmation is the engine's (tests/engine/runs/test_evidence.py)
            answer = record.record_run(self.workspace, self.lane, data["status"], data["description"],
                                       run_dir=data.get("run_dir"), confirm_runs=0)
            return json.dumps({k: v for k, v in answer.items() if k != "row"}, default=str)
        assert call.name == LANE_STATUS, call.name
        return "{}"

    def ledger(self) -> list[dict]:
        rows, _ = record.read_ledger(self.workspace.ledger_path(self.lane), "step_time_ms")
        return rows

    def head(self) -> str:
        return git_out(self.fork, "rev-parse", "HEAD")

    def best_commit(self) -> str:
        return record.lane_frontier(self.workspace, self.lane)[0].best_commit


def demo_workspace(tmp_path: Path) -> Workspace:
    return Workspace(load_config(create_demo_workspace(tmp_path / "demo")))


def benches(harness: Harness) -> list[dict]:
    return [dict(call.input) for call in harness.calls if call.name == RUN_BENCHMARK]


def test_after_a_restart_the_demo_agent_goes_on_from_the_ledger_and_the_fork(tmp_path):
    workspace = demo_workspace(tmp_path)
    first = Harness(workspace, "a")
    first.run(DemoAgent(workspace.config), 11)  # baseline, then the jit experiment is recorded
    assert [r["description"] for r in first.ledger()] == ["baseline", "jit the whole train step"]
    best_before = first.best_commit()

    again = Harness(workspace, "a")  # a new engine: a new agent, the same lane on disk
    again.run(DemoAgent(workspace.config), 40)
    rows = again.ledger()
    descriptions = [r["description"] for r in rows]
    assert descriptions.count("baseline") == 1  # never a second baseline
    assert descriptions.count("jit the whole train step") == 1
    assert "drop the per-step host callback" in descriptions
    assert again.texts[0].startswith("Continuing lane a from its ledger: 2 runs recorded")
    # Every re-measure names the commit it measured, and that commit is the best.
    remeasures = [r for r in rows if r["description"].startswith("re-measure")]
    assert remeasures and all(r["description"] == f"re-measure the best (commit {r['commit'][:10]})"
                              for r in remeasures)
    assert {r["commit"] for r in remeasures} == {again.best_commit()}
    assert again.best_commit() != best_before and again.head() == again.best_commit()


def test_a_lane_added_after_a_merge_measures_the_merged_code_and_keeps_it(tmp_path):
    workspace = demo_workspace(tmp_path)
    lane_a = Harness(workspace, "a")
    lane_a.run(DemoAgent(workspace.config), 30)
    assert merge_lane(workspace, "a").ok
    merged = git_out(workspace.main_repo, "rev-parse", workspace.config.experiment.target_branch)

    lane_c = Harness(workspace, "c")  # `n`: a new lane, forked from the merged main repo
    assert lane_c.head() == merged
    lane_c.run(DemoAgent(workspace.config), 14)
    rows = lane_c.ledger()
    assert rows[0]["description"] == "baseline" and rows[0]["metric"] == 5.0  # the merged code
    assert not [call for call in lane_c.calls if call.name == "Edit"]  # nothing left to redo
    assert lane_c.head() == merged  # no reset took the fork back to the original code


def test_re_measuring_checks_out_the_best_first_and_captures_profiles(tmp_path):
    workspace = demo_workspace(tmp_path)
    lane = Harness(workspace, "a")
    agent = DemoAgent(workspace.config)
    lane.run(agent, 21)  # the plan is done: baseline, jit, callback
    best = lane.best_commit()
    (lane.fork / "model.py").write_text((lane.fork / "model.py").read_text() + "\n# slower\n")
    subprocess.run(["git", "commit", "-qam", "an unrecorded change"], cwd=lane.fork, check=True)
    assert lane.head() != best
    before = len(benches(lane))
    lane.run(agent, 14)
    later = benches(lane)[before:]
    assert later and all(b["description"] == f"re-measure the best (commit {best[:10]})" for b in later)
    assert lane.head() == best
    profiled = [b for b in benches(lane) if b.get("args") == "--profile"]
    assert profiled and profiled[0]["description"].startswith("re-measure")
