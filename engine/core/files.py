"""File helpers every layer uses: atomic writes, tolerant JSON reads, upward lookups."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def describe_write_error(exc: OSError, where: Path | str) -> str:
    """"disk full at <path>" for ENOSPC/EDQUOT, else "cannot write <path>: <reason>"."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full at {where}"
    return f"cannot write {where}: {exc.strerror or exc}"


def atomic_write_bytes(path: Path | str, data: bytes, mode: int | None = None) -> None:
    """Write via a temp file in the same folder + fsync + rename: never a torn file.

    The file keeps the permissions of the one it replaces (a user's 0644 config stays
    0644); `mode` sets them for a new file (default: 0644 under the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        keep = mode if mode is not None else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), keep)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: Path | str, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path | str, data: Any, mode: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: Path | str, default: Any = None) -> Any:
    """The file's JSON value, or `default` when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return default


def find_upward(name: str, start: Path | str) -> Path | None:
    """The nearest file called `name` in `start` or a folder above it, else None."""
    try:
        here = Path(start).resolve()
    except OSError:
        return None
    for folder in (here, *here.parents):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def fsync_dir(path: Path | str) -> None:
    """Make a rename or a new file in `path` durable (no-op where directories can't sync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
