"""`logs LANE`: readable events from a real workspace, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.core.events import EventLog, iter_events, make_event, read_events
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace


def cli(*args: str, config, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=120, **kwargs)


def write_events(config, events) -> None:
    log = EventLog(Workspace(config).events_path("a"))
    try:
        for event in events:
            log.append(event)
    finally:
        log.close()


@pytest.fixture
def lane_with_steps(tmp_path):
    config = make_workspace(tmp_path)
    now = time.time()
    events = [make_event("a", "run_started", run_id="0001", description="baseline")]
    events += [make_event("a", "metric", kind="step", run_id="0001", step=i, step_time_s=0.0067,
                          step_time_ms=6.7) for i in range(30)]
    events += [make_event("a", "metric", kind="summary", run_id="0001", step_time_median_s=0.0067,
                          step_time_ms=6.765000000000001),
               make_event("a", "run_recorded", run_id="0001", status="keep", metric_value=6.765)]
    for offset, event in enumerate(events):
        event["ts"] = now - 100 + offset
    write_events(config, events)
    return config


def test_logs_into_a_closed_pipe_ends_quietly(lane_with_steps):
    command = [sys.executable, "-m", "autoresearch_tui.cli", "logs", "a", "--type", "step",
               "--config", str(lane_with_steps.path)]
    logs = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=logs.stdout, capture_output=True, text=True, timeout=60)
    logs.stdout.close()  # only head holds the pipe now
    stderr = logs.stderr.read().decode()
    assert logs.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert head.stdout.count("\n") == 1 and "metric" in head.stdout


def test_per_step_metrics_are_hidden_unless_asked_for(lane_with_steps):
    default = cli("logs", "a", config=lane_with_steps)
    assert default.returncode == 0, default.stderr
    lines = default.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["run_started", "metric", "run_recorded"]
    steps = cli("logs", "a", "--type", "step", "--json", config=lane_with_steps)
    kinds = [json.loads(line)["kind"] for line in steps.stdout.splitlines()]
    assert kinds == ["step"] * 30
    metrics = cli("logs", "a", "--type", "metric", "--json", config=lane_with_steps)
    assert len(metrics.stdout.splitlines()) == 31  # asked for metrics: every one of them


def test_an_unknown_event_type_is_an_error_naming_the_known_ones(lane_with_steps):
    result = cli("logs", "a", "--type", "bogus_type,run_recorded", config=lane_with_steps)
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown event type 'bogus_type'" in result.stderr
    assert "run_recorded" in result.stderr and "step" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_numbers_in_events_carry_no_float_noise(lane_with_steps):
    raw = Workspace(lane_with_steps).events_path("a").read_text()
    assert "6.765000000000001" not in raw and '"step_time_ms": 6.765' in raw
    ts = [event["ts"] for event in read_events(Workspace(lane_with_steps).events_path("a"))]
    assert ts == sorted(ts) and any(t != int(t) for t in ts)  # timestamps keep their precision


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=0, max_size=300),
       cut=st.floats(min_value=-1, max_value=800), rotate=st.integers(min_value=2000, max_value=40000),
       pad=st.integers(min_value=0, max_value=300))
def test_events_since_a_time_stream_exactly_the_newer_ones(tmp_path_factory, gaps, cut, rotate, pad):
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    log = EventLog(path, rotate_bytes=rotate)
    ts, written = 1_700_000_000.0, []
    for index, gap in enumerate(gaps):
        ts += gap
        event = make_event("a", "tool_use", n=index, pad="x" * pad)
        event["ts"] = ts
        written.append(log.append(event))
    log.close()
    since = 1_700_000_000.0 + cut
    assert [e["n"] for e in iter_events(path, since=since)] == [e["n"] for e in written if e["ts"] > since]


def test_logs_since_streams_a_big_log_in_flat_memory(tmp_path):
    config = make_workspace(tmp_path)
    path = Workspace(config).events_path("a")
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.time() - 3600
    line = {"lane": "a", "type": "tool_result", "tool_use_id": "t", "is_error": False, "output": "o" * 300}
    with open(path, "w") as handle:  # ~80 MB, written directly (EventLog would take long)
        for n in range(200_000):
            handle.write(json.dumps({"ts": start + n * 0.01, "n": n, **line}) + "\n")

    def child_peak_kib(*args: str) -> int:
        script = ("import resource, subprocess, sys\n"
                  "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        command = [sys.executable, "-c", script, sys.executable, "-m", "autoresearch_tui.cli",
                   "logs", "a", *args, "--config", str(config.path)]
        return int(subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout)

    small = child_peak_kib("--limit", "5")
    everything = child_peak_kib("--since", "1d", "--json")
    # Holding the events (the old reader) costs several hundred MB here; a stream costs nothing.
    assert everything - small < 40 * 1024, (small, everything)


def test_runs_read_as_one_line_each(tmp_path):
    from autoresearch_tui.engine.core.render import format_event

    started = format_event(make_event("a", "run_started", run_id="0004", args="--profile",
                                      description="re-measure the best"))
    finished = format_event(make_event("a", "run_finished", run_id="0004", status="ok", exit_code=0,
                                       seconds=31.15973081, summary={"step_time_median_s": 0.015293}))
    assert started.endswith("run_started    0004 [--profile] re-measure the best")
    assert finished.endswith("run_finished   0004 ok in 31.2s exit 0 step_time_ms 15.293")
