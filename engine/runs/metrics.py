"""Metrics from benchmark runs: parse, follow and aggregate `runs/<run_id>/metrics.jsonl`.

A workload appends one JSON object per line (docs/architecture.md, "Metrics from a run"):

    {"v":1,"kind":"step","step":12,"step_time_s":0.1182,"warmup":false}
    {"v":1,"kind":"summary","step_time_median_s":0.1183,"p10_s":...,"p90_s":...,"n":50,
     "mfu":null,"hbm_peak_bytes":null,"compile_s":0.49}
    {"v":1,"kind":"profile","dir":"profile/plugins/profile/2026_11_26_06_00_00"}

- `parse_metrics_line` validates one line (unknown kinds and fields pass through; wrong
  types raise `MetricsParseError`).
- `MetricsFollower` reads only complete lines of one growing file.
- `LaneMetrics` keeps what a lane's runs report live (latest summary, step time, profile);
  baseline, best and change are the ledger's (engine/core/ledger.Frontier), never this.
- `MetricsWatcher` follows every run folder of one lane (watchfiles, or `scan_once()`),
  emits `metric` and `warning` events (and `profile_summary` events from `run()`), and
  never raises.

Nothing here knows about the engine beyond `make_event`: the watcher takes a lane name,
a runs folder and an emit callback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.core.events import Event, make_event

log = logging.getLogger(__name__)

METRICS_VERSION = 1
METRICS_FILENAME = "metrics.jsonl"
MAX_LINE_BYTES = 1 << 20
"""A longer line is reported as malformed and skipped (a runaway writer must not eat memory)."""
MAX_WARNINGS_PER_FILE = 5

Record = dict[str, Any]


class MetricsParseError(ValueError):
    """A metrics line that is not a valid v1 record; the message says why, in one line."""


# ----------------------------------------------------------------------------- parsing

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# kind -> {field: (required, check, description)}
_NUMBER = (_is_number, "a finite number")
_NUMBER_OR_NULL = (lambda v: v is None or _is_number(v), "a finite number or null")
_COUNT = (lambda v: _is_int(v) and v >= 0, "a non-negative integer")
_COUNT_OR_NULL = (lambda v: v is None or (_is_int(v) and v >= 0), "a non-negative integer or null")
_BYTES_OR_NULL = (
    lambda v: v is None or (_is_number(v) and v >= 0 and float(v).is_integer()),
    "a non-negative integer or null",
)
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0, "a non-negative finite number")
_NON_NEGATIVE_OR_NULL = (lambda v: v is None or (_is_number(v) and v >= 0), "a non-negative number or null")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_PATH = (lambda v: isinstance(v, str) and v.strip() != "" and "\x00" not in v, "a non-empty string")

SCHEMA: dict[str, dict[str, tuple[bool, Callable[[Any], bool], str]]] = {
    "step": {
        "step": (True, *_COUNT),
        "step_time_s": (True, *_NON_NEGATIVE),
        "warmup": (False, *_BOOL),
    },
    "summary": {
        # Required only where the metric is a step time: a summary may carry just its metric
        # ({"v":1,"kind":"summary","score":41.0}); the engine asks for what the metric needs.
        "step_time_median_s": (False, *_NON_NEGATIVE),
        "p10_s": (False, *_NON_NEGATIVE_OR_NULL),
        "p90_s": (False, *_NON_NEGATIVE_OR_NULL),
        "n": (False, *_COUNT_OR_NULL),
        "mfu": (False, *_NUMBER_OR_NULL),
        "hbm_peak_bytes": (False, *_BYTES_OR_NULL),
        "compile_s": (False, *_NON_NEGATIVE_OR_NULL),
    },
    "profile": {
        "dir": (True, *_PATH),
    },
}
KNOWN_KINDS = tuple(SCHEMA)


def _parse_constant(name: str):
    raise MetricsParseError(f"{name} is not valid JSON")


def parse_metrics_line(line: str | bytes) -> Record:
    """One metrics line -> its record (a dict), or `MetricsParseError`.

    Known kinds (step, summary, profile) have their fields type-checked; unknown kinds and
    unknown fields are returned unchanged (forward compatibility). Nothing but
    `MetricsParseError` is raised, whatever the input.
    """
    if isinstance(line, (bytes, bytearray)):
        if len(line) > MAX_LINE_BYTES:
            raise MetricsParseError(f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            raise MetricsParseError("line is not valid UTF-8") from None
    if not isinstance(line, str):
        raise MetricsParseError(f"expected a line of text, got {type(line).__name__}")
    if len(line) > MAX_LINE_BYTES:
        raise MetricsParseError(f"line longer than {MAX_LINE_BYTES} characters")
    text = line.strip()
    if not text:
        raise MetricsParseError("empty line")
    try:
        record = json.loads(text, parse_constant=_parse_constant)
    except MetricsParseError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MetricsParseError(f"not JSON: {_short(str(exc))}") from None
    if not isinstance(record, dict):
        raise MetricsParseError(f"expected a JSON object, got {type(record).__name__}")
    version = record.get("v")
    if not _is_int(version):
        raise MetricsParseError(f"v: expected {METRICS_VERSION}, got {_short(repr(version))}")
    if version != METRICS_VERSION:
        raise MetricsParseError(f"v: unsupported version {version} (this reader knows {METRICS_VERSION})")
    kind = record.get("kind")
    if not isinstance(kind, str) or not kind:
        raise MetricsParseError(f"kind: expected a string, got {_short(repr(kind))}")
    for name, (required, check, description) in SCHEMA.get(kind, {}).items():
        if name not in record:
            if required:
                raise MetricsParseError(f"{kind}.{name}: required")
            continue
        if not check(record[name]):
            raise MetricsParseError(f"{kind}.{name}: expected {description}, got {_short(repr(record[name]))}")
    return record


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- following

class MetricsFollower:
    """Reads the complete lines appended to one file since the last call.

    A last line without its newline is left for a later call (the writer may be halfway
    through it). A file that shrank (truncated or replaced) is read again from the start.
    Lines longer than MAX_LINE_BYTES are returned as bytes of that length so the caller
    reports them as malformed; nothing here raises except OSError from reading.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.offset = 0
        self.line_number = 0
        self._skipping_long_line = False

    def read_lines(self) -> list[tuple[int, str]]:
        """New complete lines as (1-based line number, text without the newline)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset = 0
            self.line_number = 0
            self._skipping_long_line = False
        if size == self.offset:
            return []
        out: list[tuple[int, str]] = []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            raw = data[start:end]
            start = end + 1
            self.line_number += 1
            if self._skipping_long_line:
                self._skipping_long_line = False
                out.append((self.line_number, _TOO_LONG))
                continue
            out.append((self.line_number, raw.decode("utf-8", errors="replace")))
        pending = len(data) - start
        if pending > MAX_LINE_BYTES and not self._skipping_long_line:
            # A runaway line without a newline yet: drop what we have, report it when it ends.
            self._skipping_long_line = True
            start = len(data)
        elif self._skipping_long_line:
            start = len(data)
        self.offset += start
        return out


_TOO_LONG = "\x00line too long"


# ----------------------------------------------------------------------------- aggregation

def metric_value(record: Record, metric: str) -> float | None:
    """The configured metric of a summary record (step_time_ms from the median, else by name)."""
    value = record.get(metric)
    if _is_number(value):
        return float(value)
    if metric == "step_time_ms" and _is_number(record.get("step_time_median_s")):
        return float(record["step_time_median_s"]) * 1e3
    if metric == "step_time_s" and _is_number(record.get("step_time_median_s")):
        return float(record["step_time_median_s"])
    return None


@dataclass
class LaneMetrics:
    """What a lane's benchmarks report as they run: the latest summary, the live step time,
    the latest profile. Verdicts (baseline, best, change) are the ledger's, not this."""

    metric: str = "step_time_ms"
    runs: int = 0
    """Summaries seen."""
    latest_summary: Record | None = None
    latest_value: float | None = None
    live_step_time_ms: float | None = None
    live_run_id: str | None = None
    latest_profile: dict | None = None

    def add_summary(self, run_id: str, record: Record) -> None:
        self.latest_summary = record
        self.latest_value = metric_value(record, self.metric)
        self.runs += 1

    def add_step(self, run_id: str, record: Record) -> None:
        if _is_number(record.get("step_time_s")) and not record.get("warmup"):
            self.live_step_time_ms = float(record["step_time_s"]) * 1e3
            self.live_run_id = run_id

    def to_dict(self) -> dict:
        """The snapshot's `metrics` (engine/core/snapshot.LiveMetrics)."""
        return {
            "latest_summary": self.latest_summary,
            "live_step_time_ms": self.live_step_time_ms,
            "live_run_id": self.live_run_id,
            "latest_profile": self.latest_profile,
        }


