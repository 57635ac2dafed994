"""The engine's socket server against misbehaving clients, in process: a client that stops
reading costs bounded memory and gets a resync; the TUI's bridge recovers from one."""

from __future__ import annotations

import asyncio
import json
import os
import time
import tracemalloc

import pytest

from autoresearch_tui.engine.daemon import server as server_module
from autoresearch_tui.engine.daemon.server import EngineServer
from autoresearch_tui.engine.supervisor import Engine
from tests.support import make_workspace, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def served(tmp_path):
    config = make_workspace(tmp_path / "ws")
    engine = Engine(config, env=dict(os.environ))  # lanes not started: the test publishes
    server = EngineServer(engine, tmp_path / "engine.sock")
    await server.start()
    yield engine, server
    await server.close()


async def raw_client(path):
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)

    async def ask(request: dict) -> dict:
        writer.write((json.dumps(request) + "\n").encode())
        await writer.drain()
        while True:
            message = json.loads(await asyncio.wait_for(reader.readline(), 10))
            if "event" not in message:
                return message

    return reader, writer, ask


async def test_a_client_that_stops_reading_costs_bounded_memory_and_gets_a_resync(served, monkeypatch):
    engine, server = served
    monkeypatch.setattr(server_module, "SUBSCRIBER_QUEUE_BYTES", 4 << 20, raising=False)
    reader, writer, ask = await raw_client(server.path)
    assert (await ask({"id": 1, "op": "hello", "version": 1}))["ok"]
    assert (await ask({"id": 2, "op": "subscribe"}))["ok"]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100):  # 100 MB of distinct events while the client reads nothing
            engine._publish({"ts": time.time(), "lane": "a", "type": "tool_result", "i": i,
                             "output": f"{i:03d}" + "x" * 1_000_000})
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 16 << 20, f"the engine holds {held / 2**20:.0f} MB for one stalled client"
    seen = []
    while not seen or seen[-1].get("i") != 99:  # the client reads again: it can recover
        seen.append(json.loads(await asyncio.wait_for(reader.readline(), 10))["event"])
    kinds = [e["type"] for e in seen]
    assert "resync" in kinds and kinds.index("resync") < len(kinds) - 1
    writer.close()


async def test_the_ui_takes_a_new_snapshot_and_replays_what_it_missed_after_a_resync(served, monkeypatch):
    from autoresearch_tui.tui.bridge import EngineBridge
    from autoresearch_tui.tui.store import LaneStore

    engine, server = served
    monkeypatch.setattr(server_module, "SUBSCRIBER_QUEUE_BYTES", 1 << 20, raising=False)
    store = LaneStore()
    bridge = EngineBridge(server.path, store)
    await bridge.attach("a")
    lane = engine.lanes["a"]
    for i in range(60):  # 3 MB in one burst: more than the client's queue may hold
        lane.emit("assistant_text", text=f"burst {i} " + "y" * 50_000)
    await wait_until(lambda: any(alert.title == "resync" for alert in store.alerts), timeout=20,
                     what="the resync")
    await wait_until(lambda: any("burst 59 " in line for line in store.feed("a").lines), timeout=20,
                     what="the missed events")
    lines = list(store.feed("a").lines)
    await bridge.close()
    assert [sum(f"burst {i} " in line for line in lines) for i in range(60)] == [1] * 60


async def test_connections_are_capped_and_idle_ones_time_out(served, monkeypatch):
    engine, server = served
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 5)
    monkeypatch.setattr(server_module, "HELLO_TIMEOUT_S", 0.5)
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 1.0)
    held = [await raw_client(server.path) for _ in range(5)]
    for _reader, _writer, ask in held[:4]:
        assert (await ask({"id": 1, "op": "hello", "version": 1}))["ok"]
    extra_reader, extra_writer, _ = await raw_client(server.path)
    refused = json.loads(await asyncio.wait_for(extra_reader.readline(), 10))
    assert refused["ok"] is False and "too many connections" in refused["error"]
    assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # and closed
    # The fifth never said hello; the others went quiet: all are closed in time.
    for reader, _writer, _ask in held:
        last = None
        while line := await asyncio.wait_for(reader.readline(), 10):
            last = json.loads(line)
        assert last is not None and "closing this connection" in last["error"]
    _reader, _writer, ask = await raw_client(server.path)
    assert (await ask({"id": 2, "op": "hello", "version": 1}))["ok"]  # room again
    subscribed_reader, _w, subscribe = await raw_client(server.path)
    await subscribe({"id": 3, "op": "hello", "version": 1})
    await subscribe({"id": 4, "op": "subscribe"})
    await asyncio.sleep(1.5)  # a subscribed client (a TUI) is never idle
    engine._publish({"ts": time.time(), "lane": "a", "type": "warning", "message": "still here"})
    assert "still here" in (await asyncio.wait_for(subscribed_reader.readline(), 5)).decode()


async def test_hostile_requests_get_one_line_answers_and_the_connection_survives(served, caplog):
    engine, server = served
    reader, writer, ask = await raw_client(server.path)
    assert (await ask({"id": 1, "op": "hello", "version": 1}))["ok"]

    async def raw(line: bytes) -> dict:
        writer.write(line + b"\n")
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), 10))

    deep = await raw(b"[" * 100_000)
    assert deep["ok"] is False and "nested too deeply" in deep["error"]
    types = await ask({"id": 2, "op": "history", "lane": "a", "types": 5})
    assert types["ok"] is False and "'types' must be a list" in types["error"]
    traversal = await ask({"id": 3, "op": "run_details", "lane": "a", "run_id": "../../../etc/passwd"})
    assert traversal["ok"] is False and "run number" in traversal["error"]
    newline = await ask({"id": 4, "op": "add_lane", "name": "x\n"})
    assert newline["ok"] is False and newline["error"].startswith("invalid lane name")
    assert "validation error" not in newline["error"] and "\n" not in newline["error"]
    hostile_lane = await ask({"id": 5, "op": "pause", "lane": "\x1b]0;pwned\x07\x9d0;x\x9c"})
    assert hostile_lane["ok"] is False
    assert (await ask({"id": 6, "op": "ping"}))["ok"] is True  # still connected
    writer.close()
    assert "x" not in engine.lanes  # nothing was added
