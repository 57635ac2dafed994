"""The engine's tools for a lane's agent: run_benchmark, record_run, lane_status.

The agent reports through these tools so the engine, not the model, writes the ledger,
keeps a ref to every recorded commit, and runs long benchmarks under its own timeout.
`LaneTools` is agent-neutral (each tool takes the call's arguments and returns a
`ToolAnswer`); agent/claude.py serves it as an in-process MCP server, and any other agent
adapter can serve the same methods its own way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from autoresearch_tui.engine.core.events import tidy_numbers
from autoresearch_tui.engine.core.ledger import STATUSES
from autoresearch_tui.engine.core.lane_state import STOPPED, STOPPING
from autoresearch_tui.engine.core.tools import LANE_STATUS, RECORD_RUN, RUN_BENCHMARK
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.repo.frozen import frozen_differences
from autoresearch_tui.engine.runs.confirm import confirm, run_check, verdict_text
from autoresearch_tui.engine.runs.measure import measure_run
from autoresearch_tui.engine.runs.run_info import read_run_info

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane

log = logging.getLogger(__name__)

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
RUN_BENCHMARK_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "description": "The hypothesis this run tests."},
        "args": {"type": "string", "description": "Extra arguments for the bench command, e.g. --profile"},
    },
    "required": ["description"],
}
RECORD_RUN_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": list(STATUSES)},
        "description": {"type": "string"},
        "metric": {"type": "number", "description": "Only for a run with no measurement (recorded as claimed)."},
        "run_dir": {"type": "string", "description": "The run_dir run_benchmark returned (default: your latest run)."},
    },
    "required": ["status", "description"],
}


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """`asyncio.to_thread`, except that a StopIteration raised in the thread arrives as a
    RuntimeError (asyncio cannot put a StopIteration into a future: the await would hang)."""
    def call() -> Any:
        try:
            return function(*args)
        except StopIteration as exc:
            raise RuntimeError(f"StopIteration in {getattr(function, '__name__', function)}") from exc

    return await asyncio.to_thread(call)


def _allocate(workspace: Any, lane: str) -> tuple[str, Any]:
    """record.allocate_run for measure_run's worker thread, with no StopIteration escaping."""
    try:
        return record.allocate_run(workspace, lane)
    except StopIteration as exc:
        raise RuntimeError("StopIteration in allocate_run") from exc


@dataclass(frozen=True)
class ToolAnswer:
    text: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]
    call: Callable[[dict[str, Any]], Awaitable[ToolAnswer]]


