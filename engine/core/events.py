"""Events: one JSON object per line, `{"ts", "lane", "type", ...}` (docs/architecture.md).

Everything the engine knows goes to disk first (events.jsonl per lane); subscribers
(the socket, `run --events-jsonl`) see each event as it was written. A disk that refuses a
write (full, failing) delays the line, never the lane (see EventLog). Every string is
redacted before it is written, so a credential echoed by a tool never reaches a log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

# The one redactor lives in secrets.py; events re-export it (`events.redact`).
from .secrets import redact, redact_values  # noqa: F401

EVENT_TYPES = (
    "lane_state", "assistant_text", "tool_use", "tool_result", "tool_denied", "injection",
    "stop_blocked", "stop_allowed", "retrospective", "run_started", "run_output",
    "run_finished", "run_recorded", "metric", "profile_summary", "merge", "fork", "error",
    "warning", "cost", "user_message", "session", "api_retry", "config",
    "lease_wait", "lease_acquired", "lease_released", "lease_cancelled",
    "cluster_queued", "cluster_started",
    "claim_ignored", "check_started", "check_finished", "confirmation",
)
"""Every type the engine and the hooks write (a test checks the code against this list)."""
STEP_TYPE = "step"
"""Not a type of its own: `metric` events of kind `step` (one per benchmark step). Readers
that show events to people hide them unless asked for by this name."""

NUMBER_DIGITS = 12
"""Significant digits of a float written to an event, a reply or a tool answer: enough for
any measurement, and float noise (6.765000000000001) never shows. Timestamps (TIME_KEYS)
keep their full precision."""
TIME_KEYS = re.compile(r"^(ts|since|before|last_activity|replayed_until)$|_(at|ts)$")

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

KEEP_SEGMENTS = 16
"""Rotated segments kept per log (16 x 64 MB = 1 GB per lane); older ones are deleted."""
PENDING_LIMIT_BYTES = 8 * 1024 * 1024
"""Events kept in memory while the disk refuses writes; past this the oldest are lost (counted)."""


_C1_ESCAPES = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0))}


def dumps(value: Any) -> str:
    """One JSON line of text: UTF-8 as is, but DEL and C1 controls escaped (\\u009d), so a log shown
    with `cat` or `tail -f` cannot drive the terminal (json escapes C0 itself)."""
    return json.dumps(value, ensure_ascii=False, default=str).translate(_C1_ESCAPES)


def tidy_number(value: float) -> float:
    """`value` with NUMBER_DIGITS significant digits (non-finite values unchanged)."""
    if not math.isfinite(value):
        return value
    return float(f"{value:.{NUMBER_DIGITS}g}")


def tidy_numbers(value: Any) -> Any:
    """Every float inside `value` (dicts, lists) with NUMBER_DIGITS significant digits,
    except timestamps (the values of TIME_KEYS)."""
    if isinstance(value, float):
        return tidy_number(value)
    if isinstance(value, dict):
        return {key: item if isinstance(key, str) and TIME_KEYS.search(key) else tidy_numbers(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [tidy_numbers(item) for item in value]
    return value


def is_step(event: Event) -> bool:
    """A per-step metric event (see STEP_TYPE)."""
    return event.get("type") == "metric" and event.get("kind") == "step"


def make_event(lane: str, type: str, **fields: Any) -> Event:
    return {"ts": time.time(), "lane": lane, "type": type, **fields}


def encode_event(event: Event) -> str:
    """The event's line in events.jsonl (redacted, with its newline)."""
    return dumps(tidy_numbers(redact_values(event))) + "\n"


