"""`autoresearch-tui init`: a workspace whose config loads and whose repo is a git repo."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from autoresearch_tui.engine.config import load_config
from autoresearch_tui.cli.experiment import register_cli
from autoresearch_tui.engine.setup.init_workspace import InitError, create_workspace, ensure_example_repo
from tests.support import REPO_ROOT

ROOT = REPO_ROOT


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_creates_config_and_example_repo(tmp_path):
    config_path = create_workspace(tmp_path / "ws")
    config = load_config(config_path)
    assert [lane.name for lane in config.lanes] == ["a", "b"]
    repo = config.repo_path
    assert repo == (tmp_path / "ws" / "raw" / "code" / "jax-example").resolve()
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""
    files = git(repo, "ls-files").split()
    assert {"bench.py", "model.py", "README.md"} <= set(files)
    assert not any("__pycache__" in f for f in files)


def test_refuses_to_overwrite_without_force(tmp_path):
    create_workspace(tmp_path, lanes=("x",))
    with pytest.raises(InitError, match="already exists.*--force"):
        create_workspace(tmp_path)
    config = load_config(create_workspace(tmp_path, lanes=("y", "z"), force=True))
    assert [lane.name for lane in config.lanes] == ["y", "z"]


def test_existing_repo(tmp_path):
    repo = tmp_path / "mine"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    config = load_config(create_workspace(tmp_path / "ws", repo=repo))
    assert config.repo_path == repo.resolve()
    assert not (tmp_path / "ws" / "raw").exists()
    with pytest.raises(InitError, match="not a git repository"):
        create_workspace(tmp_path / "ws2", repo=tmp_path)
    with pytest.raises(InitError, match="no such folder"):
        create_workspace(tmp_path / "ws3", repo=tmp_path / "missing")


def test_repository_default_config_loads_and_its_repo_can_be_created(tmp_path):
    config = load_config(ROOT / "autoresearch.toml", check_repo=False)
    assert config.experiment.repo == "raw/code/jax-example"
    assert [lane.name for lane in config.lanes] == ["a", "b"]
    copy = tmp_path / "autoresearch.toml"
    copy.write_text((ROOT / "autoresearch.toml").read_text())
    assert ensure_example_repo(copy) is True
    assert load_config(copy).repo_path.is_dir()
    assert ensure_example_repo(copy) is False
    with pytest.raises(InitError, match="already exists"):
        create_workspace(tmp_path)  # config and repo both there: nothing to do without --force
    # `init` in a fresh checkout keeps the config and creates only the example repo
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "autoresearch.toml").write_text(copy.read_text())
    assert create_workspace(fresh) == (fresh / "autoresearch.toml").resolve()
    assert (fresh / "autoresearch.toml").read_text() == copy.read_text()
    assert load_config(fresh / "autoresearch.toml").repo_path.is_dir()


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["init", str(tmp_path / "ws"), "--lanes", "p,q"])
    assert args.func(args) == 0
    assert "created" in capsys.readouterr().out
    assert args.func(args) == 1
    assert "--force" in capsys.readouterr().err
    assert [lane.name for lane in load_config(tmp_path / "ws" / "autoresearch.toml").lanes] == ["p", "q"]


def test_new_and_demo_workspaces_use_one_benchmark_slot(tmp_path):
    """One slot by default: the demo's two lanes never measure each other."""
    from autoresearch_tui.engine.demo.workspace import create_demo_workspace
    from autoresearch_tui.engine.devices.host import device_layout

    for config_path in (create_workspace(tmp_path / "ws"), create_demo_workspace(tmp_path / "demo")):
        config = load_config(config_path)
        assert config.devices.slots == 1 and config.devices.agent_shell_device is False
        assert len(device_layout(config).slots) == 1
def test_an_existing_repo_gives_its_branch_and_its_name(tmp_path):
    repo = tmp_path / "micrograd"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    (repo / "engine.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    config = load_config(create_workspace(tmp_path / "ws", repo=repo))
    assert config.experiment.target_branch == "master"
    assert config.experiment.name == "micrograd"
    git(repo, "checkout", "-q", "-b", "dev")
    assert load_config(create_workspace(tmp_path / "ws2", repo=repo)).experiment.target_branch == "dev"
