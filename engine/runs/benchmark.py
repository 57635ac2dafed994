"""Benchmarks run by the engine, not by the agent's Bash tool.

Claude Code's Bash tool kills a command after 2 minutes by default (10 at most); TPU
benchmarks often take longer. The engine runs `bench_command` in the lane's fork under its
own `run_timeout_s`, kills a run that hangs (no output and no new metrics for
`hang_timeout_s`) or writes more metrics than `max_metrics_mb`, keeps the whole output in
the run's run.log (drained at full pipe speed; the transcript gets a rate-limited sample),
and answers the agent with the summary record (or the log tail when the run crashed).

A benchmark runs in its own process group, recorded in the run folder while it lives:
whatever it leaves running is killed when it ends, and a restarted engine kills a group
that a killed engine left behind. It gets no credentials (benchmark_env).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import select
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from autoresearch_tui.engine.agent.processes import (
    GROUP_RECORD, ProcessInfo, kill_group, pdeathsig_prefix, read_process, record_group,
)
from autoresearch_tui.engine.core.secrets import credential_free_env, redact, redact_output
from autoresearch_tui.engine.runs.metrics import read_run_summary

LOG_TAIL_LINES = 40
PIPE_READ_BYTES = 1 << 20
CARRY_LIMIT = 64 * 1024
"""A line longer than this is written (and redacted) in pieces."""
SAMPLE_INTERVAL_S = 0.25
SAMPLE_BYTES = 4096
SAMPLE_TOTAL_BYTES = 256 * 1024


@dataclass
class BenchmarkResult:
    run_id: str
    run_dir: str
    status: str  # ok | crash | timeout | hung | cancelled | metrics_limit
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


class OutputSample:
    """What the transcript shows of a benchmark's output: at most one piece per
    SAMPLE_INTERVAL_S, each the latest SAMPLE_BYTES, and SAMPLE_TOTAL_BYTES per run.
    The whole output is in run.log; the sample must never slow the benchmark down."""

    def __init__(self, piece_bytes: int = SAMPLE_BYTES, total_bytes: int = SAMPLE_TOTAL_BYTES):
        self.piece_bytes = piece_bytes
        self.total_bytes = total_bytes
        self._tail = bytearray()
        self._unsent = 0
        self.shown = 0
        self.hidden = 0
        self._lock = threading.Lock()  # fed by the pump thread, taken on the event loop

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            if len(chunk) >= self.piece_bytes:
                self._tail = bytearray(chunk[-self.piece_bytes:])
            else:
                self._tail += chunk
                if len(self._tail) > 2 * self.piece_bytes:
                    del self._tail[: len(self._tail) - self.piece_bytes]
            self._unsent += len(chunk)

    def take(self) -> str | None:
        """The next piece to show, or None (nothing new, or the run's sample is used up)."""
        with self._lock:
            return self._take()

    def _take(self) -> str | None:
        if not self._unsent:
            return None
        if self.shown >= self.total_bytes:
            self.hidden += self._unsent
            self._unsent, self._tail = 0, bytearray()
            return None
        piece = bytes(self._tail[-self.piece_bytes:])
        skipped = self._unsent - len(piece)
        if skipped > 0:
            newline = piece.find(b"\n")
            if 0 <= newline < len(piece) - 1:  # start on a whole line
                skipped += newline + 1
                piece = piece[newline + 1:]
            self.hidden += skipped
        self._unsent, self._tail = 0, bytearray()
        self.shown += len(piece)
        text = piece.decode("utf-8", errors="replace")
        return (f"… [{skipped} bytes not shown: run.log has everything]\n" + text) if skipped > 0 else text

    def closing_note(self) -> str | None:
        if not self.hidden:
            return None
        return f"… [{self.hidden} bytes of output not shown here: run.log has everything]\n"


def benchmark_env(env: dict[str, str], pass_env: Iterable[str] = ()) -> dict[str, str]:
    """The benchmark's environment: the lane's, without credentials (it never needs the
    agent's API key or cloud credentials; `pass_env` names ones it does need)."""
    return credential_free_env(env, keep=pass_env)


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
    max_metrics_bytes: int | None = None,
    pass_env: Iterable[str] = (),
    prefix: Sequence[str] = (),
) -> BenchmarkResult:
    """Run `command args` in `cwd`; `prefix` goes before the shell (e.g. taskset for a CPU slot)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    log_path = run_dir / "run.log"
    full_command = f"{command} {args}".strip()
    run_env = {**benchmark_env(env, pass_env), "AUTORESEARCH_RUN_DIR": str(run_dir),
               "AUTORESEARCH_METRICS": str(metrics_path), "AUTORESEARCH_RUN_ID": run_id,
               "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    last_activity = started
    status = "ok"
    sample = OutputSample()
    # The pipe is drained at full speed by a thread (a 1 MB pipe, blocking reads, a buffered
    # run.log flushed a few times a second): output never slows the benchmark down.
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, PIPE_READ_BYTES)
    with open(log_path, "ab", buffering=1 << 20) as log_file:
        log_file.write(redact_output(f"$ {full_command}\n".encode()))
        log_file.flush()
        try:
            process = await asyncio.create_subprocess_exec(
                *pdeathsig_prefix(), *prefix, "/bin/sh", "-c", full_command, cwd=str(cwd), env=run_env,
                stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
                start_new_session=True,  # its own process group
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        record_group(run_dir, process.pid)  # a restarted engine reaps exactly this group
        group = read_process(process.pid)
        pump_stop = threading.Event()

        def pump() -> None:
            nonlocal last_activity
            carry = b""  # an unfinished last line: redacted once it is whole
            try:
                while True:
                    if not select.select([read_fd], [], [], 0.5)[0]:
                        if pump_stop.is_set():
                            break  # something outside the group still holds the pipe open
                        continue
                    chunk = os.read(read_fd, PIPE_READ_BYTES)
                    if not chunk:
                        break
                    last_activity = time.monotonic()
                    data = carry + chunk if carry else chunk
                    cut = data.rfind(b"\n") + 1
                    if cut == 0 and len(data) > CARRY_LIMIT:
                        cut = len(data)
                    carry = data[cut:]
                    log_file.write(redact_output(data[:cut]))
                    sample.feed(chunk)
                if carry:
                    log_file.write(redact_output(carry))
            finally:
                os.close(read_fd)

        def show_sample() -> None:
            piece = sample.take()
            if piece and on_output:
                on_output(redact(piece))

        pump_task = asyncio.create_task(asyncio.to_thread(pump))
        metrics_size = -1
        try:
            while process.returncode is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), timeout=SAMPLE_INTERVAL_S)
                log_file.flush()
                show_sample()
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
                elif max_metrics_bytes is not None and size > max_metrics_bytes:
                    status = "metrics_limit"
                if status != "ok":
                    _kill_group(process, group)
                    await process.wait()
                    break
        except asyncio.CancelledError:
            _kill_group(process, group)
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(pump_task), timeout=5)
            pump_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump_task, timeout=5)
            # Whatever the run left in its group (a data loader, a server holding the chips).
            leftovers = await asyncio.to_thread(kill_group, process.pid, group and group.start_ticks)
            with contextlib.suppress(OSError):
                (run_dir / GROUP_RECORD).unlink()
        show_sample()
        note = sample.closing_note()
        if note and on_output:
            on_output(note)
        if leftovers and status == "ok":
            log_file.write(f"\n[autoresearch] stopped {len(leftovers)} processes the run left running: "
                           f"{'; '.join(leftovers)[:2000]}\n".encode())
        if status == "timeout":
            log_file.write(f"\n[autoresearch] killed: exceeded run_timeout_s={timeout_s:g}\n".encode())
        elif status == "cancelled":
            log_file.write(b"\n[autoresearch] killed: the lane is stopping\n")
        elif status == "hung":
            log_file.write(f"\n[autoresearch] killed: no output and no new metrics for "
                           f"{hang_timeout_s:g}s (hang_timeout_s)\n".encode())
        elif status == "metrics_limit":
            log_file.write(f"\n[autoresearch] killed: metrics.jsonl passed {max_metrics_bytes} bytes "
                           "(experiment.max_metrics_mb)\n".encode())
    if status == "ok" and process.returncode != 0:
        status = "crash"
    summary, profile_dir, warnings = await asyncio.to_thread(read_run_summary, metrics_path)
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


def _kill_group(process: asyncio.subprocess.Process, group: ProcessInfo | None) -> None:
    """SIGKILL the benchmark's whole group (its members of this user only)."""
    kill_group(process.pid, group.start_ticks if group else None, rounds=1)
