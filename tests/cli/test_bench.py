"""`bench [LANE]` and init's dry check, through the real command line on real git repos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_tui.engine.config import load_config, ray_installed
from autoresearch_tui.engine.repo.forks import ensure_fork
from autoresearch_tui.engine.workspace import Workspace
from tests.support import git, make_repo, make_workspace

SCORE_BENCH = """\
import json, os
value = float(open("value.txt").read())
print("measured", value, "flag", os.environ.get("MY_FLAG"), "lane", os.environ.get("AUTORESEARCH_LANE"))
with open(os.environ["AUTORESEARCH_METRICS"], "a") as out:
    out.write(json.dumps({"v": 1, "kind": "step", "step": 0, "step_time_s": 0.01}) + "\\n")
    out.write(json.dumps({"v": 1, "kind": "summary", "score": value}) + "\\n")
"""


def cli(*args: str, config=None, cwd=None) -> subprocess.CompletedProcess:
    extra = ["--config", str(config.path)] if config is not None else []
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", *args, *extra],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def score_workspace(tmp_path: Path, bench: str = SCORE_BENCH):
    return make_workspace(tmp_path, repo_files={"bench.py": bench, "value.txt": "41\n"},
                          experiment='metric = "score"\ndirection = "maximize"')


def worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


def test_bench_runs_once_in_a_fresh_checkout_and_shows_the_metric(tmp_path):
    config = score_workspace(tmp_path)
    main = Workspace(config).main_repo
    (main / "value.txt").write_text("7\n")  # an uncommitted edit: not what bench measures
    result = cli("bench", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "measured 41.0 flag None lane None" in result.stdout  # the benchmark's own output, live
    assert "metrics records read: 1 step, 1 summary" in result.stdout
    assert "score = 41 (higher is better)" in result.stdout
    assert "ready: the engine can measure runs" in result.stdout
    assert (main / "value.txt").read_text() == "7\n" and len(worktrees(main)) == 1
    runs = Workspace(config).bench_runs_dir
    assert (runs / "0001" / "metrics.jsonl").exists() and (runs / "0001" / "run.json").exists()
    assert not Workspace(config).runs_dir("a").exists()  # no lane's ledger or metrics see it


def test_bench_of_a_lane_measures_its_fork_with_its_environment(tmp_path):
    config = score_workspace(tmp_path)
    text = config.path.read_text().replace('[[lanes]]\nname = "a"\n', '[[lanes]]\nname = "a"\nenv = { MY_FLAG = "on" }\n')
    config.path.write_text(text)
    config = load_config(config.path)
    fork = ensure_fork(Workspace(config), "a")
    (fork / "value.txt").write_text("55\n")
    git(fork, "commit", "-qam", "lane idea")
    (fork / "value.txt").write_text("99\n")  # the agent's work in progress stays as it is
    result = cli("bench", "a", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "measured 55.0 flag on lane a" in result.stdout
    assert "lane a's fork at" in result.stdout and "score = 55" in result.stdout
    assert (fork / "value.txt").read_text() == "99\n" and len(worktrees(fork)) == 1


def test_bench_says_what_is_missing(tmp_path):
    no_metric = SCORE_BENCH.replace('"score": value', '"loss": value')
    config = score_workspace(tmp_path, bench=no_metric)
    result = cli("bench", config=config)
    assert result.returncode == 1
    assert 'missing: no summary record with `score`: add "score": <value>' in result.stdout
    silent = score_workspace(tmp_path / "silent", bench="print('hello')\n")
    result = cli("bench", config=silent)
    assert result.returncode == 1
    assert "missing: the run wrote no metrics: append one JSON object per line" in result.stdout
    assert "never mentions AUTORESEARCH_METRICS" in result.stderr  # the dry check said so first


def test_bench_refuses_a_missing_benchmark_or_branch_with_the_fix(tmp_path):
    config = make_workspace(tmp_path, repo_files={"model.py": "x = 1\n"},
                            experiment='target_branch = "master"')
    result = cli("bench", config=config)
    assert result.returncode == 1
    assert "experiment.target_branch 'master' is not a branch" in result.stderr
    assert 'fix: set target_branch = "main"' in result.stderr
    assert "bench_command runs bench.py, which is not in" in result.stderr
    assert "$ python bench.py" not in result.stdout  # nothing was run


def test_init_checks_the_new_config_and_says_what_to_fix(tmp_path):
    repo = make_repo(tmp_path / "micrograd", {"micrograd/engine.py": "x = 1\n"})
    git(repo, "branch", "-m", "master")
    result = cli("init", str(tmp_path / "ws"), "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    assert "bench_command runs bench.py, which is not in" in result.stdout
    assert "examples/jax_example/bench.py" in result.stdout
    assert "autoresearch-tui bench" in result.stdout  # how to try it once fixed
    (repo / "bench.py").write_text(SCORE_BENCH.replace("value.txt", "micrograd/engine.py"))
    clean = cli("init", str(tmp_path / "ws2"), "--repo", str(repo))
    assert "which is not committed in" in clean.stdout and "git add bench.py" in clean.stdout


def test_init_names_gits_ownership_refusal_and_its_fix(tmp_path):
    import os

    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to give the repo to another user")
    repo = make_repo(tmp_path / "unpacked")
    for root, dirs, files in os.walk(repo):  # as an unpacked tarball: another user's files
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), 12345, 12345)
    os.lchown(repo, 12345, 12345)
    result = cli("init", str(tmp_path / "ws"), "--repo", str(repo))
    assert "dubious ownership" in result.stdout
    assert f"git config --global --add safe.directory {repo}" in result.stdout


@pytest.mark.skipif(not ray_installed(), reason="Ray is not installed (pip install 'autoresearch-tui[ray]')")
def test_bench_under_a_ray_runner_says_it_measures_on_this_host(tmp_path):
    # No cluster is needed: bench never connects to one (a live engine's runs stay untouched).
    config = make_workspace(tmp_path, repo_files={"bench.py": SCORE_BENCH, "value.txt": "41\n"},
                            experiment='metric = "score"\ndirection = "maximize"',
                            runner='kind = "ray"\naddress = "127.0.0.1:1"\nresources = { TPU = 1 }')
    result = cli("bench", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'kind = "ray": bench runs on this host, not on the cluster' in result.stdout
    assert "score = 41 (higher is better)" in result.stdout
