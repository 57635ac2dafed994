"""Runs the engine makes on its own before a keep counts: the correctness check and the A/B
confirmation of a would-be new best.

Both run in clean checkouts of the commits (engine/repo/checkout.py), never in the agent's
working tree, and each run takes a device lease through `measure_run()` like any benchmark.

- `run_check`: `[experiment] check_command` in a checkout of the candidate commit, with
  `AUTORESEARCH_BASELINE_COMMIT` (the lane's baseline commit, when there is one) so a check
  can compare against it; a failing check makes the keep a discard.
- `confirm`: the candidate and the incumbent best re-measured `runs` times each, interleaved
  A/B/A/B; every re-measure is a ledger row of kind `confirmation`. The verdict is computed
  from those rows by engine/core/ledger.py (`confirmation_verdict`, whose docstring states the
  rule), so the engine, `status` and the Stop hook agree. A confirmation cut short (lane
  stopping, engine killed) leaves the candidate unconfirmed: missing rows are never guessed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from autoresearch_tui.engine.core.lane_state import STOPPED, STOPPING
from autoresearch_tui.engine.core.ledger import CANDIDATE, INCUMBENT
from autoresearch_tui.engine.repo.checkout import create_checkout, remove_checkout
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.runs.measure import MeasuredRun, measure_run

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane

CHECK_OUTPUT_LIMIT = 4000


async def _measure_in(lane: "Lane", path, *, allocate, purpose: str, description: str,
                      command: str | None = None, extra_env: dict[str, str] | None = None,
                      info: dict[str, Any] | None = None, affinity: str | None = None) -> MeasuredRun:
    experiment = lane.config.experiment
    if command is not None:  # the check: same timeouts and lease, its own command
        experiment = experiment.model_copy(update={"bench_command": command})
    return await measure_run(
        experiment, leases=lane.leases, platform=lane.platform, lane=lane.name, cwd=path,
        env={**lane.run_env(), **(extra_env or {})}, allocate=allocate, emit=lane.emit,
        description=description, purpose=purpose, info=info,
        should_stop=lambda: lane.state in (STOPPING, STOPPED),
        runner=lane.runner, affinity=affinity,  # on a Ray cluster, A/B re-measures share a node
    )


def _folder(run_id: str, run_dir):
    """An allocate() for a run folder the caller names (the check lives in its candidate's)."""
    def allocate():
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_id, run_dir
    return allocate


async def run_check(lane: "Lane", candidate_run: str, commit: str, baseline_commit: str | None
                    ) -> tuple[bool, str]:
    """(passed, what the agent reads) of check_command on `commit`."""
    workspace = lane.workspace
    command = lane.config.experiment.check_command
    run_dir = workspace.runs_dir(lane.name) / candidate_run / "check"
    path = await asyncio.to_thread(create_checkout, workspace, lane.name, commit, f"check-{candidate_run}")
    env = {"AUTORESEARCH_CHECKED_COMMIT": commit}
    if baseline_commit:
        env["AUTORESEARCH_BASELINE_COMMIT"] = baseline_commit
    try:
        lane.emit("check_started", run_id=candidate_run, commit=commit, command=command)
        measured = await _measure_in(lane, path, allocate=_folder(f"{candidate_run}-check", run_dir),
                                     purpose="check", command=command, extra_env=env,
                                     description=f"correctness check of run {candidate_run}")
    finally:
        await asyncio.to_thread(remove_checkout, workspace, lane.name, path)
    result = measured.result
    passed = result.status == "ok"
    output = result.log_tail[-CHECK_OUTPUT_LIMIT:]
    lane.emit("check_finished", run_id=candidate_run, commit=commit, passed=passed, status=result.status,
              exit_code=result.exit_code, output=output)
    head = "passed" if passed else f"FAILED ({result.status}, exit code {result.exit_code})"
    return passed, f"check_command `{command}` {head} on commit {commit[:12]}:\n{output}"


async def confirm(lane: "Lane", candidate_run: str, candidate_commit: str, incumbent_run: str,
                  incumbent_commit: str, runs: int) -> dict[str, Any]:
    """Re-measure candidate and incumbent A/B/A/B; returns the verdict (ledger.confirmation_verdict)."""
    workspace, name = lane.workspace, lane.name
    sides = ((CANDIDATE, candidate_commit), (INCUMBENT, incumbent_commit))
    checkouts: dict[str, Any] = {}
    cut_short = None
    lane.emit("confirmation", phase="started", run_id=candidate_run, incumbent_run=incumbent_run,
              runs=runs, candidate_commit=candidate_commit, incumbent_commit=incumbent_commit)
    try:
        for role, commit in sides:
            checkouts[role] = await asyncio.to_thread(create_checkout, workspace, name, commit,
                                                      f"confirm-{candidate_run}-{role}")
        for index in range(runs):
            for role, commit in sides:
                if lane.state in (STOPPING, STOPPED):
                    cut_short = "the lane is stopping"
                    break
                description = f"confirmation {index + 1}/{runs} of run {candidate_run}: {role} {commit[:10]}"
                measured = await _measure_in(
                    lane, checkouts[role], allocate=lambda: record.allocate_run(workspace, name),
                    purpose="confirmation", description=description,
                    info={"confirms": candidate_run, "role": role}, affinity=f"confirm-{candidate_run}")
                result = measured.result
                run_id = result.run_id
                if result.status == "cancelled":
                    cut_short = "the run was cancelled"
                    break
                await asyncio.to_thread(
                    record.record_confirmation, workspace, name, run_id, confirms=candidate_run, role=role,
                    commit=measured.commit or commit, value=measured.value,
                    ok=result.status == "ok", description=description)
                if result.status != "ok" or measured.value is None:
                    cut_short = f"confirmation run {run_id} {result.status}"
                    break
            if cut_short:
                break
    finally:
        for path in checkouts.values():
            await asyncio.to_thread(remove_checkout, workspace, name, path)
    frontier, _ = await asyncio.to_thread(record.lane_frontier, workspace, name)
    verdict = dict(frontier.per_run.get(candidate_run, {}).get("confirmation") or {"state": "unconfirmed"})
    if cut_short and verdict.get("state") == "unconfirmed":
        verdict["reason"] = f"cut short ({cut_short}): {verdict.get('reason', '')}".rstrip(": ")
    lane.emit("confirmation", phase="finished", run_id=candidate_run, **{
        k: verdict.get(k) for k in ("state", "reason", "candidate_values", "incumbent_values",
                                    "candidate_median", "incumbent_median", "gain_pct", "band_pct",
                                    "noise_pct", "incumbent_run", "runs")})
    return verdict


def verdict_text(verdict: dict[str, Any], metric: str) -> str:
    """The confirmation verdict in a sentence with its numbers, for the agent."""
    def nums(values) -> str:
        return ", ".join(f"{v:.6g}" for v in values or []) or "none"

    state = verdict.get("state")
    head = {"confirmed": "CONFIRMED: the new best", "rejected": "NOT CONFIRMED: the gain did not hold",
            "unconfirmed": "UNCONFIRMED: the confirmation did not finish"}.get(state, str(state))
    text = (f"confirmation {head}. {metric}: candidate re-measures [{nums(verdict.get('candidate_values'))}]"
            f" vs incumbent run {verdict.get('incumbent_run')} [{nums(verdict.get('incumbent_values'))}]")
    if verdict.get("gain_pct") is not None:
        text += (f"; medians {verdict['candidate_median']:.6g} vs {verdict['incumbent_median']:.6g}, "
                 f"gain {verdict['gain_pct']:+.2f}% vs noise band {verdict['band_pct']:.2f}%")
    if verdict.get("reason"):
        text += f" ({verdict['reason']})"
    return text + "."
