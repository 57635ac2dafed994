"""The Claude adapter of a lane: one `ClaudeSDKClient` session (the bundled Claude CLI).

It maps the CLI's hooks onto the lane's agent-neutral guard methods (Stop -> decide_stop,
PostToolUse -> after_tool_use, PreToolUse -> check_write, PreCompact -> note_compaction)
and turns every SDK message into events. Everything the lane decides is in lane.py; only
what is specific to claude-agent-sdk lives here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from typing import TYPE_CHECKING, Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    HookMatcher,
    create_sdk_mcp_server,
    tool,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from autoresearch_tui.engine.agent.lane import NeedsUserError
from autoresearch_tui.engine.agent.processes import AGENT_PIDFILE_VAR, guarded_cli_path
from autoresearch_tui.engine.agent.tools import LaneTools, ToolAnswer, ToolSpec
from autoresearch_tui.engine.core.recent import RecentIds
from autoresearch_tui.engine.core.tools import GUARDED_WRITE_TOOLS, TOOL_SERVER_NAME, tool_id

if TYPE_CHECKING:
    from autoresearch_tui.engine.agent.lane import Lane

log = logging.getLogger(__name__)

TOOL_OUTPUT_EVENT_LIMIT = 64 * 1024
SEEN_MESSAGE_IDS = 256
"""Assistant message ids remembered (at least) to count a turn once however many blocks it
sends; was 4096 (about 450 KB per lane held for good)."""


class SessionError(RuntimeError):
    """The CLI finished a turn with an error result (e.g. an API error after its retries)."""


class NoCredentialsError(NeedsUserError):
    """The CLI has no usable credentials ("Not logged in · Please run /login")."""


AUTH_FAILED = "authentication_failed"
"""AssistantMessage.error of the CLI's notice when it has no (valid) credentials."""
AUTH_PHRASES = ("Not logged in", "Invalid API key", "Please run /login")


def no_credentials_message(cli_said: str) -> str:
    said = " ".join(cli_said.split())[:120]
    return (f"no Claude credentials (the CLI says \"{said}\"): set ANTHROPIC_API_KEY, or run "
            "`claude login` on this machine, or set CLAUDE_CODE_USE_VERTEX=1 / "
            "CLAUDE_CODE_USE_BEDROCK=1 with their usual variables; then `autoresearch-tui stop` "
            "and start the engine again (it keeps the environment it was started with)")