class LaneTools:
    """The tools of one lane, callable by any agent adapter."""

    def __init__(self, lane: "Lane"):
        self.lane = lane
        self.workspace = lane.workspace
        self.experiment = lane.config.experiment

    def specs(self) -> list[ToolSpec]:
        experiment = self.experiment
        return [
            ToolSpec(RUN_BENCHMARK,
                     f"Run the benchmark (`{experiment.bench_command}`) in your fork under the engine's "
                     f"timeout ({experiment.run_timeout_s:g}s) and get its summary. Use this instead of "
                     "running the benchmark through Bash.", RUN_BENCHMARK_SCHEMA, self.run_benchmark),
            ToolSpec(RECORD_RUN,
                     "Record a finished run in the lane's ledger (results.tsv): status keep, discard, crash "
                     "or inconclusive. The row names the commit the run measured and the value the engine "
                     "measured. A keep that would be a new best is re-measured A/B against the current "
                     "best before it counts. Without run_dir: your latest finished run. Answers with the "
                     "frontier.",
                     RECORD_RUN_SCHEMA, self.record_run),
            ToolSpec(LANE_STATUS,
                     "The lane's frontier (baseline, best, noise, runs since the last new best), its "
                     "last runs, and what the engine has scheduled.", EMPTY_SCHEMA, self.lane_status),
        ]

    async def run_benchmark(self, args: dict[str, Any]) -> ToolAnswer:
        lane, workspace = self.lane, self.workspace
        lane.benchmark_running = True  # waiting for a slot counts: the watchdog leaves it alone
        try:
            measured = await measure_run(
                self.experiment,
                leases=lane.leases, platform=lane.platform, lane=lane.name,
                cwd=workspace.fork_dir(lane.name),
                env=lane.run_env(),
                allocate=lambda: _allocate(workspace, lane.name),
                emit=lane.emit,
                description=str(args.get("description", "")).strip(),
                args=str(args.get("args", "")),
                refuse=self._frozen_refusal,
                should_stop=lambda: lane.state in (STOPPING, STOPPED),
                runner=lane.runner,
            )
        except (record.LedgerError, OSError, RuntimeError) as exc:  # no run folder, or no runner: answer
            log.warning("lane %s: run_benchmark failed: %s", lane.name, exc)
            lane.emit("warning", where="run_benchmark", message=str(exc))
            return ToolAnswer(f"run_benchmark refused: {exc}", is_error=True)
        finally:
            lane.benchmark_running = False
        return ToolAnswer(measured.for_agent(), is_error=measured.status != "ok")

    def _frozen_refusal(self, commit: str | None, dirty: list[str]) -> str | None:
        """Why a run must not start: its code differs from target_branch in a frozen file."""
        frozen = self.experiment.frozen
        if not frozen or not commit:
            return None
        changed = frozen_differences(self.workspace.fork_dir(self.lane.name), commit,
                                     self.workspace.main_repo, self.experiment.target_branch, frozen)
        if not changed:
            return None
        return (f"frozen files differ from {self.experiment.target_branch}: {', '.join(changed[:10])}. "
                f"These files ({', '.join(frozen)}) define the measurement and may not change; "
                f"restore them (git checkout {self.experiment.target_branch} -- <file>, or revert the "
                "commit) and run again")

    async def record_run(self, args: dict[str, Any]) -> ToolAnswer:
        lane = self.lane
        status = str(args.get("status", "")).strip().lower()
        description = str(args.get("description", ""))
        notes: list[str] = []
        lane.benchmark_running = True  # checks and confirmation runs: busy, not idle
        try:
            return await self._record_run(args, status, description, notes)
        finally:
            lane.benchmark_running = False

    async def _record_run(self, args: dict[str, Any], status: str, description: str, notes: list[str]) -> ToolAnswer:
        lane, workspace, experiment = self.lane, self.workspace, self.experiment
        try:
            run_id, _ = await in_thread(record.resolve_run, workspace, lane.name, args.get("run_dir"))
            if status == "keep" and experiment.check_command.strip():
                status, description = await self._checked(run_id, status, description, notes)
            answer = await in_thread(
                record.record_run, workspace, lane.name, status, description, args.get("metric"), run_id)
        except record.LedgerError as exc:
            lane.emit("warning", where="record_run", message=str(exc))
            return ToolAnswer(f"record_run refused: {exc}", is_error=True)
        except Exception as exc:  # every tool call returns, whatever broke
            log.exception("lane %s: record_run failed", lane.name)
            lane.emit("error", where="record_run", message=f"{type(exc).__name__}: {exc}")
            return ToolAnswer(f"record_run failed: {type(exc).__name__}: {exc}", is_error=True)
        if answer.get("claim_ignored") is not None:
            lane.emit("claim_ignored", run_id=answer["run_id"], claimed=answer["claim_ignored"],
                      measured=answer.get("metric"))
        pending = answer.get("confirmation")
        if not answer.get("already_recorded") and isinstance(pending, dict) and pending.get("state") == "pending":
            verdict = await confirm(lane, answer["run_id"], answer["commit"], pending["incumbent_run"],
                                    pending["incumbent_commit"], int(pending["runs"]))
            verdict.pop("new_best", None)
            verdict.pop("best", None)
            confirmed = await in_thread(record.run_answer, workspace, lane.name, answer["run_id"])
            answer.update(confirmed)  # the frontier with the verdict (best, change, plateau...)
            answer["confirmation"] = verdict
            notes.append(verdict_text(verdict, experiment.metric))
        if not answer.get("already_recorded"):
            row = answer.get("row", {})
            lane.emit("run_recorded", run_id=answer["run_id"], status=answer["status"],
                      commit=answer.get("commit"), metric_value=answer.get("metric"),
                      description=row.get("description", ""), new_best=answer.get("new_best"),
                      within_noise=answer.get("within_noise"), baseline=answer.get("baseline"),
                      source=answer.get("source"), repeat_of=answer.get("repeat_of"),
                      confirmation=(answer.get("confirmation") or {}).get("state"),
                      best=answer.get("best"), change_pct=answer.get("change_pct"),
                      runs_since_best=answer.get("runs_since_best"), noise=answer.get("noise"))
        for warning in answer.get("warnings", []):
            lane.emit("warning", where="ledger", message=warning)
        answer.pop("row", None)
        if notes:  # what the engine did before the row counted (check, confirmation), in words
            answer = {"notes": notes, **answer}
        return ToolAnswer(json.dumps(tidy_numbers(answer), indent=1, default=str))

    async def _checked(self, run_id: str, status: str, description: str, notes: list[str]) -> tuple[str, str]:
        """Run check_command on a would-be keep; a failing check makes it a discard."""
        lane, workspace = self.lane, self.workspace
        info = read_run_info(workspace.runs_dir(lane.name) / run_id)
        if info.get("status") != "ok" or not info.get("commit") or info.get("dirty"):
            return status, description  # not a measured keep: record_run says why
        frontier, _ = await asyncio.to_thread(record.lane_frontier, workspace, lane.name)
        baseline_commit = None
        if frontier.baseline_run:
            rows, _ = await asyncio.to_thread(record.read_ledger, workspace.ledger_path(lane.name),
                                              self.experiment.metric)
            baseline_commit = next((r["commit"] for r in rows if r["run_id"] == frontier.baseline_run), None)
        passed, text = await run_check(lane, run_id, info["commit"], baseline_commit)
        notes.append(text)
        if passed:
            return status, description
        notes.append(f"run {run_id} is recorded as discard: its correctness check failed")
        return "discard", f"{description} [check_command failed]"

    async def lane_status(self, args: dict[str, Any]) -> ToolAnswer:
        summary = await in_thread(record.lane_summary, self.workspace, self.lane.name)
        snapshot = self.lane.snapshot().to_dict()
        summary["lane"] = {k: snapshot[k] for k in ("name", "state", "counters", "next_injection")}
        return ToolAnswer(json.dumps(tidy_numbers(summary), indent=1, default=str))
