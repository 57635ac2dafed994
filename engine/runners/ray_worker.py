"""The worker side of a remote run: one `RunHost` Ray actor per benchmark run.

This code runs on a Ray worker node, where autoresearch-tui is NOT installed: the bridge
ships this module by value (`ray.cloudpickle.register_pickle_by_value`), so it may import
only the standard library (and `ray`, inside methods, which every Ray worker has). The one
exception is `remove_stale_lock`, whose module the bridge ships by value too.

What a run does on the worker (docs/architecture.md, "Ray runner"):

- `start(code, command, env)` unpacks the code tarball (`git archive` of the measured commit
  plus the shipped fork_include files) into a fresh folder under
  `<tmp>/autoresearch-ray/<workspace id>/<run key>-xxxx/`, and runs `/bin/sh -c command` there
  **in the worker's own process group** (no setsid): Ray kills that group when the actor is
  killed or its worker dies, grandchildren included. The worker is made a child subreaper so
  a double-forked daemon of the bench is re-parented to it and `stop()` still finds it.
  It returns the placement (node, pids, accelerator ids, device variables).
- `read(out_offset, metrics_offset, timeout)` long-polls new output and new metrics.jsonl
  bytes (about 3 ms behind the bench).
- `stop(reason)` kills every descendant of the worker (timeout, hang, lane stop).
- `result()` returns the run folder (run.log, metrics.jsonl, profile/...) as tar bytes and
  removes the worker's folder.
- `sweep_dead_runs(root)` kills processes left by runs whose worker is gone (a bench that
  setsid'ed away from a killed worker) and removes their folders; it runs at every start on
  a node and from the engine's reap after a restart.

A run ends when the bench's shell exits, not at EOF on its output: a daemon it started can
hold the pipe open forever.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from typing import Any

from autoresearch_tui.engine.devices.libtpu_lock import remove_stale_lock  # shipped by value

RUN_ROOT = "autoresearch-ray"
READ_MAX = 1 << 20
"""At most this many bytes of output (and of metrics) per read()."""
OWNER_FILE = "owner.pid"
DEVICE_PREFIXES = ("TPU_", "CUDA_VISIBLE", "NEURON_RT_VISIBLE", "HIP_VISIBLE", "ROCR_VISIBLE")
PR_SET_CHILD_SUBREAPER = 36


def runs_root(workspace_id: str) -> str:
    return os.path.join(tempfile.gettempdir(), RUN_ROOT, workspace_id)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    """Every live descendant of `root` (from /proc)."""
    children, found, todo = _children_map(), [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def partition_env(chips: list[str], host_chips: int, bounds: dict[int, str], base_port: int,
                  env: dict[str, str]) -> dict[str, str]:
    """The libtpu variables for a run that holds part of a TPU host.

    Ray sets TPU_VISIBLE_CHIPS (and the host bounds for 1-2 chips) but not the per-process
    bounds and port libtpu needs to share one host; `bounds` is the engine's table
    (engine/devices/slots.py). Nothing for a whole host or a shape the table lacks.
    UNVERIFIED ON TPU HARDWARE, like the table itself."""
    if not chips or not host_chips or len(chips) >= host_chips or len(chips) not in bounds:
        return {}
    port = base_port + min(int(chip) for chip in chips)
    extra = {"TPU_PROCESS_BOUNDS": "1,1,1", "TPU_CHIPS_PER_PROCESS_BOUNDS": bounds[len(chips)],
             "TPU_PROCESS_PORT": str(port), "TPU_PROCESS_ADDRESSES": f"localhost:{port}",
             "CLOUD_TPU_TASK_ID": "0"}
    return {key: value for key, value in extra.items() if key not in env}


def _host_tpu_chips() -> int:
    try:
        from ray._private.accelerators.tpu import TPUAcceleratorManager
        return int(TPUAcceleratorManager.get_current_node_num_accelerators() or 0)
    except Exception:
        return 0


class RunHost:
    """One benchmark run on a worker. The bridge (the Ray driver) calls its methods."""

    def __init__(self, tags: dict[str, str], partition: dict[str, Any]):
        self.tags = tags
        """workspace_id, lane, run_id, key (the actor's name), engine (pid@host:start)."""
        self.partition = partition
        self.cv = threading.Condition()
        self.out = bytearray()
        self.out_base = 0
        """Stream offset of self.out[0] (what the bridge already has is dropped)."""
        self.rc: int | None = None
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.run_dir = ""
        self.metrics_path = ""
        self.log = None
        self.stopped = ""
        self.tpu_chips: list[str] = []

    def start(self, code: bytes, command: str, env: dict[str, str]) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        root = runs_root(self.tags["workspace_id"])
        os.makedirs(root, exist_ok=True)
        sweep_dead_runs(root)
        self.base = tempfile.mkdtemp(prefix=self.tags["key"] + "-", dir=root)
        with open(os.path.join(self.base, OWNER_FILE), "w") as handle:
            handle.write(str(os.getpid()))
        source = os.path.join(self.base, "src")
        self.run_dir = os.path.join(self.base, "run")
        os.makedirs(source)
        os.makedirs(self.run_dir)
        with tarfile.open(fileobj=io.BytesIO(code)) as archive:
            archive.extractall(source, filter="data")  # refuses absolute paths and ../
        self.metrics_path = os.path.join(self.run_dir, "metrics.jsonl")
        accelerators = {kind: [str(i) for i in ids] for kind, ids in context.get_accelerator_ids().items() if ids}
        self.tpu_chips = accelerators.get("TPU", [])
        base_env = dict(os.environ)
        if "OMP_NUM_THREADS" not in env:  # Ray sets it from num_cpus; not the bench's business
            base_env.pop("OMP_NUM_THREADS", None)
        base_env.update(partition_env(self.tpu_chips, _host_tpu_chips(), self.partition.get("bounds", {}),
                                      int(self.partition.get("base_port", 8476)), base_env))
        chips = ",".join(next(iter(accelerators.values()), []))
        run_env = {**base_env, **env,
                   "AUTORESEARCH_RUN_DIR": self.run_dir, "AUTORESEARCH_METRICS": self.metrics_path,
                   "AUTORESEARCH_RUN_ID": self.tags["run_id"], "AUTORESEARCH_CHIPS": chips,
                   "AUTORESEARCH_NODE": context.get_node_id(), "PYTHONUNBUFFERED": "1"}
        self.log = open(os.path.join(self.run_dir, "run.log"), "ab")
        self.log.write(f"$ {command}\n".encode())
        self.log.flush()
        with contextlib.suppress(Exception):  # orphans of the bench come back to this worker
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
        # NOT start_new_session: the bench stays in the worker's process group, which Ray
        # kills with the worker (ray.kill, a crash), grandchildren included.
        self.proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=source, env=run_env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        threading.Thread(target=self._wait, daemon=True).start()
        return {
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "worker_pid": os.getpid(),
            "bench_pid": self.proc.pid,
            "accelerator_ids": accelerators,
            "device_env": {k: v for k, v in run_env.items() if k.startswith(DEVICE_PREFIXES)},
            "workdir": self.base,
            "started": time.time(),
        }

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self.log.write(data)
            self.log.flush()
            with self.cv:
                self.out += data
                self.cv.notify_all()

    def _wait(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait()
        self.pump.join(timeout=2)  # a daemon may hold the pipe: do not wait for EOF
        with self.cv:
            self.rc = rc
            self.cv.notify_all()

    def _metrics_size(self) -> int:
        try:
            return os.stat(self.metrics_path).st_size
        except OSError:
            return 0

    def read(self, out_offset: int, metrics_offset: int, timeout: float = 1.0) -> dict[str, Any]:
        """New output and metrics bytes after the offsets the caller has, as soon as there
        are any (or the bench exited, or `timeout` passed). `rc` is set once the bench has
        exited and every byte of its output was handed out."""
        deadline = time.monotonic() + timeout
        while True:
            size = self._metrics_size()
            with self.cv:
                if out_offset > self.out_base:
                    del self.out[:out_offset - self.out_base]
                    self.out_base = out_offset
                pending = len(self.out)
                if pending or size > metrics_offset or self.rc is not None or time.monotonic() >= deadline:
                    out = bytes(self.out[:READ_MAX])
                    rc = self.rc if pending <= READ_MAX else None
                    break
                self.cv.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        metrics = b""
        if size > metrics_offset:
            with open(self.metrics_path, "rb") as handle:
                handle.seek(metrics_offset)
                metrics = handle.read(min(READ_MAX, size - metrics_offset))
        if rc is not None and size > metrics_offset + len(metrics):
            rc = None  # more metrics to hand out first
        return {"out": out, "metrics": metrics, "rc": rc}

    def stop(self, reason: str) -> int | None:
        """Kill the bench and everything it started (the folder stays for result())."""
        self.stopped = reason
        for pid in descendants(os.getpid()):  # the bench tree plus orphans re-parented here
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        with self.cv:
            self.cv.wait_for(lambda: self.rc is not None, timeout=5)
        note = ""
        if self.tpu_chips:  # a killed libtpu process can leave the host's lock behind
            with contextlib.suppress(Exception):
                note = remove_stale_lock() or ""
        if note and self.log is not None:
            self.log.write(f"\n[autoresearch] {note}\n".encode())
            self.log.flush()
        return self.rc

    def result(self) -> bytes:
        """The run folder as an uncompressed tar; the worker's folder is removed."""
        with contextlib.suppress(Exception):
            self.log.flush()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(self.run_dir, arcname=".")
        shutil.rmtree(self.base, ignore_errors=True)
        return buffer.getvalue()


def processes_of(run_folder: str) -> list[int]:
    """Processes working in a run's folder or carrying its AUTORESEARCH_RUN_DIR (a bench that
    setsid()s away from the worker's group still has both)."""
    found = []
    marker = f"AUTORESEARCH_RUN_DIR={os.path.join(run_folder, 'run')}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            if cwd == run_folder or cwd.startswith(run_folder + os.sep):
                found.append(int(entry))
                continue
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def sweep_dead_runs(root: str) -> list[str]:
    """Kill what is left of runs whose worker is gone and remove their folders; returns
    "<run folder>:<pid>" for each process killed."""
    killed: list[str] = []
    if not os.path.isdir(root):
        return killed
    for name in os.listdir(root):
        folder = os.path.join(root, name)
        try:
            with open(os.path.join(folder, OWNER_FILE)) as handle:
                owner = int(handle.read())
        except (OSError, ValueError):
            owner = -1
        if pid_alive(owner):
            continue
        for pid in processes_of(folder):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{name}:{pid}")
        shutil.rmtree(folder, ignore_errors=True)
    return killed


def sweep_task(workspace_id: str) -> dict[str, Any]:
    """A zero-CPU task pinned to one node by the reap: sweep that node."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(),
            "killed": sweep_dead_runs(runs_root(workspace_id))}
