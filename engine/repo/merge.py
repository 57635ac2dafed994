"""Merge a lane's best kept commit back into the main repo, safely (docs/architecture.md, "Merge").

1. The lane's best keep (by the ledger's frontier) is fetched from the fork into the main
   repo as branch `autoresearch/<experiment>/<lane>` (it stays there whatever happens next).
2. The `--no-ff` merge commit is computed without any working tree: `git merge-tree
   --write-tree` + `git commit-tree` (git >= 2.38) only add objects, so a conflict changes
   nothing at all in the main repo (no ref, no file, no index, no MERGE_HEAD).
3. It is published:
   - target_branch checked out in a worktree: refused if that worktree has uncommitted
     changes to tracked files or an operation in progress; otherwise `git merge --ff-only
     <merge commit>` there, which git refuses without touching anything if an untracked file
     would be overwritten;
   - target_branch not checked out: `git update-ref` with the old value (compare-and-swap);
     the user's checkout (HEAD, index, files) is not touched.
   With an older git, the merge runs in a temporary detached worktree outside the repo
   (`git worktree add --detach`), aborted on conflict, then published the same way.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from autoresearch_tui.engine.core.git import resolve_commit
from autoresearch_tui.engine.repo.forks import RUN_REF_PREFIX, GitError, git, git_out, is_git_repo
from autoresearch_tui.engine.runs.record import lane_frontier
from autoresearch_tui.engine.workspace import Workspace


@dataclass
class MergeResult:
    ok: bool
    message: str
    lane: str = ""
    branch: str = ""
    target_branch: str = ""
    merged_commit: str | None = None
    """The new merge commit on target_branch (None when nothing was merged)."""
    lane_commit: str | None = None
    best_run: str | None = None
    metric_name: str = ""
    baseline: float | None = None
    best: float | None = None
    change_pct: float | None = None
    conflicts: list[str] = field(default_factory=list)
    already_merged: bool = False
    evidence: dict | None = None
    """The best's confirmation verdict (re-measures, medians, noise band), when confirmed."""

    def event_fields(self) -> dict[str, Any]:
        """Fields for `make_event(lane, "merge", **fields)`."""
        fields = asdict(self)
        fields.pop("lane")
        return fields


def _merge_tree_available(main: Path) -> bool:
    proc = git(main, "merge-tree", "-h", check=False)
    return "--write-tree" in (proc.stdout + proc.stderr)


@contextmanager
def _merge_lock(workspace: Workspace) -> Iterator[None]:
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace.state_dir / "merge.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.6g}"


def no_merge_reason(frontier, metric: str) -> str:
    """Why a lane has no merge candidate, in words (only confirmed, measured keeps are)."""
    parts = [f"no confirmed, measured keep beats the baseline ({metric} {_fmt(frontier.baseline)}, "
             f"{frontier.runs} run(s) recorded)"]
    if frontier.unconfirmed:
        parts.append(f"unconfirmed keep(s) {', '.join(frontier.unconfirmed[-5:])}: their confirmation "
                     "did not finish (re-measure to try again)")
    if frontier.rejected:
        parts.append(f"keep(s) {', '.join(frontier.rejected[-5:])} did not hold up when re-measured")
    if frontier.claimed_runs:
        parts.append(f"{frontier.claimed_runs} run(s) have only a claimed (unverified) metric")
    return "; ".join(parts)


def merge_message(workspace: Workspace, lane: str, frontier, best_run: str, commit: str) -> str:
    cfg = workspace.config.experiment
    change = frontier.change_pct
    change_text = "" if change is None else f", {change:+.1f}%"
    subject = (f"autoresearch: merge lane {lane} ({cfg.metric} {_fmt(frontier.baseline)} → "
               f"{_fmt(frontier.best)}{change_text})")
    counts = ", ".join(f"{k} {v}" for k, v in frontier.counts.items() if v)
    body = [
        f"Experiment: {cfg.name}",
        f"Lane: {lane} (branch {workspace.lane_branch(lane)})",
        f"Metric: {cfg.metric} ({cfg.direction})",
        f"Baseline: {_fmt(frontier.baseline)} (run {frontier.baseline_run})",
        f"Best: {_fmt(frontier.best)} (run {best_run}, commit {commit[:12]})"
        + ("" if change is None else f", {change:+.2f}% vs baseline"),
        f"Runs: {frontier.runs} ({counts})",
    ]
    if frontier.noise_pct is not None:
        body.append(f"Noise: ±{frontier.noise_pct:.2f}% ({frontier.noise_source})")
    evidence = frontier.best_evidence
    if evidence:
        body.append(f"Confirmed: {len(evidence.get('candidate_values') or [])} re-measures, median "
                    f"{_fmt(evidence.get('candidate_median'))} vs the incumbent's "
                    f"{_fmt(evidence.get('incumbent_median'))} (gain {evidence.get('gain_pct', 0):+.2f}% > "
                    f"noise band {evidence.get('band_pct', 0):.2f}%)")
    return subject + "\n\n" + "\n".join(body) + "\n"


