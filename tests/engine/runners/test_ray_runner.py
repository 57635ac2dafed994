"""Benchmarks on a real Ray cluster (issue 15), end to end.

A real 2-node cluster (head + worker2, one custom `TPU` each, Ray 2.60.0) runs inside a
network and PID namespace the tests create (tests/engine/runners/raycluster.py). Each test's
scenario runs the real engine (real SDK and CLI against the scripted model, real forks and
ledgers) inside the same namespaces, so nothing leaves loopback; the benchmarks are real
processes on the Ray workers, which cannot import autoresearch_tui. The engine never
imports Ray: its bridge process is the Ray driver.

Skipped, with the reason, where Ray is not installed (`pip install 'autoresearch-tui[ray]'`)
or no network namespace can be made. The scenario functions (`scenario_*`) run in the child
process; the tests assert on what they return and on the files they leave.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.runners.raycluster import SCENARIO_RUNNER, ray_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(420),
    pytest.mark.skipif(ray_available() is not None, reason=f"no Ray test cluster: {ray_available()}"),
]

MODULE = str(Path(__file__).resolve())
RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"
RECORD_RUN = "mcp__autoresearch__record_run"

# Logs one JSON line when it starts and one when it ends (lane, run, node, the environment
# it got), runs argv[1] seconds of "steps", writes step records and a summary.
BENCH = r'''
import json, os, sys, time
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
def log(**fields):
    with open(os.environ["BENCH_LOG"], "a") as handle:
        handle.write(json.dumps({"lane": os.environ.get("AUTORESEARCH_LANE"), "run_id": os.environ["AUTORESEARCH_RUN_ID"],
                                 "node": os.environ.get("AUTORESEARCH_NODE"), "t": time.time(), **fields}) + "\n")
log(event="start", cwd=os.getcwd(), env={k: v for k, v in os.environ.items()
    if k.startswith(("AUTORESEARCH_", "TPU_", "ANTHROPIC_", "CLAUDE_", "BENCH_", "HOME"))})
print("bench started on", os.environ.get("AUTORESEARCH_NODE"), flush=True)
steps = []
with open(os.environ["AUTORESEARCH_METRICS"], "a") as metrics:
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter(); sum(range(20000)); dt = time.perf_counter() - t
        steps.append(dt)
        metrics.write(json.dumps({"v": 1, "kind": "step", "step": len(steps), "step_time_s": dt, "warmup": False}) + "\n")
        metrics.flush()
        time.sleep(0.1)
    steps.sort()
    metrics.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": steps[len(steps) // 2], "n": len(steps)}) + "\n")
log(event="end")
print("bench done", flush=True)
'''

# A real jax profile (CPU): 5 traced steps, then the summary and the profile record.
PROFILE_BENCH = r'''
import glob, json, os, time
import jax, jax.numpy as jnp
run_dir = os.environ["AUTORESEARCH_RUN_DIR"]
step = jax.jit(lambda x: jnp.tanh(x @ x).sum())
x = jnp.ones((64, 64))
step(x).block_until_ready()
times = []
with open(os.environ["AUTORESEARCH_METRICS"], "a") as metrics:
    with jax.profiler.trace(os.path.join(run_dir, "profile")):
        for i in range(5):
            t = time.perf_counter(); step(x).block_until_ready(); times.append(time.perf_counter() - t)
            metrics.write(json.dumps({"v": 1, "kind": "step", "step": i, "step_time_s": times[-1], "warmup": False}) + "\n")
            metrics.flush()
            time.sleep(0.3)
    times.sort()
    metrics.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": times[2], "n": 5}) + "\n")
    found = sorted(glob.glob(os.path.join(run_dir, "profile", "plugins", "profile", "*")))
    metrics.write(json.dumps({"v": 1, "kind": "profile", "dir": os.path.relpath(found[-1], run_dir)}) + "\n")
print("profiled", flush=True)
'''


# ------------------------------------------------------------------------- scenario helpers
# (these run in the child process, inside the cluster's namespaces)

def _workspace(ctx, lanes, *, bench: str = BENCH, runner: str = "", experiment: str = "", files=None):
    from tests.support import make_workspace

    root = ctx.workdir / "ws"
    if (root / "autoresearch.toml").exists():  # a restarted engine: same workspace
        from autoresearch_tui.engine.config import load_config
        config = load_config(root / "autoresearch.toml")
    else:
        config = make_workspace(
            root, lanes=lanes, repo_files={"bench.py": bench, **(files or {})},
            experiment=f"hang_timeout_s = 120\nrun_timeout_s = 600\n{experiment}",
            runner=f'kind = "ray"\naddress = "{ctx.address}"\nresources = {{ TPU = 1 }}\nlost_after_s = 5\n{runner}')
    for lane in config.lanes:  # the lane's env travels to the worker; the engine host's does not
        lane.env["BENCH_LOG"] = str(ctx.workdir / "bench-log.jsonl")
    return config


def _engine(ctx, config, model):
    from autoresearch_tui.engine.demo.scripted_model import cli_env
    from autoresearch_tui.engine.supervisor import Engine

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "TPU_", "RAY_"))}
    env.update(cli_env(ctx.workdir / f"home-{os.getpid()}", model.base_url))
    return Engine(config, env=env, backoff_base_s=0.05)


def _loop(args=lambda n: "0.5", status="discard"):
    """Each lane: run_benchmark, record_run(status) with the run it got, again, forever;
    `args(n)` gives the n-th run's arguments (0-based, per lane)."""
    from autoresearch_tui.engine.demo.scripted_model import Turn

    def script(request):
        result = request.tool_result_text()
        match = re.search(r"run_dir=(\S+) status=(\w+)", result)
        if match:
            recorded = "crash" if match.group(2) != "ok" else status
            return Turn.tool(RECORD_RUN, {"status": recorded, "description": "try", "run_dir": match.group(1)})
        n = sum(1 for message in request.messages if message.get("role") == "assistant"
                and isinstance(message.get("content"), list) for block in message["content"]
                if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == RUN_BENCHMARK)
        return Turn.tool(RUN_BENCHMARK, {"description": f"try {n}", "args": args(n)})
    return script


