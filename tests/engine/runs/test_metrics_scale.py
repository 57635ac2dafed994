"""Metrics at the scale of an unattended week: files read in bounded chunks, per-run
aggregates cached beside metrics.jsonl, the engine's socket open before the history loads,
and a run that writes too much cut off. Real files, real processes, a real daemon."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_tui.engine.runs.metrics import CACHE_FILENAME, MetricsWatcher, read_run_summary
from tests.support import REPO_ROOT, make_workspace, wait_until

pytestmark = pytest.mark.timeout(240)

STEP = json.dumps({"v": 1, "kind": "step", "step": 1, "step_time_s": 0.1, "warmup": False,
                   "loss": 2.5, "tokens_per_s": 41000.0})
BLOCK = ((STEP + "\n") * ((1 << 20) // (len(STEP) + 1))).encode()  # ~1 MB of step records


def summary(seconds: float) -> str:
    return json.dumps({"v": 1, "kind": "summary", "step_time_median_s": seconds, "n": 30}) + "\n"


def write_run(run_dir: Path, megabytes: int, seconds: float) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.jsonl"
    with open(path, "wb") as handle:
        for _ in range(megabytes):
            handle.write(BLOCK)
        handle.write(summary(seconds).encode())
    return path


def peak_rss_mb(code: str) -> float:
    """Run `code` in a fresh interpreter; its peak RSS in MB (what the engine would hold)."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport resource\n"
                          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                         capture_output=True, text=True, timeout=200, cwd=REPO_ROOT, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_following_a_300_mb_metrics_file_holds_a_bounded_amount_of_memory(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "0001", 300, 0.1)
    baseline = peak_rss_mb("import autoresearch_tui.engine.runs.metrics")
    peak = peak_rss_mb(
        "from autoresearch_tui.engine.runs.metrics import MetricsWatcher\n"
        f"w = MetricsWatcher('a', {str(runs)!r}, lambda e: None, write_cache=False)\n"
        "events = w.scan_once(emit=True)\n"  # followed live, from the first byte
        "assert w.state.latest_value == 100.0, w.state.to_dict()\n")
    assert peak - baseline < 120, f"{peak - baseline:.0f} MB to follow a 300 MB file"
    reader = peak_rss_mb(
        "from autoresearch_tui.engine.runs.metrics import read_run_summary\n"
        f"s, p, w = read_run_summary({str(runs / '0001' / 'metrics.jsonl')!r})\n"
        "assert s['step_time_median_s'] == 0.1 and w == []\n")
    assert reader - baseline < 60, f"{reader - baseline:.0f} MB to read one summary"


def test_a_restart_reads_each_runs_cached_summary_not_its_history(tmp_path):
    runs = tmp_path / "runs"
    for i, seconds in enumerate((0.2, 0.1, 0.15), start=1):
        write_run(runs / f"{i:04d}", 3, seconds)
    first = MetricsWatcher("a", runs, lambda e: None)
    first.scan_once(emit=False)
    assert first.state.runs == 3 and first.state.latest_value == 150.0
    assert all((runs / f"{i:04d}" / CACHE_FILENAME).exists() for i in (1, 2, 3))
    # The history itself is no longer read: garble it in place (same file, same size).
    for i in (1, 2, 3):
        path = runs / f"{i:04d}" / "metrics.jsonl"
        with open(path, "r+b") as handle:
            handle.write(b"#" * (path.stat().st_size - 200))
    warnings: list[dict] = []
    second = MetricsWatcher("a", runs, warnings.append)
    second.scan_once(emit=False)
    assert second.state.runs == 3 and second.state.latest_value == 150.0
    # New lines after the cached offset are still followed.
    with open(runs / "0003" / "metrics.jsonl", "a") as handle:
        handle.write(summary(0.05))
    second.scan_once(emit=True)
    assert second.state.latest_value == 50.0 and warnings[-1]["kind"] == "summary"


def test_a_run_past_the_metrics_cap_is_read_no_further_but_keeps_its_final_summary(tmp_path):
    runs = tmp_path / "runs"
    events: list[dict] = []
    watcher = MetricsWatcher("a", runs, events.append, max_metrics_bytes=2 << 20)
    (runs / "0001").mkdir(parents=True)
    watcher.scan_once()
    write_run(runs / "0001", 6, 0.3)
    watcher.scan_once()
    warnings = [e for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "passed 2 MB" in warnings[0]["message"]
    assert watcher._runs["0001"].follower.offset <= 2 << 20
    assert watcher.state.latest_value == pytest.approx(300.0)  # the final summary still counts


def test_a_benchmark_writing_past_the_cap_is_cut_off(tmp_path):
    from autoresearch_tui.engine.runs.benchmark import run_benchmark

    script = tmp_path / "floods.py"
    script.write_text("import os, time\n"
                      "with open(os.environ['AUTORESEARCH_METRICS'], 'ab') as f:\n"
                      f"    block = {BLOCK[:100_000]!r}\n"
                      "    for _ in range(60):\n"
                      "        f.write(block); f.flush()\n"
                      "time.sleep(60)\n")
    result = asyncio.run(run_benchmark(
        f"{sys.executable} {script}", cwd=tmp_path, run_id="0001", run_dir=tmp_path / "runs" / "0001",
        env=dict(os.environ), timeout_s=60, hang_timeout_s=60, max_metrics_bytes=1 << 20))
    assert result.status == "metrics_limit" and result.seconds < 30
    assert "metrics.jsonl passed 1048576 bytes" in (tmp_path / "runs" / "0001" / "run.log").read_text()


async def test_the_engine_answers_at_once_and_loads_a_large_history_behind_its_socket(tmp_path):
    from autoresearch_tui.engine.client import EngineClient
    from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon
    from autoresearch_tui.engine.protocol import socket_path
    from autoresearch_tui.engine.workspace import Workspace

    config = make_workspace(tmp_path / "ws", loop="idle_nudge_minutes = 600")
    (tmp_path / "ws" / "autoresearch.toml").write_text(
        config.path.read_text().replace('[[lanes]]\nname = "a"', "[agent]\nscripted_demo = true\n\n"
                                        '[[lanes]]\nname = "a"'))
    workspace = Workspace(config)
    runs = workspace.runs_dir("a")
    first = write_run(runs / "0001", 2, 0.2)
    for i in range(2, 121):  # 120 runs x 2 MB of step records (hard links: cheap to make)
        (runs / f"{i:04d}").mkdir(parents=True)
        os.link(first, runs / f"{i:04d}" / "metrics.jsonl")
    pid = spawn_daemon(config, timeout=30)  # the previous engine timed out here
    try:
        client = await EngineClient.connect(socket_path(workspace.root))
        assert (await client.request("ping", timeout=5))["ok"]
        async def loaded() -> dict:
            return (await client.request("snapshot", timeout=10))["snapshot"]["lanes"]["a"]["metrics"]
        deadline = asyncio.get_running_loop().time() + 120
        metrics = await loaded()
        while metrics.get("loading") and asyncio.get_running_loop().time() < deadline:
            assert (await client.request("ping", timeout=5))["ok"]
            await asyncio.sleep(0.2)
            metrics = await loaded()
        assert metrics["loading"] is False and metrics["latest_summary"]["step_time_median_s"] == 0.2
        await client.request("stop_engine")
        await client.close()
        await wait_until(lambda: running_pid(workspace) is None, timeout=60, what="engine exit")
    finally:
        if running_pid(workspace):
            os.kill(pid, 9)
