"""The run ledger (results.tsv), run folders, and the frontier (DESIGN.md, "Ledger").

results.tsv is tab separated with a header row:

    run_id ts commit <metric> status description step_time_ms mfu peak_hbm_gib compile_s profile

(`step_time_ms` appears once when it is itself the metric). Readers go by the header, so a
hand-reordered file still reads.

Integrity rules:
- A row is written whole or not at all: the full line in one `os.write` on an O_APPEND fd,
  then fsync, under an exclusive `flock` of the ledger (threads and processes alike).
- A torn last line (a crash of some other writer, or a disk that lost the tail) is closed
  with a `TORN_MARK` field before the next row, so the fragment can never be mistaken for
  a valid row and the new row starts on its own line. No byte is ever removed.
- `refs/autoresearch/runs/<run_id>` is created in the fork *before* the row is written, so
  a recorded commit is never left without a ref that protects it from `git gc`.
- Recording the same run_id twice writes nothing and answers as the first time did.

Run ids are per lane: "0001", "0002", ... (zero-padded to 4 digits, wider past 9999;
compare them as integers). A new id is one past the highest id seen in runs/, in the
ledger and in the fork's run refs, and is claimed with an atomic mkdir: ids are unique,
increasing and never reused after a restart.

Noise. Two sources, best first:
1. repeats: commits measured more than once; each measurement's relative deviation from
   its commit's median is pooled;
2. otherwise discarded/inconclusive runs: their relative deviation from the frontier
   (best so far) at the time they ran.
noise_pct = 1.4826 * median(|d - median(d)|) over the pooled deviations d, in percent
(the scaled median absolute deviation: a robust sigma that a few wild runs cannot inflate).
It needs at least MIN_NOISE_SAMPLES deviations, else it is None. Source 2 mixes real
(small) regressions with noise, so it overstates noise: keeps flagged "within noise" from
it deserve a repeat, not a revert.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.forks import RUN_REF_PREFIX, git
from engine.metrics import read_run_summary
from engine.workspace import Workspace

STATUSES = ("keep", "discard", "crash", "inconclusive")
BASE_COLUMNS = ("run_id", "ts", "commit")
EXTRA_COLUMNS = ("step_time_ms", "mfu", "peak_hbm_gib", "compile_s", "profile")
NUMERIC_EXTRAS = ("step_time_ms", "mfu", "peak_hbm_gib", "compile_s")
TORN_MARK = "<torn: incomplete write, ignored>"
MIN_NOISE_SAMPLES = 3
MAD_SCALE = 1.4826
MAX_DESCRIPTION = 2000
_RUN_ID = re.compile(r"^\d{1,12}$")


class LedgerError(RuntimeError):
    """A run cannot be recorded; the message is meant for the agent or the user."""


def columns(metric: str) -> list[str]:
    extras = [c for c in EXTRA_COLUMNS if c != metric]
    return [*BASE_COLUMNS, metric, "status", "description", *extras]


def sanitize(text: Any, limit: int = MAX_DESCRIPTION) -> str:
    """One TSV field: tabs/newlines become spaces, other control characters go."""
    text = "" if text is None else str(text)
    text = re.sub(r"[\t\r\n\v\f]+", " ", text)
    text = "".join(c for c in text if c >= " " and c != "\x7f")
    return text.strip()[:limit]


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return repr(float(value))


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def run_sort_key(run_id: str) -> tuple[int, str]:
    return (int(run_id), run_id) if _RUN_ID.match(run_id) else (1 << 62, run_id)


# --------------------------------------------------------------------------------------
# Reading


def read_ledger(path: Path | str, metric: str | None = None) -> tuple[list[dict], list[str]]:
    """Every valid row of a ledger, in file order, and a warning per line skipped.

    Never raises on content: a corrupt or hand-edited line is skipped with a warning naming
    its line number. Rows are dicts: run_id, ts, commit, metric (float|None), status,
    description, the numeric extras (float|None), profile, line (1-based).
    `metric` names the metric column; by default the 4th header column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc.strerror or exc}"]
    return parse_ledger(data, metric=metric, name=str(path))


