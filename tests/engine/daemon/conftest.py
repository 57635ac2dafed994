"""Daemon fixtures: the scripted model and real daemons, killed after the test if still up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, cli_env
from autoresearch_tui.engine.workspace import Workspace


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def daemons():
    """Start daemons for a test; whatever is still running afterwards is killed."""
    started: list[Workspace] = []

    def start(config, model: ScriptedModelServer, home: Path, **env: str) -> int:
        started.append(Workspace(config))
        return spawn_daemon(config, env={**os.environ, **cli_env(home, model.base_url), **env})

    yield start
    for workspace in started:
        pid = running_pid(workspace)
        if pid and pid > 0:
            os.kill(pid, signal.SIGKILL)


def run_cli(*args: str, config, env: dict[str, str] | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess:
    """`autoresearch-tui ARGS --config FILE` as a real process."""
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=timeout, env=env)
