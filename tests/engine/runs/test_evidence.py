"""Evidence integrity end to end: only what the engine measured, on the code it measured,
counts, and a new best must repeat. The real SDK and CLI against the scripted model, real git
repositories, real benchmark processes (a tiny bench whose result the test controls through
files in the fork, and that can report a lucky first measurement of a commit)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.core.ledger import read_ledger
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.repo.merge import merge_lane
from autoresearch_tui.engine.runs.record import lane_frontier
from autoresearch_tui.engine.supervisor import Engine
from tests.support import git, make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"
RECORD_RUN = "mcp__autoresearch__record_run"

# value.txt holds the true metric of this commit. With $BENCH_STATE set, the first
# measurement of each commit can be LUCKY (x0.8 of a step time, x1.25 of a score), and
# re-measures can be slowed down (a file `slow` in $BENCH_STATE) to stop mid-confirmation.
BENCH = r'''
import json, os, subprocess, time
value = float(open("value.txt").read().split()[0])
metric = os.environ.get("BENCH_METRIC", "step_time_ms")
state = os.environ.get("BENCH_STATE")
if state:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    seen = os.path.join(state, commit)
    first = not os.path.exists(seen)
    open(seen, "a").write("x")
    if first and os.path.exists(os.path.join(state, "lucky")):
        value = value * (1.25 if metric == "score" else 0.8)
    if not first and os.path.exists(os.path.join(state, "slow")):
        time.sleep(20)
summary = {"v": 1, "kind": "summary"}
if metric == "step_time_ms":
    summary["step_time_median_s"] = value / 1000
else:
    summary[metric] = value
open(os.environ["AUTORESEARCH_METRICS"], "a").write(json.dumps(summary) + "\n")
print(f"{metric}: {value}")
'''


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


def engine_for(config, model, tmp_path: Path, **env: str) -> Engine:
    return Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url), **env},
                  backoff_base_s=0.05)


def bash(command: str) -> Turn:
    return Turn.tool("Bash", {"command": command})


def commit(value: float, message: str, extra: str = "") -> Turn:
    return bash(f"echo {value} > value.txt {extra}&& git add -A && git commit -qm '{message}'")


def answers(model: ScriptedModelServer) -> list[str]:
    """The tool results the model read, one per request after the first."""
    return [r.tool_result_text() for r in model.main_requests[1:]]


def record_answer(text: str) -> dict:
    return json.loads(text)


async def run_script(engine: Engine, model: ScriptedModelServer, turns: list[Turn], timeout: float = 150) -> None:
    model.set_script(turns + [bash("true")] * 200)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) > len(turns), timeout=timeout,
                         what=f"{len(turns)} scripted steps")
    finally:
        await engine.stop()


async def test_the_measurement_wins_and_the_row_names_the_measured_commit(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "30\n"})
    engine = engine_for(config, model, tmp_path)
    fork = engine.workspace.fork_dir("a")
    await run_script(engine, model, [
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline", "metric": 99, "run_dir": "0001"}),
        commit(20, "width 512"),
        Turn.tool(RUN_BENCHMARK, {"description": "width 512"}),
        commit(10, "width 1024, untested"),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "width 512"}),  # no run_dir: the latest run
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "trust me", "metric": 1.0}),
        bash("echo 15 > value.txt"),  # uncommitted
        Turn.tool(RUN_BENCHMARK, {"description": "dirty"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "dirty"}),
    ])
    got = answers(model)
    # 1. A claim over a measurement: the measurement is recorded, the agent is warned.
    baseline = record_answer(got[1])
    assert baseline["metric"] == pytest.approx(30.0) and baseline["claim_ignored"] == 99
    assert any("your metric 99 was ignored: the engine measured step_time_ms 30" in w for w in baseline["warnings"])
    ignored = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "claim_ignored"]
    assert ignored and ignored[0]["claimed"] == 99 and ignored[0]["measured"] == pytest.approx(30.0)
    # 2. HEAD moved to an untested commit before recording: the row names the measured one.
    width_512 = git(fork, "rev-parse", "HEAD~1").strip()
    kept = record_answer(got[5])
    assert kept["run_id"] == "0002" and kept["commit"] == width_512 and kept["metric"] == pytest.approx(20.0)
    assert kept["confirmation"]["state"] == "confirmed" and kept["new_best"] is True
    # 3. A claim with no run at all: unverified, never the best.
    claimed = record_answer(got[6])
    assert claimed["source"] == "claimed" and claimed["unverified"] is True and claimed["best"] == pytest.approx(20.0)
    assert any("recorded as claimed (unverified)" in w for w in claimed["warnings"])
    # 4. A run on uncommitted changes cannot be a keep: the agent is told to commit and re-run.
    assert "with uncommitted changes to value.txt: commit them and run again" in got[8]
    assert "record_run refused" in got[9] and "Commit your change and run the benchmark again" in got[9]

    rows, warnings = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    assert not warnings
    experiments = [r for r in rows if r["kind"] != "confirmation"]
    assert [(r["run_id"], r["status"], r["source"]) for r in experiments] == [
        ("0001", "keep", "measured"), ("0002", "keep", "measured"), (claimed["run_id"], "keep", "claimed")]
    frontier, _ = lane_frontier(engine.workspace, "a")
    assert frontier.best == pytest.approx(20.0) and frontier.best_commit == width_512
    assert frontier.claimed_runs == 1 and frontier.runs == 3  # confirmation rows are not experiments


async def test_frozen_files_cannot_be_written_and_a_committed_edit_is_refused_at_run_time(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "30\n"},
                            experiment='frozen = ["bench.py", "data/**"]')
    engine = engine_for(config, model, tmp_path)
    fork = engine.workspace.fork_dir("a")
    await run_script(engine, model, [
        Turn.tool("Write", {"file_path": f"{fork}/bench.py", "content": "print('step_time_ms: 1')\n"}),
        bash("echo '# faster' >> bench.py && git commit -qam 'tune the benchmark'"),
        Turn.tool(RUN_BENCHMARK, {"description": "tuned benchmark"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "tuned benchmark"}),
    ])
    got = answers(model)
    assert "bench.py is frozen" in got[0] and "define how runs are measured" in got[0]
    assert "tune the benchmark" in git(fork, "log", "-1", "--format=%s")  # Bash could change it...
    assert "status=refused" in got[2] and "frozen files differ from main: bench.py" in got[2]  # ...not run it
    recorded = record_answer(got[3])
    assert recorded["status"] == "crash" and recorded["baseline"] is None
    denied = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "tool_denied"]
    assert denied and denied[0]["tool"] == "Write"
    program = model.main_requests[0].body_text
    assert "These files are frozen and may not change: `bench.py`, `data/**`" in program


async def test_a_lucky_first_measurement_is_not_confirmed_a_consistent_gain_is_and_merges(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "100\n"})
    state = tmp_path / "bench-state"
    state.mkdir()
    engine = engine_for(config, model, tmp_path, BENCH_STATE=str(state))
    fork = engine.workspace.fork_dir("a")
    await run_script(engine, model, [
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),          # 100
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
        commit(100, "reorder imports (no real change)",                 # from now on, first draws are lucky
               extra="&& echo 'imports reordered' > notes.txt && touch \"$BENCH_STATE/lucky\" "),
        Turn.tool(RUN_BENCHMARK, {"description": "no real change"}),    # lucky first draw: 80
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "no real change"}),
        commit(70, "a real 30% gain"),
        Turn.tool(RUN_BENCHMARK, {"description": "real gain"}),         # lucky first draw: 56
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "real gain"}),
    ], timeout=200)
    got = answers(model)
    lucky, real = record_answer(got[4]), record_answer(got[7])
    assert lucky["confirmation"]["state"] == "rejected" and lucky["new_best"] is False
    assert lucky["confirmation"]["candidate_values"] == [100.0, 100.0]
    assert lucky["confirmation"]["incumbent_values"] == [100.0, 100.0]
    assert any("NOT CONFIRMED" in n and "gain +0.00%" in n for n in lucky["notes"])
    assert real["confirmation"]["state"] == "confirmed" and real["new_best"] is True
    assert real["confirmation"]["gain_pct"] == pytest.approx(30.0)
    assert real["best"] == pytest.approx(70.0)  # the confirmed median, not the lucky 56
    events = [e for e in read_events(engine.workspace.events_path("a"))
              if e["type"] == "confirmation" and e.get("phase") == "finished"]
    assert [e["state"] for e in events] == ["rejected", "confirmed"]

    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    confirmations = [r for r in rows if r["kind"] == "confirmation"]
    assert [(r["confirms"], r["role"], r["status"]) for r in confirmations] == [
        (lucky["run_id"], "candidate", "repeat"), (lucky["run_id"], "incumbent", "repeat")] * 2 + [
        (real["run_id"], "candidate", "repeat"), (real["run_id"], "incumbent", "repeat")] * 2
    # Re-measures ran in clean checkouts: the agent's working tree was never touched.
    assert git(fork, "status", "--porcelain").strip() == ""
    assert not any((engine.workspace.lane_dir("a") / "checkouts").iterdir())

    frontier, _ = lane_frontier(engine.workspace, "a")
    assert frontier.best_run == real["run_id"] and frontier.rejected == [lucky["run_id"]]
    result = merge_lane(engine.workspace, "a")
    assert result.ok, result.message
    main = engine.workspace.main_repo
    assert git(main, "rev-parse", "main^2").strip() == real["commit"]
    assert (main / "value.txt").read_text().strip() == "70"
    assert result.evidence["candidate_median"] == pytest.approx(70.0)


async def test_a_confirmation_cut_short_leaves_the_candidate_unconfirmed(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "100\n"})
    state = tmp_path / "bench-state"
    state.mkdir()
    engine = engine_for(config, model, tmp_path, BENCH_STATE=str(state))
    model.set_script([
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
        commit(50, "faster"),
        Turn.tool(RUN_BENCHMARK, {"description": "faster"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "faster"}),
    ] + [bash("true")] * 50)
    (state / "slow").write_text("")  # every re-measure takes 20 s

    def confirming() -> bool:
        return any(e["type"] == "lease_acquired" and e.get("purpose") == "confirmation"
                   for e in read_events(engine.workspace.events_path("a")))

    await engine.start()
    try:
        await wait_until(confirming, timeout=120, what="the confirmation to start")
        await engine.stop_lane("a")
    finally:
        await engine.stop()
    frontier, _ = lane_frontier(engine.workspace, "a")
    assert frontier.best_run == "0001" and frontier.unconfirmed == ["0002"]
    verdict = frontier.per_run["0002"]["confirmation"]
    assert verdict["state"] == "unconfirmed" and verdict["candidate_values"] == []
    result = merge_lane(engine.workspace, "a")
    assert not result.ok and "unconfirmed keep(s) 0002" in result.message


async def test_a_custom_maximize_metric_is_read_from_the_summary(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "41\n"},
                            experiment='metric = "score"\ndirection = "maximize"')
    engine = engine_for(config, model, tmp_path, BENCH_METRIC="score")
    await run_script(engine, model, [
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
        commit(60, "better"),
        Turn.tool(RUN_BENCHMARK, {"description": "better"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "better"}),
    ])
    got = answers(model)
    assert "score: 41" in got[0] and "status=ok" in got[0]
    assert record_answer(got[1])["metric"] == 41.0 and record_answer(got[1])["source"] == "measured"
    better = record_answer(got[4])
    assert better["metric"] == 60.0 and better["confirmation"]["state"] == "confirmed"
    assert better["best"] == 60.0 and better["change_pct"] == pytest.approx(46.34, abs=0.01)
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "score")
    assert rows[0]["metric"] == 41.0


async def test_a_failing_check_command_makes_a_discard(tmp_path, model):
    check = ("import sys\nbad = 'wrong' in open('value.txt').read()\n"
             "print('check: loss diverged' if bad else 'check: loss matches')\nsys.exit(1 if bad else 0)\n")
    config = make_workspace(tmp_path, repo_files={"bench.py": BENCH, "value.txt": "100\n", "check.py": check},
                            experiment='check_command = "python check.py"')
    engine = engine_for(config, model, tmp_path)
    await run_script(engine, model, [
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
        bash("printf '50\\n# wrong\\n' > value.txt && git commit -qam 'fast but wrong'"),
        Turn.tool(RUN_BENCHMARK, {"description": "fast but wrong"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "fast but wrong"}),
    ])
    got = answers(model)
    assert record_answer(got[1])["status"] == "keep"
    wrong = record_answer(got[4])
    assert wrong["status"] == "discard" and wrong["best"] == pytest.approx(100.0)
    assert any("FAILED" in n and "check: loss diverged" in n for n in wrong["notes"])
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    assert rows[-1]["description"].endswith("[check_command failed]")
    checks = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "check_finished"]
    assert [e["passed"] for e in checks] == [True, False]
