"""Lane forks on real git repositories."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from autoresearch_tui.engine.config import parse_config
from autoresearch_tui.engine.repo.forks import (
    ForkError, archive_runs, ensure_fork, git, git_out, prepare_fork, remove_fork, run_refs,
)
from autoresearch_tui.engine.runs.record import record_run
from autoresearch_tui.engine.workspace import Workspace


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git_out(repo, "rev-parse", "HEAD")


def make_workspace(tmp_path: Path, lanes=("a",), fork_include=(), extra_experiment="",
                   identity=True) -> Workspace:
    repo = tmp_path / "raw" / "code" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    if identity:
        git(repo, "config", "user.name", "Main User")
        git(repo, "config", "user.email", "main@example.com")
    env_id = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
              "GIT_COMMITTER_EMAIL": "t@t"}
    for i in range(3):
        (repo / "model.py").write_text(f"LAYERS = {i}\n" + "".join(f"line {n}\n" for n in range(20)))
        (repo / f"mod{i}.py").write_text(f"x = {i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", f"history {i}", env=env_id)
    include = ", ".join(f'"{g}"' for g in fork_include)
    lane_tables = "".join(f'[[lanes]]\nname = "{name}"\n' for name in lanes)
    toml = (f'[experiment]\nname = "exp"\nrepo = "raw/code/proj"\nmetric = "step_time_ms"\n'
            f'fork_include = [{include}]\n{extra_experiment}\n[loop]\nplateau_runs = 3\n'
            f'{lane_tables}')
    config = parse_config(toml, tmp_path / "autoresearch.toml")
    return Workspace(config)


def test_fork_is_independent_clone_on_lane_branch(tmp_path):
    ws = make_workspace(tmp_path)
    info = prepare_fork(ws, "a")
    fork = info.path
    assert info.created and fork == ws.fork_dir("a")
    assert git_out(fork, "symbolic-ref", "--short", "HEAD") == "autoresearch/exp/a"
    assert git_out(fork, "rev-parse", "HEAD") == git_out(ws.main_repo, "rev-parse", "main")
    assert git_out(fork, "log", "--format=%s", "-1") == "history 2"
    assert git_out(fork, "config", "user.email") == "main@example.com"
    # objects are hard links into the main repo, not copies
    pack_or_loose = [p for p in (fork / ".git" / "objects").rglob("*") if p.is_file()
                     and "info" not in p.parts]
    assert pack_or_loose and all(p.stat().st_nlink >= 2 for p in pack_or_loose)
    # own refs: a branch made in the fork is not in the main repo
    git(fork, "branch", "lane-only")
    assert "lane-only" not in git_out(ws.main_repo, "branch", "--list")
    # a lane cannot push into the main repo by accident
    assert git(fork, "push", "origin", "HEAD:main", check=False).returncode != 0
    assert not list(fork.parent.glob(".*cloning*"))


def test_fork_identity_fallback_when_main_has_none(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    ws = make_workspace(tmp_path, identity=False)
    fork = ensure_fork(ws, "a")
    assert git_out(fork, "config", "user.name") == "autoresearch lane a"
    commit_file(fork, "x.txt", "x", "lane commit")


def test_fork_reuse_keeps_lane_commits(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    lane_commit = commit_file(fork, "model.py", "LAYERS = 99\n", "lane work")
    (fork / "scratch.txt").write_text("uncommitted notes")
    # main moves on meanwhile; a restart must not reset the lane
    commit_file(ws.main_repo, "other.py", "y = 1\n", "main moves")
    info = prepare_fork(ws, "a")
    assert not info.created
    assert git_out(fork, "rev-parse", "HEAD") == lane_commit
    assert (fork / "scratch.txt").read_text() == "uncommitted notes"


def test_existing_non_repo_folder_is_never_wiped(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ws.fork_dir("a")
    fork.mkdir(parents=True)
    (fork / "precious.txt").write_text("keep me")
    with pytest.raises(ForkError, match="not a git repository"):
        ensure_fork(ws, "a")
    assert (fork / "precious.txt").read_text() == "keep me"


def test_two_lanes_commit_at_the_same_time(tmp_path):
    ws = make_workspace(tmp_path, lanes=("a", "b"))
    forks: dict[str, Path] = {}
    errors: list[BaseException] = []

    def create(lane):
        try:
            forks[lane] = ensure_fork(ws, lane)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(lane,)) for lane in ("a", "b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors

    barrier = threading.Barrier(2)
    heads: dict[str, list[str]] = {"a": [], "b": []}

    def work(lane):
        try:
            barrier.wait()
            for i in range(5):
                heads[lane].append(commit_file(forks[lane], "model.py", f"{lane} {i}\n", f"{lane} {i}"))
                record_run(ws, lane, "keep" if i % 2 == 0 else "discard", f"{lane} try {i}",
                           metric=100.0 - i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lane,)) for lane in ("a", "b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for lane in ("a", "b"):
        log = git_out(forks[lane], "log", "--format=%s", "-5").splitlines()
        assert log == [f"{lane} {i}" for i in reversed(range(5))]
        assert sorted(run_refs(forks[lane]).values()) == sorted(heads[lane])
        assert git_out(forks[lane], "symbolic-ref", "--short", "HEAD") == f"autoresearch/exp/{lane}"
    assert "autoresearch/exp/a" not in git_out(forks["b"], "branch", "--list")


def test_concurrent_ensure_fork_same_lane(tmp_path):
    ws = make_workspace(tmp_path)
    results, errors = [], []

    def create():
        try:
            results.append(prepare_fork(ws, "a"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert sum(r.created for r in results) == 1
    assert not list(ws.fork_dir("a").parent.glob(".*cloning*"))


def test_fork_include_links_big_file_without_copying(tmp_path):
    ws = make_workspace(tmp_path, fork_include=["data/*.bin", "ckpt", ".env", "missing/*"])
    main = ws.main_repo
    (main / "data").mkdir()
    big = main / "data" / "train.bin"
    with open(big, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    (main / "ckpt").mkdir()
    (main / "ckpt" / "step1.npz").write_bytes(b"weights")
    (main / ".env").write_text("TOKEN=x\n")
    warnings: list[str] = []
    fork = ensure_fork(ws, "a", warnings)
    linked = fork / "data" / "train.bin"
    assert os.path.samefile(linked, big)
    assert not linked.is_symlink() and linked.stat().st_ino == big.stat().st_ino
    assert (fork / "ckpt").is_symlink() and (fork / "ckpt" / "step1.npz").read_bytes() == b"weights"
    assert os.path.samefile(fork / ".env", main / ".env")
    assert any("in place" in w for w in warnings)
    assert any("'missing/*' matched no" in w for w in warnings)
    # linked data is excluded: `git add -A` in a lane never commits it
    git(fork, "add", "-A")
    assert git_out(fork, "status", "--porcelain") == ""
    # reuse: links are not redone or duplicated
    assert prepare_fork(ws, "a").linked == []


def test_discarded_run_commit_survives_reset_and_gc(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    bad = commit_file(fork, "model.py", "LAYERS = -1\n", "bad idea")
    answer = record_run(ws, "a", "discard", "bad idea", metric=130.0)
    git(fork, "reset", "--hard", "--quiet", "HEAD~1")
    git(fork, "reflog", "expire", "--expire=now", "--all")
    git(fork, "gc", "--quiet", "--prune=now")
    ref = f"refs/autoresearch/runs/{answer['run_id']}"
    assert git_out(fork, "rev-parse", ref) == bad
    assert git_out(fork, "show", f"{ref}:model.py") == "LAYERS = -1"


def test_fork_survives_gc_in_main(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    git(ws.main_repo, "commit", "--quiet", "--allow-empty", "-m", "x")
    git(ws.main_repo, "reset", "--quiet", "--hard", "HEAD~3")
    git(ws.main_repo, "reflog", "expire", "--expire=now", "--all")
    git(ws.main_repo, "gc", "--quiet", "--prune=now")
    git(fork, "fsck", "--no-progress")
    assert git_out(fork, "log", "--format=%s", "-1") == "history 2"


def test_remove_fork_refuses_unreachable_runs_then_archives(tmp_path):
    ws = make_workspace(tmp_path)
    fork = ensure_fork(ws, "a")
    commit_file(fork, "model.py", "LAYERS = 7\n", "try 7")
    run = record_run(ws, "a", "discard", "try 7", metric=120.0)["run_id"]
    with pytest.raises(ForkError, match=f"{run} \\("):
        remove_fork(ws, "a")
    assert fork.exists()
    assert archive_runs(ws, "a") == 1
    assert git_out(ws.main_repo, "rev-parse", f"refs/autoresearch/exp/a/runs/{run}")
    assert remove_fork(ws, "a") == fork
    assert not fork.exists()
    assert ws.main_repo.is_dir() and git_out(ws.main_repo, "log", "--format=%s", "-1") == "history 2"


def test_remove_fork_never_follows_links(tmp_path):
    ws = make_workspace(tmp_path, fork_include=["data"])
    (ws.main_repo / "data").mkdir()
    (ws.main_repo / "data" / "x.bin").write_bytes(b"123")
    ensure_fork(ws, "a")
    remove_fork(ws, "a", force=True)
    assert (ws.main_repo / "data" / "x.bin").read_bytes() == b"123"
