"""Finding, locking and starting a workspace's engine, without loading the engine itself.

`status`, `stop`, `merge` and attaching the TUI only need to know whether an engine runs
and where its socket is; this module answers that with the standard library alone (no
agent SDK, no Engine import), so those commands start fast.

The daemon holds an exclusive `flock` on `.autoresearch/engine.lock` for its whole life, so
the lock cannot go stale (the kernel drops it when the process dies, even on kill -9);
the pid written inside is informational.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from autoresearch_tui.engine import protocol
from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.devices.host import device_layout
from autoresearch_tui.engine.workspace import Workspace

DAEMON_MODULE = "autoresearch_tui.cli"
"""`python -m DAEMON_MODULE daemon --config FILE` runs the engine in the foreground."""


class DaemonError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------- lock
def lock_path(workspace: Workspace) -> Path:
    return workspace.state_dir / "engine.lock"


def log_path(workspace: Workspace) -> Path:
    return workspace.state_dir / "engine.log"


def running_pid(workspace: Workspace) -> int | None:
    """The pid of this workspace's live engine, or None (a dead engine's lock is free)."""
    path = lock_path(workspace)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def acquire_lock(workspace: Workspace):
    try:  # the engine's own folder (lock, log, socket): this user's alone
        protocol.check_private_dir(workspace.state_dir, create=True)
        handle = open(lock_path(workspace), "a+")
    except protocol.SocketLocationError as exc:
        raise DaemonError(str(exc)) from None
    except OSError as exc:
        raise DaemonError(f"cannot open {lock_path(workspace)}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        other = handle.read().strip()
        handle.close()
        raise DaemonError(f"an engine is running (pid {other or '?'}): attach, or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def spawn_daemon(config: Config, *, env: dict[str, str] | None = None, timeout: float = 60.0) -> int:
    """Start the engine detached (its own session: SIGHUP from a closing terminal misses it)
    and wait until its socket answers. Returns the pid."""
    workspace = Workspace(config)
    pid = running_pid(workspace)
    if pid:
        return pid
    if config.runner.kind == "local":  # a [devices] value this host cannot honour: say so here, not in engine.log
        device_layout(config)
    try:  # a socket folder we may not use fails here, with its reason, not in the daemon's log
        path = protocol.socket_path(workspace.root)
        protocol.check_private_dir(workspace.state_dir, create=True)
    except protocol.SocketLocationError as exc:
        raise DaemonError(str(exc)) from None
    with open(log_path(workspace), "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", DAEMON_MODULE, "daemon", "--config", str(config.path)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
            env=env, cwd=str(workspace.root),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonError(f"the engine exited at start (code {process.returncode}); "
                              f"see {log_path(workspace)}")
        if path.exists() and running_pid(workspace):
            with contextlib.suppress(OSError):
                probe = socket.socket(socket.AF_UNIX)
                probe.connect(str(path))
                probe.close()
                return process.pid
        time.sleep(0.05)
    process.kill()  # never leave a half-started engine behind to run unseen
    raise DaemonError(f"the engine did not answer within {timeout:.0f}s (stopped it); "
                      f"see {log_path(workspace)}")


def stop_engine(workspace: Workspace, timeout: float = 60.0) -> tuple[bool, str]:
    """Ask the workspace's engine to stop and wait until its lock is free.

    Returns (stopped, what to tell the user). No engine running is a success."""
    import asyncio

    from autoresearch_tui.engine.client import EngineClient, EngineClientError

    pid = running_pid(workspace)
    if not pid:
        return True, "no engine is running for this workspace"

    async def ask() -> str:
        client = await EngineClient.connect(protocol.socket_path(workspace.root))
        try:
            return (await client.request("stop_engine")).get("message", "stopping")
        finally:
            await client.close()

    try:
        said = asyncio.run(ask())
    except EngineClientError as exc:
        # Found by its lock, unreachable on its socket: SIGTERM stops it just as gracefully.
        if pid < 0:
            return False, f"an engine holds the workspace lock but cannot be reached ({exc})"
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            return False, f"the engine (pid {pid}) does not answer ({exc}) and may not be signalled"
        said = f"the engine (pid {pid}) does not answer on its socket ({exc}); sent it SIGTERM"
    deadline = time.monotonic() + timeout
    while running_pid(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(workspace):
        return False, f"{said}; the engine did not stop within {timeout:.0f}s"
    return True, f"{said}\nengine stopped"
