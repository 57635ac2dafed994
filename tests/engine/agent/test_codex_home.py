"""A Codex lane's home, binary and credentials, and what a lane does when Codex cannot start.
Nothing here runs Codex (no network namespace needed)."""

from __future__ import annotations

import json
import os
import stat
import tomllib

import pytest

from autoresearch_tui.engine.agent import codex_home
from autoresearch_tui.engine.agent.codex_home import (
    AgentSetupError, HomeSettings, LanePaths, codex_config, find_codex_binary, write_home,
)
from autoresearch_tui.engine.agent.reinjection import lane_state_block, queued_hypotheses
from autoresearch_tui.engine.core.lane_state import LaneRecord, LaneRecordError
from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.workspace import Workspace
from tests.support import make_workspace, wait_until


@pytest.fixture
def paths(tmp_path) -> LanePaths:
    lane = tmp_path / "lane"
    return LanePaths(lane_dir=lane, fork=lane / ".repo" / "proj", runs=lane / "runs",
                     retrospectives=lane / "retrospectives")


def settings(**overrides) -> HomeSettings:
    return HomeSettings(**{"mcp_command": ["/py", "/proxy.py", "/sock"], **overrides})


def test_the_engines_keys_win_over_the_users_and_network_features_stay_off(paths):
    user = {"model_provider": "mine", "features": {"plugins": True, "other_flag": True},
            "compact_prompt": "MY PROMPT", "model_providers": {"mine": {"base_url": "http://x"}}}
    config = codex_config(paths, settings(user_config=user, model="gpt-5.5", reasoning_effort="high"), {})
    assert config["features"] == {"plugins": False, "other_flag": True}
    assert config["analytics"] == {"enabled": False} and config["check_for_update_on_startup"] is False
    assert (config["sandbox_mode"], config["approval_policy"]) == ("workspace-write", "never")
    roots = config["sandbox_workspace_write"]["writable_roots"]
    assert roots == [str(paths.fork / ".git"), str(paths.runs), str(paths.retrospectives), str(paths.tmp)]
    assert config["sandbox_workspace_write"]["exclude_slash_tmp"] is True
    assert config["compact_prompt"] == "MY PROMPT" and config["model_provider"] == "mine"
    assert (config["model"], config["model_reasoning_effort"]) == ("gpt-5.5", "high")
    server = config["mcp_servers"]["autoresearch"]
    assert (server["command"], server["args"]) == ("/py", ["/proxy.py", "/sock"])
    assert server["default_tools_approval_mode"] == "approve" and server["required"] is True
    assert "*KEY*" in config["shell_environment_policy"]["exclude"]


