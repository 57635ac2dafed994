"""`demo`: the offline demo as a user runs it, and what it leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys


def demo(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the throwaway workspace goes
    return subprocess.run([sys.executable, "-m", "autoresearch_tui.cli", "demo", "--headless",
                           "--duration", "4", *args], capture_output=True, text=True, timeout=180, env=env)


def leftovers(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("autoresearch-demo-"))


def test_the_demo_removes_its_throwaway_workspace_unless_kept(tmp_path):
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed when the demo ends" in result.stderr and "Removed the demo workspace" in result.stderr
    assert leftovers(tmp_path) == []
    kept = demo(tmp_path, "--keep")
    assert kept.returncode == 0, kept.stderr
    (folder,) = leftovers(tmp_path)
    assert f"The demo workspace is kept at {tmp_path / folder}" in kept.stderr
    assert (tmp_path / folder / "autoresearch.toml").exists()
