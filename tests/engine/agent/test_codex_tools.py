"""The Codex lane's tool path without Codex: the stdio proxy (a real subprocess) and the engine's
MCP server on its unix socket, driven by the mcp library's own client and by raw JSON-RPC."""

from __future__ import annotations

import asyncio
import json
import stat
import sys

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from autoresearch_tui.engine.agent.codex_tools import PROXY_PATH, ToolSocketServer, socket_path_for
from autoresearch_tui.engine.agent.tools import ToolAnswer, ToolSpec


def specs(log: list, gate: asyncio.Event | None = None) -> list[ToolSpec]:
    async def echo(args):
        log.append(("echo", args))
        return ToolAnswer(json.dumps({"you said": args.get("text")}))

    async def slow(args):
        log.append(("slow", args))
        await gate.wait()
        return ToolAnswer("slow done")

    async def broken(args):
        raise RuntimeError("tool bug")

    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    return [ToolSpec("echo", "Echo the text.", schema, echo),
            ToolSpec("slow", "Wait for the gate.", {"type": "object", "properties": {}}, slow),
            ToolSpec("broken", "Always fails.", {"type": "object", "properties": {}}, broken)]


@pytest.fixture
async def server(tmp_path):
    log: list = []
    gate = asyncio.Event()
    srv = await ToolSocketServer(specs(log, gate), socket_path_for(tmp_path / "lane")).start()
    srv.log, srv.gate = log, gate
    yield srv
    await srv.close()


async def test_the_mcp_librarys_client_lists_and_calls_the_tools_through_the_proxy(server):
    params = StdioServerParameters(command=sys.executable, args=[str(PROXY_PATH), str(server.path)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.server_info.name == "autoresearch"
        tools = await session.list_tools()
        assert [t.name for t in tools.tools] == ["echo", "slow", "broken"]
        assert tools.tools[0].input_schema["required"] == ["text"]
        result = await session.call_tool("echo", {"text": "hi"})
        assert not result.is_error and json.loads(result.content[0].text) == {"you said": "hi"}
        failed = await session.call_tool("broken", {})
        assert failed.is_error and "RuntimeError: tool bug" in failed.content[0].text
    assert server.log == [("echo", {"text": "hi"})]
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


async def run_proxy(server):
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROXY_PATH), str(server.path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def exchange(proc, message) -> dict:
    proc.stdin.write((message if isinstance(message, str) else json.dumps(message)).encode() + b"\n")
    await proc.stdin.drain()
    return json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))


async def test_a_long_call_does_not_hold_up_other_requests_and_bad_input_gets_errors(server):
    proc = await run_proxy(server)
    try:
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": "slow", "arguments": {}}}).encode() + b"\n")
        assert (await exchange(proc, {"jsonrpc": "2.0", "id": 2, "method": "ping"}))["id"] == 2
        assert (await exchange(proc, "{not json"))["error"]["code"] == -32700
        unknown = await exchange(proc, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                        "params": {"name": "nope", "arguments": {}}})
        assert unknown["result"]["isError"] and "the tools are echo, slow, broken" in unknown["result"]["content"][0]["text"]
        bad_args = await exchange(proc, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                                         "params": {"name": "echo", "arguments": [1]}})
        assert bad_args["result"]["isError"]
        missing = await exchange(proc, {"jsonrpc": "2.0", "id": 5, "method": "resources/list"})
        assert missing["error"]["code"] == -32601
        server.gate.set()
        slow = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert slow["id"] == 1 and slow["result"]["content"][0]["text"] == "slow done"
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 10) == 0  # Codex closed stdin: the proxy ends
    finally:
        if proc.returncode is None:
            proc.kill()


async def test_the_proxy_says_clearly_when_the_engine_is_not_there(tmp_path):
    missing = tmp_path / "gone.sock"
    proc = await asyncio.create_subprocess_exec(sys.executable, str(PROXY_PATH), str(missing),
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert f"cannot reach the engine's tool socket {missing}" in err.decode()


async def test_the_proxy_ends_when_the_engine_goes_away(server):
    proc = await run_proxy(server)
    assert (await exchange(proc, {"jsonrpc": "2.0", "id": 1, "method": "ping"}))["result"] == {}
    await server.close()
    assert await asyncio.wait_for(proc.wait(), 10) == 0
