"""Merging a lane's best keep back into the main repo, on real git repositories."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import autoresearch_tui.engine.repo.merge as merge_mod
from autoresearch_tui.cli.main import main as cli_main
from autoresearch_tui.engine.config import parse_config
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.repo.forks import ensure_fork, git, git_out
from autoresearch_tui.engine.runs.record import record_run
from autoresearch_tui.engine.repo.merge import merge_lane
from autoresearch_tui.engine.workspace import Workspace
from tests.support import record_measured


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git_out(repo, "rev-parse", "HEAD")


MODEL = "".join(f"line {n}\n" for n in range(20))


def make_workspace(tmp_path: Path) -> Workspace:
    repo = tmp_path / "raw" / "code" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    git(repo, "config", "user.name", "Main User")
    git(repo, "config", "user.email", "main@example.com")
    commit_file(repo, "model.py", MODEL, "history 0")
    commit_file(repo, "train.py", "steps = 10\n", "history 1")
    commit_file(repo, "README", "readme\n", "history 2")
    toml = ('[experiment]\nname = "exp"\nrepo = "raw/code/proj"\nmetric = "step_time_ms"\n'
            '[[lanes]]\nname = "a"\n')
    (tmp_path / "autoresearch.toml").write_text(toml)
    return Workspace(parse_config(toml, tmp_path / "autoresearch.toml"))


def lane_with_best(ws: Workspace, model_text: str = MODEL.replace("line 3\n", "line 3 fast\n")) -> str:
    """Baseline 100 ms, a discard, then a keep at 80 ms changing model.py; returns its commit."""
    fork = ensure_fork(ws, "a")
    record_measured(ws, "a", "keep", "baseline", 100.0)
    commit_file(fork, "model.py", MODEL.replace("line 9\n", "line 9 slow\n"), "slow idea")
    record_measured(ws, "a", "discard", "slow idea", 120.0)
    git(fork, "reset", "--hard", "--quiet", "HEAD~1")
    best = commit_file(fork, "model.py", model_text, "fast idea")
    record_measured(ws, "a", "keep", "fast idea", 80.0)
    return best


def snapshot(repo: Path, skip_branch: str = "autoresearch/") -> dict:
    """Refs (minus the lane branch), HEAD, index and every file's bytes in the working tree."""
    refs = [line for line in git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith(f"refs/heads/{skip_branch}")]
    files = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    gitdir = repo / ".git"
    index = hashlib.sha256((gitdir / "index").read_bytes()).hexdigest()
    markers = sorted(p.name for p in gitdir.iterdir() if p.name.endswith("_HEAD"))
    return {"refs": refs, "HEAD": (gitdir / "HEAD").read_text(),
            "head_commit": git_out(repo, "rev-parse", "HEAD"), "files": files, "index": index,
            "markers": markers, "status": git_out(repo, "status", "--porcelain")}


def test_clean_merge_with_expected_message(tmp_path):
    ws = make_workspace(tmp_path)
    best = lane_with_best(ws)
    main = ws.main_repo
    commit_file(main, "train.py", "steps = 20\n", "user work meanwhile")  # unrelated change
    before = git_out(main, "rev-parse", "main")
    result = merge_lane(ws, "a")
    assert result.ok, result.message
    assert result.merged_commit == git_out(main, "rev-parse", "main")
    assert git_out(main, "rev-parse", f"{result.merged_commit}^1") == before
    assert git_out(main, "rev-parse", f"{result.merged_commit}^2") == best
    assert git_out(main, "rev-parse", "refs/heads/autoresearch/exp/a") == best
    subject = git_out(main, "log", "-1", "--format=%s", "main")
    assert subject == "autoresearch: merge lane a (step_time_ms 100 → 80, -20.0%)"
    body = git_out(main, "log", "-1", "--format=%b", "main")
    assert "Lane: a" in body and "run 0003" in body and "Runs: 3 (keep 2, discard 1)" in body
    # main was checked out: the working tree follows, clean
    assert "line 3 fast" in (main / "model.py").read_text()
    assert (main / "train.py").read_text() == "steps = 20\n"
    assert git_out(main, "status", "--porcelain") == ""
    assert result.change_pct == pytest.approx(-20.0) and result.conflicts == []
    fields = result.event_fields()
    assert fields["ok"] and fields["baseline"] == 100.0 and fields["best"] == 80.0
    # a second merge is a no-op
    again = merge_lane(ws, "a")
    assert again.ok and again.already_merged and git_out(main, "rev-parse", "main") == result.merged_commit


def test_conflicting_merge_leaves_main_byte_identical(tmp_path):
    ws = make_workspace(tmp_path)
    best = lane_with_best(ws)
    main = ws.main_repo
    commit_file(main, "model.py", MODEL.replace("line 3\n", "line 3 user\n"), "user edits the same line")
    (main / "notes.txt").write_text("untracked user file\n")
    before = snapshot(main)
    result = merge_lane(ws, "a")
    assert not result.ok
    assert result.conflicts == ["model.py"]
    assert "model.py" in result.message and "conflict" in result.message
    assert snapshot(main) == before
    assert git_out(main, "rev-parse", "refs/heads/autoresearch/exp/a") == best  # lane branch stays