def append_event(path: Path | str, event: Event) -> None:
    """Append one event to a log with a single O_APPEND write (for one-off writers: hooks,
    the `merge` command); a long-lived writer uses EventLog."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, encode_event(event).encode("utf-8"))
    finally:
        os.close(fd)


class EventLog:
    """Append-only events.jsonl with size-based rotation and a retention limit.

    Rotation renames `events.jsonl` to `events.<n>.jsonl` (n increasing), so readers can
    walk all segments in order with `segments()`; only the newest `keep_segments` rotated
    segments are kept.

    A write never raises: when the disk refuses it (ENOSPC, EIO, ...) the event stays in a
    bounded in-memory backlog and is written, whole and in order, by the next append or
    `retry()` that succeeds; events pushed out of a full backlog are counted in `lost`.
    `error` is the last failure while writes fail, None once they work again.
    """

    def __init__(self, path: Path, rotate_bytes: int = 64 * 1024 * 1024,
                 keep_segments: int = KEEP_SEGMENTS, pending_limit_bytes: int = PENDING_LIMIT_BYTES):
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.keep_segments = keep_segments
        self.pending_limit_bytes = pending_limit_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._head_written = 0  # bytes of the oldest pending line already on disk
        self.error: OSError | None = None
        self.lost = 0
        self.failed_writes = 0
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, event: Event) -> Event:
        """Write one event; returns it as written (credentials redacted) for publishing."""
        event = tidy_numbers(redact_values(event))
        line = (dumps(event) + "\n").encode("utf-8")
        with self._lock:
            self._pending.append(line)
            self._pending_bytes += len(line)
            self._drain()
            while self._pending_bytes > self.pending_limit_bytes and len(self._pending) > 1:
                index = 1 if self._head_written else 0  # a half-written line must be finished
                self._pending_bytes -= len(self._pending[index])
                del self._pending[index]
                self.lost += 1
        return event

    def retry(self) -> bool:
        """Write what the disk refused earlier; True when nothing is left pending."""
        with self._lock:
            return self._drain()

    def _drain(self) -> bool:
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._size = os.fstat(self._fd).st_size
            while self._pending:
                line = self._pending[0]
                while self._head_written < len(line):  # the rest of a line a full disk cut short
                    written = os.write(self._fd, line[self._head_written:])
                    if written <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                    self._head_written += written
                    self._size += written
                self._pending.popleft()
                self._pending_bytes -= len(line)
                self._head_written = 0
                if self._size >= self.rotate_bytes:
                    self._rotate()
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(self.path)
            self.error = exc
            self.failed_writes += 1
            return False
        self.error = None
        return True

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        numbers = [segment_number(p) for p in self.path.parent.glob(f"{self.path.stem}.*.jsonl")]
        target = self.path.with_name(f"{self.path.stem}.{max(numbers, default=0) + 1}.jsonl")
        os.replace(self.path, target)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}.*.jsonl"), key=segment_number)
        for old in rotated[: max(0, len(rotated) - self.keep_segments)]:
            with contextlib.suppress(OSError):
                old.unlink()

    def close(self) -> None:
        with self._lock:
            self._drain()
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None


def segment_number(path: Path) -> int:
    try:
        return int(path.name.split(".")[-2])
    except (ValueError, IndexError):
        return 0


def segments(path: Path) -> list[Path]:
    """All files of a rotated log, oldest first, the live file last."""
    path = Path(path)
    rotated = sorted(path.parent.glob(f"{path.stem}.*.jsonl"), key=segment_number)
    return [*rotated, path] if path.exists() else rotated


def read_events(path: Path) -> list[Event]:
    """Every complete, valid event of a (possibly rotated) log; bad lines are skipped."""
    events = []
    for segment in segments(path):
        with open(segment, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # half-written tail
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
    return events


def _lines_backwards(path: Path, block: int = 256 * 1024):
    """Complete lines of a file, last first, reading fixed-size blocks from the end."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        remainder = b""
        first_block = True
        while position > 0:
            size = min(block, position)
            position -= size
            handle.seek(position)
            data = handle.read(size) + remainder
            lines = data.split(b"\n")
            remainder = lines.pop(0)
            if first_block:
                first_block = False
                if lines and lines[-1] != b"":
                    lines.pop()  # a half-written tail: not an event yet
                elif lines:
                    lines.pop()  # the empty string after the final newline
            for line in reversed(lines):
                yield line
        if remainder and not first_block:
            yield remainder


def tail_events(path: Path, limit: int = 500, before: float | None = None,
                types: set[str] | None = None, since: float | None = None,
                where: Callable[[Event], bool] | None = None) -> list[Event]:
    """The newest `limit` events (oldest first) older than `before` and newer than `since`
    (of `types`, and for which `where(event)` holds, when given).

    Reads from the end of the newest segment backwards, so the cost depends on how much
    history is asked for, not on how large the logs have grown.
    """
    found: list[Event] = []
    for segment in reversed(segments(path)):
        for raw in _lines_backwards(segment):
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(event, dict):
                continue
            ts = event.get("ts", 0)
            if since is not None and isinstance(ts, (int, float)) and ts <= since:
                return list(reversed(found))
            if before is not None and isinstance(ts, (int, float)) and ts >= before:
                continue
            if types and event.get("type") not in types:
                continue
            if where is not None and not where(event):
                continue
            found.append(event)
            if len(found) >= limit:
                return list(reversed(found))
    return list(reversed(found))


def _event_ts(raw: bytes) -> float | None:
    try:
        event = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ts = event.get("ts") if isinstance(event, dict) else None
    return float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None


def _offset_after(handle, size: int, since: float, block: int = 64 * 1024) -> int:
    """A byte offset at or before the first line whose ts is after `since`.

    Events are appended in time order, so a binary search on line starts finds it in
    O(log size) reads; the caller still skips lines up to `since` from there."""
    low, high = 0, size
    while high - low > block:
        middle = (low + high) // 2
        handle.seek(middle)
        handle.readline()  # the rest of a line that started before `middle`
        ts = None
        position = handle.tell()
        while ts is None and position < high:
            line = handle.readline()
            if not line.endswith(b"\n"):
                break
            ts = _event_ts(line)
            if ts is None:
                position = handle.tell()
        if ts is None or ts > since:
            high = middle
        else:
            low = position
    return low


def iter_events(path: Path, since: float | None = None, types: set[str] | None = None):
    """Every complete event after `since` (all without it), oldest first, as a stream.

    Memory stays flat whatever the size of the logs: lines are read one at a time, and
    `since` is found by a binary search in each segment instead of a scan."""
    for segment in segments(path):
        try:
            handle = open(segment, "rb")
        except OSError:
            continue
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if since is not None:
                last = next(_lines_backwards(segment), None)
                last_ts = _event_ts(last) if last is not None else None
                if last_ts is not None and last_ts <= since:
                    continue  # the whole segment is older
                handle.seek(_offset_after(handle, size, since))
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # half-written tail
                try:
                    event = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if not isinstance(event, dict):
                    continue
                ts = event.get("ts", 0)
                if since is not None and isinstance(ts, (int, float)) and ts <= since:
                    continue
                if types and event.get("type") not in types:
                    continue
                yield event
