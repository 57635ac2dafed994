"""Device leases end to end: the real SDK and CLI against the scripted model, the engine's
run_benchmark tool, real benchmark processes that log when they start and end (to prove
that runs do or do not overlap) and what environment they got.

There is no TPU here: the TPU tests force `platform = "tpu"` with the chips given, and check
the variables in the benchmark's real environment; no TPU process is started."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from autoresearch_tui.cli.status import status_lines
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.core.ledger import read_ledger
from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.client import EngineClient
from autoresearch_tui.engine.protocol import socket_path
from autoresearch_tui.engine.runs.record import lane_frontier
from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"
RECORD_RUN = "mcp__autoresearch__record_run"

# Logs one JSON line when it starts and one when it ends (wall times, slot, cores, the
# device variables it got), sleeps argv[1] seconds, writes a summary record.
BENCH = r'''
import json, os, sys, time
PREFIXES = ("AUTORESEARCH_SLOT", "AUTORESEARCH_CHIPS", "TPU_", "CLOUD_TPU", "CUDA_", "JAX_")
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.3
def log(**fields):
    line = json.dumps({"lane": os.environ["AUTORESEARCH_LANE"], "run_id": os.environ["AUTORESEARCH_RUN_ID"],
                       "slot": os.environ.get("AUTORESEARCH_SLOT"), "t": time.time(), **fields})
    with open(os.environ["BENCH_LOG"], "a") as handle:
        handle.write(line + "\n")
log(event="start", cores=sorted(os.sched_getaffinity(0)),
    env={k: v for k, v in os.environ.items() if k.startswith(PREFIXES)})
time.sleep(seconds)
log(event="end")
summary = {"v": 1, "kind": "summary", "step_time_median_s": 0.01, "n": 30}
if os.environ.get("BENCH_PLATFORM"):
    summary.update(platform=os.environ["BENCH_PLATFORM"], device_kind="cpu")
open(os.environ["AUTORESEARCH_METRICS"], "a").write(json.dumps(summary) + "\n")
'''


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


def base_env(tmp_path: Path, model: ScriptedModelServer) -> dict[str, str]:
    """The engine's environment: the scripted model's, no device variables, and BENCH_LOG."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "CUDA_", "TPU_"))}
    return {**env, **cli_env(tmp_path / "home", model.base_url), "BENCH_LOG": str(tmp_path / "bench-log.jsonl")}


def workspace_with_log(tmp_path: Path, lanes, devices: str, **extra):
    config = make_workspace(tmp_path, lanes=lanes, repo_files={"bench.py": BENCH}, devices=devices,
                            experiment="hang_timeout_s = 120", **extra)
    return config, tmp_path / "bench-log.jsonl"


def runs(log: Path) -> list[dict]:
    """One entry per finished run: lane, run_id, slot, cores, env, start, end."""
    if not log.exists():
        return []
    starts, out = {}, []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        key = (record["lane"], record["run_id"])
        if record["event"] == "start":
            starts[key] = record
        elif key in starts:
            out.append({**starts[key], "start": starts[key]["t"], "end": record["t"]})
    return out


def benchmark_loop(args: str | list[str] = "0.3"):
    """Each lane: run_benchmark, record_run(discard) with the run it got, again, forever."""
    def script(request: ModelRequest) -> Turn:
        result = request.tool_result_text()
        match = re.search(r"run_dir=(\S+) status=", result)
        if match:
            return Turn.tool(RECORD_RUN, {"status": "discard", "description": "try", "run_dir": match.group(1)})
        return Turn.tool(RUN_BENCHMARK, {"description": "try", "args": args if isinstance(args, str) else args[0]})
    return script


