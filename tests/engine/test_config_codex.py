"""`[[lanes]] agent` and `[agent.codex]`: validated like the rest (one line naming key and line)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomlkit
from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.config import ConfigError, load_config, parse_config

BASE = """\
[experiment]
repo = "repo"

[agent.codex]
model = "gpt-5.5"
reasoning_effort = "high"
usd_per_mtok = { input = 1, cached_input = 0.1, output = 8 }

[agent.codex.config]
model_provider = "local"
[agent.codex.config.model_providers.local]
base_url = "http://127.0.0.1:9/v1"
wire_api = "responses"

[[lanes]]
name = "a"

[[lanes]]
name = "b"
agent = "codex"
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "repo").mkdir()
    return tmp_path


def load(workspace: Path, text: str):
    path = workspace / "autoresearch.toml"
    path.write_text(text)
    return load_config(path)


def test_lanes_choose_their_agent_and_codex_has_its_table(workspace):
    config = load(workspace, BASE)
    assert [lane.agent for lane in config.lanes] == ["claude", "codex"]
    codex = config.agent.codex
    assert (codex.model, codex.reasoning_effort) == ("gpt-5.5", "high")
    assert codex.usd_per_mtok.input == 1.0 and codex.usd_per_mtok.output == 8.0
    assert codex.config["model_providers"]["local"]["wire_api"] == "responses"


@pytest.mark.parametrize("text, expected", [
    (BASE.replace('agent = "codex"', 'agent = "gemini"'), ":20: lanes[1].agent: Input should be 'claude' or 'codex'"),
    (BASE.replace('model = "gpt-5.5"', 'modle = "gpt-5.5"'), ":5: agent.codex.modle: unknown key"),
    (BASE.replace('reasoning_effort = "high"', 'reasoning_effort = "very high"'),
     ":6: agent.codex.reasoning_effort: String should match pattern"),
    (BASE.replace("output = 8", "output = -8"), ":7: agent.codex.usd_per_mtok.output: Input should be greater"),
    (BASE.replace("output = 8", "output = inf"), ":7: agent.codex.usd_per_mtok.output: Input should be a finite"),
    (BASE.replace('model_provider = "local"', 'sandbox_mode = "danger-full-access"'),
     ":10: agent.codex.config.sandbox_mode: set by the engine (every Codex lane runs in workspace-write"),
    (BASE.replace('model_provider = "local"', "features = { plugins = true }"),
     ":10: agent.codex.config.features.plugins: set by the engine (plugins stay off"),
    (BASE + '[agent.codex.config.mcp_servers.autoresearch]\ncommand = "evil"\n',
     ":21: agent.codex.config.mcp_servers.autoresearch: set by the engine"),
    (BASE.replace('model_provider = "local"', 'model_provider = "lo\\u0000cal"'),
     ":10: agent.codex.config.model_provider: contains a NUL byte"),
    (BASE.replace('model_provider = "local"', "tool_output_token_limit = nan"),
     ":10: agent.codex.config.tool_output_token_limit: expected a finite number"),
    (BASE.replace("usd_per_mtok = { input = 1, cached_input = 0.1, output = 8 }", "")
     .replace("[agent.codex]", "[agent]\nmax_budget_usd = 5\n\n[agent.codex]"),
     "lanes[1].agent: a Codex lane with agent.max_budget_usd needs [agent.codex] usd_per_mtok"),
])
def test_bad_codex_settings_are_one_clear_line(workspace, text, expected):
    with pytest.raises(ConfigError) as info:
        load(workspace, text)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_budget_without_codex_lanes_needs_no_prices(workspace):
    text = BASE.replace('agent = "codex"', 'agent = "claude"').replace(
        "usd_per_mtok = { input = 1, cached_input = 0.1, output = 8 }", "").replace(
        "[agent.codex]", "[agent]\nmax_budget_usd = 5\n\n[agent.codex]")
    assert load(workspace, text).agent.max_budget_usd == 5.0


toml_scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=40))
toml_values = st.recursive(toml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.text(min_size=1, max_size=12), children, max_size=3)),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30), toml_values, max_size=4))
def test_any_codex_table_is_accepted_and_writable_or_refused_in_one_line(table):
    text = "[experiment]\nrepo = \"r\"\n[[lanes]]\nname = \"a\"\nagent = \"codex\"\n"
    try:
        text += tomlkit.dumps({"agent": {"codex": {"config": table}}})
    except (TypeError, ValueError):
        return  # not expressible as TOML at all
    try:
        config = parse_config(text, Path("/tmp/x/autoresearch.toml"))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    # What passed validation can be written back into a Codex config.toml and read again.
    assert tomllib.loads(tomlkit.dumps(config.agent.codex.config)) == tomllib.loads(tomlkit.dumps(table))


def test_a_reload_that_switches_a_lanes_agent_or_codex_settings_waits_for_a_restart(workspace):
    from autoresearch_tui.engine.config_changes import diff_configs

    old = parse_config(BASE, workspace / "autoresearch.toml")
    switched = BASE.replace('name = "b"\nagent = "codex"', 'name = "b"\nagent = "claude"').replace(
        'reasoning_effort = "high"', 'reasoning_effort = "low"')
    new = parse_config(switched, workspace / "autoresearch.toml")
    changes = diff_configs(old, new, {"a", "b"})
    # The running lane keeps its agent process; the notice must say the edit is not applied.
    assert "lanes.b.agent" in changes.needs_restart
    assert "agent.codex.reasoning_effort" in changes.needs_restart
    assert not changes.applied
