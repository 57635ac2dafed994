"""Benchmarks run by the engine, not by the agent's Bash tool.

Claude Code's Bash tool kills a command after 2 minutes by default (10 at most); TPU
benchmarks often take longer. The engine runs `bench_command` in the lane's fork under its
own `run_timeout_s`, kills a run that hangs (no output and no new metrics for
`hang_timeout_s`), keeps the whole output in the run's run.log, and answers the agent with
the summary record (or the log tail when the run crashed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from autoresearch_tui.engine.runs.metrics import read_run_summary
from autoresearch_tui.engine.agent.processes import pdeathsig_prefix

LOG_TAIL_LINES = 40


@dataclass
class BenchmarkResult:
    run_id: str
    run_dir: str
    status: str  # ok | crash | timeout | hung | cancelled
    exit_code: int | None
    seconds: float
    summary: dict[str, Any] | None = None
    profile_dir: str | None = None
    log_tail: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_agent(self) -> str:
        """The tool answer the model reads."""
        head = (f"run_id={self.run_id} run_dir={self.run_dir} status={self.status} "
                f"exit_code={self.exit_code} wall={self.seconds:.1f}s")
        if self.summary:
            body = "summary: " + json.dumps(self.summary)
            step = self.summary.get("step_time_median_s")
            if isinstance(step, (int, float)):
                body += f"\nstep_time_ms (median): {step * 1000:.3f}"
        else:
            body = "no summary record was written.\nlog tail:\n" + self.log_tail
        extra = "\n".join(f"warning: {w}" for w in self.warnings)
        next_step = (f"Next: record_run(status=..., description=..., run_dir=\"{self.run_dir}\")")
        return "\n".join(filter(None, [head, body, extra, next_step]))


async def run_benchmark(
    command: str,
    *,
    cwd: Path,
    run_id: str,
    run_dir: Path,
    env: dict[str, str],
    timeout_s: float,
    hang_timeout_s: float,
    args: str = "",
    on_output: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prefix: Sequence[str] = (),
) -> BenchmarkResult:
    """Run `command args` in `cwd`; `prefix` goes before the shell (e.g. taskset for a CPU slot)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    log_path = run_dir / "run.log"
    full_command = f"{command} {args}".strip()
    run_env = {**env, "AUTORESEARCH_RUN_DIR": str(run_dir), "AUTORESEARCH_METRICS": str(metrics_path),
               "AUTORESEARCH_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    last_activity = started
    status = "ok"
    with open(log_path, "ab") as log_file:
        log_file.write(f"$ {full_command}\n".encode())
        process = await asyncio.create_subprocess_exec(
            *pdeathsig_prefix(), *prefix, "/bin/sh", "-c", full_command, cwd=str(cwd), env=run_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,  # kill the whole group
        )

        async def pump() -> None:
            nonlocal last_activity
            assert process.stdout is not None
            while True:
                chunk = await process.stdout.read(65536)
                if not chunk:
                    return
                last_activity = time.monotonic()
                log_file.write(chunk)
                log_file.flush()
                if on_output:
                    on_output(chunk.decode("utf-8", errors="replace"))

        pump_task = asyncio.create_task(pump())
        metrics_size = -1
        try:
            while process.returncode is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), timeout=0.5)
                if process.returncode is not None:
                    break
                now = time.monotonic()
                size = metrics_path.stat().st_size if metrics_path.exists() else -1
                if size != metrics_size:
                    metrics_size, last_activity = size, now
                if should_stop is not None and should_stop():
                    status = "cancelled"
                elif now - started > timeout_s:
                    status = "timeout"
                elif now - last_activity > hang_timeout_s:
                    status = "hung"
                if status != "ok":
                    _kill_group(process)
                    await process.wait()
                    break
        except asyncio.CancelledError:
            _kill_group(process)
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump_task, timeout=5)
        if status == "timeout":
            log_file.write(f"\n[autoresearch] killed: exceeded run_timeout_s={timeout_s:g}\n".encode())
        elif status == "cancelled":
            log_file.write(b"\n[autoresearch] killed: the lane is stopping\n")
        elif status == "hung":
            log_file.write(f"\n[autoresearch] killed: no output and no new metrics for "
                           f"{hang_timeout_s:g}s (hang_timeout_s)\n".encode())
    if status == "ok" and process.returncode != 0:
        status = "crash"
    summary, profile_dir, warnings = read_run_summary(metrics_path)
    return BenchmarkResult(
        run_id=run_id, run_dir=str(run_dir), status=status, exit_code=process.returncode,
        seconds=time.monotonic() - started, summary=summary, profile_dir=profile_dir,
        log_tail=tail(log_path), warnings=warnings,
    )


def tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