def _events(engine, lane, *types):
    from autoresearch_tui.engine.core.events import read_events

    return [e for e in read_events(engine.workspace.events_path(lane)) if not types or e["type"] in types]


def _bench_log(ctx) -> list[dict]:
    path = ctx.workdir / "bench-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _until(predicate, timeout: float, what: str):
    from tests.support import wait_until

    await wait_until(predicate, timeout=timeout, what=what)


class _Sampler:
    """What a client would see, sampled every 0.2 s: lane lease texts and the header's cluster text."""

    def __init__(self, engine):
        from autoresearch_tui.engine.core.render import cluster_text

        self.engine, self.cluster_text = engine, cluster_text
        self.lease_texts: list[str] = []
        self.cluster_texts: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        while True:
            snapshot = self.engine.snapshot()
            for lane in snapshot["lanes"].values():
                text = (lane.get("lease") or {}).get("text")
                if text and text not in self.lease_texts:
                    self.lease_texts.append(text)
            text = self.cluster_text(snapshot.get("cluster"))
            if text and text not in self.cluster_texts:
                self.cluster_texts.append(text)
            await asyncio.sleep(0.2)

    def stop(self):
        self.task.cancel()


# ------------------------------------------------------------------------- scenarios

async def scenario_three_lanes(ctx):
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer

    config = _workspace(ctx, ("a", "b", "c"))
    with ScriptedModelServer() as model:
        model.set_script(_loop(lambda n: "2.5"))
        engine = _engine(ctx, config, model)
        await engine.start()
        sampler = _Sampler(engine)
        try:
            await _until(lambda: sum(r["event"] == "end" for r in _bench_log(ctx)) >= 6, 300, "six finished runs")
        finally:
            sampler.stop()
            await engine.stop()
    queued = [e for lane in "abc" for e in _events(engine, lane, "cluster_started")]
    return {"log": _bench_log(ctx), "lease_texts": sampler.lease_texts, "cluster_texts": sampler.cluster_texts,
            "started": queued, "ray_in_engine": "ray" in sys.modules,
            "answers": [r.tool_result_text() for r in model.main_requests if "status=" in r.tool_result_text()][:4]}


