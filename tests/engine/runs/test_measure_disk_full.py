"""A disk that fills during a run (a real, small tmpfs): the run's result still reaches the
agent. measure_run writes run.json before and after the benchmark; when the last write is
refused the measurement must not be thrown away with an OSError."""

from __future__ import annotations

import os

import pytest

from autoresearch_tui.engine.devices.leases import LeaseManager
from autoresearch_tui.engine.devices.slots import Slot
from autoresearch_tui.engine.runs.measure import measure_run
from autoresearch_tui.engine.runs.run_info import read_run_info
from tests.engine.agent.test_disk_full import fill
from tests.engine.agent.test_disk_full import small_disk  # noqa: F401  (the tmpfs fixture)
from tests.support import make_workspace

pytestmark = pytest.mark.timeout(120)

WRITES_A_SUMMARY = """\
import json, os
with open(os.environ["AUTORESEARCH_METRICS"], "a") as metrics:
    metrics.write(json.dumps({"v": 1, "kind": "summary", "step_time_median_s": 0.01, "n": 5}) + "\\n")
print("done")
"""


async def test_a_disk_that_fills_during_the_run_still_gives_the_agent_its_result(
        tmp_path, small_disk):  # noqa: F811
    config = make_workspace(tmp_path / "ws", repo_files={"bench.py": WRITES_A_SUMMARY})
    cwd = tmp_path / "ws" / "raw" / "code" / "proj"
    run_dir = small_disk / "runs" / "0001"
    run_dir.mkdir(parents=True)
    events: list[tuple[str, dict]] = []

    def emit(type: str, **fields) -> None:
        events.append((type, fields))
        if type == "lease_released":  # the benchmark has ended: the disk is full now
            fill(small_disk)

    measured = await measure_run(
        config.experiment, leases=LeaseManager([Slot(0, (0,), "cpu")]), platform="cpu", lane="a",
        cwd=cwd, env=dict(os.environ), allocate=lambda: ("0001", run_dir), emit=emit,
        description="the disk fills")

    assert measured.status == "ok", measured.for_agent()
    assert measured.result.summary["step_time_median_s"] == 0.01
    finished = [fields for type, fields in events if type == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "ok"
    warnings = [fields["message"] for type, fields in events if type == "warning"]
    assert any("disk full at" in message and "run.json" in message for message in warnings), warnings
    assert read_run_info(run_dir).get("status") == "running"  # the last write that fit, kept whole
