"""`runs/<run_id>/run.json`: what the engine knows about one run (purpose, lease, the measured
commit, how it ended). Written by runs/measure.py as the run goes, read by record_run and at a
lane's start; a small module of its own so readers need none of the runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch_tui.engine.core.files import atomic_write_json, read_json

RUN_INFO = "run.json"
WRONG_DEVICE = "wrong_device"
"""The status of a run that reported another platform than the lane's (a fallback)."""
REFUSED = "refused"
"""The status of a run the engine would not start (a frozen file differs from target_branch)."""
FINISHED_STATES = ("ok", "crash", "timeout", "hung", "cancelled", WRONG_DEVICE, REFUSED)
"""run.json statuses of a run that is over (waiting and running are not)."""
UNFINISHED = ("waiting", "running")
"""run.json statuses of a run still going; any other status is how it ended."""


def run_info_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / RUN_INFO


def read_run_info(run_dir: Path | str) -> dict[str, Any]:
    """run.json of a run folder ({} when absent or unreadable: a run the engine did not run)."""
    data = read_json(run_info_path(run_dir), default=None)
    return data if isinstance(data, dict) else {}


def update_run_info(run_dir: Path | str, **fields: Any) -> dict[str, Any]:
    info = read_run_info(run_dir)
    info.update(fields)
    atomic_write_json(run_info_path(run_dir), info)
    return info


def is_final(info: dict[str, Any]) -> bool:
    """Whether run.json (as `read_run_info` returns it) says the run has ended: it has a
    status, and not one of UNFINISHED. An empty dict (no run.json) is not final."""
    status = info.get("status")
    return isinstance(status, str) and bool(status) and status not in UNFINISHED
