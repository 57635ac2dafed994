"""Measure the training step time of model.py.

    python bench.py [--steps N] [--warmup N] [--profile] [--profile-steps N]

How it measures (do not change this to make numbers look better; change model.py):
- when `model.step_fn` is jitted it is compiled ahead of time (lower + compile), and the
  compile time is reported separately (`compile_s`);
- warm-up steps are run first and excluded from the statistics;
- every timed step ends with `jax.block_until_ready`, so asynchronous dispatch cannot hide
  work in the next step;
- the result is the median and the p10/p90 over the timed steps.

Records (one JSON object per line, schema v1) are appended to the file named by
$AUTORESEARCH_METRICS, or printed to stdout when it is unset:
    {"v":1,"kind":"step","step":12,"step_time_s":0.0042,"warmup":false}
    {"v":1,"kind":"summary","step_time_median_s":...,"p10_s":...,"p90_s":...,"n":30,
     "mfu":null,"hbm_peak_bytes":null,"compile_s":0.49}
    {"v":1,"kind":"profile","dir":"profile/plugins/profile/<timestamp>"}
With --profile a few steady-state steps are traced with jax.profiler.trace into
$AUTORESEARCH_RUN_DIR/profile (./profile when unset).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import model

# Peak dense bf16 FLOP/s per chip, for MFU. Unknown devices (the CPU included) report null.
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5": 459e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


class Records:
    """Appends metrics records, one complete line per write (readers never see half a line)."""

    def __init__(self) -> None:
        path = os.environ.get("AUTORESEARCH_METRICS")
        self.to_stdout = not path
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")
        else:
            self._file = sys.stdout

    def write(self, kind: str, **fields) -> None:
        self._file.write(json.dumps({"v": 1, "kind": kind, **fields}) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self.to_stdout:
            self._file.close()


def block(tree):
    return jax.block_until_ready(tree)


def flops_of(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # not every backend implements it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not isinstance(analysis, dict):
        return None
    flops = analysis.get("flops")
    return float(flops) if flops and flops > 0 else None


def hbm_peak_bytes() -> int | None:
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        return None
    if not stats:
        return None  # the CPU reports nothing
    peak = stats.get("peak_bytes_in_use")
    return int(peak) if peak is not None else None


def newest_profile_run(log_dir: Path) -> Path | None:
    runs = [p for p in (log_dir / "plugins" / "profile").glob("*") if p.is_dir()]
    return max(runs, key=lambda p: (p.stat().st_mtime, p.name)) if runs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    parser.add_argument("--profile", action="store_true", help="trace a few steady-state steps")
    parser.add_argument("--profile-steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")

    records = Records()
    log = sys.stderr if records.to_stdout else sys.stdout

    params = model.init_params()
    opt_state = model.init_opt_state(params)
    batch = model.make_batch()
    block((params, opt_state, batch))

    step = model.step_fn
    compile_s = None
    flops = None
    hlo_text = None
    if hasattr(step, "lower"):  # jitted: compile ahead of time, timed on its own
        start = time.perf_counter()
        step = step.lower(params, opt_state, batch).compile()
        compile_s = time.perf_counter() - start
        flops = flops_of(step)
        if args.profile:
            try:
                hlo_text = step.as_text()
            except Exception:
                hlo_text = None

    def run_one():
        nonlocal params, opt_state
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, batch)
        block((params, opt_state, loss))
        return time.perf_counter() - start, loss

    for i in range(args.warmup):
        elapsed, loss = run_one()
        records.write("step", step=i, step_time_s=round(elapsed, 6), warmup=True)

    times = []
    for i in range(args.warmup, args.warmup + args.steps):
        elapsed, loss = run_one()
        times.append(elapsed)
        records.write("step", step=i, step_time_s=round(elapsed, 6), warmup=False)

    median = float(np.median(times))
    p10, p90 = (float(x) for x in np.percentile(times, [10, 90]))
    device = jax.devices()[0]
    peak = PEAK_FLOPS.get(getattr(device, "device_kind", ""))
    mfu = round(flops / median / peak, 4) if flops and peak else None
    records.write(
        "summary",
        step_time_median_s=round(median, 6), p10_s=round(p10, 6), p90_s=round(p90, 6),
        n=len(times), mfu=mfu, hbm_peak_bytes=hbm_peak_bytes(),
        compile_s=round(compile_s, 4) if compile_s is not None else None,
        loss=round(float(loss), 6), platform=device.platform,
        device_kind=getattr(device, "device_kind", ""),
    )
    compiled_note = f", compile {compile_s:.2f} s" if compile_s is not None else ", not jitted"
    print(
        f"step_time_ms: {median * 1e3:.3f} (p10 {p10 * 1e3:.3f}, p90 {p90 * 1e3:.3f}, "
        f"n {len(times)}{compiled_note}, loss {float(loss):.4f})",
        file=log, flush=True,
    )

    if args.profile:
        run_dir = Path(os.environ.get("AUTORESEARCH_RUN_DIR") or ".")
        log_dir = run_dir / "profile"
        before = newest_profile_run(log_dir)
        with jax.profiler.trace(str(log_dir)):
            for i in range(args.profile_steps):
                with jax.profiler.StepTraceAnnotation("train", step_num=i):
                    run_one()
        captured = newest_profile_run(log_dir)
        if captured is not None and captured != before:
            if hlo_text:  # lets the summarizer classify fusions by the ops inside them
                (captured / "step.hlo.txt").write_text(hlo_text, encoding="utf-8")
            relative = os.path.relpath(captured, run_dir)
            records.write("profile", dir=relative, steps=args.profile_steps)
            print(f"profile: {captured}", file=log, flush=True)
        else:
            print("profile: no capture was written", file=sys.stderr, flush=True)

    records.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
