"""Lanes end to end: the real claude-agent-sdk and its bundled Claude CLI, real git forks,
against the scripted Messages API server on 127.0.0.1. Assertions are on what the model
received (the requests) and on what the user sees (events, lane state, files)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env
from tests.support import git, make_workspace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def make_engine(config, model: ScriptedModelServer, tmp_path: Path) -> Engine:
    env = {**os.environ, **cli_env(tmp_path / "home", model.base_url)}
    return Engine(config, env=env, backoff_base_s=0.05)


def bash(command: str, text: str | None = None) -> Turn:
    return Turn.tool("Bash", {"command": command, "description": "step"}, text=text)


def since_last_answer(request: ModelRequest) -> str:
    """Everything the model got after its own last message (tool results, hook context)."""
    tail = []
    for message in reversed(request.messages):
        if message.get("role") == "assistant":
            break
        tail.append(json.dumps(message.get("content"), ensure_ascii=False))
    return "\n".join(reversed(tail))


def requests_after(model: ScriptedModelServer, needle: str) -> list[ModelRequest]:
    return [r for r in model.main_requests if r.contains(needle)]


async def test_end_turn_is_blocked_and_the_reason_reaches_the_model(tmp_path, model):
    config = make_workspace(tmp_path, loop="max_consecutive_blocks = 3\nretrospective_every_stops = 10")
    model.set_script([bash("echo first-experiment"), Turn.text("I made one change; the step is faster."),
                      bash("echo second-experiment")])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 3, what="the turn after the stop")
    finally:
        await engine.stop()
    third = model.main_requests[2]
    assert "Do not stop: the loop is still running" in third.last_user_text
    assert "run_benchmark" in third.last_user_text  # the condensed loop program came with it
    events = read_events(engine.workspace.events_path("a"))
    blocked = [e for e in events if e["type"] == "stop_blocked"]
    assert blocked and blocked[0]["kind"] == "continue"
    assert engine.lanes["a"].state == "stopped"


async def test_loop_program_is_reinjected_every_n_turns(tmp_path, model):
    config = make_workspace(tmp_path, loop="reinject_every_turns = 2")
    model.set_script([bash(f"echo step-{i}") for i in range(6)])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 6, what="six turns")
    finally:
        await engine.stop()
    reminded = [i for i, r in enumerate(model.main_requests[:6])
                if "Reminder of the loop program" in since_last_answer(r)]
    # The program is delivered after the 2nd and the 4th assistant turn (in the next request).
    assert reminded == [2, 4], [r.summary() for r in model.main_requests]
    injections = [e for e in read_events(engine.workspace.events_path("a"))
                  if e["type"] == "injection" and e.get("kind") == "program"]
    assert len(injections) >= 2 and "2 assistant turns" in injections[0]["reason"]


async def test_retrospective_on_the_kth_stop_and_on_give_up(tmp_path, model):
    config = make_workspace(tmp_path, loop="retrospective_every_stops = 2\nmax_consecutive_blocks = 4")
    model.set_script([
        Turn.text("Finished an experiment."),           # stop 1: continue
        bash("echo working"),
        Turn.text("Finished another experiment."),      # stop 2: retrospective (every 2nd)
        bash("echo working"),
        Turn.text("I have exhausted all ideas for this model."),  # stop 3: give-up -> retrospective
        bash("echo after"),
    ])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 6, what="six turns")
    finally:
        await engine.stop()
    texts = [r.last_user_text for r in model.main_requests[:6]]
    assert "Do not stop" in texts[1] and "Retrospective —" not in texts[1]
    assert "Time for a retrospective (stop #2" in texts[3] and "Review every run" in texts[3]
    assert "gave up or asked permission" in texts[5] and "Rank the next directions" in texts[5]


async def test_runaway_guard_puts_the_lane_in_needs_attention(tmp_path, model):
    config = make_workspace(tmp_path, loop="max_consecutive_blocks = 2\nretrospective_every_stops = 50")
    model.set_script(lambda request: Turn.text("Nothing to do."))
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", what="needs_attention")
        requests_at_attention = len(model.main_requests)
        snapshot = engine.snapshot()["lanes"]["a"]
    finally:
        await engine.stop()
    assert requests_at_attention == 3  # first answer + two blocked stops, then no more tokens
    assert "no tool use in between" in snapshot["needs_attention_reason"]
    allowed = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "stop_allowed"]
    assert allowed[0]["kind"] == "runaway"


async def test_write_outside_the_lane_folder_is_denied_and_the_model_sees_why(tmp_path, model):
    config = make_workspace(tmp_path)
    outside = tmp_path / "raw" / "code" / "proj" / "evil.py"  # the main repo itself
    inside = "notes.txt"
    model.set_script([
        Turn.tool("Write", {"file_path": str(outside), "content": "oops"}),
        Turn.tool("Write", {"file_path": inside, "content": "fine"}),
    ])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 3, what="both writes answered")
    finally:
        await engine.stop()
    denied = model.main_requests[1].tool_result_text()
    assert "outside this lane's folder" in denied
    assert not outside.exists()
    assert (engine.workspace.fork_dir("a") / inside).read_text() == "fine"


async def test_pause_lets_the_stop_through_and_resume_continues_the_same_session(tmp_path, model):
    config = make_workspace(tmp_path)
    model.set_script([bash("echo before-pause"), Turn.text("Step done."), bash("echo after-resume")])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 1, what="first request")
        engine.pause("a")
        await wait_until(lambda: engine.lanes["a"].state == "paused", what="paused")
        paused_requests = len(model.main_requests)
        session_before = engine.lanes["a"].record.session_id
        assert engine.resume("a") == "lane a resumed"
        await wait_until(lambda: len(model.main_requests) > paused_requests, what="a request after resume")
    finally:
        await engine.stop()
    after = model.main_requests[paused_requests]
    assert "Continue the loop (resumed)" in after.last_user_text
    assert after.contains("before-pause")  # the same conversation goes on
    assert engine.lanes["a"].record.session_id == session_before
    events = read_events(engine.workspace.events_path("a"))
    assert any(e["type"] == "stop_allowed" and e["kind"] == "paused" for e in events)


async def test_two_lanes_run_at_once_in_their_own_forks(tmp_path, model):
    config = make_workspace(tmp_path, lanes=("a", "b"))

    def script(request: ModelRequest) -> Turn:
        lane = "a" if request.contains("lane a of experiment") else "b"
        done = request.contains(f"wrote-{lane}")
        if done:
            return bash(f"echo idle-{lane}")
        return bash(f"echo {lane} > lane.txt && git add lane.txt && git commit -qm 'lane {lane}' "
                    f"&& echo wrote-{lane}")

    model.set_script(script)
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: all(
            (engine.workspace.fork_dir(n) / "lane.txt").exists() for n in "ab"), what="both lanes wrote")
        await wait_until(lambda: len(requests_after(model, "idle-a")) and len(requests_after(model, "idle-b")),
                         what="both lanes moved on")
    finally:
        await engine.stop()
    for name in "ab":
        fork = engine.workspace.fork_dir(name)
        assert (fork / "lane.txt").read_text().strip() == name
        assert git(fork, "log", "-1", "--format=%s").strip() == f"lane {name}"
        assert git(fork, "rev-parse", "--abbrev-ref", "HEAD").strip() == f"autoresearch/exp/{name}"
    assert not (engine.workspace.main_repo / "lane.txt").exists()


async def test_overloaded_and_server_errors_are_retried_and_the_lane_recovers(tmp_path, model):
    config = make_workspace(tmp_path)
    model.set_script([bash("echo one"), bash("echo two")])
    model.fail_next(529, count=1)
    model.fail_next(500, count=1)
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, timeout=90, what="recovery")
        state = engine.lanes["a"].state
    finally:
        await engine.stop()
    failed = [r for r in model.requests if r.is_main and r.status != 200]
    assert sorted(r.status for r in failed) == [500, 529]
    assert state == "running"
    assert model.main_requests[1].contains("echo one")


async def test_a_dead_cli_is_restarted_with_the_same_session(tmp_path, model):
    from autoresearch_tui.engine.agent.processes import owner_tag, tagged_processes

    config = make_workspace(tmp_path)
    model.set_script(lambda request: bash("sleep 0.3; echo working"))
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, what="the session to start")
        session = engine.lanes["a"].record.session_id
        for process in tagged_processes(owner_tag(engine.workspace.lane_dir("a"))):
            os.kill(process.pid, 9)  # the CLI (and its shell) die under the lane
        before = len(model.main_requests)
        await wait_until(lambda: any(r.contains("failed and was restarted")
                                     for r in model.main_requests[before:]), what="the restarted session")
        restarted = next(r for r in model.main_requests[before:] if r.contains("failed and was restarted"))
        state = engine.lanes["a"].state
    finally:
        await engine.stop()
    assert restarted.session_id == session
    assert state == "running"
    errors = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "error"]
    assert errors and errors[0]["where"] == "session"


async def test_repeated_failures_put_the_lane_in_needs_attention(tmp_path, model):
    config = make_workspace(tmp_path, loop="max_failures = 2")
    model.set_script([bash("echo never")])
    model.fail_next(500, count=1000)
    env = {**os.environ, **cli_env(tmp_path / "home", model.base_url, max_retries=0)}
    engine = Engine(config, env=env, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", timeout=60, what="needs_attention")
        reason = engine.lanes["a"].record.needs_attention_reason
    finally:
        await engine.stop()
    assert "2 failures in a row" in reason and "500" in reason
    errors = [e for e in read_events(engine.workspace.events_path("a")) if e["type"] == "error"
              and e["where"] == "session"]
    assert [e["consecutive_failures"] for e in errors] == [1, 2]


async def test_a_silent_running_lane_is_nudged(tmp_path, model):
    config = make_workspace(tmp_path, loop="idle_nudge_minutes = 0.03")  # ~2 s of silence
    model.set_script([bash("python3 -c \"import time; time.sleep(30)\""), bash("echo after-the-nudge")])
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: any(r.contains("nudged: no activity") for r in model.main_requests),
                         timeout=60, what="the nudge to reach the model")
    finally:
        await engine.stop()
    nudges = [e for e in read_events(engine.workspace.events_path("a"))
              if e["type"] == "injection" and e.get("kind") == "nudge"]
    assert nudges and "no activity" in nudges[0]["reason"]


async def test_a_stopped_lane_can_be_resumed_with_its_session(tmp_path, model):
    config = make_workspace(tmp_path)
    model.set_script(lambda request: bash("sleep 0.2; echo step"))
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(model.main_requests) >= 2, what="the session to start")
        assert (await engine.stop_lane("a")).startswith("lane a stopped")
        session = engine.lanes["a"].record.session_id
        stopped_at = len(model.main_requests)
        assert engine.pause("a") == "lane a is already stopped"
        assert engine.resume("a") == "lane a resumed"
        await wait_until(lambda: len(model.main_requests) >= stopped_at + 2, what="work after the resume")
        resumed = model.main_requests[stopped_at]
    finally:
        await engine.stop()
    assert resumed.session_id == session and resumed.contains("session was resumed")
    states = [e["state"] for e in read_events(engine.workspace.events_path("a")) if e["type"] == "lane_state"]
    assert "running" in states[states.index("stopped"):]  # logged after the stop, in the same file


async def test_a_lane_the_user_stopped_stays_stopped_across_restarts_until_resumed(tmp_path, model):
    config = make_workspace(tmp_path, lanes=("a", "b", "c"))

    def script(request: ModelRequest) -> Turn:
        lane = next(n for n in "abc" if request.contains(f"lane {n} of experiment"))
        return bash(f"sleep 0.2; echo work-{lane}")

    model.set_script(script)
    engine = make_engine(config, model, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: all(requests_after(model, f"work-{n}") for n in "abc"), what="all lanes working")
        assert (await engine.stop_lane("b")).startswith("lane b stopped")
        assert engine.pause("c").startswith("lane c paus")  # pausing: the agent is mid-step
    finally:
        await engine.stop()

    model.clear_requests()
    engine = make_engine(config, model, tmp_path)  # `stop`, then `start` again
    await engine.start()
    try:
        await wait_until(lambda: len(requests_after(model, "work-a")) >= 2, what="lane a going on")
        await asyncio.sleep(1.0)  # time for b or c to (wrongly) start a turn
        assert engine.lanes["b"].state == "stopped" and engine.lanes["c"].state == "paused"
        assert not [r for r in model.main_requests if r.contains("lane b of experiment")
                    or r.contains("lane c of experiment")]
        assert engine.lane_snapshot("b").user_hold == "stopped"
        assert engine.resume("b") == "lane b resumed"
        await wait_until(lambda: any(r.contains("lane b of experiment") for r in model.main_requests),
                         what="b working after the resume")
    finally:
        await engine.stop()
    assert json.loads(engine.workspace.lane_json("b").read_text())["user_hold"] == ""
    reasons = [e.get("reason") for e in read_events(engine.workspace.events_path("b")) if e["type"] == "lane_state"]
    assert "stopped by the user: resume the lane to continue" in reasons


async def test_the_failure_count_starts_again_after_a_restart(tmp_path, model):
    config = make_workspace(tmp_path, loop="max_failures = 5")
    model.set_script(lambda request: bash("sleep 0.2; echo never"))
    env = {**os.environ, **cli_env(tmp_path / "home", model.base_url, max_retries=0)}

    def session_errors():
        return [e["consecutive_failures"] for e in read_events(engine.workspace.events_path("a"))
                if e["type"] == "error" and e.get("where") == "session"]

    model.fail_next(500, count=3)
    engine = Engine(config, env=env, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: session_errors() == [1, 2, 3], timeout=60, what="three failures")
    finally:
        await engine.stop()
    model.fail_next(500, count=1000)
    engine = Engine(config, env=env, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: len(session_errors()) >= 4, timeout=60, what="a failure after the restart")
    finally:
        await engine.stop()
    assert session_errors()[3] == 1


@pytest.mark.parametrize("how", ["no key at all", "a key the API refuses"])
async def test_missing_credentials_say_what_to_do_and_stop_retrying(tmp_path, model, how):
    config = make_workspace(tmp_path)
    model.set_script([bash("echo never")])
    env = {**os.environ, **cli_env(tmp_path / "home", model.base_url)}
    if how == "no key at all":
        env["ANTHROPIC_API_KEY"] = ""
    else:
        model.fail_next(401, count=1000, error_type="authentication_error")
    engine = Engine(config, env=env, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", timeout=60, what="needs_attention")
        await asyncio.sleep(2.0)  # a lane that retried would fail again meanwhile
        reason = engine.lanes["a"].record.needs_attention_reason
        failures = engine.lanes["a"].record.counters.failures
    finally:
        await engine.stop()
    assert "ANTHROPIC_API_KEY" in reason and "claude login" in reason and "autoresearch-tui stop" in reason
    assert failures == 1
    assert model.main_requests == []
    texts = [e.get("text", "") for e in read_events(engine.workspace.events_path("a")) if e["type"] == "assistant_text"]
    assert not any("/login" in text for text in texts)  # shown as the lane's problem, not as agent talk


async def test_api_retries_show_as_the_lanes_status_at_once(tmp_path, model):
    config = make_workspace(tmp_path)
    model.set_script([bash("echo one"), bash("echo two")])
    model.fail_next(529, count=3)
    engine = make_engine(config, model, tmp_path)
    seen = []
    engine.subscribe(lambda event: seen.append(dict(event, snapshot_retry=engine.lanes["a"].api_retry))
                     if event["type"] == "api_retry" else None)
    await engine.start()
    try:
        await wait_until(lambda: seen, timeout=30, what="the first retry")
        first_retry_at = time.time()
        assert not model.main_requests  # shown while the CLI still waits for the API
        assert engine.lane_snapshot("a").api_retry["attempt"] >= 1
        await wait_until(lambda: len(model.main_requests) >= 2, timeout=60, what="recovery")
        after = engine.lane_snapshot("a").api_retry
    finally:
        await engine.stop()
    assert [e["attempt"] for e in seen] == [1, 2, 3]
    assert seen[0]["message"].startswith("retrying the API (attempt 1/10, next in ")
    assert "overloaded (HTTP 529)" in seen[0]["message"]
    assert after is None and first_retry_at < model.main_requests[0].received_at


async def test_an_unreachable_api_is_named_while_the_cli_retries(tmp_path, model):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = make_workspace(tmp_path)
    env = {**os.environ, **cli_env(tmp_path / "home", dead, max_retries=2)}
    engine = Engine(config, env=env, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].api_retry is not None, timeout=30, what="a retry")
        message = engine.lanes["a"].api_retry["message"]
    finally:
        await engine.stop()
    assert message.startswith("retrying the API (attempt 1/2") and f"no answer from {dead}" in message