def retry_reason(data: dict[str, Any], base_url: str | None) -> str:
    """Why the CLI retries, from its api_retry message: `overloaded (HTTP 529)`, or no answer."""
    status, error = data.get("error_status"), str(data.get("error") or "error")
    if status:
        return f"{error.replace('_', ' ')} (HTTP {status})"
    where = _without_userinfo(base_url) if base_url else "the Anthropic API"
    return f"no answer from {where} (network, proxy or ANTHROPIC_BASE_URL?)"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if parts.username or parts.password else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ClaudeSession:
    """One CLI process for a lane; `async with` opens and closes it (resumable by session id)."""

    def __init__(self, lane: "Lane"):
        self.lane = lane
        self._client: ClaudeSDKClient | None = None
        self._seen_message_ids = RecentIds(SEEN_MESSAGE_IDS)  # a message's blocks arrive together
        self._pidfile = lane.workspace.state_dir / "procs" / f"agent-{lane.name}.pid"
        self.pid: int | None = None
        """The CLI's pid (the watchdog checks it is alive); None until the session is open."""
        self._auth_failure: str | None = None
        """What the CLI said when it found no credentials (this turn)."""

    async def __aenter__(self) -> "ClaudeSession":
        self._pidfile.parent.mkdir(parents=True, exist_ok=True)
        self._pidfile.unlink(missing_ok=True)
        self._client = ClaudeSDKClient(options=self.options())
        await self._client.__aenter__()
        self.pid = self._read_pid()
        return self

    def _read_pid(self) -> int | None:
        """From the guarded wrapper's pid file, else from the SDK's process (private API)."""
        try:
            text = self._pidfile.read_text().strip()
            if text.isdigit():
                return int(text)
        except OSError:
            pass
        process = getattr(getattr(self._client, "_transport", None), "_process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    async def __aexit__(self, *exc_info: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(*exc_info)

    async def turn(self, prompt: str) -> None:
        """Send one prompt and handle every message until the turn's result."""
        assert self._client is not None, "the session is not open"
        await self._client.query(prompt)
        async for message in self._client.receive_response():
            self._on_message(message)

    async def interrupt(self) -> None:
        if self._client is not None:
            await self._client.interrupt()

    # ----------------------------------------------------------------- options & hooks
    def options(self) -> ClaudeAgentOptions:
        lane = self.lane
        agent = lane.config.agent
        allowed = list(agent.allowed_tools)
        mcp_servers: dict[str, Any] = {}
        if lane.with_tools:
            specs = LaneTools(lane).specs()
            mcp_servers[TOOL_SERVER_NAME] = create_sdk_mcp_server(
                TOOL_SERVER_NAME, "1.0.0", tools=[_sdk_tool(spec) for spec in specs])
            allowed += [tool_id(spec.name) for spec in specs]
        return ClaudeAgentOptions(
            cwd=str(lane.workspace.fork_dir(lane.name)),
            env={**lane.agent_env(), AGENT_PIDFILE_VAR: str(self._pidfile)},
            permission_mode=agent.permission_mode,
            allowed_tools=allowed,
            model=agent.model or None,
            max_budget_usd=agent.max_budget_usd or None,
            resume=lane.record.session_id,
            mcp_servers=mcp_servers,
            add_dirs=[str(lane.workspace.lane_dir(lane.name))],
            setting_sources=[],  # the lane's behaviour must not depend on user settings files
            hooks={
                "Stop": [HookMatcher(hooks=[self._on_stop])],
                "PostToolUse": [HookMatcher(hooks=[self._on_post_tool_use])],
                "PreToolUse": [HookMatcher(matcher="|".join(GUARDED_WRITE_TOOLS),
                                           hooks=[self._on_pre_tool_use])],
                "PreCompact": [HookMatcher(hooks=[self._on_pre_compact])],
            },
            stderr=self._on_cli_stderr,
            cli_path=guarded_cli_path(lane.workspace.state_dir),
        )

    def _on_cli_stderr(self, line: str) -> None:
        log.debug("lane %s cli: %s", self.lane.name, line)
        if any(phrase in line for phrase in AUTH_PHRASES):
            self._auth_failure = self._auth_failure or line.strip()

    async def _on_stop(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        last = input_data.get("last_assistant_message")
        message = self.lane.decide_stop(last if isinstance(last, str) else None)
        return {} if message is None else {"decision": "block", "reason": message}

    async def _on_post_tool_use(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        context_text = self.lane.after_tool_use()
        if not context_text:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": context_text}}

    async def _on_pre_tool_use(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        tool = input_data.get("tool_name", "")
        key = GUARDED_WRITE_TOOLS.get(tool)
        raw = (input_data.get("tool_input") or {}).get(key) if key else None
        if not raw or not isinstance(raw, str):
            return {}
        cwd = input_data.get("cwd")
        reason = self.lane.check_write(tool, raw, Path(cwd) if isinstance(cwd, str) and cwd else None)
        if reason is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": reason}}

    async def _on_pre_compact(self, input_data: dict, tool_use_id: str | None, context: Any) -> dict:
        self.lane.note_compaction()
        return {}

    # ----------------------------------------------------------------- SDK messages → events
    def _on_message(self, message: Any) -> None:
        lane = self.lane
        if isinstance(message, SystemMessage):
            session_id = message.data.get("session_id")
            if message.subtype == "init" and session_id:
                lane.note_session(session_id)
            elif message.subtype == "api_retry":
                data = message.data
                delay_ms = data.get("retry_delay_ms")
                lane.note_api_retry(
                    attempt=int(data.get("attempt") or 0), max_retries=data.get("max_retries"),
                    delay_s=delay_ms / 1000 if isinstance(delay_ms, (int, float)) else 0.0,
                    error=retry_reason(data, lane.agent_env().get("ANTHROPIC_BASE_URL")))
        elif isinstance(message, AssistantMessage):
            self._on_assistant(message)
        elif isinstance(message, UserMessage):
            if isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, ToolResultBlock):
                        lane.note_tool_result(block.tool_use_id, _tool_output(block.content),
                                              is_error=bool(block.is_error))
        elif isinstance(message, ResultMessage):
            if message.session_id:
                lane.note_session(message.session_id, announce=False)
            if message.total_cost_usd is not None:
                lane.note_cost(float(message.total_cost_usd))
            if message.is_error and lane.interrupted:
                lane.emit("lane_state", state=lane.state, previous=lane.state,
                          reason="the agent's turn was interrupted by the engine")
            elif message.is_error and self._auth_failure:
                said, self._auth_failure = self._auth_failure, None
                raise NoCredentialsError(no_credentials_message(said))
            elif message.is_error:
                status = getattr(message, "api_error_status", None)
                detail = "; ".join(message.errors or []) or message.result or message.subtype
                raise SessionError(f"the session ended with an error (HTTP {status}): {detail}"
                                   if status else f"the session ended with an error: {detail}")
            lane.save()

    def _on_assistant(self, message: AssistantMessage) -> None:
        if message.parent_tool_use_id:
            return  # a subagent's message; the lane's own turns are what the policy counts
        lane = self.lane
        synthetic = bool(message.error) or message.model == "<synthetic>"  # the CLI's error notice
        message_id = message.message_id or id(message)
        if not synthetic and self._seen_message_ids.add(message_id):
            lane.note_assistant_turn()
        if message.error == AUTH_FAILED or (synthetic and any(
                phrase in block.text for block in message.content if isinstance(block, TextBlock)
                for phrase in AUTH_PHRASES)):
            said = " ".join(b.text for b in message.content if isinstance(b, TextBlock)) or AUTH_FAILED
            self._auth_failure = said
            lane.emit("error", where="credentials", message=no_credentials_message(said))
            return  # the CLI's "please run /login" means nothing to a lane's user
        if message.error:
            lane.emit("error", where="api", message=str(message.error))
        for block in message.content:
            if isinstance(block, TextBlock) and block.text.strip():
                lane.note_assistant_text(block.text)
            elif isinstance(block, ThinkingBlock) and block.thinking.strip():
                lane.emit("assistant_text", text=block.thinking, thinking=True)
            elif isinstance(block, ToolUseBlock):
                lane.note_tool_call(block.name, block.id, block.input)


def _sdk_tool(spec: ToolSpec):
    """An engine tool as claude-agent-sdk's in-process MCP tool."""

    async def call(args: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await spec.call(args)
        except Exception as exc:  # every tool call gets an answer, whatever broke
            log.exception("tool %s failed", spec.name)
            answer = ToolAnswer(f"{spec.name} failed: {type(exc).__name__}: {exc}", is_error=True)
        result: dict[str, Any] = {"content": [{"type": "text", "text": answer.text}]}
        if answer.is_error:
            result["is_error"] = True
        return result

    return tool(spec.name, spec.description, spec.schema)(call)


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
