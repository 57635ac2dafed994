"""The processes the engine starts, and only those, are the ones it ever ends.

Every process a lane starts (its agent CLI, the commands the agent runs, benchmarks) gets
`AUTORESEARCH_OWNER=<the lane's tag>` in its environment, and every descendant inherits
it. After `kill -9` of the engine those processes are orphaned and keep going (an orphaned
CLI would go on editing the fork next to the resumed session); a lane that starts or
stops ends the processes carrying its tag — never a user's editor or shell that merely
works in the fork, and never a process of another user.

Benchmarks also run in their own process group, recorded in the run folder
(`.process-group.json`: pgid, start time); a restarted engine kills exactly that group,
even members that scrubbed their environment.

Linux /proc only; elsewhere nothing is found (the parent-death signal still applies).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autoresearch_tui.engine.core.files import atomic_write_text


OWNER_VAR = "AUTORESEARCH_OWNER"
AGENT_PIDFILE_VAR = "AUTORESEARCH_AGENT_PIDFILE"
GROUP_RECORD = ".process-group.json"
"""In a run folder while its benchmark's process group may be alive."""
_PROC = Path("/proc")


def owner_tag(lane_dir: Path) -> str:
    """The lane's tag: the same for every engine of that lane folder, unlike any other lane's."""
    return "lane-" + hashlib.sha256(str(Path(lane_dir).resolve()).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    uid: int
    pgid: int
    start_ticks: int
    """Start time in clock ticks since boot (/proc/<pid>/stat field 22): a pid with another
    start time is another process."""
    zombie: bool

    def describe(self) -> str:
        return describe(self.pid)


def read_process(pid: int) -> ProcessInfo | None:
    try:
        stat_text = (_PROC / str(pid) / "stat").read_text()
        uid = os.stat(_PROC / str(pid)).st_uid
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat_text.rsplit(")", 1)[-1].split()
    try:
        return ProcessInfo(pid=pid, uid=uid, pgid=int(fields[2]), start_ticks=int(fields[19]),
                           zombie=fields[0] in ("Z", "X"))
    except (IndexError, ValueError):
        return None


def _all_pids() -> list[int]:
    try:
        return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _ancestors() -> set[int]:
    """This process and its ancestors (never ours to end, whatever their environment)."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[-1].split()
            pid = int(fields[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def _carries(pid: int, marker: bytes) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False  # gone, or not ours to inspect
    return marker in environ.split(b"\0")


def tagged_processes(tag: str) -> list[ProcessInfo]:
    """Live processes of this user whose environment carries the lane's tag."""
    marker = f"{OWNER_VAR}={tag}".encode()
    mine, uid = _ancestors(), os.getuid()
    found = []
    for pid in _all_pids():
        if pid in mine:
            continue
        info = read_process(pid)
        if info is None or info.uid != uid or info.zombie:
            continue
        if _carries(pid, marker):
            found.append(info)
    return found


def describe(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return str(pid)
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"{pid} ({command[:120]})"


def _same(info: ProcessInfo) -> bool:
    """Still the very process we found (not a recycled pid), still this user's, not a zombie."""
    now = read_process(info.pid)
    return now is not None and now.start_ticks == info.start_ticks and now.uid == info.uid \
        and not now.zombie


def _signal(info: ProcessInfo, signum: int) -> None:
    if info.uid != os.getuid() or not _same(info):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(info.pid, signum)


def terminate(processes: list[ProcessInfo], grace_s: float = 3.0) -> list[str]:
    """SIGTERM, then SIGKILL after `grace_s`, each process re-checked before every signal."""
    if not processes:
        return []
    stopped = [info.describe() for info in processes]
    for info in processes:
        _signal(info, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_same(info) for info in processes):
        time.sleep(0.05)
    for info in processes:
        _signal(info, signal.SIGKILL)
    return stopped


def end_lane_processes(lane_dir: Path, grace_s: float = 3.0) -> list[str]:
    """End what this lane's engine started and left running: tagged processes, and the
    process groups of benchmarks recorded in its run folders. Returns what was ended."""
    ended = reap_recorded_groups(Path(lane_dir) / "runs")
    ended += terminate(tagged_processes(owner_tag(lane_dir)), grace_s)
    return ended


# ---------------------------------------------------------------------------------- groups
def record_group(run_dir: Path, pid: int) -> None:
    """Note the benchmark's process group (it leads its own session) in its run folder."""
    info = read_process(pid)
    if info is None:
        return
    data = {"pgid": info.pgid, "leader": pid, "start_ticks": info.start_ticks, "uid": info.uid}
    with contextlib.suppress(OSError):
        (Path(run_dir) / GROUP_RECORD).write_text(json.dumps(data) + "\n")


def group_members(pgid: int, uid: int | None = None) -> list[ProcessInfo]:
    uid = os.getuid() if uid is None else uid
    mine = _ancestors()
    members = []
    for pid in _all_pids():
        info = read_process(pid)
        if info is not None and info.pgid == pgid and info.uid == uid and not info.zombie \
                and pid not in mine:
            members.append(info)
    return members


def kill_group(pgid: int, start_ticks: int | None = None, rounds: int = 5) -> list[str]:
    """SIGKILL every member of process group `pgid` that belongs to this user.

    A group id cannot be reused while any member lives, so members found under it are the
    benchmark's, provided its leader (if still there) is the recorded one. Members are
    killed one by one (never killpg: as root that would reach another user's process in
    the group); a few rounds catch children forked meanwhile."""
    leader = read_process(pgid)
    if leader is not None and start_ticks is not None and leader.start_ticks != start_ticks:
        return []  # the pid was free and reused, so the recorded group cannot exist any more
    ended: list[str] = []
    for _ in range(rounds):
        members = group_members(pgid)
        if not members:
            break
        for info in members:
            ended.append(info.describe())
            _signal(info, signal.SIGKILL)
        time.sleep(0.02)
    return list(dict.fromkeys(ended))


def reap_recorded_groups(runs_dir: Path) -> list[str]:
    """Kill the groups of benchmarks a previous engine left running; clear their records."""
    ended: list[str] = []
    try:
        records = list(Path(runs_dir).glob(f"*/{GROUP_RECORD}"))
    except OSError:
        return ended
    for path in records:
        try:
            data = json.loads(path.read_text())
            pgid, start_ticks = int(data["pgid"]), int(data["start_ticks"])
        except (OSError, ValueError, KeyError, TypeError):
            pgid = None
        if pgid is not None and pgid > 1:
            ended += kill_group(pgid, start_ticks)
        with contextlib.suppress(OSError):
            path.unlink()
    return ended


def alive(pid: int) -> bool:
    info = read_process(pid)
    if info is None:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        except OSError:
            return False
        return not _PROC.is_dir()  # no /proc: trust the signal probe
    return not info.zombie


# ---------------------------------------------------------------------------------- the CLI
def pdeathsig_prefix() -> list[str]:
    """A command prefix that kills the child when the engine dies (even by kill -9).

    Linux's parent-death signal via util-linux `setpriv`; empty where it is unavailable
    (then leftovers are cleaned up when the lane next starts).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv and sys.platform.startswith("linux") else []


def guarded_cli_path(state_dir: Path) -> str | None:
    """A wrapper around the Claude CLI that dies with the engine and notes its own pid
    (in $AUTORESEARCH_AGENT_PIDFILE) for the watchdog; None = use the SDK's default."""
    prefix = pdeathsig_prefix()
    real = _bundled_cli() or shutil.which("claude")
    if not real:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    wrapper = state_dir / "claude-guarded"
    command = " ".join(shlex.quote(part) for part in [*prefix, real])
    text = ("#!/bin/sh\n# Written by autoresearch-tui: the agent's CLI dies with its engine.\n"
            f'[ -n "${AGENT_PIDFILE_VAR}" ] && echo $$ > "${AGENT_PIDFILE_VAR}"\n'
            f'exec {command} "$@"\n')
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
