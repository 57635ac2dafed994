"""Profile summaries of a real (small) jax CPU capture, with both backends."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from autoresearch_tui.cli import main as cli
from autoresearch_tui.engine.profile.summary import CATEGORIES, ProfileError, ProfileSummary, summarize
from tests.support import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "jax_example"


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """bench.py --profile run in-process on the jitted example: returns the run folder."""
    jax = pytest.importorskip("jax")
    run_dir = tmp_path_factory.mktemp("run")
    saved_env = {k: os.environ.get(k) for k in ("AUTORESEARCH_RUN_DIR", "AUTORESEARCH_METRICS")}
    sys.path.insert(0, str(EXAMPLE))
    try:
        import bench
        import model

        model.step_fn = jax.jit(model.train_step)
        os.environ["AUTORESEARCH_RUN_DIR"] = str(run_dir)
        os.environ["AUTORESEARCH_METRICS"] = str(run_dir / "metrics.jsonl")
        assert bench.main(["--steps", "2", "--warmup", "1", "--profile", "--profile-steps", "3"]) == 0
    finally:
        sys.path.remove(str(EXAMPLE))
        for name in ("bench", "model"):
            sys.modules.pop(name, None)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    records = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    profile = [r for r in records if r["kind"] == "profile"]
    assert len(profile) == 1
    folder = run_dir / profile[0]["dir"]
    assert list(folder.glob("*.xplane.pb")) and list(folder.glob("*.trace.json.gz"))
    return folder


@pytest.fixture(scope="module")
def both(capture) -> tuple[ProfileSummary, ProfileSummary]:
    return summarize(capture, backend="xplane"), summarize(capture, backend="trace")


def test_backends_agree_on_top_op_and_split(both):
    xplane, trace = both
    assert xplane.backend == "xplane" and trace.backend == "trace"
    assert xplane.op_count > 100 and xplane.top_ops
    assert xplane.top_ops[0].name == trace.top_ops[0].name
    for key in CATEGORIES:
        assert abs(xplane.categories[key]["pct"] - trace.categories[key]["pct"]) <= 3.0, key
    assert sum(c["pct"] for c in xplane.categories.values()) == pytest.approx(100, abs=0.1)
    assert xplane.categories["matmul"]["pct"] > 10  # the dots are recognised (via the HLO dump)
    assert xplane.classified_by == "hlo text"


def test_steps_busy_and_idle(both):
    for summary in both:
        assert summary.steps == 3
        assert 0 < summary.step_time_ms < summary.window_ms
        assert 0 < summary.busy_pct <= 100
        assert summary.busy_pct + summary.idle_pct == pytest.approx(100)
        assert summary.devices == ["/host:CPU"]
        assert not any(op.name.startswith("end: ") for op in summary.top_ops)
    assert both[0].step_time_ms == pytest.approx(both[1].step_time_ms, rel=0.01)
    assert both[0].busy_pct == pytest.approx(both[1].busy_pct, abs=2)


def test_default_backend_and_path_forms(capture, both):
    by_folder = summarize(capture)
    assert by_folder.backend == "xplane"
    log_dir = capture.parent.parent.parent  # <run>/profile
    assert Path(summarize(log_dir).path).parent == capture
    assert summarize(next(capture.glob("*.trace.json.gz"))).backend == "trace"
    assert summarize(next(capture.glob("*.xplane.pb"))).backend == "xplane"
    json.dumps(by_folder.to_dict())


def test_truncated_trace_gives_warnings_not_a_crash(capture, tmp_path):
    trace = next(capture.glob("*.trace.json.gz"))
    data = trace.read_bytes()
    (tmp_path / "host.trace.json.gz").write_bytes(data[: int(len(data) * 0.6)])
    summary = summarize(tmp_path / "host.trace.json.gz")
    assert summary.warnings and any("truncated" in w for w in summary.warnings)
    assert summary.event_count > 0


def test_corrupt_xplane_falls_back_or_errors_clearly(capture, tmp_path):
    shutil.copy(next(capture.glob("*.trace.json.gz")), tmp_path / "host.trace.json.gz")
    xplane = tmp_path / "host.xplane.pb"
    xplane.write_bytes(next(capture.glob("*.xplane.pb")).read_bytes()[:500])
    summary = summarize(tmp_path)
    assert summary.backend == "trace" and any("xplane" in w for w in summary.warnings)
    with pytest.raises(ProfileError, match="cannot read xplane"):
        summarize(tmp_path, backend="xplane")


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b garbage", b"not gzip at all"])
def test_garbage_trace_is_a_clear_error(tmp_path, content):
    (tmp_path / "x.trace.json.gz").write_bytes(content)
    with pytest.raises(ProfileError):
        summarize(tmp_path / "x.trace.json.gz")


def test_missing_and_unknown(tmp_path, capture):
    with pytest.raises(ProfileError, match="no such"):
        summarize(tmp_path / "nope")
    with pytest.raises(ProfileError, match="no profile capture"):
        summarize(tmp_path)
    with pytest.raises(ProfileError, match="unknown backend"):
        summarize(capture, backend="perfetto")
    try:
        import xprof  # noqa: F401
    except ImportError:
        with pytest.raises(ProfileError, match="xprof"):
            summarize(capture, backend="xprof")


def test_cli_json_and_tables(capture, capsys):
    assert cli.main(["profile", str(capture), "--json", "--backend", "trace"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] == "trace" and data["top_ops"] and set(data["categories"]) == set(CATEGORIES)
    assert cli.main(["profile", str(capture)]) == 0
    out = capsys.readouterr().out
    assert "Top ops by self time" in out and "matmul/convolution" in out
    assert cli.main(["profile", str(capture / "missing")]) == 1
    assert "no such" in capsys.readouterr().err


def _tpu_trace(path: Path) -> Path:
    events = []
    for core in (0, 1):
        pid = 10 + core
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": f"/device:TPU:{core}"}})
        for tid, row in ((1, "Steps"), (2, "XLA Modules"), (3, "XLA Ops")):
            events.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": row}})
        for step in range(2):
            base = step * 1000.0
            events.append({"ph": "X", "pid": pid, "tid": 1, "ts": base, "dur": 900.0, "name": str(step)})
            events.append({"ph": "X", "pid": pid, "tid": 2, "ts": base, "dur": 800.0, "name": "jit_step"})
            for start, dur, name, category in ((0, 400, "fusion.1", "convolution fusion"),
                                               (400, 100, "all-reduce.2", "all-reduce"),
                                               (500, 100, "copy.3", "data formatting"),
                                               (600, 200, "loop_fusion.4", "loop fusion")):
                events.append({"ph": "X", "pid": pid, "tid": 3, "ts": base + start, "dur": dur, "name": name,
                               "args": {"hlo_category": category, "flops": "1"}})
    events.append({"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}})
    events.append({"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 2000.0, "name": "python"})
    with gzip.open(path, "wt") as handle:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events}, handle)
    return path


def test_tpu_layout_uses_hlo_category_and_steps_rows(tmp_path):
    summary = summarize(_tpu_trace(tmp_path / "t.trace.json.gz"))
    assert summary.devices == ["/device:TPU:0", "/device:TPU:1"]
    assert summary.classified_by == "hlo_category"
    assert summary.steps == 2 and summary.step_time_ms == pytest.approx(0.9)
    assert summary.categories["matmul"]["pct"] == pytest.approx(50)
    assert summary.categories["collective"]["pct"] == pytest.approx(12.5)
    assert summary.categories["copy"]["pct"] == pytest.approx(12.5)
    assert summary.categories["fusion"]["pct"] == pytest.approx(25)
    # 1600 µs of ops in the 1900 µs step window (first step start to last step end) of a
    # 2000 µs capture, on each core
    assert summary.busy_pct == pytest.approx(84.21) and summary.window_ms == pytest.approx(1.9)
    assert summary.capture_ms == pytest.approx(2.0) and summary.window_source == "steps"
    assert summary.top_ops[0].name == "fusion.1" and summary.top_ops[0].count == 4


def write_trace(folder: Path, *, step_markers: bool) -> Path:
    """A capture with 268 ms of tracing around 10 steps that span 198 ms and are 1.8% idle."""
    events = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
              {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "tf_XLAEigen/0"}},
              {"ph": "M", "pid": 1, "tid": 2, "name": "thread_name", "args": {"name": "python"}},
              {"ph": "X", "pid": 1, "tid": 2, "name": "setup", "ts": 0, "dur": 1000},
              {"ph": "X", "pid": 1, "tid": 2, "name": "teardown", "ts": 267000, "dur": 1000}]
    for step in range(10):
        start = 50_000 + step * 19_800
        if step_markers:
            events.append({"ph": "X", "pid": 1, "tid": 2, "name": f"train {step}", "ts": start, "dur": 19_800,
                           "args": {"step_num": step}})
        events.append({"ph": "X", "pid": 1, "tid": 1, "name": "fusion", "ts": start, "dur": 19_440,
                       "args": {"hlo_op": "fusion.1", "hlo_module": "jit_step", "run_id": str(step)}})
    folder.mkdir(parents=True)
    path = folder / "host.trace.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"traceEvents": events}).encode()))
    return folder


@pytest.mark.parametrize("step_markers", [True, False])
def test_idle_is_a_share_of_the_step_window_not_of_the_capture(tmp_path, step_markers):
    summary = summarize(write_trace(tmp_path / "capture", step_markers=step_markers), backend="trace")
    assert summary.capture_ms == pytest.approx(268.0)
    if step_markers:
        assert summary.window_source == "steps" and summary.window_ms == pytest.approx(198.0)
        assert summary.idle_pct == pytest.approx(1.82, abs=0.01)
    else:  # no markers: the main program's executions bound the window
        assert summary.window_source == "program" and summary.window_ms == pytest.approx(197.64)
        assert summary.idle_pct == pytest.approx(1.64, abs=0.01)
    assert summary.steps == 10


def test_profile_into_a_pipe_prints_the_whole_capture_path(tmp_path):
    import subprocess

    deep = tmp_path / ("plugins-profile-" + "x" * 60) / "2026_11_26_06_00_00_with_a_long_run_name"
    write_trace(deep, step_markers=True)
    result = subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", "profile", str(deep)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(deep / "host.trace.json.gz") in result.stdout
    assert "…" not in result.stdout
