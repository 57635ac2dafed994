"""Only what the engine started is ever ended: a user's process working in the fork and
another user's process survive a lane's start and stop; what the lane's agent left running
(even outside the fork) does not. Real processes, a real second uid (nobody), the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.supervisor import Engine
from tests.support import make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NOBODY = 65534


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def bystanders():
    started: list[subprocess.Popen] = []

    def start(cwd: Path, *, as_nobody: bool = False) -> subprocess.Popen:
        prefix = []
        if as_nobody:
            if os.getuid() != 0 or not shutil.which("setpriv"):
                pytest.skip("a second uid needs root and setpriv")
            # cwd is entered as root, then the uid drops: the process works in the fork.
            prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        process = subprocess.Popen([*prefix, "sleep", "300"], cwd=cwd,
                                   env={k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH")})
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


async def test_a_lane_start_and_stop_end_only_what_the_engine_started(tmp_path, model, bystanders):
    config = make_workspace(tmp_path)
    pid_file = tmp_path / "left-behind.pid"
    leave_behind = ("cd / && nohup python3 -c \"import os, time; "
                    f"open('{pid_file}', 'w').write(str(os.getpid())); time.sleep(300)\" "
                    ">/dev/null 2>&1 &")
    model.set_script(lambda request: Turn.tool("Bash", {"command": "echo working"}))
    engine = Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url)},
                    backoff_base_s=0.05)
    await engine.start()
    left_behind = None
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, what="the fork and a session")
        await engine.stop_lane("a")
        fork = engine.workspace.fork_dir("a")
        users_editor = bystanders(fork)  # e.g. the user's vim or a tmux shell in the fork
        other_user = bystanders(fork / ".git", as_nobody=True)
        model.set_script([Turn.tool("Bash", {"command": leave_behind})])
        engine.resume("a")  # a lane start
        await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=60,
                         what="the agent's background process")
        left_behind = int(pid_file.read_text())
        await engine.stop_lane("a")  # a lane stop
        left_behind_alive = alive(left_behind)
        bystanders_alive = users_editor.poll() is None and other_user.poll() is None
    finally:
        await engine.stop()
        if left_behind and alive(left_behind):
            os.kill(left_behind, signal.SIGKILL)
    assert bystanders_alive, "a process the engine did not start was killed"
    assert not left_behind_alive, "the agent's background process outlived its lane"
