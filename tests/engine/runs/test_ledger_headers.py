"""Ledgers a person edited by hand: the writer follows the file's own header or refuses with
a clear message, run ids of any width read back, and every record_run answers (also when
something inside fails: a StopIteration must never reach asyncio's thread pool)."""

from __future__ import annotations

import asyncio

import pytest

from autoresearch_tui.engine.config import ConfigError, parse_config
from autoresearch_tui.engine.core.ledger import columns, read_ledger
from autoresearch_tui.engine.runs.record import LedgerError, allocate_run, record_run
from tests.engine.runs.test_ledger import make_workspace, write_summary  # noqa: F401 (fixture)
from tests.engine.runs.test_ledger import ws  # noqa: F401


def write_ledger(ws, header: list[str], rows: list[list[str]] = ()) -> None:
    path = ws.ledger_path("a")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")


def test_an_extra_notes_column_is_kept_and_the_new_row_reads_back(ws):
    write_ledger(ws, [*columns("step_time_ms"), "notes"])
    answer = record_run(ws, "a", "keep", "baseline", metric=12.5)
    rows, warnings = read_ledger(ws.ledger_path("a"), "step_time_ms")
    assert warnings == [] and [r["run_id"] for r in rows] == [answer["run_id"]]
    assert rows[0]["metric"] == 12.5 and rows[0]["description"] == "baseline"
    assert ws.ledger_path("a").read_text().splitlines()[1].endswith("\t")  # notes: empty


def test_a_reordered_header_is_followed(ws):
    header = columns("step_time_ms")
    header[3], header[5] = header[5], header[3]  # description before the metric
    write_ledger(ws, header)
    record_run(ws, "a", "discard", "swapped columns", metric=9.0)
    rows, warnings = read_ledger(ws.ledger_path("a"), "step_time_ms")
    assert warnings == [] and rows[0]["metric"] == 9.0 and rows[0]["description"] == "swapped columns"


def test_a_header_missing_a_column_is_refused_with_what_to_do(ws):
    header = [c for c in columns("step_time_ms") if c != "commit"]
    write_ledger(ws, header)
    before = ws.ledger_path("a").read_text()
    with pytest.raises(LedgerError, match=r"no commit column .*fix the header or move the file aside"):
        record_run(ws, "a", "keep", "baseline", metric=1.0)
    assert ws.ledger_path("a").read_text() == before  # nothing written


def test_a_twelve_digit_run_id_is_followed_by_a_readable_one(ws):
    header = columns("step_time_ms")
    write_ledger(ws, header, [["999999999999", "2026-01-01T00:00:00Z", "", "10", "keep", "imported",
                               *[""] * (len(header) - 6)]])
    answer = record_run(ws, "a", "keep", "next one", metric=8.0)
    assert answer["run_id"] == "1000000000000"
    rows, warnings = read_ledger(ws.ledger_path("a"), "step_time_ms")
    assert warnings == [] and [r["run_id"] for r in rows] == ["999999999999", "1000000000000"]
    assert rows[1]["metric"] == 8.0 and rows[1]["description"] == "next one"


def test_run_ids_beyond_any_sane_width_are_refused_not_written_unreadably(ws):
    (ws.runs_dir("a") / ("9" * 64)).mkdir(parents=True)
    with pytest.raises(LedgerError, match="run ids of lane a are used up"):
        allocate_run(ws, "a")


@pytest.mark.parametrize("metric", ["status", "run_id", "description", "commit", "ts", "profile"])
def test_a_metric_named_like_a_ledger_column_is_a_config_error(tmp_path, metric):
    toml = f'[experiment]\nmetric = "{metric}"\n[[lanes]]\nname = "a"\n'
    with pytest.raises(ConfigError, match=r"experiment\.metric: .*ledger column"):
        parse_config(toml, tmp_path / "autoresearch.toml")


async def test_record_run_answers_even_when_the_ledger_code_raises_stop_iteration(tmp_path, monkeypatch):
    from autoresearch_tui.engine.agent.lane import Lane
    from autoresearch_tui.engine.agent.tools import LaneTools
    from autoresearch_tui.engine.runs import record

    workspace = make_workspace(tmp_path)
    lane = Lane("a", workspace.config, workspace, publish=lambda event: None,
                session_factory=lambda lane: None)  # never opened: no session runs here

    def broken(*args, **kwargs):
        return next(iter([]))  # what an unreadable row did deep inside record_run

    monkeypatch.setattr(record, "record_run", broken)
    answer = await asyncio.wait_for(LaneTools(lane).record_run({"status": "keep", "description": "x"}),
                                    timeout=10)
    assert answer.is_error and "record_run failed" in answer.text


def test_a_400_digit_integer_in_a_summary_leaves_the_run_recordable(ws):
    from autoresearch_tui.engine.runs.metrics import MetricsWatcher, read_run_summary

    run_id, run_dir = allocate_run(ws, "a")
    huge = "9" * 400
    (run_dir / "metrics.jsonl").write_text(
        '{"v": 1, "kind": "step", "step": 1, "step_time_s": %s}\n'
        '{"v": 1, "kind": "summary", "step_time_median_s": 0.01, "mfu": %s, "compile_s": %s}\n'
        % (huge, huge, huge))
    summary, _profile, warnings = read_run_summary(run_dir / "metrics.jsonl")
    assert summary is None and warnings  # a number no float can hold is a bad record, said so
    watcher = MetricsWatcher("a", ws.runs_dir("a"), lambda event: None)
    assert [e["type"] for e in watcher.scan_once()] == ["warning", "warning"]
    answer = record_run(ws, "a", "crash", "overflowing summary", run_dir=run_id)
    assert answer["run_id"] == run_id and answer["status"] == "crash"
    answer = record_run(ws, "a", "keep", "claimed", metric=float(10**300), run_dir=allocate_run(ws, "a")[0])
    rows, row_warnings = read_ledger(ws.ledger_path("a"), "step_time_ms")
    assert row_warnings == [] and len(rows) == 2
