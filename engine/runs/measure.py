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

Right before the process starts (the lease held), the commit at `cwd`'s HEAD and the tracked
files with uncommitted changes are captured into run.json (`commit`, `dirty`): that is the
code the run measures, whatever HEAD is when it is recorded. `refuse(commit, dirty)` may then
say why the run must not start (a frozen file differs from target_branch): the run is
`refused` and never runs. The configured metric is read from the summary into `value`.

A run cut short (its lane or the engine stopping, the task cancelled) is closed as
`cancelled`; a run the engine never got to close (kill -9, a crash) is closed by
`close_interrupted_run` at the lane's next start. No run is left "started" forever.

With `[runner] kind = "ray"` the engine passes its runner: steps 2-4 are the cluster's (the
code shipped, queueing and placement by Ray, the run folder brought back: engine/runners/
remote.py), and steps 1, 5 and 6 are the same, so a remote run reads like a local one.
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
from autoresearch_tui.engine.core.git import git
from autoresearch_tui.engine.core.ledger import RUN_ID_PATTERN, format_number, read_ledger, run_sort_key
from autoresearch_tui.engine.devices.leases import Lease, LeaseCancelled, LeaseManager
from autoresearch_tui.engine.devices.libtpu_lock import remove_stale_lock
from autoresearch_tui.engine.devices.slots import affinity_prefix, cpu_affinity, slot_env
from autoresearch_tui.engine.runners.ray_runner import RayRunner
from autoresearch_tui.engine.runners.remote import placement_text, run_remote
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult, run_benchmark
from autoresearch_tui.engine.runs.metrics import metric_value, missing_metric
from autoresearch_tui.engine.runs.run_info import (
    REFUSED, UNFINISHED, WRONG_DEVICE, read_run_info, run_info_path, update_run_info,
)

KILLED = ("timeout", "hung", "cancelled")
PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu"}
Emit = Callable[..., Any]
"""emit(type, **fields): how a run reports (Lane.emit, or the `bench` command's printer)."""
Refuse = Callable[[str | None, list[str]], str | None]
"""refuse(commit, dirty files): why a run must not start, or None."""


