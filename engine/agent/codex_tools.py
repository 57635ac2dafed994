"""The engine's tools for a Codex lane, as an MCP server on a private unix socket.

Codex reaches it through engine/agent/codex_mcp_proxy.py (a stdio server Codex starts; it
only moves bytes). This side speaks the part of MCP a tool server needs (JSON-RPC 2.0, one
message per line: initialize, ping, tools/list, tools/call) and answers each call with the
lane's agent-neutral `LaneTools`, so a Codex lane gets the very answers a Claude lane gets.
Calls run concurrently (a 15-minute run_benchmark does not hold up a ping). The socket is
0600 in the engine's 0700 runtime folder; nothing listens on TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.agent.tools import ToolSpec
from autoresearch_tui.engine.core.tools import TOOL_SERVER_NAME
from autoresearch_tui.engine.protocol import runtime_dir

log = logging.getLogger(__name__)

PROXY_PATH = Path(__file__).resolve().parent / "codex_mcp_proxy.py"
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MAX_LINE = 16 * 1024 * 1024
INSTRUCTIONS = ("Autoresearch lane tools: run_benchmark measures your fork under the engine's timeout, "
                "record_run writes the ledger, lane_status shows the frontier and what is due.")


def socket_path_for(lane_dir: Path) -> Path:
    """Short (sun_path holds ~108 bytes) and private: the runtime folder, named by the lane."""
    digest = hashlib.sha256(str(Path(lane_dir).resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / f"{digest}.tools.sock"


class ToolSocketServer:
    def __init__(self, specs: list[ToolSpec], path: Path, *, version: str = "1"):
        self.specs = {spec.name: spec for spec in specs}
        self.path = Path(path)
        self.version = version
        self.calls = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "ToolSocketServer":
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a previous engine's socket (kill -9 leaves it behind)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):  # connected proxies end with their connection
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        self._writers.add(writer)

        async def send(message: dict[str, Any]) -> None:
            data = (json.dumps(message, ensure_ascii=False) + "\n").encode()
            async with lock:
                writer.write(data)
                await writer.drain()

        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    await send(_error(None, -32700, f"message over {MAX_LINE} bytes"))
                    break
                if not line.strip():
                    continue
                task = asyncio.create_task(self._handle(line, send))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, line: bytes, send) -> None:
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            await _send_quietly(send, _error(None, -32700, "parse error: not JSON"))
            return
        if not isinstance(message, dict):
            await _send_quietly(send, _error(None, -32600, "invalid request"))
            return
        if "method" not in message or "id" not in message:
            return  # a notification (initialized, cancelled) or a response: nothing to answer
        request_id, method = message["id"], message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        try:
            result = await self._answer(method, params)
        except _RpcFailure as exc:
            await _send_quietly(send, _error(request_id, exc.code, str(exc)))
            return
        await _send_quietly(send, {"jsonrpc": "2.0", "id": request_id, "result": result})

    async def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "initialize":
            asked = params.get("protocolVersion")
            return {"protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0],
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": TOOL_SERVER_NAME, "version": self.version},
                    "instructions": INSTRUCTIONS}
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": [{"name": spec.name, "description": spec.description, "inputSchema": spec.schema}
                              for spec in self.specs.values()]}
        if method == "tools/call":
            return await self._call(params)
        raise _RpcFailure(-32601, f"method not found: {method}")

    async def _call(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        spec = self.specs.get(name) if isinstance(name, str) else None
        if spec is None:
            return _tool_text(f"unknown tool {name!r}: the tools are {', '.join(self.specs)}", True)
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return _tool_text(f"{name}: arguments must be an object", True)
        self.calls += 1
        try:
            answer = await spec.call(arguments)
        except Exception as exc:  # a tool's bug must reach the model as an error, not kill the lane
            log.exception("tool %s failed", name)
            return _tool_text(f"{name} failed: {type(exc).__name__}: {exc}", True)
        return _tool_text(answer.text, answer.is_error)


class _RpcFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _tool_text(text: str, is_error: bool) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": bool(is_error)}


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _send_quietly(send, message: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await send(message)
