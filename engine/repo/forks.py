"""Lane forks: one independent git repository per lane (docs/architecture.md, "Forks").

A fork is `git clone --local` of the main repo's `target_branch`, checked out on the lane
branch `autoresearch/<experiment>/<lane>`:

- object files are hard-linked, so a fork costs a working tree plus an index (measured in
  bench/bench_forks.py against `cp -r`), and it survives `gc --prune=now` in either repo
  (each side has its own link to every object it was created with);
- refs, config, index, stash and hooks are the fork's own: lanes cannot collide the way
  `git worktree`s do (shared branches, shared stash, `checkout main` refused) and a lane
  cannot push into the main repo by accident (its push URL is disabled);
- an existing fork is always reused untouched: a restart never wipes a lane's work. A new
  fork is cloned into a temporary folder and renamed into place, so a crash mid-clone never
  leaves a half-made fork where a real one is expected.

Untracked files a run needs (datasets, checkpoints, `.env`) come from the main repo through
`[experiment] fork_include` globs, hard-linked when on the same filesystem, symlinked
otherwise (and always for directories), never copied. They are listed in the fork's
`.git/info/exclude` so `git add -A` in a lane never commits them.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch_tui.engine.core.git import GitError, git, git_out, is_git_repo  # noqa: F401
from autoresearch_tui.engine.workspace import Workspace

RUN_REF_PREFIX = "refs/autoresearch/runs/"
_DISABLED_PUSH_URL = "lane-forks-do-not-push--use-autoresearch-tui-merge"
_EXCLUDE_MARK = "# autoresearch fork_include (linked from the main repo, never commit these)"

class ForkError(RuntimeError):
    """A fork cannot be made, reused or removed; the message is meant for the user."""


def run_refs(repo: Path) -> dict[str, str]:
    """run_id -> commit for every `refs/autoresearch/runs/<run_id>` in `repo`."""
    out = git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)", RUN_REF_PREFIX)
    refs = {}
    for line in out.splitlines():
        name, _, sha = line.partition(" ")
        refs[name[len(RUN_REF_PREFIX):]] = sha
    return refs


@dataclass
class ForkInfo:
    path: Path
    branch: str
    created: bool
    """False when an existing fork was reused (untouched)."""
    linked: list[str] = field(default_factory=list)
    """fork_include paths (relative to the repo) linked into the fork by this call."""
    warnings: list[str] = field(default_factory=list)


def ensure_fork(workspace: Workspace, lane: str, warnings: list[str] | None = None) -> Path:
    """The lane's fork, created if missing, reused untouched if present; returns its path.

    Warnings (objects copied instead of hard-linked, data shared with the main repo,
    globs matching nothing) are appended to `warnings` when a list is given; use
    `prepare_fork` for the full ForkInfo.
    """
    info = prepare_fork(workspace, lane)
    if warnings is not None:
        warnings.extend(info.warnings)
    return info.path


def prepare_fork(workspace: Workspace, lane: str) -> ForkInfo:
    fork = workspace.fork_dir(lane)
    branch = workspace.lane_branch(lane)
    main = workspace.main_repo
    if not is_git_repo(main):
        raise ForkError(f"main repo {main} is not a git repository (experiment.repo)")

    created = False
    warnings: list[str] = []
    if fork.exists() and not _is_empty_dir(fork):
        if not is_git_repo(fork):
            raise ForkError(
                f"lane {lane}: {fork} exists but is not a git repository; "
                "move it away (it is never deleted automatically)"
            )
    else:
        created = _clone(workspace, lane, fork, branch, warnings)

    _ensure_identity(main, fork, lane)
    linked = _link_includes(workspace, lane, fork, warnings)
    return ForkInfo(path=fork, branch=branch, created=created, linked=linked, warnings=warnings)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _clone(workspace: Workspace, lane: str, fork: Path, branch: str, warnings: list[str]) -> bool:
    main = workspace.main_repo
    target = workspace.config.experiment.target_branch
    if git(main, "rev-parse", "--verify", "--quiet", f"refs/heads/{target}^{{commit}}",
           check=False).returncode != 0:
        raise ForkError(f"main repo {main} has no branch {target!r} (experiment.target_branch)")

    fork.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fork.name}.cloning-", dir=fork.parent))
    try:
        git(fork.parent, "clone", "--quiet", "--local", "--no-tags", "--branch", target,
            str(main), str(tmp))
        git(tmp, "checkout", "--quiet", "-B", branch)
        git(tmp, "config", "remote.origin.pushurl", _DISABLED_PUSH_URL)
        _copy_info_exclude(main, tmp)
        if _objects_dev(main) != os.stat(tmp).st_dev:
            warnings.append(
                f"lane {lane}: fork is on another filesystem than the main repo: git copied "
                "the object files instead of hard-linking them"
            )
        if fork.exists():  # an empty folder left by someone: replace it
            fork.rmdir()
        os.rename(tmp, fork)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and is_git_repo(fork):
            return False  # a concurrent ensure_fork won the race: reuse its fork
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def _objects_dev(main: Path) -> int:
    common = Path(git_out(main, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    return os.stat(common / "objects").st_dev


def _copy_info_exclude(main: Path, fork: Path) -> None:
    """Clones don't carry .git/info/exclude: bring the user's ignore rules along."""
    src = Path(git_out(main, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
    if src.is_file():
        dst = Path(git_out(fork, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text(encoding="utf-8", errors="replace"), encoding="utf-8")


def _ensure_identity(main: Path, fork: Path, lane: str) -> None:
    """Lanes must be able to commit: the main repo's identity, else a lane identity."""
    fallback = {"user.name": f"autoresearch lane {lane}",
                "user.email": f"autoresearch-{lane}@localhost"}
    for key, default in fallback.items():
        if git(fork, "config", "--local", "--get", key, check=False).stdout.strip():
            continue
        value = git(main, "config", "--get", key, check=False).stdout.strip() or default
        git(fork, "config", "--local", key, value)


