"""A stale `/tmp/libtpu_lockfile` after the engine killed a TPU run.

libtpu takes the host's TPU exclusively and marks it with /tmp/libtpu_lockfile; a run killed
mid-flight (timeout, hang, lane stop) can leave the file behind, and the next run then fails
with "TPU in use by process ...". The file is safe to remove only when no process holds a
TPU device open (`/dev/accel*`, `/dev/vfio/*`): that is checked through every process's
open file descriptors in /proc.

Unverified on hardware (there is no TPU where this was written): the paths and the rule
follow public reports (jax #10192, #13043). Every path is a parameter, so the rule itself is
tested with a fake lockfile, fake device nodes and real processes holding them open.
"""

from __future__ import annotations

import os
from pathlib import Path

LIBTPU_LOCKFILE = Path("/tmp/libtpu_lockfile")
TPU_DEVICE_GLOBS = ("accel*", "vfio/*")


def tpu_device_paths(dev: Path = Path("/dev")) -> set[str]:
    paths: set[str] = set()
    for pattern in TPU_DEVICE_GLOBS:
        paths.update(str(p) for p in dev.glob(pattern))
    return paths


def device_holders(devices: set[str], proc: Path = Path("/proc")) -> list[int]:
    """Pids with one of `devices` open (processes we may not inspect are skipped)."""
    if not devices:
        return []
    holders = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in devices:
                holders.append(int(entry.name))
                break
    return holders


def remove_stale_lock(lockfile: Path = LIBTPU_LOCKFILE, dev: Path = Path("/dev"),
                      proc: Path = Path("/proc")) -> str | None:
    """Remove `lockfile` when no process holds a TPU device; returns what happened, or None
    when there was no lockfile."""
    if not lockfile.exists():
        return None
    holders = device_holders(tpu_device_paths(dev), proc)
    if holders:
        return f"kept {lockfile}: the TPU is held by pid {', '.join(map(str, holders[:5]))}"
    try:
        lockfile.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"could not remove stale {lockfile}: {exc.strerror or exc}"
    return f"removed stale {lockfile} (no process holds a TPU device)"
