"""The Codex adapter of a lane: one `codex app-server` process (OpenAI's Codex CLI).

Why the app-server (JSON-RPC over stdio) and not `codex exec --json` or a Python SDK: it is
the one that gives turn-level control (turn/start, turn/steer, turn/interrupt), resume by
thread id in any process (thread/resume), and streamed events for every item, every
request's token usage and every compaction; `exec` starts a process per turn, can only be
stopped by killing it and reports no compaction at all (docs/architecture.md, "Codex lanes").

The engine owns the turn boundary: when a Codex turn completes, the lane's policy decides
(`Lane.decide_stop`, the very method the Claude adapter's Stop hook calls), and a blocked stop
becomes the next turn/start with the continue or retrospective text, so blocked stops,
retrospectives and the runaway guard count the same way for both agents. After each tool
item the lane's `after_tool_use()` text (messages, scheduled re-injection) is steered into the
running turn; after each `contextCompaction` item the program, the lane's state and its
hypothesis list are. The engine's tools reach Codex as the MCP server "autoresearch"
(engine/agent/codex_tools.py). Writes are confined by Codex's workspace-write sandbox; the
engine checks the file changes Codex reports (a command the sandbox refused reports nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoresearch_tui.engine.agent import codex_home
from autoresearch_tui.engine.agent.codex_appserver import AppServer, AppServerClosed, RpcError
from autoresearch_tui.engine.agent.codex_home import HomeSettings, LanePaths
from autoresearch_tui.engine.agent.codex_tools import PROXY_PATH, ToolSocketServer, socket_path_for
from autoresearch_tui.engine.agent.processes import pdeathsig_prefix
from autoresearch_tui.engine.agent.tools import LaneTools
from autoresearch_tui.engine.core.recent import RecentIds
from autoresearch_tui.engine.core.tools import TOOL_SERVER_NAME, tool_id

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane

log = logging.getLogger(__name__)

TOOL_OUTPUT_EVENT_LIMIT = 64 * 1024
CLIENT_NAME = "autoresearch-tui"
USAGE_FIELDS = ("inputTokens", "cachedInputTokens", "outputTokens")
TOOL_ITEMS = ("commandExecution", "mcpToolCall", "fileChange")
REPORTED_CALLS = 4096
"""Tool calls Codex reported as items, remembered (at least) until their output is read in
the rollout file, so they are not shown twice. A call is forgotten once its output line has
been read; the bound is for calls whose lines never appear, over a week-long thread."""
SANDBOX_REFUSAL = "Read-only file system"
PATCH_FILE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$", re.MULTILINE)
INVALID_REQUEST = -32600
"""thread/resume's error for a thread with no rollout (or a malformed id)."""
QUIET = frozenset({"item/agentMessage/delta", "item/reasoning/summaryTextDelta", "item/reasoning/textDelta",
                   "item/commandExecution/outputDelta", "account/rateLimits/updated", "thread/status/changed",
                   "thread/started", "mcpServer/startupStatus/updated", "remoteControl/status/changed",
                   "item/fileChange/outputDelta", "turn/diff/updated", "turn/plan/updated"})


ERROR_KINDS = {"internalServerError": "server error, HTTP 5xx", "contextWindowExceeded": "context window exceeded",
               "usageLimitExceeded": "usage limit reached", "unauthorized": "unauthorized: check the credentials"}


class CodexTurnFailed(RuntimeError):
    """A Codex turn ended with status "failed" (an API error after Codex's own retries)."""


def codex_session(lane: "Lane", provider: dict[str, Any] | None = None) -> "CodexSession":
    return CodexSession(lane, provider=provider)