def test_dirty_main_refused_without_changes(tmp_path):
    ws = make_workspace(tmp_path)
    lane_with_best(ws)
    main = ws.main_repo
    (main / "train.py").write_text("steps = 999  # uncommitted\n")
    before = snapshot(main, skip_branch="nothing-skipped/")
    result = merge_lane(ws, "a")
    assert not result.ok and "uncommitted changes" in result.message and "train.py" in result.message
    assert snapshot(main, skip_branch="nothing-skipped/") == before  # not even the lane branch


def test_target_not_checked_out_merges_without_touching_checkout(tmp_path):
    ws = make_workspace(tmp_path)
    best = lane_with_best(ws)
    main = ws.main_repo
    git(main, "checkout", "--quiet", "-b", "user-feature")
    commit_file(main, "feature.py", "f = 1\n", "user feature")
    (main / "README").write_text("user is editing this\n")  # dirty, but not on target_branch
    before = snapshot(main)
    old_main = git_out(main, "rev-parse", "main")
    result = merge_lane(ws, "a")
    assert result.ok, result.message
    after = snapshot(main)
    assert after["HEAD"] == before["HEAD"] and after["files"] == before["files"]
    assert after["index"] == before["index"] and after["status"] == before["status"]
    new_main = git_out(main, "rev-parse", "main")
    assert new_main == result.merged_commit and new_main != old_main
    assert git_out(main, "rev-parse", "main^2") == best
    assert "line 3 fast" in git_out(main, "show", "main:model.py")
    assert git_out(main, "worktree", "list").count("\n") == 0  # no temp worktree left


def test_fallback_temp_worktree(tmp_path, monkeypatch):
    monkeypatch.setattr(merge_mod, "_merge_tree_available", lambda main: False)
    ws = make_workspace(tmp_path)
    best = lane_with_best(ws)
    main = ws.main_repo
    git(main, "checkout", "--quiet", "-b", "other")
    before = snapshot(main)
    result = merge_lane(ws, "a")
    assert result.ok, result.message
    assert git_out(main, "rev-parse", "main^2") == best
    assert snapshot(main)["files"] == before["files"]
    assert git_out(main, "worktree", "list").count("\n") == 0
    # and a conflict through the fallback leaves everything as it was
    ws2 = make_workspace(tmp_path / "second")
    lane_with_best(ws2)
    main2 = ws2.main_repo
    git(main2, "checkout", "--quiet", "-b", "other")
    git(main2, "checkout", "--quiet", "main")
    commit_file(main2, "model.py", MODEL.replace("line 3\n", "line 3 user\n"), "user")
    git(main2, "checkout", "--quiet", "other")
    before = snapshot(main2)
    result = merge_lane(ws2, "a")
    assert not result.ok and result.conflicts == ["model.py"]
    assert snapshot(main2) == before
    assert git_out(main2, "worktree", "list").count("\n") == 0


def test_nothing_to_merge_refused(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    record_measured(ws, "a", "keep", "baseline", 100.0)
    commit_file(fork, "model.py", "worse\n", "worse")
    record_measured(ws, "a", "keep", "kept but worse", 101.0)
    result = merge_lane(ws, "a")
    assert not result.ok and "nothing to merge" in result.message
    assert "autoresearch/exp/a" not in git_out(ws.main_repo, "branch", "--list")


def test_merge_after_gc_in_fork_uses_run_ref(tmp_path):
    ws = make_workspace(tmp_path)
    best = lane_with_best(ws)
    fork = ws.fork_dir("a")
    git(fork, "reset", "--hard", "--quiet", "HEAD~1")  # the lane moved on / reset
    git(fork, "reflog", "expire", "--expire=now", "--all")
    git(fork, "gc", "--quiet", "--prune=now")
    result = merge_lane(ws, "a")
    assert result.ok and git_out(ws.main_repo, "rev-parse", "main^2") == best


def test_cli_merge(tmp_path, capsys):
    ws = make_workspace(tmp_path)
    lane_with_best(ws)
    config = str(tmp_path / "autoresearch.toml")
    assert cli_main(["merge", "a", "--config", config]) == 0
    assert "merged lane a" in capsys.readouterr().out
    events = [e for e in read_events(ws.events_path("a")) if e["type"] == "merge"]
    assert events and events[0]["ok"] and events[0]["lane"] == "a"
    assert cli_main(["merge", "nosuch", "--config", config]) == 1
    (ws.main_repo / "README").write_text("dirty\n")
    assert cli_main(["--config", config, "merge", "a"]) == 1
    assert "uncommitted changes" in capsys.readouterr().err
