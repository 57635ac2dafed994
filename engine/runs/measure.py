"""One engine-run benchmark on a leased slot: the path every measurement takes.

`measure()` wraps `runs/benchmark.run_benchmark` (the process runner) with what makes a
number trustworthy on a shared host:

1. a lease on one device slot for the whole run (queued first come first served; the wait
   is reported as `lease_wait` / `lease_acquired` / `lease_released` events and in the
   agent's answer);
2. the slot's environment (AUTORESEARCH_SLOT/CHIPS, the platform's variables) and, for
   split CPU slots, the run pinned to the slot's cores;
3. after a run the engine killed on a TPU host, a stale /tmp/libtpu_lockfile removed;
4. fallback detection: a summary saying it ran on another platform than the lane's
   (`"platform": "cpu"` under `platform = "tpu"`) makes the run `wrong_device`, never a
   keep or a baseline;
5. `runs/<run_id>/run.json`: what the engine knows about the run (purpose, lease, outcome),
   read back by record_run.

The lane's tool (agent/tools.py) and any other engine path that measures call this one
function.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from autoresearch_tui.engine.core.files import atomic_write_json, read_json
from autoresearch_tui.engine.devices.leases import Lease, LeaseCancelled, LeaseManager
from autoresearch_tui.engine.devices.libtpu_lock import remove_stale_lock
from autoresearch_tui.engine.devices.slots import affinity_prefix, cpu_affinity, slot_env
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult, run_benchmark

RUN_INFO = "run.json"
KILLED = ("timeout", "hung", "cancelled")
WRONG_DEVICE = "wrong_device"
PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu"}


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


async def measure(
    *,
    leases: LeaseManager,
    platform: str,
    lane: str,
    emit: Callable[..., Any],
    command: str,
    cwd: Path,
    run_id: str,
    run_dir: Path,
    env: dict[str, str],
    timeout_s: float,
    hang_timeout_s: float,
    args: str = "",
    purpose: str = "benchmark",
    on_output: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lockfile_cleanup: Callable[[], str | None] = remove_stale_lock,
    info: dict[str, Any] | None = None,
    max_metrics_bytes: int | None = None,
    pass_env: Iterable[str] = (),
) -> MeasuredRun:
    """Run `command` in `cwd` on a leased slot; `emit(type, **fields)` reports lease events.

    `info` is merged into run.json before the run starts (e.g. the measured commit)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    update_run_info(run_dir, run_id=run_id, lane=lane, purpose=purpose, platform=platform,
                    requested_at=time.time(), status="waiting", **(info or {}))
    requested = time.monotonic()

    def on_wait(position: int) -> None:
        busy = [s["lane"] for s in leases.status()["slots"] if s["state"] == "leased"]
        emit("lease_wait", run_id=run_id, purpose=purpose, position=position,
             slots=len(leases.slots), held_by=busy)

    try:
        lease = await leases.acquire(lane, purpose, on_wait)
    except LeaseCancelled as exc:
        waited = time.monotonic() - requested
        emit("lease_cancelled", run_id=run_id, purpose=purpose, waited_s=round(waited, 3), reason=str(exc))
        update_run_info(run_dir, status="cancelled", reason=f"never started: {exc}", waited_s=round(waited, 3))
        result = BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status="cancelled", exit_code=None,
                                 seconds=0.0, log_tail=f"the run never started: {exc}")
        return MeasuredRun(result, None, waited)

    emit("lease_acquired", run_id=run_id, purpose=purpose, slot=lease.slot.index,
         chips=list(lease.slot.chips), waited_s=round(lease.waited_s, 3))
    update_run_info(run_dir, status="running", started_at=time.time(), lease=lease.to_dict())
    try:
        result = await run_benchmark(
            command, cwd=cwd, run_id=run_id, run_dir=run_dir, env={**env, **slot_env(lease.slot)},
            timeout_s=timeout_s, hang_timeout_s=hang_timeout_s, args=args, on_output=on_output,
            should_stop=should_stop, prefix=affinity_prefix(cpu_affinity(lease.slot)),
            max_metrics_bytes=max_metrics_bytes, pass_env=pass_env,
        )
    except BaseException:
        update_run_info(run_dir, status="cancelled", reason="the engine stopped waiting for the run")
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
    summary = result.summary or {}
    update_run_info(run_dir, status=result.status, finished_at=time.time(), seconds=round(result.seconds, 3),
                    exit_code=result.exit_code, reason=problem,
                    reported_platform=reported_platform(summary),
                    device_kind=summary.get("device_kind") if isinstance(summary.get("device_kind"), str) else None,
                    lease={**lease.to_dict(), "held_s": round(lease.held_s, 3)})
    return measured
