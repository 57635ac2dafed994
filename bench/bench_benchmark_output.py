"""A benchmark that prints a lot: its wall time alone and under the engine's runner, and
what the engine keeps of the output. Prints figures; asserts nothing.

    python bench/bench_benchmark_output.py [--mb 1024]

The workload prints MB of 100-byte lines as fast as it can (what a benchmark printing
inside its timed loop does). Anchors, same run: the workload alone with stdout to a file, and through a pipe (`| cat`).
Under the engine: engine/runs/benchmark.run_benchmark with its output sampled into a real
EventLog (the transcript's `run_output` events), as a lane does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.core.events import EventLog, make_event  # noqa: E402
from autoresearch_tui.engine.runs.benchmark import run_benchmark  # noqa: E402

WORKLOAD = """\
import sys
line = ("step 000000 loss 2.3456 step_time_ms 7.123 " + "x" * 57 + "\\n") * 10000
out = sys.stdout
for _ in range({blocks}):
    out.write(line)
out.flush()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-output-"))
    try:
        blocks = args.mb * (1 << 20) // (100 * 10000)
        script = root / "chatty.py"
        script.write_text(WORKLOAD.format(blocks=blocks))
        printed = blocks * 100 * 10000
        command = f"{sys.executable} {script}"

        with open(root / "alone.log", "wb") as out:
            started = time.perf_counter()
            subprocess.run(command, shell=True, stdout=out, check=True)
            alone = time.perf_counter() - started
        print(f"printing {printed / 2**20:.0f} MiB alone (stdout to a file): {alone:.2f}s")
        started = time.perf_counter()
        subprocess.run(f"{command} | cat > {root / 'piped.log'}", shell=True, check=True)
        piped = time.perf_counter() - started
        print(f"alone through a pipe (| cat > file): {piped:.2f}s")

        events = EventLog(root / "events.jsonl")
        shown = [0, 0]

        def on_output(text: str) -> None:
            shown[0] += 1
            shown[1] += len(text)
            events.append(make_event("a", "run_output", run_id="0001", text=text))

        result = asyncio.run(run_benchmark(
            command, cwd=root, run_id="0001", run_dir=root / "runs" / "0001", env=dict(os.environ),
            timeout_s=3600, hang_timeout_s=600, on_output=on_output))
        events.close()
        log_size = (root / "runs" / "0001" / "run.log").stat().st_size
        print(f"under the engine's runner: {result.seconds:.2f}s ({result.seconds / alone:.2f}x alone, "
              f"{result.seconds / piped:.2f}x through a pipe), "
              f"status {result.status}; run.log {log_size / 2**20:.0f} MiB (everything), "
              f"events.jsonl {(root / 'events.jsonl').stat().st_size / 2**10:.0f} KiB "
              f"({shown[0]} run_output events, {shown[1] / 2**10:.0f} KiB of sampled output)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
