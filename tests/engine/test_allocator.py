"""The engine gives freed heap back: after a burst of allocations it freed, its RSS falls
back instead of staying at the high-water mark. A real process, glibc's real allocator."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

BURST = """
import re
from autoresearch_tui.engine.allocator import release_free_memory

def rss_mib():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB from malloc (past pymalloc's 512 B)
kept = blocks[::64]  # every 64th stays, the last one among them: glibc cannot trim from the top
del blocks
held = rss_mib()
released = release_free_memory()
print(held, rss_mib(), released, len(kept))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_freed_heap_goes_back_to_the_system(tmp_path):
    out = subprocess.run([sys.executable, "-c", BURST], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    held, after, released, _ = out.stdout.split()
    assert float(held) > 150, f"the burst held only {held} MiB"
    assert released == "True"
    assert float(after) < float(held) / 3, f"RSS {held} -> {after} MiB"



WHERE_A_BUFFER_GOES = """
import ctypes, sys
from autoresearch_tui.engine.allocator import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
del bytearray(4 << 20)[:]  # a 4 MiB buffer freed: by default glibc raises its threshold to 4 MiB
before = libc.mallinfo2().hblkhd
chunk = bytearray(1 << 20)  # the next 1 MiB pipe read or metrics chunk
print("mmapped" if libc.mallinfo2().hblkhd - before >= 1 << 20 else "heap")
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_big_transient_buffers_stay_out_of_the_heap_after_a_bigger_one_was_freed(tmp_path):
    """In the heap, a freed buffer's space is pinned by any small block allocated after it
    (the soak's RSS grew while malloc's in-use bytes stayed flat); mmapped, it goes back."""
    def where(mode: str) -> str:
        out = subprocess.run([sys.executable, "-c", WHERE_A_BUFFER_GOES, mode], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert where("default") == "heap"  # glibc's own behaviour: the anchor
    assert where("fixed") == "mmapped"
