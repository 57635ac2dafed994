"""Read-only views of a lane's runs for the UI: one run's diff and log, a merge preview."""

from __future__ import annotations

from typing import Any

from autoresearch_tui.engine.core import ledger
from autoresearch_tui.engine.core.git import git
from autoresearch_tui.engine.repo.merge import no_merge_reason
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.runs.benchmark import tail
from autoresearch_tui.engine.workspace import Workspace

DIFF_LIMIT = 200_000


def run_details(workspace: Workspace, lane: str, run_id: str) -> dict[str, Any]:
    rows, _ = ledger.read_ledger(workspace.ledger_path(lane), workspace.config.experiment.metric)
    row = next((r for r in rows if r["run_id"] == run_id), None)
    run_dir = workspace.runs_dir(lane) / run_id
    if row is None and not run_dir.is_dir():
        raise LookupError(f"lane {lane} has no run {run_id}")
    diff = ""
    if row and row.get("commit"):
        shown = git(workspace.fork_dir(lane), "show", "--stat", "--patch", "--format=commit %H%n%s%n",
                    row["commit"], check=False, timeout=60)
        diff = shown.stdout if shown.returncode == 0 else f"(git show failed: {shown.stderr.strip()})"
        if len(diff) > DIFF_LIMIT:
            diff = diff[:DIFF_LIMIT] + f"\n… [{len(diff) - DIFF_LIMIT} more characters]"
    log_file = run_dir / "run.log"
    return {
        "run_id": run_id,
        "row": {k: v for k, v in (row or {}).items() if k != "line"},
        "diff": diff,
        "log": tail(log_file, lines=400, max_bytes=256 * 1024) if log_file.exists() else "",
        "run_dir": str(run_dir),
    }


def merge_preview(workspace: Workspace, lane: str) -> dict[str, Any]:
    """The metric change and the commits a merge of the lane's best keep would bring."""
    frontier, _ = record.lane_frontier(workspace, lane)
    data = frontier.to_dict(workspace.config.loop.plateau_runs)
    data["commits"] = []
    data["mergeable"] = bool(frontier.best_keep_run and frontier.best_commit
                             and frontier.best_keep_run == frontier.best_run)
    if data["mergeable"]:
        target = workspace.config.experiment.target_branch
        fork = workspace.fork_dir(lane)
        log = git(fork, "log", "--format=%h %s", f"origin/{target}..{frontier.best_commit}", check=False, timeout=60)
        if log.returncode != 0:
            log = git(fork, "log", "--format=%h %s", "-n", "20", frontier.best_commit, check=False, timeout=60)
        data["commits"] = log.stdout.splitlines()[:50]
        data["evidence"] = frontier.best_evidence
    else:
        data["reason"] = no_merge_reason(frontier, workspace.config.experiment.metric)
    return data
