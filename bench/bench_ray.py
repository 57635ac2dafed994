"""The Ray runner's overhead per run, against a local run (issue 15).

    python bench/bench_ray.py [--rounds 5] [--mb 50]

Starts the tests' 2-node Ray cluster (head + worker2, one `TPU` each) in its own network
and PID namespace (tests/engine/runners/raycluster.py; needs root, unshare and nsenter, and
`pip install 'autoresearch-tui[ray]'`), then, inside that namespace, measures one benchmark
run through the engine's own path (engine/runs/measure.py measure_run) with a local lease
and with `[runner] kind = "ray"` (resources { TPU = 1 }), alternating, `--rounds` times each.

The benchmark writes `--mb` MB of random bytes into its run folder (the size of a profile
capture; random, so no compression helps), sleeps 1 s and reports when it started and ended.
Figures per run (median, min-max over the rounds):
- submit to start: measure_run called -> the benchmark's first line ran (remote: the code
  shipped as `git archive`, a RunHost actor created, a worker process started, unpacked);
- end to result: the benchmark ended -> measure_run returned with the run folder (remote:
  tarred on the worker, through the object store, unpacked into runs/<run_id>/);
- total, and the overhead (remote - local) per run.
The anchor is the local run, measured in the same session. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH = r'''
import json, os, time
started = time.time()
with open(os.path.join(os.environ["AUTORESEARCH_RUN_DIR"], "blob.bin"), "wb") as blob:
    blob.write(os.urandom(int(os.environ["BENCH_MB"]) << 20))
time.sleep(1.0)
with open(os.environ["AUTORESEARCH_METRICS"], "a") as metrics:
    metrics.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": 1.0,
                              "started_at": started, "ended_at": time.time()}) + "\n")
'''


async def scenario_overhead(ctx):
    """Runs inside the cluster's namespaces (tests/engine/runners/scenario.py)."""
    from autoresearch_tui.engine.config import ExperimentConfig, RunnerConfig
    from autoresearch_tui.engine.devices.leases import LeaseManager
    from autoresearch_tui.engine.devices.slots import Slot
    from autoresearch_tui.engine.runners.ray_runner import RayRunner
    from autoresearch_tui.engine.runs.measure import measure_run
    from tests.support import make_repo

    rounds, mb = int(ctx.params["rounds"]), int(ctx.params["mb"])
    repo = make_repo(ctx.workdir / "repo", {"bench.py": BENCH})
    state = ctx.workdir / "state"
    host_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TPU_", "JAX_"))}
    env = {**host_env, "BENCH_MB": str(mb)}  # what the engine adds travels; the host's own does not
    experiment = ExperimentConfig(bench_command=f"{sys.executable} bench.py", run_timeout_s=600.0,
                                  hang_timeout_s=300.0)
    runner = RayRunner(RunnerConfig(kind="ray", address=ctx.address, resources={"TPU": 1}),
                       ctx.workdir, state, repo, env=host_env)
    connect_started = time.monotonic()
    await runner.connect()
    connect_s = time.monotonic() - connect_started
    leases = LeaseManager([Slot(0, (0,), "cpu", whole_host=True)])
    counter = [0]

    def allocate():
        counter[0] += 1
        run_dir = ctx.workdir / "runs" / f"{counter[0]:04d}"
        run_dir.mkdir(parents=True)
        return f"{counter[0]:04d}", run_dir

    figures: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    try:
        for _ in range(rounds):
            for kind in ("local", "ray"):
                submitted = time.time()
                measured = await measure_run(
                    experiment, leases=leases, platform="cpu", lane="bench", cwd=repo, env=env,
                    allocate=allocate, emit=lambda *a, **k: None, purpose="bench",
                    runner=runner if kind == "ray" else None)
                returned = time.time()
                summary = measured.result.summary or {}
                blob = Path(measured.result.run_dir) / "blob.bin"
                if measured.status != "ok" or not blob.exists() or blob.stat().st_size != mb << 20:
                    raise RuntimeError(f"{kind} run {measured.result.run_id}: {measured.status}: "
                                       f"{measured.result.log_tail[-500:]}")
                figures[kind].append({"submit_to_start_s": summary["started_at"] - submitted,
                                      "end_to_result_s": returned - summary["ended_at"],
                                      "total_s": returned - submitted})
                blob.unlink()  # keep the disk free between rounds
    finally:
        await runner.close()
    return {"connect_s": connect_s, "figures": figures}


def _line(name: str, values: list[float]) -> str:
    return (f"  {name:<18} median {statistics.median(values):6.3f} s   "
            f"min-max {min(values):.3f}-{max(values):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()

    from tests.engine.runners.raycluster import LocalRayCluster, ray_available

    reason = ray_available()
    if reason:
        sys.exit(f"bench_ray: cannot start the test cluster: {reason}")
    started = time.monotonic()
    cluster = LocalRayCluster().start()
    print(f"cluster: head + worker2 up in {time.monotonic() - started:.1f} s at {cluster.address} "
          f"(own network and PID namespace)")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
            out = cluster.run_scenario(str(Path(__file__).resolve()), "scenario_overhead", Path(folder),
                                       timeout=60 + 60 * args.rounds, rounds=args.rounds, mb=args.mb)
    finally:
        cluster.close()
    print(f"bridge connect (ray.init + reap): {out['connect_s']:.2f} s, once per engine")
    print(f"one run: a 1 s bench leaving a {args.mb} MB run folder, {args.rounds} rounds each")
    figures = out["figures"]
    for kind in ("local", "ray"):
        print(f"{kind}:")
        for key in ("submit_to_start_s", "end_to_result_s", "total_s"):
            print(_line(key, [f[key] for f in figures[kind]]))
    local_total = statistics.median(f["total_s"] for f in figures["local"])
    ray_total = statistics.median(f["total_s"] for f in figures["ray"])
    print(f"overhead per run (median total, ray - local): {ray_total - local_total:.3f} s "
          f"({ray_total / local_total:.2f}x the local run)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
