"""A week of runs: the metrics watcher retires the runs that ended and were read to their
end. Later scans neither open nor stat their files, what it keeps per finished run is a
name, and what a lane shows (latest summary, live step time, `status` offline) stays right.
Real files, real run.json, the real watcher; the probes count real calls, they mock nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from autoresearch_tui.engine.runs.metrics import CACHE_FILENAME, RETIRE_UNTRACKED_AFTER_S, MetricsWatcher
from autoresearch_tui.engine.runs.run_info import update_run_info

STEPS = "".join(json.dumps({"v": 1, "kind": "step", "step": i, "step_time_s": 0.007, "warmup": i < 5}) + "\n"
                for i in range(200))


def summary_line(seconds: float) -> str:
    return json.dumps({"v": 1, "kind": "summary", "step_time_median_s": seconds, "n": 200}) + "\n"


def finished_run(runs: Path, number: int, seconds: float, status: str = "discard") -> Path:
    run_dir = runs / f"{number:04d}"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(STEPS + summary_line(seconds))
    update_run_info(run_dir, run_id=run_dir.name, status=status)
    return run_dir


class FileProbe:
    """Counts the opens (the interpreter's audit events) and stats (os.stat, which pathlib
    calls for stat/exists/is_dir) of paths under `root` while active. The real calls run."""

    _active: list[FileProbe] = []
    _hooked = False

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = str(root)
        self.opened: list[str] = []
        self.statted: list[str] = []
        if not FileProbe._hooked:  # an audit hook cannot be removed: one, for the whole session
            sys.addaudithook(FileProbe._audit)
            FileProbe._hooked = True
        real_stat = os.stat

        def counting_stat(path, *args, **kwargs):
            self._note(self.statted, path)
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", counting_stat)

    def _note(self, into: list[str], path) -> None:
        if isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(self.root):
            into.append(os.fspath(path))

    @staticmethod
    def _audit(event: str, args: tuple) -> None:
        if event == "open" and FileProbe._active:
            for probe in FileProbe._active:
                probe._note(probe.opened, args[0])

    def __enter__(self) -> FileProbe:
        self.opened.clear()
        self.statted.clear()
        FileProbe._active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        FileProbe._active.remove(self)


def test_a_scan_leaves_finished_runs_alone_and_the_lane_still_shows_the_latest(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for number in range(1, 201):
        finished_run(runs, number, 0.1 + number / 1e4, status="crash" if number % 7 == 0 else "discard")
    events = []
    watcher = MetricsWatcher("a", runs, events.append, summarize_profiles=False)
    watcher.scan_once(emit=False)  # the engine's start-up: the history, from caches or the files
    assert watcher.state.latest_summary["step_time_median_s"] == pytest.approx(0.12)
    assert all((runs / f"{n:04d}" / CACHE_FILENAME).exists() for n in (1, 100, 200))

    # A run that is going: run.json says running, its steps arrive.
    live = runs / "0201"
    live.mkdir()
    update_run_info(live, run_id="0201", status="running")
    (live / "metrics.jsonl").write_text(STEPS[: len(STEPS) // 2].rsplit("\n", 1)[0] + "\n")
    finished = [str(runs / f"{n:04d}") for n in range(1, 201)]
    probe = FileProbe(runs, monkeypatch)
    with probe:
        watcher.scan_once()
        watcher.scan_once()
    touched = [p for p in probe.opened + probe.statted if any(p.startswith(f + os.sep) or p == f for f in finished)]
    assert touched == [], f"a scan touched {len(touched)} files of finished runs, e.g. {touched[:3]}"
    assert any(p.startswith(str(live)) for p in probe.statted)  # the run going is followed
    assert watcher.state.live_step_time_ms == pytest.approx(7.0) and watcher.state.live_run_id == "0201"

    # It ends: its summary becomes the lane's latest, then it too is left alone.
    with open(live / "metrics.jsonl", "a") as handle:
        handle.write(summary_line(0.05))
    update_run_info(live, status="keep")
    events.clear()
    watcher.scan_once()
    assert [e.get("kind") for e in events if e["type"] == "metric"] == ["summary"]
    assert watcher.state.latest_value == pytest.approx(50.0)
    with probe:
        watcher.scan_once()
    assert not [p for p in probe.opened + probe.statted if p.startswith(str(live))]

    # `status` with no engine, or a restart (a fresh watcher over the caches) shows the
    # same, reading each run's cache and nothing else (its cache says it ended).
    offline = MetricsWatcher("a", runs, lambda e: None, summarize_profiles=False)
    with probe:
        offline.scan_once(emit=False)
    assert {Path(p).name for p in probe.opened} == {CACHE_FILENAME} and len(probe.opened) == 201
    assert offline.retired_runs == 201
    assert offline.snapshot()["latest_summary"] == watcher.snapshot()["latest_summary"]
    assert offline.snapshot()["loading"] is False


def test_what_the_watcher_keeps_per_finished_run_stays_small(tmp_path):
    runs = tmp_path / "runs"
    for number in range(1, 1001):
        finished_run(runs, number, 0.1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        watcher = MetricsWatcher("a", runs, lambda e: None, summarize_profiles=False, write_cache=False)
        for _ in range(3):
            watcher.scan_once()  # live, as the engine follows new runs
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert watcher.state.latest_value == pytest.approx(100.0) and watcher.state.runs == 1000
    # A name and a set slot: about 100 bytes. The per-run follower, records and paths of
    # every run ever made were about 2.5 KB each.
    assert held / 1000 < 600, f"{held / 1000:.0f} bytes kept per finished run"


def test_a_run_still_going_or_unread_is_not_retired(tmp_path):
    runs = tmp_path / "runs"
    events = []
    watcher = MetricsWatcher("a", runs, events.append, summarize_profiles=False)
    # Waiting for a device: nothing written yet, then the run starts and writes.
    waiting = runs / "0001"
    waiting.mkdir(parents=True)
    update_run_info(waiting, run_id="0001", status="waiting")
    watcher.scan_once()
    update_run_info(waiting, status="running")
    (waiting / "metrics.jsonl").write_text(STEPS)
    watcher.scan_once()
    assert watcher.state.live_run_id == "0001"
    # It ends with a last line its writer never finished: read what is complete, then retire.
    with open(waiting / "metrics.jsonl", "a") as handle:
        handle.write(summary_line(0.2) + '{"v":1,"kind":"st')
    update_run_info(waiting, status="timeout")
    watcher.scan_once()
    assert watcher.state.latest_value == pytest.approx(200.0)
    watcher.scan_once()
    assert (watcher.followed_runs, watcher.retired_runs) == (0, 1)

    # A folder without run.json (made by hand, or from before run.json): followed while
    # its file changes, retired once it has been idle for long.
    manual = runs / "0002"
    manual.mkdir()
    (manual / "metrics.jsonl").write_text(summary_line(0.3))
    watcher.scan_once()
    assert watcher.followed_runs == 1 and watcher.state.latest_value == pytest.approx(300.0)
    idle = time.time() - RETIRE_UNTRACKED_AFTER_S - 60
    os.utime(manual / "metrics.jsonl", (idle, idle))
    watcher.scan_once()
    assert (watcher.followed_runs, watcher.retired_runs) == (0, 2)

    # A retired folder removed and made again is a new run, followed from its first byte.
    for child in waiting.iterdir():
        child.unlink()
    waiting.rmdir()
    watcher.scan_once()
    waiting.mkdir()
    update_run_info(waiting, run_id="0001", status="running")
    (waiting / "metrics.jsonl").write_text(summary_line(0.04))
    events.clear()
    watcher.scan_once()
    assert [(e["run_id"], e.get("kind")) for e in events] == [("0001", "summary")]
    assert watcher.state.latest_value == pytest.approx(40.0)


def inotify_watches() -> int:
    """The inotify watches this process holds (the kernel's own list, /proc/self/fdinfo)."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    total += sum(1 for row in info if row.startswith("inotify wd:"))
        except OSError:
            continue
    return total


async def test_a_week_of_runs_is_not_a_week_of_inotify_watches_and_a_live_run_is_still_heard(tmp_path):
    """Each watch is kernel memory, counts against `max_user_watches`, and was memory in the
    watcher too: the engine's RSS grew with every run folder a lane ever made."""
    runs = tmp_path / "runs"
    for number in range(1, 151):
        finished_run(runs, number, 0.007)
    events, heard = [], asyncio.Event()

    def emit(event):
        events.append(event)
        if event.get("run_id") == "0151" and event.get("kind") == "summary":
            heard.set()

    before = inotify_watches()
    watcher = MetricsWatcher("a", runs, emit, poll_s=60)  # no polling in this test: inotify alone
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        while not watcher.loaded:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert inotify_watches() - before == 1  # the runs folder; not 151 folders
        live = runs / "0151"
        live.mkdir()
        update_run_info(live, run_id="0151", status="running")
        (live / "metrics.jsonl").write_text(STEPS)
        deadline = time.monotonic() + 10
        while watcher.followed_runs == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert inotify_watches() - before == 2  # and the run still going
        with open(live / "metrics.jsonl", "a") as handle:
            handle.write(summary_line(0.0065))
        await asyncio.wait_for(heard.wait(), timeout=10)
        update_run_info(live, run_id="0151", status="keep")
        deadline = time.monotonic() + 10
        while watcher.followed_runs and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert watcher.followed_runs == 0 and watcher.state.latest_value == pytest.approx(6.5)
        await asyncio.sleep(0.5)
        assert inotify_watches() - before == 1
        assert not [e for e in events if e.get("type") == "warning"]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