def parse_ledger(data: bytes, metric: str | None = None, name: str = "results.tsv"
                 ) -> tuple[list[dict], list[str]]:
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines.pop()
    rows: list[dict] = []
    warnings: list[str] = []
    header: list[str] | None = None
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if number == len(lines) and not complete:
            if line.strip():
                warnings.append(f"{name}:{number}: incomplete last line (torn write), skipped")
            break
        if not line.strip():
            continue
        try:
            if header is None:
                fields = line.split("\t")
                names = [f.strip() for f in fields]
                if "run_id" in names and "status" in names and len(fields) >= 6:
                    header = [f.strip() for f in fields]
                    continue
                header = columns(metric or "metric")
                warnings.append(f"{name}:{number}: no header row; assuming the standard columns")
            row = _parse_row(line, header, metric)
        except _BadRow as exc:
            warnings.append(f"{name}:{number}: {exc}, skipped")
            continue
        except Exception as exc:  # defensive: a reader must never raise on content
            warnings.append(f"{name}:{number}: unreadable ({type(exc).__name__}), skipped")
            continue
        if row["run_id"] in seen:
            warnings.append(f"{name}:{number}: duplicate run_id {row['run_id']}, skipped")
            continue
        seen.add(row["run_id"])
        row["line"] = number
        rows.append(row)
    return rows, warnings


class _BadRow(ValueError):
    pass


def _parse_row(line: str, header: list[str], metric: str | None) -> dict:
    if line.endswith(TORN_MARK):
        raise _BadRow("torn row (incomplete write)")
    fields = line.split("\t")
    if len(fields) != len(header):
        raise _BadRow(f"{len(fields)} fields where the header has {len(header)}")
    values = dict(zip(header, fields))
    metric_col = metric if metric in values else _guess_metric_column(header)
    run_id = values.get("run_id", "").strip()
    if not run_id or not _RUN_ID.match(run_id):
        raise _BadRow(f"bad run_id {run_id!r}")
    status = values.get("status", "").strip()
    if status not in STATUSES:
        raise _BadRow(f"bad status {status!r}")
    commit = values.get("commit", "").strip()
    if commit and not re.fullmatch(r"[0-9a-f]{4,64}", commit):
        raise _BadRow(f"bad commit {commit!r}")
    row: dict[str, Any] = {
        "run_id": run_id,
        "ts": values.get("ts", "").strip(),
        "commit": commit,
        "metric": _parse_number(values.get(metric_col, ""), metric_col),
        "status": status,
        "description": values.get("description", ""),
    }
    for name in NUMERIC_EXTRAS:
        if name == metric_col:
            row[name] = row["metric"]
        else:
            row[name] = _parse_number(values.get(name, ""), name)
    row["profile"] = values.get("profile", "")
    return row


def _guess_metric_column(header: list[str]) -> str:
    known = {*BASE_COLUMNS, "status", "description", *EXTRA_COLUMNS}
    fallback = "step_time_ms" if "step_time_ms" in header else header[3]
    return next((c for c in header if c not in known), fallback)


