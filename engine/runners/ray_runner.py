"""The engine's side of the Ray runner: asyncio, and no Ray import (docs/architecture.md, "Ray runner").

`RayRunner` owns one bridge process (engine/runners/ray_bridge.py, the Ray driver), started
with a short TCP probe of the address and a deadline on its `ray.init`; it talks to it in JSON
lines. When the bridge dies (head gone, killed, crashed), every run in flight ends as a crash
"cluster unreachable: ...", and the runner backs off (2 s, 4 s, ... up to 5 min) before it
connects again: a run that comes during the backoff waits for it (the lane shows why), then
gets one clear error if the cluster is still away. After every connect it reaps what a
previous engine left on the cluster (its actors by name in this workspace's namespace, then
bench processes that escaped their worker, on every node).

Only runs travel: the agents, forks, ledger and TUI stay on this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.config import RunnerConfig

BRIDGE_MODULE = "autoresearch_tui.engine.runners.ray_bridge"
PROBE_TIMEOUT_S = 2.0
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
CLUSTER_POLL_S = 5.0
REAP_TIMEOUT_S = 60.0
ABANDONED_STOP_S = 30.0
"""How long a run whose caller gave up may take to report its processes gone."""


class ClusterUnreachable(Exception):
    """The cluster cannot be reached; the message starts with "cluster unreachable: "."""


def workspace_id(root: Path | str) -> str:
    """This workspace on this host: the namespace of its actors and the folder of its runs
    on the workers (two hosts with the same path are two workspaces)."""
    ident = f"{socket.gethostname()}:{Path(root).resolve()}"
    return "ws-" + hashlib.sha256(ident.encode()).hexdigest()[:12]


def run_key(lane: str, run_id: str) -> str:
    """The actor's name: unique in the workspace (run ids are per lane and never reused)."""
    return f"{lane}.{run_id}"


def amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "nothing"


@dataclass
class RemoteOutcome:
    status: str
    """ok | crash | timeout | hung | cancelled"""
    exit_code: int | None = None
    reason: str = ""
    seconds: float = 0.0
    """The bench's own wall time (from its start on the worker)."""
    queued_s: float = 0.0
    placement: dict[str, Any] | None = None
    result_bytes: int = 0


@dataclass
class _Run:
    key: str
    lane: str
    run_id: str
    resources: dict[str, float]
    done: asyncio.Future
    on_event: Callable[[str, dict[str, Any]], None]
    submitted: float = field(default_factory=time.time)
    state: str = "queued"
    warning: str = ""
    placement: dict[str, Any] | None = None
    queued_s: float = 0.0
    cancel_sent: bool = False


