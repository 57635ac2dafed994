"""The Ray driver: a child process of the engine, which never imports Ray itself.

`python -m autoresearch_tui.engine.runners.ray_bridge --address A --workspace W ...` connects
to the cluster, then reads commands (JSON lines) on stdin and writes events (JSON lines) on
the protocol fd it was given (fd 1 at start; Ray prints into a driver's stdout, so fd 1 is
sent to the log once the protocol has its own copy). Why a child: a driver whose head is
gone exits the whole process after `gcs_rpc_server_reconnect_timeout_s`, and `ray.init`
against a dead address blocks for minutes and defers SIGTERM (docs/architecture.md, "Ray
runner"). The engine kills this process on its deadlines and turns its death into
"cluster unreachable: ..." for every run in flight.

Commands: `run` (one benchmark), `cancel`, `cluster` (free and total resources, nodes),
`reap` (a previous engine's leftovers), `exit`.
Events: `ready`, `fatal`, `queued`, `started`, `output`, `done`, `cluster`, `reaped`, `error`.

One run: a named, non-detached `RunHost` actor (name = the run's key, namespace per
workspace, max_restarts=0, max_task_retries=0) on a node with the run's resources; its
output and metrics are streamed into the run folder on this host as they come (metrics from
the first `profile` record on are held back until the profile itself has arrived, so the
metrics watcher never summarizes a profile that is not there yet); at the end the worker's
run folder comes back as a tar through the object store and is unpacked over the run folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import io
import json
import os
import signal
import socket
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from autoresearch_tui.engine.devices import libtpu_lock
from autoresearch_tui.engine.devices.slots import TPU_BASE_PORT, TPU_CHIPS_PER_PROCESS_BOUNDS
from autoresearch_tui.engine.runners import ray_worker

ENGINE_OWNED = {"run.json"}
"""Files of the run folder that only the engine writes: never taken from the worker."""
STREAMED = ("run.log", "metrics.jsonl")
SWEEP_TIMEOUT_S = 30
RAY_CRASHES = ("ActorDiedError", "ActorUnavailableError", "NodeDiedError", "WorkerCrashedError",
               "ActorUnschedulableError", "RayActorError", "ObjectLostError", "OwnerDiedError")


def reason_of(exc: BaseException) -> str:
    """One line for the ledger and the TUI from a Ray exception."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(lines[:3])
    return f"{type(exc).__name__}: {text}"[:400].rstrip(": ")


class Cancelled(Exception):
    pass


class RunFiles:
    """The run folder on this host, filled while the run streams: run.log and metrics.jsonl
    get exactly the worker's bytes, in order, so the worker's final copies only add a tail."""

    def __init__(self, dest: Path, command: str):
        self.dest = dest
        dest.mkdir(parents=True, exist_ok=True)
        self.log = open(dest / "run.log", "ab")
        self.log_written = 0
        self.metrics = open(dest / "metrics.jsonl", "ab")
        self.metrics_written = 0
        self.partial = b""
        self.held = b""
        self.holding = False
        self.write_log(f"$ {command}\n".encode())

    def write_log(self, data: bytes) -> None:
        self.log.write(data)
        self.log.flush()
        self.log_written += len(data)

    def write_metrics(self, data: bytes) -> None:
        if self.holding:
            self.held += data
            return
        self.partial += data
        lines = self.partial.split(b"\n")
        self.partial = lines.pop()
        for index, line in enumerate(lines):
            if b'"profile"' in line and _is_profile_record(line):
                self.holding = True
                rest = b"\n".join(lines[index:]) + b"\n" + self.partial
                self.held, self.partial = rest, b""
                return
            self.metrics.write(line + b"\n")
            self.metrics_written += len(line) + 1
        self.metrics.flush()

    def unpack(self, data: bytes) -> int:
        """The worker's run folder over this one: run.log and metrics.jsonl get the tail this
        host does not have yet; run.json stays the engine's. Returns the files written."""
        count = 0
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                name = os.path.normpath(member.name)
                if name in ENGINE_OWNED:
                    continue
                if name in STREAMED and member.isfile():
                    content = archive.extractfile(member).read()
                    written = self.log_written if name == "run.log" else self.metrics_written
                    handle = self.log if name == "run.log" else self.metrics
                    if len(content) > written:
                        handle.write(content[written:])
                        handle.flush()
                    if name == "metrics.jsonl":
                        self.metrics_written = max(written, len(content))
                        self.held = self.partial = b""
                    else:
                        self.log_written = max(written, len(content))
                    count += 1
                    continue
                archive.extract(member, self.dest, filter="data")
                count += 1
        return count

    def close(self, footer: str = "") -> None:
        if self.partial or self.held:  # the result never came: keep what was streamed
            self.metrics.write(self.partial + self.held)
            self.partial = self.held = b""
        if footer:
            self.write_log(f"\n[autoresearch] {footer}\n".encode())
        self.log.close()
        self.metrics.close()


