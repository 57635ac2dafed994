"""Evidence integrity: what confirmation costs, and what it buys.

    python bench/bench_evidence.py [--part a|b|both] [--trials 50] [--noise 0.10]

(a) Cost, with the bundled example (real jax on this CPU, the real engine, SDK and CLI
    against the scripted model): a lane records a baseline, jits the step and records the
    keep. The keep would be a new best, so the engine runs the example's check.py and
    re-measures candidate and incumbent A/B (`confirm_runs = 2`). Printed: the extra runs per
    new best (from the ledger and the events), and the wall time of that record_run call
    against the wall time of one plain benchmark run in the same session (the anchor).
(b) Benefit, on a noisy synthetic benchmark (each measurement = true value x a lognormal
    factor of sigma --noise): in each of --trials trials a lane has a baseline and a candidate
    whose true value is the same (a pure-noise "gain"). A single-run keep counts whenever the
    candidate's one measurement beats the baseline's; with confirmation, the ledger the
    engine would write (baseline row, candidate keep with confirm_runs, 2x2 confirmation
    rows) goes through the engine's own `compute_frontier`, and the candidate counts only
    if it is confirmed. The same is done for a candidate with a real 20% gain, to show what
    confirmation still lets through. Both against the same random draws.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.config import load_config  # noqa: E402
from autoresearch_tui.engine.core.events import read_events  # noqa: E402
from autoresearch_tui.engine.core.ledger import compute_frontier, read_ledger  # noqa: E402
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env  # noqa: E402
from autoresearch_tui.engine.setup.init_workspace import create_workspace  # noqa: E402
from autoresearch_tui.engine.supervisor import Engine  # noqa: E402

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"
RECORD_RUN = "mcp__autoresearch__record_run"


# ----------------------------------------------------------------------------- (a)
async def part_a() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    config = load_config(create_workspace(root, lanes=("a",)))
    fork = None
    model = ScriptedModelServer()

    def script(request: ModelRequest) -> Turn:
        nonlocal fork
        step = len(model.main_requests)
        fork = fork or re.search(r"Primary working directory: ([^\s\\\"]+)", request.body_text).group(1)
        plan = [
            lambda: Turn.tool(RUN_BENCHMARK, {"description": "warm-up"}),
            lambda: Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
            lambda: Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
            lambda: Turn.tool("Edit", {"file_path": f"{fork}/model.py", "old_string": "step_fn = train_step",
                                       "new_string": "step_fn = jax.jit(train_step)"}),
            lambda: Turn.tool("Bash", {"command": "git commit -qam 'jit the step'"}),
            lambda: Turn.tool(RUN_BENCHMARK, {"description": "jit the step"}),
            lambda: Turn.tool(RECORD_RUN, {"status": "keep", "description": "jit the step"}),
        ]
        return plan[step]() if step < len(plan) else Turn.tool("Bash", {"command": "true"})

    model.set_script(script)
    model.start()
    engine = Engine(config, env={**os.environ, **cli_env(root / "home", model.base_url)})
    await engine.start()
    try:
        deadline = time.monotonic() + 900
        while len(model.main_requests) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await engine.stop()
        model.stop()
    events = read_events(engine.workspace.events_path("a"))
    calls = {e["tool_use_id"]: e for e in events if e["type"] == "tool_use"}
    walls: list[tuple[str, float]] = []
    for e in events:
        if e["type"] == "tool_result" and e["tool_use_id"] in calls:
            use = calls[e["tool_use_id"]]
            walls.append((use["tool"].rsplit("__", 1)[-1], e["ts"] - use["ts"]))
    benchmarks = [w for name, w in walls if name == "run_benchmark"]
    records = [w for name, w in walls if name == "record_run"]
    rows, _ = read_ledger(engine.workspace.ledger_path("a"), config.experiment.metric)
    frontier = compute_frontier(rows, config.experiment.direction, config.experiment.metric)
    confirmations = [r for r in rows if r["kind"] == "confirmation"]
    checks = [e for e in events if e["type"] == "check_finished"]
    anchor = statistics.median(benchmarks[1:]) if len(benchmarks) > 1 else float("nan")
    print(f"(a) the example: one benchmark run {anchor:.1f} s (median of {len(benchmarks) - 1} after a warm-up)")
    print(f"    record_run of the baseline: {records[0]:.1f} s (check_command only: no incumbent to confirm against)")
    print(f"    record_run of the new best: {records[-1]:.1f} s = {records[-1] / anchor:.2f}x one run")
    print(f"    extra runs per new best: {len(confirmations)} re-measures + {len(checks) - 1} check run "
          f"(+1 check on the baseline keep); verdict: {frontier.per_run[frontier.best_run].get('confirmation', {}).get('state')}")
    best = frontier.best_evidence or {}
    print(f"    evidence: candidate {best.get('candidate_values')} vs incumbent {best.get('incumbent_values')}, "
          f"gain {best.get('gain_pct', float('nan')):.1f}% > band {best.get('band_pct', float('nan')):.1f}%")
    shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- (b)
def ledger_rows(baseline: float, candidate: float, confirms: list[tuple[str, float]],
                repeats: list[float]) -> list[dict]:
    """The rows the engine writes: baseline, re-measures of it (`repeats`: the lane's noise
    estimate comes from them), the candidate keep and its confirmation re-measures."""
    def row(run_id, commit, metric, status, **extra):
        return {"run_id": run_id, "commit": commit * 40, "metric": metric, "status": status,
                "source": "measured", "kind": "", "confirms": "", "role": "", "confirm_runs": 0, **extra}

    rows = [row("0001", "a", baseline, "keep")]
    rows += [row(f"{i:04d}", "a", value, "inconclusive") for i, value in enumerate(repeats, start=2)]
    candidate_id = f"{len(rows) + 1:04d}"
    rows.append(row(candidate_id, "b", candidate, "keep", confirm_runs=len(confirms) // 2))
    for role, value in confirms:
        rows.append(row(f"{len(rows) + 1:04d}", "b" if role == "candidate" else "a", value, "repeat",
                        kind="confirmation", confirms=candidate_id, role=role))
    return rows


def part_b(trials: int, noise: float, seed: int) -> None:
    print(f"(b) {trials} trials, synthetic benchmark with lognormal noise sigma {noise:.0%}, seed {seed}; "
          "'lane noise known': the baseline was re-measured 3 times before (noise_pct from repeats)")
    print(f"    {'true gain':<11}{'confirm_runs':>13}{'lane noise':>12}{'single-run keeps':>18}"
          f"{'confirmed':>11}{'runs/trial':>12}")
    for gain in (0.0, 0.2):
        for confirm_runs in (2, 3):
            for known in (False, True):
                rng = random.Random(seed)
                single = confirmed = 0
                for _ in range(trials):
                    draw = lambda true: true * rng.lognormvariate(0.0, noise)  # noqa: E731
                    incumbent_true, candidate_true = 100.0, 100.0 * (1 - gain)
                    baseline, candidate = draw(incumbent_true), draw(candidate_true)
                    repeats = [draw(incumbent_true) for _ in range(3)] if known else []
                    confirms = []
                    for _ in range(confirm_runs):
                        confirms += [("candidate", draw(candidate_true)), ("incumbent", draw(incumbent_true))]
                    if candidate >= baseline:
                        continue  # not even a single-run keep: no confirmation would run
                    single += 1
                    rows = ledger_rows(baseline, candidate, confirms, repeats)
                    frontier = compute_frontier(rows, "minimize", "step_time_ms")
                    confirmed += frontier.best_commit == "b" * 40
                runs = 2 + (single / trials) * 2 * confirm_runs
                label = "0% (noise)" if gain == 0 else f"{gain:.0%}"
                print(f"    {label:<11}{confirm_runs:>13}{'known' if known else 'unknown':>12}"
                      f"{single:>12}/{trials:<5}{confirmed:>6}/{trials:<4}{runs:>12.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.10, help="(b) lognormal sigma per measurement")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} cpus, python {sys.version.split()[0]}")
    if args.part in ("b", "both"):
        for noise in sorted({args.noise, 0.2}):
            part_b(args.trials, noise, args.seed)
    if args.part in ("a", "both"):
        await part_a()


if __name__ == "__main__":
    asyncio.run(main())
