"""Give the heap the engine freed back to the system (glibc's malloc_trim).

A week-long engine allocates and frees all day in many threads (benchmark pipes, git,
worker threads), and glibc keeps freed pages inside its arenas: the process's RSS then
climbs with every run although what it holds does not (bench/soak.py shows both). glibc
returns them only from the top of each heap by itself; malloc_trim(0) releases free pages
anywhere in every arena. Elsewhere (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_malloc_trim = None
_looked_up = False


def _trim_function():
    global _malloc_trim, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _malloc_trim = libc.malloc_trim
            _malloc_trim.argtypes = [ctypes.c_size_t]
            _malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            log.debug("malloc_trim not available: freed heap stays with the allocator")
    return _malloc_trim


def release_free_memory() -> bool:
    """Return free heap pages to the system; True when the C library did (glibc only)."""
    trim = _trim_function()
    return bool(trim(0)) if trim is not None else False
