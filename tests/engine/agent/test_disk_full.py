"""A full disk under a running lane (a real, small tmpfs), and the watchdog that keeps every
running lane alive. The lane's agent is the real SDK and CLI against the scripted model."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest

from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, Turn, cli_env
from autoresearch_tui.engine.supervisor import Engine
from tests.support import make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def model():
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs (needs root, as in this project's CI): a disk that can really fill."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); "
                    "tests/engine/core/test_event_log_faults.py covers the writer")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk: Path) -> Path:
    """Take every free block of the tmpfs (unbuffered writes, smaller and smaller)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def tick(request) -> Turn:
    return Turn.tool("Bash", {"command": f"echo tick-{len(request.messages)}"})


async def test_a_full_disk_puts_the_lane_on_hold_and_it_goes_on_by_itself_once_space_is_back(
        tmp_path, small_disk, model, caplog):
    caplog.set_level(logging.WARNING, logger="autoresearch_tui.engine.agent.lane")
    config = make_workspace(small_disk / "ws")
    model.set_script(tick)
    engine = Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url)},
                    backoff_base_s=0.05, storage_retry_s=0.3, watchdog_period_s=0.5)
    lane = engine.lanes["a"]
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 3, what="the lane at work")
        fill(small_disk)
        await wait_until(lambda: lane.state == "needs_attention", timeout=60, what="the lane on hold")
        reason = lane.record.needs_attention_reason
        held = engine.snapshot()["lanes"]["a"]
        await asyncio.sleep(2)
        requests_on_hold = len(model.main_requests)
        await asyncio.sleep(2)
        assert len(model.main_requests) <= requests_on_hold + 1  # the agent waits
        (small_disk / "filler").unlink()
        await wait_until(lambda: lane.state == "running", timeout=30, what="the lane to go on")
        await wait_until(lambda: any(r.contains("writes work again") for r in model.main_requests),
                         timeout=60, what="the agent to continue")
        after = engine.snapshot()["lanes"]["a"]
        task_alive = not lane._task.done()
    finally:
        await engine.stop()
    assert reason.startswith("disk full at ") and str(small_disk) in reason
    assert held["storage"]["fault"] == reason and held["state"] == "needs_attention"
    assert after["storage"]["fault"] is None and task_alive
    # Events written while the disk was full were kept and written afterwards, in order.
    states = [(e["state"], e["reason"]) for e in read_events(engine.workspace.events_path("a"))
              if e["type"] == "lane_state" and e["state"] != e.get("previous")]
    assert ("needs_attention", reason) in states
    assert any(state == "running" and "writes work again" in why for state, why in states)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "disk full at" in logged and "writes work again" in logged
    assert f"{after['storage']['lost_events']} events could not be written" in logged \
        or "no event was lost" in logged


async def test_the_watchdog_revives_a_running_lane_whose_task_is_gone(tmp_path, model):
    config = make_workspace(tmp_path)
    model.set_script(tick)
    engine = Engine(config, env={**os.environ, **cli_env(tmp_path / "home", model.base_url)},
                    backoff_base_s=0.05, watchdog_period_s=0.3)
    lane = engine.lanes["a"]
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, what="the lane at work")
        session = lane.record.session_id
        lane._task.cancel()  # the lane's task ends under it (what an escaped exception did)
        await wait_until(lambda: any(r.contains("watchdog restarted the lane") for r in model.main_requests),
                         timeout=60, what="the revived lane's next turn")
        revived = next(r for r in model.main_requests if r.contains("watchdog restarted the lane"))
        state = lane.state
    finally:
        await engine.stop()
    assert revived.session_id == session and state == "running"
    warnings = [e for e in read_events(engine.workspace.events_path("a"))
                if e["type"] == "warning" and e.get("where") == "watchdog"]
    assert warnings and "task had ended" in warnings[0]["message"]


class SilentSession:
    """An agent session whose turn never returns although its process died (an SDK that
    misses its CLI's death): only the watchdog can tell. The process is real."""

    opened: list["SilentSession"] = []

    def __init__(self, lane):
        self.lane = lane
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.prompts: list[str] = []

    async def __aenter__(self):
        self.process = subprocess.Popen(["sleep", "300"])
        self.pid = self.process.pid
        SilentSession.opened.append(self)
        return self

    async def __aexit__(self, *exc_info):
        self.process.kill()
        self.process.wait()

    async def turn(self, prompt: str) -> None:
        self.prompts.append(prompt)
        self.lane.emit("assistant_text", text="working")
        await asyncio.Event().wait()

    async def interrupt(self) -> None:
        pass


async def test_the_watchdog_restarts_a_lane_whose_agent_process_died_silently(tmp_path):
    from autoresearch_tui.engine.agent.lane import Lane

    config = make_workspace(tmp_path)
    engine = Engine(config, env=dict(os.environ), watchdog_period_s=0.2)
    SilentSession.opened = []
    engine.lanes["a"] = Lane("a", config, engine.workspace, publish=engine._publish,
                             session_factory=SilentSession)
    await engine.start()
    try:
        await wait_until(lambda: SilentSession.opened and SilentSession.opened[0].prompts,
                         what="the first session")
        first = SilentSession.opened[0]
        first.process.kill()
        first.process.wait()
        await wait_until(lambda: len(SilentSession.opened) >= 2 and SilentSession.opened[1].prompts,
                         timeout=30, what="a new session")
        second_prompt = SilentSession.opened[1].prompts[0]
    finally:
        await engine.stop()
    assert "watchdog restarted the lane" in second_prompt and f"pid {first.pid}" in second_prompt
