"""EventLog on a disk that refuses writes: nothing raises, nothing is torn, the backlog is
written in order once the disk accepts writes again, and what could not be kept is counted.

The disk is simulated here by failing `os.write` (ENOSPC, once after a partial write);
tests/engine/agent/test_disk_full.py fills a real tmpfs."""

from __future__ import annotations

import errno
import os

from autoresearch_tui.engine.core import events as events_module
from autoresearch_tui.engine.core.events import EventLog, read_events


class FlakyDisk:
    """os.write that fails with ENOSPC while `full`, after writing `partial` bytes once."""

    def __init__(self, partial: int = 0):
        self.full = False
        self.partial = partial
        self.real = os.write

    def write(self, fd, data):
        if self.full:
            if self.partial:
                written, self.partial = self.real(fd, bytes(data[: self.partial])), 0
                return written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(fd, data)


def event(i: int) -> dict:
    return {"ts": float(i), "lane": "a", "type": "tool_result", "i": i, "output": "x" * 30}


def test_a_full_disk_delays_events_and_writes_them_whole_and_in_order_afterwards(tmp_path, monkeypatch):
    disk = FlakyDisk(partial=17)  # the first refused line is half on disk
    monkeypatch.setattr(events_module.os, "write", disk.write)
    log = EventLog(tmp_path / "events.jsonl")
    log.append(event(0))
    disk.full = True
    for i in range(1, 6):
        assert log.append(event(i))["i"] == i  # never raises; the event still comes back
    assert log.error is not None and log.error.errno == errno.ENOSPC
    assert log.pending == 5 and log.lost == 0
    disk.full = False
    assert log.retry() is True and log.error is None and log.pending == 0
    log.close()
    assert [e["i"] for e in read_events(tmp_path / "events.jsonl")] == [0, 1, 2, 3, 4, 5]
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 6  # the half-written line was finished, not duplicated or torn


def test_events_beyond_the_backlog_limit_are_counted_as_lost(tmp_path, monkeypatch):
    disk = FlakyDisk()
    monkeypatch.setattr(events_module.os, "write", disk.write)
    log = EventLog(tmp_path / "events.jsonl", pending_limit_bytes=1000)
    disk.full = True
    for i in range(100):
        log.append(event(i))
    assert log.lost > 0 and log.pending + log.lost == 100
    disk.full = False
    log.append(event(100))
    log.close()
    kept = [e["i"] for e in read_events(tmp_path / "events.jsonl")]
    assert kept == list(range(log.lost, 101))  # the oldest went; the rest is whole and in order
