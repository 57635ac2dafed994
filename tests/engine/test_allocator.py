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
