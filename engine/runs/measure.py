"""One benchmark run exactly as a lane runs it: the lane's `run_benchmark` tool and
`autoresearch-tui bench` both go through `measure_run`, so whatever wraps a run (device
leases, environment filtering) wraps both.

`measure_run` claims a fresh run folder, says `run_started`, runs `bench_command` under the
engine's timeouts and hang detection (runs/benchmark.py), reads the metrics the run wrote,
says `run_finished` and leaves a note in the run folder (`outcome.json`). A run cut short
(its lane or the engine stopping, the task cancelled) is closed as `cancelled`; a run the
engine never got to close (kill -9, a crash) is closed by `close_interrupted_run` at the
lane's next start. No run is left "started" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.config import ExperimentConfig
from autoresearch_tui.engine.core.events import tail_events
from autoresearch_tui.engine.core.files import atomic_write_json
from autoresearch_tui.engine.core.ledger import RUN_ID_PATTERN, read_ledger, run_sort_key
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult, run_benchmark

OUTCOME_FILENAME = "outcome.json"
Emit = Callable[..., Any]
"""emit(type, **fields): how a run reports (Lane.emit, or the `bench` command's printer)."""


def write_outcome(run_dir: Path, status: str, reason: str = "", **fields: Any) -> None:
    """The run folder's own record of how the run ended (readable without the events)."""
    with contextlib.suppress(OSError):
        atomic_write_json(run_dir / OUTCOME_FILENAME,
                          {"status": status, "reason": reason, "ts": time.time(), **fields})


def _note_in_log(run_dir: Path, text: str) -> None:
    with contextlib.suppress(OSError), open(run_dir / "run.log", "a", encoding="utf-8") as log:
        log.write(f"\n[autoresearch] {text}\n")


async def measure_run(
    experiment: ExperimentConfig,
    *,
    cwd: Path,
    env: dict[str, str],
    allocate: Callable[[], tuple[str, Path]],
    emit: Emit,
    description: str = "",
    args: str = "",
    should_stop: Callable[[], bool] | None = None,
) -> BenchmarkResult:
    """Run `experiment.bench_command` once in `cwd`; see the module docstring."""
    run_id, run_dir = await asyncio.to_thread(allocate)
    emit("run_started", run_id=run_id, run_dir=str(run_dir), description=description, args=args)
    started = time.monotonic()
    try:
        result = await run_benchmark(
            experiment.bench_command,
            cwd=cwd,
            run_id=run_id,
            run_dir=run_dir,
            env=env,
            timeout_s=experiment.run_timeout_s,
            hang_timeout_s=experiment.hang_timeout_s,
            args=args,
            on_output=lambda text: emit("run_output", run_id=run_id, text=text),
            should_stop=should_stop,
        )
    except asyncio.CancelledError:
        reason = "cut short: the lane or the engine stopped during the run"
        seconds = time.monotonic() - started
        _note_in_log(run_dir, f"cancelled: {reason}")
        write_outcome(run_dir, "cancelled", reason, seconds=seconds)
        emit("run_finished", run_id=run_id, run_dir=str(run_dir), status="cancelled", exit_code=None,
             seconds=seconds, summary=None, reason=reason, description=description)
        raise
    reason = "the lane is stopping" if result.status == "cancelled" else ""
    write_outcome(run_dir, result.status, reason, exit_code=result.exit_code, seconds=result.seconds)
    emit("run_finished", **{k: v for k, v in result.to_dict().items() if k != "log_tail"},
         description=description, **({"reason": reason} if reason else {}))
    for warning in result.warnings:
        emit("warning", where="metrics", message=warning, run_id=run_id)
    return result


def close_interrupted_run(workspace, lane: str, emit: Emit) -> str | None:
    """Close the lane's newest run if it started and never finished (the engine died during
    it): `run_finished` with status `cancelled`, a note in its folder. Returns its run id.

    Only the newest run folder can be one: a lane runs one benchmark at a time."""
    runs = workspace.runs_dir(lane)
    try:
        ids = [p.name for p in runs.iterdir() if p.is_dir() and RUN_ID_PATTERN.match(p.name)]
    except OSError:
        return None
    if not ids:
        return None
    run_id = max(ids, key=run_sort_key)
    run_dir = runs / run_id
    if (run_dir / OUTCOME_FILENAME).exists() or not (run_dir / "run.log").exists():
        return None
    rows, _ = read_ledger(workspace.ledger_path(lane), workspace.config.experiment.metric)
    if any(row["run_id"] == run_id for row in rows):
        return None  # recorded: it finished (a run folder from before outcome notes)
    last = tail_events(workspace.events_path(lane), limit=1, types={"run_started", "run_finished"},
                       where=lambda event: event.get("run_id") == run_id)
    if not last or last[0]["type"] != "run_started":
        return None
    reason = "the engine stopped during the run (closed when the lane started again)"
    _note_in_log(run_dir, f"cancelled: {reason}")
    write_outcome(run_dir, "cancelled", reason)
    emit("run_finished", run_id=run_id, run_dir=str(run_dir), status="cancelled", exit_code=None,
         seconds=None, summary=None, reason=reason, description=last[0].get("description", ""))
    return run_id
