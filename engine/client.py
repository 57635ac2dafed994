"""A client of the engine daemon (used by the TUI and the plain-text commands)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any, AsyncIterator

from autoresearch_tui.engine import protocol


LANE_SNAPSHOT = "lane_snapshot"
"""`stream()` yields pushed lane snapshots as `{"type": LANE_SNAPSHOT, "lane_snapshot": {...}}`
(never logged: not an event of the lane, the lane's current state)."""


class EngineClientError(RuntimeError):
    """The engine refused a request or cannot be reached; the text is for the user."""


class EngineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader_task = asyncio.create_task(self._read())
        self.hello: dict[str, Any] = {}
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, path: Path | str, timeout: float = 5.0) -> "EngineClient":
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=protocol.MAX_LINE_BYTES * 8), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise EngineClientError(f"no engine answers on {path}: {exc}") from None
        client = cls(reader, writer)
        client.hello = await client.request("hello", version=protocol.PROTOCOL_VERSION,
                                            client="autoresearch-tui")
        return client

    async def request(self, op: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; raises EngineClientError on refusal."""
        reply = await self.request_raw(op, timeout=timeout, **args)
        if not reply.get("ok"):
            raise EngineClientError(reply.get("error") or f"{op} failed")
        return reply

    async def request_raw(self, op: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        if self.closed.is_set():
            raise EngineClientError("the connection to the engine is closed")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(protocol.encode({"id": request_id, "op": op, **args}))
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, RuntimeError) as exc:
            raise EngineClientError(f"the engine went away: {exc}") from None
        except asyncio.TimeoutError:
            raise EngineClientError(f"the engine did not answer {op!r} within {timeout:.0f}s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "event" in message:
                    self.events.put_nowait(message["event"])
                    continue
                if "lane_snapshot" in message:
                    self.events.put_nowait({"type": LANE_SNAPSHOT, "lane_snapshot": message["lane_snapshot"]})
                    continue
                future = self._pending.get(message.get("id"))
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.closed.set()
            self.events.put_nowait(None)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(EngineClientError("the engine closed the connection"))

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Events (and pushed lane snapshots) after `subscribe`, until the connection closes."""
        while True:
            event = await self.events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(BaseException):
            await self._reader_task