@dataclass
class MeasuredRun:
    result: BenchmarkResult
    lease: Lease | None = None
    waited_s: float = 0.0
    device_problem: str | None = None
    notes: list[str] = field(default_factory=list)
    placement: dict[str, Any] | None = None
    """A remote run: the node it ran on (runner "ray"); None for a local run."""
    runner_reason: str = ""
    """A remote run that crashed or was cancelled without the bench failing: why (worker died,
    cluster unreachable, the lane stopped)."""
    commit: str | None = None
    """The commit the run measured (HEAD of its folder when it started)."""
    dirty: list[str] = field(default_factory=list)
    """Tracked files with uncommitted changes when it started."""
    refused: str | None = None
    metric: str | None = None
    value: float | None = None
    """The configured metric read from the summary (None: not measured)."""

    @property
    def status(self) -> str:
        return self.result.status

    def device_line(self) -> str:
        if self.placement is not None:
            same = self.placement.get("same_node")
            pinned = ("" if same is None else "; same node as the runs it is compared with" if same
                      else "; NOT on the node of the runs it is compared with")
            return (f"device: {placement_text(self.placement)} on the Ray cluster, queued "
                    f"{self.waited_s:.1f} s{pinned}")
        if self.runner_reason:
            return f"device: none ({self.runner_reason})"
        if self.lease is None:
            return f"device: none (the run did not start; waited {self.waited_s:.1f} s)"
        return f"device: {self.lease.slot.describe()}, waited {self.waited_s:.1f} s for the device"

    def for_agent(self) -> str:
        if self.refused:
            return f"run_id={self.result.run_id} status={REFUSED}: the run did not start. {self.refused}"
        parts = [self.result.for_agent(), self.device_line()]
        if self.commit:
            parts.append(f"measured commit: {self.commit[:12]}" + (
                f" with uncommitted changes to {', '.join(self.dirty[:5])}: commit them and run again "
                "before you can keep it" if self.dirty else ""))
        if self.metric and self.result.status == "ok":
            problem = missing_metric(self.result.summary, self.metric)
            parts.append(f"{self.metric}: {format_number(self.value)}" if problem is None
                         else f"warning: {problem}: this run has no measurement")
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
    refuse: Refuse | None = None,
    runner: RayRunner | None = None,
    affinity: str | None = None,
) -> MeasuredRun:
    """Run `experiment.bench_command` once in `cwd` on a leased slot; see the module docstring.

    `info` is merged into run.json before the run starts (e.g. what a confirmation run confirms).
    `refuse(commit, dirty)`: why the code about to be measured must not run (frozen files), or None.
    `runner`: run it on the cluster instead of a leased slot ([runner] kind = "ray");
    `affinity`: remote runs with the same key go to the node of the first of them when the
    cluster allows (A/B comparisons)."""
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
         description=description, args=args, requested_at=time.time(), status="waiting", **(info or {}))
    requested = time.monotonic()

    def finished(result: BenchmarkResult, reason: str | None, **extra: Any) -> None:
        emit("run_finished", **{k: v for k, v in result.to_dict().items() if k != "log_tail"},
             description=description, purpose=purpose, **({"reason": reason} if reason else {}), **extra)

    if runner is not None:
        return await _measure_remote(
            experiment, runner, platform=platform, lane=lane, cwd=cwd, env=env, emit=emit,
            run_id=run_id, run_dir=run_dir, args=args, purpose=purpose, should_stop=should_stop,
            affinity=affinity, finished=finished, note=note, refuse=refuse)

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
    try:
        commit, dirty = await asyncio.to_thread(measured_code, cwd)
        refusal = refuse(commit, dirty) if refuse is not None else None
    except BaseException:
        held = leases.release(lease)
        emit("lease_released", run_id=run_id, purpose=purpose, slot=lease.slot.index,
             held_s=round(held, 3), waited_s=round(lease.waited_s, 3))
        note(run_dir, status="cancelled", reason="cut short before the run started")
        raise
    if refusal:
        held = leases.release(lease)
        emit("lease_released", run_id=run_id, purpose=purpose, slot=lease.slot.index,
             held_s=round(held, 3), waited_s=round(lease.waited_s, 3))
        return _refused(run_id, run_dir, refusal, commit, dirty, emit=emit, note=note, finished=finished,
                        lease=lease, waited_s=lease.waited_s, slot=lease.slot.index)
    note(run_dir, status="running", started_at=time.time(), lease=lease.to_dict(), commit=commit, dirty=dirty)
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
        _close_cut_short(exc, run_id, run_dir, time.monotonic() - started, note=note, finished=finished)
        raise
    finally:
        held = leases.release(lease)
        emit("lease_released", run_id=run_id, purpose=purpose, slot=lease.slot.index,
             held_s=round(held, 3), waited_s=round(lease.waited_s, 3))
    measured = MeasuredRun(result, lease, lease.waited_s, commit=commit, dirty=dirty)
    if result.status in KILLED and platform == "tpu":
        lock_note = await asyncio.to_thread(lockfile_cleanup)
        if lock_note:
            measured.notes.append(f"note: {lock_note}")
            emit("warning", where="devices", message=lock_note, run_id=run_id)
    _finish(measured, experiment.metric, platform, emit, note, run_dir, run_id, finished,
            run_info={"lease": {**lease.to_dict(), "held_s": round(lease.held_s, 3)}},
            event={"waited_s": round(lease.waited_s, 3), "slot": lease.slot.index})
    return measured


async def _measure_remote(
    experiment: ExperimentConfig, runner: RayRunner, *, platform: str, lane: str, cwd: Path,
    env: dict[str, str], emit: Emit, run_id: str, run_dir: Path, args: str, purpose: str,
    should_stop: Callable[[], bool] | None, affinity: str | None,
    finished: Callable[..., None], note: Callable[..., None], refuse: Refuse | None,
) -> MeasuredRun:
    """measure_run's steps 2-4 on the cluster: no local lease; Ray queues and places the run."""
    commit, dirty = await asyncio.to_thread(measured_code, cwd)
    refusal = refuse(commit, dirty) if refuse is not None else None
    if refusal:
        return _refused(run_id, run_dir, refusal, commit, dirty, emit=emit, note=note, finished=finished,
                        lease=None, waited_s=0.0)
    note(run_dir, commit=commit, dirty=dirty)
    started = time.monotonic()
    try:
        remote = await run_remote(
            runner, lane=lane, purpose=purpose, emit=emit, command=experiment.bench_command, args=args,
            cwd=cwd, run_id=run_id, run_dir=run_dir, env=env, timeout_s=experiment.run_timeout_s,
            hang_timeout_s=experiment.hang_timeout_s,
            on_output=lambda text: emit("run_output", run_id=run_id, text=text),
            should_stop=should_stop, affinity=affinity,
            on_started=lambda placement: note(
                run_dir, status="running", started_at=time.time(), placement={"runner": "ray", **placement}))
    except BaseException as exc:  # cancelled (the runner stopped the remote run first), or the runner failed
        _close_cut_short(exc, run_id, run_dir, time.monotonic() - started, note=note, finished=finished)
        raise
    code = remote.code
    measured = MeasuredRun(remote.result, None, remote.queued_s, placement=remote.placement,
                           runner_reason=remote.reason if remote.result.status in ("crash", "cancelled") else "",
                           commit=code.commit if code else commit, dirty=list(code.dirty) if code else dirty)
    _finish(measured, experiment.metric, platform, emit, note, run_dir, run_id, finished,
            run_info={"placement": {"runner": "ray", **(remote.placement or {})},
                      **({"commit": code.commit, "dirty": code.dirty, "shipped": code.shipped,
                          "code_bytes": code.size} if code else {})},
            event={"waited_s": round(remote.queued_s, 3), "node": (remote.placement or {}).get("node_name")})
    return measured