def _tracked(main: Path) -> set[str]:
    out = git(main, "ls-files", "-z").stdout
    return {p for p in out.split("\0") if p}


def link_includes(workspace: Workspace, label: str, folder: Path, warnings: list[str]) -> list[str]:
    """fork_include files linked into a throwaway checkout (the `bench` command), as into a
    lane's fork; its git is not told to ignore them (the checkout is removed afterwards)."""
    return _link_includes(workspace, label, folder, warnings, exclude=False)


def _link_includes(workspace: Workspace, lane: str, fork: Path, warnings: list[str],
                   exclude: bool = True) -> list[str]:
    """Link the fork_include files into `fork`; `exclude`: keep them out of its git."""
    patterns = workspace.config.experiment.fork_include
    if not patterns:
        return []
    main = workspace.main_repo.resolve()
    tracked = _tracked(main)
    # The engine's own folders (every lane's fork lives under the experiments folder) are
    # never linked: with repo = "." a recursive glob would link forks into forks.
    managed = [(workspace.root / "wiki" / "experiment").resolve(), workspace.state_dir.resolve()]
    matches: set[Path] = set()
    skipped: set[str] = set()
    for pattern in patterns:
        found = []
        for p in _safe_glob(main, pattern):
            rel = p.relative_to(main)
            if ".git" in rel.parts or rel.as_posix() in tracked:
                continue
            if _overlaps(p, managed) or ".repo" in rel.parts:
                skipped.add(rel.parts[0])
                continue
            found.append(p)
        if not found:
            warnings.append(f"lane {lane}: fork_include {pattern!r} matched no untracked file")
        matches.update(found)
    if skipped:
        warnings.append(f"lane {lane}: fork_include skipped {', '.join(sorted(skipped))}: the engine's "
                        "own folders (lanes, forks, state) are never linked into a fork")

    linked: list[str] = []
    hard, soft = 0, 0
    linked_dirs: list[Path] = []
    for src in sorted(matches, key=lambda p: len(p.relative_to(main).parts)):
        rel = src.relative_to(main)
        if any(d in rel.parents for d in linked_dirs):
            continue  # inside a directory already linked
        dst = fork / rel
        if dst.exists() or dst.is_symlink():
            if src.is_dir() and not src.is_symlink():
                linked_dirs.append(rel)
            continue  # reused fork: never overwrite what is there
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() or src.is_symlink():
            os.symlink(src.resolve(), dst, target_is_directory=src.is_dir())
            soft += 1
            if src.is_dir():
                linked_dirs.append(rel)
        else:
            try:
                os.link(src, dst)
                hard += 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
                os.symlink(src, dst)
                soft += 1
        linked.append(rel.as_posix())
    if linked and exclude:
        _exclude_in_fork(fork, linked)
    if hard or soft or linked_dirs:
        warnings.append(
            f"lane {lane}: fork_include files are shared with the main repo "
            f"({hard} hard-linked, {soft} symlinked): writing one in place changes the main "
            "repo's bytes too; to change one, write a new file and rename it over the link"
        )
    return linked


