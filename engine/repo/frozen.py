"""Frozen files (`[experiment] frozen`): the parts of the repo the agent may not change.

A benchmark the agent can edit is not a benchmark: a faster `bench.sh` that times fewer
steps is "measured" and kept like any real change. Globs are relative to the repo, with
`*` inside one path segment, `**` across segments (`data/**` is everything under data/),
`?` one character, and `[...]` classes.

Two guards use this module: the write guard denies Edit/Write/... on a frozen path, and
`run_benchmark` refuses a run whose commit (or uncommitted tracked changes) differ from
target_branch of the main repo in a frozen path: Bash can change a file no hook sees.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from autoresearch_tui.engine.core.git import git


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern:
    pattern = pattern.strip().lstrip("/")
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" : zero or more whole segments
                i += 1
                out += r"(?:.*/)?"
            else:
                out += r".*"
            continue
        if c == "*":
            out += r"[^/]*"
        elif c == "?":
            out += r"[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += f"[{body.replace(chr(92), chr(92) * 2)}]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def is_frozen(rel_path: str, globs: list[str] | tuple[str, ...]) -> bool:
    """Whether a repo-relative posix path is frozen: a glob matches it or one of its parent
    folders (as in .gitignore, freezing `data` freezes everything under data/)."""
    parts = [p for p in rel_path.strip("/").split("/") if p]
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(glob_regex(pattern).match(prefix) for pattern in globs if pattern.strip()
               for prefix in prefixes)


def _tree(repo: Path, ref: str) -> dict[str, str]:
    proc = git(repo, "ls-tree", "-r", "-z", "--full-tree", ref, check=False)
    if proc.returncode != 0:
        return {}
    out = {}
    for entry in proc.stdout.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        out[path] = meta.split()[-1]
    return out


def frozen_differences(fork: Path, commit: str, main_repo: Path, target_branch: str,
                       globs: list[str]) -> list[str]:
    """Frozen paths where `commit` in the fork (plus its uncommitted tracked changes, when
    `commit` is the fork's HEAD) differs from `target_branch` in the main repo; [] when none."""
    if not globs:
        return []
    ours = {p: b for p, b in _tree(fork, commit).items() if is_frozen(p, globs)}
    theirs = {p: b for p, b in _tree(main_repo, f"refs/heads/{target_branch}").items() if is_frozen(p, globs)}
    changed = {p for p in ours.keys() | theirs.keys() if ours.get(p) != theirs.get(p)}
    head = git(fork, "rev-parse", "--verify", "--quiet", "HEAD", check=False).stdout.strip()
    if head == commit:
        dirty = git(fork, "diff", "--name-only", "-z", "HEAD", check=False).stdout.split("\0")
        changed.update(p for p in dirty if p and is_frozen(p, globs))
    return sorted(changed)
