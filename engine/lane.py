"""One lane: a Claude agent session in its own fork, guarded by the loop policy.

The lane owns a `ClaudeSDKClient` (which runs the bundled Claude CLI as a subprocess),
answers the CLI's hooks (Stop, PostToolUse, PreToolUse, PreCompact) from the policy,
streams every SDK message into events, and keeps lane.json current so a restarted engine
resumes the same session with the same counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    HookMatcher,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from engine import policy
from engine.config import Config
from engine.orphans import guarded_cli_path
from engine.events import Event, EventLog, make_event
from engine.skills import condensed_program, lane_variables, loop_program, render_skill
from engine.workspace import Workspace, atomic_write_json, read_json

log = logging.getLogger(__name__)

# Tools whose file argument the write guard checks (Bash cannot be confined this way).
GUARDED_WRITE_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path",
                       "NotebookEdit": "notebook_path"}
TOOL_SERVER_NAME = "autoresearch"
TOOL_OUTPUT_EVENT_LIMIT = 64 * 1024

# Lane states shown to the user.
STARTING, RUNNING, PAUSING, PAUSED = "starting", "running", "pausing", "paused"
STOPPING, STOPPED, NEEDS_ATTENTION = "stopping", "stopped", "needs_attention"
IDLE_STATES = (PAUSED, STOPPED, NEEDS_ATTENTION)


@dataclass
class LaneCounters:
    turns: int = 0
    tool_uses: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    consecutive_failures: int = 0
    restarts: int = 0


@dataclass
class LaneRecord:
    """What lane.json holds."""

    name: str
    state: str = STARTING
    session_id: str | None = None
    counters: LaneCounters = field(default_factory=LaneCounters)
    policy: policy.PolicyState = field(default_factory=policy.PolicyState)
    needs_attention_reason: str = ""
    last_activity: float = 0.0
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "session_id": self.session_id,
            "counters": vars(self.counters).copy(), "policy": self.policy.to_dict(),
            "needs_attention_reason": self.needs_attention_reason,
            "last_activity": self.last_activity, "created_at": self.created_at,
        }

    @classmethod
    def load(cls, path: Path, name: str) -> "LaneRecord":
        data = read_json(path, default=None) or {}
        counters = LaneCounters(**{k: v for k, v in data.get("counters", {}).items()
                                   if k in LaneCounters.__dataclass_fields__})
        return cls(
            name=name,
            state=data.get("state", STARTING),
            session_id=data.get("session_id"),
            counters=counters,
            policy=policy.PolicyState.from_dict(data.get("policy")),
            needs_attention_reason=data.get("needs_attention_reason", ""),
            last_activity=data.get("last_activity", 0.0),
            created_at=data.get("created_at", time.time()),
        )


class Lane:
    def __init__(
        self,
        name: str,
        config: Config,
        workspace: Workspace,
        *,
        publish: Callable[[Event], None],
        base_env: dict[str, str] | None = None,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        tool_server_factory: Callable[["Lane"], Any] | None = None,
        ledger_view: Callable[[str], policy.LedgerView] | None = None,
    ):
        self.name = name
        self.config = config
        self.workspace = workspace
        self.settings = policy.LoopSettings.from_object(config.loop)
        self._publish = publish
        self._base_env = dict(base_env or {})
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._tool_server_factory = tool_server_factory
        self._ledger_view = ledger_view or (lambda lane: policy.LedgerView())

        workspace.lane_dir(name).mkdir(parents=True, exist_ok=True)
        self.record = LaneRecord.load(workspace.lane_json(name), name)
        self.events = EventLog(workspace.events_path(name))
        self.variables = lane_variables(config, workspace, name)
        self.program = loop_program(config, self.variables)

        self._client: ClaudeSDKClient | None = None
        self._wake = asyncio.Event()
        self._pending_messages: list[str] = []
        self._last_assistant_text = ""
        self._seen_message_ids: set[str] = set()
        self._task: asyncio.Task | None = None
        self._in_turn = False
        self._why_continue = "resumed"
        self.benchmark_running = False
        self._interrupted = False

    # ----------------------------------------------------------------- events & state
    @property
    def state(self) -> str:
        return self.record.state

    def emit(self, type: str, **fields: Any) -> Event:
        event = self.events.append(make_event(self.name, type, **fields))
        self.record.last_activity = event["ts"]
        self._publish(event)
        return event

    def log_event(self, event: Event) -> None:
        """Log and publish an event made elsewhere (metrics watcher, benchmark runner)."""
        self._publish(self.events.append(event))

    def set_state(self, state: str, reason: str = "") -> None:
        if state == self.record.state:
            return
        previous = self.record.state
        self.record.state = state
        if state == NEEDS_ATTENTION:
            self.record.needs_attention_reason = reason
        elif previous == NEEDS_ATTENTION:
            self.record.needs_attention_reason = ""
        self.save()
        self.emit("lane_state", state=state, previous=previous, reason=reason)

    def save(self) -> None:
        atomic_write_json(self.workspace.lane_json(self.name), self.record.to_dict())

    def snapshot(self) -> dict[str, Any]:
        data = self.record.to_dict()
        data["next_injection"] = policy.next_injection(self.record.policy, self.settings, time.time())
        data["fork"] = str(self.workspace.fork_dir(self.name))
        data["focus"] = self.config.lane(self.name).focus if self._configured() else ""
        return data

    def _configured(self) -> bool:
        return any(lane.name == self.name for lane in self.config.lanes)

    # ----------------------------------------------------------------- control (engine API)
    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self._run(), name=f"lane-{self.name}")
        return self._task

    def pause(self) -> str:
        if self.state in (PAUSED, STOPPED, STOPPING):
            return f"lane {self.name} is already {self.state}"
        if self._in_turn:
            self.set_state(PAUSING, "paused by the user")
            return f"lane {self.name} pausing: the agent may stop at the end of its current step"
        self.set_state(PAUSED, "paused by the user")
        return f"lane {self.name} paused"

    def resume(self) -> str:
        if self.state in (RUNNING, STARTING):
            return f"lane {self.name} is already running"
        if self.state == STOPPING:
            return f"lane {self.name} is stopping; resume it once it has stopped"
        self.record.counters.consecutive_failures = 0
        self.set_state(RUNNING, "resumed by the user")
        self._wake.set()
        if self._task is None or self._task.done():  # stopped, or never got a session going
            self.start()
        return f"lane {self.name} resumed"

    def request_retrospective(self) -> str:
        self.record.policy.retrospective_requested = True
        self.save()
        self.emit("retrospective", phase="requested", reason="requested by the user")
        if self.state in IDLE_STATES and self.state != STOPPED:
            self.resume()
        return f"retrospective queued for lane {self.name}: delivered at the agent's next step"

    def send_message(self, text: str) -> str:
        text = text.strip()
        if not text:
            return "empty message not sent"
        self._pending_messages.append(text)
        self.emit("user_message", text=text, delivery="queued")
        if self.state in IDLE_STATES and self.state != STOPPED:
            self.resume()
        return f"message queued for lane {self.name}"

    def idle_seconds(self, now: float | None = None) -> float:
        return (now or time.time()) - (self.record.last_activity or self.record.created_at)

    async def nudge(self, idle_s: float) -> None:
        """A running lane went silent: interrupt the stuck turn and continue the loop."""
        idle = f"{idle_s / 60:.0f} minutes" if idle_s >= 90 else f"{idle_s:.0f} s"
        reason = f"no activity for {idle} while running"
        self._why_continue = f"nudged: {reason}"
        self.emit("injection", kind="nudge", reason=reason)
        client = self._client
        if client is not None and self._in_turn:
            self._interrupted = True  # the error result that follows is ours, not a failure
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.interrupt(), timeout=10)

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop now: interrupt the agent's turn and close the session (resumable later).

        The session is closed by leaving `async with ClaudeSDKClient` normally: cancelling
        the task instead can abort the SDK's close before it kills the CLI, leaving an
        orphaned agent working (and spending) on its own. Whatever still runs in the
        lane's folder afterwards is terminated.
        """
        from engine.orphans import kill_orphans

        if self.state != STOPPED:
            self.set_state(STOPPING, "stop requested")
        self._wake.set()
        client = self._client
        if client is not None and self._in_turn:
            self._interrupted = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.interrupt(), timeout=5)
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self.emit("warning", where="stop", message=f"the session did not close within {timeout:.0f}s")
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=5)
        leftovers = await asyncio.to_thread(kill_orphans, self.workspace.lane_dir(self.name))
        if leftovers:
            self.emit("warning", where="stop", message="terminated processes left in the lane: "
                      + "; ".join(leftovers))
        self.set_state(STOPPED, "stopped")
        self.save()
        self.events.close()

    # ----------------------------------------------------------------- the session loop
    async def _run(self) -> None:
        try:
            await self._prepare_fork()
        except Exception as exc:  # a lane that cannot start must not take the engine down
            self.emit("error", where="fork", message=str(exc))
            self.set_state(NEEDS_ATTENTION, f"could not create the fork: {exc}")
            return
        resumed = self.record.session_id is not None
        # A pause (or an unresolved needs_attention) survives restarts; anything else runs.
        keep = self.state == PAUSED or (resumed and self.state == NEEDS_ATTENTION)
        if not keep:
            self.set_state(RUNNING, "resuming session" if resumed else "starting session")
        prompt = self._resume_prompt() if resumed else self._start_prompt()
        while self.state not in (STOPPING, STOPPED):
            try:
                await self._session(prompt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.state in (STOPPING, STOPPED):
                    break
                await self._after_failure(exc)
                prompt = self._continue_prompt("the agent process failed and was restarted")

    async def _prepare_fork(self) -> None:
        from engine.forks import prepare_fork  # git work: off the event loop
        from engine.orphans import kill_orphans

        stopped = await asyncio.to_thread(kill_orphans, self.workspace.lane_dir(self.name))
        if stopped:
            self.emit("warning", where="restart",
                      message="stopped processes a previous engine left in this lane: " + "; ".join(stopped))
        info = await asyncio.to_thread(prepare_fork, self.workspace, self.name)
        if info.created:
            self.emit("fork", path=str(info.path), branch=info.branch, linked=info.linked)
        for warning in info.warnings:
            self.emit("warning", where="fork", message=warning)

    async def _session(self, first_prompt: str) -> None:
        """One CLI process: turns until the lane stops. Paused lanes keep it open, so a
        resume continues the same conversation without starting a new process."""
        async with ClaudeSDKClient(options=self._options()) as client:
            self._client = client
            try:
                prompt: str | None = first_prompt
                while self.state not in (STOPPING, STOPPED):
                    if self.state in IDLE_STATES:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    if prompt is None:
                        prompt = (self._drain_messages_prompt() if self._pending_messages
                                  else self._continue_prompt(self._why_continue))
                    await self._turn(client, prompt)
                    prompt = None
                    # The turn ended: the policy let a stop through (pause, runaway, budget)
                    # or the CLI ended it on its own; a running lane simply continues.
                    if self.state == PAUSING:
                        self.set_state(PAUSED, "the agent stopped while pausing")
                    if not self._interrupted:  # a nudge already said why the lane goes on
                        self._why_continue = "resumed" if self.state in IDLE_STATES else "the turn ended"
            finally:
                self._client = None

    async def _turn(self, client: ClaudeSDKClient, prompt: str) -> None:
        self._in_turn = True
        self._interrupted = False
        self.emit("injection", kind="prompt", reason="turn started", text=prompt)
        try:
            await client.query(prompt)
            async for message in client.receive_response():
                self._on_message(message)
        finally:
            self._in_turn = False
            self.save()

    async def _after_failure(self, exc: Exception) -> None:
        counters = self.record.counters
        counters.failures += 1
        counters.consecutive_failures += 1
        counters.restarts += 1
        self.emit("error", where="session", message=_describe_exception(exc),
                  consecutive_failures=counters.consecutive_failures)
        if counters.consecutive_failures >= self.config.loop.max_failures:
            self.set_state(NEEDS_ATTENTION,
                           f"{counters.consecutive_failures} failures in a row: {_describe_exception(exc)}")
            return
        delay = min(self._backoff_max_s, self._backoff_base_s * 2 ** (counters.consecutive_failures - 1))
        self.emit("lane_state", state=self.state, previous=self.state,
                  reason=f"retrying in {delay:.1f}s (failure {counters.consecutive_failures})")
        self.save()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wait_for_stop(), timeout=delay)

    async def _wait_for_stop(self) -> None:
        while self.state not in (STOPPING, STOPPED):
            self._wake.clear()
            await self._wake.wait()

    # ----------------------------------------------------------------- SDK options & hooks
    def _options(self) -> ClaudeAgentOptions:
        agent = self.config.agent
        allowed = list(agent.allowed_tools)
        mcp_servers: dict[str, Any] = {}
        if self._tool_server_factory is not None:
            server, tool_names = self._tool_server_factory(self)
            mcp_servers[TOOL_SERVER_NAME] = server
            allowed += [f"mcp__{TOOL_SERVER_NAME}__{tool}" for tool in tool_names]
        return ClaudeAgentOptions(
            cwd=str(self.workspace.fork_dir(self.name)),
            env=self.agent_env(),
            permission_mode=agent.permission_mode,
            allowed_tools=allowed,
            model=agent.model or None,
            max_budget_usd=agent.max_budget_usd or None,
            resume=self.record.session_id,
            mcp_servers=mcp_servers,
            add_dirs=[str(self.workspace.lane_dir(self.name))],
            setting_sources=[],  # the lane's behaviour must not depend on user settings files
            hooks={
                "Stop": [HookMatcher(hooks=[self._on_stop])],
                "PostToolUse": [HookMatcher(hooks=[self._on_post_tool_use])],
                "PreToolUse": [HookMatcher(matcher="|".join(GUARDED_WRITE_TOOLS),
                                           hooks=[self._on_pre_tool_use])],
                "PreCompact": [HookMatcher(hooks=[self._on_pre_compact])],
            },
            stderr=self._on_cli_stderr,
            cli_path=guarded_cli_path(self.workspace.state_dir),
        )

    def agent_env(self) -> dict[str, str]:
        """The environment of the agent's CLI and of the benchmarks it runs."""
        timeout_ms = str(int(self.config.experiment.run_timeout_s * 1000))
        env = {
            **self._base_env,
            # Benchmarks the agent runs through Bash must not die at the CLI's 2-minute default.
            "BASH_DEFAULT_TIMEOUT_MS": timeout_ms,
            "BASH_MAX_TIMEOUT_MS": timeout_ms,
            "AUTORESEARCH_LANE": self.name,
            "AUTORESEARCH_LANE_DIR": str(self.workspace.lane_dir(self.name)),
            "AUTORESEARCH_RUNS_DIR": str(self.workspace.runs_dir(self.name)),
        }
        env.update(self.config.lane(self.name).env if self._configured() else {})
        return env

    def _on_cli_stderr(self, line: str) -> None:
        log.debug("lane %s cli: %s", self.name, line)

    async def _on_stop(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        last = input_data.get("last_assistant_message") or self._last_assistant_text
        spent = bool(self.config.agent.max_budget_usd) and (
            self.record.counters.cost_usd >= self.config.agent.max_budget_usd)
        view = self._safe_ledger_view()  # read once: the decision and the message share it
        decision = policy.decide_stop(
            self.record.policy,
            self.settings,
            policy.StopContext(
                lane_state=self.state,
                last_assistant_message=last if isinstance(last, str) else "",
                budget_spent=spent,
                ledger=view,
            ),
        )
        if not decision.blocks:
            self.emit("stop_allowed", kind=decision.kind, reason=decision.reason)
            if decision.needs_attention:
                self.set_state(NEEDS_ATTENTION, decision.reason)
            self.save()
            return {}
        message = self._block_message(decision, view)
        self.emit("stop_blocked", kind=decision.kind, reason=decision.reason,
                  stops_blocked=self.record.policy.stops_blocked, message=message)
        if decision.kind == "retrospective":
            self.emit("retrospective", phase="started", reason=decision.reason)
        self.save()
        return {"decision": "block", "reason": message}

    def _block_message(self, decision: policy.StopDecision, view: policy.LedgerView) -> str:
        messages = self._take_pending_messages()
        if decision.kind == "retrospective":
            body = render_skill("create-retrospective", self.variables)
            head = f"[autoresearch] Do not stop. Time for a retrospective ({decision.reason})."
        else:
            body = condensed_program(self.program)
            head = ("[autoresearch] Do not stop: the loop is still running and the user is away. "
                    "Continue with the next experiment now.")
        return "\n\n".join(filter(None, [head, messages, self._state_line(view), body]))

    def _state_line(self, view: policy.LedgerView | None = None) -> str:
        view = view or self._safe_ledger_view()
        counters = self.record.counters
        return (f"Lane {self.name}: {view.total_runs} runs recorded, {view.runs_since_best} since "
                f"the last new best; {counters.tool_uses} tool uses; "
                f"{self.record.policy.stops_blocked} stops blocked.")

    def _safe_ledger_view(self) -> policy.LedgerView:
        try:
            return self._ledger_view(self.name)
        except Exception as exc:  # a broken ledger must never break a hook
            log.warning("lane %s: ledger view failed: %s", self.name, exc)
            return policy.LedgerView()

    async def _on_post_tool_use(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        state = self.record.policy
        policy.note_tool_use(state)
        parts = []
        messages = self._take_pending_messages()
        if messages:
            parts.append(messages)
        if policy.take_requested_retrospective(state):
            self.emit("retrospective", kind="retrospective", phase="started",
                      reason="requested by the user (delivered after a tool call)")
            parts.append("[autoresearch] The user asks for a retrospective now.\n\n"
                         + render_skill("create-retrospective", self.variables))
        reason = policy.injection_due(state, self.settings, time.time())
        if reason:
            policy.mark_injected(state, time.time())
            self.emit("injection", kind="program", reason=reason)
            parts.append("[autoresearch] Reminder of the loop program you are running "
                         f"({reason}):\n\n{self.program}")
        self.save()
        if not parts:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                       "additionalContext": "\n\n".join(parts)}}

    async def _on_pre_tool_use(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        tool = input_data.get("tool_name", "")
        key = GUARDED_WRITE_TOOLS.get(tool)
        raw = (input_data.get("tool_input") or {}).get(key) if key else None
        if not raw:
            return {}
        cwd = Path(input_data.get("cwd") or self.workspace.fork_dir(self.name))
        target = (cwd / raw).resolve() if not os.path.isabs(raw) else Path(raw).resolve()
        allowed = self.workspace.lane_dir(self.name).resolve()
        if target == allowed or allowed in target.parents:
            return {}
        reason = (f"autoresearch write guard: {tool} to {target} is outside this lane's folder "
                  f"{allowed}. Edit files in your fork {self.workspace.fork_dir(self.name)} only.")
        self.emit("tool_denied", tool=tool, path=str(target), reason=reason)
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": reason}}

    async def _on_pre_compact(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        policy.note_compaction(self.record.policy)
        self.emit("injection", kind="scheduled", reason="context compaction: the program is due again")
        self.save()
        return {}

    def _take_pending_messages(self) -> str:
        if not self._pending_messages:
            return ""
        texts, self._pending_messages = self._pending_messages, []
        for text in texts:
            self.emit("user_message", text=text, delivery="delivered")
        return "\n".join(f"[message from the user] {text}" for text in texts)

    # ----------------------------------------------------------------- SDK messages → events
    def _on_message(self, message: Any) -> None:
        if isinstance(message, SystemMessage):
            session_id = message.data.get("session_id")
            if message.subtype == "init" and session_id and session_id != self.record.session_id:
                self.record.session_id = session_id
                self.save()
                self.emit("session", session_id=session_id)
        elif isinstance(message, AssistantMessage):
            self._on_assistant(message)
        elif isinstance(message, UserMessage):
            if isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, ToolResultBlock):
                        self.emit("tool_result", tool_use_id=block.tool_use_id,
                                  is_error=bool(block.is_error), output=_tool_output(block.content))
        elif isinstance(message, ResultMessage):
            if message.session_id and message.session_id != self.record.session_id:
                self.record.session_id = message.session_id
            # The CLI prices tokens as if they were real; a scripted demo model costs nothing.
            if message.total_cost_usd is not None and not self.config.agent.scripted_demo:
                self.record.counters.cost_usd += float(message.total_cost_usd)
                self.emit("cost", turn_cost_usd=message.total_cost_usd,
                          total_cost_usd=round(self.record.counters.cost_usd, 6))
            if message.is_error and self._interrupted:
                self.emit("lane_state", state=self.state, previous=self.state,
                          reason="the agent's turn was interrupted by the engine")
            elif message.is_error:
                status = getattr(message, "api_error_status", None)
                detail = "; ".join(message.errors or []) or message.result or message.subtype
                raise SessionError(f"the session ended with an error (HTTP {status}): {detail}"
                                   if status else f"the session ended with an error: {detail}")
            self.save()

    def _on_assistant(self, message: AssistantMessage) -> None:
        if message.parent_tool_use_id:
            return  # a subagent's message; the lane's own turns are what the policy counts
        synthetic = bool(message.error) or message.model == "<synthetic>"  # the CLI's error notice
        message_id = message.message_id or id(message)
        if not synthetic and message_id not in self._seen_message_ids:
            self._seen_message_ids.add(message_id)
            if len(self._seen_message_ids) > 4096:
                self._seen_message_ids = {message_id}
            self.record.counters.turns += 1
            self.record.counters.consecutive_failures = 0  # the model answered: progress
            policy.note_assistant_turn(self.record.policy)
        if message.error:
            self.emit("error", where="api", message=str(message.error))
        for block in message.content:
            if isinstance(block, TextBlock) and block.text.strip():
                self._last_assistant_text = block.text
                self.emit("assistant_text", text=block.text)
            elif isinstance(block, ThinkingBlock) and block.thinking.strip():
                self.emit("assistant_text", text=block.thinking, thinking=True)
            elif isinstance(block, ToolUseBlock):
                self.record.counters.tool_uses += 1
                self.emit("tool_use", tool=block.name, tool_use_id=block.id, input=block.input)

    # ----------------------------------------------------------------- prompts
    def _start_prompt(self) -> str:
        return "\n\n".join([
            render_skill("start-experiment", self.variables),
            "## The loop program\n\n" + self.program,
        ])

    def _resume_prompt(self) -> str:
        return self._continue_prompt("the engine restarted; your session was resumed")  # also after a lane stop

    def _continue_prompt(self, why: str) -> str:
        return "\n\n".join(filter(None, [
            f"[autoresearch] Continue the loop ({why}).",
            self._take_pending_messages(),
            self._state_line(),
            condensed_program(self.program),
        ]))

    def _drain_messages_prompt(self) -> str:
        return "\n\n".join([self._take_pending_messages(),
                            "[autoresearch] Then continue the loop."])


class SessionError(RuntimeError):
    """The CLI finished a turn with an error result (e.g. an API error after its retries)."""


def _describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _tool_output(content: Any) -> str:
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text", "")))
            else:
                parts.append(f"[{item.get('type', 'content') if isinstance(item, dict) else 'content'}]")
        text = "\n".join(parts)
    if len(text) > TOOL_OUTPUT_EVENT_LIMIT:
        text = text[:TOOL_OUTPUT_EVENT_LIMIT] + f"\n… [{len(text) - TOOL_OUTPUT_EVENT_LIMIT} more characters]"
    return text
