"""The scripted Responses server on its own (real HTTP on 127.0.0.1, no Codex needed)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from autoresearch_tui.engine.demo.scripted_responses import (
    FunctionCall, HttpError, Message, Reply, ResponseFailed, ScriptedResponses, StreamDrop, ToolSearchCall, Usage,
    provider_config,
)


def post(server, body, headers=None):
    request = urllib.request.Request(server.base_url + "/responses", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read().decode()
        return 200, [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")], {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def user(text):
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_steps_play_in_order_with_errors_usage_and_deltas():
    script = ["hello", FunctionCall("run_benchmark", {"description": "d"}, namespace="mcp__autoresearch"),
              Reply([Message("bye", chunks=2)], usage=Usage(input_tokens=7, output_tokens=3))]
    with ScriptedResponses(script) as server:
        server.fail_next(1, 429, retry_after=1)
        code, body, headers = post(server, {"input": [user("one")], "stream": True})
        assert (code, body["error"]["message"], headers.get("Retry-After")) == (429, "scripted 429", "1")
        _, events, _ = post(server, {"input": [user("one")], "stream": True})
        assert events[-1]["type"] == "response.completed"
        assert events[-2]["item"]["content"][0]["text"] == "hello"
        _, events, _ = post(server, {"input": [user("two")], "stream": True})
        call = events[-2]["item"]
        assert (call["type"], call["namespace"], call["name"]) == ("function_call", "mcp__autoresearch",
                                                                   "run_benchmark")
        assert json.loads(call["arguments"]) == {"description": "d"}
        _, events, _ = post(server, {"input": [user("three")], "stream": True})
        assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["by", "e"]
        assert events[-1]["response"]["usage"]["total_tokens"] == 10
        assert [r.answer for r in server.requests] == ["http 429", "reply", "reply", "reply"]
        assert [r.step for r in server.requests] == [None, 0, 1, 2]
        assert server.requests[2].last_user_text() == "two"
        assert server.remaining == 0
        post(server, {"input": [user("four")], "stream": True})
        assert server.exhausted == 1


def test_compaction_requests_never_consume_the_script():
    with ScriptedResponses(["main reply"], compact_reply="SUMMARY") as server:
        meta = json.dumps({"request_kind": "compaction", "compaction": {"trigger": "auto"}})
        _, events, _ = post(server, {"input": [user("x")], "tools": []}, {"x-codex-turn-metadata": meta})
        assert events[-2]["item"]["content"][0]["text"] == "SUMMARY"
        _, events, _ = post(server, {"input": [user("You are performing a CONTEXT CHECKPOINT COMPACTION. ...")]})
        assert events[-2]["item"]["content"][0]["text"] == "SUMMARY"
        _, events, _ = post(server, {"input": [user("y")]})
        assert events[-2]["item"]["content"][0]["text"] == "main reply"
        assert [r.kind for r in server.requests] == ["compact", "compact", "main"]
        assert server.requests[0].meta["compaction"]["trigger"] == "auto"


def test_callable_steps_drops_failures_and_tool_search():
    seen = []

    def answer(request):
        seen.append(request.last_user_text())
        return ToolSearchCall("ledger")

    with ScriptedResponses([answer, StreamDrop([Message("partial")]), HttpError(500), ResponseFailed()]) as server:
        _, events, _ = post(server, {"input": [user("q")]})
        assert events[-2]["item"]["type"] == "tool_search_call" and seen == ["q"]
        with pytest.raises(Exception):  # the chunked stream is cut before its end
            post(server, {"input": [user("r")]})
        code, _, _ = post(server, {"input": [user("s")]})
        assert code == 500
        _, events, _ = post(server, {"input": [user("t")]})
        assert events[-1]["type"] == "response.failed"
        server.wait_for_requests(4, timeout=1)


def test_a_callable_script_answers_every_request_one_at_a_time():
    active, most = [0], [0]
    lock = threading.Lock()

    def agent(request):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return f"echo {request.last_user_text()}"
        finally:
            with lock:
                active[0] -= 1

    with ScriptedResponses(agent) as server:
        threads = [threading.Thread(target=post, args=(server, {"input": [user(str(i))]})) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(server.main_requests) == 6 and most[0] == 1
        assert sorted(r.step for r in server.main_requests) == list(range(6))


def test_secrets_are_not_recorded_and_the_request_log_is_bounded():
    with ScriptedResponses(["a"] * 20, keep_requests=3) as server:
        for i in range(10):
            post(server, {"input": [user(f"m{i}")]}, {"Authorization": "Bearer sk-live-secret",
                                                       "thread-id": "thread-1"})
        assert 3 <= len(server.requests) <= 6
        last = server.requests[-1]
        assert last.headers["authorization"] == "<redacted>" and last.thread_id == "thread-1"
        assert "sk-live-secret" not in server.dump() and last.n == 9


def test_new_text_is_what_came_after_the_models_last_output():
    body = {"input": [user("start"),
                      {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c1", "output": "first output"},
                      {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                      {"type": "function_call", "call_id": "c2", "name": "exec_command", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c2", "output": "second output"},
                      user("steered text")]}
    with ScriptedResponses(["x"]) as server:
        post(server, body)
        request = server.main_requests[0]
        assert request.new_text == "second output\nsteered text"
        assert request.outputs() == {"c1": "first output", "c2": "second output"}


def test_provider_config_points_codex_at_the_server():
    config = provider_config("http://127.0.0.1:9/v1", retries=0)
    provider = config["model_providers"][config["model_provider"]]
    assert provider["wire_api"] == "responses" and provider["base_url"] == "http://127.0.0.1:9/v1"
    assert provider["request_max_retries"] == provider["stream_max_retries"] == 0
