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


def test_adding_a_lane_edits_the_file_in_place(tmp_path):
    import os

    from autoresearch_tui.engine.config import append_lane
    from autoresearch_tui.engine.setup.init_workspace import create_workspace

    path = create_workspace(tmp_path / "ws")
    text = path.read_text() + "\n# my own note at the end\n"
    path.write_text(text)
    os.chmod(path, 0o640)
    append_lane(path, "c", focus="try bf16")
    after = path.read_text()
    assert after.startswith(text)  # every byte before, comments and layout included
    assert after[len(text):].strip() == '[[lanes]]\nname = "c"\nfocus = "try bf16"'
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [lane.name for lane in load_config(path).lanes] == ["a", "b", "c"]


def test_adding_a_lane_keeps_an_inline_lanes_array_inline(tmp_path):
    from autoresearch_tui.engine.config import append_lane

    path = tmp_path / "autoresearch.toml"
    path.write_text('lanes = [{ name = "a" }]  # inline\n\n# mine\n[experiment]\nname = "x"\n')
    append_lane(path, "b")
    assert path.read_text() == 'lanes = [{ name = "a" }, {name = "b"}]  # inline\n\n# mine\n[experiment]\nname = "x"\n'
    assert [lane.name for lane in parse_config(path.read_text(), path).lanes] == ["a", "b"]


def test_a_lane_that_cannot_be_recorded_leaves_the_file_as_it_was(tmp_path):
    from autoresearch_tui.engine.config import append_lane

    path = tmp_path / "autoresearch.toml"
    text = '[experiment]\nname = "x"\n[[lanes]]\nname = "a"\n[[lanes]]\nname = "a"\n'  # already invalid
    path.write_text(text)
    with pytest.raises(ConfigError, match="duplicate lane name"):
        append_lane(path, "b")
    assert path.read_text() == text
