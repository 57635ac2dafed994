"""The run ledger's format (results.tsv) and the frontier computed from it.

Standard library only: the engine and the plain-Claude-Code Stop hook read ledgers with
this one reader, so both see the same runs, the same best and the same plateau.

results.tsv is tab separated with a header row:

    run_id ts commit <metric> status description step_time_ms mfu peak_hbm_gib compile_s profile
    source kind confirms role confirm_runs

(`step_time_ms` appears once when it is itself the metric). Readers go by the header, so a
hand-reordered file still reads. Columns added later (source ... confirm_runs) are added
compatibly: a ledger whose header lacks them still reads, and rows appended to it carry the
missing columns after the header's own, in the order above (the reader extends the header
the same way for a row with more fields).

Evidence columns:
- `source`: `measured` (the engine ran the benchmark and read the value) or `claimed` (a
  number the agent gave for a run with no measurement). Claimed rows are never the
  baseline, the best or a merge candidate. Empty in ledgers written before the column
  existed: those rows count as they always did.
- `kind`: empty for an experiment, `confirmation` for an engine re-measure of a candidate
  (`role` candidate) or of the incumbent best (`role` incumbent) linked to the candidate's
  run by `confirms`; confirmation rows are not experiments (not counted in runs or plateau)
  but their values feed the noise estimate. Their status is `repeat` (or `crash`).
- `confirm_runs` on a keep: how many A/B pairs must confirm it before it can be the best.

Confirmation rule (`confirmation_verdict`), for a keep that would be a new best: the engine
re-measures the candidate and the incumbent `confirm_runs` times each, interleaved (A/B/A/B),
in clean checkouts. Only these fresh measurements count (the candidate's first measurement,
possibly a lucky draw, does not). gain = how much the candidates' median beats the
incumbents' median, in % of the incumbents'. sigma = the larger of the lane's noise_pct
(when known) and the pooled spread of the fresh measurements around their own side's
median (a per-run standard deviation, in %); band = sigma * sqrt(2 / confirm_runs), the
noise of a difference of two such medians (with confirm_runs = 2, the lane's noise band
itself; more re-measures narrow it). The candidate is confirmed when gain > band; then the
best becomes the candidates' median.
A crash in a confirmation run rejects it; missing confirmation rows (a confirmation cut short
by a stop or a killed engine) leave it unconfirmed. A keep on the best's own commit is a
repeat and never a new best; with confirmation off, neither is a keep on any commit measured
before.

Writing (run ids, refs, torn rows, idempotence) is in engine/runs/record.py.

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

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


STATUSES = ("keep", "discard", "crash", "inconclusive")
"""What the agent may record."""
REPEAT = "repeat"
ROW_STATUSES = (*STATUSES, REPEAT)
"""What a row may hold: confirmation re-measures are `repeat` (or `crash`)."""
BASE_COLUMNS = ("run_id", "ts", "commit")
EXTRA_COLUMNS = ("step_time_ms", "mfu", "peak_hbm_gib", "compile_s", "profile",
                 "source", "kind", "confirms", "role", "confirm_runs")
NUMERIC_EXTRAS = ("step_time_ms", "mfu", "peak_hbm_gib", "compile_s")
TEXT_EXTRAS = ("profile", "source", "kind", "confirms", "role", "confirm_runs")
MEASURED, CLAIMED = "measured", "claimed"
CONFIRMATION = "confirmation"
CANDIDATE, INCUMBENT = "candidate", "incumbent"
CONFIRMED, REJECTED, UNCONFIRMED = "confirmed", "rejected", "unconfirmed"
TORN_MARK = "<torn: incomplete write, ignored>"
MIN_NOISE_SAMPLES = 3
MAD_SCALE = 1.4826
MAX_DESCRIPTION = 2000
BEST_HISTORY_POINTS = 200
"""Running-best points a frontier hands out (snapshots, the TUI's sparkline)."""
RUN_ID_MAX_DIGITS = 64
RUN_ID_PATTERN = re.compile(rf"^[0-9]{{1,{RUN_ID_MAX_DIGITS}}}$")
"""Run ids are decimal numbers of any width up to RUN_ID_MAX_DIGITS (compared as integers)."""
REQUIRED_COLUMNS = ("run_id", "ts", "commit", "status", "description")
RESERVED_COLUMNS = (*REQUIRED_COLUMNS, *TEXT_EXTRAS)
"""Column names a metric may not take."""


LEGACY_EXTRAS = ("step_time_ms", "mfu", "peak_hbm_gib", "compile_s", "profile")
"""The optional columns before the evidence columns existed (headerless ledgers use these)."""


def columns(metric: str) -> list[str]:
    extras = [c for c in EXTRA_COLUMNS if c != metric]
    return [*BASE_COLUMNS, metric, "status", "description", *extras]


def legacy_columns(metric: str) -> list[str]:
    return [*BASE_COLUMNS, metric, "status", "description", *(c for c in LEGACY_EXTRAS if c != metric)]


def sanitize(text: Any, limit: int = MAX_DESCRIPTION) -> str:
    """One TSV field: tabs/newlines become spaces, other control characters go."""
    text = "" if text is None else str(text)
    text = re.sub(r"[\t\r\n\v\f]+", " ", text)
    text = "".join(c for c in text if c >= " " and not "\x7f" <= c <= "\x9f")
    return text.strip()[:limit]


def format_number(value: float | None) -> str:
    """A ledger field: ten significant digits, so float noise (6.765000000000001) never shows."""
    value = as_number(value)
    if value is None:
        return ""
    return f"{value:.10g}"


def as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        return None
    return number if math.isfinite(number) else None


def run_sort_key(run_id: str) -> tuple[int, str]:
    """Numeric order for run ids of any width (non-numeric ones last)."""
    return (int(run_id), run_id) if RUN_ID_PATTERN.match(run_id) else (1 << 62, run_id)


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


def header_of(data: bytes) -> list[str] | None:
    """The file's own header row (its column names, in order), or None without one."""
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        names = [f.strip() for f in line.split("\t")]
        return names if _is_header(names) else None
    return None


def _is_header(names: list[str]) -> bool:
    return "run_id" in names and "status" in names and len(names) >= 6


def check_row(line: str, header: list[str], metric: str | None) -> str | None:
    """Why `line` (no newline) would not read back under `header`, or None if it would."""
    try:
        _parse_row(line, header, metric)
    except _BadRow as exc:
        return str(exc)
    return None


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
                names = [f.strip() for f in line.split("\t")]
                if _is_header(names):
                    header = names
                    continue
                header = legacy_columns(metric or "metric")
                if len(names) == len(BASE_COLUMNS) + 3:
                    header = header[: len(names)]  # the six required columns only (a hand-kept ledger)
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
    if len(fields) > len(header):
        # Appended to a ledger written before some columns existed: the writer put the
        # missing standard columns after the header's own, in the standard order.
        metric_col = metric if metric in header else _guess_metric_column(header)
        header = header + [c for c in columns(metric_col) if c not in header]
    if len(fields) != len(header):
        raise _BadRow(f"{len(fields)} fields where the header has {len(header)}")
    values = dict(zip(header, fields))
    metric_col = metric if metric in values else _guess_metric_column(header)
    run_id = values.get("run_id", "").strip()
    if not run_id or not RUN_ID_PATTERN.match(run_id):
        raise _BadRow(f"bad run_id {run_id!r}")
    status = values.get("status", "").strip()
    if status not in ROW_STATUSES:
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
    source = values.get("source", "").strip()
    if source not in ("", MEASURED, CLAIMED):
        raise _BadRow(f"bad source {source!r}")
    kind = values.get("kind", "").strip()
    if kind not in ("", "experiment", CONFIRMATION):
        raise _BadRow(f"bad kind {kind!r}")
    if status == REPEAT and kind != CONFIRMATION:
        raise _BadRow("status repeat outside a confirmation row")
    confirms = values.get("confirms", "").strip()
    if confirms and not RUN_ID_PATTERN.match(confirms):
        raise _BadRow(f"bad confirms {confirms!r}")
    role = values.get("role", "").strip()
    if role not in ("", CANDIDATE, INCUMBENT):
        raise _BadRow(f"bad role {role!r}")
    confirm_runs = values.get("confirm_runs", "").strip()
    if confirm_runs and not (confirm_runs.isdigit() and int(confirm_runs) <= 1000):
        raise _BadRow(f"bad confirm_runs {confirm_runs!r}")
    row.update(source=source, kind=kind, confirms=confirms, role=role,
               confirm_runs=int(confirm_runs) if confirm_runs else 0)
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
    """Experiments (confirmation re-measures are not counted)."""
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    baseline: float | None = None
    baseline_run: str | None = None
    best: float | None = None
    """Best so far: the baseline, or the best measured keep that beat it (when it needed a
    confirmation: confirmed, and its value is the median of its confirmation runs)."""
    best_run: str | None = None
    best_commit: str | None = None
    best_keep_run: str | None = None
    """The run that set `best` when that run is a keep better than the baseline (what merge takes)."""
    best_evidence: dict | None = None
    """The confirmation verdict of the best, when it was confirmed."""
    runs_since_best: int = 0
    noise_pct: float | None = None
    noise_source: str | None = None
    noise_samples: int = 0
    claimed_runs: int = 0
    """Rows whose value the agent claimed (never baseline, best or merge candidate)."""
    unconfirmed: list[str] = field(default_factory=list)
    """Candidates whose confirmation is missing runs (pending, or cut short)."""
    rejected: list[str] = field(default_factory=list)
    """Candidates whose confirmation did not hold."""
    confirmation_runs: int = 0
    per_run: dict[str, dict] = field(default_factory=dict)
    """run_id -> that run's verdict when recorded: previous_best, new_best, delta %, ..."""
    best_history: list[float] = field(default_factory=list)
    """The best after each run, from the baseline on (the lane's sparkline)."""

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
            "best_commit": self.best_commit, "best_keep_run": self.best_keep_run,
            "best_confirmed": self.best_evidence is not None,
            "best_evidence": self.best_evidence, "change_pct": self.change_pct,
            "runs_since_best": self.runs_since_best, "noise": self.noise,
            "noise_pct": self.noise_pct, "noise_source": self.noise_source,
            "claimed_runs": self.claimed_runs, "unconfirmed": list(self.unconfirmed),
            "rejected": list(self.rejected), "confirmation_runs": self.confirmation_runs,
        }
        if plateau_runs is not None:
            out["plateau"] = self.plateau(plateau_runs)
        out["best_history"] = self.best_history[-BEST_HISTORY_POINTS:]
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


