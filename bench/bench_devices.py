"""Device leases: what sharing a host does to the numbers, and how busy leases keep the device.

    python bench/bench_devices.py [--part a|b|both] [--rounds 2] [--seconds 60]

(a) The bundled example (its step jitted, real jax on this CPU) measured alone, then with 2
    and 3 runs started at once, without leases (every run starts immediately, as before
    leases) and with leases (one slot: the engine's default). Figures are the per-run median
    step times as ratios to the same run's "alone" median; the anchor is measured in the
    same run. Each run goes through the engine's own measuring path (engine/runs/measure.py).
(b) The device busy share with 4 lanes of the real engine (scripted model, real CLI) whose
    agents "think" for a fixed time (a Bash command) between benchmark runs of a fixed
    length, against the ideal min(1, N * run / (think + run)). The share is reported over
    the steady window (first lease to the end) and since the engine started; the measured
    gap between a lane's runs (think plus the agent's round trips) is printed too, with the
    ideal recomputed from it.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.core.events import read_events  # noqa: E402
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env  # noqa: E402
from autoresearch_tui.engine.devices.leases import LeaseManager  # noqa: E402
from autoresearch_tui.engine.devices.slots import Slot  # noqa: E402
from autoresearch_tui.engine.config import ExperimentConfig  # noqa: E402
from autoresearch_tui.engine.runs.measure import measure_run  # noqa: E402
from autoresearch_tui.engine.supervisor import Engine  # noqa: E402
from tests.support import REPO_ROOT, make_workspace  # noqa: E402

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"


# ----------------------------------------------------------------------------- (a)
def example_copy(root: Path) -> Path:
    target = root / "example"
    shutil.copytree(REPO_ROOT / "examples" / "jax_example", target)
    model = target / "model.py"
    model.write_text(model.read_text().replace("step_fn = train_step", "step_fn = jax.jit(train_step)"))
    return target


async def one_run(root: Path, example: Path, manager: LeaseManager | None, lane: str, counter: list[int]) -> float:
    counter[0] += 1
    run_dir = root / "runs" / f"{counter[0]:04d}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    manager = manager or LeaseManager([Slot(0, (0,), "cpu", whole_host=True)])  # "no lease": its own slot
    run_dir.mkdir(parents=True, exist_ok=True)
    experiment = ExperimentConfig(bench_command=f"{sys.executable} bench.py", run_timeout_s=600.0,
                                  hang_timeout_s=300.0)
    measured = await measure_run(experiment, leases=manager, platform="cpu", lane=lane,
                                 emit=lambda *a, **k: None, cwd=example, env=env,
                                 allocate=lambda: (run_dir.name, run_dir))
    summary = measured.result.summary
    if measured.status != "ok" or not summary:
        raise RuntimeError(f"run failed: {measured.result.log_tail}")
    return summary["step_time_median_s"] * 1000


async def part_a(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-devices-"))
    example = example_copy(root)
    counter = [0]
    await one_run(root, example, None, "warm", counter)  # jax's caches, the page cache
    alone = [await one_run(root, example, None, "alone", counter) for _ in range(rounds + 1)]
    anchor = statistics.median(alone)
    print(f"(a) the example alone: median step {anchor:.3f} ms over {len(alone)} runs "
          f"({', '.join(f'{v:.2f}' for v in alone)})")
    print(f"    {'runs at once':<14}{'leases':<8}{'median ratio':>13}{'worst ratio':>12}{'wall s':>8}")
    for n in (2, 3):
        for leased in (False, True):
            manager = LeaseManager([Slot(0, (0,), "cpu", whole_host=True)]) if leased else None
            values: list[float] = []
            started = time.monotonic()
            for _ in range(rounds):
                values += await asyncio.gather(*(one_run(root, example, manager, f"lane{i}", counter)
                                                 for i in range(n)))
            wall = time.monotonic() - started
            ratios = [v / anchor for v in values]
            print(f"    {n:<14}{'yes' if leased else 'no':<8}{statistics.median(ratios):>13.3f}"
                  f"{max(ratios):>12.3f}{wall:>8.1f}")
    shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- (b)
SLEEP_BENCH = ("import json, os, sys, time\ntime.sleep(float(sys.argv[1]))\n"
               "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps("
               "{'v': 1, 'kind': 'summary', 'step_time_median_s': 0.01}) + '\\n')\n")


async def part_b(lanes: int, run_s: float, think_s: float, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-busy-"))
    names = [f"l{i}" for i in range(lanes)]
    config = make_workspace(root, lanes=names, repo_files={"bench.py": SLEEP_BENCH},
                            experiment="hang_timeout_s = 600", devices="slots = 1")

    def script(request: ModelRequest) -> Turn:
        if re.search(r"run_dir=\S+ status=", request.tool_result_text()):  # a run just finished: think
            return Turn.tool("Bash", {"command": f"python3 -c 'import time; time.sleep({think_s})'"})
        return Turn.tool(RUN_BENCHMARK, {"description": "next idea", "args": str(run_s)})

    with ScriptedModelServer() as model:
        model.set_script(script)
        engine = Engine(config, env={**os.environ, **cli_env(root / "home", model.base_url)})
        await engine.start()
        await asyncio.sleep(seconds)
        since_start = engine.leases.busy_share()
        await engine.stop()
    events = sorted((e for lane in names for e in read_events(engine.workspace.events_path(lane))
                     if e["type"] in ("lease_acquired", "lease_released")), key=lambda e: e["ts"])
    first = next(e["ts"] for e in events if e["type"] == "lease_acquired")
    end = events[-1]["ts"]
    busy, open_at, gaps, last_release = 0.0, {}, [], {}
    for e in events:
        key = (e["lane"], e["run_id"])
        if e["type"] == "lease_acquired":
            open_at[key] = e["ts"]
            if e["lane"] in last_release:
                # release -> next acquisition of the same lane, minus the time it queued
                gaps.append(e["ts"] - last_release[e["lane"]] - e["waited_s"])
        elif key in open_at:
            busy += e["ts"] - open_at.pop(key)
            last_release[e["lane"]] = e["ts"]
    steady = busy / (end - first) if end > first else 0.0
    ideal = min(1.0, lanes * run_s / (think_s + run_s))
    gap = statistics.median(gaps) if gaps else float("nan")
    ideal_gap = min(1.0, lanes * run_s / (gap + run_s)) if gaps else float("nan")
    runs = sum(e["type"] == "lease_released" for e in events)
    print(f"    {lanes:<6}{run_s:<7g}{think_s:<8g}{ideal:>7.2f}{steady:>9.2f}{since_start:>9.2f}"
          f"{gap:>10.2f}{ideal_gap:>11.2f}{runs:>6}")
    shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=2, help="(a) rounds per condition")
    parser.add_argument("--seconds", type=float, default=60.0, help="(b) engine time per setting")
    parser.add_argument("--run-s", type=float, default=2.0, help="(b) benchmark length")
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} cpus, python {sys.version.split()[0]}")
    if args.part in ("a", "both"):
        await part_a(args.rounds)
    if args.part in ("b", "both"):
        print("(b) busy share, 4 lanes, one slot")
        print(f"    {'lanes':<6}{'run s':<7}{'think s':<8}{'ideal':>7}{'steady':>9}{'overall':>9}"
              f"{'gap s':>10}{'ideal(gap)':>11}{'runs':>6}")
        for think in (args.run_s, 5 * args.run_s):
            await part_b(4, args.run_s, think, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
