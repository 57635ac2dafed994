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
    BEST_HISTORY_POINTS, CLAIMED, CONFIRMATION, MEASURED, REPEAT, REQUIRED_COLUMNS, RUN_ID_MAX_DIGITS,
    RUN_ID_PATTERN, NUMERIC_EXTRAS, STATUSES, TORN_MARK, Frontier, as_number, answer_for, check_row,
    columns, compute_frontier, header_of, legacy_columns, parse_ledger, read_ledger, run_sort_key,
    sanitize, format_number, write_columns,
)
from autoresearch_tui.engine.repo.forks import RUN_REF_PREFIX
from autoresearch_tui.engine.runs.run_info import FINISHED_STATES, REFUSED, WRONG_DEVICE, read_run_info
from autoresearch_tui.engine.runs.metrics import metric_value, read_run_summary
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
    """The newest benchmark run the engine finished that has no ledger row yet (what
    `record_run` without run_dir means); engine re-measures (confirmations, checks) and runs
    still waiting or running are never it."""
    runs = workspace.runs_dir(lane)
    if not runs.is_dir():
        return None
    rows, _ = read_ledger(workspace.ledger_path(lane), workspace.config.experiment.metric)
    recorded = {r["run_id"] for r in rows}
    candidates = sorted((p.name for p in runs.iterdir() if RUN_ID_PATTERN.match(p.name) and p.is_dir()
                         and p.name not in recorded), key=run_sort_key)
    for run_id in reversed(candidates):
        info = read_run_info(runs / run_id)
        if info.get("purpose", "benchmark") == "benchmark" and info.get("status") in FINISHED_STATES:
            return run_id, runs / run_id
    return None


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
    out["metric"] = metric_value(summary, metric) if summary else None
    return out


# --------------------------------------------------------------------------------------
# Recording


