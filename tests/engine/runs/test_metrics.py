"""Metrics lines, the file follower, per-lane state and the watcher."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoresearch_tui.engine.runs.metrics import (
    LaneMetrics,
    MetricsFollower,
    MetricsParseError,
    MetricsWatcher,
    parse_metrics_line,
)

STEP = {"v": 1, "kind": "step", "step": 12, "step_time_s": 0.1182, "warmup": False}
SUMMARY = {"v": 1, "kind": "summary", "step_time_median_s": 0.1183, "p10_s": 0.1123, "p90_s": 0.1314,
           "n": 50, "mfu": None, "hbm_peak_bytes": None, "compile_s": 0.49}
PROFILE = {"v": 1, "kind": "profile", "dir": "profile/plugins/profile/2026_11_26_06_00_00"}


def line(record) -> str:
    return json.dumps(record) + "\n"


@pytest.mark.parametrize("record", [STEP, SUMMARY, PROFILE])
def test_design_examples_parse(record):
    assert parse_metrics_line(json.dumps(record)) == record


def test_unknown_kinds_and_fields_pass_through():
    assert parse_metrics_line('{"v":1,"kind":"memory","x":[1]}')["x"] == [1]
    assert parse_metrics_line(json.dumps({**STEP, "loss": 2.5}))["loss"] == 2.5


@pytest.mark.parametrize("text, fragment", [
    ('{"v":1,"kind":"step","step":"3","step_time_s":0.1}', "step.step"),
    ('{"v":1,"kind":"step","step":3,"step_time_s":true}', "step.step_time_s"),
    ('{"v":1,"kind":"step","step":3,"step_time_s":NaN}', "NaN"),
    ('{"v":1,"kind":"summary","step_time_median_s":"fast"}', "summary.step_time_median_s"),
    ('{"v":1,"kind":"summary","step_time_median_s":0.1,"mfu":"high"}', "summary.mfu"),
    ('{"v":1,"kind":"profile","dir":3}', "profile.dir"),
    ('{"v":2,"kind":"step"}', "unsupported version"),
    ('{"kind":"step"}', "v:"),
    ('[1,2]', "JSON object"),
    ('{"v":1,"kind":"ste', "not JSON"),
    ('', "empty"),
])
def test_wrong_records_are_rejected_with_a_reason(text, fragment):
    with pytest.raises(MetricsParseError, match=fragment.replace("(", r"\(")):
        parse_metrics_line(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                              lambda children: st.lists(children, max_size=4)
                              | st.dictionaries(st.text(max_size=8), children, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v))))
def test_junk_never_raises_anything_but_the_parse_error(junk):
    try:
        parse_metrics_line(junk)
    except MetricsParseError:
        pass


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.builds(lambda s, t, w: {"v": 1, "kind": "step", "step": s, "step_time_s": t, "warmup": w},
              st.integers(0, 10**9), finite, st.booleans()),
    st.builds(lambda m, p10, n, mfu, hbm, c: {"v": 1, "kind": "summary", "step_time_median_s": m,
                                              "p10_s": p10, "p90_s": None, "n": n, "mfu": mfu,
                                              "hbm_peak_bytes": hbm, "compile_s": c},
              finite, finite | st.none(), st.integers(0, 10**6), finite | st.none(),
              st.integers(0, 2**50) | st.none(), finite | st.none()),
    st.builds(lambda d: {"v": 1, "kind": "profile", "dir": d},
              st.text(min_size=1, max_size=50).filter(lambda s: s.strip() and "\x00" not in s)),
))
def test_valid_records_round_trip(record):
    assert parse_metrics_line(json.dumps(record)) == record
    assert parse_metrics_line(json.dumps(record).encode()) == record


def test_follower_waits_for_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.read_lines() == []  # not there yet
    text = line(STEP)
    path.write_text(text + text[:10])
    assert [n for n, _ in follower.read_lines()] == [1]
    assert follower.read_lines() == []  # still half a line
    with open(path, "a") as handle:
        handle.write(text[10:] + line(SUMMARY))
    lines = follower.read_lines()
    assert [n for n, _ in lines] == [2, 3]
    assert parse_metrics_line(lines[0][1]) == STEP
    path.write_text(line(PROFILE))  # replaced by a shorter file: read again from the start
    assert [parse_metrics_line(t)["kind"] for _, t in follower.read_lines()] == ["profile"]


def test_lane_metrics_report_the_latest_run_and_never_a_verdict():
    """Baseline, best and change are the ledger's; the watcher only reports what runs print."""
    lane = LaneMetrics(metric="step_time_ms")
    for run, seconds in [("r1", 0.100), ("r2", 0.080), ("r3", 0.090)]:
        lane.add_summary(run, {**SUMMARY, "step_time_median_s": seconds})
    lane.add_step("r4", {**STEP, "step_time_s": 0.07})
    assert lane.runs == 3 and lane.latest_value == pytest.approx(90.0)
    assert lane.live_step_time_ms == pytest.approx(70.0) and lane.live_run_id == "r4"
    data = lane.to_dict()
    assert not any("best" in key or "baseline" in key for key in data)
    up = LaneMetrics(metric="mfu")
    up.add_summary("r1", {**SUMMARY, "mfu": 0.3})
    assert up.latest_value == pytest.approx(0.3)
    json.dumps(up.to_dict())


