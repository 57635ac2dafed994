"""The TUI's side of the engine connection.

`EngineBridge` owns one :class:`autoresearch_tui.engine.client.EngineClient`. Its reader task only
calls `LaneStore.ingest` (deque appends); the UI flushes on a timer. When the connection drops,
it posts one `EngineBridge.Lost` message to its `target` (the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from autoresearch_tui.engine.client import EngineClient, EngineClientError
from autoresearch_tui.tui.store import LaneStore

HISTORY_LIMIT = 1500


class EngineBridge:
    class Lost(Message):
        """The engine connection dropped (the engine stopped, or the socket went away)."""

        def __init__(self, reason: str):
            super().__init__()
            self.reason = reason

    def __init__(self, socket_path: Path | str, store: LaneStore):
        self.socket_path = Path(socket_path)
        self.store = store
        self.client: EngineClient | None = None
        self._reader: asyncio.Task | None = None
        self.target: MessagePump | None = None
        """Who hears about a lost connection (the app sets itself)."""
        self.connected_at: float | None = None
        self.resyncs = 0
        self._resync_task: asyncio.Task | None = None
        self._held: list[dict[str, Any]] | None = None
        self.last_seen_ts = 0.0
        self.subscribed_at = 0.0

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed.is_set()

    async def attach(self, selected: str | None = None) -> str | None:
        """Snapshot first (instant), then the selected lane's history, then subscribe.

        Returns the lane to select (the given one if it exists, else the first)."""
        await self.close()
        self.client = await EngineClient.connect(self.socket_path)
        self.connected_at = time.time()
        snapshot = (await self.client.request("snapshot"))["snapshot"]
        self.store.set_snapshot(snapshot)
        self.store.alert_after = time.time()
        names = self.store.lane_names()
        if selected not in names:
            selected = names[0] if names else None
        since = time.time()
        if selected is not None:
            await self.load_history(selected)
            last = self.store.feed(selected).last_ts
            since = last if last else since
        await self.client.request("subscribe", lanes=None, since=since)
        self.subscribed_at = since
        self._reader = asyncio.create_task(self._read(self.client), name="engine-events")
        return selected

    async def load_history(self, lane: str, limit: int = HISTORY_LIMIT) -> int:
        """Fill a lane's feed with the events before what it already has."""
        feed = self.store.feed(lane)
        if feed.history_loaded or self.client is None:
            return 0
        reply = await self.request("history", lane=lane, limit=limit, before=feed.first_ts)
        events = reply.get("events", [])
        feed.prepend_history(events)
        self.store.dirty_lanes.add(lane)
        return len(events)

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        if self.client is None or self.client.closed.is_set():
            raise EngineClientError("not connected to the engine (press c to reconnect)")
        return await self.client.request(op, **args)

    async def _read(self, client: EngineClient) -> None:
        ingest = self.store.ingest
        async for event in client.stream():
            if self._held is not None:  # resyncing: what arrives now is sorted out afterwards
                self._held.append(event)
                continue
            if event.get("type") == "resync" and client is self.client:
                ingest(event)  # the store shows it
                self._held = []
                self._resync_task = asyncio.create_task(self.resync(client), name="engine-resync")
                continue
            ts = event.get("ts")
            if isinstance(ts, (int, float)):
                self.last_seen_ts = max(self.last_seen_ts, ts)
            ingest(event)
        if client is self.client and self.target is not None:
            self.target.post_message(self.Lost("the engine closed the connection"))

    async def resync(self, client: EngineClient) -> None:
        """The engine dropped events this UI was too slow to take: take a new snapshot and
        replay from disk everything after the last event seen, each event once."""
        try:
            snapshot = (await client.request("snapshot"))["snapshot"]
            self.store.set_snapshot(snapshot)
            await client.request("subscribe", lanes=None, since=self.last_seen_ts or self.subscribed_at)
        except EngineClientError:
            self._held = None
            return  # the connection is gone: on_disconnect says so
        held, self._held = self._held or [], None
        seen: set[str] = set()
        for event in sorted(held, key=lambda e: e.get("ts", 0) if isinstance(e.get("ts"), (int, float)) else 0):
            key = json.dumps(event, sort_keys=True, default=str)
            if key in seen:  # both in flight before the resync and replayed from disk
                continue
            seen.add(key)
            ts = event.get("ts")
            if isinstance(ts, (int, float)):
                self.last_seen_ts = max(self.last_seen_ts, ts)
            self.store.ingest(event)
        self.resyncs += 1

    async def close(self) -> None:
        client, self.client = self.client, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if client is not None:
            await client.close()