class CodexSession:
    """One app-server for a lane; `async with` opens it (starting or resuming the thread)."""

    def __init__(self, lane: "Lane", *, provider: dict[str, Any] | None = None):
        self.lane = lane
        self.provider = provider
        self.server: AppServer | None = None
        self.tools: ToolSocketServer | None = None
        self.thread_id: str | None = None
        self._turn_id: str | None = None
        self._carry: list[str] = []          # steered text the turn ended before taking
        self._usage_total: dict[str, int] | None = None
        self._usage_baseline = False          # after a resume, the replayed totals are not new spend
        self._compacting = False
        self._budget_hit = False
        self._last_message: str | None = None
        self._budget_task: asyncio.Task | None = None
        self._rollout: Path | None = None
        self._rollout_offset = 0
        self._reported_calls = RecentIds(REPORTED_CALLS)
        self._thread_lost = False

    # ----------------------------------------------------------------- open / close
    @property
    def paths(self) -> LanePaths:
        lane, workspace = self.lane, self.lane.workspace
        return LanePaths(lane_dir=workspace.lane_dir(lane.name), fork=workspace.fork_dir(lane.name),
                         runs=workspace.runs_dir(lane.name), retrospectives=workspace.retrospectives_dir(lane.name))

    async def __aenter__(self) -> "CodexSession":
        try:
            await self._open()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._close()

    async def _open(self) -> None:
        lane, settings = self.lane, self.lane.config.agent.codex
        env = lane.agent_env()
        binary = await asyncio.to_thread(codex_home.find_codex_binary, settings.binary, env, lane.workspace.root)
        version = await asyncio.to_thread(codex_home.binary_version, binary)
        if version and version != codex_home.PINNED_VERSION:
            lane.emit("warning", where="codex", message=f"{binary} is codex {version}; this engine was tested "
                      f"with the pinned {codex_home.PINNED_VERSION}")
        paths = self.paths
        if lane.with_tools:
            self.tools = await ToolSocketServer(LaneTools(lane).specs(), socket_path_for(paths.lane_dir)).start()
        home_settings = HomeSettings(
            model=settings.model, reasoning_effort=settings.reasoning_effort, user_config=settings.config,
            provider=self.provider, network_access=settings.sandbox_network,
            mcp_command=[sys.executable, str(PROXY_PATH), str(self.tools.path)] if self.tools else [])
        home = await asyncio.to_thread(codex_home.write_home, paths, home_settings, env)
        env = {**env, "CODEX_HOME": str(home), "TMPDIR": str(paths.tmp)}
        argv = [*pdeathsig_prefix(), str(binary), "app-server"]  # dies with the engine, even on kill -9
        self.server = await AppServer(argv, env=env, cwd=str(paths.fork), on_stderr=self._on_stderr).start()
        await self.server.request("initialize", {
            "clientInfo": {"name": CLIENT_NAME, "version": "1"},
            "capabilities": {"experimentalApi": True}})  # thread/backgroundTerminals/clean
        await self.server.notify("initialized")
        await self._open_thread()

    def _thread_params(self) -> dict[str, Any]:
        # Resume falls back to config defaults for what it is not given: pass it all every time.
        return {"cwd": str(self.paths.fork), "sandbox": "workspace-write", "approvalPolicy": "never",
                "developerInstructions": self._developer_instructions()}

    async def _open_thread(self) -> None:
        lane, server = self.lane, self.server
        assert server is not None
        previous = lane.record.session_id
        result = None
        if previous:
            try:
                result = await server.request("thread/resume", {"threadId": previous, **self._thread_params()})
                self._usage_baseline = True
            except RpcError as exc:
                if exc.code != INVALID_REQUEST:  # not "no rollout found": a failure to retry, not a lost thread
                    raise
                lane.emit("warning", where="codex", message=f"could not resume thread {previous} ({exc.message}): "
                          "starting a new thread; the fork, ledger and runs carry over")
                self._thread_lost = True
        if result is None:
            result = await server.request("thread/start", self._thread_params())
            self._usage_total = {name: 0 for name in USAGE_FIELDS}
        self.thread_id = result["thread"]["id"]
        path = result["thread"].get("path")
        if path:
            self._rollout = Path(path)
            with contextlib.suppress(OSError):
                self._rollout_offset = self._rollout.stat().st_size  # what is there was shown before
        lane.record.agent = "codex"
        lane.note_session(self.thread_id, announce=self.thread_id != previous)

    def _developer_instructions(self) -> str:
        paths = self.paths
        return (
            f"You run lane {self.lane.name} of an unattended autoresearch loop driven by autoresearch-tui. "
            f"The engine's tools are the MCP server `{TOOL_SERVER_NAME}`: run_benchmark measures your fork "
            "under the engine's timeout, record_run writes the ledger (only the engine writes results.tsv), "
            "lane_status shows the frontier. Your commands may write only your fork "
            f"{paths.fork} (commit there with git), {paths.runs} and {paths.retrospectives}; the rest of the "
            f"machine, /tmp included, is read-only (TMPDIR is {paths.tmp}). Never stop to ask: when a turn "
            "ends, the engine tells you how to go on.")

    async def _close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()
        tools, self.tools = self.tools, None
        if tools is not None:
            await tools.close()

    def _on_stderr(self, line: str) -> None:
        log.debug("lane %s codex: %s", self.lane.name, line)

    # ----------------------------------------------------------------- turns
    async def turn(self, prompt: str) -> None:
        """One lane turn: Codex turns until the policy lets the agent stop."""
        text: str | None = prompt
        if self._thread_lost:  # a new thread knows nothing yet: it starts like a new lane
            self._thread_lost = False
            text = f"{self.lane.start_prompt()}\n\n{prompt}"
        while text is not None:
            status, error = await self._codex_turn(text)
            if status == "interrupted":
                if self._budget_hit:  # the cap was reached mid-turn: let the policy record the stop
                    self.lane.decide_stop(self._last_message)
                return
            if status == "failed":
                raise CodexTurnFailed(f"the Codex turn failed: {error}")
            text = self.lane.decide_stop(self._last_message)

    async def _codex_turn(self, text: str) -> tuple[str, str]:
        server = self.server
        assert server is not None and self.thread_id, "the session is not open"
        if self._carry:  # steered text that arrived after its turn had ended
            text = "\n\n".join([*self._carry, text])
            self._carry = []
        self._last_message = None
        self._budget_hit = False
        result = await server.request("turn/start", {"threadId": self.thread_id,
                                                     "input": [{"type": "text", "text": text}]})
        self._turn_id = result["turn"]["id"]
        error = ""
        try:
            while True:
                message = await server.next_notification()
                method, params = message.get("method", ""), message.get("params") or {}
                if method == "turn/completed":
                    turn = params.get("turn") or {}
                    if turn.get("id") != self._turn_id:
                        continue
                    if turn.get("error"):
                        error = _error_text(turn["error"]) or error
                    return str(turn.get("status", "completed")), error or "no error detail"
                if method == "error" and not params.get("willRetry"):
                    error = _error_text(params.get("error")) or error
                await self._on_notification(method, params, message)
        finally:
            self._turn_id = None
            await asyncio.to_thread(self._show_unreported_calls)
            self.lane.save()

    async def interrupt(self) -> None:
        server, turn_id = self.server, self._turn_id
        if server is None or turn_id is None:
            return
        with contextlib.suppress(RpcError, AppServerClosed):
            await server.request("turn/interrupt", {"threadId": self.thread_id, "turnId": turn_id}, timeout=10)
        # An interrupted turn leaves its commands running: end them (a hung benchmark holds a chip).
        with contextlib.suppress(RpcError, AppServerClosed):
            await server.request("thread/backgroundTerminals/clean", {"threadId": self.thread_id}, timeout=10)

    async def _steer(self, text: str) -> None:
        """Into the running turn; when it has just ended, into the next turn's prompt."""
        server = self.server
        if server is None or self._turn_id is None:
            self._carry.append(text)
            return
        try:
            await server.request("turn/steer", {"threadId": self.thread_id, "expectedTurnId": self._turn_id,
                                                "input": [{"type": "text", "text": text}]}, timeout=30)
        except RpcError:  # "no active turn to steer"
            self._carry.append(text)

    # ----------------------------------------------------------------- notifications → events
    async def _on_notification(self, method: str, params: dict[str, Any], message: dict[str, Any]) -> None:
        lane = self.lane
        if method == "turn/started":
            self._usage_baseline = False
        elif method == "item/started":
            self._on_item_started(params.get("item") or {})
        elif method == "item/completed":
            await self._on_item_completed(params.get("item") or {})
        elif method == "thread/tokenUsage/updated":
            await self._on_usage((params.get("tokenUsage") or {}).get("total") or {})
        elif method == "error":
            detail = _error_text(params.get("error"))
            if params.get("willRetry"):
                lane.emit("warning", where="api", message=f"Codex retries: {detail}")
            else:
                lane.emit("error", where="api", message=detail)
        elif method == "warning":
            lane.emit("warning", where="codex", message=str(params.get("message", params))[:500])
        elif message.get("server_request"):
            lane.emit("warning", where="codex", message=f"Codex asked for {method}; declined (nobody approves "
                      "in an unattended lane)")
        elif method not in QUIET:
            log.debug("lane %s codex notification %s", lane.name, method)

    def _on_item_started(self, item: dict[str, Any]) -> None:
        kind, call_id = item.get("type"), str(item.get("id", ""))
        lane = self.lane
        if kind in TOOL_ITEMS:
            self._reported_calls.add(call_id)
        if kind == "commandExecution":
            lane.note_tool_call("exec_command", call_id, {"command": item.get("command", ""), "cwd": item.get("cwd")})
        elif kind == "mcpToolCall":
            server, tool = item.get("server", ""), item.get("tool", "")
            name = tool_id(tool) if server == TOOL_SERVER_NAME else f"mcp__{server}__{tool}"
            lane.note_tool_call(name, call_id, item.get("arguments") or {})
        elif kind == "fileChange":
            lane.note_tool_call("apply_patch", call_id, {"changes": _change_paths(item)})
        elif kind == "contextCompaction":
            self._compacting = True

    async def _on_item_completed(self, item: dict[str, Any]) -> None:
        kind, lane = item.get("type"), self.lane
        if kind == "agentMessage":
            text = str(item.get("text") or "")
            if text.strip():
                self._last_message = text
                lane.note_assistant_text(text)
        elif kind == "reasoning":
            summary = "\n".join(str(part) for part in item.get("summary") or [] if part)
            if summary.strip():
                lane.emit("assistant_text", text=summary, thinking=True)
        elif kind in TOOL_ITEMS:
            self._reported_calls.add(str(item.get("id", "")))
            self._on_tool_result(kind, item)
            context = lane.after_tool_use()
            if context:
                await self._steer(context)
        elif kind == "contextCompaction":
            self._compacting = False
            lane.note_compaction()
            # Codex's summary is in the model's words; the engine's facts go back in right away.
            context = lane.context_due()
            if context:
                await self._steer(context)

    def _on_tool_result(self, kind: str, item: dict[str, Any]) -> None:
        call_id = str(item.get("id", ""))
        status = item.get("status")
        if kind == "commandExecution":
            output = str(item.get("aggregatedOutput") or "")
            exit_code = item.get("exitCode")
            failed = status != "completed" or (exit_code not in (0, None))
            if exit_code not in (0, None):
                output += f"\n[exit code {exit_code}]"
        elif kind == "mcpToolCall":
            result = item.get("result") or {}
            output = "\n".join(str(part.get("text", "")) for part in result.get("content") or []
                               if isinstance(part, dict)) or _error_text(item.get("error"))
            failed = status != "completed" or bool(result.get("isError")) or bool(item.get("error"))
        else:  # fileChange
            output = "\n".join(f"{_change_kind(change)} {change.get('path')}"
                               for change in item.get("changes") or [] if isinstance(change, dict))
            failed = status != "completed"
            self._check_changes(item, applied=not failed)
        self._emit_result(call_id, failed, output, "exec_command" if kind == "commandExecution" else kind)

    def _emit_result(self, call_id: str, failed: bool, output: str, tool: str, **extra: Any) -> None:
        lane = self.lane
        if len(output) > TOOL_OUTPUT_EVENT_LIMIT:
            output = output[:TOOL_OUTPUT_EVENT_LIMIT] + f"\n… [{len(output) - TOOL_OUTPUT_EVENT_LIMIT} more characters]"
        lane.note_tool_result(call_id, output, is_error=failed, **extra)
        if tool == "exec_command":
            for line in output.splitlines():
                if SANDBOX_REFUSAL in line:
                    lane.emit("tool_denied", tool=tool, reason=f"Codex's sandbox refused a write: {line[:300]}")
                    break

    def _show_unreported_calls(self) -> None:
        """Tool calls Codex ran without an item (a patch it refused, a command its sandbox
        denied) are only in its rollout file: show them too, so a refused write is visible."""
        if self._rollout is None:
            return
        try:
            with open(self._rollout, "rb") as handle:
                handle.seek(self._rollout_offset)
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a half-written last line is read next time
        self._rollout_offset += end
        calls: dict[str, tuple[str, Any]] = {}
        for raw in data[:end].splitlines():
            try:
                payload = json.loads(raw).get("payload") or {}
            except (ValueError, AttributeError):
                continue
            kind, call_id = payload.get("type"), str(payload.get("call_id", ""))
            if not call_id:
                continue
            if call_id in self._reported_calls:
                if kind in ("function_call_output", "custom_tool_call_output"):
                    self._reported_calls.discard(call_id)  # both its lines are behind the offset now
                continue
            if kind in ("function_call", "custom_tool_call") and not payload.get("namespace"):
                calls[call_id] = (str(payload.get("name", "?")), payload.get("arguments", payload.get("input")))
            elif kind in ("function_call_output", "custom_tool_call_output") and call_id in calls:
                self._show_unreported(call_id, *calls.pop(call_id), str(payload.get("output", "")))

    def _show_unreported(self, call_id: str, tool: str, arguments: Any, output: str) -> None:
        lane = self.lane
        self._reported_calls.add(call_id)
        if isinstance(arguments, str) and tool != "apply_patch":
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        shown = {"patch": arguments} if tool == "apply_patch" else arguments
        lane.note_tool_call(tool, call_id, shown, unreported=True)
        refused = output.startswith("patch rejected") or SANDBOX_REFUSAL in output
        self._emit_result(call_id, refused or "exited with code 0" not in output, output, tool, unreported=True)
        if tool == "apply_patch" and isinstance(arguments, str):
            for path in PATCH_FILE.findall(arguments):
                lane.check_write("apply_patch", path.strip(), self.paths.fork)  # emits tool_denied outside the lane

    def _check_changes(self, item: dict[str, Any], *, applied: bool) -> None:
        """The write guard on the changes Codex reports (its sandbox confines the commands)."""
        lane, fork = self.lane, self.paths.fork
        for path in _change_paths(item):
            reason = lane.check_write("apply_patch", path, fork)
            if reason and applied:  # the sandbox should have refused it: say so loudly
                lane.emit("error", where="write_guard", message=f"Codex reports a change the write guard "
                          f"refuses: {path}")

    async def _on_usage(self, total: dict[str, Any]) -> None:
        counts = {name: int(total.get(name) or 0) for name in USAGE_FIELDS}
        if self._usage_baseline or self._usage_total is None:  # replayed by thread/resume
            self._usage_total = counts
            return
        delta = {name: max(0, counts[name] - self._usage_total[name]) for name in USAGE_FIELDS}
        self._usage_total = counts
        if not any(delta.values()):
            return  # the same totals again (Codex repeats them around a compaction)
        lane = self.lane
        if not self._compacting:
            lane.note_assistant_turn()  # one model response
        lane.note_tokens(delta["inputTokens"], delta["cachedInputTokens"], delta["outputTokens"])
        prices = lane.config.agent.codex.usd_per_mtok
        if prices is not None:  # a Codex turn can last hours: count each request as it comes
            cached = min(delta["cachedInputTokens"], delta["inputTokens"])
            cached_price = prices.input if prices.cached_input is None else prices.cached_input
            lane.note_cost(((delta["inputTokens"] - cached) * prices.input + cached * cached_price
                            + delta["outputTokens"] * prices.output) / 1e6)
        lane.save()
        if not self._budget_hit and lane.budget_spent():
            self._budget_hit = True
            lane.emit("warning", where="budget", message="the lane's max_budget_usd is spent: interrupting the turn")
            self._budget_task = asyncio.get_running_loop().create_task(self.interrupt())


def _error_text(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, dict):
        parts = [str(error.get("message") or "")]
        info = error.get("codexErrorInfo")
        if isinstance(info, str):
            parts.append(f"({ERROR_KINDS.get(info, info)})")
        elif isinstance(info, dict) and info:
            kind, detail = next(iter(info.items()))
            status = detail.get("httpStatusCode") if isinstance(detail, dict) else None
            parts.append(f"({kind}" + (f", HTTP {status})" if status else ")"))
        if error.get("additionalDetails"):
            parts.append(f"— {error['additionalDetails']}")
        return " ".join(p for p in parts if p)[:500]
    return str(error)[:500]


def _change_paths(item: dict[str, Any]) -> list[str]:
    return [str(change["path"]) for change in item.get("changes") or []
            if isinstance(change, dict) and change.get("path")]


def _change_kind(change: dict[str, Any]) -> str:
    kind = change.get("kind")
    return str(kind.get("type", "update") if isinstance(kind, dict) else kind or "update")
