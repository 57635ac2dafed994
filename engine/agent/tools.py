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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from autoresearch_tui.engine.core.events import tidy_numbers
from autoresearch_tui.engine.core.ledger import STATUSES
from autoresearch_tui.engine.core.lane_state import STOPPED, STOPPING
from autoresearch_tui.engine.core.tools import LANE_STATUS, RECORD_RUN, RUN_BENCHMARK
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.runs.measure import measure_run

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane

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
        "metric": {"type": "number", "description": "Only if the run wrote no summary record."},
        "run_dir": {"type": "string", "description": "The run_dir run_benchmark returned."},
    },
    "required": ["status", "description"],
}


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
                     "Record a finished run in the lane's ledger (results.tsv) for the commit at your "
                     "fork's HEAD: status keep, discard, crash or inconclusive. Answers with the frontier.",
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
                allocate=lambda: record.allocate_run(workspace, lane.name),
                emit=lane.emit,
                description=str(args.get("description", "")).strip(),
                args=str(args.get("args", "")),
                should_stop=lambda: lane.state in (STOPPING, STOPPED),
            )
        finally:
            lane.benchmark_running = False
        return ToolAnswer(measured.for_agent(), is_error=measured.status != "ok")

    async def record_run(self, args: dict[str, Any]) -> ToolAnswer:
        lane = self.lane
        try:
            answer = await asyncio.to_thread(
                record.record_run, self.workspace, lane.name, args.get("status", ""),
                args.get("description", ""), args.get("metric"), args.get("run_dir"))
        except record.LedgerError as exc:
            lane.emit("warning", where="record_run", message=str(exc))
            return ToolAnswer(f"record_run refused: {exc}", is_error=True)
        if not answer.get("already_recorded"):
            row = answer.get("row", {})
            lane.emit("run_recorded", run_id=answer["run_id"], status=answer["status"],
                      commit=answer.get("commit"), metric_value=answer.get("metric"),
                      description=row.get("description", ""), new_best=answer.get("new_best"),
                      within_noise=answer.get("within_noise"), baseline=answer.get("baseline"),
                      best=answer.get("best"), change_pct=answer.get("change_pct"),
                      runs_since_best=answer.get("runs_since_best"), noise=answer.get("noise"))
        for warning in answer.get("warnings", []):
            lane.emit("warning", where="ledger", message=warning)
        answer.pop("row", None)
        return ToolAnswer(json.dumps(tidy_numbers(answer), indent=1, default=str))

    async def lane_status(self, args: dict[str, Any]) -> ToolAnswer:
        summary = await asyncio.to_thread(record.lane_summary, self.workspace, self.lane.name)
        snapshot = self.lane.snapshot().to_dict()
        summary["lane"] = {k: snapshot[k] for k in ("name", "state", "counters", "next_injection")}
        return ToolAnswer(json.dumps(tidy_numbers(summary), indent=1, default=str))