def merge_lane(workspace: Workspace, lane: str) -> MergeResult:
    """Merge the lane's best kept commit into target_branch; never leaves the user's checkout
    dirty or conflicted. Refusals and conflicts come back as ok=False with a message."""
    cfg = workspace.config.experiment
    main = workspace.main_repo
    fork = workspace.fork_dir(lane)
    branch = workspace.lane_branch(lane)
    target = cfg.target_branch
    result = MergeResult(ok=False, message="", lane=lane, branch=branch, target_branch=target,
                         metric_name=cfg.metric)

    def refuse(message: str) -> MergeResult:
        result.message = message
        return result

    frontier, _ = lane_frontier(workspace, lane)
    result.baseline, result.best = frontier.baseline, frontier.best
    result.change_pct = frontier.change_pct
    result.evidence = frontier.best_evidence
    if frontier.best_keep_run is None or frontier.best_keep_run != frontier.best_run:
        return refuse(f"lane {lane}: nothing to merge: {no_merge_reason(frontier, cfg.metric)}")
    best_run, commit = frontier.best_run, frontier.best_commit
    result.best_run, result.lane_commit = best_run, commit
    if not is_git_repo(main):
        return refuse(f"main repo {main} is not a git repository")
    if not is_git_repo(fork):
        return refuse(f"lane {lane}: no fork at {fork}")
    full = resolve_commit(fork, commit) if commit else None  # rows may name abbreviated SHAs
    if full is None:
        return refuse(f"lane {lane}: best run {best_run}'s commit {commit[:12]} is missing from the fork")
    commit = result.lane_commit = full
    target_ref = f"refs/heads/{target}"
    old_target = git(main, "rev-parse", "--verify", "--quiet", f"{target_ref}^{{commit}}",
                     check=False).stdout.strip()
    if not old_target:
        return refuse(f"main repo has no branch {target!r} (experiment.target_branch)")

    with _merge_lock(workspace):
        checkout = _worktree_with(main, target_ref)
        if checkout is not None:
            problem = _not_clean(checkout)
            if problem:
                return refuse(f"refusing to merge lane {lane}: {target} is checked out in "
                              f"{checkout} and {problem}; commit or stash first (nothing was changed)")
        try:
            _fetch_lane(main, fork, lane, best_run, commit, branch)
        except GitError as exc:
            return refuse(f"lane {lane}: could not fetch commit {commit[:12]} into the main repo: {exc}")
        if git(main, "merge-base", "--is-ancestor", commit, old_target, check=False).returncode == 0:
            result.ok, result.already_merged = True, True
            result.message = (f"lane {lane}: best run {best_run} (commit {commit[:12]}) is already "
                              f"in {target}; nothing to do")
            return result

        message = merge_message(workspace, lane, frontier, best_run, commit)
        env = _identity_env(main)
        if _merge_tree_available(main):
            merged, conflicts = _merge_without_worktree(main, old_target, commit, message, env)
        else:
            merged, conflicts = _merge_in_temp_worktree(main, workspace, old_target, commit, message, env)
        if merged is None:
            result.conflicts = conflicts
            return refuse(
                f"lane {lane}: merge into {target} conflicts in {len(conflicts)} file(s): "
                f"{', '.join(conflicts) or '(unknown)'}; nothing was changed in the main repo "
                f"(the lane's best commit stays on branch {branch})")

        try:
            if checkout is not None:
                proc = git(checkout, "merge", "--ff-only", "--quiet", merged, check=False, env=env)
                if proc.returncode != 0:
                    return refuse(f"lane {lane}: git refused to update the checkout of {target} "
                                  f"(nothing was changed): {(proc.stderr or proc.stdout).strip()}")
            else:
                git(main, "update-ref", "-m", f"autoresearch: merge lane {lane}", target_ref,
                    merged, old_target)
        except GitError as exc:
            return refuse(f"lane {lane}: {target} moved while merging; nothing was changed ({exc})")

    result.ok, result.merged_commit = True, merged
    change = "" if result.change_pct is None else f" ({result.change_pct:+.1f}%)"
    result.message = (f"merged lane {lane} into {target} as {merged[:12]}: {cfg.metric} "
                      f"{_fmt(result.baseline)} → {_fmt(result.best)}{change}, run {best_run}")
    return result


