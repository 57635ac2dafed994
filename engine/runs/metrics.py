"""Metrics from benchmark runs: parse, follow and aggregate `runs/<run_id>/metrics.jsonl`.

A workload appends one JSON object per line (docs/architecture.md, "Metrics from a run"):

    {"v":1,"kind":"step","step":12,"step_time_s":0.1182,"warmup":false}
    {"v":1,"kind":"summary","step_time_median_s":0.1183,"p10_s":...,"p90_s":...,"n":50,
     "mfu":null,"hbm_peak_bytes":null,"compile_s":0.49}
    {"v":1,"kind":"profile","dir":"profile/plugins/profile/2026_11_26_06_00_00"}

- `parse_metrics_line` validates one line (unknown kinds and fields pass through; wrong
  types raise `MetricsParseError`).
- `MetricsFollower` reads only complete lines of one growing file, in bounded chunks.
- `LaneMetrics` keeps what a lane's runs report live (latest summary, step time, profile);
  baseline, best and change are the ledger's (engine/core/ledger.Frontier), never this.
- `MetricsWatcher` follows the run folders of one lane (watchfiles, or `scan_once()`),
  emits `metric` and `warning` events (and `profile_summary` events from `run()`), and
  never raises. A run that has ended and is read to its end is retired to its name.

Nothing here knows about the engine beyond `make_event`: the watcher takes a lane name,
a runs folder and an emit callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.core.events import Event, make_event
from autoresearch_tui.engine.core.files import atomic_write_json
from autoresearch_tui.engine.runs.run_info import is_final, read_run_info

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
    """A finite number that fits a float (a 400-digit integer does not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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

CHUNK_BYTES = 4 << 20
"""The most a follower reads at once: memory stays bounded whatever a file grows to."""
DEFAULT_MAX_METRICS_BYTES = 256 << 20
CACHE_FILENAME = "metrics.cache.json"
"""Beside metrics.jsonl: the run's aggregate (summary, profile, counts, offset), so a
restarted engine reads summaries, not histories."""
CACHE_VERSION = 1
CACHE_WRITE_INTERVAL_S = 2.0
RETIRE_UNTRACKED_AFTER_S = 3600.0
"""A run folder without run.json (from before the engine wrote them, or made by hand) is
taken as ended once its metrics file has not changed for this long."""


class MetricsFollower:
    """Reads the complete lines appended to one file since the last call, in bounded chunks.

    A last line without its newline is left for a later call (the writer may be halfway
    through it). A file that shrank or was replaced is read again from the start. Lines
    longer than MAX_LINE_BYTES come back as a marker so the caller reports them as
    malformed; nothing here raises except OSError from reading.
    """

    def __init__(self, path: Path | str, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = 0
        self.line_number = 0
        self.inode: int | None = None
        self._skipping_long_line = False

    def size(self) -> int:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return -1
        if info.st_size < self.offset or (self.inode is not None and info.st_ino != self.inode):
            self.offset = 0
            self.line_number = 0
            self._skipping_long_line = False
        self.inode = info.st_ino
        return info.st_size

    def read_chunk(self, limit: int | None = None) -> tuple[list[tuple[int, bytes]], bool]:
        """(new complete lines as (1-based number, raw bytes), whether more is waiting).

        Reads at most `chunk_bytes`, and nothing at or past `limit` bytes into the file."""
        size = self.size()
        end = size if limit is None else min(size, limit)
        if end <= self.offset:
            return [], False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(min(end - self.offset, self.chunk_bytes))
        out: list[tuple[int, bytes]] = []
        start = 0
        while True:
            stop = data.find(b"\n", start)
            if stop < 0:
                break
            raw = data[start:stop]
            start = stop + 1
            self.line_number += 1
            if self._skipping_long_line:
                self._skipping_long_line = False
                out.append((self.line_number, _TOO_LONG))
                continue
            out.append((self.line_number, raw))
        pending = len(data) - start
        if pending > MAX_LINE_BYTES or self._skipping_long_line or (start == 0 and len(data) == self.chunk_bytes):
            # A runaway line without a newline yet: drop what we have, report it when it ends.
            self._skipping_long_line = self._skipping_long_line or pending > 0
            start = len(data)
        self.offset += start
        return out, self.offset < end and start > 0

    def read_lines(self) -> list[tuple[int, str]]:
        """Every new complete line as (number, text), chunk after chunk."""
        out: list[tuple[int, str]] = []
        while True:
            lines, more = self.read_chunk()
            out += [(n, raw.decode("utf-8", errors="replace")) for n, raw in lines]
            if not more:
                return out


_TOO_LONG = b"\x00line too long"


def _needs_parsing(raw: bytes) -> bool:
    """Summaries, profiles and anything not shaped like a JSON object are parsed in full;
    ordinary step records are only counted (a week of them cannot be parsed line by line),
    except the newest of each chunk, which sets the live step time."""
    text = raw.strip()
    return not (text.startswith(b"{") and text.endswith(b"}")) or b'"summary"' in raw \
        or b'"profile"' in raw


# ----------------------------------------------------------------------------- aggregation

STEP_TIME_METRICS = {"step_time_ms": 1e3, "step_time_s": 1.0}
"""Metrics read from `step_time_median_s` when the summary does not carry them by name."""


def metric_field(metric: str) -> str:
    """The summary field the configured metric needs (README, "Metrics from a run")."""
    return "step_time_median_s" if metric in STEP_TIME_METRICS else metric


def missing_metric(record: Record | None, metric: str) -> str | None:
    """Why a summary gives no value for `metric`, or None when it does."""
    if record is None:
        return "no summary record was written"
    if metric_value(record, metric) is not None:
        return None
    field_name = metric_field(metric)
    names = f"`{metric}` or `{field_name}`" if field_name != metric else f"`{metric}`"
    return f"the summary has no {names} (a finite number) for the configured metric {metric}"


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


@dataclass
class _Run:
    """What the watcher knows of one run folder."""

    run_id: str
    run_dir: Path
    follower: MetricsFollower
    summary: Record | None = None
    summary_ts: float = 0.0
    profile: str | None = None
    last_step: Record | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cut_off: bool = False
    dirty: bool = False
    cache_written_at: float = 0.0
    cut_off_size: int = -1
    ended: bool = False
    """Retired before (its cache says so): a restart retires it again without run.json."""
    ended_size: int | None = None
    """The metrics file's size when the run was first seen ended with an unterminated last
    line (a line its writer will never finish): unchanged at the next scan, it retires."""

    @property
    def cache_path(self) -> Path:
        return self.run_dir / CACHE_FILENAME

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


class MetricsWatcher:
    """Follows `runs_dir/*/metrics.jsonl` of one lane and emits events; never raises.

    - `scan_once(emit=True)` (sync): reads whatever is new in every run folder (new folders
      included), updates `state`, calls `emit(event)` per event and returns the events.
      With `emit=False` (start-up, `status`) it rebuilds state from disk without re-logging:
      each run's cached aggregate (metrics.cache.json), else its last summary found from the
      end of the file — histories are not re-read.
    - `await run(stop_event)`: loads that history in a worker thread (the engine answers its
      socket meanwhile), then scans in a worker thread on every change watchfiles reports
      in the runs folder or a followed run's folder (not recursive), and every `poll_s`
      regardless and emits on the event loop; profile records are
      summarized in a thread and reported as `profile_summary` events.

    Files are read in bounded chunks; step records are counted, and the newest one of each
    scan becomes the one `metric` step event (the live step time). A run's metrics past
    `max_metrics_bytes` are not read (a warning says so; its final summary is still found).

    A run that has ended (its run.json status is final, or, for a folder without run.json,
    its metrics file unchanged for RETIRE_UNTRACKED_AFTER_S) and whose metrics file is read
    to its end is retired: its cache is written, its aggregate is already folded into
    `state`, and from then on only its name is kept; later scans neither open nor stat its
    files. A week of runs costs a set of names, and a scan costs the runs still going.

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
        max_metrics_bytes: int = DEFAULT_MAX_METRICS_BYTES,
        write_cache: bool = True,
        retire_finished: bool = True,
    ):
        self.lane = lane
        self.runs_dir = Path(runs_dir)
        self.emit = emit
        self.state = LaneMetrics(metric=metric)
        self.summarize_profiles = summarize_profiles
        self.poll_s = poll_s
        self.max_metrics_bytes = max_metrics_bytes
        self.write_cache = write_cache
        self.retire_finished = retire_finished
        """False only to measure the previous cost (the anchor of bench/bench_metrics_scale.py)."""
        self.loaded = False
        """False until the history on disk has been read (snapshots say "loading")."""
        self._runs: dict[str, _Run] = {}
        """The runs still followed: new, still going, or not yet read to their end."""
        self._retired: set[str] = set()
        """Names of the runs that ended and were read to their end: nothing else is kept."""
        self._warnings: dict[str, int] = {}
        self._lock = threading.Lock()
        self.pending_profiles: list[tuple[str, Path]] = []

    def snapshot(self) -> dict:
        with self._lock:
            data = self.state.to_dict()
        data["loading"] = not self.loaded
        return data

    # -- sync part (runs in a worker thread under the engine)

    def scan_once(self, emit: bool = True) -> list[Event]:
        events = self._scan(live=emit)
        if emit:
            for event in events:
                self._emit(event)
        return events

    def _scan(self, live: bool) -> list[Event]:
        events: list[Event] = []
        try:
            run_dirs = self._run_dirs_to_follow()
        except OSError as exc:
            events += self._warning("", self.runs_dir, None, f"cannot list runs: {exc}")
            run_dirs = []
        for run_dir in run_dirs:
            run = self._runs.get(run_dir.name)
            try:
                if run is None:
                    run = self._runs[run_dir.name] = _Run(run_dir.name, run_dir,
                                                          MetricsFollower(run_dir / METRICS_FILENAME))
                    if not live:
                        self._load_history(run)
                events += self._follow(run, live)
                if self.retire_finished and self._has_ended(run):
                    self._retire(run)
            except OSError as exc:
                events += self._warning(run.run_id if run else run_dir.name, run_dir / METRICS_FILENAME,
                                        None, f"cannot read: {exc}")
            except Exception as exc:  # defensive: a strange file must never stop the watcher
                log.exception("metrics watcher: %s", run_dir)
                events += self._warning(run_dir.name, run_dir / METRICS_FILENAME, None,
                                        f"unexpected error: {exc!r}")
        if not live:
            self.loaded = True
        return events

    def _run_dirs_to_follow(self) -> list[Path]:
        """The run folders not yet retired, in run order. One directory listing (no stat per
        entry: the listing says which entries are folders); retired names are skipped, and
        a removed folder is forgotten (a new folder of that name is a new run)."""
        if not self.runs_dir.is_dir():
            entries = []
        else:
            with os.scandir(self.runs_dir) as listing:
                entries = list(listing)
        names = {entry.name for entry in entries}
        if not self._retired <= names:
            self._retired &= names
        for gone in [name for name in self._runs if name not in names]:
            del self._runs[gone]
        return sorted((Path(entry.path) for entry in entries
                       if entry.name not in self._retired and entry.is_dir()),
                      key=lambda p: _natural_key(p.name))

    def _has_ended(self, run: _Run) -> bool:
        """Whether a run needs no more following: it ended, and what it wrote is read."""
        info = {} if run.ended else read_run_info(run.run_dir)
        if not (run.ended or is_final(info)):
            if info:
                return False  # waiting or running
            # No run.json: a folder from before them, or one made by hand. Idle long enough, it is done.
            path = run.follower.path if run.follower.path.exists() else run.run_dir
            if time.time() - _mtime(path) < RETIRE_UNTRACKED_AFTER_S:
                return False
        # Sized after run.json says it ended, so every byte the run wrote is in `size`.
        size = run.follower.size()
        read_to = run.cut_off_size if run.cut_off else run.follower.offset
        if size < 0 or read_to >= size:
            return True
        # Not all read yet (the next scan reads it), or an unterminated last line, which an
        # ended run never finishes: that retires when a scan finds the file unchanged.
        if run.ended_size == size:
            return True
        run.ended_size = size
        return False

    def _retire(self, run: _Run) -> None:
        if not run.ended:
            run.ended = run.dirty = True
        self._write_cache(run, force=True)  # a restart reads its summary, not its history
        del self._runs[run.run_id]
        self._retired.add(run.run_id)
        self._warnings.pop(str(run.follower.path), None)

    @property
    def followed_runs(self) -> int:
        """How many runs are still followed (the rest are retired names)."""
        return len(self._runs)

    @property
    def retired_runs(self) -> int:
        return len(self._retired)

    def _load_history(self, run: _Run) -> None:
        """A run seen for the first time at start-up: its cache, else its last summary."""
        path = run.follower.path
        if not path.exists():
            return
        if self._restore_cache(run):
            return
        summary, profile, lines, end, last_step = _index_from_end(path)
        run.follower.size()
        run.follower.offset, run.follower.line_number = end, lines
        run.summary, run.profile, run.summary_ts = summary, profile, _mtime(path)
        run.last_step = last_step
        run.counts = {"lines": lines}
        self._apply_history(run)
        run.dirty = True
        self._write_cache(run, force=True)

    def _restore_cache(self, run: _Run) -> bool:
        try:
            data = json.loads(run.cache_path.read_bytes())
            info = run.follower.path.stat()
            if not (isinstance(data, dict) and data.get("version") == CACHE_VERSION
                    and data.get("inode") == info.st_ino and 0 <= int(data["offset"]) <= info.st_size):
                return False
            summary, profile = data.get("summary"), data.get("profile")
            if summary is not None:
                summary = parse_metrics_line(json.dumps(summary))
                if summary.get("kind") != "summary":
                    return False
            if profile is not None and not isinstance(profile, str):
                return False
            last_step = data.get("last_step")
            if last_step is not None:
                last_step = parse_metrics_line(json.dumps(last_step))
                if last_step.get("kind") != "step":
                    return False
            run.follower.size()
            run.follower.offset, run.follower.line_number = int(data["offset"]), int(data["lines"])
            run.summary, run.profile, run.last_step = summary, profile, last_step
            run.summary_ts = float(data.get("summary_ts") or 0.0)
            run.counts = {k: int(v) for k, v in (data.get("counts") or {}).items()}
            run.cut_off = bool(data.get("cut_off"))
            run.ended = data.get("ended") is True
            run.cache_written_at = time.monotonic()
        except (OSError, ValueError, TypeError, KeyError, RecursionError, MetricsParseError):
            return False
        self._apply_history(run)
        return True

    def _apply_history(self, run: _Run) -> None:
        with self._lock:
            if run.last_step is not None:  # the live step time, as if the run had been followed
                self.state.add_step(run.run_id, run.last_step)
            if run.summary is not None:
                self.state.add_summary(run.run_id, run.summary)
            if run.profile is not None:
                self.state.latest_profile = {"run_id": run.run_id,
                                             "path": str((run.run_dir / run.profile).resolve())}

    def _follow(self, run: _Run, live: bool) -> list[Event]:
        events: list[Event] = []
        follower = run.follower
        more = True
        while more and not run.cut_off:
            lines, more = follower.read_chunk(limit=self.max_metrics_bytes)
            events += self._handle_chunk(run, lines, live)
            if lines:
                run.dirty = True
            if not more and follower.size() > self.max_metrics_bytes:  # read up to the cap
                run.cut_off = True
                events += self._warning(
                    run.run_id, follower.path, None,
                    f"metrics.jsonl passed {self.max_metrics_bytes // (1 << 20)} MB "
                    "(experiment.max_metrics_mb): the rest is not read, except its final summary")
        if run.cut_off:
            events += self._check_cut_off_tail(run, live)
        self._write_cache(run, force=False)
        return events

    def _check_cut_off_tail(self, run: _Run, live: bool) -> list[Event]:
        """A cut-off run still gets its final summary (read from the end of the file)."""
        size = run.follower.size()
        if size == run.cut_off_size:
            return []
        run.cut_off_size = size
        summary, profile, _lines, _end, _step = _index_from_end(run.follower.path, max_bytes=1 << 20,
                                                         count_lines=False)
        if summary is None or summary == run.summary:
            return []
        run.dirty = True
        return self._handle_record(run, summary, live) if live else (self._fold_summary(run, summary) or [])

    def _handle_chunk(self, run: _Run, lines: list[tuple[int, bytes]], live: bool) -> list[Event]:
        events: list[Event] = []
        newest_step: tuple[int, bytes] | None = None
        for number, raw in lines:
            if not raw.strip():
                continue
            if raw is not _TOO_LONG and not _needs_parsing(raw):
                if newest_step is not None:
                    run.count("step")
                newest_step = (number, raw)
                continue
            if newest_step is not None:  # the steps before this record, as their newest one
                events += self._parse_and_handle(run, *newest_step, live)
                newest_step = None
            events += self._parse_and_handle(run, number, raw, live)
        if newest_step is not None:
            events += self._parse_and_handle(run, *newest_step, live)
        run.counts["lines"] = run.follower.line_number
        return events

    def _parse_and_handle(self, run: _Run, number: int, raw: bytes, live: bool) -> list[Event]:
        try:
            if raw is _TOO_LONG:
                raise MetricsParseError(f"line longer than {MAX_LINE_BYTES} bytes")
            record = parse_metrics_line(raw)
        except MetricsParseError as exc:
            run.count("malformed")
            return self._warning(run.run_id, run.follower.path, number, str(exc))
        except Exception as exc:  # defensive: parsing must never take the engine down
            run.count("malformed")
            return self._warning(run.run_id, run.follower.path, number, f"unexpected error: {exc!r}")
        run.count(str(record["kind"])[:40])
        return self._handle_record(run, record, live)

    def _fold_summary(self, run: _Run, record: Record) -> None:
        run.summary, run.summary_ts = record, _mtime(run.follower.path)
        with self._lock:
            self.state.add_summary(run.run_id, record)

    def _handle_record(self, run: _Run, record: Record, live: bool) -> list[Event]:
        kind = record["kind"]
        if kind not in KNOWN_KINDS:
            return []  # a newer writer's record: ignore quietly
        run_id, run_dir = run.run_id, run.run_dir
        fields = {k: v for k, v in record.items() if k not in _RESERVED}
        fields["run_id"] = run_id
        if kind == "step":
            run.last_step = record
            with self._lock:
                self.state.add_step(run_id, record)
            fields["step_time_ms"] = record["step_time_s"] * 1e3
        elif kind == "summary":
            self._fold_summary(run, record)
            if _is_number(record.get("step_time_median_s")):
                fields["step_time_ms"] = record["step_time_median_s"] * 1e3
            for name in ("p10", "p90"):
                if _is_number(record.get(f"{name}_s")):
                    fields[f"{name}_ms"] = record[f"{name}_s"] * 1e3
            with self._lock:
                fields.update(metric=self.state.metric, value=self.state.latest_value)
        elif kind == "profile":
            run.profile = record["dir"]
            profile_dir = (run_dir / record["dir"]).resolve()
            fields["path"] = str(profile_dir)
            with self._lock:
                self.state.latest_profile = {"run_id": run_id, "path": str(profile_dir)}
            if live and self.summarize_profiles:
                self.pending_profiles.append((run_id, profile_dir))
        return [make_event(self.lane, "metric", **fields)]

    def _write_cache(self, run: _Run, force: bool) -> None:
        if not (self.write_cache and run.dirty):
            return
        now = time.monotonic()
        if not force and now - run.cache_written_at < CACHE_WRITE_INTERVAL_S \
                and run.follower.offset < run.follower.size():
            return  # still growing: write again shortly
        data = {"version": CACHE_VERSION, "inode": run.follower.inode, "offset": run.follower.offset,
                "lines": run.follower.line_number, "counts": run.counts, "summary": run.summary,
                "summary_ts": run.summary_ts, "profile": run.profile, "cut_off": run.cut_off,
                "last_step": run.last_step, "ended": run.ended}
        try:
            atomic_write_json(run.cache_path, data)
        except (OSError, TypeError, ValueError):
            return  # a full disk or a read-only run folder: the history is read again next time
        run.dirty = False
        run.cache_written_at = now

    def flush_caches(self) -> None:
        for run in list(self._runs.values()):
            self._write_cache(run, force=True)

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
        with self._lock:
            self.state.latest_profile = {"run_id": run_id, "path": str(path), "summary": summary}
        return make_event(self.lane, "profile_summary", run_id=run_id, path=str(path), summary=summary)

    def watched_dirs(self) -> list[Path]:
        """What inotify watches: the runs folder (a new run) and the folders of the runs still
        followed (their files), not each folder a lane ever made. Watched recursively, a week
        of runs was a week of inotify watches (kernel memory, `max_user_watches`) and of the
        watcher's own per-folder memory, which grew the engine's RSS with every run."""
        followed = [run.run_dir for run in list(self._runs.values()) if not run.ended]
        return [self.runs_dir, *sorted(path for path in followed if path.is_dir())]

    async def _scan_in_thread(self) -> None:
        for event in await asyncio.to_thread(self._scan, True):
            self._emit(event)
        await self.summarize_pending()

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Load the history, then follow until `stop_event` is set (or the task is cancelled)."""
        from watchfiles import awatch

        stop_event = stop_event or asyncio.Event()
        try:
            if not self.loaded:
                await asyncio.to_thread(self._scan, False)
            await self._scan_in_thread()
            while not stop_event.is_set():
                try:
                    self.runs_dir.mkdir(parents=True, exist_ok=True)
                    watched = self.watched_dirs()
                    changes = awatch(
                        *watched, stop_event=stop_event, debounce=200, step=50,
                        rust_timeout=int(self.poll_s * 1000), yield_on_timeout=True,
                        recursive=False, watch_filter=_not_a_cache,
                    )
                    async with contextlib.aclosing(changes):
                        async for _changes in changes:
                            await self._scan_in_thread()
                            if self.watched_dirs() != watched:
                                break  # a run began or was retired: watch what is followed now
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
                    await self._scan_in_thread()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.flush_caches)


def _not_a_cache(change, path: str) -> bool:
    return not path.endswith(CACHE_FILENAME)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


_MARKERS = (b'"summary"', b'"profile"')


def _marked_lines_from_end(path: Path, block: int = 1 << 20):
    """(line, its start offset, bytes searched so far) for each line that mentions a summary
    or a profile, last first. The search runs in C (bytes.rfind), so a gigabyte of step
    records costs a read, not a Python loop per line. An unterminated last line counts."""
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        size = position
        carry = b""  # the start of a line that began before the block just read
        while position > 0:
            length = min(block, position)
            position -= length
            handle.seek(position)
            data = handle.read(length) + carry
            if position > 0:
                first = data.find(b"\n")
                if first < 0:  # one line longer than the block: keep it only while it is sane
                    carry = data if len(data) <= MAX_LINE_BYTES else b""
                    continue
                carry, body, base = data[: first + 1], data[first + 1:], position + first + 1
            else:
                carry, body, base = b"", data, 0
            found: dict[int, int] = {}  # line start -> line end, within body
            for marker in _MARKERS:
                end = len(body)
                while (at := body.rfind(marker, 0, end)) >= 0:
                    line_start = body.rfind(b"\n", 0, at) + 1
                    line_end = body.find(b"\n", at)
                    found[line_start] = len(body) if line_end < 0 else line_end
                    end = line_start
            for line_start in sorted(found, reverse=True):
                yield body[line_start:found[line_start]], base + line_start, size - base - line_start


def _index_from_end(path: Path, max_bytes: int | None = None, count_lines: bool = True
                    ) -> tuple[Record | None, str | None, int, int, Record | None]:
    """(last summary, last profile dir, complete lines, offset after the last complete line,
    last step record) of a metrics file, reading from its end; at most `max_bytes` are searched."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(max(0, size - MAX_LINE_BYTES - 1))
            tail = handle.read()
    except OSError:
        return None, None, 0, 0, None
    newline = tail.rfind(b"\n")
    complete_end = size - len(tail) + newline + 1 if newline >= 0 else 0
    summary, profile, _warnings = _last_records(path, complete_end, max_bytes)
    try:
        lines = _count_lines(path, complete_end) if count_lines else 0
    except OSError:
        lines = 0
    return summary, profile, lines, complete_end, _last_step(tail[:max(newline, 0)])


def _last_step(tail: bytes, lines: int = 64) -> Record | None:
    """The newest step record among the last `lines` complete lines of `tail`."""
    for raw in tail.split(b"\n")[-lines:][::-1]:
        if b'"step"' not in raw:
            continue
        try:
            record = parse_metrics_line(raw)
        except MetricsParseError:
            continue
        if record.get("kind") == "step":
            return record
    return None


def _last_records(path: Path, end: int | None = None, max_bytes: int | None = None
                  ) -> tuple[Record | None, str | None, list[tuple[int, str]]]:
    """The last summary and profile dir before offset `end`, and (offset, why) for each
    summary/profile line that does not parse (at most MAX_WARNINGS_PER_FILE)."""
    summary: Record | None = None
    profile: str | None = None
    bad: list[tuple[int, str]] = []
    summary_found_at = None
    try:
        for raw, start, searched in _marked_lines_from_end(path):
            if end is not None and start >= end:
                continue
            if max_bytes is not None and searched > max_bytes:
                break
            if summary_found_at is not None and searched - summary_found_at > PROFILE_SEARCH_BYTES:
                break
            try:
                record = parse_metrics_line(raw)
            except MetricsParseError as exc:
                if len(bad) < MAX_WARNINGS_PER_FILE:
                    bad.append((start, str(exc)))
                continue
            if summary is None and record.get("kind") == "summary":
                summary, summary_found_at = record, searched
            elif profile is None and record.get("kind") == "profile":
                profile = record["dir"]
            if summary is not None and profile is not None:
                break
    except OSError:
        pass
    return summary, profile, bad


PROFILE_SEARCH_BYTES = 64 << 20
"""How far before a run's last summary its profile record is looked for."""


def _count_lines(path: Path, end: int) -> int:
    count = 0
    with open(path, "rb") as handle:
        while handle.tell() < end:
            data = handle.read(min(CHUNK_BYTES, end - handle.tell()))
            if not data:
                break
            count += data.count(b"\n")
    return count


def read_run_summary(path: Path | str) -> tuple[Record | None, str | None, list[str]]:
    """(last summary record, last profile dir, warnings) of a finished run's metrics.jsonl.

    The one reader for the ledger (record_run) and the benchmark answer. It searches from
    the end for summary and profile lines (a run's summary is its last word), so a week of
    step records costs one read; a summary or profile line that does not parse is skipped
    with a warning naming its line; a missing file is simply no summary."""
    path = Path(path)
    summary, profile, bad = _last_records(path)
    warnings = []
    for start, message in reversed(bad):
        try:
            number = _count_lines(path, start) + 1
        except OSError:
            number = 0
        warnings.append(f"metrics.jsonl line {number}: {message}")
    return summary, profile, warnings
