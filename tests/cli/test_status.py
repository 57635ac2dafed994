"""`autoresearch-tui status`: what a user reads about a workspace with no engine running."""

from __future__ import annotations

import json
import subprocess
import sys

from autoresearch_tui.cli.main import main as cli_main
from autoresearch_tui.engine import protocol
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace

HEADER = "run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\n"


def write_run(runs, run_id: str, step_s: float) -> None:
    (runs / run_id).mkdir(parents=True)
    (runs / run_id / "metrics.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "summary", "step_time_median_s": step_s, "n": 30}) + "\n")


def test_status_json_has_one_best_per_lane_the_ledgers(tmp_path, capsys):
    """An inconclusive re-measure that happened to read lower is not the best (issue 14.4):
    the lane has one best, its ledger's, whatever the run folders' summaries say."""
    config = make_workspace(tmp_path)
    lane_dir = tmp_path / "wiki" / "experiment" / "exp" / "a"
    runs = lane_dir / "runs"
    write_run(runs, "0001", 0.010)
    write_run(runs, "0002", 0.0073)
    write_run(runs, "0003", 0.0061)  # a lucky draw of the same commit, recorded inconclusive
    lane_dir.joinpath("results.tsv").write_text(
        HEADER + "0001\tt\taaaa111\t10\tkeep\tbaseline\n"
        "0002\tt\tbbbb222\t7.3\tkeep\tjit\n0003\tt\tbbbb222\t6.1\tinconclusive\tre-measure\n")
    assert cli_main(["status", "--json", "--config", str(config.path)]) == 0
    lane = json.loads(capsys.readouterr().out)["lanes"]["a"]
    assert lane["frontier"]["best"] == 7.3 and lane["frontier"]["best_run"] == "0002"
    bests = [key for key, value in lane["metrics"].items() if "best" in key and value is not None]
    assert bests == []
    assert cli_main(["status", "--config", str(config.path)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("a "))
    assert " 7.3 " in line and "6.1" not in line


def cli(*args: str, config) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=120)


def test_status_json_carries_no_float_noise(tmp_path):
    config = make_workspace(tmp_path)
    run = Workspace(config).runs_dir("a") / "0001"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "step", "step": 3, "step_time_s": 0.006765}) + "\n")
    result = cli("status", "--json", config=config)
    assert result.returncode == 0, result.stderr
    assert "6.765000000000001" not in result.stdout  # 0.006765 s * 1e3
    assert json.loads(result.stdout)["lanes"]["a"]["metrics"]["live_step_time_ms"] == 6.765


def test_socket_messages_carry_no_float_noise():
    line = protocol.encode({"id": 1, "ok": True, "value": 0.006765 * 1e3, "started_at": 1764580000.123456})
    assert json.loads(line) == {"id": 1, "ok": True, "value": 6.765, "started_at": 1764580000.123456}
