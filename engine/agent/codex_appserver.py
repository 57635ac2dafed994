"""A client for `codex app-server`: newline-delimited JSON-RPC over the process's stdio.

One process per Codex lane. Requests are matched to their responses by id; notifications
(and the server's own requests, answered here) are queued in arrival order for the one
consumer, the lane's session (engine/agent/codex.py). The process runs in its own process
group, so closing it ends whatever commands the agent left running.

Observed with Codex 0.171.0 (docs/architecture.md, "Codex lanes"): lines carry no
"jsonrpc" key; closing stdin makes the server exit within ~0.1 s and kill its commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024 * 1024
DECLINED_REQUESTS = ("item/commandExecution/requestApproval", "item/fileChange/requestApproval",
                     "execCommandApproval", "applyPatchApproval", "item/permissions/requestApproval")
"""Approvals never arrive with approvalPolicy "never"; if one does, nobody is there to approve."""


class AppServerClosed(ConnectionError):
    """The app-server process ended (or its output became unreadable)."""


class RpcError(RuntimeError):
    def __init__(self, method: str, error: Any):
        error = error if isinstance(error, dict) else {"message": str(error)}
        self.method, self.code, self.message = method, error.get("code"), str(error.get("message", error))
        super().__init__(f"{method}: {self.message}")


class AppServer:
    def __init__(self, argv: list[str], *, env: Mapping[str, str], cwd: str,
                 on_stderr: Callable[[str], None] | None = None):
        self.argv, self.env, self.cwd = list(argv), dict(env), cwd
        self.on_stderr = on_stderr or (lambda line: log.debug("codex: %s", line))
        self.proc: asyncio.subprocess.Process | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.stderr_tail: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> "AppServer":
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env, cwd=self.cwd, limit=MAX_LINE, start_new_session=True)
        self._tasks = [asyncio.create_task(self._read_stdout(), name="codex-stdout"),
                       asyncio.create_task(self._read_stderr(), name="codex-stderr")]
        return self

    # ----------------------------------------------------------------- reading
    async def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        try:
            while line := await self.proc.stdout.readline():
                try:
                    message = json.loads(line)
                except (ValueError, UnicodeDecodeError):
                    log.warning("codex app-server wrote a line that is not JSON: %r", line[:200])
                    continue
                if isinstance(message, dict):
                    await self._dispatch(message)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:  # a line over MAX_LINE
            log.warning("codex app-server output unreadable: %s", exc)
        finally:
            self._closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AppServerClosed(self._exit_text()))
            self._pending.clear()
            self._queue.put_nowait(None)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" not in message:  # a response to one of our requests
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif "id" in message:  # the server asks us something
            method = message["method"]
            if method in DECLINED_REQUESTS:
                await self._send({"id": message["id"], "result": {"decision": "decline"}})
            else:
                await self._send({"id": message["id"], "error": {"code": -32601,
                                                                 "message": f"not supported: {method}"}})
            self._queue.put_nowait({"method": method, "params": message.get("params") or {},
                                    "server_request": True})
        else:
            self._queue.put_nowait(message)

    async def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        with contextlib.suppress(ValueError, ConnectionError):
            while line := await self.proc.stderr.readline():
                text = line.decode(errors="replace").rstrip()
                self.stderr_tail = (self.stderr_tail + [text])[-20:]
                self.on_stderr(text)

    def _exit_text(self) -> str:
        code = self.proc.returncode if self.proc else None
        tail = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        return (f"the codex app-server ended (exit code {code})" if code is not None
                else "the codex app-server closed its output") + (f": {tail[:300]}" if tail else "")

    async def next_notification(self) -> dict[str, Any]:
        """The next notification; AppServerClosed once the process ended and all were read."""
        message = await self._queue.get()
        if message is None:
            self._queue.put_nowait(None)  # every later call fails the same way
            if self.proc is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 2)
            raise AppServerClosed(self._exit_text())
        return message

    # ----------------------------------------------------------------- writing
    async def _send(self, message: dict[str, Any]) -> None:
        if self._closed or not self.proc or not self.proc.stdin or self.proc.stdin.is_closing():
            raise AppServerClosed(self._exit_text())
        try:
            self.proc.stdin.write((json.dumps(message, ensure_ascii=False) + "\n").encode())
            await self.proc.stdin.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            raise AppServerClosed(self._exit_text()) from exc

    async def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120) -> Any:
        request_id = self._next_id
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send({"id": request_id, "method": method, "params": params or {}})
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply.get("result")

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        await self._send(message)

    # ----------------------------------------------------------------- ending
    def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def close(self, grace_s: float = 5.0) -> None:
        """Close stdin (the server exits and ends its commands), then signal the group if needed."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 2)
                except asyncio.TimeoutError:
                    self.kill()
                    await proc.wait()
        # Commands of the group may outlive the server (a sandboxed child that ignores EOF).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(task, 2)
