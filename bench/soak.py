"""Soak: N scripted lanes for an hour with a chatty benchmark; the engine's RSS and open
file descriptors sampled every minute (both should stay flat). Prints figures; asserts nothing.

    python bench/soak.py [--lanes 8] [--minutes 60] [--sample-s 60] [--out soak.tsv]

Each lane's scripted agent loops: run_benchmark (the benchmark prints ~1 MB and writes
2,000 step records and a summary), record_run, a Bash command, and now and then a stop
attempt (blocked by the engine). A subscribed client reads the event stream throughout, as
the TUI would. The real daemon, the real SDK + CLI, the scripted model on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.client import EngineClient  # noqa: E402
from autoresearch_tui.engine.core.ledger import read_ledger  # noqa: E402
from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon  # noqa: E402
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env  # noqa: E402
from autoresearch_tui.engine.protocol import socket_path  # noqa: E402
from autoresearch_tui.engine.workspace import Workspace  # noqa: E402
from tests.support import make_workspace  # noqa: E402

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"
RECORD_RUN = "mcp__autoresearch__record_run"

CHATTY_BENCH = """\
import json, os, random, sys, time
metrics = open(os.environ["AUTORESEARCH_METRICS"], "a")
times = []
for step in range(2000):
    t = 0.007 + random.random() * 0.001
    times.append(t)
    metrics.write(json.dumps({"v": 1, "kind": "step", "step": step, "step_time_s": t,
                              "warmup": step < 5}) + "\\n")
    if step % 2 == 0:
        sys.stdout.write(f"step {step:05d} loss {2.0 + random.random():.4f} step_time_ms {t * 1e3:.3f} "
                         + "x" * 440 + "\\n")
times.sort()
metrics.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": times[1000],
                          "p10_s": times[200], "p90_s": times[1800], "n": 2000}) + "\\n")
print("done")
"""


ANSWERED = [0]


def script(request: ModelRequest) -> Turn:
    """The lane's loop, by how many turns its conversation has had."""
    ANSWERED[0] += 1
    turns = sum(1 for m in request.messages if m.get("role") == "assistant")
    step = turns % 4
    if step == 0:
        return Turn.tool(RUN_BENCHMARK, {"description": f"experiment {turns // 4}"}, delay_s=0.2)
    if step == 1:
        match = re.search(r"run_dir=(\S+)", request.new_text)
        status = "keep" if turns % 12 == 1 else "discard"
        return Turn.tool(RECORD_RUN, {"status": status, "description": f"experiment {turns // 4}",
                                      **({"run_dir": match.group(1)} if match else {})}, delay_s=0.2)
    if step == 2:
        return Turn.tool("Bash", {"command": "git log --oneline | head -3; ls"}, delay_s=0.2)
    if turns % 20 == 3:
        return Turn.text("I think I have run out of ideas for now.", delay_s=0.2)  # blocked
    return Turn.tool("Bash", {"command": "echo thinking about the next change"}, delay_s=0.2)


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(RSS MiB, open fds, threads) of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def descendants(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    count, todo = 0, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            count += 1
            todo.append(child)
    return count


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--sample-s", type=float, default=60)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    lanes = [f"l{i}" for i in range(args.lanes)]
    out = open(args.out, "w") if args.out else None
    try:
        config = make_workspace(root, lanes=lanes, repo_files={"bench.py": CHATTY_BENCH},
                                loop="idle_nudge_minutes = 5\nmax_consecutive_blocks = 50")
        workspace = Workspace(config)
        with ScriptedModelServer(script=script, keep_requests=16) as model:
            env = {**os.environ, **cli_env(root / "home", model.base_url)}
            pid = spawn_daemon(config, env=env)
            client = await EngineClient.connect(socket_path(config.workspace))
            await client.request("subscribe")
            received = 0

            async def drain() -> None:
                nonlocal received
                async for _ in client.stream():
                    received += 1

            drainer = asyncio.create_task(drain())
            header = "minute\trss_mib\tfds\tthreads\tprocesses\truns\tevents_per_min\tmodel_turns"
            print(header, flush=True)
            if out:
                out.write(header + "\n")
            started = time.monotonic()
            last_received, last_requests = 0, 0
            rows = []
            while time.monotonic() - started < args.minutes * 60:
                await asyncio.sleep(args.sample_s)
                rss, fds, threads = proc_figures(pid)
                runs = sum(len(read_ledger(workspace.ledger_path(lane))[0]) for lane in lanes)
                requests = ANSWERED[0]
                row = (round((time.monotonic() - started) / 60, 1), round(rss, 1), fds, threads,
                       descendants(pid), runs, round((received - last_received) * 60 / args.sample_s),
                       requests - last_requests)
                last_received, last_requests = received, requests
                rows.append(row)
                line = "\t".join(str(x) for x in row)
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()
            drainer.cancel()
            snapshot = (await client.request("snapshot"))["snapshot"]
            states = {name: lane["state"] for name, lane in snapshot["lanes"].items()}
            await client.request("stop_engine")
            await client.close()
            deadline = time.time() + 120
            while running_pid(workspace) and time.time() < deadline:
                await asyncio.sleep(0.2)
        first, last = rows[0], rows[-1]
        print(f"lanes at the end: {states}")
        print(f"engine RSS {first[1]} -> {last[1]} MiB (max {max(r[1] for r in rows)}), "
              f"fds {first[2]} -> {last[2]} (max {max(r[2] for r in rows)}), "
              f"{last[5]} runs recorded in {last[0]} minutes")
        settled = rows[min(1, len(rows) - 1)]  # from the second sample: start-up allocations done
        if last[5] > settled[5]:
            print(f"engine RSS growth per recorded run after the first sample: "
                  f"{(last[1] - settled[1]) * 1024 / (last[5] - settled[5]):.1f} KiB "
                  f"over {last[5] - settled[5]} runs (noisy over short soaks: allocator arenas)")
    finally:
        if out:
            out.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
