"""Metrics at scale: engine start time and RSS with many runs of step records, and ping
latency while one run writes a huge metrics file. Prints figures; asserts nothing.

    python bench/bench_metrics_scale.py [--lanes 8] [--runs 500] [--mb 1] [--live-mb 1024]
    python bench/bench_metrics_scale.py --finished 10000 --finished-only

- Start: the daemon is started on a workspace of LANES x RUNS runs, each with MB of step
  records and a summary (one block written once, the runs hard-linked to it: cheap to
  make, and the engine reads each run as its own file). "socket" is when `start` returns
  (the socket answers); "history" is when the snapshot stops saying the metrics are
  loading. Cold = no caches yet; warm = the restart after (per-run caches in place).
  Anchor, same run: the whole-file parse the previous engine did before opening its
  socket, timed on a sample of runs and scaled to all of them.
- Ping: p50/p99/max of `ping` round trips while this process appends LIVE_MB of step
  records to one run's metrics.jsonl as fast as it can; anchor: the same with no writer.
- Finished runs (in-process, first): one lane's watcher over FINISHED ended runs (run.json
  final, caches in place, as after a week): the memory it holds (tracemalloc) per 1000
  runs after its start-up scan, and the time of one later scan (what every change in
  runs/ costs). Anchor, same run: the same watcher with `retire_finished=False`, the
  previous behaviour (every run followed, and stat'ed on every scan, forever).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.client import EngineClient  # noqa: E402
from autoresearch_tui.engine.core.files import atomic_write_json  # noqa: E402
from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon  # noqa: E402
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env  # noqa: E402
from autoresearch_tui.engine.protocol import socket_path  # noqa: E402
from autoresearch_tui.engine.runs.metrics import MetricsWatcher, parse_metrics_line  # noqa: E402
from autoresearch_tui.engine.workspace import Workspace  # noqa: E402
from tests.support import make_workspace  # noqa: E402

STEP = json.dumps({"v": 1, "kind": "step", "step": 12, "step_time_s": 0.1182, "warmup": False,
                   "loss": 2.345, "tokens_per_s": 41234.5})


def block(megabytes: float) -> bytes:
    return ((STEP + "\n") * int(megabytes * (1 << 20) // (len(STEP) + 1))).encode()


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def make_runs(workspace: Workspace, lanes: list[str], runs: int, megabytes: float) -> Path:
    first = workspace.runs_dir(lanes[0]) / "0001" / "metrics.jsonl"
    first.parent.mkdir(parents=True)
    summary = json.dumps({"v": 1, "kind": "summary", "step_time_median_s": 0.1, "n": 30}) + "\n"
    first.write_bytes(block(megabytes) + summary.encode())
    for lane in lanes:
        for i in range(1, runs + 1):
            path = workspace.runs_dir(lane) / f"{i:04d}" / "metrics.jsonl"
            if path != first:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.link(first, path)
            atomic_write_json(path.parent / "run.json", {"run_id": path.parent.name, "status": "discard"})
        atomic_write_json(workspace.lane_json(lane), {"name": lane, "state": "paused"})
    return first


def anchor_full_parse_s(path: Path, sample: int) -> float:
    """What the previous engine did per run at start: read the whole file, parse every line."""
    started = time.perf_counter()
    for _ in range(sample):
        for line in path.read_text().splitlines():
            parse_metrics_line(line)
    return (time.perf_counter() - started) / sample


def finished_runs_figures(count: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-finished-"))
    try:
        runs = root / "runs"
        steps = "".join(json.dumps({"v": 1, "kind": "step", "step": i, "step_time_s": 0.007}) + "\n"
                        for i in range(200))
        first = root / "metrics.jsonl"
        first.write_text(steps + json.dumps({"v": 1, "kind": "summary", "step_time_median_s": 0.1}) + "\n")
        for i in range(1, count + 1):
            run_dir = runs / f"{i:05d}"
            run_dir.mkdir(parents=True)
            os.link(first, run_dir / "metrics.jsonl")
            atomic_write_json(run_dir / "run.json", {"run_id": run_dir.name, "status": "discard"})
        MetricsWatcher("a", runs, lambda e: None, summarize_profiles=False).scan_once(emit=False)  # caches
        figures = {}
        for label, retire in (("every run followed (previous, anchor)", False), ("finished runs retired", True)):
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            watcher = MetricsWatcher("a", runs, lambda e: None, summarize_profiles=False,
                                     retire_finished=retire)
            watcher.scan_once(emit=False)
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            del watcher
            watcher = MetricsWatcher("a", runs, lambda e: None, summarize_profiles=False,
                                     retire_finished=retire)
            started = time.perf_counter()
            watcher.scan_once(emit=False)
            start_s = time.perf_counter() - started
            scans = []
            for _ in range(5):
                started = time.perf_counter()
                watcher.scan_once()
                scans.append(time.perf_counter() - started)
            figures[retire] = (held, statistics.median(scans))
            print(f"{count} finished runs, {label}: {held / count * 1000 / 2**20:.2f} MiB held per 1000 runs, "
                  f"start-up scan {start_s:.2f}s, a later scan {statistics.median(scans) * 1000:.1f} ms "
                  f"(median of 5), {watcher.state.runs} summaries seen")
        (old_held, old_scan), (new_held, new_scan) = figures[False], figures[True]
        print(f"finished runs retired vs anchor: {old_held / max(new_held, 1):.0f}x less memory, "
              f"a later scan {old_scan / max(new_scan, 1e-9):.0f}x faster")
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def start_figures(config, env) -> dict:
    workspace = Workspace(config)
    started = time.perf_counter()
    pid = spawn_daemon(config, env=env, timeout=600)
    socket_s = time.perf_counter() - started
    client = await EngineClient.connect(socket_path(workspace.root))
    while True:
        lanes = (await client.request("snapshot"))["snapshot"]["lanes"]
        if not any(lane["metrics"].get("loading") for lane in lanes.values()):
            break
        await asyncio.sleep(0.1)
    history_s = time.perf_counter() - started
    runs = sum(1 for lane in lanes.values() if (lane.get("metrics") or {}).get("latest_summary"))
    figures = {"pid": pid, "socket_s": socket_s, "history_s": history_s, "rss": rss_mib(pid), "runs": runs}
    return figures | {"client": client}


async def stop(client, workspace) -> None:
    await client.request("stop_engine")
    await client.close()
    deadline = time.time() + 120
    while running_pid(workspace) and time.time() < deadline:
        await asyncio.sleep(0.1)


async def ping_latencies(client, seconds: float, writer=None) -> list[float]:
    latencies = []
    task = asyncio.create_task(asyncio.to_thread(writer)) if writer else None
    deadline = time.perf_counter() + seconds
    while (task and not task.done()) or (task is None and time.perf_counter() < deadline):
        started = time.perf_counter()
        await client.request("ping")
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    if task:
        await task
    return latencies


def describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms over {len(ordered)} pings")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--live-mb", type=int, default=1024)
    parser.add_argument("--finished", type=int, default=2000,
                        help="finished runs for the in-process figures; with --finished-only, only those")
    parser.add_argument("--finished-only", action="store_true")
    args = parser.parse_args()
    finished_runs_figures(args.finished)
    if args.finished_only:
        return
    root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    lanes = [f"l{i}" for i in range(args.lanes)]
    try:
        config = make_workspace(root, lanes=lanes, loop="idle_nudge_minutes = 600")
        workspace = Workspace(config)
        t0 = time.perf_counter()
        first = make_runs(workspace, lanes, args.runs, args.mb)
        total = args.lanes * args.runs
        print(f"workspace: {args.lanes} lanes x {args.runs} runs x {first.stat().st_size / 2**20:.1f} MiB "
              f"of step records = {total * first.stat().st_size / 2**30:.1f} GiB "
              f"(made in {time.perf_counter() - t0:.1f}s)")
        per_run = anchor_full_parse_s(first, sample=3)
        print(f"anchor — the previous engine's whole-file parse before its socket opened: "
              f"{per_run:.2f}s per run, ~{per_run * total:.0f}s for {total} runs")

        with ScriptedModelServer(script=lambda request: Turn.text("idle")) as model:
            env = {**os.environ, **cli_env(root / "home", model.base_url)}
            for label in ("cold (no caches)", "warm (restart, caches)"):
                figures = await start_figures(config, env)
                print(f"start {label}: socket answers after {figures['socket_s']:.2f}s, history loaded "
                      f"after {figures['history_s']:.2f}s ({figures['runs']}/{len(lanes)} lanes show their latest summary), engine RSS "
                      f"{figures['rss']:.0f} MiB; {per_run * total / figures['history_s']:.0f}x faster "
                      "than the anchor")
                if label.startswith("warm"):
                    break
                await stop(figures["client"], workspace)

            client = figures["client"]
            quiet = await ping_latencies(client, 10)
            print(f"ping, nothing writing (anchor): {describe(quiet)}")
            live = workspace.runs_dir(lanes[0]) / f"{args.runs + 1:04d}" / "metrics.jsonl"
            live.parent.mkdir(parents=True)
            chunk = block(4)

            def write_live() -> None:
                with open(live, "ab") as handle:
                    for _ in range(args.live_mb // 4):
                        handle.write(chunk)
                        handle.flush()

            t0 = time.perf_counter()
            busy = await ping_latencies(client, 0, writer=write_live)
            written_s = time.perf_counter() - t0
            print(f"ping while one run writes {args.live_mb} MiB of step records "
                  f"(in {written_s:.1f}s): {describe(busy)}; engine RSS {rss_mib(figures['pid']):.0f} MiB")
            await asyncio.sleep(5)
            tail = await ping_latencies(client, 10)
            print(f"ping in the 10 s after the writer stopped (the engine catching up): {describe(tail)}; "
                  f"engine RSS {rss_mib(figures['pid']):.0f} MiB")
            await stop(client, workspace)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