def test_an_api_key_becomes_a_provider_that_reads_it_from_the_environment(paths):
    env = {"OPENAI_API_KEY": "sk-test-not-real", "HOME": str(paths.lane_dir.parent)}
    home = write_home(paths, settings(), env)
    text = (home / "config.toml").read_text()
    config = tomllib.loads(text)
    provider = config["model_providers"][config["model_provider"]]
    assert provider["env_key"] == "OPENAI_API_KEY" and provider["wire_api"] == "responses"
    assert "sk-test-not-real" not in text  # the key itself is never written
    assert stat.S_IMODE((home / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_codex_login_credentials_are_linked_not_copied(paths, tmp_path):
    user_home = tmp_path / "user"
    (user_home / ".codex").mkdir(parents=True)
    (user_home / ".codex" / "auth.json").write_text('{"tokens": {}}')
    home = write_home(paths, settings(), {"HOME": str(user_home)})
    link = home / "auth.json"
    assert link.is_symlink() and link.resolve() == (user_home / ".codex" / "auth.json").resolve()
    assert "model_provider" not in tomllib.loads((home / "config.toml").read_text())


def test_no_credentials_is_a_clear_error(paths, tmp_path):
    with pytest.raises(AgentSetupError, match=r"set OPENAI_API_KEY, or run `codex login`"):
        write_home(paths, settings(), {"HOME": str(tmp_path / "nobody")})


def test_the_binary_is_found_in_order_and_its_absence_says_what_to_install(tmp_path, monkeypatch):
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho codex-cli 0.171.0\n")
    fake.chmod(0o755)
    assert find_codex_binary(str(fake), {}) == fake
    assert find_codex_binary("", {"AUTORESEARCH_CODEX_BIN": str(fake)}) == fake
    with pytest.raises(AgentSetupError, match="not an executable file"):
        find_codex_binary(str(tmp_path / "nope"), {})
    monkeypatch.setattr(codex_home, "PACKAGE_ROOT", tmp_path / "no-checkout")
    with pytest.raises(AgentSetupError) as info:
        find_codex_binary("", {"PATH": str(tmp_path / "empty")})
    assert "npm install" in str(info.value) and "@openai/codex@0.171.0" in str(info.value)
    assert codex_home.binary_version(fake) == "0.171.0"


async def test_a_codex_lane_that_cannot_start_needs_attention_at_once(tmp_path):
    config = make_workspace(tmp_path, agents={"a": "codex"},
                            extra=f'[agent.codex]\nbinary = "{tmp_path / "missing-codex"}"\n')
    engine = Engine(config, env={**os.environ, "HOME": str(tmp_path)}, backoff_base_s=0.05)
    await engine.start()
    try:
        await wait_until(lambda: engine.lanes["a"].state == "needs_attention", what="needs_attention")
        lane = engine.lanes["a"]
        reason, failures = lane.record.needs_attention_reason, lane.record.counters.failures
    finally:
        await engine.stop()
    assert "codex cannot start" in reason and "missing-codex: not an executable file" in reason
    assert failures == 0  # not retried: retrying would not help
    assert not (Workspace(config).lane_dir("a") / ".codex").exists()


def test_a_lane_that_changes_agent_starts_a_new_session(tmp_path):
    config = make_workspace(tmp_path, agents={"a": "codex"}, extra='[agent.codex]\nbinary = "/x"\n')
    workspace = Workspace(config)
    workspace.lane_dir("a").mkdir(parents=True)
    record = LaneRecord(name="a", session_id="claude-session-1", agent="claude")
    workspace.lane_json("a").write_text(json.dumps(record.to_dict()))
    engine = Engine(config, env=dict(os.environ))
    lane = engine.lanes["a"]
    assert lane.record.session_id is None and lane.record.agent == "codex"
    warning = [e for e in read_events(workspace.events_path("a")) if e["type"] == "warning"][-1]
    assert "now runs codex (it ran claude)" in warning["message"]
    with pytest.raises(LaneRecordError, match="agent: unknown agent"):
        LaneRecord.from_dict({"agent": "gemini"}, "a")


def test_the_reinjection_names_the_lane_state_and_the_hypothesis_list(tmp_path):
    config = make_workspace(tmp_path)
    workspace = Workspace(config)
    retros = workspace.retrospectives_dir("a")
    retros.mkdir(parents=True)
    (retros / "old.md").write_text("## Next\n1. stale idea\n")
    os.utime(retros / "old.md", (1, 1))
    (retros / "new.md").write_text("# R\n## Runs by direction\n- jit\n## Ranked next directions\n"
                                   "1. fused QKV\n2. bf16\n## Notes\nignored\n")
    ledger = workspace.ledger_path("a")
    ledger.write_text("run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\n"
                      "0001\t2026-01-01T00:00:00Z\tabc1234\t10.0\tkeep\tbaseline\n"
                      "0002\t2026-01-01T00:01:00Z\tabc1235\t12.0\tdiscard\tbigger blocks\n")
    block = lane_state_block(workspace, "a", "Lane a: 2 runs recorded.")
    assert "Lane a: 2 runs recorded." in block and "baseline 10 (run 0001), best 10 (run 0001" in block
    assert "- run 0002: discard 12 — bigger blocks" in block
    assert "From new.md:\n## Ranked next directions\n1. fused QKV\n2. bf16" in block and "ignored" not in block
    assert queued_hypotheses(tmp_path / "nowhere") == ""
