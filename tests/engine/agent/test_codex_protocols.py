"""The Codex adapter's two wire protocols under bad input, without Codex: the app-server client
against a stand-in process, the engine's MCP server against arbitrary messages."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.agent.codex_appserver import AppServer, AppServerClosed, RpcError
from autoresearch_tui.engine.agent.codex_tools import ToolSocketServer
from autoresearch_tui.engine.agent.tools import ToolAnswer, ToolSpec

STAND_IN = textwrap.dedent('''
    import json, sys
    def send(obj): print(json.dumps(obj), flush=True)
    print("not json at all", flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("method") == "initialize":
            send({"id": 99, "method": "item/commandExecution/requestApproval", "params": {"command": "rm -rf /"}})
            send({"id": 12345, "result": "an answer nobody asked for"})
            send({"id": msg["id"], "result": {"userAgent": "stand-in"}})
        elif msg.get("method") == "bad/method":
            send({"id": msg["id"], "error": {"code": -32601, "message": "no such method"}})
        elif msg.get("method") == "crash":
            print("fatal: the stand-in gives up", file=sys.stderr, flush=True)
            sys.exit(3)
        elif "id" in msg and "result" in msg:
            send({"method": "seen", "params": {"answer": msg["result"]}})
        elif msg.get("method") == "notify-me":
            send({"method": "thread/status/changed", "params": {}})
''')


async def test_the_app_server_client_survives_junk_declines_approvals_and_reports_the_exit(tmp_path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    server = await AppServer([sys.executable, str(script)], env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path)).start()
    try:
        assert (await server.request("initialize", {}, timeout=10))["userAgent"] == "stand-in"
        approval = await asyncio.wait_for(server.next_notification(), 10)
        assert approval["server_request"] and approval["method"] == "item/commandExecution/requestApproval"
        declined = await asyncio.wait_for(server.next_notification(), 10)  # the stand-in echoes our answer
        assert declined == {"method": "seen", "params": {"answer": {"decision": "decline"}}}
        with pytest.raises(RpcError, match="bad/method: no such method") as info:
            await server.request("bad/method", timeout=10)
        assert info.value.code == -32601
        await server.notify("crash")
        with pytest.raises(AppServerClosed, match=r"exit code 3\): fatal: the stand-in gives up"):
            await asyncio.wait_for(server.next_notification(), 10)
        with pytest.raises(AppServerClosed):
            await server.request("initialize", timeout=10)
    finally:
        await server.close()


def spec() -> ToolSpec:
    async def echo(args):
        return ToolAnswer(json.dumps(args))
    return ToolSpec("echo", "Echo.", {"type": "object", "properties": {}}, echo)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=10)
messages = st.one_of(
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": st.integers(0, 9) | st.text(max_size=4),
                           "method": st.sampled_from(["initialize", "ping", "tools/list", "tools/call", "x"]),
                           "params": json_values}).map(json.dumps),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=6))
def test_any_message_gets_one_well_formed_answer_or_none_and_the_server_goes_on(lines):
    server = ToolSocketServer([spec()], path="unused.sock")  # not started: only its handler runs
    sent: list[dict] = []

    async def send(message):
        json.dumps(message)  # serializable
        sent.append(message)

    async def feed():
        for line in lines:
            await server._handle(line.encode(), send)
        await server._handle(json.dumps({"jsonrpc": "2.0", "id": "last", "method": "ping"}).encode(), send)

    asyncio.run(feed())
    assert sent[-1] == {"jsonrpc": "2.0", "id": "last", "result": {}}  # still answering
    assert all(m["jsonrpc"] == "2.0" and "id" in m and ("result" in m) != ("error" in m) for m in sent)
    assert all(isinstance(m["error"]["message"], str) and "\n" not in m["error"]["message"]
               for m in sent if "error" in m)