def _overlaps(path: Path, folders: list[Path]) -> bool:
    """`path` is one of `folders`, inside one, or holds one."""
    resolved = path.resolve() if not path.is_symlink() else path.parent.resolve() / path.name
    return any(resolved == f or f in resolved.parents or resolved in f.parents for f in folders)


def _safe_glob(root: Path, pattern: str) -> list[Path]:
    pattern = pattern.strip()
    if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        return []
    try:
        return [p for p in root.glob(pattern) if p.exists() or p.is_symlink()]
    except (ValueError, OSError):
        return []


def _exclude_in_fork(fork: Path, paths: list[str]) -> None:
    exclude = Path(git_out(fork, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"))
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    lines = set(text.splitlines())
    new = [f"/{_escape_glob(p)}" for p in paths if f"/{_escape_glob(p)}" not in lines]
    if not new:
        return
    if _EXCLUDE_MARK not in lines:
        new.insert(0, _EXCLUDE_MARK)
    prefix = "" if not text or text.endswith("\n") else "\n"
    with open(exclude, "a", encoding="utf-8") as handle:
        handle.write(prefix + "\n".join(new) + "\n")


def _escape_glob(path: str) -> str:
    return "".join("\\" + c if c in "*?[]!#\\" else c for c in path)


def archive_runs(workspace: Workspace, lane: str) -> int:
    """Fetch every run ref of the lane into the main repo under
    `refs/autoresearch/<experiment>/<lane>/runs/*` (so the fork can be removed without
    losing a single measured commit). Returns how many run refs the fork has."""
    fork = workspace.fork_dir(lane)
    refs = run_refs(fork)
    if refs:
        dest = f"refs/autoresearch/{workspace.config.experiment.name}/{lane}/runs/"
        git(workspace.main_repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            str(fork), f"+{RUN_REF_PREFIX}*:{dest}*")
    return len(refs)


def unreachable_runs(workspace: Workspace, lane: str) -> dict[str, str]:
    """run_id -> commit for recorded runs of the lane not reachable from the main repo's refs."""
    fork = workspace.fork_dir(lane)
    refs = run_refs(fork)
    if not refs:
        return {}
    reachable = set(git(workspace.main_repo, "rev-list", "--all").stdout.split())
    return {run: sha for run, sha in refs.items() if sha not in reachable}


def remove_fork(workspace: Workspace, lane: str, force: bool = False) -> Path:
    """Delete the lane's fork, only when every recorded commit is safe in the main repo.

    Refuses (ForkError, naming each unreachable run) unless `force`. Linked fork_include
    data is unlinked, never followed: the main repo's files stay.
    """
    fork = workspace.fork_dir(lane)
    if not fork.exists() and not fork.is_symlink():
        raise ForkError(f"lane {lane}: no fork at {fork}")
    if not force:
        if not is_git_repo(fork):
            raise ForkError(f"lane {lane}: {fork} is not a git repository; not removing it")
        lost = unreachable_runs(workspace, lane)
        if lost:
            listing = ", ".join(f"{run} ({sha[:10]})" for run, sha in sorted(lost.items()))
            raise ForkError(
                f"lane {lane}: refusing to remove the fork: {len(lost)} recorded run(s) have "
                f"commits not reachable from the main repo's refs: {listing}. Keep them with "
                f"archive_runs (git -C {workspace.main_repo} fetch {fork} "
                f"'+{RUN_REF_PREFIX}*:refs/autoresearch/{workspace.config.experiment.name}/"
                f"{lane}/runs/*'), or remove with force"
            )
    if fork.is_symlink():
        fork.unlink()
    else:
        shutil.rmtree(fork)  # symlinks inside are unlinked, never followed
    return fork
