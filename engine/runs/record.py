"""Writing the ledger: run folders, run ids, and `record_run` (docs/architecture.md, "Ledger").

The format and the frontier live in engine/core/ledger.py; this module adds what needs
the fork (git refs) and the run folders.

Integrity rules:
- A row is written whole or not at all: the full line in one `os.write` on an O_APPEND fd,
  then fsync, under an exclusive `flock` of the ledger (threads and processes alike).
- A torn last line (a crash of some other writer, or a disk that lost the tail) is closed
  with a `TORN_MARK` field before the next row, so the fragment can never be mistaken for
  a valid row and the new row starts on its own line. No byte is ever removed.
- `refs/autoresearch/runs/<run_id>` is created in the fork *before* the row is written, so
  a recorded commit is never left without a ref that protects it from `git gc`.
- Recording the same run_id twice writes nothing and answers as the first time did.
- A row follows the file's own header (extra columns left empty, any order); a header
  without the columns a row needs is refused, and so is a row that would not read back.

Run ids are per lane: "0001", "0002", ... (zero-padded to 4 digits, wider past 9999;
compare them as integers; readers accept any width up to RUN_ID_MAX_DIGITS). A new id is one past the highest id seen in runs/, in the
ledger and in the fork's run refs, and is claimed with an atomic mkdir: ids are unique,
increasing and never reused after a restart.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.core.files import fsync_dir
from autoresearch_tui.engine.core.git import git
from autoresearch_tui.engine.core.secrets import redact
from autoresearch_tui.engine.core.ledger import (
    BEST_HISTORY_POINTS, REQUIRED_COLUMNS, RUN_ID_MAX_DIGITS, RUN_ID_PATTERN, NUMERIC_EXTRAS, STATUSES,
    TORN_MARK, Frontier,
    as_number, answer_for, check_row, columns, compute_frontier, header_of, parse_ledger, read_ledger,
    run_sort_key, sanitize, format_number,
)
from autoresearch_tui.engine.repo.forks import RUN_REF_PREFIX
from autoresearch_tui.engine.runs.run_info import WRONG_DEVICE, read_run_info
from autoresearch_tui.engine.runs.metrics import read_run_summary
from autoresearch_tui.engine.workspace import Workspace


class LedgerError(RuntimeError):
    """A run cannot be recorded; the message is meant for the agent or the user."""


# --------------------------------------------------------------------------------------
# Run folders


def _existing_run_numbers(workspace: Workspace, lane: str) -> list[int]:
    numbers: list[int] = []
    runs = workspace.runs_dir(lane)
    if runs.is_dir():
        numbers += [int(p.name) for p in runs.iterdir() if RUN_ID_PATTERN.match(p.name)]
    try:  # every line's first field, torn and corrupt rows included: their ids stay taken
        text = workspace.ledger_path(lane).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.split("\n"):
        first = line.split("\t", 1)[0].strip()
        if RUN_ID_PATTERN.match(first):
            numbers.append(int(first))
    fork = workspace.fork_dir(lane)
    if (fork / ".git").exists():
        proc = git(fork, "for-each-ref", "--format=%(refname)", RUN_REF_PREFIX, check=False)
        for ref in proc.stdout.split():
            name = ref[len(RUN_REF_PREFIX):]
            if RUN_ID_PATTERN.match(name):
                numbers.append(int(name))
    return numbers


def allocate_run(workspace: Workspace, lane: str) -> tuple[str, Path]:
    """Claim a fresh run folder: (run_id, runs/<run_id>/), created atomically (mkdir)."""
    runs = workspace.runs_dir(lane)
    runs.mkdir(parents=True, exist_ok=True)
    number = max(_existing_run_numbers(workspace, lane), default=0) + 1
    while True:
        run_id = f"{number:04d}"
        if len(run_id) > RUN_ID_MAX_DIGITS:
            raise LedgerError(f"run ids of lane {lane} are used up (the next would have {len(run_id)} "
                              f"digits; at most {RUN_ID_MAX_DIGITS}): a run id in its ledger or runs/ "
                              "is absurdly large; rename it")
        try:
            os.mkdir(runs / run_id)
            return run_id, runs / run_id
        except FileExistsError:
            number += 1


def latest_unrecorded_run(workspace: Workspace, lane: str) -> tuple[str, Path] | None:
    """The newest run folder with no ledger row (what an agent most likely means)."""
    runs = workspace.runs_dir(lane)
    if not runs.is_dir():
        return None
    rows, _ = read_ledger(workspace.ledger_path(lane), workspace.config.experiment.metric)
    recorded = {r["run_id"] for r in rows}
    candidates = sorted((p.name for p in runs.iterdir() if RUN_ID_PATTERN.match(p.name) and p.is_dir()
                         and p.name not in recorded), key=run_sort_key)
    return (candidates[-1], runs / candidates[-1]) if candidates else None


def metrics_from_summary(summary: dict | None, metric: str) -> dict[str, float | None]:
    """The metric and the optional columns from a summary record."""
    summary = summary or {}
    step_s = as_number(summary.get("step_time_median_s"))
    hbm = as_number(summary.get("hbm_peak_bytes"))
    out = {
        "step_time_ms": as_number(summary.get("step_time_ms")) if step_s is None else step_s * 1000.0,
        "mfu": as_number(summary.get("mfu")),
        "peak_hbm_gib": hbm / 2**30 if hbm is not None else as_number(summary.get("peak_hbm_gib")),
        "compile_s": as_number(summary.get("compile_s")),
    }
    value = as_number(summary.get(metric))
    if value is None and metric in out:
        value = out[metric]
    out["metric"] = value
    return out


# --------------------------------------------------------------------------------------
# Recording


def _resolve_run_dir(workspace: Workspace, lane: str, run_dir: Path | str | None
                     ) -> tuple[str, Path]:
    if run_dir is None or str(run_dir).strip() == "":
        return allocate_run(workspace, lane)
    runs = workspace.runs_dir(lane).resolve()
    text = str(run_dir).strip()
    candidate = runs / text if RUN_ID_PATTERN.match(text) else Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = (workspace.lane_dir(lane) / candidate)
    candidate = candidate.resolve()
    if candidate.parent != runs or not RUN_ID_PATTERN.match(candidate.name):
        raise LedgerError(
            f"run_dir {run_dir} is not a run folder of lane {lane} (expected {runs}/<run_id>)")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate.name, candidate


def _append_locked(fd: int, line: str) -> None:
    """Append one whole line at the end of the (locked) ledger; fsync."""
    size = os.fstat(fd).st_size
    payload = line.encode("utf-8")
    if size > 0:
        last = os.pread(fd, 1, size - 1)
        if last != b"\n":
            payload = ("\t" + TORN_MARK + "\n").encode("utf-8") + payload
    written = os.write(fd, payload)
    if written != len(payload):  # ENOSPC mid-write and the like: close the line
        os.write(fd, ("\t" + TORN_MARK + "\n").encode("utf-8"))
        os.fsync(fd)
        raise LedgerError(f"ledger write was short ({written}/{len(payload)} bytes)")
    os.fsync(fd)


def _read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def record_run(workspace: Workspace, lane: str, status: str, description: str,
               metric: float | None = None, run_dir: Path | str | None = None) -> dict[str, Any]:
    """Append one ledger row for the fork's HEAD and answer with the frontier.

    `run_dir`: the run folder (absolute path, path relative to the lane folder, or run_id);
    None claims a fresh one. `metric` None: read from the run's metrics.jsonl summary.
    Recording an already recorded run_id writes nothing and returns the same answer
    (with already_recorded=True). Raises LedgerError for a bad status, run_dir or fork.
    """
    cfg = workspace.config.experiment
    status = str(status).strip().lower()
    if status not in STATUSES:
        raise LedgerError(f"status must be one of {', '.join(STATUSES)} (got {status!r})")
    fork = workspace.fork_dir(lane)
    if not (fork / ".git").exists():
        raise LedgerError(f"lane {lane} has no fork at {fork}")
    run_id, run_path = _resolve_run_dir(workspace, lane, run_dir)
    ledger = workspace.ledger_path(lane)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    plateau_runs = workspace.config.loop.plateau_runs
    warnings: list[str] = []

    fd = os.open(ledger, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = _read_fd(fd)
        rows, read_warnings = parse_ledger(data, metric=cfg.metric, name=str(ledger))
        existing = next((r for r in rows if r["run_id"] == run_id), None)
        if existing is not None:
            if existing["commit"]:
                _ensure_run_ref(fork, run_id, existing["commit"])
            answer = answer_for(rows, run_id, cfg.direction, cfg.metric, plateau_runs)
            answer.update(already_recorded=True, warnings=read_warnings, row=_public(existing))
            return answer

        proc = git(fork, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        if proc.returncode != 0:
            raise LedgerError(f"lane {lane}: the fork has no commit at HEAD")
        commit = proc.stdout.strip()
        dirty = git(fork, "status", "--porcelain", "--untracked-files=no", check=False).stdout
        if dirty.strip():
            warnings.append(
                f"the fork has uncommitted changes: the measured code may differ from "
                f"commit {commit[:10]} (commit before running, reset after a discard)")

        info = read_run_info(run_path)
        if info.get("status") == WRONG_DEVICE and status != "crash":
            warnings.append(f"run {run_id} {info.get('reason') or 'ran on the wrong device'}: "
                            f"recorded as crash, not {status} (it can never be a keep or the baseline)")
            status = "crash"

        summary, profile_dir, _ = read_run_summary(run_path / "metrics.jsonl")
        measured = metrics_from_summary(summary, cfg.metric)
        value = as_number(metric) if metric is not None else measured["metric"]
        if metric is not None and value is None:
            raise LedgerError(f"metric must be a finite number (got {metric!r})")
        if value is None and status in ("keep", "discard"):
            warnings.append(f"no {cfg.metric} for run {run_id} (no summary in its metrics.jsonl "
                            "and none given): it does not count toward the frontier")
        profile = ""
        if profile_dir:
            profile = sanitize((Path("runs") / run_id / profile_dir).as_posix(), 500)

        record = {
            "run_id": run_id,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": commit,
            cfg.metric: format_number(value),
            "status": status,
            "description": sanitize(redact(str(description if description is not None else ""))),
            **{k: format_number(measured.get(k)) for k in NUMERIC_EXTRAS if k != cfg.metric},
            "profile": profile,
        }
        header_needed = os.fstat(fd).st_size == 0
        cols = columns(cfg.metric) if header_needed else _writable_columns(data, cfg.metric, ledger)
        line = "\t".join(record.get(c, "") for c in cols)
        problem = check_row(line, cols, cfg.metric)
        if problem:  # refuse before writing: a row that cannot be read back is a lost run
            raise LedgerError(f"{ledger}: the row for run {run_id} would not read back ({problem}); "
                              "nothing was written")
        line += "\n"
        if header_needed:
            line = "\t".join(cols) + "\n" + line
        _ensure_run_ref(fork, run_id, commit)  # the ref first: a row never lacks one
        _append_locked(fd, line)
        rows, read_warnings = parse_ledger(_read_fd(fd), metric=cfg.metric, name=str(ledger))
    finally:
        os.close(fd)  # releases the flock
    fsync_dir(ledger.parent)
    this = next((r for r in rows if r["run_id"] == run_id), None)
    if this is None:
        raise LedgerError(f"{ledger}: run {run_id} was written but does not read back: "
                          + "; ".join(read_warnings[-3:]))
    answer = answer_for(rows, run_id, cfg.direction, cfg.metric, plateau_runs)
    answer.update(already_recorded=False, warnings=warnings + read_warnings, row=_public(this))
    return answer


def _writable_columns(data: bytes, metric: str, ledger: Path) -> list[str]:
    """The columns a new row follows: the file's own header (a hand-added `notes` column or a
    reordered file stays as it is), or the standard ones when it has none. A header that
    lacks what a row needs is refused with what to do."""
    header = header_of(data)
    if header is None:
        return columns(metric)
    missing = [c for c in (*REQUIRED_COLUMNS, metric) if c not in header]
    duplicated = sorted({c for c in header if header.count(c) > 1 and c})
    if missing or duplicated:
        problem = (f"no {', '.join(missing)} column" if missing else
                   f"the column {', '.join(duplicated)} appears twice")
        raise LedgerError(f"{ledger}: its header has {problem} (columns: {' '.join(header)}); "
                          f"fix the header or move the file aside (the standard header is: "
                          f"{' '.join(columns(metric))})")
    return header


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "line"}


def _ensure_run_ref(fork: Path, run_id: str, commit: str) -> None:
    ref = RUN_REF_PREFIX + run_id
    current = git(fork, "rev-parse", "--verify", "--quiet", ref, check=False).stdout.strip()
    if current != commit:
        git(fork, "update-ref", "-m", f"autoresearch: run {run_id}", ref, commit)


class FrontierCache:
    """Each lane's frontier, recomputed only when its ledger file changed (size or mtime):
    snapshots and stop decisions ask for it far more often than runs are recorded.

    The cached frontier keeps what they read (counts, baseline, best, noise, the last
    BEST_HISTORY_POINTS of best_history), not a verdict per ledger row: held for the
    engine's life, those grew with every run. Who needs `per_run` (record_run's answer,
    lane_status, reports) computes the frontier itself."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._cache: dict[str, tuple[tuple[int, int], Frontier, list[str]]] = {}

    def get(self, lane: str) -> tuple[Frontier, list[str]]:
        try:
            info = os.stat(self.workspace.ledger_path(lane))
            key = (info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            key = (-1, 0)
        cached = self._cache.get(lane)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        frontier, warnings = lane_frontier(self.workspace, lane)
        frontier.per_run = {}
        frontier.best_history = frontier.best_history[-BEST_HISTORY_POINTS:]
        self._cache[lane] = (key, frontier, warnings)
        return frontier, warnings


def lane_frontier(workspace: Workspace, lane: str) -> tuple[Frontier, list[str]]:
    """The lane's frontier over its whole ledger, and the reader's warnings."""
    cfg = workspace.config.experiment
    rows, warnings = read_ledger(workspace.ledger_path(lane), cfg.metric)
    return compute_frontier(rows, cfg.direction, cfg.metric), warnings


def lane_summary(workspace: Workspace, lane: str) -> dict[str, Any]:
    """What `lane_status()` shows: the frontier, the last runs, plateau, reader warnings."""
    cfg = workspace.config.experiment
    rows, warnings = read_ledger(workspace.ledger_path(lane), cfg.metric)
    frontier = compute_frontier(rows, cfg.direction, cfg.metric)
    out = frontier.to_dict(workspace.config.loop.plateau_runs)
    out["last_runs"] = [
        {**_public(r), **frontier.per_run.get(r["run_id"], {})} for r in rows[-10:]
    ]
    out["warnings"] = warnings
    return out
