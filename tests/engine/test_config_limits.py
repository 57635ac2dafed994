"""Config values that pass a type check but would break every lane are one-line config
errors with exit code 2 (a real `autoresearch-tui run` on a real workspace)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoresearch_tui.engine.config import THEME_NAMES
from tests.support import make_workspace

pytestmark = pytest.mark.timeout(120)


def run_with(config_path, *, text: str | None = None, data: bytes | None = None):
    if data is None:
        data = text.encode()
    config_path.write_bytes(data)
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", "run", "--duration", "1",
                           "--config", str(config_path)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    config = make_workspace(tmp_path_factory.mktemp("ws"))
    return config.path, config.path.read_text()


CASES = {
    "run_timeout_s = inf": ("[experiment]", "[experiment]\nrun_timeout_s = inf", "experiment.run_timeout_s"),
    "run_timeout_s = 1e308": ("[experiment]", "[experiment]\nrun_timeout_s = 1e308", "experiment.run_timeout_s"),
    "hang_timeout_s = nan": ("[experiment]", "[experiment]\nhang_timeout_s = nan", "experiment.hang_timeout_s"),
    "max_budget_usd = inf": ("[experiment]", "[agent]\nmax_budget_usd = inf\n[experiment]", "agent.max_budget_usd"),
    "idle_nudge_minutes = 1e308": ("[loop]", "[loop]\nidle_nudge_minutes = 1e308", "loop.idle_nudge_minutes"),
    "reinject_every_minutes = inf": ("[loop]", "[loop]\nreinject_every_minutes = inf",
                                     "loop.reinject_every_minutes"),
    "a NUL byte in env": ('name = "a"', 'name = "a"\nenv = { X = "a\\u0000b" }', "lanes[0].env"),
    "a bad env name": ('name = "a"', 'name = "a"\nenv = { "A=B" = "1" }', "lanes[0].env"),
    "a 300-character name": ('name = "exp"', f'name = "{"e" * 300}"', "experiment.name"),
    "a missing program": ('name = "exp"', 'name = "exp"\nprogram = "missing.md"', "experiment.program"),
    "an unknown theme": ("[loop]", '[tui]\ntheme = "no-such-theme"\n[loop]', "tui.theme"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_value_that_would_break_the_lanes_is_a_one_line_config_error(workspace, case):
    path, original = workspace
    old, new, key = CASES[case]
    assert old in original
    result = run_with(path, text=original.replace(old, new, 1))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{key}:" in lines[0] and str(path) in lines[0]


@pytest.mark.parametrize("data, words", [
    (b"\xef\xbb\xbf", "byte-order mark"),
    (b"# caf\xe9 (latin-1)\n", "not UTF-8"),
])
def test_a_config_that_is_not_plain_utf8_is_a_one_line_config_error(workspace, data, words):
    path, original = workspace
    result = run_with(path, data=data + original.encode())
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert words in result.stderr and "Traceback" not in result.stderr


def test_the_theme_list_is_textuals_plus_ours():
    from textual.theme import BUILTIN_THEMES

    from autoresearch_tui.themes import THEMES

    assert set(THEME_NAMES) == set(BUILTIN_THEMES) | {theme.name for theme in THEMES}
