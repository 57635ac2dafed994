"""How long the commands a user types often take to start, against the agent SDK's import.

`status`, `stop` and attaching only need to know whether an engine runs: they must not pay
for the agent SDK (claude-agent-sdk imports mcp, anyio, pydantic models...). This times,
alternately in one run, whole processes of:

- `python -c "import claude_agent_sdk"` (the anchor),
- `autoresearch-tui status` on a workspace with no engine (lanes with ledgers and runs),
- `autoresearch-tui --help`.

    python bench/bench_startup.py [--runs 15]

Prints min / median / max wall time and each median as a ratio of the anchor's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import make_workspace  # noqa: E402

CLI = [sys.executable, "-m", "autoresearch_tui.cli"]


def workspace(folder: Path, lanes: int = 4, runs: int = 50) -> Path:
    config = make_workspace(folder, lanes=tuple(f"l{i}" for i in range(lanes)))
    for i in range(lanes):
        lane_dir = folder / "wiki" / "experiment" / "exp" / f"l{i}"
        rows = ["run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription"]
        for n in range(1, runs + 1):
            run = lane_dir / "runs" / f"{n:04d}"
            run.mkdir(parents=True)
            (run / "metrics.jsonl").write_text(json.dumps(
                {"v": 1, "kind": "summary", "step_time_median_s": 0.01 - n * 1e-5, "n": 30}) + "\n")
            rows.append(f"{n:04d}\tt\t{n:07x}abc\t{10 - n * 0.01:.2f}\t{'keep' if n % 3 else 'discard'}\trun {n}")
        (lane_dir / "results.tsv").write_text("\n".join(rows) + "\n")
    return config.path


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        config = workspace(folder / "ws")
        commands = {
            "import claude_agent_sdk (anchor)": [sys.executable, "-c", "import claude_agent_sdk"],
            "autoresearch-tui status": [*CLI, "status", "--config", str(config)],
            "autoresearch-tui --help": [*CLI, "--help"],
        }
        for command in commands.values():  # warm the page cache and .pyc files
            timed(command)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so machine drift hits all alike
            for name, command in commands.items():
                times[name].append(timed(command))
        anchor = statistics.median(times["import claude_agent_sdk (anchor)"])
        print(f"{'command':<36} {'min':>7} {'median':>7} {'max':>7}  median/anchor   ({args.runs} runs each)")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<36} {min(values) * 1e3:6.0f}ms {median * 1e3:6.0f}ms {max(values) * 1e3:6.0f}ms"
                  f"  {median / anchor:5.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
