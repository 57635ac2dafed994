"""Hostile stdin for the standalone hooks: 100k-deep JSON is logged and allowed (exit 0, no
output, no traceback), as Claude Code expects of a hook that cannot decide."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.hooks.test_hooks import PROMPT, REINJECT, STOP, repo  # noqa: F401 (fixture)


@pytest.mark.parametrize("script", [STOP, PROMPT, REINJECT], ids=lambda p: p.name)
def test_deeply_nested_stdin_is_allowed_and_logged_without_a_traceback(repo, script):  # noqa: F811
    proc = subprocess.run([sys.executable, "-S", str(script), "--root", str(repo)],
                          input="[" * 100_000, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    log = (repo / ".claude" / "autoresearch" / "hooks.log").read_text()
    assert "nested too deeply" in log
