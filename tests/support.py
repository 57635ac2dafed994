"""Builders for real workspaces (real git repos, real config files) used by several tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

from autoresearch_tui.engine.config import Config, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository checkout (examples/, hooks/ and the rest, as files)."""

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    for name, text in (files or {"bench.py": "print('step_time_ms: 10')\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def make_workspace(root: Path, *, lanes=("a",), loop: str = "", experiment: str = "",
                   repo_files: dict[str, str] | None = None, devices: str = "", runner: str = "",
                   agents: dict[str, str] | None = None, extra: str = "") -> Config:
    """`agents` maps lane names to their agent (default claude); `runner` is the [runner]
    table's body; `extra` is more TOML."""
    make_repo(root / "raw" / "code" / "proj", repo_files)
    lane_tables = "\n".join(f'[[lanes]]\nname = "{name}"\n'
                             + (f'agent = "{agents[name]}"\n' if name in (agents or {}) else "")
                             for name in lanes)
    (root / "autoresearch.toml").write_text(
        f'[experiment]\nname = "exp"\nrepo = "raw/code/proj"\nbench_command = "python bench.py"\n'
        f"{experiment}\n[loop]\n{loop}\n[devices]\n{devices}\n"
        + (f"[runner]\n{runner}\n" if runner else "") + f"{lane_tables}\n{extra}"
    )
    return load_config(root / "autoresearch.toml")


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------- Codex lanes
NETNS_MARK = "AUTORESEARCH_TEST_NETNS"
"""Set in a test process re-run inside its own network namespace (tests/conftest.py)."""


def only_loopback() -> bool:
    """True inside a network namespace with nothing but `lo` (`unshare -n`, `ip link set lo up`).

    /proc/self/net/dev follows the process's namespace (/sys/class/net does not)."""
    try:
        with open("/proc/self/net/dev") as handle:
            names = [line.split(":")[0].strip() for line in handle.readlines()[2:]]
    except OSError:
        return False
    return names == ["lo"]


def codex_binary() -> Path | None:
    """The Codex CLI the engine would use, else the pinned one `npm install` put in this
    checkout (a non-editable install cannot know the checkout); None when there is none."""
    from autoresearch_tui.engine.agent.codex_home import AgentSetupError, find_codex_binary, native_binary

    try:
        return find_codex_binary("", os.environ)
    except AgentSetupError:
        return native_binary(REPO_ROOT / "node_modules")
def record_measured(workspace, lane: str, status: str, description: str, value: float | None, *,
                    confirm_runs: int = 0, dirty: list[str] | None = None) -> dict:
    """record_run for a run as the engine leaves it after measuring the fork's HEAD: a summary
    with the configured metric and run.json (the integration tests run the real thing; unit
    tests of the ledger and of merges write the same two files)."""
    import json

    from autoresearch_tui.engine.runs.run_info import update_run_info
    from autoresearch_tui.engine.runs.record import allocate_run, record_run

    metric = workspace.config.experiment.metric
    run_id, run_dir = allocate_run(workspace, lane)
    summary = {"v": 1, "kind": "summary", metric: value}
    if metric == "step_time_ms" and value is not None:
        summary = {"v": 1, "kind": "summary", "step_time_median_s": value / 1000}
    if value is not None:  # None: a run that crashed before its summary
        (run_dir / "metrics.jsonl").write_text(json.dumps(summary) + "\n")
    commit = git(workspace.fork_dir(lane), "rev-parse", "HEAD").strip()
    update_run_info(run_dir, run_id=run_id, lane=lane, purpose="benchmark",
                    status="ok" if value is not None else "crash",
                    commit=commit, dirty=dirty or [])
    return record_run(workspace, lane, status, description, run_dir=run_id, confirm_runs=confirm_runs)


def processes_in(folder: Path | str) -> list[int]:
    """Pids (this uid's) whose working folder is `folder` or inside it: what a test looks at
    to see what a lane left running (the engine itself ends processes by owner tag only)."""
    root = os.path.realpath(folder)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry))
    return found
