"""One engine-run benchmark on a cluster: the remote branch of `runs/measure.measure()`.

It ships the measured code (engine/runners/shipping.py), hands the run to the runner, reports
`cluster_queued` and `cluster_started` events, streams the output to `on_output`, and builds
the same `BenchmarkResult` a local run gives, from the run folder that came back into
`runs/<run_id>/` (metrics.jsonl, run.log, profile/...): the ledger, frontier and profile
summaries read it unchanged.

The run's environment on the worker is the worker's own (PATH, the device variables Ray
sets, JAX_PLATFORMS as the worker has it) plus what the engine adds for the run: the
AUTORESEARCH_* variables and the lane's `env`. The engine host's own environment (its keys,
HOME, PATH) never travels; nor do AUTORESEARCH_LANE_DIR and AUTORESEARCH_RUNS_DIR, which
name folders on this host.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.runners.ray_runner import RayRunner, RemoteOutcome, amounts
from autoresearch_tui.engine.runners.shipping import CodeArchive, ShippingError, build_code_archive
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult, tail
from autoresearch_tui.engine.runs.metrics import read_run_summary

HOST_ONLY = ("AUTORESEARCH_LANE_DIR", "AUTORESEARCH_RUNS_DIR")


@dataclass
class RemoteResult:
    result: BenchmarkResult
    placement: dict[str, Any] | None
    queued_s: float
    code: CodeArchive | None
    reason: str = ""


def remote_env(env: dict[str, str], host_env: dict[str, str]) -> dict[str, str]:
    """What travels: the engine's additions to its host's environment, never the host's own."""
    out = {}
    for name, value in env.items():
        if name in HOST_ONLY:
            continue
        if name.startswith("AUTORESEARCH_") or host_env.get(name) != value:
            out[name] = value
    return out


def placement_text(placement: dict[str, Any] | None) -> str:
    if not placement:
        return "not placed"
    name = placement.get("node_name") or str(placement.get("node_id") or "?")[:12]
    chips = "; ".join(f"{kind} {','.join(ids)}" for kind, ids in (placement.get("accelerator_ids") or {}).items())
    return f"node {name} ({placement.get('node_ip')})" + (f", {chips}" if chips else "")


async def run_remote(
    runner: RayRunner,
    *,
    lane: str,
    purpose: str,
    emit: Callable[..., Any],
    command: str,
    args: str,
    cwd: Path,
    run_id: str,
    run_dir: Path,
    env: dict[str, str],
    timeout_s: float,
    hang_timeout_s: float,
    on_output: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    affinity: str | None = None,
    on_started: Callable[[dict[str, Any]], None] | None = None,
) -> RemoteResult:
    full_command = f"{command} {args}".strip()
    try:
        code = await asyncio.to_thread(build_code_archive, cwd, runner.settings.ship, runner.main_repo,
                                       runner.code_dir)
    except ShippingError as exc:
        return _failed(run_id, run_dir, full_command, f"the code could not be shipped: {exc}")

    def on_event(kind: str, fields: dict[str, Any]) -> None:
        if kind == "output":
            if on_output is not None:
                on_output(fields["data"])
        elif kind == "queued":
            emit("cluster_queued", run_id=run_id, purpose=purpose, resources=fields["resources"],
                 text=f"queued on the cluster for {amounts(fields['resources'])}",
                 warning=fields.get("warning"), pinned_node=fields.get("pinned_node"))
        elif kind == "started":
            emit("cluster_started", run_id=run_id, purpose=purpose, node=fields.get("node_name"),
                 node_id=fields.get("node_id"), node_ip=fields.get("node_ip"),
                 accelerator_ids=fields.get("accelerator_ids"), queued_s=fields.get("queued_s"),
                 unpinned=fields.get("unpinned"), text=f"on {placement_text(fields)}")
            if fields.get("unpinned"):
                emit("warning", where="runner", run_id=run_id,
                     message=f"run {run_id} ran on another node: {fields['unpinned']}")
            if on_started is not None:
                on_started(fields)

    outcome: RemoteOutcome = await runner.run(
        lane=lane, run_id=run_id, command=full_command, code=code.path, dest=run_dir,
        env=remote_env(env, runner.env), timeout_s=timeout_s, hang_timeout_s=hang_timeout_s,
        affinity=affinity, on_event=on_event, should_stop=should_stop)
    code.path.unlink(missing_ok=True)  # the bridge removes it once sent; not when it never was
    if not (run_dir / "run.log").exists():  # it never reached the bridge
        return _failed(run_id, run_dir, full_command, outcome.reason or outcome.status, code)
    if outcome.status == "crash" and outcome.reason and outcome.reason not in tail(run_dir / "run.log"):
        _append_log(run_dir, f"crash: {outcome.reason}")  # the bridge died before it could say so
    summary, profile_dir, warnings = await asyncio.to_thread(read_run_summary, run_dir / "metrics.jsonl")
    result = BenchmarkResult(
        run_id=run_id, run_dir=str(run_dir), status=outcome.status, exit_code=outcome.exit_code,
        seconds=outcome.seconds, summary=summary, profile_dir=profile_dir,
        log_tail=await asyncio.to_thread(tail, run_dir / "run.log"), warnings=warnings)
    return RemoteResult(result, outcome.placement, outcome.queued_s, code, outcome.reason)


def _append_log(run_dir: Path, line: str) -> None:
    with open(run_dir / "run.log", "ab") as handle:
        handle.write(f"\n[autoresearch] {line}\n".encode())


def _failed(run_id: str, run_dir: Path, command: str, reason: str, code: CodeArchive | None = None) -> RemoteResult:
    """A run that never reached a worker: crash, with the reason in its run.log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "run.log", "ab") as handle:
        handle.write(f"$ {command}\n[autoresearch] crash: {reason}\n".encode())
    result = BenchmarkResult(run_id=run_id, run_dir=str(run_dir), status="crash", exit_code=None,
                             seconds=0.0, log_tail=tail(run_dir / "run.log"))
    return RemoteResult(result, None, 0.0, code, reason)