def confirmation_verdict(candidate: list[float], incumbent: list[float], direction: str,
                         noise_pct: float | None, expected: int, crashed: bool = False) -> dict[str, Any]:
    """The confirmation rule (module docstring): confirmed when the candidates' median beats
    the incumbents' median by more than the noise band."""
    verdict: dict[str, Any] = {
        "state": UNCONFIRMED, "expected": expected, "candidate_values": list(candidate),
        "incumbent_values": list(incumbent), "candidate_median": None, "incumbent_median": None,
        "gain_pct": None, "band_pct": None, "noise_pct": noise_pct,
    }
    if crashed:
        verdict.update(state=REJECTED, reason="a confirmation run crashed")
        return verdict
    if len(candidate) < expected or len(incumbent) < expected:
        verdict["reason"] = (f"{len(candidate)}/{expected} candidate and {len(incumbent)}/{expected} "
                             "incumbent re-measures: the confirmation is pending or was cut short")
        return verdict
    cand, inc = _median(candidate), _median(incumbent)
    verdict.update(candidate_median=cand, incumbent_median=inc)
    if inc == 0:
        verdict.update(state=REJECTED, reason="the incumbent measured 0")
        return verdict
    gain = (cand - inc) / abs(inc) * 100.0
    if direction != "maximize":
        gain = -gain
    gain += 0.0  # never -0.0
    deviations = [(v - middle) / abs(middle) * 100.0 for values, middle in ((candidate, cand), (incumbent, inc))
                  if middle for v in values]
    degrees = len(candidate) + len(incumbent) - 2
    spread = math.sqrt(sum(d * d for d in deviations) / degrees) if degrees > 0 else 0.0
    runs = min(len(candidate), len(incumbent))
    band = max(noise_pct or 0.0, spread) * math.sqrt(2.0 / runs)
    verdict.update(gain_pct=gain, band_pct=band, spread_pct=spread)
    if gain > band:
        verdict.update(state=CONFIRMED, reason=f"gain {gain:.2f}% > noise band {band:.2f}%")
    else:
        verdict.update(state=REJECTED, reason=f"gain {gain:.2f}% does not exceed the noise band {band:.2f}%")
    return verdict