async def scenario_metrics_and_profile(ctx):
    from autoresearch_tui.engine.core.ledger import read_ledger
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn

    config = _workspace(ctx, ("a",), bench=PROFILE_BENCH)
    with ScriptedModelServer() as model:
        model.set_script([
            Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
            Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline", "run_dir": "0001"}),
        ])
        engine = _engine(ctx, config, model)
        await engine.start()
        try:
            await _until(lambda: len(model.main_requests) >= 3, 240, "the run and its record")
            await _until(lambda: _events(engine, "a", "profile_summary"), 60, "the profile summary")
        finally:
            await engine.stop()
    run_dir = engine.workspace.runs_dir("a") / "0001"
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    return {
        "answer": model.main_requests[1].tool_result_text(),
        "recorded": model.main_requests[2].tool_result_text(),
        "rows": [{k: v for k, v in r.items() if k != "line"} for r in rows],
        "metrics": (run_dir / "metrics.jsonl").read_text(),
        "run_log": (run_dir / "run.log").read_text(),
        "run_json": json.loads((run_dir / "run.json").read_text()),
        "files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()),
        "events": [{k: e.get(k) for k in ("type", "ts", "kind", "summary", "error", "status", "node")}
                   for e in _events(engine, "a", "metric", "profile_summary", "run_finished", "cluster_started")],
        "ray_in_engine": "ray" in sys.modules,
    }


async def scenario_lane_stop(ctx):
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer

    config = _workspace(ctx, ("a",), bench=BENCH + "\n", files={
        "long.sh": "sleep 3171 &\nsetsid sh -c 'sleep 3172' &\nexec python bench.py 300\n"})
    config.experiment.bench_command = "sh long.sh"
    with ScriptedModelServer() as model:
        model.set_script(_loop(lambda n: ""))
        engine = _engine(ctx, config, model)
        await engine.start()
        try:
            await _until(lambda: any(r["event"] == "start" for r in _bench_log(ctx)), 180, "the remote run to start")
            await asyncio.sleep(1.0)
            before = ctx.processes("sleep 317")
            started = time.monotonic()
            await engine.stop_lane("a")
            stopped_s = time.monotonic() - started
            after = ctx.processes("sleep 317")  # right when the stop returned
        finally:
            await engine.stop()
    run_dir = engine.workspace.runs_dir("a") / "0001"
    return {"before": before, "after": after, "stopped_s": stopped_s,
            "run_json": json.loads((run_dir / "run.json").read_text()), "run_log": (run_dir / "run.log").read_text()}


