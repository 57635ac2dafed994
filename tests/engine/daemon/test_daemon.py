"""The engine as a daemon, with real processes: detach/re-attach, kill -9 recovery, the
socket's permissions, and malformed protocol lines. The lanes' agents are the real SDK and
CLI talking to the scripted model server running in this test process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from autoresearch_tui.engine.client import EngineClient
from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.core.ledger import read_ledger
from autoresearch_tui.engine.protocol import socket_path
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, Turn
from autoresearch_tui.engine.core.files import read_json
from autoresearch_tui.engine.workspace import Workspace
from autoresearch_tui.engine.core.tools import tool_id
from tests.engine.daemon.conftest import run_cli
from tests.support import make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RUN_BENCHMARK, RECORD_RUN = tool_id("run_benchmark"), tool_id("record_run")


def cli(*args: str, config) -> subprocess.CompletedProcess:
    return run_cli(*args, config=config)


async def connect(config) -> EngineClient:
    return await EngineClient.connect(socket_path(config.workspace))


def bash_forever(request: ModelRequest) -> Turn:
    return Turn.tool("Bash", {"command": f"sleep 0.2; echo tick-{len(request.messages)}"})


async def test_detach_then_reattach_shows_what_happened_meanwhile(tmp_path, model, daemons):
    config = make_workspace(tmp_path, lanes=("a", "b"))
    model.set_script(bash_forever)
    daemons(config, model, tmp_path / "home")

    client = await connect(config)
    await client.request("subscribe")
    seen = []
    async for event in client.stream():
        seen.append(event)
        if sum(e["type"] == "tool_result" for e in seen) >= 2:
            break
    detached_at = seen[-1]["ts"]
    await client.close()  # detach: the terminal closes, the research goes on

    requests_at_detach = len(model.main_requests)
    await wait_until(lambda: len(model.main_requests) >= requests_at_detach + 6, timeout=60,
                     what="progress while detached")

    client = await connect(config)
    snapshot = (await client.request("snapshot"))["snapshot"]
    reply = await client.request("subscribe", since=detached_at)
    gap = []
    while len(gap) < reply["replayed"]:
        gap.append(await asyncio.wait_for(client.events.get(), 10))
    await client.request("stop_engine")
    await client.close()

    assert reply["replayed"] > 0
    assert all(e["ts"] > detached_at for e in gap)
    gap_results = [e for e in gap if e["type"] == "tool_result"]
    assert len(gap_results) >= 4 and {e["lane"] for e in gap_results} == {"a", "b"}
    assert all(lane["state"] == "running" for lane in snapshot["lanes"].values())
    assert sum(lane["counters"]["tool_uses"] for lane in snapshot["lanes"].values()) >= 6
    await wait_until(lambda: running_pid(Workspace(config)) is None, timeout=60, what="engine exit")


async def test_kill_9_mid_turn_then_restart_resumes_the_same_sessions(tmp_path, model, daemons):
    bench = ("import json, os, sys, time\n"
             "time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)\n"
             "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps({'v': 1, 'kind': 'summary', "
             "'step_time_median_s': 0.1, 'n': 30}) + '\\n')\n")
    config = make_workspace(tmp_path, repo_files={"bench.py": bench})
    workspace = Workspace(config)

    def script(request: ModelRequest) -> Turn:
        text = request.new_text
        if "engine restarted" in text or "was interrupted" in text:  # after the crash: the agent records the same run again
            return Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline", "run_dir": "0001"})
        if "run_id=0001" in text:
            return Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline", "run_dir": "0001"})
        if '"run_id": "0001"' in text or "already_recorded" in text:
            return Turn.tool(RUN_BENCHMARK, {"description": "slow one", "args": "30"})
        if not request.tool_results():
            return Turn.tool(RUN_BENCHMARK, {"description": "baseline"})
        return Turn.tool("Bash", {"command": "sleep 0.2"})

    model.set_script(script)
    pid = daemons(config, model, tmp_path / "home")
    # Mid-turn: the slow benchmark is running when the engine dies.
    await wait_until(lambda: (workspace.runs_dir("a") / "0002").exists(), timeout=60, what="second run started")
    session_before = read_json(workspace.lane_json("a"))["session_id"]
    requests_before = len(model.main_requests)
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: running_pid(workspace) is None, timeout=20, what="the lock to be released")

    daemons(config, model, tmp_path / "home")
    await wait_until(lambda: any("already_recorded" in r.tool_result_text()
                                 for r in model.main_requests[requests_before:]),
                     timeout=60, what="the resumed lane recording the same run again")
    client = await connect(config)
    await client.request("stop_engine")
    await client.close()
    await wait_until(lambda: running_pid(workspace) is None, timeout=60, what="engine exit")

    # The killed engine's CLI died with it (parent-death signal): at most one request raced
    # the signal; then the resumed session, whose first request carries the resume prompt.
    after_kill = model.main_requests[requests_before:]
    restarted = [i for i, r in enumerate(after_kill) if r.contains("engine restarted")]
    assert restarted and restarted[0] <= 1, [r.summary() for r in after_kill]
    resumed = after_kill[restarted[0]]
    assert resumed.session_id == session_before
    # The same conversation goes on (its first prompt is there). The CLI may lose its newest
    # transcript entries to a SIGKILL, so the resume prompt itself tells the agent the state.
    assert resumed.contains("Start experiment exp")
    assert resumed.contains("1 runs recorded")
    assert read_json(workspace.lane_json("a"))["session_id"] == session_before
    rows, warnings = read_ledger(workspace.ledger_path("a"), "step_time_ms")
    assert warnings == []
    assert [r["run_id"] for r in rows] == ["0001"]  # recorded again after the crash: still once
    assert "already_recorded" in after_kill[restarted[0] + 1].tool_result_text()


async def test_socket_is_private_and_another_user_is_refused(tmp_path, model, daemons):
    config = make_workspace(tmp_path)
    model.set_script(bash_forever)
    daemons(config, model, tmp_path / "home")
    path = socket_path(config.workspace)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    if os.getuid() != 0:
        pytest.skip("creating a client of another uid needs root")

    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\n"
             "except PermissionError:\n    print('permission denied'); sys.exit(0)\n"
             "try:\n    s.sendall(b'{\"id\": 1, \"op\": \"hello\", \"version\": 1}\\n')\n"
             "except BrokenPipeError:\n    pass  # refused before it could speak: the answer is waiting\n"
             "print(s.makefile().readline().strip())\n")

    # An interpreter the other user can execute (a venv under /root is not one).
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip("no system python for the other user")

    def as_nobody() -> str:
        result = subprocess.run([python, "-S", "-c", probe, str(path)], capture_output=True, text=True,
                                timeout=30, user=65534, group=65534, cwd="/")
        return result.stdout.strip() or result.stderr.strip()

    assert as_nobody() == "permission denied"  # the 0700 directory stops it first
    # Even with the modes opened up (the folders above it too), the peer-credential check
    # refuses another uid.
    opened = {folder: stat.S_IMODE(folder.stat().st_mode) for folder in path.parents
              if folder != Path("/") and not stat.S_IMODE(folder.stat().st_mode) & 0o001}
    for folder, mode in opened.items():
        os.chmod(folder, mode | 0o011)
    os.chmod(path, 0o666)
    try:
        reply = json.loads(as_nobody())
    finally:
        os.chmod(path, 0o600)
        for folder, mode in opened.items():
            os.chmod(folder, mode)
    assert reply["ok"] is False and "another user" in reply["error"]
    assert cli("stop", config=config).returncode == 0


async def test_malformed_lines_get_errors_while_another_client_keeps_receiving(tmp_path, model, daemons):
    config = make_workspace(tmp_path)
    model.set_script(bash_forever)
    daemons(config, model, tmp_path / "home")
    watcher = await connect(config)
    await watcher.request("subscribe")

    reader, writer = await asyncio.open_unix_connection(str(socket_path(config.workspace)))

    async def send(raw: bytes) -> dict:
        writer.write(raw + b"\n")
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), 10))

    before_hello = await send(b'{"id": 1, "op": "snapshot"}')
    assert not before_hello["ok"] and "hello" in before_hello["error"]
    assert (await send(b'{"id": 2, "op": "hello", "version": 99}'))["ok"] is False
    assert (await send(b'{"id": 3, "op": "hello", "version": 1}'))["ok"] is True
    answers = [await send(raw) for raw in (
        b"not json", b"[1, 2]", b"\xff\xfe garbage", b'{"op": 7}', b'{"id": 4, "op": "launch_missiles"}',
        b'{"id": 5, "op": "pause"}', b'{"id": 6, "op": "pause", "lane": "zzz"}',
        b'{"id": 7, "op": "history", "lane": "a", "limit": -3}', b'{"id": 8, "op": "ping", "extra": 1}',
    )]
    assert all(answer["ok"] is False and answer["error"] for answer in answers)
    assert answers[4]["id"] == 4 and "unknown op" in answers[4]["error"]
    assert "needs lane" in answers[5]["error"] and "no lane named 'zzz'" in answers[6]["error"]
    assert (await send(b'{"id": 9, "op": "ping"}'))["ok"] is True  # the connection survived

    received_after = time.time()
    event = None
    while event is None or event["ts"] < received_after:
        event = await asyncio.wait_for(watcher.events.get(), 20)
    assert event is not None  # the other client kept receiving events throughout
    writer.close()
    await watcher.request("stop_engine")
    await watcher.close()


async def test_one_engine_per_workspace_and_plain_text_views(tmp_path, model, daemons):
    config = make_workspace(tmp_path, lanes=("a", "b"))
    model.set_script(bash_forever)
    first = daemons(config, model, tmp_path / "home")
    assert daemons(config, model, tmp_path / "home") == first  # a second start finds the first
    second = cli("daemon", config=config)
    assert second.returncode == 1 and "an engine is running" in second.stderr
    await wait_until(lambda: len(model.main_requests) >= 4, timeout=60, what="some progress")

    status = cli("status", config=config)
    assert status.returncode == 0 and "engine running" in status.stdout
    assert any(line.startswith("a ") and "running" in line for line in status.stdout.splitlines())
    assert json.loads(cli("status", "--json", config=config).stdout)["lanes"]["b"]["state"] == "running"
    logs = cli("logs", "a", "--type", "tool_use", "--limit", "3", config=config)
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 3
    assert all(" tool_use " in line and "Bash" in line for line in logs.stdout.splitlines())

    stopped = cli("stop", config=config)
    assert stopped.returncode == 0 and "engine stopped" in stopped.stdout
    assert running_pid(Workspace(config)) is None
    assert all(read_json(Workspace(config).lane_json(n))["state"] == "stopped" for n in "ab")
    after = cli("status", config=config)
    assert "engine not running" in after.stdout and "stopped" in after.stdout
    assert cli("logs", "b", "--type", "lane_state", "--json", config=config).stdout.strip().endswith("}")
    assert cli("logs", "nope", config=config).returncode == 2


async def test_stop_experiment_writes_the_report_and_keeps_forks_unless_safe(tmp_path, model, daemons):
    config = make_workspace(tmp_path)
    model.set_script([Turn.tool("Bash", {"command": "echo x > f && git add f && git commit -qm change"}),
                      Turn.tool(RUN_BENCHMARK, {"description": "change"}),
                      Turn.tool(RECORD_RUN, {"status": "discard", "description": "change", "run_dir": "0001"})]
                     + [Turn.tool("Bash", {"command": "sleep 0.2"})] * 50)
    daemons(config, model, tmp_path / "home")
    await wait_until(lambda: Workspace(config).ledger_path("a").exists(), timeout=60, what="a recorded run")
    result = cli("stop-experiment", "--remove-forks", config=config)
    workspace = Workspace(config)
    assert running_pid(workspace) is None
    assert (workspace.experiment_dir / "REPORT.md").exists()
    assert (workspace.experiment_dir / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The recorded commit exists only in the fork: removing it would lose it, so it stays.
    assert result.returncode == 1 and "fork kept" in result.stderr
    assert workspace.fork_dir("a").exists()
    archived = cli("stop-experiment", "--archive-runs", "--remove-forks", config=config)
    assert archived.returncode == 0, archived.stderr
    assert not workspace.fork_dir("a").exists()


async def test_merge_command_goes_through_a_running_engine(tmp_path, model, daemons):
    bench = ("import json, os\nfrom model import x\n"
             "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps({'v': 1, 'kind': 'summary', "
             "'step_time_median_s': 0.010 if x == 1 else 0.008}) + '\\n')\n")
    config = make_workspace(tmp_path, repo_files={"bench.py": bench, "model.py": "x = 1\n"})
    model.set_script([
        Turn.tool(RUN_BENCHMARK, {"description": "baseline"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "baseline"}),
        Turn.tool("Bash", {"command": "echo 'x = 2' > model.py && git commit -qam faster"}),
        Turn.tool(RUN_BENCHMARK, {"description": "faster"}),
        Turn.tool(RECORD_RUN, {"status": "keep", "description": "faster"}),  # confirmed A/B first
    ] + [Turn.tool("Bash", {"command": "sleep 0.3"})] * 100)
    daemons(config, model, tmp_path / "home")
    await wait_until(lambda: len(read_ledger(Workspace(config).ledger_path("a"), "step_time_ms")[0]) == 6,
                     timeout=90, what="two recorded runs and the four confirmation re-measures")
    merged = cli("merge", "a", config=config)
    assert merged.returncode == 0, merged.stderr
    assert "-20.0%" in merged.stdout
    main = Workspace(config).main_repo
    assert (main / "model.py").read_text() == "x = 2\n"
    client = await connect(config)
    events = (await client.request("history", lane="a", types=["merge"]))["events"]
    await client.request("stop_engine")
    await client.close()
    assert events and events[-1]["ok"] is True  # logged by the engine, seen by every UI
    again = cli("merge", "nope", config=config)
    assert again.returncode != 0
