"""Nothing an agent, a tool, a benchmark or a description says can drive the terminal: C0
and C1 controls (U+009D...U+009C sets the window title where C1 is honoured) and escape
sequences are stripped on every path to the screen, and escaped in every JSON line."""

from __future__ import annotations

import io
import json
import re

from hypothesis import given, settings, strategies as st

from autoresearch_tui.cli.common import print_event_json
from autoresearch_tui.cli.status import status_lines
from autoresearch_tui.engine.core.events import EventLog, dumps
from autoresearch_tui.engine.core.ledger import sanitize
from autoresearch_tui.engine.core.render import decision_row, format_event, transcript_lines
from autoresearch_tui.engine.protocol import encode

UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TITLE_ATTACK = "\x9d0;pwned\x9c\x1b]0;pwned\x07\x1b[31m\x9b2J\x90q\x9c"

hostile = st.text(alphabet=st.sampled_from(list("ab ;:\n\t\r\x1b[]0\x07\\") + [chr(c) for c in range(0x80, 0xa0)]
                                           + ["\x00", "\x7f", "é"]), max_size=40).map(lambda t: t + TITLE_ATTACK)


def events_carrying(text: str) -> list[dict]:
    base = {"ts": 1.0, "lane": "a"}
    return [
        {**base, "type": "assistant_text", "text": text},
        {**base, "type": "assistant_text", "text": text, "thinking": True},
        {**base, "type": "tool_use", "tool": text, "input": {"command": text}},
        {**base, "type": "tool_use", "tool": "Write", "input": {"file_path": text, "content": text}},
        {**base, "type": "tool_result", "output": text, "is_error": True},
        {**base, "type": "run_output", "run_id": "0001", "text": text},
        {**base, "type": "run_started", "run_id": text, "description": text},
        {**base, "type": "run_finished", "run_id": text, "status": text, "seconds": 1.0},
        {**base, "type": "run_recorded", "run_id": "0001", "status": "keep", "description": text},
        {**base, "type": "lane_state", "state": text, "reason": text},
        {**base, "type": "stop_blocked", "kind": text, "reason": text},
        {**base, "type": "injection", "kind": text, "reason": text},
        {**base, "type": "tool_denied", "tool": text, "reason": text},
        {**base, "type": "error", "where": text, "message": text},
        {**base, "type": "warning", "where": text, "message": text},
        {**base, "type": "user_message", "delivery": "queued", "text": text},
        {**base, "type": text, "what": text},
        {"ts": 1.0, "lane": text, "type": "merge", "message": text},
    ]


@settings(max_examples=60, deadline=None)
@given(hostile)
def test_every_line_for_a_person_is_free_of_control_characters(text):
    for event in events_carrying(text):
        shown = [format_event(event), *transcript_lines(event), *decision_row(event)]
        for line in shown:
            assert not UNSAFE.search(line) and "\x1b" not in line, (event["type"], line)


@settings(max_examples=40, deadline=None)
@given(hostile)
def test_json_lines_escape_c1_and_a_ledger_field_has_none(text):
    event = {"ts": 1.0, "lane": "a", "type": "tool_result", "output": text}
    for line in (dumps(event), encode(event).decode()):
        assert not UNSAFE.search(line) and json.loads(line)["output"] == text
    stream = io.StringIO()
    print_event_json(event, stream)  # `logs --json`, `run --events-jsonl`
    assert not UNSAFE.search(stream.getvalue()) and json.loads(stream.getvalue()) == event
    field = sanitize(text)
    assert not UNSAFE.search(field) and "\t" not in field and "\n" not in field


def test_the_event_log_on_disk_has_no_raw_control_characters(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append({"ts": 1.0, "lane": "a", "type": "assistant_text", "text": TITLE_ATTACK})
    log.close()
    raw = (tmp_path / "events.jsonl").read_text()
    assert not UNSAFE.search(raw.rstrip("\n")) and json.loads(raw)["text"] == TITLE_ATTACK


def test_status_lines_and_the_tui_texts_are_clean():
    from autoresearch_tui.tui.attention import desktop_notification
    from autoresearch_tui.tui.widgets.lane_card import lane_text

    lane = {"state": "needs_attention", "needs_attention_reason": TITLE_ATTACK, "counters": {},
            "frontier": {}, "metrics": {}, "name": "a"}
    for line in status_lines({"experiment": TITLE_ATTACK, "workspace": TITLE_ATTACK, "lanes": {"a": lane}}):
        assert not UNSAFE.search(line) and "\x1b" not in line
    from autoresearch_tui.engine.core.snapshot import LaneSnapshot

    assert not UNSAFE.search(lane_text(LaneSnapshot.from_dict(lane), 1).plain)
    for env in ({}, {"TERM_PROGRAM": "iTerm.app"}, {"TMUX": "1"}):
        sequence = desktop_notification(TITLE_ATTACK, TITLE_ATTACK, env=env)
        inner = sequence.replace("\x1bPtmux;", "").replace("\x1b\x1b", "\x1b")
        inner = re.sub(r"^\x1b\](9|777;notify);|(\x07|\x1b\\)+$", "", inner)
        assert not UNSAFE.search(inner) and "\x1b" not in inner, repr(sequence)
