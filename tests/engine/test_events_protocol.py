"""Event logs (rotation without loss, paging from the end, redaction) and protocol parsing."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine import protocol
from autoresearch_tui.engine.core.events import EventLog, read_events, redact, segments, tail_events


def test_rotation_keeps_every_line_in_order(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", rotate_bytes=2000, keep_segments=1000)
    for i in range(500):
        log.append({"ts": float(i), "lane": "a", "type": "tool_result", "i": i, "output": "x" * (i % 50)})
    log.close()
    assert len(segments(tmp_path / "events.jsonl")) > 10
    assert [e["i"] for e in read_events(tmp_path / "events.jsonl")] == list(range(500))


def test_rotated_segments_beyond_the_retention_limit_are_deleted_oldest_first(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, rotate_bytes=1000, keep_segments=3)
    for i in range(400):
        log.append({"ts": float(i), "lane": "a", "type": "run_output", "i": i, "text": "y" * 40})
    log.close()
    rotated = segments(path)[:-1]
    assert len(rotated) == 3
    kept = [e["i"] for e in read_events(path)]
    assert kept == list(range(kept[0], 400)) and kept[0] > 0  # the newest events, in order
    assert sum(p.stat().st_size for p in segments(path)) < 5000


def test_tail_pages_backwards_across_segments_and_ignores_a_torn_tail(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, rotate_bytes=1500)
    for i in range(300):
        log.append({"ts": float(i), "lane": "a", "type": "metric" if i % 3 else "error", "i": i})
    log.close()
    with open(path, "a") as handle:
        handle.write('{"ts": 999, "lane": "a", "type": "err')  # a crash mid-write
    assert [e["i"] for e in tail_events(path, 4)] == [296, 297, 298, 299]
    page = tail_events(path, 5, before=100.0)
    assert [e["i"] for e in page] == [95, 96, 97, 98, 99]
    errors = tail_events(path, 3, types={"error"})
    assert [e["i"] for e in errors] == [291, 294, 297]
    assert [e["i"] for e in tail_events(path, 1000, since=296.0)] == [297, 298, 299]


def test_credentials_never_reach_the_log(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append({"ts": 1.0, "lane": "a", "type": "tool_result",
                "output": "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnop\npassword: hunter2hunter2"})
    log.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert "sk-ant-api03" not in text and "hunter2hunter2" not in text and "[redacted]" in text
    assert redact("step_time_ms: 12.5") == "step_time_ms: 12.5"


def test_valid_requests_parse():
    assert protocol.parse_request(b'{"id": 1, "op": "hello", "version": 1}')["op"] == "hello"
    assert protocol.parse_request('{"op": "send_message", "lane": "a", "text": "try bf16"}')["text"] == "try bf16"
    assert protocol.parse_request('{"op": "subscribe", "lanes": ["a"], "since": 12.5}')["lanes"] == ["a"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"op": st.sampled_from(sorted(protocol.OPS))},
                          optional={"lane": json_values, "limit": json_values, "since": json_values,
                                    "text": json_values, "version": json_values, "bogus": json_values},
                          ).map(lambda d: json.dumps(d).encode()),
))
def test_any_line_is_parsed_or_refused_with_a_sentence(line):
    try:
        request = protocol.parse_request(line)
    except protocol.ProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert request["op"] in protocol.OPS


def test_event_lines_for_people_are_short_and_rounded():
    from autoresearch_tui.engine.core.render import format_event

    line = format_event({"ts": 0, "lane": "a", "type": "run_recorded", "run_id": "0001", "status": "keep",
                         "metric_value": 47.525999999999996, "description": "baseline\nwith a newline"})
    assert line.endswith("run_recorded   0001 keep 47.526 baseline with a newline")
    crash = format_event({"ts": 0, "lane": "b", "type": "run_recorded", "run_id": "0002", "status": "crash",
                          "metric_value": None, "description": "oom"})
    assert "0002 crash - oom" in crash
    long_text = format_event({"ts": 0, "lane": "a", "type": "assistant_text", "text": "x" * 1000})
    assert len(long_text) < 220 and long_text.endswith("…")


def test_every_event_type_the_code_writes_is_a_known_type():
    import re

    from autoresearch_tui.engine.core.events import EVENT_TYPES
    from tests.support import REPO_ROOT

    written = set()
    pattern = re.compile(r"""(?:\bemit\(|make_event\([^,()]+,\s*|append_event\([^()]*?,[^,()]+,\s*)["']([a-z_]+)["']""")
    for folder in ("engine", "hooks", "cli"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            written |= set(pattern.findall(path.read_text()))
    assert {"run_started", "lane_state", "merge", "stop_blocked"} <= written  # the scan works
    assert written - set(EVENT_TYPES) == set()
