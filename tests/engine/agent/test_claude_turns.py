"""The Claude adapter counts a model turn once however many messages its blocks arrive in,
and a week-long session does not hold every message id it ever saw. A real Lane and a real
ClaudeSession (never opened: the SDK's own message objects are fed to its handler)."""

from __future__ import annotations

import tracemalloc

from claude_agent_sdk import AssistantMessage, TextBlock

from autoresearch_tui.engine.agent.claude import ClaudeSession
from autoresearch_tui.engine.agent.lane import Lane
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace


def message(message_id: str, text: str = "") -> AssistantMessage:
    return AssistantMessage(content=[TextBlock(text)] if text else [], model="claude-test",
                            message_id=message_id)


def test_turns_counted_once_per_message_and_the_ids_kept_stay_bounded(tmp_path):
    config = make_workspace(tmp_path)
    lane = Lane("a", config, Workspace(config), publish=lambda event: None,
                session_factory=lambda lane: None)
    session = ClaudeSession(lane)
    for _ in range(3):  # one API message, its blocks as three SDK messages
        session._on_message(message("msg_first"))
    assert lane.record.counters.turns == 1
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):
            session._on_message(message(f"msg_{n:024d}"))
            session._on_message(message(f"msg_{n:024d}"))  # a second block of the same turn
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert lane.record.counters.turns == 20_001
    session._on_message(message(f"msg_{19_990:024d}"))  # a late block of a recent turn
    assert lane.record.counters.turns == 20_001
    assert held < 150_000, f"{held / 1024:.0f} KiB of message ids held"
