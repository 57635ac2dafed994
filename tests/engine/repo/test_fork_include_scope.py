"""fork_include never links the engine's own folders: with the workspace itself as the repo
(repo = ".") and a recursive glob, forks would otherwise link each other's files and grow
exponentially across restarts. Real git, real files."""

from __future__ import annotations

import os

from autoresearch_tui.engine.config import parse_config
from autoresearch_tui.engine.repo.forks import prepare_fork
from autoresearch_tui.engine.workspace import Workspace
from tests.support import git


def files_under(folder) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def test_a_recursive_include_with_the_workspace_as_repo_stays_the_same_size_across_restarts(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "bench.py").write_text("print('x')\n")
    git(root, "add", "bench.py")
    git(root, "commit", "-qm", "initial")
    (root / "data").mkdir()
    (root / "data" / "shard.bin").write_bytes(b"\0" * 1000)
    config = parse_config('[experiment]\nname = "exp"\nrepo = "."\nfork_include = ["**/*"]\n'
                          '[[lanes]]\nname = "a"\n[[lanes]]\nname = "b"\n', root / "autoresearch.toml")
    workspace = Workspace(config)
    (workspace.state_dir / "demo-home").mkdir(parents=True)
    (workspace.state_dir / "engine.log").write_text("log\n")
    sizes = []
    for _restart in range(4):
        warnings = []
        for lane in ("a", "b"):
            warnings += prepare_fork(workspace, lane).warnings
        sizes.append([files_under(workspace.fork_dir(lane)) for lane in ("a", "b")])
    assert sizes[-1] == sizes[1], sizes  # no growth once both forks exist
    for lane in ("a", "b"):
        fork = workspace.fork_dir(lane)
        assert (fork / "data" / "shard.bin").exists()  # what was meant to be linked is
        assert not (fork / "wiki").exists() and not (fork / ".autoresearch").exists()
    assert any("never linked into a fork" in w for w in warnings)
