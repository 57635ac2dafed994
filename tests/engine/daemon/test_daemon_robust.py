"""The daemon over an unattended week, with real processes: one engine per workspace even
for `run`, a killed engine's benchmark groups reaped at restart, a vanished socket, a
socket folder owned by someone else. The agents are the real SDK and CLI."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.demo.scripted_model import Turn
from autoresearch_tui.engine.workspace import Workspace
from tests.engine.daemon.conftest import run_cli
from tests.support import make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RUN_BENCHMARK = "mcp__autoresearch__run_benchmark"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def detached_grandchild_bench(pid_file: Path) -> str:
    """A benchmark whose child leaves the fork and scrubs its environment (a data loader,
    a device server): only its process group still says it is the run's."""
    child = (f"import os, time; os.chdir('/'); open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
             "time.sleep(600)")
    return ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', {child!r}], env={{'PATH': '/usr/bin:/bin'}})\n"
            "time.sleep(600)\n")


async def test_a_restarted_engine_reaps_the_killed_engines_benchmark_group_at_once(tmp_path, model, daemons):
    grandchild_file = tmp_path / "grandchild.pid"
    config = make_workspace(tmp_path / "ws", repo_files={"bench.py": detached_grandchild_bench(grandchild_file)},
                            experiment="hang_timeout_s = 3000\nrun_timeout_s = 3000")
    workspace = Workspace(config)
    model.set_script(lambda request: Turn.tool(RUN_BENCHMARK, {"description": "slow"})
                     if not request.tool_results() else Turn.tool("Bash", {"command": "sleep 0.2"}))
    engine_pid = daemons(config, model, tmp_path / "home")
    await wait_until(lambda: read_pid(grandchild_file), timeout=60, what="the benchmark's grandchild")
    grandchild = read_pid(grandchild_file)
    os.kill(engine_pid, signal.SIGKILL)
    await wait_until(lambda: running_pid(workspace) is None, timeout=20, what="the lock to be released")
    time.sleep(0.5)
    assert alive(grandchild)  # the parent-death signal reached only /bin/sh

    restarted_at = time.monotonic()
    daemons(config, model, tmp_path / "home")
    await wait_until(lambda: not alive(grandchild), timeout=15, what="the grandchild to be reaped")
    reaped_after = time.monotonic() - restarted_at
    assert reaped_after < 15
    assert run_cli("stop", config=config).returncode == 0


async def test_run_refuses_next_to_a_live_daemon_and_leaves_its_processes_alone(tmp_path, model, daemons):
    bench_file = tmp_path / "bench.pid"
    bench = (f"import os, time\nopen({str(bench_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    config = make_workspace(tmp_path / "ws", repo_files={"bench.py": bench},
                            experiment="hang_timeout_s = 3000\nrun_timeout_s = 3000")
    model.set_script(lambda request: Turn.tool(RUN_BENCHMARK, {"description": "slow"}))
    engine_pid = daemons(config, model, tmp_path / "home")
    await wait_until(lambda: read_pid(bench_file), timeout=60, what="the daemon's benchmark")
    benchmark = read_pid(bench_file)
    events_before = Workspace(config).events_path("a").stat().st_size
    time.sleep(0.5)

    second = run_cli("run", "--duration", "5", config=config)

    assert second.returncode == 1
    assert second.stderr.strip() == (f"autoresearch-tui: an engine is running (pid {engine_pid}): "
                                     "attach, or stop it first")
    assert alive(benchmark) and alive(engine_pid)
    assert running_pid(Workspace(config)) == engine_pid
    # The refused engine never started: it wrote nothing and ended nothing in the lane.
    text = Workspace(config).events_path("a").read_text()
    assert events_before > 0 and "previous engine" not in text
    assert run_cli("stop", config=config).returncode == 0


async def test_a_vanished_socket_is_recreated_and_status_and_stop_still_work(tmp_path, model, daemons):
    from autoresearch_tui.engine.protocol import socket_path

    config = make_workspace(tmp_path / "ws")
    model.set_script(lambda request: Turn.tool("Bash", {"command": "sleep 0.2"}))
    pid = daemons(config, model, tmp_path / "home")
    path = socket_path(config.workspace)
    assert path.parent == Workspace(config).state_dir  # lives with the workspace: survives logout
    # Held still (it keeps its lock) so it cannot recreate the socket before `status` looks.
    os.kill(pid, signal.SIGSTOP)
    try:
        path.unlink()  # what logind does to /run/user/UID when the last SSH session ends
        status = run_cli("status", config=config)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "engine not running" not in status.stdout
    assert f"pid {pid}" in status.stdout + status.stderr
    await wait_until(path.exists, timeout=15, what="the engine to recreate its socket")
    again = run_cli("status", config=config)
    assert "engine running" in again.stdout.splitlines()[0]

    path.unlink()
    path.mkdir()  # something in its place the engine cannot replace: it stays unreachable
    stopped = run_cli("stop", config=config)
    assert stopped.returncode == 0 and "Traceback" not in stopped.stderr, stopped.stderr
    assert f"the engine (pid {pid}) does not answer on its socket" in stopped.stdout
    assert "engine stopped" in stopped.stdout
    await wait_until(lambda: not alive(pid), timeout=10, what="the engine process to exit")
    assert read_pid_state(Workspace(config)) == "stopped"  # stopped gracefully, not killed


def read_pid_state(workspace: Workspace) -> str:
    import json

    return json.loads(workspace.lane_json("a").read_text())["state"]


async def test_a_socket_folder_owned_by_another_user_is_refused_with_a_clear_message(tmp_path, model):
    if os.getuid() != 0:
        pytest.skip("giving a folder to another uid needs root")
    deep = tmp_path / ("w" * 60) / ("x" * 60)  # too long for a socket in the workspace itself
    config = make_workspace(deep)
    tmp = tmp_path / "tmp"
    squatted = tmp / f"autoresearch-tui-{os.getuid()}"
    squatted.mkdir(parents=True)
    os.chown(squatted, 65534, 65534)
    env = {**os.environ, "TMPDIR": str(tmp)}
    started = run_cli("start", config=config, env=env)
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in started.stderr
    assert str(squatted) in lines[0] and "uid 65534" in lines[0]
    assert running_pid(Workspace(config)) is None
    for command in ("status", "stop"):
        result = run_cli(command, config=config, env=env)
        assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr
