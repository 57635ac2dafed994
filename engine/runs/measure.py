"""One engine-run benchmark: the path every measurement takes.

The lane's `run_benchmark` tool, `autoresearch-tui bench` and any other engine path that
measures call `measure_run`, so whatever makes a number trustworthy wraps them all:

1. a fresh run folder and a `run_started` event;
2. a lease on one device slot for the whole run (queued first come first served; the wait is
   reported as `lease_wait` / `lease_acquired` / `lease_released` events and in the agent's
   answer);
3. the slot's environment (AUTORESEARCH_SLOT/CHIPS, the platform's variables) and, for split
   CPU slots, the run pinned to the slot's cores; `bench_command` under the engine's timeouts
   and hang detection (runs/benchmark.py);
4. after a run the engine killed on a TPU host, a stale /tmp/libtpu_lockfile removed;
5. fallback detection: a summary saying it ran on another platform than the lane's
   (`"platform": "cpu"` under `platform = "tpu"`) makes the run `wrong_device`, never a keep
   or a baseline;
6. `runs/<run_id>/run.json`: what the engine knows about the run (purpose, lease, status,
   why), read back by record_run; and a `run_finished` event.

A run cut short (its lane or the engine stopping, the task cancelled) is closed as
`cancelled`; a run the engine never got to close (kill -9, a crash) is closed by
`close_interrupted_run` at the lane's next start. No run is left "started" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.config import ExperimentConfig
from autoresearch_tui.engine.core.events import tail_events
from autoresearch_tui.engine.core.files import describe_write_error
from autoresearch_tui.engine.core.ledger import RUN_ID_PATTERN, read_ledger, run_sort_key
from autoresearch_tui.engine.devices.leases import Lease, LeaseCancelled, LeaseManager
from autoresearch_tui.engine.devices.libtpu_lock import remove_stale_lock
from autoresearch_tui.engine.devices.slots import affinity_prefix, cpu_affinity, slot_env
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult, run_benchmark
from autoresearch_tui.engine.runs.run_info import (
    UNFINISHED, WRONG_DEVICE, read_run_info, run_info_path, update_run_info,
)

KILLED = ("timeout", "hung", "cancelled")
PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu"}
Emit = Callable[..., Any]
"""emit(type, **fields): how a run reports (Lane.emit, or the `bench` command's printer)."""


@dataclass
class MeasuredRun:
    result: BenchmarkResult
    lease: Lease | None = None
    waited_s: float = 0.0
    device_problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.result.status

    def device_line(self) -> str:
        if self.lease is None:
            return f"device: none (the run did not start; waited {self.waited_s:.1f} s)"
        return f"device: {self.lease.slot.describe()}, waited {self.waited_s:.1f} s for the device"

    def for_agent(self) -> str:
        parts = [self.result.for_agent(), self.device_line()]
        if self.device_problem:
            parts.append(f"NOT A VALID MEASUREMENT: {self.device_problem}. Record it as a crash; "
                         "do not keep it.")
        parts.extend(self.notes)
        return "\n".join(parts)


def reported_platform(summary: dict[str, Any] | None) -> str | None:
    value = (summary or {}).get("platform")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower()
    return PLATFORM_ALIASES.get(value, value)


def device_problem(summary: dict[str, Any] | None, expected: str) -> str | None:
    """Why a run's own report disqualifies it (fallback to another platform), or None."""
    platform = reported_platform(summary)
    if platform is None or platform == expected:
        return None
    kind = (summary or {}).get("device_kind")
    on = f"{platform} ({kind})" if isinstance(kind, str) and kind.strip() else platform
    return f"ran on {on}, expected {expected}: the accelerator was busy or missing"


def _note_in_log(run_dir: Path, text: str) -> None:
    with contextlib.suppress(OSError), open(run_dir / "run.log", "a", encoding="utf-8") as log:
        log.write(f"\n[autoresearch] {text}\n")


async def measure_run(
    experiment: ExperimentConfig,
    *,
    leases: LeaseManager,
    platform: str,
    lane: str,
    cwd: Path,
    env: dict[str, str],
    allocate: Callable[[], tuple[str, Path]],
    emit: Emit,
    description: str = "",
    args: str = "",
    purpose: str = "benchmark",
    should_stop: Callable[[], bool] | None = None,
    lockfile_cleanup: Callable[[], str | None] = remove_stale_lock,
    info: dict[str, Any] | None = None,
) -> MeasuredRun:
    """Run `experiment.bench_command` once in `cwd` on a leased slot; see the module docstring.

    `info` is merged into run.json before the run starts (e.g. the measured commit)."""
    run_id, run_dir = await asyncio.to_thread(allocate)

    def note(run_dir: Path, **fields: Any) -> None:
        # A full disk must not throw away a measurement: the run goes on, and says so.
        try:
            update_run_info(run_dir, **fields)
        except OSError as exc:
            emit("warning", where="run_info", run_id=run_id,
                 message=f"run {run_id}: {describe_write_error(exc, run_info_path(run_dir))}")
    emit("run_started", run_id=run_id, run_dir=str(run_dir), description=description, args=args,
         purpose=purpose)
    note(run_dir, run_id=run_id, lane=lane, purpose=purpose, platform=platform,
                    description=description, args=args, requested_at=time.time(), status="waiting",
                    **(info or {}))
    requested = time.monotonic()

    def finished(result: BenchmarkResult, reason: str | None, **extra: Any) -> None:
        emit("run_finished", **{k: v for k, v in result.to_dict().items() if k != "log_tail"},
             description=description, purpose=purpose, **({"reason": reason} if reason else {}), **extra)

    def on_wait(position: int) -> None:
        busy = [s["lane"] for s in leases.status()["slots"] if s["state"] == "leased"]
        emit("lease_wait", run_id=run_id, purpose=purpose, position=position,
             slots=len(leases.slots), held_by=busy)

    try:
        lease = await leases.acquire(lane, purpose, on_wait)
    except LeaseCancelled as exc:
        waited = time.monotonic() - requested
        reason = f"never started: {exc}"
        emit("lease_cancelled", run_id=run_id, purpose=purpose, waited_s=round(waited, 3), reason=str(exc))
        note(run_dir, status="cancelled", reason=reason, waited_s=round(waited, 3))
        _note_in_log(run_dir, f"cancelled: {reason}")
        result = BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status="cancelled", exit_code=None,
                                 seconds=0.0, log_tail=f"the run never started: {exc}")
        finished(result, reason, waited_s=round(waited, 3))
        return MeasuredRun(result, None, waited)

    emit("lease_acquired", run_id=run_id, purpose=purpose, slot=lease.slot.index,
         chips=list(lease.slot.chips), waited_s=round(lease.waited_s, 3))
    note(run_dir, status="running", started_at=time.time(), lease=lease.to_dict())
    started = time.monotonic()
    try:
        result = await run_benchmark(
            experiment.bench_command, cwd=cwd, run_id=run_id, run_dir=run_dir,
            env={**env, **slot_env(lease.slot)}, timeout_s=experiment.run_timeout_s,
            hang_timeout_s=experiment.hang_timeout_s, args=args,
            on_output=lambda text: emit("run_output", run_id=run_id, text=text),
            should_stop=should_stop, prefix=affinity_prefix(cpu_affinity(lease.slot)),
            max_metrics_bytes=int(experiment.max_metrics_mb * (1 << 20)),
            pass_env=experiment.bench_pass_env,
        )
    except BaseException as exc:  # cancelled (the lane or the engine stopping), or the runner failed
        cancelled = isinstance(exc, asyncio.CancelledError)
        status = "cancelled" if cancelled else "crash"
        reason = ("cut short: the lane or the engine stopped during the run" if cancelled
                  else f"the engine could not run it: {type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        _note_in_log(run_dir, f"{status}: {reason}")
        note(run_dir, status=status, reason=reason, seconds=round(seconds, 3))
        finished(BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status=status, exit_code=None,
                                 seconds=seconds), reason)
        raise
    finally:
        held = leases.release(lease)
        emit("lease_released", run_id=run_id, purpose=purpose, slot=lease.slot.index,
             held_s=round(held, 3), waited_s=round(lease.waited_s, 3))
    measured = MeasuredRun(result, lease, lease.waited_s)
    if result.status in KILLED and platform == "tpu":
        note = await asyncio.to_thread(lockfile_cleanup)
        if note:
            measured.notes.append(f"note: {note}")
            emit("warning", where="devices", message=note, run_id=run_id)
    problem = device_problem(result.summary, platform) if result.status == "ok" else None
    if problem:
        result.status = WRONG_DEVICE
        measured.device_problem = problem
        emit("warning", where="devices", message=f"run {run_id}: {problem}", run_id=run_id)
    reason = problem or ("the lane is stopping" if result.status == "cancelled" else None)
    summary = result.summary or {}
    note(run_dir, status=result.status, finished_at=time.time(), seconds=round(result.seconds, 3),
                    exit_code=result.exit_code, reason=reason,
                    reported_platform=reported_platform(summary),
                    device_kind=summary.get("device_kind") if isinstance(summary.get("device_kind"), str) else None,
                    lease={**lease.to_dict(), "held_s": round(lease.held_s, 3)})
    finished(result, reason, waited_s=round(lease.waited_s, 3), slot=lease.slot.index)
    for warning in result.warnings:
        emit("warning", where="metrics", message=warning, run_id=run_id)
    return measured


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
    info = read_run_info(run_dir)
    description = info.get("description", "")
    if info.get("status") not in UNFINISHED:
        if info or not (run_dir / "run.log").exists():
            return None  # it ended (or never ran); without run.json: a folder from before them
        rows, _ = read_ledger(workspace.ledger_path(lane), workspace.config.experiment.metric)
        if any(row["run_id"] == run_id for row in rows):
            return None  # recorded: it finished
        last = tail_events(workspace.events_path(lane), limit=1, types={"run_started", "run_finished"},
                           where=lambda event: event.get("run_id") == run_id)
        if not last or last[0]["type"] != "run_started":
            return None
        description = last[0].get("description", "")
    reason = "the engine stopped during the run (closed when the lane started again)"
    _note_in_log(run_dir, f"cancelled: {reason}")
    with contextlib.suppress(OSError):  # a full disk: closed again at the next start
        update_run_info(run_dir, status="cancelled", reason=reason)
    emit("run_finished", run_id=run_id, run_dir=str(run_dir), status="cancelled", exit_code=None,
         seconds=None, summary=None, reason=reason, description=description)
    return run_id
