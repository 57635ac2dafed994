"""One lane: an agent session in its own fork, guarded by the loop policy.

The lane is agent-neutral. It owns the lane's state, counters and events, the session loop
(turns until the lane stops, retries with backoff, resume by session id), and the guard
decisions an agent's hooks ask for:

- `decide_stop(last_message)`: block (with the continue or retrospective prompt) or allow;
- `after_tool_use()`: text to put into the agent's next request (re-injection, messages);
- `check_write(tool, path, cwd)`: the write guard;
- `note_compaction()`: the program is due again.

An agent adapter (agent/claude.py today) opens one agent process as an async context
manager, runs `turn(prompt)` and `interrupt()`, and reports what the agent does through the
`note_*` methods. lane.json is kept current so a restarted engine resumes the same session
with the same counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from autoresearch_tui.engine.agent.processes import GROUP_RECORD, OWNER_VAR, owner_tag
from autoresearch_tui.engine.agent.processes import alive as process_alive
from autoresearch_tui.engine.agent.prompts import lane_variables, loop_program
from autoresearch_tui.engine.agent.reinjection import lane_state_block
from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.core import policy
from autoresearch_tui.engine.core.events import Event, EventLog, make_event
from autoresearch_tui.engine.core.files import atomic_write_json, describe_write_error
from autoresearch_tui.engine.core.lane_state import (
    IDLE_STATES, NEEDS_ATTENTION, PAUSED, PAUSING, RUNNING, STARTING, STOPPED, STOPPING,
    LaneRecord, LaneRecordError,
)
from autoresearch_tui.engine.core.snapshot import LaneSnapshot
from autoresearch_tui.engine.core.skills import condensed_program, render_skill
from autoresearch_tui.engine.devices.leases import LeaseManager
from autoresearch_tui.engine.devices.slots import Slot
from autoresearch_tui.engine.environment import agent_environment, lane_environment
from autoresearch_tui.engine.runners.ray_runner import RayRunner
from autoresearch_tui.engine.runs.metrics import CACHE_FILENAME, METRICS_FILENAME
from autoresearch_tui.engine.runs.run_info import RUN_INFO
from autoresearch_tui.engine.repo.frozen import is_frozen
from autoresearch_tui.engine.workspace import Workspace

log = logging.getLogger(__name__)


class NeedsUserError(RuntimeError):
    """The agent cannot go on until the user acts (no credentials, say); the message says
    what to do. The lane needs attention at once: retrying would change nothing."""


class AgentSetupError(NeedsUserError):
    """Raised while opening the agent's session (a missing binary, no credentials): no agent
    process runs, so the lane's task ends in needs_attention and resume() starts it again."""


class AgentSession(Protocol):
    """One agent process of a lane (agent/claude.py, agent/codex.py)."""

    async def __aenter__(self) -> "AgentSession": ...
    async def __aexit__(self, *exc_info: Any) -> None: ...
    async def turn(self, prompt: str) -> None: ...
    async def interrupt(self) -> None: ...
    # Optionally `pid: int | None`, the agent's process, which the watchdog checks is alive.


