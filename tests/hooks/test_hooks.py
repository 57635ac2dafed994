"""The standalone Claude Code hooks (hooks/*.py).

Unit tests feed the scripts JSON on stdin (as Claude Code does) and read their stdout; the
integration tests install them into a repo and run the bundled `claude -p` against the
scripted model server: the CLI loads <repo>/.claude/settings.local.json (the default
setting sources of -p include "local"; -p skips the workspace trust dialog, so a throwaway
HOME needs no trust acceptance) and offers <repo>/.claude/skills/* as slash commands.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from autoresearch_tui.engine.setup.install_hooks import install, uninstall
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, Turn
from tests.support import REPO_ROOT

ROOT = REPO_ROOT
HOOKS = ROOT / "hooks"
STOP, PROMPT, REINJECT = (HOOKS / n for n in ("stop_hook.py", "prompt_hook.py", "reinject_hook.py"))
SID = "0b7c1e2a-1111-4222-8333-444455556666"
OTHER = "9f8e7d6c-aaaa-4bbb-8ccc-ddddeeeeffff"

TOML = """\
[experiment]
name = "exp"
repo = "."
metric = "step_time_ms"
bench_command = "python bench.py"

[loop]
reinject_every_turns = 2
retrospective_every_stops = 3
plateau_runs = 3
max_consecutive_blocks = 3

