"""Engine daemon figures: time to first snapshot with big event logs, and engine CPU/RSS
per lane while idle and while streaming. Prints figures; asserts nothing.

    python bench/bench_daemon.py [--mb 200] [--lanes 8] [--seconds 10]

Attach cost is compared, in the same run, with the anchor "replay every event log"
(what a client would pay if the snapshot came from the logs instead of from state).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.client import EngineClient  # noqa: E402
from autoresearch_tui.engine.daemon.server import running_pid, spawn_daemon  # noqa: E402
from autoresearch_tui.engine.core.events import read_events  # noqa: E402
from autoresearch_tui.engine.protocol import socket_path  # noqa: E402
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env  # noqa: E402
from autoresearch_tui.engine.workspace import Workspace, atomic_write_json  # noqa: E402
from tests.support import make_workspace  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def fill_logs(workspace: Workspace, lanes: list[str], total_mb: int) -> int:
    """Realistic event lines (tool output, text, metrics) until the logs hold total_mb."""
    per_lane = total_mb * 1024 * 1024 // len(lanes)
    output = "\n".join(f"step {i}: loss 2.1{i % 10} step_time_ms 7.{i % 100:02d}" for i in range(40))
    kinds = [
        {"type": "tool_result", "tool_use_id": "toolu_x", "is_error": False, "output": output},
        {"type": "assistant_text", "text": "Jitting the step should remove per-op dispatch. " * 4},
        {"type": "tool_use", "tool": "Bash", "input": {"command": "python bench.py --profile"}},
        {"type": "metric", "kind": "step", "run_id": "0001", "step": 3, "step_time_s": 0.0071},
    ]
    events = 0
    for lane in lanes:
        path = workspace.events_path(lane)
        path.parent.mkdir(parents=True, exist_ok=True)
        written, ts = 0, time.time() - 86400
        with open(path, "w") as handle:
            while written < per_lane:
                ts += 0.05
                line = json.dumps({"ts": ts, "lane": lane, **kinds[events % len(kinds)]}) + "\n"
                handle.write(line)
                written += len(line)
                events += 1
        atomic_write_json(workspace.lane_json(lane), {"name": lane, "state": "paused", "session_id": None})
    return events


def proc_stats(pid: int) -> tuple[float, int]:
    """(cpu seconds, rss bytes) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def children_rss(pid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE") + children_rss(int(entry.name))
    return total


async def attach_figures(config) -> dict:
    started = time.perf_counter()
    client = await EngineClient.connect(socket_path(config.workspace))
    snapshot = (await client.request("snapshot"))["snapshot"]
    first_snapshot = time.perf_counter() - started
    lane = next(iter(snapshot["lanes"]))
    started = time.perf_counter()
    history = (await client.request("history", lane=lane, limit=500))["events"]
    history_s = time.perf_counter() - started
    await client.close()
    return {"first_snapshot_s": first_snapshot, "history_500_s": history_s, "history_len": len(history)}


async def measure_cpu(pid: int, seconds: float) -> tuple[float, int]:
    cpu0, _ = proc_stats(pid)
    await asyncio.sleep(seconds)
    cpu1, rss = proc_stats(pid)
    return (cpu1 - cpu0) / seconds * 100, rss


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    lanes = [f"l{i}" for i in range(args.lanes)]
    try:
        config = make_workspace(root, lanes=lanes)
        workspace = Workspace(config)
        t0 = time.perf_counter()
        events = fill_logs(workspace, lanes, args.mb)
        size = sum(workspace.events_path(l).stat().st_size for l in lanes) / 2**20
        print(f"event logs: {size:.0f} MiB, {events:,} events across {len(lanes)} lanes "
              f"(written in {time.perf_counter() - t0:.1f}s)")

        t0 = time.perf_counter()
        replayed = sum(len(read_events(workspace.events_path(l))) for l in lanes)
        replay_s = time.perf_counter() - t0
        print(f"anchor — replay every log: {replay_s:.2f}s for {replayed:,} events")

        with ScriptedModelServer() as model:
            model.set_script(lambda request: Turn.tool(
                "Bash", {"command": "seq 1 400 | sed 's/^/step_time_ms line /'"}))
            env = {**os.environ, **cli_env(root / "home", model.base_url)}
            pid = spawn_daemon(config, env=env)
            await asyncio.sleep(3)  # lanes settle (paused: CLI sessions open, idle)
            attach = await attach_figures(config)
            print(f"attach: first snapshot {attach['first_snapshot_s'] * 1000:.1f} ms "
                  f"({replay_s / attach['first_snapshot_s']:.0f}x faster than replay); "
                  f"history page of {attach['history_len']} events {attach['history_500_s'] * 1000:.1f} ms")

            idle_cpu, idle_rss = await measure_cpu(pid, args.seconds)
            cli_rss = children_rss(pid)
            print(f"idle ({len(lanes)} lanes paused): engine CPU {idle_cpu:.1f}% of a core "
                  f"({idle_cpu / len(lanes):.2f}%/lane), engine RSS {idle_rss / 2**20:.0f} MiB "
                  f"({idle_rss / 2**20 / len(lanes):.1f} MiB/lane); agent CLIs {cli_rss / 2**20:.0f} MiB "
                  f"({cli_rss / 2**20 / len(lanes):.0f} MiB/lane)")

            client = await EngineClient.connect(socket_path(config.workspace))
            await client.request("subscribe")
            for lane in lanes:
                await client.request("resume", lane=lane)
            await asyncio.sleep(3)
            received = 0
            start_requests = len(model.main_requests)

            async def drain():
                nonlocal received
                async for _ in client.stream():
                    received += 1

            drainer = asyncio.create_task(drain())
            received = 0
            busy_cpu, busy_rss = await measure_cpu(pid, args.seconds)
            turns = len(model.main_requests) - start_requests
            drainer.cancel()
            print(f"streaming ({len(lanes)} lanes, Bash output of 400 lines per turn): engine CPU "
                  f"{busy_cpu:.1f}% of a core ({busy_cpu / len(lanes):.2f}%/lane), engine RSS "
                  f"{busy_rss / 2**20:.0f} MiB ({busy_rss / 2**20 / len(lanes):.1f} MiB/lane); "
                  f"{turns / args.seconds:.1f} agent turns/s, {received / args.seconds:.0f} events/s "
                  f"to a subscribed client")
            await client.request("stop_engine")
            await client.close()
            deadline = time.time() + 60
            while running_pid(workspace) and time.time() < deadline:
                await asyncio.sleep(0.1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
