"""The lane's in-process MCP tool server: run_benchmark, record_run, lane_status.

The agent reports through these tools so the engine, not the model, writes the ledger,
keeps a ref to every recorded commit, and runs long benchmarks under its own timeout.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from claude_agent_sdk import create_sdk_mcp_server, tool

from autoresearch_tui.engine.core.ledger import STATUSES
from autoresearch_tui.engine.runs import record
from autoresearch_tui.engine.runs.benchmark import run_benchmark
from autoresearch_tui.engine.core.policy import LedgerView
from autoresearch_tui.engine.core.tools import LANE_STATUS, RECORD_RUN, RUN_BENCHMARK, TOOL_NAMES, TOOL_SERVER_NAME

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane


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


def frontier_view(workspace, lane: str) -> LedgerView:
    frontier, _ = record.lane_frontier(workspace, lane)
    return LedgerView(total_runs=frontier.runs, runs_since_best=frontier.runs_since_best)


def _text(text: str, *, error: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if error:
        answer["is_error"] = True
    return answer


def build_tool_server(lane: "Lane") -> tuple[Any, tuple[str, ...]]:
    workspace = lane.workspace
    experiment = lane.config.experiment

    @tool(RUN_BENCHMARK, f"Run the benchmark (`{experiment.bench_command}`) in your fork under the "
          f"engine's timeout ({experiment.run_timeout_s:g}s) and get its summary. Use this instead of "
          "running the benchmark through Bash.", RUN_BENCHMARK_SCHEMA)
    async def run_benchmark_tool(args: dict[str, Any]) -> dict[str, Any]:
        description = str(args.get("description", "")).strip()
        run_id, run_dir = await asyncio.to_thread(record.allocate_run, workspace, lane.name)
        lane.emit("run_started", run_id=run_id, run_dir=str(run_dir), description=description,
                  args=str(args.get("args", "")))
        lane.benchmark_running = True
        try:
            result = await run_benchmark(
                experiment.bench_command,
                cwd=workspace.fork_dir(lane.name),
                run_id=run_id,
                run_dir=run_dir,
                env=lane.agent_env(),
                timeout_s=experiment.run_timeout_s,
                hang_timeout_s=experiment.hang_timeout_s,
                args=str(args.get("args", "")),
                on_output=lambda text: lane.emit("run_output", run_id=run_id, text=text),
                should_stop=lambda: lane.state in ("stopping", "stopped"),
            )
        finally:
            lane.benchmark_running = False
        lane.emit("run_finished", **{k: v for k, v in result.to_dict().items() if k != "log_tail"},
                  description=description)
        for warning in result.warnings:
            lane.emit("warning", where="metrics", message=warning, run_id=run_id)
        return _text(result.for_agent(), error=result.status != "ok")

    @tool(RECORD_RUN, "Record a finished run in the lane's ledger (results.tsv) for the commit at "
          "your fork's HEAD: status keep, discard, crash or inconclusive. Answers with the frontier.",
          RECORD_RUN_SCHEMA)
    async def record_run_tool(args: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await asyncio.to_thread(
                record.record_run, workspace, lane.name, args.get("status", ""),
                args.get("description", ""), args.get("metric"), args.get("run_dir"))
        except record.LedgerError as exc:
            lane.emit("warning", where="record_run", message=str(exc))
            return _text(f"record_run refused: {exc}", error=True)
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
        return _text(json.dumps(answer, indent=1, default=str))

    @tool(LANE_STATUS, "The lane's frontier (baseline, best, noise, runs since the last new best), "
          "its last runs, and what the engine has scheduled.", {"type": "object", "properties": {}})
    async def lane_status_tool(args: dict[str, Any]) -> dict[str, Any]:
        summary = await asyncio.to_thread(record.lane_summary, workspace, lane.name)
        snapshot = lane.snapshot()
        summary["lane"] = {k: snapshot[k] for k in ("name", "state", "counters", "next_injection")}
        return _text(json.dumps(summary, indent=1, default=str))

    server = create_sdk_mcp_server(TOOL_SERVER_NAME, "1.0.0",
                                   tools=[run_benchmark_tool, record_run_tool, lane_status_tool])
    return server, TOOL_NAMES
