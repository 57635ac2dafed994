"""The code a remote run measures, as one tar: what travels to the worker.

`git archive` of the commit the run measures (the HEAD of the run's folder), or of its
working tree's tracked files when they have uncommitted changes (`git stash create` makes
that tree a commit without touching the folder, so a remote run measures what a local run
in the same folder would). Plus the files of the `[runner] ship` globs (a subset of
`experiment.fork_include`, read from the main repo, symlinks followed). Untracked files of
the fork do not travel.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch_tui.engine.core.git import git

MAX_CODE_BYTES = 2 << 30
"""A larger tarball is refused: put big data on the workers (or in the runtime_env) instead."""


class ShippingError(Exception):
    """The run's code cannot be packed; the message is for the agent and the user."""


@dataclass
class CodeArchive:
    path: Path
    commit: str
    tree: str
    """What was archived: the commit, or the stash-like commit of a dirty working tree."""
    dirty: list[str] = field(default_factory=list)
    shipped: list[str] = field(default_factory=list)
    size: int = 0


def changed_files(cwd: Path) -> list[str]:
    out = git(cwd, "diff", "--name-only", "-z", "HEAD", check=False).stdout
    return sorted(name for name in out.split("\0") if name)


def build_code_archive(cwd: Path, ship: list[str], main_repo: Path, into: Path) -> CodeArchive:
    """Pack the code measured in `cwd` into a fresh tar under `into`."""
    head = git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise ShippingError(f"{cwd} has no commit at HEAD: a remote run ships a commit")
    commit = head.stdout.strip()
    dirty = changed_files(cwd)
    tree = commit
    if dirty:
        # a commit object of the working tree; nothing in the folder changes
        stash = git(cwd, "-c", "user.name=autoresearch", "-c", "user.email=autoresearch@localhost",
                    "stash", "create", check=False).stdout.strip()
        tree = stash or commit
    into.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="code-", suffix=".tar", dir=into)
    os.close(handle)
    path = Path(name)
    try:
        proc = git(cwd, "archive", "--format=tar", "-o", str(path), tree, check=False)
        if proc.returncode != 0:
            raise ShippingError(f"git archive {tree[:12]} failed: {proc.stderr.strip()[:200]}")
        shipped = _add_shipped(path, ship, main_repo)
        size = path.stat().st_size
        if size > MAX_CODE_BYTES:
            raise ShippingError(f"the code to ship is {size / 2**30:.1f} GiB (more than "
                                f"{MAX_CODE_BYTES / 2**30:.0f} GiB): ship fewer [runner] ship files")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return CodeArchive(path, commit, tree, dirty, shipped, size)


def _add_shipped(path: Path, ship: list[str], main_repo: Path) -> list[str]:
    names: list[str] = []
    if not ship:
        return names
    with tarfile.open(path, "a") as archive:
        present = set(archive.getnames())
        for pattern in ship:
            for source in sorted(main_repo.glob(pattern)):
                if not source.is_file():
                    continue
                name = source.relative_to(main_repo).as_posix()
                if name in present:  # tracked after all: the commit's version wins
                    continue
                archive.add(source.resolve(), arcname=name, recursive=False)
                present.add(name)
                names.append(name)
    return names
