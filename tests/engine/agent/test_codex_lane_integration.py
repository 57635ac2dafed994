"""Codex lanes end to end: the real Codex CLI 0.171 (`codex app-server`), real git forks, the
engine's real policy, against the scripted Responses server on 127.0.0.1.

Every test here runs inside a network namespace of its own (the `codex` marker, see
tests/conftest.py): Codex can reach nothing but loopback. Assertions are on what the model
received (the recorded requests) and on what the user sees (events, lane state, files).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import pytest
import tomlkit

from autoresearch_tui.engine.agent.processes import describe
from autoresearch_tui.engine.config import load_config
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.core.files import read_json
from autoresearch_tui.engine.core.ledger import read_ledger
from autoresearch_tui.engine.daemon.control import running_pid, spawn_daemon
from autoresearch_tui.engine.demo.scripted_model import Turn, cli_env
from autoresearch_tui.engine.demo.scripted_responses import (
    FAKE_API_KEY, CustomToolCall, FunctionCall, Message, Reply, Request, ScriptedResponses, Usage, provider_config,
)
from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.workspace import Workspace
from tests.support import git, make_workspace, processes_in, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.codex, pytest.mark.timeout(240)]

KEY_ENV = "AUTORESEARCH_SCRIPTED_KEY"


@pytest.fixture
def model(codex_bin):
    with ScriptedResponses() as server:
        yield server


def codex_table(server: ScriptedResponses, *, retries: int | None = 0, config_extra: dict | None = None,
                **codex) -> str:
    config = {**provider_config(server.base_url, env_key=KEY_ENV, retries=retries), **(config_extra or {})}
    return tomlkit.dumps({"agent": {"codex": {"model": "gpt-5.5", **codex, "config": config}}})


def codex_workspace(tmp_path: Path, server: ScriptedResponses, *, lanes=("a",), agents=None, loop: str = "",
                    retries: int | None = 0, config_extra: dict | None = None, repo_files=None, **codex):
    agents = agents or {name: "codex" for name in lanes}
    return make_workspace(tmp_path, lanes=lanes, agents=agents, loop=loop, repo_files=repo_files,
                          extra=codex_table(server, retries=retries, config_extra=config_extra, **codex))


def make_engine(config, tmp_path: Path, **env) -> Engine:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Engine(config, env={**os.environ, "HOME": str(home), KEY_ENV: FAKE_API_KEY, **env}, backoff_base_s=0.05)


def sh(command: str, **extra) -> FunctionCall:
    return FunctionCall("exec_command", {"cmd": command, **extra})


def events_of(engine: Engine, lane: str = "a", type: str | None = None) -> list[dict]:
    events = read_events(engine.workspace.events_path(lane))
    return [e for e in events if type is None or e["type"] == type]


def main(server: ScriptedResponses) -> list[Request]:
    return server.main_requests


async def test_a_turn_end_is_continued_by_the_policy_and_the_continue_text_reaches_the_model(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="max_consecutive_blocks = 3\nretrospective_every_stops = 10")
    model.add(sh("echo first-experiment"), Message("I made one change; the step is faster."),
              sh("env; echo second-experiment"))
    engine = make_engine(config, tmp_path, OPENAI_API_KEY="sk-never-shown-to-commands")
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 4, what="the request after the turn ended")
    finally:
        await engine.stop()
    first, _, third, fourth = main(model)[:4]
    env_output = list(fourth.outputs().values())[-1]
    assert "second-experiment" in env_output and "AUTORESEARCH_LANE=a" in env_output
    assert FAKE_API_KEY not in env_output and "sk-never-shown" not in env_output  # keys stay out of commands
    assert "lane a of experiment exp" in first.last_user_text()       # the start prompt
    assert "Do not stop: the loop is still running" in third.last_user_text()
    assert "run_benchmark" in third.last_user_text()                  # the condensed loop program
    assert third.thread_id == first.thread_id == engine.lanes["a"].record.session_id
    assert third.meta["turn_id"] != first.meta["turn_id"]           # a new Codex turn, same thread
    blocked = events_of(engine, type="stop_blocked")
    assert blocked and blocked[0]["kind"] == "continue"
    assert engine.lanes["a"].record.policy.stops_blocked >= 1
    assert engine.lanes["a"].state == "stopped"


async def test_the_program_is_reinjected_every_n_turns_and_after_a_compaction(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="reinject_every_turns = 3\nretrospective_every_stops = 50",
                             config_extra={"model_auto_compact_token_limit": 20000})
    retros = config.workspace / "wiki" / "experiment" / "exp" / "a" / "retrospectives"
    retros.mkdir(parents=True)
    (retros / "2026-01-01-a-retrospective.md").write_text(
        "# Retrospective\n\n## Runs by direction\n- jit: 2 tries\n\n"
        "## Next, by expected gain / effort\n1. fused QKV projection\n2. bf16 activations\n")

    def play(request: Request):
        # Answered by what the request holds, not by its place in line: a re-injection steered
        # into the turn while a request is in flight makes Codex drop that request's answer
        # and ask again, so a script in order could lose its big-context reply to that request.
        if any(r.kind == "compact" for r in model.requests):
            if "context was compacted" in request.text_blob():
                return Message("Done for now.")
            return sh("echo after-compaction")
        if "assistant turns since the last injection" in request.text_blob():
            return Reply([sh("echo big-context")], usage=Usage(input_tokens=30000))  # Codex compacts next
        return sh(f"echo step-{len(main(model))}")

    model.add(*[play] * 40)
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: any("context was compacted" in r.new_text for r in main(model)),
                         what="the re-injection after the compaction")
    finally:
        await engine.stop()
    requests = main(model)
    scheduled = [i for i, r in enumerate(requests) if "assistant turns since the last injection" in r.new_text]
    # 3 turns, then the next request (or its re-send, when the steer caught one in flight)
    assert scheduled and scheduled[0] <= 5, model.dump()
    assert [r for r in model.requests if r.kind == "compact"], "Codex never compacted"
    after = next(r for r in requests if "context was compacted" in r.new_text)
    assert after.n > next(r.n for r in model.requests if r.kind == "compact")
    reinjected = after.new_text
    assert "Reminder of the loop program" in reinjected and "lane a of experiment exp" in reinjected
    assert "## Lane state" in reinjected and "0 runs recorded" in reinjected
    assert "## Hypotheses queued" in reinjected and "1. fused QKV projection" in reinjected
    kinds = [(e.get("kind"), e.get("reason", "")) for e in events_of(engine, type="injection")]
    assert ("scheduled", "context compaction: the program is due again") in kinds
    assert any(kind == "program" and "context was compacted" in reason for kind, reason in kinds)


async def test_a_retrospective_on_the_kth_stop_and_on_a_give_up_message(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="retrospective_every_stops = 2\nmax_consecutive_blocks = 4")
    model.add(Message("Finished an experiment."), sh("echo working"),          # stop 1: continue
              Message("Finished another experiment."), sh("echo working"),    # stop 2: retrospective
              Message("I have exhausted all ideas for this model."),          # stop 3: give-up
              sh("echo after"))
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 6, what="six requests")
    finally:
        await engine.stop()
    texts = [r.last_user_text() for r in main(model)[:6]]
    assert "Do not stop" in texts[1] and "Retrospective —" not in texts[1]
    assert "Time for a retrospective (stop #2" in texts[3] and "Review every run" in texts[3]
    assert "gave up or asked permission" in texts[5] and "Rank the next directions" in texts[5]
    started = [e for e in events_of(engine, type="retrospective") if e.get("phase") == "started"]
    assert len(started) == 2 and engine.lanes["a"].record.policy.retrospectives == 2


async def test_the_runaway_guard_stops_a_lane_that_only_talks(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="max_consecutive_blocks = 2\nretrospective_every_stops = 50")
    model.when_exhausted = "Nothing to do."
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", what="needs_attention")
        await asyncio.sleep(1.0)  # nothing more is asked of the model
        requests_at_attention = len(main(model))
        reason = engine.lanes["a"].record.needs_attention_reason
    finally:
        await engine.stop()
    assert requests_at_attention == 3  # the first answer and two blocked stops, then no more tokens
    assert "no tool use in between" in reason
    allowed = events_of(engine, type="stop_allowed")
    assert allowed[0]["kind"] == "runaway"
    assert engine.lanes["a"].record.policy.stops_blocked == 2


async def test_a_write_outside_the_lane_is_refused_and_shown(tmp_path, model):
    config = codex_workspace(tmp_path, model)
    main_repo = config.repo_path
    ledger = config.workspace / "wiki" / "experiment" / "exp" / "a" / "results.tsv"
    outside_patch = f"*** Begin Patch\n*** Add File: {main_repo / 'patched.py'}\n+oops\n*** End Patch\n"
    model.add(sh(f"echo oops > {main_repo / 'evil.py'}"),
              CustomToolCall("apply_patch", outside_patch),
              sh("echo forged >> ../../results.tsv; echo y > /tmp/autoresearch-codex-probe"),
              CustomToolCall("apply_patch", "*** Begin Patch\n*** Add File: notes.txt\n+fine\n*** End Patch\n"),
              sh("echo z > $TMPDIR/scratch && git add -A && git commit -qm 'notes' && echo COMMITTED"),
              Message("Done."))
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 6, what="every call answered")
        await wait_until(lambda: any(e.get("tool") == "apply_patch" for e in events_of(engine, type="tool_denied")),
                         what="the refused patch shown")
    finally:
        await engine.stop()
    outputs = {}
    for request in main(model):
        outputs.update(request.outputs())
    answers = list(outputs.values())
    assert "Read-only file system" in answers[0] and not (main_repo / "evil.py").exists()
    assert "patch rejected" in answers[1] and not (main_repo / "patched.py").exists()
    assert "results.tsv: Read-only file system" in answers[2] and not ledger.exists()
    assert not Path("/tmp/autoresearch-codex-probe").exists()
    fork = engine.workspace.fork_dir("a")
    assert (fork / "notes.txt").read_text() == "fine\n" and "COMMITTED" in answers[4]
    assert git(fork, "log", "-1", "--format=%s").strip() == "notes"  # the agent can commit in its fork
    denied = events_of(engine, type="tool_denied")
    assert any("evil.py: Read-only file system" in e["reason"] for e in denied)
    assert any(e["tool"] == "apply_patch" and "patched.py is outside this lane's folder" in e["reason"]
               for e in denied)
    assert any("results.tsv: Read-only file system" in e["reason"] for e in denied)


async def test_pause_lets_the_turn_end_and_resume_continues_the_same_thread(tmp_path, model):
    config = codex_workspace(tmp_path, model)
    model.add(sh("sleep 1; echo before-pause"), Message("Step done."), sh("echo after-resume"))
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 1, what="the first request")
        assert "pausing" in engine.pause("a")
        await wait_until(lambda: engine.lanes["a"].state == "paused", what="paused")
        await asyncio.sleep(0.5)
        paused_requests = len(main(model))
        thread = engine.lanes["a"].record.session_id
        assert engine.resume("a") == "lane a resumed"
        await wait_until(lambda: len(main(model)) > paused_requests, what="a request after resume")
    finally:
        await engine.stop()
    assert paused_requests == 2  # the command's answer, then nothing while paused
    after = main(model)[paused_requests]
    assert "Continue the loop (resumed)" in after.last_user_text()
    assert after.contains("before-pause") and after.thread_id == thread  # the same conversation goes on
    assert engine.lanes["a"].record.session_id == thread
    assert any(e["kind"] == "paused" for e in events_of(engine, type="stop_allowed"))


async def test_429_and_500_are_retried_and_the_lane_recovers(tmp_path, model):
    config = codex_workspace(tmp_path, model, retries=None)  # Codex's own retry counts
    model.add(sh("echo one"), sh("echo two"), sh("echo three"))
    model.fail_next(1, 429)   # Codex does not retry a 429 without Retry-After: the lane backs off
    model.fail_next(1, 500)   # a 500 Codex retries itself
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 5, timeout=90, what="recovery")
        lane = engine.lanes["a"]
        state, counters = lane.state, lane.record.counters
    finally:
        await engine.stop()
    answers = [r.answer for r in main(model)]
    assert answers[:3] == ["http 429", "http 500", "reply"]
    assert state == "running" and counters.consecutive_failures == 0 and counters.failures == 1
    threads = {r.thread_id for r in main(model)}
    assert len(threads) == 1  # the restarted app-server resumed the same thread
    after = main(model)[2]
    assert "failed and was restarted" in after.last_user_text()
    errors = [e for e in events_of(engine, type="error") if e["where"] == "session"]
    assert errors and "429" in errors[0]["message"]


async def test_repeated_failures_put_a_codex_lane_in_needs_attention(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="max_failures = 2")
    model.add(sh("echo never"))
    model.fail_next(1000, 500)
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", timeout=60, what="needs_attention")
        reason = engine.lanes["a"].record.needs_attention_reason
    finally:
        await engine.stop()
    assert "2 failures in a row" in reason and "HTTP 5xx" in reason
    errors = [e for e in events_of(engine, type="error") if e["where"] == "session"]
    assert [e["consecutive_failures"] for e in errors] == [1, 2]


async def test_a_claude_lane_and_a_codex_lane_run_at_once_in_their_own_forks(tmp_path, model, scripted_model):
    config = codex_workspace(tmp_path, model, lanes=("a", "b"), agents={"b": "codex"})

    def commit_lane(lane: str) -> str:
        return f"echo {lane} > lane.txt && git add lane.txt && git commit -qm 'lane {lane}' && echo wrote-{lane}"

    def claude_agent(request):
        done = request.contains("wrote-a")
        return Turn.tool("Bash", {"command": "echo idle-a" if done else commit_lane("a"), "description": "step"})

    fork_a = config.workspace / "wiki" / "experiment" / "exp" / "a" / ".repo" / "proj"

    def codex_agent(request):
        if request.contains("wrote-b"):
            return sh(f"echo intruder > {fork_a}/lane.txt; echo idle-b")  # b tries a's fork: refused
        return sh(commit_lane("b"))

    scripted_model.set_script(claude_agent)
    model.add(codex_agent)
    model.when_exhausted = codex_agent
    engine = make_engine(config, tmp_path, **cli_env(tmp_path / "home", scripted_model.base_url))
    await engine.start()
    try:
        await wait_until(lambda: any(r.contains("idle-a") for r in scripted_model.main_requests)
                         and any(r.contains("idle-b") for r in main(model)), what="both lanes moved on")
        snapshot = engine.snapshot()["lanes"]
    finally:
        await engine.stop()
    for name in "ab":
        fork = engine.workspace.fork_dir(name)
        assert (fork / "lane.txt").read_text().strip() == name
        assert git(fork, "log", "-1", "--format=%s").strip() == f"lane {name}"
        assert git(fork, "rev-parse", "--abbrev-ref", "HEAD").strip() == f"autoresearch/exp/{name}"
    assert not (engine.workspace.main_repo / "lane.txt").exists()
    assert {name: lane["agent"] for name, lane in snapshot.items()} == {"a": "claude", "b": "codex"}
    # Each agent talked to its own model, and only Codex has a Codex home.
    assert all(not r.contains("wiki/experiment/exp/b") for r in scripted_model.main_requests)
    assert all(not r.contains(str(fork_a)) or r.contains("intruder") for r in main(model))
    assert (engine.workspace.lane_dir("b") / ".codex" / "config.toml").is_file()
    assert not (engine.workspace.lane_dir("a") / ".codex").exists()
    assert any("Read-only file system" in e["reason"] for e in events_of(engine, "b", "tool_denied"))
    assert all(e["lane"] == "a" for e in events_of(engine, "a"))


async def test_record_run_and_run_benchmark_from_a_codex_lane_keep_the_ledger_right(tmp_path, model):
    bench = ("import json, os\n"
             "step = float(open('speed.txt').read())\n"
             "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps({'v': 1, 'kind': 'summary', "
             "'step_time_median_s': step, 'p10_s': step, 'p90_s': step, 'n': 30}) + '\\n')\n"
             "print('step_time_ms:', step * 1000)\n")
    config = codex_workspace(tmp_path, model, repo_files={"bench.py": bench, "speed.txt": "0.010\n"})
    tools = "mcp__autoresearch"
    plan = iter([
        FunctionCall("run_benchmark", {"description": "baseline"}, namespace=tools),
        lambda r: FunctionCall("record_run", {"status": "keep", "description": "baseline",
                                              "run_dir": run_dir_in(r)}, namespace=tools),
        sh("echo 0.020 > speed.txt && git commit -qam 'slower on purpose' && git rev-parse HEAD"),
        FunctionCall("run_benchmark", {"description": "slower on purpose"}, namespace=tools),
        lambda r: FunctionCall("record_run", {"status": "discard", "description": "slower on purpose",
                                              "run_dir": run_dir_in(r)}, namespace=tools),
        FunctionCall("lane_status", {}, namespace=tools),
    ])

    def agent(request):
        step = next(plan, Message("Recorded both runs."))
        return step(request) if callable(step) else step

    model.add(agent)
    model.when_exhausted = agent
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 7, timeout=120, what="both runs recorded")
    finally:
        await engine.stop()
    fork = engine.workspace.fork_dir("a")
    rows, warnings = read_ledger(engine.workspace.ledger_path("a"), "step_time_ms")
    assert warnings == []
    assert [(r["run_id"], r["status"], r["description"]) for r in rows] == [
        ("0001", "keep", "baseline"), ("0002", "discard", "slower on purpose")]
    assert [r["metric"] for r in rows] == pytest.approx([10.0, 20.0])  # measured by the engine
    slower = git(fork, "rev-parse", "HEAD").strip()
    assert rows[1]["commit"] == slower and rows[0]["commit"] == git(fork, "rev-parse", "HEAD~1").strip()
    assert git(fork, "rev-parse", "refs/autoresearch/runs/0002").strip() == slower
    outputs = list({k: v for r in main(model) for k, v in r.outputs().items()}.values())
    assert "run_id=0001" in outputs[0] and "step_time_ms (median): 10.000" in outputs[0]
    recorded = json.loads(outputs[1].split("Output:", 1)[1])  # Codex prefixes the tool's text
    assert (recorded["run_id"], recorded["status"], recorded["baseline"]) == ("0001", "keep", pytest.approx(10.0))
    status = json.loads(outputs[5].split("Output:", 1)[1])
    assert status["runs"] == 2 and status["best"] == pytest.approx(10.0) and status["best_run"] == "0001"
    assert [e["run_id"] for e in events_of(engine, type="run_recorded")] == ["0001", "0002"]


def run_dir_in(request: Request) -> str:
    match = re.search(r"run_dir=(\S+)", request.new_text)
    assert match, request.new_text
    return match.group(1)


async def test_cost_is_counted_from_token_usage_and_the_budget_cap_stops_the_lane(tmp_path, model):
    # $100 per million input tokens and 10,000 tokens a request: $1 a request, a $2.50 cap.
    config = codex_workspace(tmp_path, model, usd_per_mtok={"input": 100, "output": 0})
    text = config.path.read_text().replace("[loop]", "[agent]\nmax_budget_usd = 2.5\n\n[loop]")
    config.path.write_text(text)
    config = load_config(config.path)
    model.when_exhausted = Reply([sh("echo spending")], usage=Usage(input_tokens=10_000, output_tokens=0))
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", timeout=60, what="the cap")
        await asyncio.sleep(1.0)
        requests_at_cap = len(main(model))
        counters = engine.lanes["a"].record.counters
        reason = engine.lanes["a"].record.needs_attention_reason
    finally:
        await engine.stop()
    assert requests_at_cap == 3  # the third dollar reached the cap: the turn was interrupted
    assert counters.cost_usd == pytest.approx(3.0) and counters.input_tokens == 30_000
    assert "budget" in reason
    assert events_of(engine, type="cost")[-1]["total_cost_usd"] == pytest.approx(3.0)
    assert any(e["kind"] == "budget" for e in events_of(engine, type="stop_allowed"))


async def test_kill_9_of_the_engine_then_the_same_thread_is_resumed(tmp_path, model):
    config = codex_workspace(tmp_path, model)
    workspace = Workspace(config)
    model.when_exhausted = lambda request: sh(f"sleep 0.3; echo tick-{len(request.input)}")
    env = {**os.environ, "HOME": str(tmp_path / "home"), KEY_ENV: FAKE_API_KEY}
    (tmp_path / "home").mkdir()
    pid = spawn_daemon(config, env=env)
    try:
        await wait_until(lambda: len(main(model)) >= 3, timeout=60, what="the lane at work")
        thread = read_json(workspace.lane_json("a"))["session_id"]
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: running_pid(workspace) is None, timeout=20, what="the lock released")
        # The killed engine's Codex died with it (parent-death signal; its commands with it).
        await wait_until(lambda: not processes_in(workspace.lane_dir("a")), timeout=20,
                         what="no process left in the lane")
        requests_before = len(main(model))
        pid = spawn_daemon(config, env=env)
        await wait_until(lambda: any("engine restarted" in r.last_user_text()
                                     for r in main(model)[requests_before:]), timeout=60, what="the resumed lane")
    finally:
        if running_pid(workspace):
            os.kill(running_pid(workspace), signal.SIGKILL)
    resumed = next(r for r in main(model)[requests_before:] if "engine restarted" in r.last_user_text())
    assert resumed.thread_id == thread and read_json(workspace.lane_json("a"))["session_id"] == thread
    assert any("Start experiment exp" in text for text in resumed.user_texts())  # the whole conversation
    assert any("tick-" in output for output in resumed.outputs().values())
    assert len(main(model)) - requests_before <= 3  # nothing ran on between the kill and the restart


async def test_the_demos_codex_lane_does_the_demo_agents_work_through_codex(tmp_path, codex_bin):
    # The demo agent's plan, played to the real Codex CLI by the engine's own scripted
    # Responses server (scripted_demo): its edits land through apply_patch and exec_command.
    model_py = ("import jax\n\ndef train_step(x):\n    jax.debug.callback(_check_finite, loss, grad_norm)  # host\n"
                "    return x\n\nstep_fn = train_step\n")
    bench = ("import json, os\nsource = open('model.py').read()\n"
             "step = 0.004 if 'jax.jit(train_step)' in source else 0.009 if 'jax.debug' not in source else 0.010\n"
             "open(os.environ['AUTORESEARCH_METRICS'], 'a').write(json.dumps({'v': 1, 'kind': 'summary', "
             "'step_time_median_s': step, 'n': 30}) + '\\n')\n")
    # confirm_runs = 0: the plan's three keeps as the demo agent makes them (confirmations are
    # tested on their own, tests/engine/runs/test_evidence.py).
    config = make_workspace(tmp_path, lanes=("b",), agents={"b": "codex"}, experiment="confirm_runs = 0",
                            repo_files={"bench.py": bench, "model.py": model_py},
                            extra='[agent]\nscripted_demo = true\n[agent.codex]\nmodel = "gpt-5.5"\n')
    engine = make_engine(config, tmp_path)
    assert engine.scripted_responses is not None  # the engine's own, not a test's
    await engine.start()
    try:
        await wait_until(lambda: len(read_ledger(engine.workspace.ledger_path("b"), "step_time_ms")[0]) >= 3,
                         timeout=150, what="the demo's three runs")
    finally:
        await engine.stop()
    fork = engine.workspace.fork_dir("b")
    source = (fork / "model.py").read_text()
    assert "step_fn = jax.jit(train_step)" in source and "jax.debug.callback" not in source
    rows, _ = read_ledger(engine.workspace.ledger_path("b"), "step_time_ms")
    assert [(r["status"], r["description"]) for r in rows] == [
        ("keep", "baseline"), ("keep", "drop the per-step host callback"), ("keep", "jit the whole train step")]
    assert git(fork, "log", "-1", "--format=%s").strip() == "jit the whole train step"
    tools = {e["tool"] for e in events_of(engine, "b", "tool_use")}
    assert {"apply_patch", "exec_command", "mcp__autoresearch__run_benchmark", "mcp__autoresearch__record_run"} <= tools


async def test_a_silent_codex_lane_is_nudged_and_its_stuck_command_ended(tmp_path, model):
    config = codex_workspace(tmp_path, model, loop="idle_nudge_minutes = 0.03")  # ~2 s of silence
    marker = tmp_path / "survived"
    model.add(sh(f"python3 -c 'import time; time.sleep(30)' && touch {marker}", yield_time_ms=60000),
              sh("echo after-the-nudge"))
    engine = make_engine(config, tmp_path)
    fork = engine.workspace.fork_dir("a")

    def stuck() -> list[str]:
        return [d for d in map(describe, processes_in(fork)) if "time.sleep(30)" in d]

    await engine.start()
    try:
        await wait_until(lambda: stuck(), timeout=60, what="the stuck command")
        await wait_until(lambda: any("nudged: no activity" in r.last_user_text() for r in main(model)),
                         timeout=60, what="the nudge to reach the model")
        await wait_until(lambda: any(r.contains("after-the-nudge") for r in main(model)), what="work after it")
        left_running = stuck()  # the lane still runs: only the interrupt can have ended it
        thread = engine.lanes["a"].record.session_id
        failures = engine.lanes["a"].record.counters.failures
    finally:
        await engine.stop()
    assert left_running == [] and not marker.exists()
    nudged = next(r for r in main(model) if "nudged: no activity" in r.last_user_text())
    assert nudged.thread_id == thread  # the same conversation, a new turn
    assert failures == 0  # an interrupt the engine made is no failure
    assert [e for e in events_of(engine, type="injection") if e.get("kind") == "nudge"]


async def test_a_thread_codex_no_longer_has_is_replaced_by_a_new_one_that_starts_like_a_new_lane(tmp_path, model):
    config = codex_workspace(tmp_path, model)
    workspace = Workspace(config)
    workspace.lane_dir("a").mkdir(parents=True)
    lost = "01a23100-0000-7000-8000-000000000000"  # e.g. its .codex folder was deleted
    workspace.lane_json("a").write_text(json.dumps({"name": "a", "state": "running", "session_id": lost,
                                                    "agent": "codex"}))
    model.add(sh("echo working"))
    engine = make_engine(config, tmp_path)
    await engine.start()
    try:
        await wait_until(lambda: len(main(model)) >= 1, what="the first request")
    finally:
        await engine.stop()
    first = main(model)[0]
    assert first.thread_id != lost and engine.lanes["a"].record.session_id == first.thread_id
    assert "Start experiment exp" in first.last_user_text() and "session was resumed" in first.last_user_text()
    warnings = [e["message"] for e in events_of(engine, type="warning") if e["where"] == "codex"]
    assert any(f"could not resume thread {lost}" in w and "no rollout found" in w for w in warnings)
