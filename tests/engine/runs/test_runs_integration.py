"""Runs end to end: the scripted model commits, benchmarks through the engine's tool,
records through record_run; the real example workload, real jax on the CPU, real git."""

from __future__ import annotations

import json
import os
import re

import pytest

from autoresearch_tui.engine.config import load_config
from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.setup.init_workspace import create_workspace
from autoresearch_tui.engine.runs.record import read_ledger
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.core.tools import tool_id
from tests.support import git, make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RUN_BENCHMARK, RECORD_RUN = tool_id("run_benchmark"), tool_id("record_run")


def engine_for(config, model, tmp_path) -> Engine:
    return Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url)},
                  backoff_base_s=0.05)


def last_run_dir(request: ModelRequest) -> str:
    match = re.search(r"run_dir=(\S+)", request.new_text)
    assert match, request.new_text
    return match.group(1)


async def test_jitting_the_example_really_lowers_the_lanes_best_step_time(tmp_path, model):
    config_path = create_workspace(tmp_path / "ws", lanes=("a",))
    config = load_config(config_path)
    config.experiment.confirm_runs = 0  # confirmation has its own tests (tests/engine/runs/test_evidence.py)
    fork = None

    def script(request: ModelRequest) -> Turn:
        nonlocal fork
        step = len(model.main_requests)
        fork = fork or re.search(r"Primary working directory: ([^\s\\\"]+)", request.body_text).group(1)
        plan = [
            lambda: Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
            lambda: Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline",
                                           "run_dir": last_run_dir(request)}),
            lambda: Turn.tool("Read", {"file_path": f"{fork}/model.py"}),
            lambda: Turn.tool("Edit", {"file_path": f"{fork}/model.py", "old_string": "step_fn = train_step",
                                       "new_string": "step_fn = jax.jit(train_step)"}),
            lambda: Turn.tool("Bash", {"command": "git commit -qam 'jit the step'"}),
            lambda: Turn.tool(RUN_BENCHMARK, {"description": "jit the step"}),
            lambda: Turn.tool(RECORD_RUN, {"status": "keep", "description": "jit the step",
                                           "run_dir": last_run_dir(request)}),
        ]
        return plan[step]() if step < len(plan) else Turn.tool("Bash", {"command": "true"})

    model.set_script(script)
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 8, timeout=180, what="both runs recorded")
        snapshot = engine.snapshot()["lanes"]["a"]
    finally:
        await engine.stop()

    rows, warnings = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    assert warnings == []
    assert [(r["run_id"], r["status"], r["description"]) for r in rows] == [
        ("0001", "keep", "baseline"), ("0002", "keep", "jit the step")]
    baseline, jitted = rows[0]["metric"], rows[1]["metric"]
    assert jitted < baseline / 2, (baseline, jitted)
    fork_path = engine.workspace.fork_dir("a")
    head = git(fork_path, "rev-parse", "HEAD").strip()
    assert rows[1]["commit"] == head and rows[0]["commit"] != head
    for row in rows:  # every recorded commit is pinned by a ref
        assert git(fork_path, "rev-parse", f"refs/autoresearch/runs/{row['run_id']}").strip() == row["commit"]
    # The model got the frontier back from record_run.
    answer = json.loads(model.main_requests[7].tool_result_text())
    assert answer["new_best"] is True and answer["best"] == jitted and answer["baseline"] == baseline
    assert answer["change_pct"] < -50
    # The UI's view: one best, the ledger's, with its running-best history.
    assert snapshot["frontier"]["best"] == jitted
    assert snapshot["frontier"]["best_history"] == [baseline, jitted]
    assert "best" not in snapshot["metrics"]  # the live metrics report runs, never a verdict
    assert snapshot["metrics"]["latest_summary"]["step_time_median_s"] * 1e3 == pytest.approx(jitted, rel=1e-3)
    assert snapshot["device"] is None  # no accelerator here: absent, not zero
    recorded = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "run_recorded"]
    assert [e["new_best"] for e in recorded] == [False, True]  # the first run is the baseline


async def test_a_benchmark_longer_than_the_bash_limit_completes_through_the_tool(tmp_path, model):
    bench = ("import json, os, time\ntime.sleep(3)\n"
             "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps({'v': 1, 'kind': 'summary', "
             "'step_time_median_s': 0.25, 'p10_s': 0.24, 'p90_s': 0.26, 'n': 30}) + '\\n')\nprint('bench done')\n")
    config = make_workspace(tmp_path, repo_files={"bench.py": bench},
                            experiment="run_timeout_s = 60")
    # A short Bash default (instead of a long benchmark): Bash gives up after 1 s.
    config.lanes[0].env["BASH_DEFAULT_TIMEOUT_MS"] = "1000"
    config.lanes[0].env["BASH_MAX_TIMEOUT_MS"] = "1000"
    model.set_script([
        Turn.tool("Bash", {"command": "python bench.py"}),
        Turn.tool(RUN_BENCHMARK, {"description": "same benchmark, through the engine"}),
    ])
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 3, timeout=60, what="both answers")
    finally:
        await engine.stop()
    through_bash = model.main_requests[1].tool_result_text()
    through_tool = model.main_requests[2].tool_result_text()
    assert "bench done" not in through_bash  # killed by the Bash timeout
    assert "status=ok" in through_tool and "step_time_ms (median): 250.000" in through_tool
    run_log = (engine.workspace.runs_dir("a") / "0001" / "run.log").read_text()
    assert "bench done" in run_log


