"""Keep the engine's RSS to what it holds (glibc's allocator, tuned for a week-long process).

A week-long engine allocates and frees all day in many threads (benchmark pipes, metrics
chunks, git, worker threads). Two things made its RSS climb with every run although what it
held did not (bench/soak.py showed both: malloc's in-use bytes flat, its free bytes growing):

- glibc raises its mmap threshold after a big buffer is freed, so later 1 MiB pipe reads and
  metrics chunks came from the arenas, where a small long-lived block allocated meanwhile
  pins the space they leave. A fixed threshold keeps big buffers in mmap: freed, they go.
- glibc returns free pages only from the top of each heap by itself; malloc_trim(0)
  releases them anywhere in every arena (the watchdog calls it every pass).

Elsewhere (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's default starting threshold, fixed: requests this big or bigger are mmapped."""

_glibc = None
_looked_up = False


def _libc():
    """glibc's malloc_trim and mallopt, or None where the C library is another."""
    global _glibc, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
            _glibc = libc
        except (OSError, AttributeError):
            log.debug("not glibc: the allocator keeps its defaults")
    return _glibc


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Keep buffers of `threshold` bytes and more out of the arenas; True when glibc took it."""
    libc = _libc()
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) if libc is not None else False


def release_free_memory() -> bool:
    """Return free heap pages to the system; True when the C library did (glibc only)."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