# ----------------------------------------------------------------------------- watching

_RESERVED = {"ts", "lane", "type"}


def _natural_key(name: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


class MetricsWatcher:
    """Follows `runs_dir/*/metrics.jsonl` of one lane and emits events; never raises.

    - `scan_once(emit=True)` (sync): reads whatever is new in every run folder (new folders
      included), updates `state`, calls `emit(event)` per event and returns the events.
      Call it with `emit=False` at start-up to rebuild state from disk without re-logging.
    - `await run(stop_event)`: scan, then scan again on every change watchfiles reports
      (and every `poll_s` regardless); profile records are summarized in a thread and
      reported as `profile_summary` events.

    Events: `metric` (lane, run_id, the record's fields, `kind`, plus `step_time_ms` for
    steps and summaries and, for summaries, `metric` and its `value`) and `warning`
    (source "metrics", run_id, path, line, message).
    """

    def __init__(
        self,
        lane: str,
        runs_dir: Path | str,
        emit: Callable[[Event], Any],
        *,
        metric: str = "step_time_ms",
        summarize_profiles: bool = True,
        poll_s: float = 2.0,
    ):
        self.lane = lane
        self.runs_dir = Path(runs_dir)
        self.emit = emit
        self.state = LaneMetrics(metric=metric)
        self.summarize_profiles = summarize_profiles
        self.poll_s = poll_s
        self._followers: dict[str, MetricsFollower] = {}
        self._warnings: dict[str, int] = {}
        self.pending_profiles: list[tuple[str, Path]] = []

    # -- sync part

    def scan_once(self, emit: bool = True) -> list[Event]:
        events: list[Event] = []
        try:
            run_dirs = sorted(
                (p for p in self.runs_dir.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name)
            ) if self.runs_dir.is_dir() else []
        except OSError as exc:
            events += self._warning("", self.runs_dir, None, f"cannot list runs: {exc}")
            run_dirs = []
        for run_dir in run_dirs:
            run_id = run_dir.name
            follower = self._followers.get(run_id)
            if follower is None:
                follower = self._followers[run_id] = MetricsFollower(run_dir / METRICS_FILENAME)
            try:
                lines = follower.read_lines()
            except OSError as exc:
                events += self._warning(run_id, follower.path, None, f"cannot read: {exc}")
                continue
            for number, text in lines:
                events.extend(self._handle_line(run_id, run_dir, follower.path, number, text, emit))
        if emit:
            for event in events:
                self._emit(event)
        return events

    def _handle_line(self, run_id, run_dir, path, number, text, emit) -> list[Event]:
        if not text.strip():
            return []
        try:
            if text == _TOO_LONG:
                raise MetricsParseError(f"line longer than {MAX_LINE_BYTES} bytes")
            record = parse_metrics_line(text)
        except MetricsParseError as exc:
            return self._warning(run_id, path, number, str(exc))
        except Exception as exc:  # defensive: parsing must never take the engine down
            return self._warning(run_id, path, number, f"unexpected error: {exc!r}")
        kind = record["kind"]
        if kind not in KNOWN_KINDS:
            return []  # a newer writer's record: ignore quietly
        fields = {k: v for k, v in record.items() if k not in _RESERVED}
        fields["run_id"] = run_id
        if kind == "step":
            self.state.add_step(run_id, record)
            fields["step_time_ms"] = record["step_time_s"] * 1e3
        elif kind == "summary":
            self.state.add_summary(run_id, record)
            if _is_number(record.get("step_time_median_s")):
                fields["step_time_ms"] = record["step_time_median_s"] * 1e3
            for name in ("p10", "p90"):
                if _is_number(record.get(f"{name}_s")):
                    fields[f"{name}_ms"] = record[f"{name}_s"] * 1e3
            fields.update(metric=self.state.metric, value=self.state.latest_value)
        elif kind == "profile":
            profile_dir = (run_dir / record["dir"]).resolve()
            fields["path"] = str(profile_dir)
            self.state.latest_profile = {"run_id": run_id, "path": str(profile_dir)}
            if emit and self.summarize_profiles:
                self.pending_profiles.append((run_id, profile_dir))
        return [make_event(self.lane, "metric", **fields)]

    def _warning(self, run_id: str, path: Path, line: int | None, message: str) -> list[Event]:
        """A warning event in a list, or [] once a file has used up its warnings."""
        key = str(path)
        count = self._warnings.get(key, 0) + 1
        self._warnings[key] = count
        if count > MAX_WARNINGS_PER_FILE:
            return []
        if count == MAX_WARNINGS_PER_FILE:
            message += " (further malformed lines in this file are not reported)"
        return [make_event(
            self.lane, "warning", source="metrics", run_id=run_id, path=str(path), line=line,
            message=f"{path.name}:{line}: {message}" if line else message,
        )]

    def _emit(self, event: Event) -> None:
        try:
            self.emit(event)
        except Exception:  # the engine's callback failing must not stop the watcher
            log.exception("metrics watcher: emit failed")

    # -- async part

    async def summarize_pending(self) -> list[Event]:
        """Summarize queued profiles in a worker thread; emit one profile_summary each."""
        events = []
        while self.pending_profiles:
            run_id, path = self.pending_profiles.pop(0)
            event = await asyncio.to_thread(self._summarize, run_id, path)
            self._emit(event)
            events.append(event)
        return events

    def _summarize(self, run_id: str, path: Path) -> Event:
        try:
            from autoresearch_tui.engine.profile.summary import summarize

            summary = summarize(path).to_dict()
        except Exception as exc:  # ProfileError or anything unexpected: report, go on
            return make_event(self.lane, "profile_summary", run_id=run_id, path=str(path),
                              summary=None, error=str(exc) or type(exc).__name__)
        self.state.latest_profile = {"run_id": run_id, "path": str(path), "summary": summary}
        return make_event(self.lane, "profile_summary", run_id=run_id, path=str(path), summary=summary)

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Follow until `stop_event` is set (or the task is cancelled)."""
        from watchfiles import awatch

        stop_event = stop_event or asyncio.Event()
        self.scan_once()
        await self.summarize_pending()
        while not stop_event.is_set():
            try:
                self.runs_dir.mkdir(parents=True, exist_ok=True)
                async for _changes in awatch(
                    self.runs_dir, stop_event=stop_event, debounce=200, step=50,
                    rust_timeout=int(self.poll_s * 1000), yield_on_timeout=True,
                    recursive=True,
                ):
                    self.scan_once()
                    await self.summarize_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # watch failed (folder removed, inotify limits): poll
                for event in self._warning("", self.runs_dir, None, f"watch failed, polling: {exc}"):
                    self._emit(event)
                self._warnings.pop(str(self.runs_dir), None)
                try:
                    await asyncio.wait_for(stop_event.wait(), timeout=self.poll_s)
                except asyncio.TimeoutError:
                    pass
                self.scan_once()
                await self.summarize_pending()


def read_run_summary(path: Path | str) -> tuple[Record | None, str | None, list[str]]:
    """(last summary record, last profile dir, warnings) of a finished run's metrics.jsonl.

    The one reader for the ledger (record_run) and the benchmark answer; bad lines are
    skipped with a warning naming the line, a missing file is simply no summary."""
    summary: Record | None = None
    profile: str | None = None
    warnings: list[str] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, None, warnings
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = parse_metrics_line(line)
        except MetricsParseError as exc:
            warnings.append(f"metrics.jsonl line {number}: {exc}")
            continue
        if record.get("kind") == "summary":
            summary = record
        elif record.get("kind") == "profile":
            profile = record["dir"]
    return summary, profile, warnings