class Lane:
    def __init__(
        self,
        name: str,
        config: Config,
        workspace: Workspace,
        *,
        publish: Callable[[Event], None],
        base_env: dict[str, str] | None = None,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        storage_retry_s: float = 5.0,
        with_tools: bool = True,
        ledger_view: Callable[[str], policy.LedgerView] | None = None,
        session_factory: Callable[["Lane"], AgentSession],
        leases: LeaseManager | None = None,
        platform: str = "cpu",
        runner: RayRunner | None = None,
    ):
        self.name = name
        self.config = config
        self.workspace = workspace
        self.settings = policy.LoopSettings.from_object(config.loop)
        self._publish = publish
        self._base_env = dict(base_env or {})
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._storage_retry_s = storage_retry_s
        self.with_tools = with_tools
        """Whether the agent gets the engine's tools (agent/tools.py)."""
        self._ledger_view = ledger_view or (lambda lane: policy.LedgerView())
        self._session_factory = session_factory
        self.leases = leases or LeaseManager([Slot(0, (0,), platform, whole_host=True)])
        """The engine's one lease manager: every benchmark this lane runs takes a slot from it."""
        self.platform = platform
        """The platform the lane's runs must report (fallback detection)."""
        self.runner = runner
        """[runner] kind = "ray": the cluster the lane's benchmarks run on (None: this host's slots)."""

        workspace.lane_dir(name).mkdir(parents=True, exist_ok=True)
        self.events = EventLog(workspace.events_path(name))
        self.storage_fault: str | None = None
        """Why the lane's own files cannot be written now ("disk full at ..."), else None."""
        self.failed_saves = 0
        self._resume_after_fault: str | None = None
        self._recovery: asyncio.Task | None = None
        self.record = self._load_record()
        if self.record.agent != self.agent:
            if self.record.session_id:
                self.events.append(make_event(
                    self.name, "warning", where="agent",
                    message=f"the lane now runs {self.agent} (it ran {self.record.agent}): a new session "
                            "starts; the fork, ledger and runs carry over"))
            self.record.session_id = None
            self.record.agent = self.agent
        self.variables = lane_variables(config, workspace, name)
        self.program = loop_program(config, self.variables)

        self._session: AgentSession | None = None
        self._wake = asyncio.Event()
        self._pending_messages: list[str] = []
        self._last_assistant_text = ""
        self._tool_names: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._in_turn = False
        self._why_continue = "resumed"
        self.benchmark_running = False
        self._dead_agent_checks = 0
        self._revived = False
        self.api_retry: dict[str, Any] | None = None
        """While the agent's CLI retries the API: attempt, max_retries, delay_s, error, message."""
        self.interrupted = False
        """True while a turn the engine interrupted winds down (its error result is ours)."""

    def _load_record(self) -> LaneRecord:
        """lane.json, or a fresh record when it is unusable (the bad file is kept aside)."""
        path = self.workspace.lane_json(self.name)
        try:
            return LaneRecord.load(path, self.name)
        except LaneRecordError as exc:
            kept = path.with_name(f"lane.json.bad-{time.strftime('%Y%m%dT%H%M%S')}")
            with contextlib.suppress(OSError):
                os.replace(path, kept)
            self.events.append(make_event(
                self.name, "warning", where="lane.json",
                message=f"{path} was unusable ({exc}); kept as {kept.name}, the lane starts fresh "
                        "(its ledger and runs are untouched)"))
            return LaneRecord(name=self.name)

    # ----------------------------------------------------------------- events & state
    @property
    def state(self) -> str:
        return self.record.state

    @property
    def agent(self) -> str:
        """"claude" or "codex" (`[[lanes]] agent`)."""
        return self.config.lane(self.name).agent if self._configured() else "claude"

    def emit(self, type: str, **fields: Any) -> Event:
        event = self._log(make_event(self.name, type, **fields))
        self.record.last_activity = event["ts"]
        return event

    def log_event(self, event: Event) -> None:
        """Log and publish an event made elsewhere (metrics watcher, benchmark runner)."""
        self._log(event)

    def _log(self, event: Event) -> Event:
        """Write and publish one event. Never raises: a disk that refuses the write puts
        the lane on hold until it accepts writes again (see _storage_failed)."""
        written = self.events.append(event)
        if self.events.error is not None:
            self._storage_failed(self.events.error, self.events.path)
        self._publish(written)
        return written

    def set_state(self, state: str, reason: str = "") -> None:
        if state == self.record.state:
            return
        previous = self.record.state
        self.record.state = state
        if state == NEEDS_ATTENTION:
            self.record.needs_attention_reason = reason
        elif previous == NEEDS_ATTENTION:
            self.record.needs_attention_reason = ""
        self.save()
        self.emit("lane_state", state=state, previous=previous, reason=reason)

    def save(self) -> bool:
        """Write lane.json; False (and the lane on hold) when the disk refuses it."""
        path = self.workspace.lane_json(self.name)
        try:
            atomic_write_json(path, self.record.to_dict())
        except OSError as exc:
            self.failed_saves += 1
            self._storage_failed(exc, path)
            return False
        return True

    # ----------------------------------------------------------------- a disk that refuses writes
    def _storage_failed(self, exc: OSError, path: Path) -> None:
        """The lane's events or lane.json could not be written (ENOSPC, EIO...).

        The lane must not die of it: it is put in needs_attention ("disk full at ..."), the
        agent is interrupted (its work could not be recorded), and writes are retried every
        few seconds; once they succeed the lane goes on by itself (try_recover_storage)."""
        if self.storage_fault is not None:
            return
        self.storage_fault = describe_write_error(exc, path)
        log.warning("lane %s: %s; the lane waits and retries every %gs",
                    self.name, self.storage_fault, self._storage_retry_s)
        if self.state in (RUNNING, STARTING, PAUSING):
            self._resume_after_fault = RUNNING if self.state != PAUSING else PAUSED
            self.set_state(NEEDS_ATTENTION, self.storage_fault)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the watchdog retries
        if self._recovery is None or self._recovery.done():
            self._recovery = loop.create_task(self._retry_storage(), name=f"lane-{self.name}-storage")
        if self._in_turn:
            loop.create_task(self._interrupt(timeout=10))

    async def _retry_storage(self) -> None:
        while self.storage_fault is not None:
            await asyncio.sleep(self._storage_retry_s)
            self.try_recover_storage()

    def try_recover_storage(self) -> bool:
        """Retry the writes that failed; True when the lane's files are writable again."""
        if self.storage_fault is None:
            return True
        if not self.events.retry():
            return False
        try:
            atomic_write_json(self.workspace.lane_json(self.name), self.record.to_dict())
        except OSError:
            return False
        fault, self.storage_fault = self.storage_fault, None
        lost = self.events.lost
        note = f"; {lost} events could not be written and are lost" if lost else "; no event was lost"
        log.warning("lane %s: writes work again after: %s%s", self.name, fault, note)
        resume, self._resume_after_fault = self._resume_after_fault, None
        if resume and self.state == NEEDS_ATTENTION and self.record.needs_attention_reason == fault:
            self._why_continue = f"the lane was on hold ({fault}); writes work again"
            self.set_state(resume, f"writes work again after: {fault}{note}")
            self._wake.set()
        else:
            self.emit("warning", where="storage", message=f"writes work again after: {fault}{note}")
        return True

    def snapshot(self) -> LaneSnapshot:
        """The lane's own part of its snapshot (the engine adds frontier, metrics, device)."""
        record = self.record
        running = record.state in (STARTING, RUNNING, PAUSING)
        return LaneSnapshot(
            **LaneRecord.from_dict(record.to_dict(), self.name).__dict__,  # a copy, not the live record
            # A stopped or paused lane has no injection coming: no countdown.
            next_injection=policy.next_injection(record.policy, self.settings, time.time()) if running else None,
            fork=str(self.workspace.fork_dir(self.name)),
            focus=self.config.lane(self.name).focus if self._configured() else "",
            model=(self.config.agent.codex.model if self.agent == "codex" else self.config.agent.model) or "",
            storage={"fault": self.storage_fault, "lost_events": self.events.lost,
                     "pending_events": self.events.pending, "failed_saves": self.failed_saves},
            api_retry=dict(self.api_retry) if self.api_retry else None,
        )

    def config_changed(self) -> None:
        """The shared config got live changes (config_changes.apply_live): pick them up."""
        self.settings = policy.LoopSettings.from_object(self.config.loop)
        if not self._configured():
            return
        self.variables = lane_variables(self.config, self.workspace, self.name)
        try:
            self.program = loop_program(self.config, self.variables)
        except OSError as exc:  # a program file that cannot be read: keep the one in use
            self.emit("warning", where="config", message=f"the loop program cannot be read ({exc}); "
                      "the lane keeps the one it had")

    def _configured(self) -> bool:
        return any(lane.name == self.name for lane in self.config.lanes)

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    # ----------------------------------------------------------------- control (engine API)
    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self._run(), name=f"lane-{self.name}")
        return self._task

    def pause(self) -> str:
        if self.state in (PAUSED, STOPPED, STOPPING):
            return f"lane {self.name} is already {self.state}"
        self.record.user_hold = PAUSED  # saved by set_state; kept across restarts
        if self._in_turn:
            self.set_state(PAUSING, "paused by the user")
            return f"lane {self.name} pausing: the agent may stop at the end of its current step"
        self.set_state(PAUSED, "paused by the user")
        return f"lane {self.name} paused"

    def resume(self) -> str:
        if self.state in (RUNNING, STARTING):
            return f"lane {self.name} is already running"
        if self.state == STOPPING:
            return f"lane {self.name} is stopping; resume it once it has stopped"
        if self.storage_fault is not None and not self.try_recover_storage():
            return (f"lane {self.name} is on hold: {self.storage_fault}; it goes on by itself "
                    "once its files can be written")
        self.record.counters.consecutive_failures = 0
        self.record.user_hold = ""
        self.set_state(RUNNING, "resumed by the user")
        self._wake.set()
        if self._task is None or self._task.done():  # stopped, or never got a session going
            self.start()
        return f"lane {self.name} resumed"

    def request_retrospective(self) -> str:
        self.record.policy.retrospective_requested = True
        self.save()
        self.emit("retrospective", phase="requested", reason="requested by the user")
        if self.state in IDLE_STATES and self.state != STOPPED:
            self.resume()
        return f"retrospective queued for lane {self.name}: delivered at the agent's next step"

    def send_message(self, text: str) -> str:
        text = text.strip()
        if not text:
            return "empty message not sent"
        self._pending_messages.append(text)
        self.emit("user_message", text=text, delivery="queued")
        if self.state in IDLE_STATES and self.state != STOPPED:
            self.resume()
        return f"message queued for lane {self.name}"

    def idle_seconds(self, now: float | None = None) -> float:
        return (now or time.time()) - (self.record.last_activity or self.record.created_at)

    async def nudge(self, idle_s: float) -> None:
        """A running lane went silent: interrupt the stuck turn and continue the loop."""
        idle = f"{idle_s / 60:.0f} minutes" if idle_s >= 90 else f"{idle_s:.0f} s"
        reason = f"no activity for {idle} while running"
        self._why_continue = f"nudged: {reason}"
        # Not activity: a lane that only gets nudged must keep looking idle.
        self._log(make_event(self.name, "injection", kind="nudge", reason=reason))
        await self._interrupt(timeout=10)

    async def _interrupt(self, timeout: float) -> None:
        session = self._session
        if session is not None and self._in_turn:
            self.interrupted = True  # the error result that follows is ours, not a failure
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.interrupt(), timeout=timeout)

    async def stop(self, timeout: float = 20.0, *, by_user: bool = False) -> None:
        """Stop now: interrupt the agent's turn and close the session (resumable later).

        `by_user`: the user stopped this lane (not the engine stopping): it stays stopped
        across engine restarts until the user resumes it.

        The session is closed by leaving its `async with` normally: cancelling the task
        instead can abort the SDK's close before it kills the CLI, leaving an orphaned agent
        working (and spending) on its own. Whatever still runs in the lane's folder
        afterwards is terminated.
        """
        from autoresearch_tui.engine.agent.processes import end_lane_processes

        if by_user:
            self.record.user_hold = STOPPED
            self.save()
        if self.state != STOPPED:
            self.set_state(STOPPING, "stop requested by the user" if by_user else "stop requested")
        self.leases.cancel(self.name, f"lane {self.name} is stopping")  # a queued run leaves the queue
        self._wake.set()
        await self._interrupt(timeout=5)
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self.emit("warning", where="stop", message=f"the session did not close within {timeout:.0f}s")
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=5)
        if self.runner is not None and not await self.runner.wait_lane_idle(self.name):
            self.emit("warning", where="runner", message="the lane's run on the cluster was not reported "
                      "gone in time; the cluster may still be stopping it")
        leftovers = await asyncio.to_thread(end_lane_processes, self.workspace.lane_dir(self.name))
        if leftovers:
            self.emit("warning", where="stop", message="terminated processes left in the lane: "
                      + "; ".join(leftovers))
        self.set_state(STOPPED, "stopped by the user" if self.record.user_hold == STOPPED else "stopped")
        self.save()
        self.events.close()

    # ----------------------------------------------------------------- liveness (the watchdog)
    def liveness_problem(self) -> str | None:
        """Why a running lane has neither a live agent nor a live benchmark, else None.

        Between sessions (starting, backing off after a failure) there is legitimately no
        agent; a session whose agent process is gone for two checks in a row is dead."""
        if self._task is None or self._task.done():
            return "the lane's task had ended"
        session = self._session
        if self.benchmark_running or session is None:
            self._dead_agent_checks = 0
            return None
        pid = getattr(session, "pid", None)
        if pid is None or process_alive(pid):
            self._dead_agent_checks = 0
            return None
        self._dead_agent_checks += 1
        return f"the agent process (pid {pid}) is gone" if self._dead_agent_checks >= 2 else None

    async def revive(self, reason: str) -> None:
        """Restart a running lane that has no live agent and no live benchmark."""
        log.warning("lane %s: %s: restarting it", self.name, reason)
        self.emit("warning", where="watchdog", message=f"{reason}: the lane is restarted")
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=10)
        self._session = None
        self._in_turn = False
        self._dead_agent_checks = 0
        self.record.counters.restarts += 1
        self._why_continue = f"the engine's watchdog restarted the lane: {reason}"
        self._revived = True
        self.start()

    # ----------------------------------------------------------------- the session loop
    async def _run(self) -> None:
        """The lane's task. It never ends with an exception: whatever escapes the session
        loop is logged and flags the lane (the engine's watchdog revives a running lane
        whose task is gone)."""
        try:
            await self._run_lane()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("lane %s: the lane's task failed", self.name)
            self.emit("error", where="lane", message=_describe_exception(exc))
            self.set_state(NEEDS_ATTENTION, f"internal error: {_describe_exception(exc)}")

    async def _run_lane(self) -> None:
        # A new start (engine restart or the user's resume) counts failures afresh.
        self.record.counters.consecutive_failures = 0
        await self._close_interrupted_run()
        if self.record.user_hold == STOPPED:  # the user's stop outlives the engine
            reason = "stopped by the user: resume the lane to continue"
            if self.state == STOPPED:
                self.emit("lane_state", state=STOPPED, previous=STOPPED, reason=reason)
            self.set_state(STOPPED, reason)
            self.save()
            return
        try:
            await self._prepare_fork()
        except Exception as exc:  # a lane that cannot start must not take the engine down
            self.emit("error", where="fork", message=str(exc))
            self.set_state(NEEDS_ATTENTION, f"could not create the fork: {exc}")
            return
        resumed = self.record.session_id is not None
        # The user's pause survives restarts, and so does a needs_attention the engine never
        # got to stop (kill -9); a graceful restart gives a needs_attention lane a new try.
        if self.record.user_hold == PAUSED:
            self.set_state(PAUSED, "paused by the user: resume the lane to continue")
        elif not (resumed and self.state == NEEDS_ATTENTION):
            self.set_state(RUNNING, "resuming session" if resumed else "starting session")
        if self._revived:
            self._revived = False
            prompt = self._continue_prompt(self._why_continue)
        else:
            prompt = self._resume_prompt() if resumed else self.start_prompt()
        while self.state not in (STOPPING, STOPPED):
            try:
                await self._run_session(prompt)
            except asyncio.CancelledError:
                raise
            except AgentSetupError as exc:
                self.emit("error", where="agent", message=str(exc))
                self.set_state(NEEDS_ATTENTION, f"{self.agent} cannot start: {exc}")
                return  # resume() starts the lane again once the user has fixed it
            except Exception as exc:
                if self.state in (STOPPING, STOPPED):
                    break
                try:
                    await self._after_failure(exc)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the failure handler itself failed: wait, then go on
                    log.exception("lane %s: handling a session failure failed", self.name)
                    await asyncio.sleep(self._backoff_max_s / 10)
                prompt = self._continue_prompt("the agent process failed and was restarted")
            else:
                prompt = self._continue_prompt(self._why_continue)

    async def end_leftovers(self) -> list[str]:
        """End what a previous engine of this lane left running (its tagged processes and
        benchmark process groups), before this lane starts anything."""
        from autoresearch_tui.engine.agent.processes import end_lane_processes

        ended = await asyncio.to_thread(end_lane_processes, self.workspace.lane_dir(self.name))
        if ended:
            self.emit("warning", where="restart",
                      message="stopped processes a previous engine left in this lane: " + "; ".join(ended))
        return ended

    async def _close_interrupted_run(self) -> None:
        """A run the previous engine started and never finished is closed as cancelled."""
        from autoresearch_tui.engine.runs.measure import close_interrupted_run

        found: list[tuple[str, dict]] = []  # read off the loop, reported on it
        try:
            await asyncio.to_thread(close_interrupted_run, self.workspace, self.name,
                                    lambda type, **fields: found.append((type, fields)))
        except Exception as exc:  # a check that failed must not keep the lane from starting
            log.warning("lane %s: checking for an interrupted run failed: %s", self.name, exc)
        for type, fields in found:
            self.emit(type, **fields)

    async def _prepare_fork(self) -> None:
        from autoresearch_tui.engine.repo.forks import prepare_fork  # git work: off the event loop

        await self.end_leftovers()
        info = await asyncio.to_thread(prepare_fork, self.workspace, self.name)
        if info.created:
            self.emit("fork", path=str(info.path), branch=info.branch, linked=info.linked)
        for warning in info.warnings:
            self.emit("warning", where="fork", message=warning)

    async def _run_session(self, first_prompt: str) -> None:
        """One agent process: turns until the lane stops. Paused lanes keep it open, so a
        resume continues the same conversation without starting a new process."""
        async with self._session_factory(self) as session:
            self._session = session
            try:
                prompt: str | None = first_prompt
                while self.state not in (STOPPING, STOPPED):
                    if self.state in IDLE_STATES:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    if prompt is None:
                        prompt = (self._drain_messages_prompt() if self._pending_messages
                                  else self._continue_prompt(self._why_continue))
                    await self._turn(session, prompt)
                    prompt = None
                    # The turn ended: the policy let a stop through (pause, runaway, budget)
                    # or the agent ended it on its own; a running lane simply continues.
                    if self.state == PAUSING:
                        self.set_state(PAUSED, "the agent stopped while pausing")
                    if not self.interrupted:  # a nudge already said why the lane goes on
                        self._why_continue = "resumed" if self.state in IDLE_STATES else "the turn ended"
            finally:
                self._session = None

    async def _turn(self, session: AgentSession, prompt: str) -> None:
        self._in_turn = True
        self.interrupted = False
        self.emit("injection", kind="prompt", reason="turn started", text=prompt)
        try:
            await session.turn(prompt)
        finally:
            self._in_turn = False
            self.save()

    async def _after_failure(self, exc: Exception) -> None:
        counters = self.record.counters
        self.api_retry = None
        if isinstance(exc, NeedsUserError):
            counters.failures += 1
            self.emit("error", where="session", message=str(exc), needs_user=True)
            self.set_state(NEEDS_ATTENTION, str(exc))
            return
        counters.failures += 1
        counters.consecutive_failures += 1
        counters.restarts += 1
        self.emit("error", where="session", message=_describe_exception(exc),
                  consecutive_failures=counters.consecutive_failures)
        if counters.consecutive_failures >= self.config.loop.max_failures:
            self.set_state(NEEDS_ATTENTION,
                           f"{counters.consecutive_failures} failures in a row: {_describe_exception(exc)}")
            return
        delay = min(self._backoff_max_s, self._backoff_base_s * 2 ** (counters.consecutive_failures - 1))
        self.emit("lane_state", state=self.state, previous=self.state,
                  reason=f"retrying in {delay:.1f}s (failure {counters.consecutive_failures})")
        self.save()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wait_for_stop(), timeout=delay)

    async def _wait_for_stop(self) -> None:
        while self.state not in (STOPPING, STOPPED):
            self._wake.clear()
            await self._wake.wait()

    # ----------------------------------------------------------------- what the agent reports
    def note_session(self, session_id: str, *, announce: bool = True) -> None:
        """The agent's session (conversation) id, kept so a restart resumes it."""
        if session_id == self.record.session_id:
            return
        self.record.session_id = session_id
        self.save()
        if announce:
            self.emit("session", session_id=session_id)

    def note_api_retry(self, attempt: int, max_retries: int | None, delay_s: float, error: str) -> None:
        """The agent's CLI could not reach the API and retries: shown as the lane's status
        at once (a lane that only retries is not working, whatever its state says)."""
        of = f"/{max_retries}" if max_retries else ""
        message = f"retrying the API (attempt {attempt}{of}, next in {delay_s:.1f}s): {error}"
        self.api_retry = {"attempt": attempt, "max_retries": max_retries, "delay_s": delay_s,
                          "error": error, "message": message, "since": time.time()}
        self.emit("api_retry", attempt=attempt, max_retries=max_retries, delay_s=delay_s,
                  error=error, message=message)

    def note_assistant_turn(self) -> None:
        """The model answered (a real turn, not an error notice): that is progress."""
        self.api_retry = None
        self.record.counters.turns += 1
        self.record.counters.consecutive_failures = 0
        policy.note_assistant_turn(self.record.policy)

    def note_assistant_text(self, text: str) -> None:
        self._last_assistant_text = text
        self.emit("assistant_text", text=text)

    def note_tool_call(self, tool: str, call_id: str, tool_input: Any, **extra: Any) -> None:
        self.record.counters.tool_uses += 1
        self._tool_names[call_id] = tool
        if len(self._tool_names) > 256:  # calls are answered in order; old ones are done
            del self._tool_names[next(iter(self._tool_names))]
        self.emit("tool_use", tool=tool, tool_use_id=call_id, input=tool_input, **extra)

    def note_tool_result(self, call_id: str, output: str, *, is_error: bool = False, **extra: Any) -> None:
        """A tool's answer; the event names the tool, so a reader can render it without the call."""
        self.emit("tool_result", tool_use_id=call_id, tool=self._tool_names.pop(call_id, None),
                  is_error=is_error, output=output, **extra)

    def note_tokens(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> None:
        """Tokens one model request used (agents that report tokens, not dollars)."""
        counters = self.record.counters
        counters.input_tokens += max(0, int(input_tokens))
        counters.cached_input_tokens += max(0, int(cached_input_tokens))
        counters.output_tokens += max(0, int(output_tokens))

    def budget_spent(self) -> bool:
        """Whether the lane's cost reached max_budget_usd (0 = no cap)."""
        cap = self.config.agent.max_budget_usd
        return bool(cap) and self.record.counters.cost_usd >= cap

    def note_cost(self, turn_cost_usd: float) -> None:
        # The CLI prices tokens as if they were real; a scripted demo model costs nothing.
        if self.config.agent.scripted_demo:
            return
        self.record.counters.cost_usd += turn_cost_usd
        self.emit("cost", turn_cost_usd=turn_cost_usd, total_cost_usd=round(self.record.counters.cost_usd, 6))

    # ----------------------------------------------------------------- guard decisions
    def decide_stop(self, last_message: str | None) -> str | None:
        """The agent tries to end its turn: the block message to send it, or None to allow."""
        last = last_message or self._last_assistant_text
        if self.storage_fault is not None:
            reason = f"{self.storage_fault}: the agent waits until the lane's files can be written"
            self.emit("stop_allowed", kind="paused", reason=reason)
            return None
        spent = self.budget_spent()
        view = self._safe_ledger_view()  # read once: the decision and the message share it
        decision = policy.decide_stop(
            self.record.policy,
            self.settings,
            policy.StopContext(lane_state=self.state, last_assistant_message=last or "",
                               budget_spent=spent, ledger=view),
        )
        if not decision.blocks:
            self.emit("stop_allowed", kind=decision.kind, reason=decision.reason)
            if decision.needs_attention or decision.kind == "budget":  # a spent budget must stop spending
                self.set_state(NEEDS_ATTENTION, decision.reason)
            self.save()
            return None
        message = self._block_message(decision, view)
        self.emit("stop_blocked", kind=decision.kind, reason=decision.reason,
                  stops_blocked=self.record.policy.stops_blocked, message=message)
        if decision.kind == "retrospective":
            self.emit("retrospective", phase="started", reason=decision.reason)
        self.save()
        return message

    def after_tool_use(self) -> str | None:
        """After each tool call: what to add to the agent's next request, if anything."""
        policy.note_tool_use(self.record.policy)
        return self.context_due()

    def context_due(self) -> str | None:
        """What the agent should read now: the user's messages, a requested retrospective, the
        program when re-injection is due (schedule or compaction). Counts no tool use: an
        agent whose turn boundary the engine owns (Codex) asks after a compaction too."""
        state = self.record.policy
        parts = []
        messages = self._take_pending_messages()
        if messages:
            parts.append(messages)
        if policy.take_requested_retrospective(state):
            self.emit("retrospective", kind="retrospective", phase="started",
                      reason="requested by the user (delivered after a tool call)")
            parts.append("[autoresearch] The user asks for a retrospective now.\n\n"
                         + render_skill("create-retrospective", self.variables))
        reason = policy.injection_due(state, self.settings, time.time())
        if reason:
            policy.mark_injected(state, time.time())
            self.emit("injection", kind="program", reason=reason)
            parts.append("[autoresearch] Reminder of the loop program you are running "
                         f"({reason}):\n\n{self.program}\n\n{self._lane_state_block()}")
        self.save()
        return "\n\n".join(parts) if parts else None

    def check_write(self, tool: str, raw_path: str, cwd: Path | None) -> str | None:
        """The write guard: None when `tool` may write `raw_path`, else the reason it may not.

        The agent may write its fork, retrospectives/, notes of its own in the lane folder
        and files under a run folder; never outside the lane folder, and never the files the
        engine keeps there (engine_owned), nor the frozen files in the fork."""
        base = cwd or self.workspace.fork_dir(self.name)
        target = Path(raw_path).resolve() if os.path.isabs(raw_path) else (base / raw_path).resolve()
        allowed = self.workspace.lane_dir(self.name).resolve()
        if target == allowed or allowed in target.parents:
            owned = engine_owned(target.relative_to(allowed).parts)
            if owned is None:
                return self._check_frozen(tool, target)
            reason = (f"autoresearch write guard: {tool} to {target} is refused: the engine keeps that "
                      f"file ({owned}). Report runs with record_run; keep notes in "
                      f"{self.workspace.retrospectives_dir(self.name)} or your fork.")
        else:
            reason = (f"autoresearch write guard: {tool} to {target} is outside this lane's folder "
                      f"{allowed}. Edit files in your fork {self.workspace.fork_dir(self.name)} only.")
        self.emit("tool_denied", tool=tool, path=str(target), reason=reason)
        return reason

    def _check_frozen(self, tool: str, target: Path) -> str | None:
        frozen = self.config.experiment.frozen
        fork = self.workspace.fork_dir(self.name).resolve()
        if not frozen or fork not in target.parents:
            return None
        relative = target.relative_to(fork).as_posix()
        if not is_frozen(relative, frozen):
            return None
        reason = (f"autoresearch write guard: {relative} is frozen ([experiment] frozen = "
                  f"{list(frozen)}): these files define how runs are measured, so changing them would "
                  "change the measurement, not the code being measured. Change the workload instead.")
        self.emit("tool_denied", tool=tool, path=str(target), reason=reason)
        return reason

    def note_compaction(self) -> None:
        policy.note_compaction(self.record.policy)
        self.emit("injection", kind="scheduled", reason="context compaction: the program is due again")
        self.save()

    # ----------------------------------------------------------------- prompts & messages
    def agent_env(self) -> dict[str, str]:
        """The environment of the agent's CLI (and so of its Bash tool).

        Unless `[devices] agent_shell_device` is true, the agent's own shell sees no
        accelerator: only leased runs (`run_env`) do."""
        return self._owned(agent_environment(self.config, self.workspace, self.name, self._base_env))

    def run_env(self) -> dict[str, str]:
        """The environment of the benchmarks the engine runs for this lane (before the slot's
        own variables are added)."""
        return self._owned(lane_environment(self.config, self.workspace, self.name, self._base_env))

    def _owned(self, env: dict[str, str]) -> dict[str, str]:
        # Inherited by every process the lane starts: the only ones the engine ever ends.
        env[OWNER_VAR] = owner_tag(self.workspace.lane_dir(self.name))
        return env

    def _block_message(self, decision: policy.StopDecision, view: policy.LedgerView) -> str:
        messages = self._take_pending_messages()
        if decision.kind == "retrospective":
            body = render_skill("create-retrospective", self.variables)
            head = f"[autoresearch] Do not stop. Time for a retrospective ({decision.reason})."
        else:
            body = condensed_program(self.program)
            head = ("[autoresearch] Do not stop: the loop is still running and the user is away. "
                    "Continue with the next experiment now.")
        return "\n\n".join(filter(None, [head, messages, self._state_line(view), body]))

    def _state_line(self, view: policy.LedgerView | None = None) -> str:
        view = view or self._safe_ledger_view()
        counters = self.record.counters
        return (f"Lane {self.name}: {view.total_runs} runs recorded, {view.runs_since_best} since "
                f"the last new best; {counters.tool_uses} tool uses; "
                f"{self.record.policy.stops_blocked} stops blocked.")

    def _lane_state_block(self) -> str:
        try:
            return lane_state_block(self.workspace, self.name, self._state_line())
        except Exception as exc:  # a broken ledger must never break a hook
            log.warning("lane %s: state block failed: %s", self.name, exc)
            return self._state_line()

    def _safe_ledger_view(self) -> policy.LedgerView:
        try:
            return self._ledger_view(self.name)
        except Exception as exc:  # a broken ledger must never break a hook
            log.warning("lane %s: ledger view failed: %s", self.name, exc)
            return policy.LedgerView()

    def _take_pending_messages(self) -> str:
        if not self._pending_messages:
            return ""
        texts, self._pending_messages = self._pending_messages, []
        for text in texts:
            self.emit("user_message", text=text, delivery="delivered")
        return "\n".join(f"[message from the user] {text}" for text in texts)

    def start_prompt(self) -> str:
        """The first prompt of a new session: the start-experiment skill and the program."""
        return "\n\n".join([
            render_skill("start-experiment", self.variables),
            "## The loop program\n\n" + self.program,
        ])

    def _resume_prompt(self) -> str:
        return self._continue_prompt("the engine restarted; your session was resumed")  # also after a lane stop

    def _continue_prompt(self, why: str) -> str:
        return "\n\n".join(filter(None, [
            f"[autoresearch] Continue the loop ({why}).",
            self._take_pending_messages(),
            self._state_line(),
            condensed_program(self.program),
        ]))

    def _drain_messages_prompt(self) -> str:
        return "\n\n".join([self._take_pending_messages(),
                            "[autoresearch] Then continue the loop."])


def engine_owned(parts: tuple[str, ...]) -> str | None:
    """What the engine keeps at this path inside a lane folder (None: the agent may write it)."""
    if len(parts) == 1:
        name = parts[0]
        if name == "results.tsv" or name.startswith(".results.tsv"):
            return "the lane's ledger"
        if name.startswith("lane.json") or name.startswith(".lane.json"):
            return "the lane's state"
        if fnmatch.fnmatchcase(name, "events*.jsonl") or name.startswith(".events"):
            return "the lane's event log"
    if len(parts) == 3 and parts[0] == "runs":
        if parts[2] == "run.log":
            return "the run's log, written by the engine's benchmark runner"
        if parts[2] == RUN_INFO:
            return "the run's record (how it ended), written by the engine"
        if parts[2] in (METRICS_FILENAME, CACHE_FILENAME, GROUP_RECORD):
            return "the run's measurements, written by the benchmark itself"
    return None


def _describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