async def scenario_worker_dies(ctx):
    from autoresearch_tui.engine.core.ledger import read_ledger
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer

    # Hold head's TPU with a plain Ray driver of the test (not the engine), so the lane's
    # first run can only go to worker2, the node this test kills.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_HEAD, ctx.address], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding", "the head's TPU could not be held"
    config = _workspace(ctx, ("a",))
    with ScriptedModelServer() as model:
        model.set_script(_loop(lambda n: "120" if n == 0 else "0.5"))
        engine = _engine(ctx, config, model)
        await engine.start()
        try:
            await _until(lambda: any(r["event"] == "start" for r in _bench_log(ctx)), 180, "the first run to start")
            started = _events(engine, "a", "cluster_started")
            killed = ctx.cluster("kill-node", "worker2")
            t_kill = time.monotonic()
            await _until(lambda: _events(engine, "a", "run_finished"), 120, "the first run to end")
            crash_s = time.monotonic() - t_kill
            holder.stdin.close()  # frees the head
            holder.wait(timeout=60)
            await _until(lambda: len(_events(engine, "a", "run_finished")) >= 2, 180, "the next run")
            await _until(lambda: len(read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")[0]) >= 2, 60,
                         "both runs recorded")
        finally:
            await engine.stop()
            if holder.poll() is None:
                holder.kill()
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    return {"started": started, "killed_rc": killed.returncode, "crash_s": crash_s,
            "finished": _events(engine, "a", "run_finished")[:2],
            "nodes_started": [e.get("node") for e in _events(engine, "a", "cluster_started")][:2],
            "rows": [{k: v for k, v in r.items() if k != "line"} for r in rows][:2],
            "run_log": (engine.workspace.runs_dir("a") / "0001" / "run.log").read_text()}


HOLD_HEAD = r'''
import sys, time, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n.get("NodeName") == "head")
@ray.remote(num_cpus=0, resources={"TPU": 1})
class Hold:
    def ping(self): return 1
hold = Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote()
ray.get(hold.ping.remote(), timeout=120)
print("holding", flush=True)
sys.stdin.read()
'''


async def scenario_cluster_stops(ctx):
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer

    config = _workspace(ctx, ("a",))
    with ScriptedModelServer() as model:
        model.set_script(_loop(lambda n: "120" if n == 0 else "0.5"))
        engine = _engine(ctx, config, model)
        await engine.start()
        sampler = _Sampler(engine)
        try:
            await _until(lambda: any(r["event"] == "start" for r in _bench_log(ctx)), 180, "the first run to start")
            stop = ctx.cluster("stop")
            t_stop = time.monotonic()
            await _until(lambda: _events(engine, "a", "run_finished"), 120, "the run to end")
            crash_s = time.monotonic() - t_stop
            await _until(lambda: len(_events(engine, "a", "run_finished")) >= 2, 120, "a run while the cluster is away")
            alive = engine.snapshot()  # the engine answers
            away = dict(alive["cluster"])
            restart = ctx.cluster("start")
            await _until(lambda: any(e["status"] == "ok" for e in _events(engine, "a", "run_finished")), 240,
                         "a run after the cluster came back")
        finally:
            sampler.stop()
            await engine.stop()
    answers = [r.tool_result_text() for r in model.main_requests if "status=" in r.tool_result_text()]
    return {"stop_rc": stop.returncode, "restart_rc": restart.returncode, "crash_s": crash_s,
            "finished": [{k: e.get(k) for k in ("status", "reason", "run_id")} for e in _events(engine, "a", "run_finished")],
            "answers": answers, "cluster_away": away, "lease_texts": sampler.lease_texts,
            "cluster_texts": sampler.cluster_texts, "lane_state": alive["lanes"]["a"]["state"],
            "errors": _events(engine, "a", "error")}


async def scenario_engine_forever(ctx):
    """The engine that the kill -9 test kills: one lane, one long run, forever."""
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer

    config = _workspace(ctx, ("a",), files={
        "long.sh": "setsid sh -c 'sleep 3181 & sleep 3182' &\nexec python bench.py 300\n"})
    config.experiment.bench_command = "sh long.sh"
    with ScriptedModelServer() as model:
        model.set_script(_loop(lambda n: ""))
        engine = _engine(ctx, config, model)
        await engine.start()
        await asyncio.sleep(3600)


async def scenario_kill_9_and_restart(ctx):
    from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn

    first = subprocess.Popen([sys.executable, str(SCENARIO_RUNNER), MODULE, "scenario_engine_forever",
                              str(ctx.workdir), "{}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await _until(lambda: any(r["event"] == "start" for r in _bench_log(ctx)), 180, "the first engine's run to start")
    await _until(lambda: len(ctx.processes("sleep 318")) >= 2, 30, "the run's escaped processes")
    first.send_signal(signal.SIGKILL)
    first.wait()
    await asyncio.sleep(3)  # Ray kills the dead driver's actor; the setsid'ed session survives
    left = ctx.processes("sleep 318")
    config = _workspace(ctx, ("a",))
    with ScriptedModelServer() as model:
        model.set_script(lambda request: Turn.text("waiting"))
        engine = _engine(ctx, config, model)
        restarted = time.monotonic()
        await engine.start()
        try:
            await _until(lambda: not ctx.processes("sleep 318"), 120, "the leftovers to be reaped")
            reaped_s = time.monotonic() - restarted
            # Who reaps depends on where the run's processes live: here the "remote" node shares
            # this host, so the lane's own restart reaper (owner tag, recorded groups) can get
            # there before the runner's reap on the cluster; on a real remote node only the latter can.
            await _until(lambda: any(e.get("where") in ("runner", "restart") for e in _events(engine, "a", "warning")),
                         30, "the reap warning")
        finally:
            await engine.stop()
    return {"left_after_kill": left, "reaped_s": reaped_s,
            "warnings": [e["message"] for e in _events(engine, "a", "warning") if e.get("where") in ("runner", "restart")]}


async def scenario_workers_lack_the_package(ctx):
    code = ("import sys, ray\nray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "@ray.remote(num_cpus=0)\ndef probe():\n"
            "    try:\n        import autoresearch_tui\n        return 'imported'\n"
            "    except ModuleNotFoundError as exc:\n        return str(exc)\n"
            "print(ray.get(probe.remote(), timeout=120))")
    proc = subprocess.run([sys.executable, "-c", code, ctx.address], capture_output=True, text=True, timeout=180)
    return {"out": proc.stdout.strip(), "err": proc.stderr[-2000:]}


# ------------------------------------------------------------------------- the tests

def test_the_test_cluster_workers_cannot_import_autoresearch_tui(ray_cluster, tmp_path):
    # What makes every other test here honest about shipping the worker code by value.
    out = ray_cluster.run_scenario(MODULE, "scenario_workers_lack_the_package", tmp_path)
    assert "not installed on this Ray worker" in out["out"], out


def test_three_lanes_never_exceed_the_clusters_tpus_and_overlapping_runs_are_on_different_nodes(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_three_lanes", tmp_path, timeout=400)
    starts = {(r["lane"], r["run_id"]): r for r in out["log"] if r["event"] == "start"}
    runs = [{**starts[(r["lane"], r["run_id"])], "end": r["t"]} for r in out["log"]
            if r["event"] == "end" and (r["lane"], r["run_id"]) in starts]
    assert len(runs) >= 6 and {r["lane"] for r in runs} == {"a", "b", "c"}
    for run in runs:
        at_once = [o for o in runs if o is not run and o["t"] < run["end"] and run["t"] < o["end"]]
        assert len(at_once) <= 1, (run, at_once)  # one TPU per node, two nodes: two runs at most
        assert all(o["node"] != run["node"] for o in at_once), (run, at_once)
    assert len({r["node"] for r in runs}) == 2
    # Ray queued the third lane's run, and a client saw it queued with what it waits for.
    assert any(t.startswith("queued on the cluster for TPU=1") for t in out["lease_texts"]), out["lease_texts"]
    assert any(re.match(r"on node (head|worker2) \(127\.0\.0\.1\), TPU 0", t) for t in out["lease_texts"])
    assert any(t.startswith("cluster TPU 0/2 free") and "2 nodes" in t for t in out["cluster_texts"]), out["cluster_texts"]
    assert max(e["queued_s"] for e in out["started"]) > 1.0
    # Only what the engine adds travels: no key, no HOME from the engine's host.
    env = runs[0]["env"]
    assert env["BENCH_LOG"] and env["AUTORESEARCH_LANE"] in "abc" and env["TPU_VISIBLE_CHIPS"] == "0"
    assert not [k for k in env if k.startswith(("ANTHROPIC_", "CLAUDE_"))]
    assert "AUTORESEARCH_LANE_DIR" not in env and "home-" not in env.get("HOME", "")
    assert "/autoresearch-ray/ws-" in runs[0]["cwd"]  # a fresh folder on the worker, not the fork
    assert "on the Ray cluster" in out["answers"][0]
    assert out["ray_in_engine"] is False


def test_metrics_and_a_real_profile_come_back_and_the_ledger_records_the_measured_value(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_metrics_and_profile", tmp_path)
    records = [json.loads(line) for line in out["metrics"].splitlines()]
    summary = next(r for r in records if r["kind"] == "summary")
    profile = next(r for r in records if r["kind"] == "profile")
    assert [r["kind"] for r in records] == ["step"] * 5 + ["summary", "profile"]  # the worker's file, whole
    assert out["rows"][0]["status"] == "keep"
    assert out["rows"][0]["step_time_ms"] == pytest.approx(summary["step_time_median_s"] * 1000, rel=1e-6)
    assert out["rows"][0]["profile"] == f"runs/0001/{profile['dir']}"
    assert any(f.startswith(profile["dir"] + "/") and f.endswith(".xplane.pb") for f in out["files"])
    assert "run.json" in out["files"] and "profiled" in out["run_log"]
    summaries = [e for e in out["events"] if e["type"] == "profile_summary"]
    assert summaries and summaries[0]["summary"] and summaries[0]["summary"]["steps"] == 5, summaries
    assert not any(e["type"] == "profile_summary" and e["error"] for e in out["events"])
    # step metrics reached the engine's host while the run was still going
    finished = next(e for e in out["events"] if e["type"] == "run_finished")
    steps = [e for e in out["events"] if e["type"] == "metric" and e["kind"] == "step"]
    assert steps and steps[0]["ts"] < finished["ts"] - 0.5
    placement = out["run_json"]["placement"]
    assert out["run_json"]["status"] == "ok" and placement["runner"] == "ray"
    assert placement["node_name"] in ("head", "worker2") and placement["accelerator_ids"] == {"TPU": ["0"]}
    assert out["run_json"]["commit"] and out["run_json"]["dirty"] == []
    assert "on the Ray cluster" in out["answer"] and "step_time_ms (median)" in out["answer"]
    assert out["ray_in_engine"] is False


def test_a_lane_stop_cancels_a_long_remote_run_within_seconds_and_kills_what_it_started(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_lane_stop", tmp_path)
    assert len(out["before"]) >= 2, out  # the bench's background and setsid'ed children ran
    assert out["stopped_s"] < 10
    assert out["after"] == []  # verified gone when the stop returns, the setsid'ed one included
    assert out["run_json"]["status"] == "cancelled"
    assert re.search(r"\[autoresearch\] killed: the (lane is stopping|engine stopped waiting for the run)",
                     out["run_log"]), out["run_log"][-500:]


def test_a_worker_that_dies_mid_run_is_a_crash_and_the_next_run_succeeds_on_the_other_node(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_worker_dies", tmp_path, timeout=400)
    assert out["killed_rc"] == 0 and out["started"][0]["node"] == "worker2"
    first, second = out["finished"]
    assert first["status"] == "crash"
    assert re.search(r"Actor(Unavailable|Died)Error", first["reason"]), first
    assert out["crash_s"] < 30
    assert second["status"] == "ok"
    assert out["nodes_started"] == ["worker2", "head"]
    assert [r["status"] for r in out["rows"]] == ["crash", "discard"]
    assert "[autoresearch] crash: Actor" in out["run_log"]


def test_a_stopped_cluster_gives_one_clear_error_per_run_and_the_engine_lives_on(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_cluster_stops", tmp_path, timeout=400)
    first, second = out["finished"][:2]
    assert first["status"] == "crash" and first["reason"].startswith("cluster unreachable: 127.0.0.1:6390"), first
    assert out["crash_s"] < 45
    assert second["status"] == "crash"
    assert re.fullmatch(r"cluster unreachable: 127\.0\.0\.1:6390: Connection refused", second["reason"]), second
    assert "Traceback" not in "".join(out["answers"]) and out["errors"] == []
    assert out["lane_state"] == "running"  # the lane goes on; the engine answers
    assert out["cluster_away"]["connection"] == "unreachable"
    assert any("next try in" in t for t in out["lease_texts"]), out["lease_texts"]  # the lane backs off, and says so
    assert any(t.startswith("cluster unreachable: 127.0.0.1:6390") for t in out["cluster_texts"])
    assert out["restart_rc"] == 0 and any(f["status"] == "ok" for f in out["finished"])  # and recovers


def test_kill_9_of_the_engine_then_a_restart_reaps_its_remote_runs(ray_cluster, tmp_path):
    out = ray_cluster.run_scenario(MODULE, "scenario_kill_9_and_restart", tmp_path, timeout=400)
    assert len(out["left_after_kill"]) >= 2, out  # something escaped the dead engine's run
    assert out["reaped_s"] < 60
    assert out["warnings"] and re.search(r"killed on the cluster what a previous engine left running: a\.0001-"
                                         r"|stopped processes a previous engine left in this lane: .*sleep 318",
                                         out["warnings"][0]), out["warnings"]
