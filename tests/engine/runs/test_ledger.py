"""The ledger: rows written whole, torn rows recovered, ids never reused, frontier and noise."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch_tui.engine.config import parse_config
from autoresearch_tui.engine.repo.forks import ensure_fork, git, git_out
from autoresearch_tui.engine.core.ledger import (
    STATUSES, TORN_MARK, columns, compute_frontier, parse_ledger, read_ledger, sanitize, scaled_mad,
)
from autoresearch_tui.engine.runs.run_info import update_run_info
from autoresearch_tui.engine.runs.record import (
    LedgerError, allocate_run, lane_summary, latest_unrecorded_run, record_run,
)
from autoresearch_tui.engine.workspace import Workspace
from tests.support import record_measured


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git_out(repo, "rev-parse", "HEAD")


def make_workspace(tmp_path: Path, metric="step_time_ms", direction="minimize") -> Workspace:
    repo = tmp_path / "raw" / "code" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    git(repo, "config", "user.name", "Main User")
    git(repo, "config", "user.email", "main@example.com")
    for i in range(3):
        commit_file(repo, "model.py", f"LAYERS = {i}\n", f"history {i}")
    toml = (f'[experiment]\nname = "exp"\nrepo = "raw/code/proj"\nmetric = "{metric}"\n'
            f'direction = "{direction}"\n[loop]\nplateau_runs = 3\n[[lanes]]\nname = "a"\n')
    return Workspace(parse_config(toml, tmp_path / "autoresearch.toml"))


@pytest.fixture
def ws(tmp_path):
    workspace = make_workspace(tmp_path)
    ensure_fork(workspace, "a")
    return workspace


def engine_ran(ws: Workspace, run_dir: Path, commit: str | None = None, status: str = "ok",
               dirty: list[str] | None = None) -> None:
    """What measure() leaves in run.json after it ran the benchmark (the integration tests
    run the real thing; these unit tests of the ledger write the same record)."""
    commit = commit or git_out(ws.fork_dir("a"), "rev-parse", "HEAD")
    update_run_info(run_dir, run_id=run_dir.name, lane="a", purpose="benchmark", status=status,
                    commit=commit, dirty=dirty or [])


def write_summary(run_dir: Path, step_s: float, **extra) -> None:
    lines = [
        {"v": 1, "kind": "step", "step": 1, "step_time_s": step_s, "warmup": False},
        {"v": 1, "kind": "summary", "step_time_median_s": step_s, "p10_s": step_s, "p90_s": step_s,
         "n": 50, "mfu": 0.41, "hbm_peak_bytes": 3 * 2**30, "compile_s": 0.49, **extra},
        {"v": 1, "kind": "profile", "dir": "profile/plugins/profile/2026_11_26_06_00_00"},
    ]
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n{half a li")


def test_record_reads_summary_writes_row_and_ref(ws):
    fork = ws.fork_dir("a")
    run_id, run_dir = allocate_run(ws, "a")
    assert run_id == "0001" and run_dir.is_dir()
    write_summary(run_dir, 0.1183)
    engine_ran(ws, run_dir)
    answer = record_run(ws, "a", "keep", "baseline\twith tab\nand newline", run_dir=run_dir)
    head = git_out(fork, "rev-parse", "HEAD")
    assert answer["run_id"] == "0001" and answer["commit"] == head
    assert answer["metric"] == pytest.approx(118.3)
    assert answer["baseline"] == pytest.approx(118.3) and answer["best"] == pytest.approx(118.3)
    assert answer["new_best"] is False and answer["runs_since_best"] == 0
    assert git_out(fork, "rev-parse", "refs/autoresearch/runs/0001") == head
    text = ws.ledger_path("a").read_text()
    header, row = text.splitlines()
    assert header.split("\t") == columns("step_time_ms")
    assert header.split("\t")[:6] == ["run_id", "ts", "commit", "step_time_ms", "status", "description"]
    fields = row.split("\t")
    assert len(fields) == len(columns("step_time_ms"))
    values = dict(zip(header.split("\t"), fields))
    assert values["description"] == "baseline with tab and newline"
    assert float(values["mfu"]) == 0.41 and float(values["peak_hbm_gib"]) == 3.0
    assert values["profile"] == "runs/0001/profile/plugins/profile/2026_11_26_06_00_00"
    assert values["source"] == "measured" and answer["source"] == "measured"


def test_metric_named_differently_is_read_from_summary(tmp_path):
    ws = make_workspace(tmp_path, metric="tokens_per_s", direction="maximize")
    ensure_fork(ws, "a")
    run_id, run_dir = allocate_run(ws, "a")
    write_summary(run_dir, 0.2, tokens_per_s=5000.0)
    engine_ran(ws, run_dir)
    answer = record_run(ws, "a", "keep", "base", run_dir=run_id)
    assert answer["metric"] == 5000.0
    rows, warnings = read_ledger(ws.ledger_path("a"), "tokens_per_s")
    assert not warnings and rows[0]["step_time_ms"] == pytest.approx(200.0)
    assert "step_time_ms" in ws.ledger_path("a").read_text().splitlines()[0].split("\t")


def test_record_run_is_idempotent(ws):
    run_id, run_dir = allocate_run(ws, "a")
    first = record_run(ws, "a", "keep", "base", metric=100.0, run_dir=run_dir)
    commit_file(ws.fork_dir("a"), "model.py", "LAYERS = 5\n", "later")  # HEAD moves
    again = record_run(ws, "a", "discard", "different words", metric=50.0, run_dir=run_dir)
    assert again["already_recorded"] is True and first["already_recorded"] is False
    for key in ("run_id", "commit", "metric", "status", "baseline", "best", "runs_since_best"):
        assert again[key] == first[key]
    rows, _ = read_ledger(ws.ledger_path("a"))
    assert len(rows) == 1


def test_run_ids_ordered_and_never_reused_after_restart(ws):
    ids = [allocate_run(ws, "a")[0] for _ in range(3)]
    assert ids == ["0001", "0002", "0003"]
    record_run(ws, "a", "keep", "x", metric=1.0, run_dir=ids[2])
    # a restart that lost the run folders still never reuses a recorded id
    for run in ws.runs_dir("a").iterdir():
        run.rmdir() if not any(run.iterdir()) else None
    assert allocate_run(ws, "a")[0] == "0004"
    # ... nor one that lost the ledger too (the fork's run refs remember)
    ws.ledger_path("a").unlink()
    for run in list(ws.runs_dir("a").iterdir()):
        run.rmdir()
    assert allocate_run(ws, "a")[0] == "0004"


def test_allocate_run_threads_get_unique_ids(ws):
    got: list[str] = []
    lock = threading.Lock()

    def take():
        for _ in range(10):
            run_id, _ = allocate_run(ws, "a")
            with lock:
                got.append(run_id)

    threads = [threading.Thread(target=take) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(got) == len(set(got)) == 40


def test_record_without_run_dir_means_the_latest_finished_unrecorded_run(ws):
    first, first_dir = allocate_run(ws, "a")
    engine_ran(ws, first_dir, status="crash")
    second, second_dir = allocate_run(ws, "a")
    update_run_info(second_dir, status="running")  # still going: not what a record means
    assert latest_unrecorded_run(ws, "a")[0] == first
    answer = record_run(ws, "a", "crash", "oom")
    assert answer["run_id"] == first and answer["metric"] is None
    assert latest_unrecorded_run(ws, "a") is None
    answer = record_run(ws, "a", "crash", "nothing finished: a fresh run")
    assert answer["run_id"] == "0003"


def test_bad_inputs_refused(ws, tmp_path):
    with pytest.raises(LedgerError, match="status"):
        record_run(ws, "a", "kept", "x", metric=1.0)
    with pytest.raises(LedgerError, match="not a run folder"):
        record_run(ws, "a", "keep", "x", metric=1.0, run_dir=tmp_path)
    with pytest.raises(LedgerError, match="finite"):
        record_run(ws, "a", "keep", "x", metric=float("nan"))


def test_a_run_measured_on_uncommitted_changes_cannot_be_a_keep(ws):
    run_id, run_dir = allocate_run(ws, "a")
    write_summary(run_dir, 0.1)
    engine_ran(ws, run_dir, dirty=["model.py"])
    with pytest.raises(LedgerError, match="uncommitted changes .* cannot be a keep. Commit your change and run"):
        record_run(ws, "a", "keep", "x", run_dir=run_id)
    assert record_run(ws, "a", "discard", "x", run_dir=run_id)["status"] == "discard"


def test_a_run_the_engine_never_ran_is_recorded_against_head_with_a_warning(ws):
    answer = record_run(ws, "a", "keep", "x", metric=1.0)
    assert answer["commit"] == git_out(ws.fork_dir("a"), "rev-parse", "HEAD")
    assert answer["source"] == "claimed" and answer["baseline"] is None
    assert any("was not run by the engine" in w for w in answer["warnings"])


def test_torn_row_recovery(ws):
    record_run(ws, "a", "keep", "base", metric=100.0)
    ledger = ws.ledger_path("a")
    # a crash mid-row: the last row lost its tail (even exactly at a field boundary)
    good = ledger.read_bytes()
    torn_row = "0002\t2026-01-01T00:00:00Z\t" + "a" * 40 + "\t90.0\tkeep\tfast\t\t\t\t"
    ledger.write_bytes(good + torn_row.encode())
    rows, warnings = read_ledger(ledger)
    assert [r["run_id"] for r in rows] == ["0001"] and "incomplete" in warnings[0]
    answer = record_run(ws, "a", "discard", "after the crash", metric=105.0)
    assert answer["run_id"] == "0003"
    text = ledger.read_text()
    assert TORN_MARK in text
    rows, warnings = read_ledger(ledger)
    assert [r["run_id"] for r in rows] == ["0001", "0003"]
    assert rows[1]["description"] == "after the crash" and rows[1]["metric"] == 105.0
    assert len(warnings) == 1 and ":3:" in warnings[0] and "torn" in warnings[0]
    assert text.endswith("\n")


def test_hand_edited_ledger_read_as_far_as_valid(tmp_path):
    cols = columns("step_time_ms")
    row = lambda rid, m, st: "\t".join([rid, "ts", "abcd1234", m, st, "d"] + [""] * (len(cols) - 6))
    text = "\n".join([
        "\t".join(cols), row("0001", "10", "keep"), "garbage line", row("0002", "x", "keep"),
        row("0003", "9", "maybe"), row("0001", "8", "keep"), "", row("0004", "9.5", "keep"),
    ]) + "\n"
    path = tmp_path / "results.tsv"
    path.write_text(text)
    rows, warnings = read_ledger(path)
    assert [r["run_id"] for r in rows] == ["0001", "0004"]
    lines = sorted(int(re.search(r"results.tsv:(\d+):", w).group(1)) for w in warnings)
    assert lines == [3, 4, 5, 6]


def test_reordered_columns_read_by_header(tmp_path):
    path = tmp_path / "results.tsv"
    cols = columns("step_time_ms")
    reordered = [cols[4], *cols[:4], *cols[5:]]
    values = {"run_id": "0001", "ts": "t", "commit": "abcdef12", "step_time_ms": "12.5",
              "status": "keep", "description": "d"}
    path.write_text("\t".join(reordered) + "\n" + "\t".join(values.get(c, "") for c in reordered) + "\n")
    rows, warnings = read_ledger(path, "step_time_ms")
    assert not warnings and rows[0]["metric"] == 12.5 and rows[0]["status"] == "keep"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_reader_never_raises_on_random_bytes(data):
    rows, warnings = parse_ledger(data)
    assert isinstance(rows, list) and isinstance(warnings, list)


field_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(field_text, st.sampled_from(["keep", "0001", "1.5", "", "nan"])),
                         max_size=13), max_size=12))
def test_reader_never_raises_on_random_lines(table):
    header = "\t".join(columns("step_time_ms"))
    data = (header + "\n" + "\n".join("\t".join(r) for r in table)).encode("utf-8", "surrogatepass")
    rows, warnings = parse_ledger(data, metric="step_time_ms")
    for row in rows:
        assert row["status"] in STATUSES and row["run_id"].isdigit()
        assert row["metric"] is None or math.isfinite(row["metric"])


def test_sanitize():
    assert sanitize("a\tb\r\nc\x00d\x1b[31m") == "a b cd[31m"


# ---------------------------------------------------------------------------- frontier

def rows_of(spec):
    return [{"run_id": f"{i + 1:04d}", "commit": c or f"{i:08x}", "metric": m, "status": s}
            for i, (s, m, c) in enumerate(spec)]


def test_frontier_basics_minimize():
    rows = rows_of([("keep", 100.0, None), ("discard", 104.0, None), ("keep", 90.0, None),
                    ("crash", None, None), ("discard", 95.0, None), ("keep", 92.0, None)])
    f = compute_frontier(rows, "minimize", "step_time_ms")
    assert (f.baseline, f.baseline_run, f.best, f.best_run) == (100.0, "0001", 90.0, "0003")
    assert f.change_pct == pytest.approx(-10.0)
    assert f.runs_since_best == 3 and f.plateau(3) and not f.plateau(4)
    assert f.per_run["0003"]["new_best"] and f.per_run["0003"]["delta_vs_best_pct"] == pytest.approx(-10)
    assert f.per_run["0006"]["new_best"] is False
    assert f.counts == {"keep": 3, "discard": 2, "crash": 1, "inconclusive": 0}


def test_frontier_maximize_and_discards_never_best():
    rows = rows_of([("keep", 10.0, None), ("discard", 50.0, None), ("keep", 11.0, None)])
    f = compute_frontier(rows, "maximize")
    assert f.best == 11.0 and f.best_run == "0003" and f.best_keep_run == "0003"


def test_noise_from_repeats_and_within_noise_flag():
    rows = rows_of([("keep", 100.0, "c1"), ("inconclusive", 102.0, "c1"), ("inconclusive", 98.0, "c1"),
                    ("inconclusive", 101.0, "c1"), ("keep", 99.5, "c2"), ("keep", 80.0, "c3")])
    f = compute_frontier(rows, "minimize")
    assert f.noise_source == "repeats" and f.noise_pct is not None and 0.5 < f.noise_pct < 3
    assert f.per_run["0005"]["new_best"] and f.per_run["0005"]["within_noise"] is True
    assert f.per_run["0006"]["within_noise"] is False


def test_noise_none_with_too_few_runs_then_from_discards():
    rows = rows_of([("keep", 100.0, None), ("discard", 101.0, None)])
    assert compute_frontier(rows).noise_pct is None
    rows = rows_of([("keep", 100.0, None), ("discard", 101.0, None), ("discard", 103.0, None),
                    ("discard", 102.0, None)])
    f = compute_frontier(rows)
    assert f.noise_source == "discards" and f.noise_pct == pytest.approx(scaled_mad([1.0, 3.0, 2.0]))


statuses = st.sampled_from(STATUSES)
metrics = st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(statuses, metrics, st.sampled_from([None, "c1", "c2"])), max_size=30),
       st.sampled_from(["minimize", "maximize"]))
def test_frontier_properties(spec, direction):
    rows = rows_of(spec)
    f = compute_frontier(rows, direction)
    valued = [r for r in rows if r["metric"] is not None and r["status"] != "crash"]
    if not valued:
        assert f.baseline is None and f.best is None
        return
    assert f.baseline == valued[0]["metric"]
    # Keeps count unless they re-measure a commit measured before (a repeat is never a new best).
    seen: set[str] = set()
    keeps = []
    for r in valued:
        if r["status"] == "keep" and r["commit"] not in seen:
            keeps.append(r["metric"])
        seen.add(r["commit"])
    pick = min if direction == "minimize" else max
    assert f.best == pick([f.baseline, *keeps])
    assert not f.better(f.baseline, f.best)  # best is never worse than the baseline
    best_index = next(i for i, r in enumerate(rows) if r["run_id"] == f.best_run)
    assert f.runs_since_best == len(rows) - 1 - best_index
    assert f.noise_pct is None or f.noise_pct >= 0
    assert f.plateau(max(1, f.runs_since_best)) == (f.runs_since_best >= 1) or f.runs_since_best == 0
    # a prefix never knows the future: per-run verdicts equal those of the prefix alone
    if rows:
        k = len(rows) // 2
        g = compute_frontier(rows[:k], direction)
        for run_id, verdict in g.per_run.items():
            assert verdict == f.per_run[run_id]


def test_lane_summary(ws):
    for i, (status, m) in enumerate([("keep", 100.0), ("discard", 110.0), ("keep", 95.0)]):
        commit_file(ws.fork_dir("a"), "model.py", f"v{i}\n", f"v{i}")
        run_id, run_dir = allocate_run(ws, "a")
        write_summary(run_dir, m / 1000)
        engine_ran(ws, run_dir)
        record_run(ws, "a", status, f"v{i}", run_dir=run_id, confirm_runs=0)
    summary = lane_summary(ws, "a")
    assert summary["best"] == 95.0 and summary["plateau"] is False
    assert [r["run_id"] for r in summary["last_runs"]] == ["0001", "0002", "0003"]
    assert summary["last_runs"][2]["new_best"] is True


def test_a_hand_kept_ledger_without_a_header_row_is_read():
    """Six columns and no header (as a person or another tool keeps one): every row counts,
    with a warning; before, all of them were dropped as 'fields where the header has 10'."""
    data = b"0001\tt\taaaa1111\t10.0\tkeep\tbaseline\n0002\tt\tbbbb2222\t9.0\tkeep\tjit\n"
    rows, warnings = parse_ledger(data, "step_time_ms")
    assert [r["metric"] for r in rows] == [10.0, 9.0]
    assert warnings == ["results.tsv:1: no header row; assuming the standard columns"]
    frontier = compute_frontier(rows, "minimize", "step_time_ms")
    assert (frontier.runs, frontier.best, frontier.runs_since_best) == (2, 9.0, 0)


def test_ledger_numbers_carry_no_float_noise(ws):
    for step_s in (0.006765, 0.07304299999999999):
        run_id, run_dir = allocate_run(ws, "a")
        write_summary(run_dir, step_s)
        record_run(ws, "a", "keep", "noise", run_dir=run_dir)
    text = ws.ledger_path("a").read_text()
    assert "\t6.765\t" in text and "\t73.043\t" in text
    assert "0000000" not in text and "9999999" not in text


# ---------------------------------------------------------------------------- evidence columns

def test_a_ledger_written_before_the_evidence_columns_still_reads_and_takes_new_rows(ws):
    """Old ledgers (no source/kind/... columns) keep their rows, and new rows carry the new
    columns after the old header's: both read back, nothing rewritten."""
    from autoresearch_tui.engine.core.ledger import LEGACY_EXTRAS, legacy_columns

    old_header = legacy_columns("step_time_ms")
    assert "source" not in old_header and len(old_header) == 6 + len(LEGACY_EXTRAS) - 1
    head = git_out(ws.fork_dir("a"), "rev-parse", "HEAD")
    old_row = ["0001", "2026-01-01T00:00:00Z", head, "100", "keep", "baseline"] + [""] * (len(old_header) - 6)
    ledger = ws.ledger_path("a")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    before = "\t".join(old_header) + "\n" + "\t".join(old_row) + "\n"
    ledger.write_text(before)
    commit_file(ws.fork_dir("a"), "model.py", "faster\n", "faster")
    answer = record_measured(ws, "a", "keep", "faster", 80.0)
    assert answer["source"] == "measured" and answer["best"] == 80.0
    text = ledger.read_text()
    assert text.startswith(before)  # not a byte of the old ledger changed
    rows, warnings = read_ledger(ledger, "step_time_ms")
    assert not warnings
    assert [(r["run_id"], r["source"], r["metric"]) for r in rows] == [("0001", "", 100.0), ("0002", "measured", 80.0)]
    assert compute_frontier(rows, "minimize", "step_time_ms").baseline == 100.0  # legacy rows count as before


