"""How fast the TUI ingests lane output, and how quickly keys show on screen meanwhile.

8 lanes stream synthetic tool output through the same path as the engine connection
(JSON line → `json.loads` → `LaneStore.ingest`, in the app's event loop); the UI's one
flush timer moves it into the widgets. Headless (no terminal), so frame costs are Textual's
own compositing, not a terminal's. Prints figures; asserts nothing.

    python bench/bench_tui.py [--seconds 5] [--rate 40000] [--lanes 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events as textual_events  # noqa: E402

from autoresearch_tui.engine.config import TuiConfig  # noqa: E402
from autoresearch_tui.engine.core.snapshot import Snapshot  # noqa: E402
from autoresearch_tui.tui.app import AutoresearchApp  # noqa: E402
from autoresearch_tui.tui.store import LaneStore  # noqa: E402

LINES_PER_EVENT = 20


def snapshot(lanes: int) -> Snapshot:
    return Snapshot.from_dict({
        "experiment": "bench", "metric": "step_time_ms", "direction": "minimize", "started_at": time.time(),
        "pid": 0, "scripted": False, "total_cost_usd": 0.0,
        "lanes": {f"l{i}": {"name": f"l{i}", "state": "running",
                            "frontier": {"runs": 2, "best": 9.0, "best_history": [10.0, 9.0]}} for i in range(lanes)}})


def encoded_events(lanes: int, count: int) -> list[bytes]:
    out = []
    for n in range(count):
        lane = f"l{n % lanes}"
        body = "\n".join(f"\x1b[32mstep {n}.{k}\x1b[0m: 118.{k} ms loss 2.{n % 97:02d} tokens/s 123456" for k in range(LINES_PER_EVENT))
        out.append(json.dumps({"ts": time.time() + n * 1e-6, "lane": lane, "type": "tool_result",
                               "output": body}).encode())
    return out


async def run(mode: str, seconds: float, rate: int, lanes: int) -> dict:
    store = LaneStore(snapshot(lanes))
    store.alert_after = float("inf")
    app = AutoresearchApp(TuiConfig(bell=False, desktop_notifications=False), bridge=None, store=store)
    events = encoded_events(lanes, 4000)
    ingested = 0
    latencies: list[float] = []
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause(0.3)
        main = app.main_screen
        if mode == "grid":
            await pilot.press("g")
            await pilot.pause(0.3)
        gc.freeze()
        stop = asyncio.Event()

        async def produce():
            nonlocal ingested
            events_per_s = rate / LINES_PER_EVENT
            start = time.perf_counter()
            i = 0
            while not stop.is_set():
                due = int((time.perf_counter() - start) * events_per_s)
                while i < due:
                    store.ingest(json.loads(events[i % len(events)]))
                    ingested += LINES_PER_EVENT
                    i += 1
                await asyncio.sleep(0.002)

        producer = asyncio.create_task(produce())
        written_before = main.lines_flushed
        t_start = time.perf_counter()
        key_n = 0
        while time.perf_counter() - t_start < seconds:
            await asyncio.sleep(0.15)
            key_n += 1
            target = key_n % min(lanes, 9) + 1
            done = asyncio.Event()
            t0 = time.perf_counter()
            expected = f"l{target - 1}"
            key = textual_events.Key(str(target), str(target))
            key.set_sender(app)
            app._driver.send_message(key)  # what the terminal driver does for a key press
            while main.selected != expected:
                await asyncio.sleep(0.001)
            app.call_after_refresh(done.set)  # the frame that shows the new lane
            await done.wait()
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - t_start
        stop.set()
        await producer
        written = main.lines_flushed - written_before
    latencies.sort()
    return {
        "mode": mode, "offered_lines_s": rate, "ingested_lines_s": ingested / elapsed,
        "rendered_lines_s": written / elapsed, "keys": len(latencies),
        "p50_ms": statistics.median(latencies), "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "max_ms": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=40000, help="offered lines per second, all lanes")
    parser.add_argument("--lanes", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.lanes} lanes, {LINES_PER_EVENT} lines per event, {args.seconds:.0f}s per mode, headless 200x60")
    for mode in ("lane", "grid"):
        for rate in (0, args.rate // 4, args.rate):  # 0: the idle anchor for key latency
            r = asyncio.run(run(mode, args.seconds, rate, args.lanes))
            print(f"{r['mode']:>5} view  offered {r['offered_lines_s']:>7,} lines/s  ingested {r['ingested_lines_s']:>9,.0f}"
                  f"  rendered {r['rendered_lines_s']:>8,.0f} lines/s  key→screen p50 {r['p50_ms']:.0f} ms"
                  f"  p95 {r['p95_ms']:.0f} ms  max {r['max_ms']:.0f} ms  ({r['keys']} keys)")


if __name__ == "__main__":
    main()