def _is_profile_record(line: bytes) -> bool:
    try:
        return json.loads(line).get("kind") == "profile"
    except (ValueError, AttributeError):
        return False


class Bridge:
    def __init__(self, address: str, workspace_id: str, engine_id: str, runtime_env: dict[str, Any],
                 out: TextIO):
        self.address, self.workspace_id, self.engine_id = address, workspace_id, engine_id
        self.namespace = f"autoresearch-{workspace_id}"
        self.runtime_env = runtime_env
        self.runs: dict[str, dict[str, Any]] = {}
        self.out = out
        self.out_lock = threading.Lock()
        self.partition = {"bounds": dict(TPU_CHIPS_PER_PROCESS_BOUNDS), "base_port": TPU_BASE_PORT}

    def emit(self, **event: Any) -> None:
        event.setdefault("ts", time.time())
        line = json.dumps(event, default=str)
        with self.out_lock:
            self.out.write(line + "\n")
            self.out.flush()

    async def serve(self) -> None:
        import ray
        import ray.cloudpickle

        started = time.monotonic()
        ray.init(address=self.address, namespace=self.namespace, logging_level="ERROR",
                 log_to_driver=False, runtime_env=self.runtime_env or None)
        self.ray = ray
        # Workers do not have this package: ship the worker code by value.
        ray.cloudpickle.register_pickle_by_value(ray_worker)
        ray.cloudpickle.register_pickle_by_value(libtpu_lock)
        self.actor_class = ray.remote(ray_worker.RunHost)
        self.sweep = ray.remote(num_cpus=0, max_retries=0)(ray_worker.sweep_task)
        self.emit(ev="ready", init_s=round(time.monotonic() - started, 3), namespace=self.namespace,
                  client=self.address.startswith("ray://"), ray_version=ray.__version__)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        tasks: set[asyncio.Task] = set()
        while True:
            line = await reader.readline()
            if not line:
                break  # the engine is gone: exit, and Ray kills this driver's actors
            try:
                command = json.loads(line)
                op = command["op"]
            except (ValueError, KeyError, TypeError):
                self.emit(ev="error", error=f"bad command {line[:80]!r}")
                continue
            if op == "run":
                self.runs[command["key"]] = {"cancel": None}
                task = asyncio.create_task(self.run(command))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif op == "cancel":
                run = self.runs.get(command.get("key"))
                if run is not None:
                    run["cancel"] = command.get("reason") or "cancelled"
            elif op == "cluster":
                self.emit(ev="cluster", id=command.get("id"), **await asyncio.to_thread(self.cluster))
            elif op == "reap":
                self.emit(ev="reaped", id=command.get("id"), **await asyncio.to_thread(self.reap))
            elif op == "exit":
                break
        for run in self.runs.values():
            run["cancel"] = run["cancel"] or "the engine is stopping"
        if tasks:
            await asyncio.wait(tasks, timeout=20)

    # ------------------------------------------------------------------ the cluster
    def cluster(self) -> dict[str, Any]:
        ray = self.ray

        def keep(resources: dict[str, float]) -> dict[str, float]:
            return {k: v for k, v in resources.items()
                    if not k.startswith("node:") and k not in ("object_store_memory", "memory")
                    and not k.startswith("accelerator_type:")}

        nodes = [{"node_id": n["NodeID"], "name": n.get("NodeName") or "", "ip": n["NodeManagerAddress"],
                  "alive": n["Alive"], "resources": keep(n.get("Resources") or {})} for n in ray.nodes()]
        total, free = keep(ray.cluster_resources()), ray.available_resources()
        # A fully used resource is absent from available_resources(): it is 0, not unknown.
        return {"total": total, "free": {k: free.get(k, 0.0) for k in total}, "nodes": nodes}

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n["Alive"]]

    def infeasible(self, resources: dict[str, float]) -> str:
        """A request no alive node can ever hold waits forever in Ray: say so at once."""
        want = {k: v for k, v in resources.items() if v}
        nodes = [n.get("Resources") or {} for n in self._alive_nodes()]
        if any(all(node.get(k, 0) >= v for k, v in want.items()) for node in nodes):
            return ""
        largest = max(nodes, key=lambda r: tuple(r.get(k, 0) for k in want), default={})
        return (f"no node of the cluster has {_amounts(want)} (the largest has "
                f"{_amounts({k: largest.get(k, 0) for k in want})}): the run waits for one to join")

    def head_unreachable(self) -> str:
        """"<head>: <why>" when the head no longer takes connections, else ""."""
        address = self.address.removeprefix("ray://")
        if address == "auto":
            with contextlib.suppress(Exception):
                address = self.ray.get_runtime_context().gcs_address
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        except (OSError, ValueError) as exc:
            return f"{address}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        return ""

    def node_name(self, node_id: str) -> str:
        with contextlib.suppress(Exception):
            for node in self.ray.nodes():
                if node["NodeID"] == node_id:
                    return node.get("NodeName") or ""
        return ""

    def reap(self) -> dict[str, Any]:
        """A previous engine's leftovers: this workspace's run actors this bridge did not
        start, then bench processes that escaped their worker, on every alive node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        actors: list[str] = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] != self.namespace or entry["name"] in self.runs:
                continue
            with contextlib.suppress(Exception):
                ray.kill(ray.get_actor(entry["name"], namespace=self.namespace), no_restart=True)
                actors.append(entry["name"])
        if actors:
            time.sleep(1)  # let the killed workers exit, so their folders count as dead
        refs = [self.sweep.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(self.workspace_id) for n in self._alive_nodes()]
        processes: list[str] = []
        with contextlib.suppress(Exception):
            for result in ray.get(refs, timeout=SWEEP_TIMEOUT_S):
                processes += result["killed"]
        return {"actors": actors, "processes": processes}

    def sweep_node_later(self, node_id: str) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        with contextlib.suppress(Exception):
            self.sweep.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
                               ).remote(self.workspace_id)

    # ------------------------------------------------------------------ one run
    def _actor(self, command: dict[str, Any], pin: str | None):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        resources = dict(command.get("resources") or {})
        options: dict[str, Any] = dict(
            name=command["key"], namespace=self.namespace, max_restarts=0, max_task_retries=0,
            max_concurrency=4, num_cpus=resources.pop("CPU", 0), num_gpus=resources.pop("GPU", 0),
            resources=resources)
        if "memory" in resources:
            options["memory"] = resources.pop("memory")
        if pin:  # an A/B run waits for the node of the runs it is compared with
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(pin, soft=True)
        tags = {"workspace_id": self.workspace_id, "key": command["key"], "run_id": command["run_id"],
                "lane": command.get("lane", ""), "engine": self.engine_id}
        return self.actor_class.options(**options).remote(tags, self.partition)

    async def _start(self, command: dict[str, Any], state: dict[str, Any], submitted: float):
        """Create the actor and start the bench; until then the run is queued. Returns
        (actor, placement); a pinned run whose node is gone is resubmitted once unpinned."""
        ray = self.ray
        pin = command.get("pin_node")
        code = ray.put(Path(command["code"]).read_bytes())
        while True:
            actor = self._actor(command, pin)
            state["actor"] = actor
            start = asyncio.ensure_future(actor.start.remote(code, command["command"], command.get("env") or {}))
            try:
                while True:
                    done, _ = await asyncio.wait({start}, timeout=0.25)
                    if done:
                        return actor, start.result()
                    if state["cancel"]:
                        raise Cancelled(state["cancel"])
            except Exception as exc:
                if pin and type(exc).__name__ in RAY_CRASHES and not state["cancel"]:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
                    state["unpinned"] = f"the node {pin[:12]} of the runs it is compared with is gone ({reason_of(exc)[:120]})"
                    pin = None
                    await asyncio.sleep(0.5)  # the killed actor's name is freed asynchronously
                    continue
                raise

    async def run(self, command: dict[str, Any]) -> None:
        ray = self.ray
        key = command["key"]
        state = self.runs[key]
        state.update(actor=None, unpinned=None)
        submitted = time.monotonic()
        status, exit_code, reason, placement, footer = "crash", None, "", None, ""
        files = RunFiles(Path(command["dest"]), command["command"])
        seconds = 0.0
        result_bytes = 0
        try:
            problem = await asyncio.to_thread(self.infeasible, command.get("resources") or {})
            self.emit(ev="queued", key=key, resources=command.get("resources") or {},
                      pin_node=command.get("pin_node"), **({"warning": problem} if problem else {}))
            actor, placement = await self._start(command, state, submitted)
            placement["node_name"] = await asyncio.to_thread(self.node_name, placement["node_id"])
            started = time.monotonic()
            self.emit(ev="started", key=key, queued_s=round(started - submitted, 3),
                      unpinned=state["unpinned"], **placement)
            out_offset = metrics_offset = 0
            last_activity = started
            timeout_s = float(command.get("timeout_s") or 900)
            hang_s = float(command.get("hang_timeout_s") or 300)
            while True:
                chunk = await actor.read.remote(out_offset, metrics_offset, 1.0)
                now = time.monotonic()
                if chunk["out"]:
                    out_offset += len(chunk["out"])
                    last_activity = now
                    files.write_log(chunk["out"])
                    self.emit(ev="output", key=key, data=chunk["out"].decode("utf-8", "replace"))
                if chunk["metrics"]:
                    metrics_offset += len(chunk["metrics"])
                    last_activity = now
                    files.write_metrics(chunk["metrics"])
                if chunk["rc"] is not None:
                    exit_code = chunk["rc"]
                    status = "ok" if exit_code == 0 else "crash"
                    break
                why = ""
                if state["cancel"]:
                    why = "cancelled"
                elif now - started > timeout_s:
                    why = "timeout"
                elif now - last_activity > hang_s:
                    why = "hung"
                if why:
                    exit_code = await actor.stop.remote(why)
                    status = why
                    reason = state["cancel"] if why == "cancelled" else ""
                    footer = {"cancelled": f"killed: {state['cancel']}",
                              "timeout": f"killed: exceeded run_timeout_s={timeout_s:g}",
                              "hung": f"killed: no output and no new metrics for {hang_s:g}s (hang_timeout_s)",
                              }[why]
                    break
            seconds = time.monotonic() - started
            data = await actor.result.remote()
            result_bytes = len(data)
            await asyncio.to_thread(files.unpack, data)
        except Cancelled as exc:
            status, reason, footer = "cancelled", f"{exc} (while queued on the cluster)", f"killed: {exc} (it never started)"
        except Exception as exc:  # ActorDiedError (the node or the worker died), ...
            status, reason = "crash", reason_of(exc)
            if placement is None and type(exc).__name__ not in RAY_CRASHES:
                reason = f"the run could not be submitted: {reason}"
            head = await asyncio.to_thread(self.head_unreachable)
            if head:  # the whole cluster went away, not just this run's worker
                reason = f"cluster unreachable: {head} ({reason[:200]})"
            footer = f"crash: {reason}"
        finally:
            actor = state.get("actor")
            if actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)  # frees the resources; kills any leftover
            if status == "crash" and placement:
                self.sweep_node_later(placement["node_id"])
            with contextlib.suppress(Exception):
                files.close(footer)
            with contextlib.suppress(OSError):
                os.unlink(command["code"])
            self.runs.pop(key, None)
            self.emit(ev="done", key=key, status=status, exit_code=exit_code, reason=reason,
                      node_id=(placement or {}).get("node_id"), seconds=round(seconds, 3),
                      result_bytes=result_bytes, wall_s=round(time.monotonic() - submitted, 3))


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "nothing"


def _die_with_parent() -> None:
    """The bridge dies with the engine, even on kill -9 (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ray_bridge")
    parser.add_argument("--address", required=True)
    parser.add_argument("--workspace-id", required=True)
    parser.add_argument("--engine-id", required=True)
    parser.add_argument("--runtime-env", default="{}")
    args = parser.parse_args(argv)
    _die_with_parent()
    # Ray prints into a driver's stdout ("(raylet) The node ... has been marked dead"): the
    # protocol keeps its own copy of fd 1, and fd 1 goes to the log (stderr).
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    bridge = Bridge(args.address, args.workspace_id, args.engine_id, json.loads(args.runtime_env), out)
    try:
        asyncio.run(bridge.serve())
    except BaseException as exc:  # ray.init failures and the like: one line, then exit
        bridge.emit(ev="fatal", error=reason_of(exc))
        os._exit(3)
    os._exit(0)


if __name__ == "__main__":
    main()
