"""Runs one scenario function of a test module inside the test cluster's namespaces.

    python scenario.py MODULE_PATH FUNCTION WORKDIR PARAMS_JSON

`FUNCTION(ctx)` is an async function; it returns a JSON object, printed on the last line as
`SCENARIO-RESULT {...}` for the test (tests/engine/runners/raycluster.py) to read.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "SCENARIO-RESULT "


@dataclass
class Context:
    workdir: Path
    address: str
    params: dict = field(default_factory=dict)

    def cluster(self, *args: str) -> subprocess.CompletedProcess:
        """cluster.sh inside the namespace we are in (kill-node NAME, stop, start, add-worker)."""
        env = {**os.environ, **json.loads(os.environ.get("CLUSTER_SH_ENV", "{}"))}
        return subprocess.run([str(HERE / "cluster.sh"), *args], capture_output=True, text=True, env=env,
                              timeout=180)

    def processes(self, pattern: str) -> list[str]:
        proc = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
        return [line for line in proc.stdout.splitlines() if line.strip() and "pgrep" not in line]


def main() -> None:
    module_path, function, workdir, params = sys.argv[1:5]
    spec = importlib.util.spec_from_file_location("ray_scenarios_module", module_path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    ctx = Context(Path(workdir), os.environ["RAY_ADDRESS_FOR_TESTS"], json.loads(params))
    result = asyncio.run(getattr(module, function)(ctx))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    sys.stdout.flush()
    os._exit(0)  # leftover threads of a stopped engine must not hold the exit


if __name__ == "__main__":
    main()