def test_the_confirmation_rule():
    from autoresearch_tui.engine.core.ledger import confirmation_verdict

    clear = confirmation_verdict([70.0, 71.0], [100.0, 99.0], "minimize", None, 2)
    assert clear["state"] == "confirmed" and clear["gain_pct"] == pytest.approx((99.5 - 70.5) / 99.5 * 100)
    same = confirmation_verdict([100.0, 101.0], [100.0, 99.0], "minimize", 1.0, 2)
    assert same["state"] == "rejected" and "does not exceed" in same["reason"]
    # A gain smaller than the lane's noise is not confirmed, however tidy the re-measures.
    small = confirmation_verdict([97.0, 97.0], [100.0, 100.0], "minimize", 5.0, 2)
    assert small["state"] == "rejected" and small["band_pct"] == pytest.approx(5.0)
    # More re-measures narrow the band: the same 4% gain holds with 8 of each.
    assert confirmation_verdict([96.0] * 8, [100.0] * 8, "minimize", 5.0, 8)["state"] == "confirmed"
    assert confirmation_verdict([60.0, 61.0], [41.0, 40.0], "maximize", None, 2)["state"] == "confirmed"
    assert confirmation_verdict([70.0], [100.0], "minimize", None, 2)["state"] == "unconfirmed"
    assert confirmation_verdict([70.0, 70.0], [100.0], "minimize", None, 2, crashed=True)["state"] == "rejected"