def test_watcher_scan_once_events_warnings_and_new_runs(tmp_path):
    runs = tmp_path / "runs"
    events = []
    watcher = MetricsWatcher("a", runs, events.append, summarize_profiles=False)
    assert watcher.scan_once() == []  # no runs folder yet: nothing, no error
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "metrics.jsonl").write_text(line(STEP) + "not json\n" + line(SUMMARY) + '{"v":1,"ki')
    watcher.scan_once()
    kinds = [(e["type"], e.get("kind")) for e in events]
    assert kinds == [("metric", "step"), ("warning", None), ("metric", "summary")]
    summary = events[2]
    assert summary["lane"] == "a" and summary["run_id"] == "r1"
    assert summary["step_time_ms"] == pytest.approx(118.3) and summary["value"] == pytest.approx(118.3)
    assert "new_best" not in summary and "best" not in summary  # verdicts are the ledger's
    assert "metrics.jsonl:2" in events[1]["message"]
    events.clear()
    (runs / "r2").mkdir()
    (runs / "r2" / "metrics.jsonl").write_text(line({**SUMMARY, "step_time_median_s": 0.05}) + line(PROFILE))
    with open(runs / "r1" / "metrics.jsonl", "a") as handle:
        handle.write('nd":"step","step":1,"step_time_s":0.1}\n')  # completes the half line
    watcher.scan_once()
    assert [(e["run_id"], e.get("kind")) for e in events] == [("r1", "step"), ("r2", "summary"), ("r2", "profile")]
    assert events[1]["value"] == pytest.approx(50.0)
    assert events[2]["path"] == str((runs / "r2" / PROFILE["dir"]).resolve())
    assert watcher.state.latest_summary["step_time_median_s"] == 0.05


def test_watcher_survives_a_failing_callback_and_floods(tmp_path):
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "metrics.jsonl").write_text("junk\n" * 100 + line(SUMMARY))

    def broken(event):
        raise RuntimeError("callback bug")

    watcher = MetricsWatcher("a", runs, broken)
    events = watcher.scan_once()
    assert sum(e["type"] == "warning" for e in events) == 5  # capped per file
    assert watcher.state.latest_summary is not None


def test_restart_rebuilds_state_without_re_emitting(tmp_path):
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "metrics.jsonl").write_text(line(SUMMARY))
    emitted = []
    watcher = MetricsWatcher("a", runs, emitted.append)
    watcher.scan_once(emit=False)
    assert emitted == [] and watcher.state.runs == 1 and watcher.state.latest_value == pytest.approx(118.3)


async def test_watcher_follows_with_watchfiles(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    events = []
    got_summary = asyncio.Event()

    def emit(event):
        events.append(event)
        if event.get("kind") == "summary":
            got_summary.set()

    stop = asyncio.Event()
    watcher = MetricsWatcher("b", runs, emit, poll_s=0.5)
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(0.3)
    (runs / "r7").mkdir()
    path = runs / "r7" / "metrics.jsonl"
    path.write_text(line(STEP))
    await asyncio.sleep(0.2)
    with open(path, "a") as handle:
        handle.write(line(SUMMARY))
    await asyncio.wait_for(got_summary.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert [e.get("kind") for e in events] == ["step", "summary"]
    assert events[1]["lane"] == "b" and events[1]["run_id"] == "r7"


def test_a_summary_may_carry_only_its_own_metric(tmp_path):
    from autoresearch_tui.engine.runs.metrics import MetricsWatcher, read_run_summary

    run = tmp_path / "runs" / "0001"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"v":1,"kind":"summary","score":41.0}\n')
    summary, _, warnings = read_run_summary(run / "metrics.jsonl")
    assert summary == {"v": 1, "kind": "summary", "score": 41.0} and warnings == []
    watcher = MetricsWatcher("a", tmp_path / "runs", lambda e: None, metric="score")
    events = watcher.scan_once()
    assert [e["type"] for e in events] == ["metric"] and events[0]["value"] == 41.0
    assert watcher.state.latest_value == 41.0


def test_a_summary_carries_the_configured_metric_under_its_own_name():
    """Only the fields the configured metric needs are required (issue 12, item 1)."""
    from autoresearch_tui.engine.runs.metrics import metric_value, missing_metric

    score = parse_metrics_line('{"v":1,"kind":"summary","score":41.0}')
    assert metric_value(score, "score") == 41.0 and missing_metric(score, "score") is None
    assert missing_metric(score, "step_time_ms") == (
        "the summary has no `step_time_ms` or `step_time_median_s` (a finite number) for the "
        "configured metric step_time_ms")
    step = parse_metrics_line('{"v":1,"kind":"summary","step_time_median_s":0.25}')
    assert metric_value(step, "step_time_ms") == 250.0 and metric_value(step, "step_time_s") == 0.25
    assert missing_metric(step, "tokens_per_s").startswith("the summary has no `tokens_per_s`")
    assert missing_metric(None, "score") == "no summary record was written"
