"""A real 2-node Ray cluster for tests, inside a network and PID namespace this process makes.

`LocalRayCluster.start()` runs `cluster.sh hold` under `unshare -n -p -f --mount-proc`: a head
and a second worker node (`head`, `worker2`), each advertising `TPU = 1` and one CPU, with
only `lo` to bind (Ray reports "Local node IP: 127.0.0.1"; nothing leaves loopback).
`run_scenario(...)` runs a scenario function of a test module in a child process that joins
those namespaces (`nsenter`), so the engine, its bridge and the scripted model live next to
the cluster; the test asserts on what the scenario returns and on the files it left.

The cluster's workers cannot import autoresearch_tui (a `sitecustomize` on their PYTHONPATH
refuses it), as on a real cluster where the package is only on the engine's host: the
worker code must arrive by value.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent.parent
CLUSTER_SH = HERE / "cluster.sh"
SCENARIO_RUNNER = HERE / "scenario.py"
RESULT_PREFIX = "SCENARIO-RESULT "

BLOCKER = '''\
import sys
class _NoAutoresearch:
    """This test cluster's workers do not have autoresearch-tui, like a real cluster's."""
    def find_spec(self, name, path=None, target=None):
        if name == "autoresearch_tui" or name.startswith("autoresearch_tui."):
            raise ModuleNotFoundError(f"No module named {name!r} (not installed on this Ray worker)")
        return None
sys.meta_path.insert(0, _NoAutoresearch())
'''


def ray_available() -> str | None:
    """None when a test cluster can run here, else why not (a skip reason)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'autoresearch-tui[ray]')"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not available"
    if os.geteuid() != 0:
        return "the test cluster's network namespace needs root"
    return None


class LocalRayCluster:
    def __init__(self, python: str = sys.executable):
        self.python = python
        self.temp = tempfile.mkdtemp(prefix="rtc-", dir="/tmp")
        self.ray_temp = f"/tmp/rt-{os.getpid()}"  # short: unix socket paths are limited to 107 bytes
        self.blocker = Path(self.temp) / "site"
        self.blocker.mkdir()
        (self.blocker / "sitecustomize.py").write_text(BLOCKER)
        self.log_path = Path(self.temp) / "cluster.log"
        self.proc: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.address = "127.0.0.1:6390"
        self.workers_added = 0

    def cluster_env(self) -> dict[str, str]:
        bin_dir = str(Path(self.python).parent)
        return {**os.environ, "PYTHON": self.python, "RAY_TEMP": self.ray_temp, "RAY_PORT": "6390",
                "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
                "PYTHONPATH": str(self.blocker), "RAY_USAGE_STATS_ENABLED": "0"}

    def start(self, timeout: float = 240.0) -> "LocalRayCluster":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(CLUSTER_SH), "hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, env=self.cluster_env())
        log.close()
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if not line.startswith(b"ready "):
            self.close()
            raise RuntimeError(f"the test Ray cluster did not start: {line!r}\n{self.log_tail()}")
        self.address = line.split()[1].decode()
        self.init_pid = self._namespace_init()
        return self

    def _namespace_init(self) -> int:
        """The host pid of PID 1 of the namespace (the child of unshare)."""
        assert self.proc is not None
        for _ in range(100):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.05)
        raise RuntimeError("no namespace init process under unshare")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def inside(self, argv: list[str]) -> list[str]:
        assert self.init_pid is not None
        return ["nsenter", "-t", str(self.init_pid), "-n", "-p", "-m", "--", *argv]

    def sh(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """A cluster.sh subcommand inside the namespace (kill-node, add-worker, stop, start)."""
        return subprocess.run(self.inside([str(CLUSTER_SH), *args]), capture_output=True, text=True,
                              env=self.cluster_env(), timeout=timeout)

    def pgrep(self, pattern: str) -> list[str]:
        """Processes of the namespace whose command line contains `pattern`."""
        proc = subprocess.run(self.inside(["pgrep", "-af", pattern]), capture_output=True, text=True, timeout=30)
        return [line for line in proc.stdout.splitlines() if line.strip() and "pgrep" not in line]

    def alive_nodes(self) -> list[dict[str, Any]]:
        code = ("import json,sys\nfrom ray._raylet import GcsClient\n"
                f"nodes = GcsClient(address={self.address!r}).get_all_node_info(timeout=5)\n"
                "print(json.dumps([{'name': n.node_name, 'resources': dict(n.resources_total)} "
                "for n in nodes.values() if n.state == 0]))")
        proc = subprocess.run(self.inside([self.python, "-c", code]), capture_output=True, text=True,
                              env=self.cluster_env(), timeout=60)
        if proc.returncode != 0:
            return []
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def ensure_two_nodes(self) -> None:
        """Bring back a head and a worker if an earlier test killed a node or stopped it all."""
        nodes = self.alive_nodes()
        names = {n["name"] for n in nodes}
        if len(nodes) >= 2 and "head" in names:
            return
        if names == {"head"}:  # a worker was killed: add another (a fresh name and agent port)
            self.workers_added += 1
            proc = self.sh("add-worker", f"worker{2 + self.workers_added}", str(52366 + self.workers_added))
            if proc.returncode == 0 and len(self.alive_nodes()) >= 2:
                return
        self.sh("stop")
        proc = self.sh("start")
        if proc.returncode != 0:
            raise RuntimeError(f"could not restart the test cluster: {proc.stderr[-2000:]}")

    def run_scenario(self, module: str, function: str, workdir: Path, timeout: float = 240,
                     **params: Any) -> dict[str, Any]:
        """Run `function(ctx)` of the test module `module` (a path) inside the namespace and
        return what it returned (a JSON object)."""
        workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAY_ADDRESS_FOR_TESTS": self.address,
               "CLUSTER_SH_ENV": json.dumps({k: v for k, v in self.cluster_env().items()
                                             if k in ("PYTHON", "RAY_TEMP", "RAY_PORT", "PYTHONPATH", "PATH")})}
        env.pop("RAY_ADDRESS", None)
        argv = [self.python, str(SCENARIO_RUNNER), module, function, str(workdir), json.dumps(params)]
        try:
            proc = subprocess.run(self.inside(argv), capture_output=True, text=True, env=env,
                                  timeout=timeout, cwd=str(REPO_ROOT))
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"scenario {function} ran past {timeout} s:\n{_text(exc.stderr)[-4000:]}") from None
        results = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not results:
            raise AssertionError(f"scenario {function} failed (rc={proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return json.loads(results[-1][len(RESULT_PREFIX):])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with _suppress():
                self.proc.stdin.close()  # the namespace's init stops the cluster and exits
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # unshare --kill-child takes the namespace with it
                self.proc.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)
        shutil.rmtree(self.ray_temp, ignore_errors=True)


def _text(data: Any) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True
