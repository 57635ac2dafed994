"""REPORT.md and progress.png from real ledgers and merge events."""

from __future__ import annotations

from pathlib import Path

from autoresearch_tui.cli.main import main as cli_main
from autoresearch_tui.engine.config import parse_config
from autoresearch_tui.engine.core.events import EventLog, make_event
from autoresearch_tui.engine.repo.forks import ensure_fork, git, git_out
from tests.support import record_measured
from autoresearch_tui.engine.repo.merge import merge_lane
from autoresearch_tui.engine.runs.report import write_report
from autoresearch_tui.engine.workspace import Workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git_out(repo, "rev-parse", "HEAD")


def make_workspace(tmp_path: Path) -> Workspace:
    repo = tmp_path / "raw" / "code" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    git(repo, "config", "user.name", "Main User")
    git(repo, "config", "user.email", "main@example.com")
    for i in range(3):
        commit_file(repo, f"f{i}.py", f"x = {i}\n", f"history {i}")
    toml = ('[experiment]\nname = "exp"\nrepo = "raw/code/proj"\nmetric = "step_time_ms"\n'
            '[[lanes]]\nname = "a"\n[[lanes]]\nname = "b"\n[[lanes]]\nname = "empty"\n')
    (tmp_path / "autoresearch.toml").write_text(toml)
    return Workspace(parse_config(toml, tmp_path / "autoresearch.toml"))


def test_report_written_with_valid_png(tmp_path):
    ws = make_workspace(tmp_path)
    plan = {"a": [("keep", 100.0), ("discard", 104.0), ("keep", 90.0), ("crash", None),
                  ("inconclusive", 91.0), ("keep", 85.0)],
            "b": [("keep", 101.0), ("discard", 99.0), ("discard", 103.0)]}
    for lane, runs in plan.items():
        fork = ensure_fork(ws, lane)
        for i, (status, metric) in enumerate(runs):
            commit_file(fork, f"{lane}.py", f"v = {i}\n", f"{lane} {i}")
            record_measured(ws, lane, status, f"{lane} idea {i}", metric)
    result = merge_lane(ws, "a")
    assert result.ok
    log = EventLog(ws.events_path("a"))
    log.append(make_event("a", "merge", **result.event_fields()))
    log.close()

    report = write_report(ws)
    assert report == ws.experiment_dir / "REPORT.md"
    text = report.read_text()
    assert "| a | 6 | 3 | 1 | 1 | 1 | 100 | 85 | -15.0% |" in text
    assert "| b | 3 | 1 | 2 | 0 | 0 | 101 | 101 | +0.0% |" in text
    assert "| empty | 0 |" in text and "No runs recorded." in text
    assert f"merged run 0006 as `{result.merged_commit[:12]}`" in text
    assert "![progress](progress.png)" in text
    png = (ws.experiment_dir / "progress.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    import matplotlib.image as mpimg

    image = mpimg.imread(ws.experiment_dir / "progress.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert not list(ws.experiment_dir.glob(".*"))  # no temp files left


def test_report_cli_on_empty_experiment(tmp_path, capsys):
    ws = make_workspace(tmp_path)
    assert cli_main(["report", "--config", str(tmp_path / "autoresearch.toml")]) == 0
    out = capsys.readouterr().out
    assert str(ws.experiment_dir / "REPORT.md") in out
    assert (ws.experiment_dir / "progress.png").read_bytes().startswith(PNG_MAGIC)


def test_progress_plot_uses_a_log_axis_for_a_wide_span_and_marks_merges_and_bests(tmp_path):
    from autoresearch_tui.engine.runs.report import build_figure, lane_report_data

    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    for i, (status, metric) in enumerate([("keep", 92.0), ("keep", 9.1), ("discard", 9.4),
                                          ("keep", 6.2), ("inconclusive", 6.4)]):
        commit_file(fork, "a.py", f"v = {i}\n", f"a {i}")
        record_measured(ws, "a", status, f"idea {i}", metric)
    result = merge_lane(ws, "a")
    assert result.ok
    log = EventLog(ws.events_path("a"))
    log.append(make_event("a", "merge", **result.event_fields()))
    log.close()
    fig = build_figure(ws, [lane_report_data(ws, "a")])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "a: merged" in labels and "a: best" in labels
    merged = next(c for c in ax.collections if c.get_label() == "a: merged")
    assert merged.get_offsets().tolist() == [[4.0, 6.2]]  # the merged run, at its value
    bests = next(c for c in ax.collections if c.get_label() == "a: best")
    assert [y for _, y in bests.get_offsets().tolist()] == [9.1, 6.2]  # new bests that were kept
    assert any(line.get_linestyle() == ":" and list(line.get_xdata()) == [4, 4] for line in ax.get_lines())


def test_progress_plot_stays_linear_for_a_narrow_span(tmp_path):
    from autoresearch_tui.engine.runs.report import build_figure, lane_report_data

    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    for i, metric in enumerate([10.0, 9.0, 8.5]):
        commit_file(fork, "a.py", f"v = {i}\n", f"a {i}")
        record_measured(ws, "a", "keep", f"idea {i}", metric)
    assert build_figure(ws, [lane_report_data(ws, "a")]).axes[0].get_yscale() == "linear"