def resolve_run(workspace: Workspace, lane: str, run_dir: Path | str | None) -> tuple[str, Path]:
    """The run a record_run call means: `run_dir` (a path or a run_id), else the lane's latest
    finished unrecorded run, else a fresh run folder (a run the engine never measured)."""
    if run_dir is None or str(run_dir).strip() == "":
        return latest_unrecorded_run(workspace, lane) or allocate_run(workspace, lane)
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
               metric: float | None = None, run_dir: Path | str | None = None, *,
               confirm_runs: int | None = None) -> dict[str, Any]:
    """Append one ledger row for a run and answer with the frontier.

    The evidence rules (README, "Evidence"):
    - the commit is the one the engine measured (run.json, captured when the run started),
      whatever HEAD is now; HEAD only for a run the engine never ran;
    - the engine's measurement wins: a differing `metric` is ignored with a warning
      (`claim_ignored` in the answer); a claimed metric is accepted only for a run with no
      measurement, and that row is `source=claimed` (never baseline, best or merge candidate);
    - a run measured on uncommitted tracked changes cannot be a keep (LedgerError);
      a run on the wrong device or refused (frozen files) is recorded as a crash;
    - a measured keep that would be the new best gets `confirm_runs` (default: the config's):
      the answer's `confirmation` says the engine must confirm it (agent/tools.py does).

    `run_dir`: the run folder (absolute path, path relative to the lane folder, or run_id);
    None means the lane's latest finished unrecorded run (`resolve_run`). Recording an
    already recorded run_id writes nothing and returns the same answer (already_recorded).
    Raises LedgerError for a bad status, run_dir or fork, or a dirty keep.
    """
    cfg = workspace.config.experiment
    confirm_runs = cfg.confirm_runs if confirm_runs is None else confirm_runs
    status = str(status).strip().lower()
    if status not in STATUSES:
        raise LedgerError(f"status must be one of {', '.join(STATUSES)} (got {status!r})")
    fork = workspace.fork_dir(lane)
    if not (fork / ".git").exists():
        raise LedgerError(f"lane {lane} has no fork at {fork}")
    run_id, run_path = resolve_run(workspace, lane, run_dir)
    claim = None
    if metric is not None:
        claim = as_number(metric)
        if claim is None:
            raise LedgerError(f"metric must be a finite number (got {metric!r})")
    info = read_run_info(run_path)
    if info.get("purpose", "benchmark") != "benchmark":
        raise LedgerError(f"run {run_id} is an engine {info.get('purpose')} run, not one of your experiments")
    warnings: list[str] = []

    def locked(fd: int, rows: list[dict], read_warnings: list[str]) -> dict[str, Any] | None:
        nonlocal status
        existing = next((r for r in rows if r["run_id"] == run_id), None)
        if existing is not None:
            if existing["commit"]:
                _ensure_run_ref(fork, run_id, existing["commit"])
            answer = answer_for(rows, run_id, cfg.direction, cfg.metric, workspace.config.loop.plateau_runs)
            answer.update(already_recorded=True, warnings=read_warnings, row=_public(existing))
            return answer

        engine_status = info.get("status")
        if engine_status in (WRONG_DEVICE, REFUSED) and status != "crash":
            why = info.get("reason") or ("ran on the wrong device" if engine_status == WRONG_DEVICE
                                         else "was refused")
            warnings.append(f"run {run_id} {why}: recorded as crash, not {status} "
                            "(it can never be a keep or the baseline)")
            status = "crash"
        elif status == "keep" and engine_status in ("crash", "timeout", "hung", "cancelled"):
            warnings.append(f"run {run_id} did not finish ({engine_status}): recorded as crash, not keep")
            status = "crash"
        if status == "keep" and info.get("dirty"):
            raise LedgerError(
                f"run {run_id} was measured on uncommitted changes to tracked files of commit "
                f"{str(info.get('commit'))[:10]}: it cannot be a keep. Commit your change and run "
                "the benchmark again, then record that run (record it as discard if you drop the change)")
        commit = info.get("commit")
        if not commit:
            proc = git(fork, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
            if proc.returncode != 0:
                raise LedgerError(f"lane {lane}: the fork has no commit at HEAD")
            commit = proc.stdout.strip()
            warnings.append(f"run {run_id} was not run by the engine: recorded against the fork's HEAD "
                            f"{commit[:10]}; run the benchmark with run_benchmark so the measured "
                            "commit is known")

        summary, profile_dir, _ = read_run_summary(run_path / "metrics.jsonl")
        extras = metrics_from_summary(summary, cfg.metric)
        measured = extras["metric"] if engine_status == "ok" else None
        result: dict[str, Any] = {}
        if measured is not None:
            value, source = measured, MEASURED
            if claim is not None and not _same(claim, measured):
                result["claim_ignored"] = claim
                warnings.append(f"your metric {format_number(claim)} was ignored: the engine measured "
                                f"{cfg.metric} {format_number(measured)} for run {run_id}, and that is "
                                "what is recorded")
        else:
            value = claim if claim is not None else extras["metric"]
            source = CLAIMED if value is not None else MEASURED
            if value is not None:
                warnings.append(f"no engine measurement for run {run_id}: {cfg.metric} "
                                f"{format_number(value)} is recorded as claimed (unverified): it can "
                                "never be the baseline, the best or merged; run the benchmark with "
                                "run_benchmark to measure it")
        if value is None and status in ("keep", "discard"):
            warnings.append(f"no {cfg.metric} for run {run_id} (no measurement and none given): "
                            "it does not count toward the frontier")

        needs = 0
        if status == "keep" and source == MEASURED and value is not None and confirm_runs > 0:
            frontier = compute_frontier(rows, cfg.direction, cfg.metric)
            if frontier.best is not None and frontier.better(value, frontier.best) \
                    and commit != frontier.best_commit:
                needs = confirm_runs
                result["confirmation"] = {
                    "state": "pending", "runs": needs, "incumbent_run": frontier.best_run,
                    "incumbent_commit": frontier.best_commit, "incumbent": frontier.best}
        profile = ""
        if profile_dir:
            profile = sanitize((Path("runs") / run_id / profile_dir).as_posix(), 500)
        record = {
            "run_id": run_id,
            "commit": commit,
            cfg.metric: format_number(value),
            "status": status,
            "description": sanitize(redact(str(description if description is not None else ""))),
            **{k: format_number(extras.get(k)) for k in NUMERIC_EXTRAS if k != cfg.metric},
            "profile": profile,
            "source": source,
            "confirm_runs": str(needs) if needs else "",
        }
        _append_row(fd, workspace.ledger_path(lane), fork, record, cfg.metric)
        result["source"] = source
        return result

    answer = _with_ledger(workspace, lane, locked)
    if answer.get("already_recorded"):
        return answer
    rows, read_warnings = read_ledger(workspace.ledger_path(lane), cfg.metric)
    extra = answer
    answer = answer_for(rows, run_id, cfg.direction, cfg.metric, workspace.config.loop.plateau_runs)
    this = next((r for r in rows if r["run_id"] == run_id), None)
    if this is None:
        raise LedgerError(f"{workspace.ledger_path(lane)}: run {run_id} was written but does not read "
                          "back: " + "; ".join(read_warnings[-3:]))
    answer.update(extra)
    answer.update(already_recorded=False, warnings=warnings + read_warnings, row=_public(this))
    return answer


def run_answer(workspace: Workspace, lane: str, run_id: str) -> dict[str, Any]:
    """The frontier answer for a recorded run as it stands now that its confirmation is over."""
    cfg = workspace.config.experiment
    rows, _ = read_ledger(workspace.ledger_path(lane), cfg.metric)
    return answer_for(rows, run_id, cfg.direction, cfg.metric, workspace.config.loop.plateau_runs)


def record_confirmation(workspace: Workspace, lane: str, run_id: str, *, confirms: str, role: str,
                        commit: str, value: float | None, ok: bool, description: str) -> None:
    """One confirmation re-measure as a row of its own kind (not an experiment)."""
    metric = workspace.config.experiment.metric

    def locked(fd: int, rows: list[dict], read_warnings: list[str]) -> dict:
        if any(r["run_id"] == run_id for r in rows):
            return {}
        record = {
            "run_id": run_id, "commit": commit, metric: format_number(value),
            "status": REPEAT if ok and value is not None else "crash",
            "description": sanitize(description), "source": MEASURED, "kind": CONFIRMATION,
            "confirms": confirms, "role": role,
        }
        _append_row(fd, workspace.ledger_path(lane), workspace.fork_dir(lane), record, metric)
        return {}

    _with_ledger(workspace, lane, locked)


def _same(a: float, b: float) -> bool:
    """A claim equal to the measurement up to rounding in the agent's text."""
    return abs(a - b) <= max(1e-9, 1e-4 * abs(b))


def _with_ledger(workspace: Workspace, lane: str, body) -> dict[str, Any]:
    """Run `body(fd, rows, warnings)` with the ledger open and exclusively locked."""
    ledger = workspace.ledger_path(lane)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(ledger, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rows, read_warnings = parse_ledger(_read_fd(fd), metric=workspace.config.experiment.metric,
                                           name=str(ledger))
        answer = body(fd, rows, read_warnings)
    finally:
        os.close(fd)  # releases the flock
    fsync_dir(ledger.parent)
    return answer or {}


def _append_row(fd: int, ledger: Path, fork: Path, record: dict[str, str], metric: str) -> None:
    """Write `record` (column -> text) as one row, in the columns the ledger already has
    (then any standard column it lacks, which the reader expects there). A header that lacks
    what a row needs, or a row that would not read back, is refused: nothing is written."""
    record.setdefault("ts", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    data = _read_fd(fd)
    if not data.strip():
        header = None
    else:
        header = header_of(data)
        header = legacy_columns(metric) if header is None else _checked_header(header, metric, ledger)
    cols = write_columns(header, metric)
    line = "\t".join(record.get(c, "") for c in cols)
    problem = check_row(line, header or cols, metric)
    if problem:  # refuse before writing: a row that cannot be read back is a lost run
        raise LedgerError(f"{ledger}: the row for run {record['run_id']} would not read back ({problem}); "
                          "nothing was written")
    line += "\n"
    if not data.strip():
        line = "\t".join(cols) + "\n" + line
    if record.get("commit"):
        _ensure_run_ref(fork, record["run_id"], record["commit"])  # the ref first: a row never lacks one
    _append_locked(fd, line)


def _checked_header(header: list[str], metric: str, ledger: Path) -> list[str]:
    """The file's own header, which new rows follow (a hand-added `notes` column or a
    reordered file stays as it is); one that lacks what a row needs is refused with what to do."""
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
