"""A week-long Codex thread does not remember every tool call it ever reported, and a call
Codex ran without an item is still shown once. A real Lane, a real CodexSession (never
opened: its item handler is fed Codex's own item shapes) and a real rollout file."""

from __future__ import annotations

import json

from autoresearch_tui.engine.agent.codex import CodexSession
from autoresearch_tui.engine.agent.lane import Lane
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace


def rollout_line(kind: str, call_id: str, **payload) -> str:
    return json.dumps({"type": "response_item", "payload": {"type": kind, "call_id": call_id, **payload}}) + "\n"


def test_reported_calls_are_forgotten_once_their_output_is_read_and_unreported_ones_shown_once(tmp_path):
    config = make_workspace(tmp_path)
    events = []
    lane = Lane("a", config, Workspace(config), publish=events.append, session_factory=lambda lane: None)
    session = CodexSession(lane)
    rollout = tmp_path / "rollout.jsonl"
    rollout.write_text("")
    session._rollout = rollout
    with rollout.open("a") as handle:
        for n in range(5_000):
            call_id = f"call_{n:08d}"
            session._on_item_started({"type": "commandExecution", "id": call_id, "command": "ls"})
            handle.write(rollout_line("function_call", call_id, name="exec_command", arguments="{}"))
            handle.write(rollout_line("function_call_output", call_id, output="exited with code 0"))
            if n % 100 == 99:  # a turn ends: the session reads the rollout behind it
                handle.flush()
                session._show_unreported_calls()
        handle.write(rollout_line("function_call", "call_refused", name="apply_patch", arguments="*** Begin Patch"))
        handle.write(rollout_line("function_call_output", "call_refused", output="patch rejected: outside the lane"))
    session._show_unreported_calls()
    session._show_unreported_calls()  # read again: nothing new
    assert len(session._reported_calls) < 200, f"{len(session._reported_calls)} reported calls still remembered"
    shown = [e for e in events if e.get("type") == "tool_use" and e.get("unreported")]
    assert [e.get("tool_use_id") for e in shown] == ["call_refused"]