async def test_a_hung_benchmark_is_killed_and_reported(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": "import time\nprint('starting', flush=True)\n"
                                                                "time.sleep(60)\n"},
                            experiment="hang_timeout_s = 1.5")
    model.set_script([Turn.tool(RUN_BENCHMARK, {"description": "hangs"})])
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, timeout=60, what="the hung run's answer")
    finally:
        await engine.stop()
    answer = model.main_requests[1].tool_result_text()
    assert "status=hung" in answer and "starting" in answer
    assert "no output and no new metrics" in (engine.workspace.runs_dir("a") / "0001" / "run.log").read_text()


SLOW_BENCH = "import time\nprint('measuring', flush=True)\ntime.sleep(60)\n"


def run_events(engine, run_id: str) -> list[dict]:
    return [e for e in read_events(engine.workspace.events_path("a"))
            if e["type"] in ("run_started", "run_finished") and e.get("run_id") == run_id]


@pytest.mark.parametrize("how", ["stop the lane", "stop the engine"])
async def test_a_run_cut_short_by_a_stop_is_closed_as_cancelled(tmp_path, model, how):
    config = make_workspace(tmp_path, repo_files={"bench.py": SLOW_BENCH})
    model.set_script([Turn.tool(RUN_BENCHMARK, {"description": "slow"})])
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    run_log = engine.workspace.runs_dir("a") / "0001" / "run.log"
    try:
        await wait_until(lambda: run_log.exists() and "measuring" in run_log.read_text(), timeout=60,
                         what="the benchmark running")
        if how == "stop the lane":
            await engine.stop_lane("a")
    finally:
        await engine.stop()
    events = run_events(engine, "0001")
    assert [e["type"] for e in events] == ["run_started", "run_finished"]
    assert events[1]["status"] == "cancelled"
    outcome = json.loads((run_log.parent / "run.json").read_text())
    assert outcome["status"] == "cancelled" and outcome["reason"]
    assert "[autoresearch]" in run_log.read_text()


async def test_a_restart_closes_a_run_the_dead_engine_never_finished(tmp_path, model):
    from autoresearch_tui.engine.core.events import EventLog, make_event

    config = make_workspace(tmp_path)
    workspace_runs = tmp_path / "wiki" / "experiment" / "exp" / "a" / "runs"
    # What kill -9 during a run leaves: a run_started event, a folder holding only the command.
    (workspace_runs / "0001").mkdir(parents=True)
    (workspace_runs / "0001" / "run.log").write_text("$ python bench.py\n")
    log = EventLog(workspace_runs.parent / "events.jsonl")
    log.append(make_event("a", "run_started", run_id="0001", run_dir=str(workspace_runs / "0001"),
                          description="the interrupted one", args=""))
    log.close()
    model.set_script(lambda request: Turn.tool("Bash", {"command": "sleep 0.2"}))
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(run_events(engine, "0001")) == 2, timeout=60, what="the run closed")
    finally:
        await engine.stop()
    finished = run_events(engine, "0001")[1]
    assert finished["status"] == "cancelled" and "engine stopped during the run" in finished["reason"]
    assert finished["description"] == "the interrupted one"
    assert json.loads((workspace_runs / "0001" / "run.json").read_text())["status"] == "cancelled"
    model.clear_requests()
    engine = engine_for(config, model, tmp_path)  # closed once, not at every start
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 1, timeout=60, what="the lane started again")
    finally:
        await engine.stop()
    assert len(run_events(engine, "0001")) == 2


PROFILING_BENCH = """\
import gzip, json, os, sys
run_dir = os.environ["AUTORESEARCH_RUN_DIR"]
with open(os.environ["AUTORESEARCH_METRICS"], "a") as out:
    out.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": 0.005}) + "\\n")
    if "--profile" in sys.argv:
        folder = os.path.join(run_dir, "profile", "plugins", "profile", "2026_01_01_00_00_00")
        os.makedirs(folder)
        events = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}}]
        events += [{"ph": "X", "pid": 1, "tid": 1, "name": "fusion", "ts": i * 100, "dur": 90,
                    "args": {"hlo_op": "fusion.1", "hlo_module": "jit_step", "run_id": str(i)}} for i in range(5)]
        with gzip.open(os.path.join(folder, "host.trace.json.gz"), "wt") as trace:
            json.dump({"traceEvents": events}, trace)
        out.write(json.dumps({"v": 1, "kind": "profile", "dir": os.path.relpath(folder, run_dir)}) + "\\n")
"""


async def test_a_run_with_args_profile_gives_the_lane_a_profile_summary(tmp_path, model):
    config = make_workspace(tmp_path, repo_files={"bench.py": PROFILING_BENCH})
    model.set_script([Turn.tool(RUN_BENCHMARK, {"description": "profiled", "args": "--profile"})]
                     + [Turn.tool("Bash", {"command": "sleep 0.2"})] * 30)
    engine = engine_for(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: (engine.snapshot()["lanes"]["a"]["metrics"].get("latest_profile") or {})
                         .get("summary"), timeout=60, what="the profile summary")
        profile = engine.snapshot()["lanes"]["a"]["metrics"]["latest_profile"]
    finally:
        await engine.stop()
    assert profile["run_id"] == "0001" and profile["summary"]["steps"] == 5
    summaries = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "profile_summary"]
    assert summaries and summaries[0]["summary"]["top_ops"][0]["name"] == "fusion.1"