def compute_frontier(rows: list[dict], direction: str = "minimize",
                     metric_name: str = "metric") -> Frontier:
    f = Frontier(direction=direction, metric_name=metric_name)
    confirmations: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("kind") == CONFIRMATION and row.get("confirms"):
            confirmations.setdefault(row["confirms"], []).append(row)
    since = 0
    discard_devs: list[float] = []
    by_commit: dict[str, list[float]] = {}
    measured_commits: dict[str, str] = {}
    for row in rows:
        value = as_number(row.get("metric"))
        status = row.get("status")
        if row.get("kind") == CONFIRMATION:
            f.confirmation_runs += 1
            if value is not None and status != "crash" and row.get("commit"):
                by_commit.setdefault(row["commit"], []).append(value)
                _update_noise(f, by_commit, discard_devs)
            continue
        f.runs += 1
        if status in f.counts:
            f.counts[status] += 1
        claimed = row.get("source") == CLAIMED
        if claimed:
            f.claimed_runs += 1
        previous_best = f.best
        new_best = False
        extra: dict[str, Any] = {"source": row.get("source") or MEASURED, "unverified": claimed}
        commit = row.get("commit") or ""
        if value is not None and status != "crash" and not claimed:
            if f.baseline is None:
                f.baseline, f.baseline_run = value, row["run_id"]
                f.best, f.best_run, f.best_commit = value, row["run_id"], commit
                new_best = True
            elif status == "keep" and f.better(value, f.best):
                needs = int(row.get("confirm_runs") or 0)
                if commit and (commit == f.best_commit or (not needs and commit in measured_commits)):
                    extra["repeat_of"] = measured_commits.get(commit, f.best_run)
                elif needs:
                    found = confirmations.get(row["run_id"], [])
                    verdict = confirmation_verdict(
                        [as_number(r["metric"]) for r in found if r.get("role") == CANDIDATE
                         and r.get("status") != "crash" and as_number(r["metric"]) is not None],
                        [as_number(r["metric"]) for r in found if r.get("role") == INCUMBENT
                         and r.get("status") != "crash" and as_number(r["metric"]) is not None],
                        direction, f.noise_pct, needs, crashed=any(r.get("status") == "crash" for r in found))
                    verdict.update(incumbent_run=f.best_run, incumbent_commit=f.best_commit,
                                   runs=[r["run_id"] for r in found])
                    extra["confirmation"] = verdict
                    if verdict["state"] == CONFIRMED and f.better(verdict["candidate_median"], f.best):
                        f.best, f.best_run, f.best_commit = verdict["candidate_median"], row["run_id"], commit
                        f.best_keep_run, f.best_evidence = row["run_id"], verdict
                        new_best = True
                    elif verdict["state"] == UNCONFIRMED:
                        f.unconfirmed.append(row["run_id"])
                    else:
                        f.rejected.append(row["run_id"])
                else:
                    f.best, f.best_run, f.best_commit = value, row["run_id"], commit
                    f.best_keep_run, f.best_evidence = row["run_id"], None
                    new_best = True
            if status in ("discard", "inconclusive") and previous_best not in (None, 0):
                discard_devs.append((value - previous_best) / abs(previous_best) * 100.0)
            if commit:
                by_commit.setdefault(commit, []).append(value)
                measured_commits.setdefault(commit, row["run_id"])
        since = 0 if new_best else since + 1
        f.runs_since_best = since
        if f.best is not None:
            f.best_history.append(f.best)
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
            **extra,
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
    index = next((i for i, r in enumerate(rows) if r["run_id"] == run_id), None)
    if index is None:  # never StopIteration: it cannot cross a thread into asyncio
        raise LookupError(f"run {run_id} is not in the ledger")
    # ... and confirmed: its own confirmation rows (written after it) belong to its verdict.
    own = [r for r in rows[index + 1:] if r.get("kind") == CONFIRMATION and r.get("confirms") == run_id]
    frontier = compute_frontier(rows[: index + 1] + own, direction, metric_name)
    row = rows[index]
    verdict = frontier.per_run[run_id]
    answer = {
        "run_id": run_id, "status": row["status"], "commit": row["commit"],
        "metric": row["metric"], **frontier.to_dict(plateau_runs), **verdict,
    }
    return answer


def write_columns(header: list[str] | None, metric: str) -> list[str]:
    """The columns of a row appended to a ledger with `header` (None: a new ledger):
    the header's own, then any standard column it lacks (read back the same way)."""
    if not header:
        return columns(metric)
    return header + [c for c in columns(metric) if c not in header]
