"""autoresearch.toml validation: one clear line naming the key and the line; exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.config import ConfigError, load_config, parse_config

GOOD = """\
[experiment]
name = "example"
repo = "repo"

[loop]
reinject_every_turns = 7

[[lanes]]
name = "a"

[[lanes]]
name = "b"
focus = "try bf16"
env = { TPU_VISIBLE_DEVICES = "1" }
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "repo").mkdir()
    return tmp_path


def write(workspace: Path, text: str) -> Path:
    path = workspace / "autoresearch.toml"
    path.write_text(text)
    return path


def test_good_config_gets_defaults_for_everything_but_lanes(workspace):
    config = load_config(write(workspace, GOOD))
    assert config.loop.reinject_every_turns == 7
    assert config.loop.retrospective_every_stops == 3
    assert config.agent.permission_mode == "acceptEdits"
    assert config.experiment.direction == "minimize"
    assert [lane.name for lane in config.lanes] == ["a", "b"]
    assert config.lane("b").env == {"TPU_VISIBLE_DEVICES": "1"}
    assert config.repo_path == workspace / "repo"


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD.replace("reinject_every_turns = 7", "reinject_every_turns = \"seven\""),
         ":6: loop.reinject_every_turns: Input should be a valid integer"),
        (GOOD.replace("reinject_every_turns = 7", "reinject_evry_turns = 7"),
         ":6: loop.reinject_evry_turns: unknown key"),
        (GOOD.replace('name = "b"', 'name = "a"'), ":12: lanes[1].name: duplicate lane name 'a'"),
        (GOOD.replace('focus = "try bf16"', "focus = 3"), ":13: lanes[1].focus: Input should be a valid string"),
        (GOOD + '\n[agent]\npermission_mode = "yolo"\n', ":17: agent.permission_mode: Input should be"),
        (GOOD.split("[[lanes]]")[0], "at least one [[lanes]] table is required"),
        (GOOD.replace("[loop]", "[loops]"), ":5: loops: unknown key"),
        (GOOD + "\n[[lanes]]\nname = \"../evil\"\n", "lanes[2].name: String should match pattern"),
        ("[experiment\nname=1", "invalid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(workspace, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(workspace, text))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_missing_repo_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r":3: experiment.repo: no such folder"):
        load_config(write(tmp_path, GOOD))


def test_cli_exits_2_without_traceback(workspace):
    path = write(workspace, GOOD.replace("reinject_every_turns = 7", "reinject_every_turns = -1"))
    result = subprocess.run(
        [sys.executable, "-m", "autoresearch_tui.cli", "run", "--config", str(path), "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "loop.reinject_every_turns" in result.stderr and ":6:" in result.stderr
    assert "Traceback" not in result.stderr


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_config_error(text):
    try:
        parse_config(text, Path("/tmp/x/autoresearch.toml"))
    except ConfigError as exc:
        assert "\n" not in str(exc).strip() or "invalid TOML" in str(exc)
