"""Clean checkouts of a lane's commits, for runs the engine makes on its own (confirmation
re-measures, correctness checks): the agent's working tree is never touched.

A checkout is a detached `git worktree` of the lane's own fork, inside the lane folder
(`<lane>/checkouts/`), so it has the fork's git history (a check can `git show` an older
commit) and the fork's `fork_include` files (symlinked from the fork). It is removed after
use; checkouts a killed engine left behind are removed by `remove_stale_checkouts`.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path

from autoresearch_tui.engine.core.git import git, git_out
from autoresearch_tui.engine.workspace import Workspace

CHECKOUTS_DIR = "checkouts"
_EXCLUDE_MARK = "# autoresearch fork_include"
_counter = itertools.count(1)


def checkouts_dir(workspace: Workspace, lane: str) -> Path:
    return workspace.lane_dir(lane) / CHECKOUTS_DIR


def _linked_includes(fork: Path) -> list[str]:
    """The fork_include paths the fork links in (listed after the mark in info/exclude)."""
    try:
        exclude = Path(git_out(fork, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
        lines = exclude.read_text(encoding="utf-8").splitlines()
    except Exception:
        return []
    out, inside = [], False
    for line in lines:
        if line.startswith(_EXCLUDE_MARK):
            inside = True
            continue
        if inside and line.startswith("/"):
            out.append(re.sub(r"\\(.)", r"\1", line[1:]))
    return out


def create_checkout(workspace: Workspace, lane: str, commit: str, label: str) -> Path:
    """A fresh detached checkout of `commit`; raises GitError when git refuses."""
    fork = workspace.fork_dir(lane)
    root = checkouts_dir(workspace, lane)
    root.mkdir(parents=True, exist_ok=True)
    safe_label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:40]
    path = root / f"{safe_label}-{commit[:10]}-{os.getpid()}-{next(_counter)}"
    git(fork, "worktree", "add", "--detach", "--force", "--quiet", str(path), commit)
    for rel in _linked_includes(fork):
        source, target = fork / rel, path / rel
        if (source.exists() or source.is_symlink()) and not (target.exists() or target.is_symlink()):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source.resolve(), target, target_is_directory=source.is_dir())
    return path


def remove_checkout(workspace: Workspace, lane: str, path: Path) -> None:
    fork = workspace.fork_dir(lane)
    git(fork, "worktree", "remove", "--force", "--force", str(path), check=False)
    shutil.rmtree(path, ignore_errors=True)
    git(fork, "worktree", "prune", check=False)


def remove_stale_checkouts(workspace: Workspace, lane: str) -> int:
    """Remove every checkout left in the lane folder (call when no run of the lane is going)."""
    root = checkouts_dir(workspace, lane)
    if not root.is_dir():
        return 0
    count = 0
    for path in root.iterdir():
        remove_checkout(workspace, lane, path)
        count += 1
    return count