def _worktree_with(main: Path, ref: str) -> Path | None:
    """The worktree (main's own or a linked one) that has `ref` checked out, if any."""
    out = git(main, "worktree", "list", "--porcelain").stdout
    path = None
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree "):])
        elif line == f"branch {ref}" and path is not None:
            return path
    return None


def _not_clean(worktree: Path) -> str | None:
    gitdir = Path(git_out(worktree, "rev-parse", "--path-format=absolute", "--git-dir"))
    for marker, what in (("MERGE_HEAD", "a merge"), ("CHERRY_PICK_HEAD", "a cherry-pick"),
                         ("REVERT_HEAD", "a revert"), ("rebase-merge", "a rebase"),
                         ("rebase-apply", "a rebase or am"), ("BISECT_LOG", "a bisect")):
        if (gitdir / marker).exists():
            return f"{what} is in progress there"
    proc = git(worktree, "status", "--porcelain", "--untracked-files=no", check=False)
    if proc.returncode != 0:
        return f"its status cannot be read ({proc.stderr.strip()})"
    changed = [line[3:] for line in proc.stdout.splitlines() if line.strip()]
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        return f"it has uncommitted changes ({', '.join(changed[:5])}{more})"
    return None


def _fetch_lane(main: Path, fork: Path, lane: str, run_id: str, commit: str, branch: str) -> None:
    """Bring `commit` into the main repo as refs/heads/<branch> (created or moved)."""
    run_ref = RUN_REF_PREFIX + run_id
    has_ref = git(fork, "rev-parse", "--verify", "--quiet", run_ref, check=False).stdout.strip() == commit
    if has_ref:
        source = run_ref
        git(main, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(fork), source)
    else:  # the ref was deleted by hand: ask for the commit itself
        git(main, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--upload-pack", "git -c uploadpack.allowAnySHA1InWant=true upload-pack",
            str(fork), commit)
    git(main, "update-ref", "-m", f"autoresearch: lane {lane} best run {run_id}",
        f"refs/heads/{branch}", commit)


def _identity_env(main: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    if not git(main, "config", "--get", "user.name", check=False).stdout.strip():
        env.update(GIT_AUTHOR_NAME="autoresearch-tui", GIT_COMMITTER_NAME="autoresearch-tui")
    if not git(main, "config", "--get", "user.email", check=False).stdout.strip():
        env.update(GIT_AUTHOR_EMAIL="autoresearch-tui@localhost",
                   GIT_COMMITTER_EMAIL="autoresearch-tui@localhost")
    return env


def _merge_without_worktree(main: Path, target_commit: str, lane_commit: str, message: str,
                            env: dict[str, str]) -> tuple[str | None, list[str]]:
    proc = git(main, "merge-tree", "--write-tree", "--name-only", "--no-messages",
               target_commit, lane_commit, check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode == 1:
        return None, sorted({line for line in lines[1:] if line.strip()})
    if proc.returncode != 0 or not lines or not re.fullmatch(r"[0-9a-f]{40,64}", lines[0]):
        raise GitError(f"git merge-tree failed: {(proc.stderr or proc.stdout).strip()}")
    tree = lines[0]
    merged = git(main, "commit-tree", tree, "-p", target_commit, "-p", lane_commit, "-F", "-",
                 env=env, input=message).stdout.strip()
    return merged, []


def _merge_in_temp_worktree(main: Path, workspace: Workspace, target_commit: str,
                            lane_commit: str, message: str, env: dict[str, str]
                            ) -> tuple[str | None, list[str]]:
    """Fallback for git < 2.38: a detached worktree outside the repo, removed afterwards."""
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="merge-", dir=workspace.state_dir))
    tmp.rmdir()
    git(main, "worktree", "add", "--quiet", "--detach", str(tmp), target_commit)
    try:
        proc = git(tmp, "merge", "--no-ff", "--no-verify", "--quiet", "-m", message, lane_commit,
                   check=False, env=env)
        if proc.returncode != 0:
            conflicts = sorted(set(git_out(tmp, "diff", "--name-only", "--diff-filter=U").split("\n")) - {""})
            git(tmp, "merge", "--abort", check=False)
            if not conflicts:
                raise GitError(f"git merge failed: {(proc.stderr or proc.stdout).strip()}")
            return None, conflicts
        return git_out(tmp, "rev-parse", "HEAD"), []
    finally:
        git(main, "worktree", "remove", "--force", str(tmp), check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        git(main, "worktree", "prune", check=False)