[[lanes]]
name = "a"
focus = "try jit first"
"""


# ------------------------------------------------------------------------------- helpers


def make_repo(path: Path, toml: str | None = TOML) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    (path / "bench.py").write_text("print('step_time_ms: 10')\n")
    if toml is not None:
        (path / "autoresearch.toml").write_text(toml)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "init"], check=True, env=env)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    install(repo)
    return repo


def hook(script: Path, payload, root: Path, env: dict | None = None) -> tuple[int, dict | None, str]:
    """Run one hook script like Claude Code does: (exit code, parsed stdout or None, raw stdout)."""
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    proc = subprocess.run([sys.executable, "-S", str(script), "--root", str(root)], input=data,
                          capture_output=True, text=isinstance(data, str), timeout=30,
                          env={**os.environ, **(env or {})})
    out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    return proc.returncode, (json.loads(out) if out.strip() else None), out


def stop_input(session_id: str = SID, message: str = "Done with this run.", **extra) -> dict:
    return {"session_id": session_id, "transcript_path": "/nonexistent.jsonl", "cwd": "/",
            "hook_event_name": "Stop", "stop_hook_active": False,
            "last_assistant_message": message, **extra}


def prompt_input(prompt: str, session_id: str = SID) -> dict:
    return {"session_id": session_id, "transcript_path": "/nonexistent.jsonl", "cwd": "/",
            "hook_event_name": "UserPromptSubmit", "prompt": prompt}


def tool_input(session_id: str = SID, event: str = "PostToolUse") -> dict:
    return {"session_id": session_id, "cwd": "/", "hook_event_name": event, "tool_name": "Bash",
            "tool_input": {"command": "ls"}, "tool_response": {"stdout": ""}, "tool_use_id": "t1"}


def marker(repo: Path, session_id: str = SID) -> Path:
    return repo / ".claude" / "autoresearch" / "sessions" / f"{session_id}.json"


def log_text(repo: Path) -> str:
    path = repo / ".claude" / "autoresearch" / "hooks.log"
    return path.read_text() if path.exists() else ""


def events(repo: Path, lane: str = "a") -> list[dict]:
    path = repo / ".claude" / "autoresearch" / "lanes" / lane / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def arm(repo: Path, session_id: str = SID) -> dict:
    _, out, _ = hook(PROMPT, prompt_input("/start-experiment", session_id), repo)
    return out


# ------------------------------------------------------------------------------- unit: arming


def test_start_experiment_arms_only_that_session(repo: Path):
    out = arm(repo)
    ctx = out["hookSpecificOutput"]["additionalContext"]
    assert out["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    assert "Guardrails armed" in ctx and "lane a" in ctx and "Autoresearch loop" in ctx
    data = json.loads(marker(repo).read_text())
    assert data["session_id"] == SID and data["experiment"] == "exp" and data["lane"] == "a"
    assert data["settings"]["max_consecutive_blocks"] == 3  # from autoresearch.toml [loop]
    assert data["policy"]["injections"] == 1 and data["stop_authorized"] is False
    assert not marker(repo, OTHER).exists()


def test_other_prompts_do_nothing(repo: Path):
    for prompt in ("hello", "please /start-experiment", "/start-experimental", ""):
        assert hook(PROMPT, prompt_input(prompt), repo)[1] is None
    assert not marker(repo).exists()


def test_stop_experiment_in_unarmed_session_is_a_no_op(repo: Path):
    assert hook(PROMPT, prompt_input("/stop-experiment"), repo)[1] is None
    assert not marker(repo).exists()


def test_settings_default_without_config(tmp_path: Path):
    repo = make_repo(tmp_path / "plain", toml=None)
    install(repo)
    arm(repo)
    data = json.loads(marker(repo).read_text())
    assert data["lane"] == "main" and data["settings"]["retrospective_every_stops"] == 3
    assert data["settings"]["max_consecutive_blocks"] == 5


# ------------------------------------------------------------------------------- unit: stop


def test_unarmed_session_stop_allowed_silently(repo: Path):
    arm(repo, OTHER)
    rc, out, raw = hook(STOP, stop_input(SID), repo)
    assert rc == 0 and raw == "" and log_text(repo) == ""


def test_armed_stop_blocked_then_retrospective_then_runaway(repo: Path):
    arm(repo)
    answers = [hook(STOP, stop_input(), repo)[1] for _ in range(4)]
    assert [a and a.get("decision") for a in answers[:3]] == ["block"] * 3
    assert "Do not stop" in answers[0]["reason"] and "Autoresearch loop" in answers[0]["reason"]
    assert "retrospective" in answers[2]["reason"] and "Retrospective" in answers[2]["reason"]
    assert "<today's date" not in answers[2]["reason"]  # the date placeholder is filled in
    # 3 blocks with no tool use in between: the 4th stop goes through, flagged for attention
    assert answers[3] and "decision" not in answers[3] and "needs attention" in answers[3]["systemMessage"]
    assert marker(repo).exists()  # still armed
    kinds = [(e["type"], e.get("kind")) for e in events(repo)]
    assert kinds.count(("stop_blocked", "continue")) == 2 and ("stop_allowed", "runaway") in kinds


def test_tool_use_resets_the_runaway_guard(repo: Path):
    arm(repo)
    for _ in range(10):
        assert hook(STOP, stop_input(), repo)[1]["decision"] == "block"
        hook(REINJECT, tool_input(), repo)


def test_give_up_phrase_gets_a_retrospective(repo: Path):
    arm(repo)
    out = hook(STOP, stop_input(message="I have exhausted the obvious ideas. Should I continue?"), repo)[1]
    assert out["decision"] == "block" and "gave up" in out["reason"] and "Retrospective" in out["reason"]


def test_plateau_in_the_ledger_gets_a_retrospective(repo: Path):
    arm(repo)
    ledger = repo / ".claude" / "autoresearch" / "lanes" / "a" / "results.tsv"
    rows = ["0001\t1\tabc1\t10.0\tkeep\tbaseline", "0002\t2\tabc2\t10.5\tdiscard\tx",
            "junk line", "0003\t3\tabc3\t11\tdiscard\ty", "0004\t4\t\t\tcrash\tz"]
    with ledger.open("a") as fh:
        fh.write("\n".join(rows) + "\n")
    out = hook(STOP, stop_input(), repo)[1]
    assert "plateau: 3 runs without a new best" in out["reason"]
    assert "4 runs recorded, 3 since the last new best" in out["reason"]


def test_stop_experiment_authorizes_the_stop_and_disarms(repo: Path):
    arm(repo)
    assert hook(STOP, stop_input(), repo)[1]["decision"] == "block"
    out = hook(PROMPT, prompt_input("/stop-experiment"), repo)[1]
    assert "stop-experiment" in out["hookSpecificOutput"]["additionalContext"]
    assert json.loads(marker(repo).read_text())["stop_authorized"] is True
    assert hook(STOP, stop_input(), repo)[2] == ""
    assert not marker(repo).exists()
    assert ("stop_allowed", "authorized") in [(e["type"], e.get("kind")) for e in events(repo)]


def test_deleting_the_marker_authorizes_the_stop(repo: Path):
    arm(repo)
    marker(repo).unlink()
    assert hook(STOP, stop_input(), repo)[2] == ""


def test_stale_marker_expires(repo: Path):
    arm(repo)
    data = json.loads(marker(repo).read_text())
    data["updated_at"] = time.time() - 7200
    marker(repo).write_text(json.dumps(data))
    assert hook(STOP, stop_input(), repo, env={"AUTORESEARCH_MARKER_MAX_AGE_S": "3600"})[2] == ""
    assert not marker(repo).exists() and "stale marker" in log_text(repo)


def test_arming_sweeps_stale_markers_of_other_sessions(repo: Path):
    arm(repo, OTHER)
    data = json.loads(marker(repo, OTHER).read_text())
    data["updated_at"] = 0
    marker(repo, OTHER).write_text(json.dumps(data))
    arm(repo)
    assert not marker(repo, OTHER).exists() and marker(repo).exists()


def test_malformed_marker_allows_and_logs(repo: Path):
    arm(repo)
    marker(repo).write_text("{not json")
    assert hook(STOP, stop_input(), repo)[2] == ""
    assert "malformed marker" in log_text(repo)


def test_last_message_read_from_transcript_when_missing(repo: Path, tmp_path: Path):
    arm(repo)
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(json.dumps({"type": "assistant", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "Would you like me to go on?"}]}}) + "\n")
    payload = stop_input(transcript_path=str(transcript))
    del payload["last_assistant_message"]
    assert "gave up" in hook(STOP, payload, repo)[1]["reason"]


# ------------------------------------------------------------------------------- unit: reinject


def test_reinjection_every_n_turns_and_after_compaction(repo: Path):
    arm(repo)
    outs = [hook(REINJECT, tool_input(), repo)[1] for _ in range(4)]
    assert [o is not None for o in outs] == [False, True, False, True]
    ctx = outs[1]["hookSpecificOutput"]
    assert ctx["hookEventName"] == "PostToolUse" and "Reminder of the loop program" in ctx["additionalContext"]
    assert "2 assistant turns" in ctx["additionalContext"]
    assert hook(REINJECT, tool_input(event="PreCompact"), repo)[1] is None
    out = hook(REINJECT, tool_input(), repo)[1]
    assert "context was compacted" in out["hookSpecificOutput"]["additionalContext"]
    data = json.loads(marker(repo).read_text())
    assert data["tool_uses"] == 5 and data["policy"]["injections"] == 4


def test_reinject_ignores_unarmed_sessions(repo: Path):
    assert hook(REINJECT, tool_input(), repo)[2] == ""
    assert not marker(repo).exists()


# ------------------------------------------------------------------------------- unit: bad input


@pytest.mark.parametrize("script", [STOP, PROMPT, REINJECT], ids=lambda p: p.stem)
@pytest.mark.parametrize("payload", ["", "not json", "[1, 2]", "null", '{"session_id": 5}',
                                     '{"session_id": "../../etc/passwd", "prompt": "/start-experiment"}',
                                     b"\xff\xfe\x00garbage"],
                         ids=["empty", "text", "list", "null", "bad-id", "traversal", "binary"])
def test_malformed_stdin_allows_and_logs(repo: Path, script: Path, payload):
    arm(repo)
    rc, out, raw = hook(script, payload, repo)
    assert rc == 0 and raw == ""
    assert script.stem in log_text(repo)
    assert not (repo.parent / "etc").exists()


def test_hooks_survive_a_missing_state_folder(tmp_path: Path):
    root = tmp_path / "nowhere"
    for script in (STOP, PROMPT, REINJECT):
        assert hook(script, "garbage", root)[2] == ""
        assert hook(script, stop_input(), root)[2] == ""


def test_hooks_need_only_the_standard_library(repo: Path):
    """Run each hook in-process under `python -I -S` and list every module it imported."""
    arm(repo)
    for script, payload in ((STOP, stop_input()), (PROMPT, prompt_input("/start-experiment")),
                            (REINJECT, tool_input())):
        code = (
            "import io, runpy, sys\n"
            f"sys.argv = [{str(script)!r}, '--root', {str(repo)!r}]\n"
            f"sys.stdin = io.TextIOWrapper(io.BytesIO({json.dumps(payload).encode()!r}))\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "own = {'_common', '_autoresearch_core', '__main__'}\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names"
            " and m.split('.')[0] not in own)\n"
            "print('\\nBAD=' + ','.join(bad))\n"
        )
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.rstrip().endswith("BAD="), proc.stdout


# In-process fuzzing (fast): the handlers behind the scripts, fed random stdin.

sys.path.insert(0, str(HOOKS))
import _common  # noqa: E402
import prompt_hook  # noqa: E402
import reinject_hook  # noqa: E402
import stop_hook  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(["session_id", "prompt", "last_assistant_message", "transcript_path",
                         "hook_event_name", "stop_hook_active", "cwd", "tool_name"])
_inputs = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_keys, _json_values | st.sampled_from([SID, OTHER, "/start-experiment", "/stop-experiment"]),
                    max_size=6).map(lambda v: json.dumps(v).encode()),
)


def _run_in_process(module, raw: bytes, root: Path, capsys) -> str:
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(raw))
    try:
        assert module.main(["--root", str(root)]) == 0
    finally:
        sys.stdin = old
    return capsys.readouterr().out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_inputs, which=st.sampled_from(["stop", "prompt", "reinject"]))
def test_random_stdin_never_crashes(repo: Path, capsys, raw: bytes, which: str):
    module = {"stop": stop_hook, "prompt": prompt_hook, "reinject": reinject_hook}[which]
    out = _run_in_process(module, raw, repo, capsys)
    if out:
        answer = json.loads(out)
        assert isinstance(answer, dict)
        if "decision" in answer:
            assert answer["decision"] == "block" and isinstance(answer["reason"], str)
    assert "internal error" not in log_text(repo)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=400), metric=st.sampled_from(["step_time_ms", "m", ""]),
       direction=st.sampled_from(["minimize", "maximize"]))
def test_ledger_reader_tolerates_junk(tmp_path_factory, text: str, metric: str, direction: str):
    path = tmp_path_factory.mktemp("ledger") / "results.tsv"
    path.write_text(text, encoding="utf-8", errors="replace")
    runs, since = _common.ledger_view(path, metric, direction)
    assert 0 <= since <= runs


def test_ledger_reader_agrees_with_the_engine(tmp_path: Path):
    from autoresearch_tui.engine.core.ledger import compute_frontier, read_ledger

    path = tmp_path / "results.tsv"
    path.write_text("run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\n"
                    "0001\t1\tabc1\t10\tkeep\tbase\n0002\t2\tabc2\t9\tkeep\tbetter\n"
                    "0003\t3\tabc3\t8\tdiscard\tnoise\n0004\t4\tabc4\t\tcrash\tboom\n"
                    "0005\t5\tabc5\t9.5\tinconclusive\thm\n")
    rows, _ = read_ledger(path)
    frontier = compute_frontier(rows, "minimize", "step_time_ms")
    assert _common.ledger_view(path, "step_time_ms", "minimize") == (frontier.runs, frontier.runs_since_best)


# ------------------------------------------------------------------------------- integration: the real CLI


def claude(cli: Path, repo: Path, env: dict, prompt: str, resume: str | None = None) -> dict:
    """One `claude -p` run in `repo`; returns session_id, result text and the stream messages."""
    args = [str(cli), "-p", prompt, "--output-format", "stream-json", "--verbose",
            "--allowedTools", "Bash"]
    if resume:
        args += ["--resume", resume]
    proc = subprocess.run(args, cwd=repo, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=180)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    result = next((m for m in messages if m.get("type") == "result"), None)
    assert proc.returncode == 0 and result, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return {"session_id": result["session_id"], "result": result.get("result"), "messages": messages}


def session_requests(server, session_id: str) -> list[ModelRequest]:
    return [r for r in server.main_requests if r.session_id == session_id]


@pytest.mark.integration
def test_cli_armed_session_blocked_and_continued_unarmed_session_stops(
        repo: Path, scripted_model, cli_env, bundled_cli):
    scripted_model.set_script([
        Turn.tool("Bash", {"command": "echo run-1"}, text="Baseline first."),
        Turn.tool("Bash", {"command": "echo run-2"}),
        Turn.text("Run 2 done."),        # stop 1: blocked, continue
        Turn.text("Continuing."),        # stop 2: blocked, continue
        Turn.text("Still here."),        # stop 3: blocked, retrospective (every 3rd stop)
        Turn.text("Retrospective written."),  # stop 4: 3 blocks without a tool use: allowed
        Turn.text("Hello from a normal session."),  # the unarmed session
    ])
    armed = claude(bundled_cli, repo, cli_env, "/start-experiment")
    sid = armed["session_id"]
    reqs = session_requests(scripted_model, sid)
    assert len(reqs) == 6
    # The UserPromptSubmit hook saw the typed command with this session's id and armed it.
    assert reqs[0].contains("Guardrails armed for this session") and reqs[0].contains("<command-name>/start-experiment")
    state = json.loads(marker(repo, sid).read_text())
    assert state["session_id"] == sid and state["lane"] == "a"
    # PostToolUse re-injection on the 2nd tool call (reinject_every_turns = 2).
    assert reqs[2].contains("Reminder of the loop program")
    # The stop hook's block reasons reached the model and it went on.
    assert "Do not stop" in reqs[3].last_user_text and "Do not stop" in reqs[4].last_user_text
    assert "Time for a retrospective" in reqs[5].last_user_text
    assert armed["result"] == "Retrospective written."
    assert state["policy"]["stops_blocked"] == 3 and state["tool_uses"] == 2
    kinds = [(e["type"], e.get("kind")) for e in events(repo) if e.get("session_id") == sid]
    assert ("stop_allowed", "runaway") in kinds

    # A second, unarmed session in the same repo (while the first is still armed) stops normally.
    plain = claude(bundled_cli, repo, cli_env, "say hello")
    assert plain["session_id"] != sid
    reqs = session_requests(scripted_model, plain["session_id"])
    assert len(reqs) == 1 and not any(r.contains("[autoresearch]") for r in reqs)
    assert plain["result"] == "Hello from a normal session."
    assert not marker(repo, plain["session_id"]).exists() and marker(repo, sid).exists()


@pytest.mark.integration
def test_cli_give_up_gets_a_retrospective(repo: Path, scripted_model, cli_env, bundled_cli):
    scripted_model.set_script([
        Turn.text("I have exhausted my ideas. Would you like me to continue?"),
        Turn.text("Reviewed every run."),
        Turn.text("Next direction chosen."),
        Turn.text("ok"),
    ])
    run = claude(bundled_cli, repo, cli_env, "/start-experiment")
    reqs = session_requests(scripted_model, run["session_id"])
    retro = reqs[1].last_user_text
    assert "Time for a retrospective (the agent gave up or asked permission" in retro
    assert "Review every run" in retro and "Retrospective — lane a of experiment exp" in retro
    kinds = [(e["type"], e.get("kind")) for e in events(repo)]
    assert ("retrospective", None) in kinds and ("stop_blocked", "retrospective") in kinds


@pytest.mark.integration
def test_cli_stop_allowed_after_stop_experiment(repo: Path, scripted_model, cli_env, bundled_cli):
    scripted_model.set_script([Turn.text("a"), Turn.text("b"), Turn.text("c"), Turn.text("d"),
                               Turn.text("Wrap-up: baseline 10 ms, best 8 ms (-20%).")])
    first = claude(bundled_cli, repo, cli_env, "/start-experiment")  # a, b, c blocked; d allowed (runaway)
    sid = first["session_id"]
    assert len(session_requests(scripted_model, sid)) == 4 and marker(repo, sid).exists()
    second = claude(bundled_cli, repo, cli_env, "/stop-experiment", resume=sid)
    assert second["session_id"] == sid
    reqs = session_requests(scripted_model, sid)[4:]
    assert len(reqs) == 1  # the stop went through at once
    assert reqs[0].contains("The user ran /stop-experiment") and reqs[0].contains("Stop experiment exp")
    assert second["result"].startswith("Wrap-up")
    assert not marker(repo, sid).exists()


@pytest.mark.integration
def test_cli_stop_allowed_after_marker_removal(repo: Path, scripted_model, cli_env, bundled_cli):
    scripted_model.set_script([Turn.text("a"), Turn.text("b"), Turn.text("c"), Turn.text("d"),
                               Turn.text("e"), Turn.text("Stopping.")])
    sid = claude(bundled_cli, repo, cli_env, "/start-experiment")["session_id"]
    marker(repo, sid).unlink()
    again = claude(bundled_cli, repo, cli_env, "keep going", resume=sid)
    assert again["result"] == "e"
    assert len(session_requests(scripted_model, sid)) == 5


@pytest.mark.integration
def test_cli_install_then_uninstall_leaves_settings_byte_identical(tmp_path: Path, scripted_model, cli_env,
                                                                   bundled_cli):
    repo = make_repo(tmp_path / "r2")
    settings_path = repo / ".claude" / "settings.local.json"
    settings_path.parent.mkdir()
    original = b'{"permissions":{"allow":["Bash(ls:*)"]},\n "hooks": {"Stop": []}, "env": {"X": "1"}}'
    settings_path.write_bytes(original)
    install(repo)
    scripted_model.set_script([Turn.text("a"), Turn.text("b"), Turn.text("c"), Turn.text("d")])
    run = claude(bundled_cli, repo, cli_env, "/start-experiment")
    assert marker(repo, run["session_id"]).exists()
    uninstall(repo)
    assert settings_path.read_bytes() == original
    assert not (repo / ".claude" / "skills").exists()
    assert not marker(repo, run["session_id"]).exists()
    # With the hooks gone, the same prompt no longer arms anything and the stop goes through.
    scripted_model.set_script([Turn.text("just text")])
    after = claude(bundled_cli, repo, cli_env, "hello")
    assert len(session_requests(scripted_model, after["session_id"])) == 1