def _close_cut_short(exc: BaseException, run_id: str, run_dir: Path, seconds: float, *,
                     note: Callable[..., None], finished: Callable[..., None]) -> None:
    """A run that did not come back: `cancelled` (the lane or the engine stopping) or `crash`
    (the runner failed), in its log, run.json and `run_finished`."""
    cancelled = isinstance(exc, asyncio.CancelledError)
    status = "cancelled" if cancelled else "crash"
    reason = ("cut short: the lane or the engine stopped during the run" if cancelled
              else f"the engine could not run it: {type(exc).__name__}: {exc}")
    _note_in_log(run_dir, f"{status}: {reason}")
    note(run_dir, status=status, reason=reason, seconds=round(seconds, 3))
    finished(BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status=status, exit_code=None,
                             seconds=seconds), reason)


def _refused(run_id: str, run_dir: Path, refusal: str, commit: str | None, dirty: list[str], *,
             emit: Emit, note: Callable[..., None], finished: Callable[..., None], lease: Lease | None,
             waited_s: float, **event: Any) -> MeasuredRun:
    """A run that must not start (frozen files changed): closed as `refused`, never measured."""
    emit("warning", where="run_benchmark", message=f"run {run_id} refused: {refusal}", run_id=run_id)
    note(run_dir, status=REFUSED, reason=refusal, commit=commit, dirty=dirty, finished_at=time.time())
    _note_in_log(run_dir, f"refused: {refusal}")
    result = BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status=REFUSED, exit_code=None,
                             seconds=0.0, log_tail=refusal)
    finished(result, refusal, waited_s=round(waited_s, 3), **event)
    return MeasuredRun(result, lease, waited_s, refused=refusal, commit=commit, dirty=dirty)


def _finish(measured: MeasuredRun, metric: str, platform: str, emit: Emit, note: Callable[..., None],
            run_dir: Path, run_id: str, finished: Callable[..., None], *, run_info: dict[str, Any],
            event: dict[str, Any]) -> None:
    """Steps 5 and 6, the same for a local and a remote run: the metric's value, fallback
    detection, the final run.json, `run_finished` and the metrics warnings."""
    result = measured.result
    measured.metric = metric
    if result.status == "ok" and result.summary:
        measured.value = metric_value(result.summary, metric)
    problem = device_problem(result.summary, platform) if result.status == "ok" else None
    if problem:
        result.status = WRONG_DEVICE
        measured.device_problem = problem
        emit("warning", where="devices", message=f"run {run_id}: {problem}", run_id=run_id)
    reason = (problem or measured.runner_reason
              or ("the lane is stopping" if result.status == "cancelled" else None))
    summary = result.summary or {}
    note(run_dir, status=result.status, finished_at=time.time(), seconds=round(result.seconds, 3),
         exit_code=result.exit_code, reason=reason or None, reported_platform=reported_platform(summary),
         device_kind=summary.get("device_kind") if isinstance(summary.get("device_kind"), str) else None,
         metric=metric, value=measured.value if result.status == "ok" else None, **run_info)
    shown = {"metric": metric, "value": measured.value} if result.status == "ok" and measured.value is not None else {}
    finished(result, reason or None, **event, **shown)
    for warning in result.warnings:
        emit("warning", where="metrics", message=warning, run_id=run_id)


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


def measured_code(cwd: Path) -> tuple[str | None, list[str]]:
    """(HEAD commit, tracked files with uncommitted changes) of the folder a run measures;
    (None, []) outside a git repository."""
    proc = git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if proc.returncode != 0:
        return None, []
    changed = git(cwd, "diff", "--name-only", "-z", "HEAD", check=False).stdout.split("\0")
    return proc.stdout.strip(), sorted(p for p in changed if p)