def _parse_number(text: str, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _BadRow(f"{column}: not a number {text!r}") from None
    if not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------
# Frontier


@dataclass
class Frontier:
    """Baseline, best, noise and plateau of one lane's ledger (rows in file order)."""

    direction: str = "minimize"
    metric_name: str = "metric"
    runs: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    baseline: float | None = None
    baseline_run: str | None = None
    best: float | None = None
    """Best so far: the baseline, or the best keep that beat it."""
    best_run: str | None = None
    best_commit: str | None = None
    best_keep_run: str | None = None
    """The run that set `best` when that run is a keep better than the baseline (what merge takes)."""
    runs_since_best: int = 0
    noise_pct: float | None = None
    noise_source: str | None = None
    noise_samples: int = 0
    per_run: dict[str, dict] = field(default_factory=dict)
    """run_id -> that run's verdict when recorded: previous_best, new_best, delta %, ..."""

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    @property
    def noise(self) -> float | None:
        """Noise in the metric's units at the current best."""
        if self.noise_pct is None or self.best is None:
            return None
        return abs(self.best) * self.noise_pct / 100.0

    @property
    def change_pct(self) -> float | None:
        """Best vs baseline, signed percent."""
        return pct(self.best, self.baseline)

    def plateau(self, plateau_runs: int) -> bool:
        return self.baseline is not None and self.runs_since_best >= plateau_runs

    def to_dict(self, plateau_runs: int | None = None) -> dict[str, Any]:
        out = {
            "metric_name": self.metric_name, "direction": self.direction, "runs": self.runs,
            "counts": dict(self.counts), "baseline": self.baseline,
            "baseline_run": self.baseline_run, "best": self.best, "best_run": self.best_run,
            "best_commit": self.best_commit, "change_pct": self.change_pct,
            "runs_since_best": self.runs_since_best, "noise": self.noise,
            "noise_pct": self.noise_pct, "noise_source": self.noise_source,
        }
        if plateau_runs is not None:
            out["plateau"] = self.plateau(plateau_runs)
        return out


def pct(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return (value - reference) / abs(reference) * 100.0


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def scaled_mad(values: list[float]) -> float:
    m = _median(values)
    return MAD_SCALE * _median([abs(v - m) for v in values])


def compute_frontier(rows: list[dict], direction: str = "minimize",
                     metric_name: str = "metric") -> Frontier:
    f = Frontier(direction=direction, metric_name=metric_name)
    since = 0
    discard_devs: list[float] = []
    by_commit: dict[str, list[float]] = {}
    for row in rows:
        f.runs += 1
        status = row.get("status")
        if status in f.counts:
            f.counts[status] += 1
        value = _num(row.get("metric"))
        previous_best = f.best
        new_best = False
        if value is not None and status != "crash":
            if f.baseline is None:
                f.baseline, f.baseline_run = value, row["run_id"]
                f.best, f.best_run, f.best_commit = value, row["run_id"], row.get("commit")
                new_best = True
            elif status == "keep" and f.better(value, f.best):
                f.best, f.best_run, f.best_commit = value, row["run_id"], row.get("commit")
                f.best_keep_run = row["run_id"]
                new_best = True
            if status in ("discard", "inconclusive") and previous_best not in (None, 0):
                discard_devs.append((value - previous_best) / abs(previous_best) * 100.0)
            if row.get("commit"):
                by_commit.setdefault(row["commit"], []).append(value)
        since = 0 if new_best else since + 1
        f.runs_since_best = since
        _update_noise(f, by_commit, discard_devs)
        reference = previous_best if previous_best is not None else f.best
        delta_best = pct(value, reference) if status != "crash" else None
        within = None
        if status == "keep" and f.noise_pct is not None and delta_best is not None \
                and previous_best is not None:
            within = abs(delta_best) <= f.noise_pct
        f.per_run[row["run_id"]] = {
            "previous_best": previous_best,
            "delta_vs_best_pct": delta_best,
            "delta_vs_baseline_pct": pct(value, f.baseline) if status != "crash" else None,
            "new_best": new_best and previous_best is not None,
            "within_noise": within,
        }
    return f


def _update_noise(f: Frontier, by_commit: dict[str, list[float]], discard_devs: list[float]) -> None:
    repeat_devs: list[float] = []
    for values in by_commit.values():
        if len(values) >= 2:
            m = _median(values)
            if m:
                repeat_devs.extend((v - m) / abs(m) * 100.0 for v in values)
    if len(repeat_devs) >= MIN_NOISE_SAMPLES:
        f.noise_pct, f.noise_source, f.noise_samples = scaled_mad(repeat_devs), "repeats", len(repeat_devs)
    elif len(discard_devs) >= MIN_NOISE_SAMPLES:
        f.noise_pct, f.noise_source, f.noise_samples = scaled_mad(discard_devs), "discards", len(discard_devs)
    else:
        f.noise_pct, f.noise_source, f.noise_samples = None, None, 0


def answer_for(rows: list[dict], run_id: str, direction: str, metric_name: str,
               plateau_runs: int | None = None) -> dict[str, Any]:
    """The frontier answer for `run_id`, as it stood right after that run was recorded."""
    index = next(i for i, r in enumerate(rows) if r["run_id"] == run_id)
    frontier = compute_frontier(rows[: index + 1], direction, metric_name)
    row = rows[index]
    verdict = frontier.per_run[run_id]
    answer = {
        "run_id": run_id, "status": row["status"], "commit": row["commit"],
        "metric": row["metric"], **frontier.to_dict(plateau_runs), **verdict,
    }
    return answer


# --------------------------------------------------------------------------------------
# Run folders


def _existing_run_numbers(workspace: Workspace, lane: str) -> list[int]:
    numbers: list[int] = []
    runs = workspace.runs_dir(lane)
    if runs.is_dir():
        numbers += [int(p.name) for p in runs.iterdir() if _RUN_ID.match(p.name)]
    try:  # every line's first field, torn and corrupt rows included: their ids stay taken
        text = workspace.ledger_path(lane).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.split("\n"):
        first = line.split("\t", 1)[0].strip()
        if _RUN_ID.match(first):
            numbers.append(int(first))
    fork = workspace.fork_dir(lane)
    if (fork / ".git").exists():
        proc = git(fork, "for-each-ref", "--format=%(refname)", RUN_REF_PREFIX, check=False)
        for ref in proc.stdout.split():
            name = ref[len(RUN_REF_PREFIX):]
            if _RUN_ID.match(name):
                numbers.append(int(name))
    return numbers


def allocate_run(workspace: Workspace, lane: str) -> tuple[str, Path]:
    """Claim a fresh run folder: (run_id, runs/<run_id>/), created atomically (mkdir)."""
    runs = workspace.runs_dir(lane)
    runs.mkdir(parents=True, exist_ok=True)
    number = max(_existing_run_numbers(workspace, lane), default=0) + 1
    while True:
        run_id = f"{number:04d}"
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
    candidates = sorted((p.name for p in runs.iterdir() if _RUN_ID.match(p.name) and p.is_dir()
                         and p.name not in recorded), key=run_sort_key)
    return (candidates[-1], runs / candidates[-1]) if candidates else None


def metrics_from_summary(summary: dict | None, metric: str) -> dict[str, float | None]:
    """The metric and the optional columns from a summary record."""
    summary = summary or {}
    step_s = _num(summary.get("step_time_median_s"))
    hbm = _num(summary.get("hbm_peak_bytes"))
    out = {
        "step_time_ms": _num(summary.get("step_time_ms")) if step_s is None else step_s * 1000.0,
        "mfu": _num(summary.get("mfu")),
        "peak_hbm_gib": hbm / 2**30 if hbm is not None else _num(summary.get("peak_hbm_gib")),
        "compile_s": _num(summary.get("compile_s")),
    }
    value = _num(summary.get(metric))
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
    candidate = runs / text if _RUN_ID.match(text) else Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = (workspace.lane_dir(lane) / candidate)
    candidate = candidate.resolve()
    if candidate.parent != runs or not _RUN_ID.match(candidate.name):
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
        rows, read_warnings = parse_ledger(_read_fd(fd), metric=cfg.metric, name=str(ledger))
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

        summary, profile_dir, _ = read_run_summary(run_path / "metrics.jsonl")
        measured = metrics_from_summary(summary, cfg.metric)
        value = _num(metric) if metric is not None else measured["metric"]
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
            cfg.metric: _fmt(value),
            "status": status,
            "description": sanitize(description),
            **{k: _fmt(measured.get(k)) for k in NUMERIC_EXTRAS if k != cfg.metric},
            "profile": profile,
        }
        cols = columns(cfg.metric)
        header_needed = os.fstat(fd).st_size == 0
        line = "\t".join(record[c] for c in cols) + "\n"
        if header_needed:
            line = "\t".join(cols) + "\n" + line
        _ensure_run_ref(fork, run_id, commit)  # the ref first: a row never lacks one
        _append_locked(fd, line)
        rows, read_warnings = parse_ledger(_read_fd(fd), metric=cfg.metric, name=str(ledger))
    finally:
        os.close(fd)  # releases the flock
    _fsync_dir(ledger.parent)
    answer = answer_for(rows, run_id, cfg.direction, cfg.metric, plateau_runs)
    this = next(r for r in rows if r["run_id"] == run_id)
    answer.update(already_recorded=False, warnings=warnings + read_warnings, row=_public(this))
    return answer


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "line"}


def _ensure_run_ref(fork: Path, run_id: str, commit: str) -> None:
    ref = RUN_REF_PREFIX + run_id
    current = git(fork, "rev-parse", "--verify", "--quiet", ref, check=False).stdout.strip()
    if current != commit:
        git(fork, "update-ref", "-m", f"autoresearch: run {run_id}", ref, commit)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


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
