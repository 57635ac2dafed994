"""The scripted Messages API server: raw HTTP, then the real bundled CLI and SDK against it."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from autoresearch_tui.engine.demo.scripted_model import (
    FAKE_API_KEY,
    ModelRequest,
    ScriptedModelServer,
    Turn,
    classify_request,
    cli_env,
)

# ------------------------------------------------------------------------------------------
# Raw HTTP helpers
# ------------------------------------------------------------------------------------------


def _post(server: ScriptedModelServer, path: str, body: Any, headers: dict[str, str] | None = None):
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def _sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parse an SSE body into (event, data) pairs, checking the framing."""
    events = []
    for frame in data.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        event, payload = lines[0][7:], json.loads(lines[1][6:])
        assert payload["type"] == event
        events.append((event, payload))
    return events


def _main_body(text: str = "hello", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    # What the CLI's agent loop sends: a tools key, a big max_tokens, streaming.
    return {
        "model": "claude-test",
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a test agent."}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _assemble(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], str]:
    """Rebuild content blocks from the deltas, as a client would; return them + stop_reason."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stop_reason = ""
    for event, data in events:
        if event == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"])
            partial[data["index"]] = ""
        elif event == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                blocks[data["index"]]["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                partial[data["index"]] += delta["partial_json"]
        elif event == "content_block_stop":
            if blocks[data["index"]]["type"] == "tool_use":
                blocks[data["index"]]["input"] = json.loads(partial[data["index"]])
        elif event == "message_delta":
            stop_reason = data["delta"]["stop_reason"]
            assert data["usage"]["output_tokens"] >= 1
    return [blocks[i] for i in sorted(blocks)], stop_reason


# ------------------------------------------------------------------------------------------
# Raw HTTP tests
# ------------------------------------------------------------------------------------------


def test_sse_framing_text_tool_and_default(scripted_model: ScriptedModelServer) -> None:
    long_text = "x" * 200  # several text deltas
    scripted_model.set_script(
        [
            Turn.tools([("Bash", {"command": "ls -la"}), ("Read", {"file_path": "/a b/ü.txt"})], text=long_text),
            Turn.text("second"),
        ]
    )
    resp, data = _post(scripted_model, "/v1/messages?beta=true", _main_body())
    assert resp.status == 200
    assert resp.getheader("content-type", "").startswith("text/event-stream")
    events = _sse(data)
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["content"] == [] and start["usage"]["input_tokens"] > 0
    blocks, stop_reason = _assemble(events)
    assert stop_reason == "tool_use"
    assert blocks[0] == {"type": "text", "text": long_text}
    assert [(b["name"], b["input"]) for b in blocks[1:]] == [
        ("Bash", {"command": "ls -la"}),
        ("Read", {"file_path": "/a b/ü.txt"}),
    ]
    assert blocks[1]["id"] != blocks[2]["id"] and blocks[1]["id"].startswith("toolu_")

    blocks, stop_reason = _assemble(_sse(_post(scripted_model, "/v1/messages", _main_body())[1]))
    assert (blocks, stop_reason) == ([{"type": "text", "text": "second"}], "end_turn")

    # The script ran out: a harmless default end_turn, not a crash.
    blocks, stop_reason = _assemble(_sse(_post(scripted_model, "/v1/messages", _main_body())[1]))
    assert stop_reason == "end_turn" and blocks[0]["text"] == scripted_model.final_text
    assert scripted_model.turns_left == 0


def test_non_streaming_json(scripted_model: ScriptedModelServer) -> None:
    scripted_model.set_script([Turn.tool("Write", {"file_path": "f", "content": "c"})])
    resp, data = _post(scripted_model, "/v1/messages", _main_body(stream=False))
    assert resp.status == 200 and resp.getheader("content-type") == "application/json"
    msg = json.loads(data)
    assert msg["type"] == "message" and msg["stop_reason"] == "tool_use"
    assert msg["content"][0]["input"] == {"file_path": "f", "content": "c"}


def test_count_tokens_and_unknown_paths(scripted_model: ScriptedModelServer) -> None:
    resp, data = _post(scripted_model, "/v1/messages/count_tokens?beta=true", _main_body("a" * 400))
    assert resp.status == 200 and json.loads(data)["input_tokens"] > 100
    resp, data = _post(scripted_model, "/api/some/thing", {"x": 1})
    assert resp.status == 200 and json.loads(data) == {}
    assert scripted_model.unknown_paths == ["POST /api/some/thing"]
    kinds = [r.kind for r in scripted_model.requests]
    assert kinds == ["count_tokens", "other"]
    assert scripted_model.main_requests == []


def test_aux_requests_do_not_consume_the_script(scripted_model: ScriptedModelServer) -> None:
    scripted_model.set_script([Turn.text("MAIN-1")])
    probe = _main_body("quota", max_tokens=1)
    side = {k: v for k, v in _main_body("title please", stream=False).items() if k != "tools"}
    compact = _main_body("CRITICAL: ... Your task is to create a detailed summary of the conversation so far")
    for body in (probe, side, compact):
        resp, data = _post(scripted_model, "/v1/messages", body)
        assert resp.status == 200
    compact_reply = _assemble(_sse(data))[0][0]["text"]
    assert "<summary>" in compact_reply and scripted_model.compact_summary in compact_reply
    blocks, _ = _assemble(_sse(_post(scripted_model, "/v1/messages", _main_body())[1]))
    assert blocks[0]["text"] == "MAIN-1"
    assert [r.kind for r in scripted_model.requests] == ["probe", "side", "compact", "main"]
    # An agent loop with no tools at all still sends the key (observed): it is main.
    assert classify_request("POST", "/v1/messages", _main_body(tools=[])) == "main"


def test_fail_next_injects_errors_without_consuming(scripted_model: ScriptedModelServer) -> None:
    scripted_model.set_script([Turn.text("after the storm")])
    scripted_model.fail_next(529, count=2, retry_after=3)
    scripted_model.fail_next(500)
    side = {k: v for k, v in _main_body(stream=False).items() if k != "tools"}
    assert _post(scripted_model, "/v1/messages", side)[0].status == 200  # aux: never failed

    statuses = []
    for _ in range(3):
        resp, data = _post(scripted_model, "/v1/messages", _main_body())
        statuses.append(resp.status)
        err = json.loads(data)
        assert err["type"] == "error"
        assert resp.getheader("content-type") == "application/json"
        if resp.status == 529:
            assert err["error"]["type"] == "overloaded_error"
            assert resp.getheader("retry-after") == "3"
        else:
            assert err["error"]["type"] == "api_error" and resp.getheader("retry-after") is None
    assert statuses == [529, 529, 500]
    resp, data = _post(scripted_model, "/v1/messages", _main_body())
    assert resp.status == 200 and _assemble(_sse(data))[0][0]["text"] == "after the storm"
    assert [r.status for r in scripted_model.requests if r.is_main] == [529, 529, 500, 200]
    assert len(scripted_model.main_requests) == 1

    scripted_model.fail_next(429, error_type="rate_limit_error")
    resp, data = _post(scripted_model, "/v1/messages", _main_body())
    assert resp.status == 429 and json.loads(data)["error"]["type"] == "rate_limit_error"


def test_request_helpers_and_redaction(scripted_model: ScriptedModelServer) -> None:
    body = _main_body()
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "start"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "OUT-1"}]},
                {"type": "text", "text": "Line \"quoted\"\nnext"},
            ],
        },
    ]
    _post(scripted_model, "/v1/messages?beta=true", body, {"x-api-key": "sk-ant-secret", "authorization": "Bearer s"})
    (req,) = scripted_model.requests
    assert req.path == "/v1/messages" and req.query == {"beta": ["true"]}
    assert req.headers["x-api-key"] == "<redacted>" and req.headers["authorization"] == "<redacted>"
    assert "sk-ant-secret" not in json.dumps(req.headers)
    assert req.system == "You are a test agent."
    assert req.tool_names == ["Bash"]
    assert req.last_user_text == 'OUT-1\nLine "quoted"\nnext'
    assert req.tool_result_text() == "OUT-1" and req.tool_result_text("other") == ""
    assert req.contains('Line "quoted"\nnext') and req.contains("start") and not req.contains("absent")
    assert [m["role"] for m in req.new_messages] == ["user"] and req.new_text == req.last_user_text


def test_callable_script_keeps_state_and_survives_errors(scripted_model: ScriptedModelServer) -> None:
    seen: list[str] = []

    def agent(req: ModelRequest) -> Turn:
        seen.append(req.last_user_text)
        if req.last_user_text == "boom":
            raise ValueError("script bug")
        return Turn.text(f"reply {len(seen)} to {req.last_user_text}")

    scripted_model.set_script(agent)
    texts = []
    for prompt in ("a", "boom", "b"):
        texts.append(_assemble(_sse(_post(scripted_model, "/v1/messages", _main_body(prompt))[1]))[0][0]["text"])
    assert texts[0] == "reply 1 to a" and texts[2] == "reply 3 to b"
    assert "script error" in texts[1]
    assert [type(e) for e in scripted_model.script_errors] == [ValueError]


def test_concurrent_requests_and_stop(scripted_model: ScriptedModelServer) -> None:
    scripted_model.set_script([Turn.text(f"t{i}") for i in range(20)])
    results: list[str] = []
    lock = threading.Lock()

    def hit() -> None:
        text = _assemble(_sse(_post(scripted_model, "/v1/messages", _main_body())[1]))[0][0]["text"]
        with lock:
            results.append(text)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(results) == sorted(f"t{i}" for i in range(20))  # each turn served once
    assert [r.index for r in scripted_model.requests] == list(range(20))

    scripted_model.stop()
    with pytest.raises(OSError):
        _post(scripted_model, "/v1/messages", _main_body())


def test_cli_env_is_offline_and_fake_keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-REAL-looking")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    env = cli_env(tmp_path / "h", "http://127.0.0.1:9", max_retries=0)
    assert env["ANTHROPIC_API_KEY"] == FAKE_API_KEY
    assert "sk-ant-REAL-looking" not in json.dumps(env)
    assert env["HOME"] == str(tmp_path / "h") and (tmp_path / "h").is_dir()
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["NO_PROXY"].split(",")[:2] == ["corp.example", "127.0.0.1"]


# ------------------------------------------------------------------------------------------
# The real bundled CLI
# ------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_bundled_cli_print_mode(
    scripted_model: ScriptedModelServer, cli_env: dict[str, str], cli_home: Path, bundled_cli: Path
) -> None:
    scripted_model.set_script([Turn.text("SCRIPTED-HELLO-7")])
    proc = subprocess.run(
        [str(bundled_cli), "-p", "hi", "--output-format", "stream-json", "--verbose"],
        env={**os.environ, **cli_env},
        cwd=cli_home,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is False
    assert result["result"] == "SCRIPTED-HELLO-7"

    (main,) = scripted_model.main_requests
    assert main.path == "/v1/messages" and main.query.get("beta") == ["true"] and main.stream
    assert main.last_user_text.endswith("hi")
    assert {"Bash", "Read", "Write"} <= set(main.tool_names)
    assert main.headers["x-api-key"] == "<redacted>"
    assert main.session_id == result["session_id"]  # the CLI names its session in a header
    assert FAKE_API_KEY not in proc.stdout


# ------------------------------------------------------------------------------------------
# The real SDK (ClaudeSDKClient -> bundled CLI -> scripted server)
# ------------------------------------------------------------------------------------------


async def _collect(client: Any, timeout: float = 30) -> list[Any]:
    """All messages of one response, failing (not hanging) after `timeout` seconds."""

    async def run() -> list[Any]:
        return [m async for m in client.receive_response()]

    return await asyncio.wait_for(run(), timeout)


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_sdk_tool_use_and_stop_hook_block(
    scripted_model: ScriptedModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, HookMatcher, ResultMessage

    work = tmp_path / "work"
    work.mkdir()
    scripted_model.set_script(
        [
            Turn.tools(
                [("Bash", {"command": "echo hi-from-bash"}), ("Write", {"file_path": str(work / "out.txt"), "content": "written\n"})],
                text="Running two tools.",
            ),
            Turn.text("All done."),
            Turn.text("Really done."),
        ]
    )
    stop_inputs: list[dict[str, Any]] = []

    async def on_stop(input_data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        stop_inputs.append(dict(input_data))
        if len(stop_inputs) == 1:
            return {"decision": "block", "reason": "KEEP-GOING-42"}
        return {}

    async def on_post_tool(input_data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        if input_data["tool_name"] != "Bash":
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": "CONTEXT-INJECT-9"}}

    options = ClaudeAgentOptions(
        cwd=str(work),
        env=cli_env,
        permission_mode="acceptEdits",
        allowed_tools=["Bash", "Write", "Read"],
        hooks={"Stop": [HookMatcher(hooks=[on_stop])], "PostToolUse": [HookMatcher(hooks=[on_post_tool])]},
    )
    async with ClaudeSDKClient(options) as client:
        await client.query("run the tools")
        messages = await _collect(client)

    result = messages[-1]
    assert isinstance(result, ResultMessage) and not result.is_error, messages
    assert (work / "out.txt").read_text() == "written\n"

    mains = scripted_model.main_requests
    assert len(mains) == 3, scripted_model.dump()
    # 2nd request: both tool results came back to the model.
    results = mains[1].tool_results()
    assert len(results) == 2
    assert "hi-from-bash" in mains[1].tool_result_text()
    assert "KEEP-GOING-42" not in mains[1].body_text
    # PostToolUse additionalContext arrives as a system-role message after the tool results.
    assert "CONTEXT-INJECT-9" in mains[1].new_text
    assert "CONTEXT-INJECT-9" not in mains[1].last_user_text
    # 3rd request: after the blocked stop, the block reason reaches the model.
    assert "KEEP-GOING-42" in mains[2].last_user_text
    assert mains[2].contains("Stop hook feedback")

    assert len(stop_inputs) == 2
    assert stop_inputs[0]["stop_hook_active"] is False
    assert stop_inputs[0]["last_assistant_message"] == "All done."
    assert stop_inputs[1]["stop_hook_active"] is True
    assert result.session_id == mains[0].session_id


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_sdk_survives_a_529(scripted_model: ScriptedModelServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage, SystemMessage

    scripted_model.set_script([Turn.text("RECOVERED-OK")])
    scripted_model.fail_next(529)
    options = ClaudeAgentOptions(cwd=str(tmp_path), env=cli_env, permission_mode="acceptEdits", allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("hello")
        messages = await _collect(client)

    result = messages[-1]
    assert isinstance(result, ResultMessage) and not result.is_error and result.result == "RECOVERED-OK"
    # The CLI retried by itself (after ~0.5 s) and told the SDK so.
    retries = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "api_retry"]
    assert [r.data["error_status"] for r in retries] == [529]
    assert [r.status for r in scripted_model.requests if r.is_main] == [529, 200]


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_sdk_error_after_retries_then_same_session_continues(
    scripted_model: ScriptedModelServer, cli_home: Path, tmp_path: Path
) -> None:
    """With CLAUDE_CODE_MAX_RETRIES=0 a 500 surfaces at once as an error result; the client
    stays usable and the next query continues the same session."""
    from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

    scripted_model.set_script([Turn.text("SECOND-TRY-OK")])
    scripted_model.fail_next(500)
    env = cli_env(cli_home, scripted_model.base_url, max_retries=0)
    options = ClaudeAgentOptions(cwd=str(tmp_path), env=env, permission_mode="acceptEdits", allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        await client.query("first")
        failed = await _collect(client)
        await client.query("second")
        ok = await _collect(client)

    assert isinstance(failed[-1], ResultMessage) and failed[-1].is_error
    synthetic = [m for m in failed if isinstance(m, AssistantMessage)]
    assert synthetic and "500" in str(synthetic[-1].content)
    assert isinstance(ok[-1], ResultMessage) and not ok[-1].is_error and ok[-1].result == "SECOND-TRY-OK"
    assert ok[-1].session_id == failed[-1].session_id
    assert [r.status for r in scripted_model.requests if r.is_main] == [500, 200]
    assert scripted_model.main_requests[0].contains("first")  # the failed prompt is kept


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_sdk_compaction_does_not_consume_the_script(
    scripted_model: ScriptedModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

    scripted_model.set_script([Turn.text("BEFORE"), Turn.text("AFTER")])
    options = ClaudeAgentOptions(cwd=str(tmp_path), env=cli_env, permission_mode="acceptEdits", allowed_tools=["Bash"])
    async with ClaudeSDKClient(options) as client:
        results = []
        for prompt in ("one", "/compact", "two"):
            await client.query(prompt)
            results.append((await _collect(client))[-1])

    assert all(isinstance(r, ResultMessage) for r in results)
    assert [results[0].result, results[2].result] == ["BEFORE", "AFTER"]
    kinds = [r.kind for r in scripted_model.requests]
    assert kinds == ["main", "compact", "main"], scripted_model.dump()
    # The canned summary is what the conversation continues from.
    assert scripted_model.main_requests[1].contains(scripted_model.compact_summary)