def test_only_a_confirmed_candidate_becomes_the_best_and_its_value_is_the_confirmed_median():
    def row(run_id, commit, metric, status="keep", **extra):
        return {"run_id": run_id, "commit": commit * 8, "metric": metric, "status": status, "source": "measured",
                "kind": "", "confirms": "", "role": "", "confirm_runs": 0, **extra}

    def confirmation(run_id, candidate, role, commit, metric):
        return row(run_id, commit, metric, "repeat", kind="confirmation", confirms=candidate, role=role)

    rows = [row("0001", "a", 100.0), row("0002", "b", 60.0, confirm_runs=2)]
    f = compute_frontier(rows, "minimize")
    assert f.best_run == "0001" and f.unconfirmed == ["0002"]  # pending: not the best yet
    rows += [confirmation("0003", "0002", "candidate", "b", 71.0), confirmation("0004", "0002", "incumbent", "a", 100.0),
             confirmation("0005", "0002", "candidate", "b", 69.0), confirmation("0006", "0002", "incumbent", "a", 101.0)]
    f = compute_frontier(rows, "minimize")
    assert f.best_run == "0002" and f.best == 70.0 and f.best_keep_run == "0002" and f.best_evidence["state"] == "confirmed"
    assert f.runs == 2 and f.confirmation_runs == 4  # re-measures are not experiments
    rows.append(row("0007", "b", 50.0))  # a lucky re-measure of the best's own commit
    f = compute_frontier(rows, "minimize")
    assert f.best_run == "0002" and f.per_run["0007"]["repeat_of"] == "0002"
    rows.append(row("0008", "c", 1.0, source="claimed"))
    f = compute_frontier(rows, "minimize")
    assert f.best == 70.0 and f.claimed_runs == 1 and f.per_run["0008"]["unverified"] is True