class RayRunner:
    kind = "ray"

    def __init__(self, settings: RunnerConfig, root: Path, state_dir: Path, main_repo: Path, *,
                 python: str = sys.executable, env: dict[str, str] | None = None,
                 on_reaped: Callable[[dict[str, Any]], None] | None = None,
                 poll_s: float = CLUSTER_POLL_S):
        self.settings = settings
        self.address = settings.address
        self.workspace_id = workspace_id(root)
        self.namespace = f"autoresearch-{self.workspace_id}"
        self.state_dir = state_dir
        self.main_repo = main_repo
        """Where the [runner] ship files are read from (fork_include globs are relative to it)."""
        self.code_dir = state_dir / "ray-code"
        self.log_path = state_dir / "ray-bridge.log"
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self.on_reaped = on_reaped
        self.poll_s = poll_s
        self.engine_id = f"{os.getpid()}@{socket.gethostname()}:{int(time.time())}"
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] | None = None
        self.runs: dict[str, _Run] = {}
        self.replies: dict[str, asyncio.Future] = {}
        self.affinity: dict[str, str] = {}
        """A/B group -> the node its first run ran on."""
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self.cluster_view: dict[str, Any] | None = None
        self.backing_off: dict[str, float] = {}
        """Lanes whose run waits for the next connection attempt -> when it comes (wall time)."""
        self._connect_lock: asyncio.Lock | None = None
        self._reader: asyncio.Task | None = None
        self._poller: asyncio.Task | None = None
        self._closed = False
        self._ids = 0
        self._stopping: set[asyncio.Task] = set()
        """Stops of runs whose caller gave up (see run()); held so they are not collected."""

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.ready is not None

    async def start(self) -> None:
        """Connect in the background and keep the cluster view current."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="ray-cluster")

    async def _poll(self) -> None:
        while not self._closed:
            if not self.connected and time.monotonic() >= self.retry_at:
                with contextlib.suppress(ClusterUnreachable):
                    await self.connect()
            if self.connected:
                with contextlib.suppress(Exception):
                    view = await self._ask("cluster", timeout=15)
                    self.cluster_view = {k: view.get(k) for k in ("total", "free", "nodes")}
            await asyncio.sleep(self.poll_s)

    def _probe(self) -> None:
        """A TCP connect before anything slow: a dead head answers in at most 2 s."""
        hostport = self.address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise ClusterUnreachable(f"cluster unreachable: {hostport}: {reason}") from None

    async def connect(self) -> dict[str, Any]:
        """Start the bridge and wait until it is connected (ClusterUnreachable otherwise)."""
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self.connected:
                return self.ready or {}
            if self._closed:
                raise ClusterUnreachable("cluster unreachable: the engine is stopping")
            try:
                ready = await self._spawn()
            except ClusterUnreachable as exc:
                self._failed(str(exc))
                raise
            self.failures, self.retry_at, self.last_error = 0, 0.0, ""
        try:
            reaped = await self._ask("reap", timeout=REAP_TIMEOUT_S)
            if (reaped.get("actors") or reaped.get("processes")) and self.on_reaped:
                self.on_reaped(reaped)
        except Exception:  # a reap that fails is retried at the next connect
            pass
        return ready

    def _failed(self, error: str) -> None:
        self.failures += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (self.failures - 1))
        self.retry_at = time.monotonic() + delay
        self.last_error = error
        self.cluster_view = None

    async def _spawn(self) -> dict[str, Any]:
        if self.address != "auto":
            await asyncio.to_thread(self._probe)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env,
               # a driver whose head is gone exits after this long (Ray's default is 60 s)
               "RAY_gcs_rpc_server_reconnect_timeout_s": str(int(self.settings.lost_after_s)),
               "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-m", BRIDGE_MODULE, "--address", self.address,
                "--workspace-id", self.workspace_id, "--engine-id", self.engine_id,
                "--runtime-env", json.dumps(self.settings.runtime_env.to_ray()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
                limit=1 << 26)
        finally:
            log.close()
        ready = asyncio.get_running_loop().create_future()
        self.replies["ready"] = ready
        self._reader = asyncio.create_task(self._read_events(self.proc), name="ray-bridge-reader")
        try:
            self.ready = await asyncio.wait_for(ready, self.settings.connect_timeout_s)
        except asyncio.TimeoutError:
            self._kill_bridge()  # ray.init is stuck in C++: SIGTERM would be deferred
            raise ClusterUnreachable(f"cluster unreachable: {self.address}: Ray did not connect within "
                                     f"{self.settings.connect_timeout_s:g} s (runner.connect_timeout_s)") from None
        except ClusterUnreachable:
            self._kill_bridge()
            raise
        return self.ready

    def _kill_bridge(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.ready = None

    def _log_hint(self) -> str:
        """The Ray driver's last words about the head (it logs why it gave up)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(self.log_path) - 16384))
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if "GCS" in line and ("connect" in line.lower() or "killed" in line.lower()):
                return line.strip()[-200:]
        return ""

    async def _read_events(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        fatal = ""
        while True:
            try:
                line = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a runaway line: skip it
                continue
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not the protocol (the bridge sends its own prints to the log)
            if not isinstance(event, dict):
                continue
            kind = event.get("ev")
            if kind == "ready":
                self._resolve("ready", event)
            elif kind == "fatal":
                fatal = str(event.get("error") or "")
                self._fail("ready", ClusterUnreachable(f"cluster unreachable: {self.address}: {fatal}"))
            elif kind in ("cluster", "reaped"):
                self._resolve(event.get("id"), event)
            else:
                run = self.runs.get(event.get("key"))
                if run is not None:
                    self._on_run_event(run, kind, event)
        rc = await proc.wait()
        if self.proc is proc:
            self.ready = None
        hint = fatal or self._log_hint()
        reason = f"cluster unreachable: {self.address}: the Ray driver exited (rc={rc})" + (f": {hint}" if hint else "")
        self._fail("ready", ClusterUnreachable(reason))
        for future in list(self.replies.values()):
            if not future.done():
                future.set_exception(ClusterUnreachable(reason))
        self.replies.clear()
        lost = [run for run in self.runs.values() if not run.done.done()]
        if lost and not self._closed:
            self._failed(reason)
        for run in lost:
            run.done.set_result(RemoteOutcome("crash", reason=reason, placement=run.placement,
                                              queued_s=run.queued_s))

    def _on_run_event(self, run: _Run, kind: str | None, event: dict[str, Any]) -> None:
        if kind == "queued":
            run.warning = str(event.get("warning") or "")
            run.on_event("queued", {"resources": run.resources, "warning": run.warning or None,
                                    "pinned_node": event.get("pin_node")})
        elif kind == "started":
            run.state = "running"
            run.queued_s = float(event.get("queued_s") or 0.0)
            run.placement = {k: event.get(k) for k in (
                "node_id", "node_name", "node_ip", "hostname", "worker_pid", "bench_pid",
                "accelerator_ids", "device_env", "unpinned")}
            run.on_event("started", {**run.placement, "queued_s": run.queued_s})
        elif kind == "output":
            run.on_event("output", {"data": str(event.get("data") or "")})
        elif kind == "done" and not run.done.done():
            run.done.set_result(RemoteOutcome(
                status=str(event.get("status") or "crash"), exit_code=event.get("exit_code"),
                reason=str(event.get("reason") or ""), seconds=float(event.get("seconds") or 0.0),
                queued_s=run.queued_s, placement=run.placement,
                result_bytes=int(event.get("result_bytes") or 0)))
            if run.done.result().reason.startswith("cluster unreachable:") and not self._closed:
                # The bridge found the head gone: the driver would linger for lost_after_s and take
                # the next run only to lose it. Drop it now; the next run probes after the backoff.
                self._failed(run.done.result().reason)
                self._kill_bridge()

    def _resolve(self, key: Any, value: Any) -> None:
        future = self.replies.pop(key, None) if isinstance(key, str) else None
        if future is not None and not future.done():
            future.set_result(value)

    def _fail(self, key: str, exc: Exception) -> None:
        future = self.replies.pop(key, None)
        if future is not None and not future.done():
            future.set_exception(exc)

    async def _send(self, **command: Any) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin is None or self.ready is None:
            raise ClusterUnreachable(f"cluster unreachable: {self.address}: not connected")
        try:
            proc.stdin.write((json.dumps(command) + "\n").encode())
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnreachable(f"cluster unreachable: {self.address}: the Ray driver is gone ({exc})") from None

    async def _ask(self, op: str, timeout: float, **args: Any) -> dict[str, Any]:
        self._ids += 1
        key = f"{op}-{self._ids}"
        future = asyncio.get_running_loop().create_future()
        self.replies[key] = future
        try:
            await self._send(op=op, id=key, **args)
            return await asyncio.wait_for(future, timeout)
        finally:
            self.replies.pop(key, None)

    # ------------------------------------------------------------------ runs
    async def _wait_for_cluster(self, lane: str, should_stop: Callable[[], bool] | None) -> bool:
        """Connected (True), or the lane stopped while waiting (False); ClusterUnreachable
        when the one attempt this run gets after the backoff fails."""
        while not self.connected:
            wait = self.retry_at - time.monotonic()
            if wait <= 0:
                await self.connect()
                break
            self.backing_off[lane] = time.time() + wait
            try:
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and not self.connected:
                    if should_stop is not None and should_stop():
                        return False
                    await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            finally:
                self.backing_off.pop(lane, None)
        return True

    async def run(self, *, lane: str, run_id: str, command: str, code: Path, dest: Path,
                  env: dict[str, str], timeout_s: float, hang_timeout_s: float,
                  affinity: str | None = None,
                  on_event: Callable[[str, dict[str, Any]], None] = lambda kind, fields: None,
                  should_stop: Callable[[], bool] | None = None) -> RemoteOutcome:
        """Run `command` on a worker with [runner] resources; `code` is the tar to unpack there
        (deleted once sent). `on_event(kind, fields)`: queued, started, output."""
        try:
            if not await self._wait_for_cluster(lane, should_stop):
                return RemoteOutcome("cancelled", reason="the lane stopped while the cluster was unreachable")
        except ClusterUnreachable as exc:
            return RemoteOutcome("crash", reason=str(exc))
        key = run_key(lane, run_id)
        resources = dict(self.settings.resources)
        run = _Run(key, lane, run_id, resources, asyncio.get_running_loop().create_future(), on_event)
        self.runs[key] = run
        pin = self.affinity.get(affinity) if affinity else None
        abandoned = False
        try:
            try:
                await self._send(op="run", key=key, run_id=run_id, lane=lane, command=command,
                                 code=str(code), dest=str(dest), env=env, resources=resources,
                                 timeout_s=timeout_s, hang_timeout_s=hang_timeout_s, pin_node=pin)
            except ClusterUnreachable as exc:
                return RemoteOutcome("crash", reason=str(exc))
            while True:
                done, _ = await asyncio.wait({run.done}, timeout=0.25)
                if done:
                    break
                if should_stop is not None and not run.cancel_sent and should_stop():
                    await self.cancel(run, "the lane is stopping")
            outcome = run.done.result()
        except asyncio.CancelledError:
            # The caller gave up (the agent's turn was interrupted, the engine stops). Under the
            # SDK's anyio cancel scopes every further await here would be cancelled at once,
            # so the stop and the wait for it run in a task of their own, and the run stays
            # in `runs` until its processes are reported gone (Lane.stop waits for that:
            # wait_lane_idle).
            abandoned = True
            task = asyncio.get_running_loop().create_task(
                self._stop_abandoned(run, "the engine stopped waiting for the run"), name=f"ray-stop-{key}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
            raise
        finally:
            if not abandoned:
                self.runs.pop(key, None)
        node = (outcome.placement or {}).get("node_id")
        if affinity and node and affinity not in self.affinity:
            self.affinity[affinity] = node
        if pin and outcome.placement is not None:
            outcome.placement["pinned_node"] = pin
            outcome.placement["same_node"] = node == pin
        return outcome

    async def _stop_abandoned(self, run: _Run, reason: str) -> None:
        try:
            if not run.cancel_sent:
                await self.cancel(run, reason)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.done), ABANDONED_STOP_S)
        finally:
            if self.runs.get(run.key) is run:
                self.runs.pop(run.key)

    async def wait_lane_idle(self, lane: str, timeout: float = ABANDONED_STOP_S + 5) -> bool:
        """Wait until none of the lane's remote runs is in flight: a stopped run's processes
        were reported gone. False when that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while any(run.lane == lane for run in self.runs.values()):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def cancel(self, run: _Run, reason: str) -> None:
        run.cancel_sent = True
        with contextlib.suppress(ClusterUnreachable):
            await self._send(op="cancel", key=run.key, reason=reason)

    # ------------------------------------------------------------------ what clients see
    def lane_status(self, lane: str) -> dict[str, Any] | None:
        """Like a lease: {"state": "waiting", "text"} while the run queues on the cluster (or
        waits out the backoff), {"state": "leased", "node", "text"} while it runs, else None."""
        if lane in self.backing_off:
            left = max(0, round(self.backing_off[lane] - time.time()))
            return {"state": "waiting", "runner": "ray", "position": None,
                    "text": f"{self.last_error or 'cluster unreachable'}; next try in {left} s"}
        for run in self.runs.values():
            if run.lane != lane:
                continue
            if run.state == "queued":
                text = f"queued on the cluster for {amounts(run.resources)}"
                if run.warning:
                    text += f" ({run.warning})"
                return {"state": "waiting", "runner": "ray", "position": None, "since": run.submitted,
                        "resources": run.resources, "warning": run.warning or None, "text": text}
            placement = run.placement or {}
            name = placement.get("node_name") or str(placement.get("node_id") or "?")[:12]
            chips = ", ".join(f"{kind} {','.join(ids)}" for kind, ids in (placement.get("accelerator_ids") or {}).items())
            return {"state": "leased", "runner": "ray", "node": name, "node_id": placement.get("node_id"),
                    "node_ip": placement.get("node_ip"), "since": run.submitted + run.queued_s,
                    "text": f"on node {name} ({placement.get('node_ip')})" + (f", {chips}" if chips else "")}
        return None

    def status(self) -> dict[str, Any]:
        """The cluster for snapshots: connection, free and total resources, nodes, runs."""
        if self.connected:
            connection, error = "connected", None
        elif self.last_error:
            connection, error = "unreachable", self.last_error
        else:
            connection, error = "connecting", None
        view = self.cluster_view or {}
        return {
            "runner": "ray", "address": self.address, "namespace": self.namespace,
            "connection": connection, "error": error,
            "retry_in_s": round(max(0.0, self.retry_at - time.monotonic()), 1) if error else None,
            "total": view.get("total"), "free": view.get("free"),
            "nodes": [n for n in view.get("nodes") or [] if n.get("alive")],
            "resources_per_run": dict(self.settings.resources),
            "queued": sum(1 for r in self.runs.values() if r.state == "queued"),
            "running": sum(1 for r in self.runs.values() if r.state == "running"),
        }

    async def close(self) -> None:
        """Stop the bridge (Ray kills its actors with it); runs still in flight end as crashes."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                await self._send(op="exit")
            try:
                await asyncio.wait_for(proc.wait(), 25)
            except asyncio.TimeoutError:
                self._kill_bridge()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)