def overlapping(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def overlapping_pairs(finished: list[dict]) -> list[tuple[dict, dict]]:
    return [(x, y) for i, x in enumerate(finished) for y in finished[i + 1:] if overlapping(x, y)]


async def test_one_slot_three_lanes_no_two_runs_overlap_and_every_lane_progresses(tmp_path, model):
    config, log = workspace_with_log(tmp_path, ("a", "b", "c"), "slots = 1")
    model.set_script(benchmark_loop("0.4"))
    engine = Engine(config, env=base_env(tmp_path, model), backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: all(sum(r["lane"] == lane for r in runs(log)) >= 2 for lane in "abc"),
                         timeout=150, what="two finished runs in every lane")
    finally:
        await engine.stop()
    finished = sorted(runs(log), key=lambda r: r["start"])
    for earlier, later in zip(finished, finished[1:]):
        assert earlier["end"] <= later["start"], (earlier, later)  # never two at once
    waits = [e for lane in "abc" for e in read_events(engine.workspace.events_path(lane))
             if e["type"] == "lease_wait"]
    assert waits, "with three lanes on one slot, some run must have queued"
    answers = [r.tool_result_text() for r in model.main_requests if "for the device" in r.tool_result_text()]
    waited = [float(m) for a in answers for m in re.findall(r"waited (\d+\.\d) s for the device", a)]
    assert waited and max(waited) > 0.1  # the agent is told how long its run waited
    held = {(e["lane"], e["run_id"]): e["held_s"] for lane in "abc"
            for e in read_events(engine.workspace.events_path(lane)) if e["type"] == "lease_released"}
    for run in finished:  # each lease covered its whole run
        assert held[(run["lane"], run["run_id"])] >= run["end"] - run["start"]
    assert engine.leases.status()["slots"][0]["state"] == "free"


async def test_two_slots_let_runs_overlap_on_distinct_slots_and_cores(tmp_path, model):
    config, log = workspace_with_log(tmp_path, ("a", "b"), 'platform = "cpu"\nchips = 2\nslots = 2')
    model.set_script(benchmark_loop("2.5"))
    engine = Engine(config, env=base_env(tmp_path, model), backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: overlapping_pairs(runs(log)), timeout=150, what="two runs at once")
    finally:
        await engine.stop()
    pairs = overlapping_pairs(runs(log))
    assert pairs
    for x, y in pairs:
        assert x["slot"] != y["slot"]
        assert set(x["cores"]).isdisjoint(y["cores"]) and len(x["cores"]) == 1  # pinned to its core


async def test_a_tpu_slot_layout_reaches_the_runs_environment_and_the_agent_shell_has_no_device(tmp_path, model):
    # No TPU here: platform and chips are forced; the variables are read in the run's real env.
    config, log = workspace_with_log(tmp_path, ("a", "b"), 'platform = "tpu"\nchips = 8\nslots = 2')
    shell_seen: list[str] = []

    def script(request: ModelRequest) -> Turn:
        if not request.tool_results():
            return Turn.tool("Bash", {"command": 'echo "shell:${JAX_PLATFORMS-unset}:${CUDA_VISIBLE_DEVICES-unset}"'})
        if "shell:" in request.tool_result_text():
            shell_seen.append(request.tool_result_text().strip())
        return benchmark_loop("2.0")(request)

    model.set_script(script)
    engine = Engine(config, env=base_env(tmp_path, model), backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: {r["slot"] for r in runs(log)} == {"0", "1"}, timeout=150,
                         what="runs on both slots")
    finally:
        await engine.stop()
    for run in runs(log):
        chips = "0,1,2,3" if run["slot"] == "0" else "4,5,6,7"
        port = str(8476 + int(run["slot"]))
        assert run["env"] == {
            "AUTORESEARCH_SLOT": run["slot"], "AUTORESEARCH_CHIPS": chips, "TPU_VISIBLE_CHIPS": chips,
            "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_CHIPS_PER_PROCESS_BOUNDS": "2,2,1",
            "TPU_PROCESS_PORT": port, "TPU_PROCESS_ADDRESSES": f"localhost:{port}", "CLOUD_TPU_TASK_ID": "0",
        }  # and no JAX_PLATFORMS=cpu: only the agent's shell is kept off the device
    assert shell_seen and all(s == "shell:cpu:" for s in shell_seen)
    program = model.main_requests[0].body_text
    assert "run_benchmark" in program and "is how to use the accelerator" in program


async def test_a_run_that_fell_back_to_the_cpu_under_a_tpu_config_is_not_ok_and_never_a_baseline(tmp_path, model):
    config, log = workspace_with_log(tmp_path, ("a",), 'platform = "tpu"\nchips = 1')
    config.lanes[0].env["BENCH_PLATFORM"] = "cpu"  # what jax reports when the TPU was busy
    model.set_script([
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline", "run_dir": "0001"}),
    ])
    engine = Engine(config, env=base_env(tmp_path, model), backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 3, timeout=90, what="the run and its record")
    finally:
        await engine.stop()
    answer = model.main_requests[1].tool_result_text()
    assert "status=wrong_device" in answer
    assert "ran on cpu (cpu), expected tpu: the accelerator was busy or missing" in answer
    recorded = json.loads(model.main_requests[2].tool_result_text())
    assert recorded["status"] == "crash" and recorded["baseline"] is None
    assert any("recorded as crash, not keep" in w for w in recorded["warnings"])
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    assert [r["status"] for r in rows] == ["crash"]
    frontier, _ = lane_frontier(engine.workspace, "a")
    assert frontier.baseline is None and frontier.best is None


async def test_a_lane_stopped_while_queued_leaves_the_queue(tmp_path, model):
    config, log = workspace_with_log(tmp_path, ("a", "b"), "slots = 1")
    model.set_script(benchmark_loop("30"))
    engine = Engine(config, env=base_env(tmp_path, model), backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: len(engine.leases.status()["queue"]) == 1, timeout=90,
                         what="one lane running, the other queued")
        queued = engine.leases.status()["queue"][0]["lane"]
        running = next(lane for lane in "ab" if lane != queued)
        shown = "\n".join(status_lines(engine.snapshot()))
        assert re.search(rf"^{queued}\s+claude\s+waiting for device \(1st in queue\)", shown, re.M), shown
        assert f"leased by {running} (benchmark)" in shown
        await engine.stop_lane(queued)
        assert engine.leases.status()["queue"] == []
        assert engine.lanes[queued].state == "stopped"
        assert engine.leases.status()["slots"][0]["lane"] == running  # the running run goes on
        cancelled = [e for e in read_events(engine.workspace.events_path(queued)) if e["type"] == "lease_cancelled"]
        assert len(cancelled) == 1 and "is stopping" in cancelled[0]["reason"]
    finally:
        await engine.stop()
    assert not any(r["lane"] == queued for r in runs(log))  # its run never started


async def test_kill_9_mid_run_then_restart_leaves_no_stale_lease(tmp_path, model):
    config, log = workspace_with_log(tmp_path, ("a", "b"), 'platform = "cpu"\nchips = 2\nslots = 2')
    workspace = Workspace(config)
    bench_args = ["30"]
    model.set_script(benchmark_loop(bench_args))
    env = base_env(tmp_path, model)
    pid = spawn_daemon(config, env=env)
    try:
        def started() -> int:
            return sum(1 for line in log.read_text().splitlines() if '"start"' in line) if log.exists() else 0

        await wait_until(lambda: started() >= 2, timeout=90, what="both slots busy")
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: running_pid(workspace) is None, timeout=20, what="the engine to be gone")
        bench_args[0] = "0.5"
        killed_at = max(json.loads(line)["t"] for line in log.read_text().splitlines())
        pid = spawn_daemon(config, env=env)
        await wait_until(lambda: all(any(r["lane"] == lane and r["start"] > killed_at for r in runs(log))
                                     for lane in "ab"), timeout=120, what="a new run in each lane")
        client = await EngineClient.connect(socket_path(config.workspace))
        snapshot = (await client.request("snapshot"))["snapshot"]
        await client.request("stop_engine")
        await client.close()
        await wait_until(lambda: running_pid(workspace) is None, timeout=60, what="engine exit")
    finally:
        if running_pid(workspace):
            os.kill(running_pid(workspace), signal.SIGKILL)
    assert len(snapshot["devices"]["slots"]) == 2
    for lane in "ab":
        acquired = [e for e in read_events(workspace.events_path(lane))
                    if e["type"] == "lease_acquired" and e["ts"] > killed_at]
        # The restarted engine took a slot for each lane at once: nothing was left held.
        assert acquired and acquired[0]["waited_s"] < 0.5, acquired