def test_the_engine_s_cached_frontier_stays_small_over_a_long_ledger(tmp_path):
    """The engine holds each lane's frontier for its whole life: over a week's ledger it
    must cost what snapshots show, not a verdict per row; and show the same as a fresh one."""
    import tracemalloc

    from autoresearch_tui.engine.runs.record import FrontierCache, lane_frontier

    workspace = make_workspace(tmp_path)
    rows = ["\t".join(columns("step_time_ms"))]
    for n in range(1, 3001):
        status = "keep" if n % 50 == 1 else "discard"
        rows.append(f"{n:04d}\t2026-11-26T06:00:00Z\t{n:040x}\t{100 - n / 100:.3f}\t{status}\t"
                    f"experiment {n}\t0.4\t3.0\t0.5\t" + "\t" * (len(columns("step_time_ms")) - 10))
    workspace.ledger_path("a").parent.mkdir(parents=True, exist_ok=True)
    workspace.ledger_path("a").write_text("\n".join(rows) + "\n")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = FrontierCache(workspace)
        cached, warnings = cache.get("a")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    fresh, _ = lane_frontier(workspace, "a")
    assert warnings == [] and cached.runs == 3000
    assert cached.to_dict(3) == fresh.to_dict(3)  # what snapshots and stop decisions read
    assert cache.get("a")[0] is cached  # unchanged ledger: not recomputed
    assert held < 150_000, f"{held / 3000:.0f} bytes held per ledger row"
