"""The one way the project runs git: `git -C <repo> ...` with a clean environment.

Variables such as GIT_DIR (set when a command runs inside a git hook, or by a user's shell)
would point git at another repository than the one named, so they are dropped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV_DROP = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_COMMON_DIR", "GIT_PREFIX",
)


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's own words."""


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in GIT_ENV_DROP}
    env.update({"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})
    if extra:
        env.update(extra)
    return env


def git(repo: Path | str, *args: str, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `git -C repo args...`; raise GitError (with stderr) when it fails and check is set."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, errors="replace",
        env=git_env(env), input=input, timeout=timeout,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise GitError(f"git {' '.join(args)} (in {repo}) failed: {detail}")
    return proc


def git_out(repo: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
    return git(repo, *args, env=env).stdout.strip()


def is_git_repo(path: Path | str) -> bool:
    """True when `path` is the top of a git work tree (not merely inside one)."""
    if not Path(path).is_dir():
        return False
    top = git(path, "rev-parse", "--show-toplevel", check=False)
    return top.returncode == 0 and Path(top.stdout.strip()).resolve() == Path(path).resolve()


def resolve_commit(repo: Path | str, name: str) -> str | None:
    """The full SHA of a commit named by a (possibly abbreviated) SHA or ref, else None."""
    if not name:
        return None
    proc = git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else None
