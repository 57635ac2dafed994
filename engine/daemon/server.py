"""The engine as a daemon: one per workspace, reachable on a private unix socket.

Closing the terminal or losing SSH never stops research: the TUI is only a client. The
daemon holds an exclusive `flock` on `.autoresearch/engine.lock` for its whole life, so
the lock cannot go stale (the kernel drops it when the process dies, even on kill -9);
the pid written inside is informational.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine import protocol
from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.daemon.control import acquire_lock, log_path
from autoresearch_tui.engine.supervisor import Engine, EngineError
from autoresearch_tui.engine.core.events import Event, tail_events
from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.engine.core.secrets import redact, redact_values
from autoresearch_tui.engine.workspace import Workspace

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
"""More is a leak or an attack: each holds a file descriptor the benchmarks may need."""
HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 600.0
"""A connection that is not subscribed and sends nothing for this long is closed."""
SUBSCRIBER_QUEUE_BYTES = 16 * 1024 * 1024
"""Encoded events waiting for one slow client. Past this its backlog is dropped and it gets a
`resync` event: it takes a new snapshot and replays what it missed from disk."""


# ---------------------------------------------------------------------------------- server
class EngineServer:
    def __init__(self, engine: Engine, path: Path):
        self.engine = engine
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self.stop_requested = asyncio.Event()
        self._connections: set[asyncio.Task] = set()
        self._inode: int | None = None

    async def start(self) -> None:
        protocol.check_private_dir(self.path.parent, create=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # stale: we hold the workspace lock, so nobody else serves it
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connection, path=str(self.path), limit=protocol.MAX_LINE_BYTES)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino

    def socket_intact(self) -> bool:
        try:
            return self.path.stat().st_ino == self._inode
        except OSError:
            return False

    async def keep_socket(self, period_s: float = 2.0) -> None:
        """Recreate the socket if it vanishes (tmp cleaners, a deleted runtime folder): an
        engine nobody can reach would run on unseen. Connections already open go on."""
        while True:
            await asyncio.sleep(period_s)
            if self.socket_intact():
                continue
            log.warning("the socket %s vanished; recreating it", self.path)
            old = self._server
            try:
                await self.start()
            except Exception as exc:  # e.g. its folder now belongs to someone else: say so, retry
                log.error("cannot recreate the socket %s: %s", self.path, exc)
                continue
            if old is not None:
                old.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
        for task in list(self._connections):
            task.cancel()
        if self.socket_intact():  # never remove a socket that is not ours
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("refused a connection: %d already open", len(self._connections))
            with contextlib.suppress(Exception):
                writer.write(protocol.encode({"id": None, "ok": False, "error":
                                              f"too many connections ({MAX_CONNECTIONS} open); try again later"}))
                await asyncio.wait_for(writer.drain(), timeout=2)
            writer.close()
            return
        task = asyncio.current_task()
        if task:
            self._connections.add(task)
        connection = _Connection(self, reader, writer)
        try:
            await connection.serve()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            connection.close()
            if task:
                self._connections.discard(task)


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class _Connection:
    def __init__(self, server: EngineServer, reader, writer):
        self.server = server
        self.engine = server.engine
        self.reader = reader
        self.writer = writer
        self.greeted = False
        self.queue: deque[tuple[float | None, bytes]] = deque()  # (event ts, encoded message)
        self.replayed_until: float | None = None
        self.queued_bytes = 0
        self._queued = asyncio.Event()
        self.dropped = 0
        self.unsubscribe = None
        self.pump: asyncio.Task | None = None
        self.lanes: set[str] | None = None
        self.lagged = False

    async def serve(self) -> None:
        uid = peer_uid(self.writer.get_extra_info("socket"))
        if uid is not None and uid != os.getuid():
            log.warning("refused a connection from uid %s", uid)
            await self.send({"id": None, "ok": False, "error": "connection refused: another user"})
            return
        while True:
            timeout = None if self.pump is not None else IDLE_TIMEOUT_S if self.greeted else HELLO_TIMEOUT_S
            try:
                line = await asyncio.wait_for(self.reader.readline(), timeout)
            except asyncio.TimeoutError:
                await self.send({"id": None, "ok": False,
                                 "error": f"no request for {timeout:.0f}s: closing this connection"})
                return
            except (asyncio.LimitOverrunError, ValueError):
                await self.send({"id": None, "ok": False,
                                 "error": f"request longer than {protocol.MAX_LINE_BYTES} bytes"})
                return
            except ConnectionError:
                return
            if not line:
                return
            if not line.strip():
                continue
            request_id = protocol.request_id_of(line)
            try:
                request = protocol.parse_request(line)
                reply = await self.dispatch(request)
            except protocol.ProtocolError as exc:
                reply = {"ok": False, "error": str(exc)}
            except EngineError as exc:
                reply = {"ok": False, "error": str(exc)}
            except Exception as exc:  # the engine survives any one request
                log.exception("request failed")
                reply = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
            await self.send({"id": request_id, **reply})

    async def send(self, message: dict[str, Any]) -> None:
        """A reply or a replayed event: every string redacted on its way out (a ledger row, a
        run's log, a client-supplied id may carry a key)."""
        await self.send_raw(protocol.encode(redact_values(message)))

    async def send_raw(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one validated request with its handler, `op_<name>` (one per protocol op)."""
        op = request["op"]
        if op != "hello" and not self.greeted:
            raise protocol.ProtocolError("say hello first: {\"op\": \"hello\", \"version\": 1}")
        if "lane" in request:
            self.engine.lane(request["lane"])  # an unknown lane is refused the same way everywhere
        return await getattr(self, f"op_{op}")(request)

    # -- one handler per op in protocol.OPS (tests check the two lists are the same)
    async def op_hello(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["version"] != protocol.PROTOCOL_VERSION:
            return {"ok": False, "version": protocol.PROTOCOL_VERSION,
                    "error": f"protocol version {request['version']!r} not supported "
                             f"(engine speaks {protocol.PROTOCOL_VERSION})"}
        self.greeted = True
        return {"ok": True, "version": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
                "workspace": str(self.engine.workspace.root)}

    async def op_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    async def op_snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "snapshot": self.engine.snapshot()}

    async def op_subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.subscribe(request.get("lanes"), request.get("since"))

    async def op_unsubscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stop_pump()
        return {"ok": True}

    async def op_history(self, request: dict[str, Any]) -> dict[str, Any]:
        types = set(request["types"]) if request.get("types") else None
        events = await asyncio.to_thread(
            tail_events, self.engine.workspace.events_path(request["lane"]), request.get("limit", 500),
            request.get("before"), types)
        return {"ok": True, "events": events}

    async def op_ledger(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **(await self.engine.ledger(request["lane"]))}

    async def op_run_details(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **(await self.engine.run_details(request["lane"], request["run_id"]))}

    async def op_pause(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": self.engine.pause(request["lane"])}

    async def op_resume(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": self.engine.resume(request["lane"])}

    async def op_retrospective(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": self.engine.retrospective_now(request["lane"])}

    async def op_send_message(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": self.engine.send_message(request["lane"], request["text"])}

    async def op_stop_lane(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": await self.engine.stop_lane(request["lane"])}

    async def op_add_lane(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message": self.engine.add_lane(request["name"], request.get("focus", ""))}

    async def op_merge_preview(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **(await self.engine.merge_preview(request["lane"]))}

    async def op_merge(self, request: dict[str, Any]) -> dict[str, Any]:
        result = await self.engine.merge_lane(request["lane"])
        return {"ok": bool(result.get("ok")), "result": result,
                **({} if result.get("ok") else {"error": result.get("message", "merge failed")})}

    async def op_stop_engine(self, request: dict[str, Any]) -> dict[str, Any]:
        self.server.stop_requested.set()
        return {"ok": True, "message": "engine stopping: lanes stop and logs are flushed"}

    async def subscribe(self, lanes: list[str] | None, since: float | None) -> dict[str, Any]:
        self.stop_pump()
        for name in lanes or []:
            self.engine.lane(name)
        self.lanes = set(lanes) if lanes else None
        self.lagged = False
        self.queue.clear()
        self.queued_bytes = 0
        self.replayed_until = None
        unsubscribe_events = self.engine.subscribe(self._enqueue)
        unsubscribe_lanes = self.engine.subscribe_lane_snapshots(self._enqueue_lane_snapshot)
        self.unsubscribe = lambda: (unsubscribe_events(), unsubscribe_lanes())
        replayed = 0
        if since is not None:
            # Events written while this client was away come from disk, then the live feed.
            # Live events that arrive meanwhile wait in the queue; duplicates are dropped by ts.
            names = lanes or list(self.engine.lanes)
            backlog: list[Event] = []
            for name in names:
                backlog += await asyncio.to_thread(
                    tail_events, self.engine.workspace.events_path(name), 10000, None, None, since)
            backlog.sort(key=lambda e: e.get("ts", 0))
            for event in backlog:
                await self.send({"event": event})
            replayed = len(backlog)
            self.replayed_until = backlog[-1]["ts"] if backlog else since
        self.pump = asyncio.create_task(self._pump())
        return {"ok": True, "replayed": replayed}

    def _enqueue(self, event: Event) -> None:
        if self.lanes is not None and event.get("lane") not in self.lanes:
            return
        ts = event.get("ts", 0)
        # Events come redacted from the event log; encoded once, here, for this client.
        self._queue_message(protocol.encode({"event": event}), ts if isinstance(ts, (int, float)) else 0)

    def _enqueue_lane_snapshot(self, lane_snapshot: dict[str, Any]) -> None:
        if self.lanes is not None and lane_snapshot.get("name") not in self.lanes:
            return
        self._queue_message(protocol.encode(redact_values({"lane_snapshot": lane_snapshot})), None)

    def _queue_message(self, data: bytes, ts: float | None) -> None:
        """Queue one encoded message; `ts` None: never skipped as already replayed."""
        if self.queued_bytes + len(data) > SUBSCRIBER_QUEUE_BYTES:
            # Too far behind: drop its backlog (it is on disk) and tell it to resync.
            if not self.lagged:
                log.warning("a client fell %d bytes behind; dropping its backlog and asking it to resync",
                            self.queued_bytes)
            self.dropped += len(self.queue) + 1
            self.queue.clear()
            self.queued_bytes = 0
            self.lagged = True
            self._queued.set()
            return
        self.queue.append((ts, data))
        self.queued_bytes += len(data)
        self._queued.set()

    async def _pump(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            if self.lagged:
                self.lagged = False
                dropped, self.dropped = self.dropped, 0
                await self.send({"event": {"ts": time.time(), "lane": "-", "type": "resync",
                                           "dropped": dropped,
                                           "reason": "client fell behind; take a new snapshot"}})
            while self.queue and not self.lagged:
                ts, data = self.queue.popleft()
                self.queued_bytes -= len(data)
                if ts is not None and self.replayed_until is not None and ts <= self.replayed_until:
                    continue  # replayed from disk already
                await self.send_raw(data)

    def stop_pump(self) -> None:
        if self.unsubscribe:
            self.unsubscribe()
            self.unsubscribe = None
        if self.pump:
            self.pump.cancel()
            self.pump = None

    def close(self) -> None:
        self.stop_pump()
        with contextlib.suppress(Exception):
            self.writer.close()


# ---------------------------------------------------------------------------------- process
async def serve_forever(config: Config, *, env: dict[str, str] | None = None) -> int:
    workspace = Workspace(config)
    lock = acquire_lock(workspace)
    engine = Engine(config, env=env)
    server = EngineServer(engine, protocol.socket_path(workspace.root))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, server.stop_requested.set)
    keeper: asyncio.Task | None = None
    try:
        await server.start()
        keeper = asyncio.create_task(server.keep_socket(), name="socket-keeper")
        log.info("engine %s serving %s on %s", os.getpid(), workspace.root, server.path)
        await engine.start()
        await server.stop_requested.wait()
        log.info("engine stopping")
        await engine.stop()
    finally:
        if keeper is not None:
            keeper.cancel()
        await server.close()
        lock.close()
    log.info("engine stopped")
    return 0


async def run_foreground(config: Config, *, duration: float | None = None,
                         on_event: Callable[[Event], None] | None = None,
                         env: dict[str, str] | None = None) -> int:
    """`autoresearch-tui run`: the engine with no socket, until Ctrl+C, SIGTERM or `duration`.

    It takes the workspace lock exactly like the daemon: two engines on one workspace would
    kill each other's benchmarks and write the same logs."""
    workspace = Workspace(config)
    lock = acquire_lock(workspace)
    try:
        engine = Engine(config, env=env)
        if on_event:
            engine.subscribe(on_event)
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_event.set)
        try:
            await engine.run_until_stopped(duration=duration, stop_event=stop_event)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        lock.close()
    return 0


class SafeLogFilter(logging.Filter):
    """engine.log never holds a credential or a raw control character (a client's request
    or a tool's output can carry either): each record's text is redacted and cleaned."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: keep what there is
            message = str(record.msg)
        safe = _safe_text(message)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        if record.exc_info:  # another handler may have formatted it already: redact that too
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = _safe_text(record.exc_text)
        return True


def _safe_text(text: str) -> str:
    # clean() keeps newlines (tracebacks); other control characters and escapes go.
    return clean(redact(text))


def configure_logging(workspace: Workspace) -> None:
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    from logging.handlers import RotatingFileHandler

    handler = RotatingFileHandler(log_path(workspace), maxBytes=10 * 1024 * 1024, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SafeLogFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Per-change chatter (watchfiles, the SDK finding its CLI) would bury what matters.
    for noisy in ("watchfiles", "claude_agent_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
