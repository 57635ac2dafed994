"""Processes a killed engine left behind in a lane's folder.

After `kill -9` of the engine, its children (the lane's Claude CLI, a running benchmark)
are orphaned and keep going: an orphaned CLI would go on editing the fork next to the
resumed session. Before a lane starts, every process whose working directory is inside
the lane's folder (and that is not this engine) is terminated. Linux /proc only; elsewhere
it finds nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from autoresearch_tui.engine.core.files import atomic_write_text


def processes_in(folder: Path) -> list[int]:
    folder = folder.resolve()
    mine = {os.getpid(), os.getppid()}
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone, or not ours to inspect
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found


def describe(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return str(pid)
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"{pid} ({command[:120]})"


def kill_orphans(folder: Path, grace_s: float = 3.0) -> list[str]:
    """Terminate processes working inside `folder`; returns what was stopped."""
    pids = processes_in(folder)
    if not pids:
        return []
    stopped = [describe(pid) for pid in pids]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pdeathsig_prefix() -> list[str]:
    """A command prefix that kills the child when the engine dies (even by kill -9).

    Linux's parent-death signal via util-linux `setpriv`; empty where it is unavailable
    (then leftovers are cleaned up when the lane next starts).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv and sys.platform.startswith("linux") else []


def guarded_cli_path(state_dir: Path) -> str | None:
    """A wrapper around the Claude CLI that dies with the engine; None = use the SDK's default."""
    prefix = pdeathsig_prefix()
    real = _bundled_cli() or shutil.which("claude")
    if not prefix or not real:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    wrapper = state_dir / "claude-guarded"
    text = "#!/bin/sh\n# Written by autoresearch-tui: the agent's CLI dies with its engine.\n" \
           f"exec {' '.join(shlex.quote(part) for part in prefix)} {shlex.quote(real)} \"$@\"\n"
    if not wrapper.exists() or wrapper.read_text() != text:
        atomic_write_text(wrapper, text, 0o755)
    return str(wrapper)


def _bundled_cli() -> str | None:
    """The Claude CLI inside claude-agent-sdk, found without importing the SDK (which is slow,
    and which `status` and the benchmark runner never need)."""
    import importlib.util

    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "_bundled" / "claude"
    return str(path) if path.is_file() else None
