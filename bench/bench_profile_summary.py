"""Summarizer time and peak memory per backend (prints figures; asserts nothing).

    python bench/bench_profile_summary.py [--events 1000000] [--keep DIR]

Captures: the jitted bundled example profiled for 5 and for 50 steps (CPU), and a synthetic
Chrome trace of N events (trace backend only: there is no xplane for it). Each summary runs
in a fresh subprocess: time and peak RSS growth over the imports (ru_maxrss) are measured
without tracemalloc (it slows allocation-heavy code several times); the Python-heap peak
(tracemalloc, blind to jaxlib's C++ allocations) comes from a second run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jax_example"

MEASURE = r"""
import json, resource, sys, time, tracemalloc
import jax.profiler  # imports counted in the baseline
from autoresearch_tui.engine.profile.summary import summarize
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
heap = sys.argv[3] == "heap"
if heap:
    tracemalloc.start()
start = time.perf_counter()
summary = summarize(sys.argv[1], backend=sys.argv[2])
elapsed = time.perf_counter() - start
heap_peak = tracemalloc.get_traced_memory()[1] if heap else 0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": elapsed, "rss_mib": (peak - base) / 1024, "heap_mib": heap_peak / 2**20,
                  "events": summary.event_count, "ops": summary.op_count,
                  "top": summary.top_ops[0].name if summary.top_ops else None,
                  "warnings": len(summary.warnings)}))
"""


def capture(out: Path, steps: int) -> Path:
    code = f"""
import os, sys, jax
sys.path.insert(0, {str(EXAMPLE)!r})
import bench, model
model.step_fn = jax.jit(model.train_step)
os.environ["AUTORESEARCH_RUN_DIR"] = {str(out)!r}
os.environ["AUTORESEARCH_METRICS"] = {str(out / "metrics.jsonl")!r}
bench.main(["--steps", "2", "--warmup", "1", "--profile", "--profile-steps", "{steps}"])
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    record = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"profile"' in l][-1]
    return out / record["dir"]


def synthetic_trace(path: Path, n_events: int) -> Path:
    """A CPU-layout Chrome trace: ops with args.hlo_op on 3 threads, plus end markers."""
    with gzip.open(path, "wt", compresslevel=1) as handle:
        handle.write('{"displayTimeUnit":"ns","metadata":{"highres-ticks":true},"traceEvents":[')
        handle.write('{"ph":"M","pid":701,"name":"process_name","args":{"name":"/host:CPU"}}')
        for tid, name in ((1, "python"), (2, "tf_XLAEigen/1"), (3, "tf_XLAEigen/2")):
            handle.write(f',{{"ph":"M","pid":701,"tid":{tid},"name":"thread_name","args":{{"name":"{name}"}}}}')
        ts = 0.0
        ops = ["ynn_fusion.1", "dot.2", "copy_bitcast_fusion.3", "broadcast_add_fusion.4", "wrapped_exp"]
        for i in range(n_events - 4):
            op = ops[i % len(ops)]
            tid = 1 + i % 3
            if i % 4 == 3:
                handle.write(f',{{"ph":"X","pid":701,"tid":{tid},"ts":{ts:.3f},"dur":0,"name":"end: {op}"}}')
            else:
                handle.write(f',{{"ph":"X","pid":701,"tid":{tid},"ts":{ts:.3f},"dur":{1 + i % 7}.5,"name":"{op}",'
                             f'"args":{{"hlo_module":"jit_step","hlo_op":"{op}","run_id":"{i // 400}"}}}}')
            ts += 1.25
        handle.write("]}")
    return path


def measure(path: Path, backend: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = {}
    for mode in ("time", "heap"):
        result = subprocess.run([sys.executable, "-c", MEASURE, str(path), backend, mode],
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            return {"error": result.stderr.strip().splitlines()[-1]}
        data = json.loads(result.stdout)
        if mode == "time":
            out = data
        else:
            out["heap_mib"] = data["heap_mib"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", help="write the captures here instead of a temp folder")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = []
    for steps in (5, 50):
        start = time.perf_counter()
        folder = capture(work / f"steps{steps}", steps)
        print(f"captured {steps} steps in {time.perf_counter() - start:.1f} s: {folder}", flush=True)
        sizes = {p.name.split(".", 1)[1]: p.stat().st_size for p in folder.iterdir()}
        cases.append((f"{steps}-step capture", folder, ("xplane", "trace"), sizes))
    start = time.perf_counter()
    trace = synthetic_trace(work / "synthetic.trace.json.gz", args.events)
    print(f"wrote a {args.events:,}-event synthetic trace in {time.perf_counter() - start:.1f} s", flush=True)
    cases.append((f"synthetic {args.events:,} events", trace, ("trace",), {"trace.json.gz": trace.stat().st_size}))

    print()
    print(f"{'capture':<28} {'backend':<8} {'events':>9} {'ops':>8} {'time s':>8} {'RSS+ MiB':>9} "
          f"{'heap MiB':>9}  file sizes")
    for name, path, backends, sizes in cases:
        size_text = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
        for backend in backends:
            r = measure(path, backend)
            if "error" in r:
                print(f"{name:<28} {backend:<8} error: {r['error']}")
                continue
            print(f"{name:<28} {backend:<8} {r['events']:>9} {r['ops']:>8} {r['s']:>8.3f} "
                  f"{r['rss_mib']:>9.1f} {r['heap_mib']:>9.1f}  {size_text}"
                  + (f"  ({r['warnings']} warnings)" if r["warnings"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
