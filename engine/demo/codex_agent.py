"""The offline demo's Codex lane: the demo agent's plan, played to the real Codex CLI.

The scripted demo agent (engine/demo/agent.py) plans in Claude Code's tools; here each of
its turns becomes a Responses API reply the real Codex CLI acts on: Bash and Read become
`exec_command`, Edit becomes an `apply_patch`, Write a heredoc, and the engine's tools the
`mcp__autoresearch` namespace. So a Codex lane beside a Claude lane does the same real work
(edits, commits, benchmark runs through the engine, ledger rows), visibly through Codex.
"""

from __future__ import annotations

import re
from typing import Any

from autoresearch_tui.engine.core.tools import TOOL_ID_PREFIX, TOOL_SERVER_NAME
from autoresearch_tui.engine.demo.agent import PACE_S, DemoAgent
from autoresearch_tui.engine.demo.scripted_model import TextBlock, ToolUseBlock, Turn
from autoresearch_tui.engine.demo.scripted_responses import (
    FAKE_API_KEY, CustomToolCall, FunctionCall, Message, Reply, Request, ScriptedResponses, Usage, provider_config,
)

KEY_ENV = "AUTORESEARCH_DEMO_CODEX_KEY"
_CWD = re.compile(r"<cwd>([^<]+)</cwd>")


class _PlanRequest:
    """A Codex request as the demo agent reads a Messages request: its session, text, news."""

    def __init__(self, request: Request):
        self.session_id = request.thread_id
        blob = request.text_blob()
        cwd = _CWD.search(blob)
        # The demo agent finds its fork where Claude Code states it.
        self.body_text = blob + (f"\nPrimary working directory: {cwd.group(1)}\n" if cwd else "")
        self.new_text = request.new_text
        self.fork = cwd.group(1) if cwd else "."


class CodexDemoAgent:
    """A callable script for ScriptedResponses: one DemoAgent plan per Codex thread."""

    def __init__(self, config: Any = None):
        self.plan = DemoAgent(config)

    def __call__(self, request: Request) -> Reply:
        view = _PlanRequest(request)
        turn: Turn = self.plan(view)  # type: ignore[arg-type]
        return Reply(items=[item for block in turn.blocks for item in _translate(block, view.fork)],
                     usage=Usage(output_tokens=40))


def _translate(block: Any, fork: str) -> list:
    if isinstance(block, TextBlock):
        return [Message(block.text)]
    if not isinstance(block, ToolUseBlock):
        return []
    name, args = block.name, dict(block.input)
    if name.startswith(TOOL_ID_PREFIX):
        return [FunctionCall(name.removeprefix(TOOL_ID_PREFIX), args, namespace=f"mcp__{TOOL_SERVER_NAME}")]
    if name == "Bash":
        return [FunctionCall("exec_command", {"cmd": args.get("command", ""), "workdir": fork})]
    if name == "Read":
        return [FunctionCall("exec_command", {"cmd": f"cat {args.get('file_path')}", "workdir": fork})]
    if name == "Edit":
        path = str(args.get("file_path", "")).removeprefix(fork.rstrip("/") + "/")
        patch = (f"*** Begin Patch\n*** Update File: {path}\n@@\n-{args.get('old_string')}\n"
                 f"+{args.get('new_string')}\n*** End Patch\n")
        return [CustomToolCall("apply_patch", patch)]
    if name == "Write":
        path = str(args.get("file_path", ""))
        folder = path.rsplit("/", 1)[0] or "."
        command = f"mkdir -p {folder} && cat > {path} <<'AUTORESEARCH_EOF'\n{args.get('content', '')}\nAUTORESEARCH_EOF"
        return [FunctionCall("exec_command", {"cmd": command, "workdir": fork})]
    return [Message(f"(the demo has no Codex form of {name})")]


def start_codex_demo_model(config: Any) -> tuple[ScriptedResponses, dict[str, Any], dict[str, str]]:
    """The scripted Responses server of a demo workspace's Codex lanes: (server, the Codex
    provider config pointing at it, the environment holding its fake key)."""
    server = ScriptedResponses(CodexDemoAgent(config), pace_s=PACE_S, keep_requests=4).start()
    return server, provider_config(server.base_url, env_key=KEY_ENV), {KEY_ENV: FAKE_API_KEY}
