"""The real `autoresearch-tui` binary in a detached tmux: read the screen with capture-pane,
switch lanes, detach (the engine keeps running), re-attach and see the progress made
meanwhile."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch_tui.engine.client import EngineClient
from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.protocol import socket_path
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace
from tests.tui.support import BENCH, WorkingAgent, start_daemon, stop_daemon

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]

BINARY = Path(sys.executable).with_name("autoresearch-tui")


class Tmux:
    def __init__(self, socket: str):
        self.socket = socket

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True).stdout

    def start(self, name: str, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self.run("new-session", "-d", "-s", name, "-x", "140", "-y", "40",
                 f"env {exports} {command}; echo TUI-EXITED $?; sleep 60")

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def keys(self, name: str, *keys: str) -> None:
        self.run("send-keys", "-t", name, *keys)

    def wait_for(self, name: str, predicate, timeout: float = 30.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(name)
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def lane_runs(config, lane: str) -> int:
    async def ask():
        client = await EngineClient.connect(socket_path(Workspace(config).root))
        try:
            snapshot = (await client.request("snapshot"))["snapshot"]
        finally:
            await client.close()
        return snapshot["lanes"][lane]["frontier"].get("runs") or 0
    return asyncio.run(ask())


def test_real_binary_in_tmux_switch_detach_reattach(tmp_path):
    config = make_workspace(tmp_path / "ws", lanes=("a", "b"), repo_files={"bench.py": BENCH})
    server = ScriptedModelServer(script=WorkingAgent(0.3)).start()
    tmux = Tmux(f"ar-tui-{os.getpid()}")
    env = {"TERM": "xterm-256color", "HOME": str(tmp_path / "home"), "COLORTERM": "truecolor"}
    command = f"{BINARY} --config {config.path}"
    try:
        start_daemon(config, tmp_path / "home", server)
        tmux.start("one", command, env)
        tmux.wait_for("one", lambda s: "engine running" in s and "lane a" in s, what="the main screen")
        tmux.wait_for("one", lambda s: "agent:" in s, what="the transcript")
        tmux.keys("one", "2")
        tmux.wait_for("one", lambda s: "lane b" in s, what="lane b selected")
        tmux.keys("one", "d")
        tmux.wait_for("one", lambda s: "detached: the engine keeps running" in s, what="detach message")
        assert running_pid(Workspace(config)), "the engine stopped when the UI detached"
        runs_at_detach = lane_runs(config, "a")
        deadline = time.monotonic() + 40
        while lane_runs(config, "a") < runs_at_detach + 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        runs_before_reattach = lane_runs(config, "a")
        assert runs_before_reattach >= runs_at_detach + 2, "no progress while detached"

        tmux.start("two", command, env)
        screen = tmux.wait_for("two", lambda s: "engine running" in s and "lane a" in s, what="re-attached")
        match = re.search(r"runs (\d+)", screen)
        assert match and int(match.group(1)) >= runs_before_reattach, screen
        tmux.keys("two", "q")
        tmux.wait_for("two", lambda s: "Stop engine" in s, what="the quit dialog")
        tmux.keys("two", "d")
        tmux.wait_for("two", lambda s: "TUI-EXITED 0" in s, what="a clean exit")
        assert running_pid(Workspace(config))
    finally:
        tmux.kill()
        stop_daemon(config)
        server.stop()


def test_the_demo_command_in_tmux_runs_detaches_and_reattaches(tmp_path):
    """The README's "run it" command, as a user types it: `autoresearch-tui demo DIR`."""
    from autoresearch_tui.engine.config import load_config

    demo_dir = tmp_path / "demo"
    tmux = Tmux(f"ar-demo-{os.getpid()}")
    env = {"TERM": "xterm-256color", "HOME": str(tmp_path / "home"), "COLORTERM": "truecolor",
           "PATH": f"{BINARY.parent}:{os.environ.get('PATH', '')}"}
    config = None
    try:
        tmux.start("demo", f"{BINARY} demo {demo_dir}", env)
        screen = tmux.wait_for("demo", lambda s: "SCRIPTED DEMO MODEL" in s and "lane a" in s,
                               timeout=60, what="the demo's main screen")
        config = load_config(demo_dir / "autoresearch.toml")
        assert config.agent.scripted_demo
        tmux.wait_for("demo", lambda s: "agent:" in s, timeout=60, what="the agent's transcript")
        tmux.keys("demo", "2")
        tmux.wait_for("demo", lambda s: "lane b" in s, what="lane b selected")
        tmux.keys("demo", "d")
        tmux.wait_for("demo", lambda s: "detached: the engine keeps running" in s, what="detach")
        assert running_pid(Workspace(config)), "the engine stopped when the UI detached"
        runs_at_detach = lane_runs(config, "a")
        deadline = time.monotonic() + 90
        while lane_runs(config, "a") < runs_at_detach + 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        runs_before = lane_runs(config, "a")
        assert runs_before >= runs_at_detach + 1, "no real benchmark run recorded while detached"

        tmux.start("again", f"{BINARY} --config {config.path}", env)
        screen = tmux.wait_for("again", lambda s: "engine running" in s and "lane a" in s, what="re-attached")
        match = re.search(r"runs (\d+)", screen)
        assert match and int(match.group(1)) >= runs_before, screen
    finally:
        tmux.kill()
        if config is not None:
            stop_daemon(config)
