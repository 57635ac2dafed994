"""The engine: supervises every lane of one workspace; one API to control them, one event stream.

Used in the foreground by `autoresearch-tui run` and inside the daemon. Every control
operation returns a short sentence for the user (a refusal is an answer, not an exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.agent.claude import ClaudeSession
from autoresearch_tui.engine.agent.lane import AgentSession, Lane
from autoresearch_tui.engine.allocator import fix_mmap_threshold, release_free_memory
from autoresearch_tui.engine.config import (
    Config, ConfigError, LaneConfig, append_lane, parse_config, valid_lane_name,
)
from autoresearch_tui.engine.config_changes import ConfigChanges, apply_live, diff_configs
from autoresearch_tui.engine.core import ledger, policy
from autoresearch_tui.engine.core.events import Event
from autoresearch_tui.engine.core.lane_state import RUNNING, STOPPED
from autoresearch_tui.engine.core.secrets import register_secrets_from_env
from autoresearch_tui.engine.core.snapshot import FrontierView, LaneSnapshot, LiveMetrics, Snapshot
from autoresearch_tui.engine.devices.host import device_layout
from autoresearch_tui.engine.devices.leases import LeaseManager
from autoresearch_tui.engine.devices.slots import Slot
from autoresearch_tui.engine.environment import engine_environment
from autoresearch_tui.engine.devices.monitoring import lane_chips, load_monitoring, read_device_figures
from autoresearch_tui.engine.repo.merge import merge_lane
from autoresearch_tui.engine.runners.ray_runner import RayRunner
from autoresearch_tui.engine.runs.metrics import MetricsWatcher
from autoresearch_tui.engine.runs.record import FrontierCache
from autoresearch_tui.engine.runs.views import merge_preview, run_details
from autoresearch_tui.engine.workspace import Workspace

log = logging.getLogger(__name__)

LANE_PUSH_S = 0.25
"""How often a changed lane's snapshot is pushed to clients."""


def runner_platform(config: Config) -> str:
    """The platform remote runs must report: [devices] platform when set, else what the
    run asks Ray for (TPU, GPU, or neither: the CPU)."""
    if config.devices.platform != "auto":
        return config.devices.platform
    resources = config.runner.resources
    return "tpu" if "TPU" in resources else "gpu" if "GPU" in resources else "cpu"


class EngineError(Exception):
    """A control request that cannot be carried out (unknown lane, bad name...)."""


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        env: dict[str, str] | None = None,
        backoff_base_s: float = 2.0,
        with_tools: bool = True,
        watchdog_period_s: float = 30.0,
        storage_retry_s: float = 5.0,
    ):
        self.config = config
        self.workspace = Workspace(config)
        # The agent's CLI inherits the engine's environment (keys, base URL, cloud flags).
        self.env = engine_environment(env)
        # Their exact values are redacted from every file and reply from now on.
        register_secrets_from_env(self.env)
        self.backoff_base_s = backoff_base_s
        self.with_tools = with_tools
        self.watchdog_period_s = watchdog_period_s
        self.storage_retry_s = storage_retry_s
        self.lanes: dict[str, Lane] = {}
        self.started_at = time.time()
        self._subscribers: list[Callable[[Event], None]] = []
        self._snapshot_subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._changed_lanes: set[str] = set()
        self.frontiers = FrontierCache(self.workspace)
        self._background: set[asyncio.Task] = set()
        self._stopping = False
        self._watch_stop = asyncio.Event()
        self.watchers: dict[str, Any] = {}
        self.device_figures: dict[str, dict[str, Any]] = {}
        # The host's device slots (a bad [devices] value is a ConfigError before any lane
        # starts) and the one lease manager every engine-run benchmark takes a slot from.
        self.runner: RayRunner | None = None
        if config.runner.kind == "ray":
            # Runs go to the cluster (Ray queues and places them); this host's slots are unused.
            self.devices = None
            self.leases = LeaseManager([Slot(0, (0,), "cpu", whole_host=True)])
            self.platform = runner_platform(config)
            self.runner = RayRunner(config.runner, self.workspace.root, self.workspace.state_dir,
                                    self.workspace.main_repo, env=self.env, on_reaped=self._reaped)
        else:
            self.devices = device_layout(config)
            self.leases = LeaseManager(self.devices.slots)
            self.platform = self.devices.platform
        self.scripted_model = None
        self.scripted_responses = None
        self.codex_provider: dict[str, Any] | None = None
        """A Codex model provider the engine imposes (the scripted demo's); None = the lane's own."""
        self.config_status: dict[str, Any] = {}
        """The last reload of autoresearch.toml: when, what was applied, what needs a restart."""
        if config.agent.scripted_demo:
            self._start_scripted_model()
        for lane_config in config.lanes:
            self._make_lane(lane_config.name)

    def _start_scripted_model(self) -> None:
        """The offline demo: lanes talk to the bundled scripted model, never to a real API."""
        from autoresearch_tui.engine.demo.agent import DemoAgent  # only in demo workspaces
        from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer, cli_env

        self.scripted_model = ScriptedModelServer(script=DemoAgent(self.config), keep_requests=4).start()
        home = self.workspace.state_dir / "demo-home"
        self.env.update(cli_env(home, self.scripted_model.base_url))
        if any(lane.agent == "codex" for lane in self.config.lanes):
            from autoresearch_tui.engine.demo.codex_agent import start_codex_demo_model

            self.scripted_responses, self.codex_provider, key_env = start_codex_demo_model(self.config)
            self.env.update(key_env)

    # ----------------------------------------------------------------- events
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _publish(self, event: Event) -> None:
        lane = event.get("lane")
        if isinstance(lane, str):
            self._changed_lanes.add(lane)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # one broken subscriber must not stop the lanes
                log.exception("event subscriber failed")

    # ----------------------------------------------------------------- lifecycle
    def _make_lane(self, name: str) -> Lane:
        lane = Lane(
            name,
            self.config,
            self.workspace,
            publish=self._publish,
            base_env=self.env,
            backoff_base_s=self.backoff_base_s,
            storage_retry_s=self.storage_retry_s,
            with_tools=self.with_tools,
            ledger_view=self._ledger_view,
            session_factory=self._session_factory,
            leases=self.leases,
            platform=self.platform,
            runner=self.runner,
        )
        self.lanes[name] = lane
        # Its history (already logged) loads in the background once the engine starts: the
        # socket answers first, however much metrics the lane has piled up.
        watcher = MetricsWatcher(name, self.workspace.runs_dir(name), lane.log_event,
                                 metric=self.config.experiment.metric,
                                 max_metrics_bytes=int(self.config.experiment.max_metrics_mb * (1 << 20)))
        self.watchers[name] = watcher
        return lane

    def _session_factory(self, lane: Lane) -> AgentSession:
        """The lane's agent process: Claude Code, or Codex (`[[lanes]] agent`)."""
        if lane.agent == "codex":
            from autoresearch_tui.engine.agent.codex import codex_session  # only where Codex lanes run

            return codex_session(lane, provider=self.codex_provider)
        return ClaudeSession(lane)

    def _ledger_view(self, lane: str) -> policy.LedgerView:
        frontier, _warnings = self.frontiers.get(lane)
        return policy.LedgerView(total_runs=frontier.runs, runs_since_best=frontier.runs_since_best)

    def _in_background(self, coroutine, name: str) -> None:
        """A task that lives until stop(): watchers, the watchdog, the device poller."""
        task = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        fix_mmap_threshold()  # big transient buffers must not fragment a week-long heap
        # What a killed engine left running ends first, all lanes at once, before any
        # lane starts a benchmark that would compete with it for the chips.
        await asyncio.gather(*(lane.end_leftovers() for lane in self.lanes.values()))
        for name in self.lanes:
            self._start_lane(name)
        self._in_background(self._watchdog(self.watchdog_period_s), "watchdog")
        self._in_background(self._push_lane_snapshots(), "lane-snapshots")
        self._in_background(self._watch_config(), "config-watcher")
        if self.runner is not None:
            await self.runner.start()  # connects in the background; the header shows how it goes
            return  # the accelerators are the cluster's, not this host's
        monitoring = await asyncio.to_thread(load_monitoring)
        if monitoring is not None:
            self._in_background(self._poll_device(monitoring), "device")

    async def _poll_device(self, monitoring, period_s: float = 5.0) -> None:
        """TPU duty cycle and HBM per lane (its TPU_VISIBLE_DEVICES chips, else all)."""
        while not self._watch_stop.is_set():
            for name, lane in list(self.lanes.items()):
                lease = self.leases.lane_status(name)
                if lease and lease["state"] == "leased":
                    chips = lease["chips"]  # the slot the lane's run is on
                else:
                    chips = lane_chips(self.config.lane(name).env) if lane._configured() else None
                figures = await asyncio.to_thread(read_device_figures, monitoring, chips)
                if figures:
                    self.device_figures[name] = figures
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._watch_stop.wait(), timeout=period_s)

    async def _watchdog(self, period_s: float = 30.0) -> None:
        """Every running lane must have a live agent or a live benchmark: revive one that
        has neither; nudge one whose agent went quiet; retry writes of lanes on hold."""
        nudged_at: dict[str, float] = {}
        while not self._watch_stop.is_set():
            limit = self.config.loop.idle_nudge_minutes * 60  # a reload may change it
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._watch_stop.wait(), timeout=min(period_s, limit))
            if self._watch_stop.is_set():
                return
            now = time.time()
            for name, lane in list(self.lanes.items()):
                try:
                    if lane.storage_fault is not None:
                        lane.try_recover_storage()
                        continue
                    if lane.state != RUNNING:
                        continue
                    problem = lane.liveness_problem()
                    if problem:
                        await lane.revive(problem)
                        continue
                    idle = lane.idle_seconds(now)
                    # A long benchmark is not idleness; one nudge per quiet period.
                    if not lane.benchmark_running and idle > limit and now - nudged_at.get(name, 0) > limit:
                        nudged_at[name] = now
                        await lane.nudge(idle)
                except Exception:  # the watchdog itself must never die
                    log.exception("watchdog: lane %s", name)
            release_free_memory()  # RSS follows what the engine holds, not its high-water mark

    async def _watch_config(self) -> None:
        """Reload autoresearch.toml whenever it changes (editors replace it: watch its folder)."""
        from watchfiles import awatch

        path = self.config.path
        try:
            async for _changes in awatch(path.parent, stop_event=self._watch_stop, debounce=300,
                                         step=50, recursive=False,
                                         watch_filter=lambda _change, changed: Path(changed).name == path.name):
                try:
                    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    self.reload_config(None, error=f"cannot read {path}: {exc}")
                    continue
                self.reload_config(text)
        except Exception as exc:  # a watch that cannot run: say so once, the engine goes on
            log.warning("not watching %s for changes: %s", path, exc)

    def reload_config(self, text: str | None, *, error: str | None = None) -> ConfigChanges | None:
        """Apply what can be applied live of the config file's new `text`; tell every lane."""
        path = self.config.path
        new = None
        if error is None:
            try:
                new = parse_config(text or "", path)
            except ConfigError as exc:
                error = str(exc)
        if new is None:
            self.config_status = {**self.config_status, "changed_at": time.time(), "error": error}
            self._config_notice(f"{path.name} changed but does not load ({error}); the engine goes "
                                "on with the config it has", error=error)
            return None
        changes = diff_configs(self.config, new, set(self.lanes))
        self.config_status = {"changed_at": time.time(), "error": None, "applied": changes.applied,
                              "needs_restart": changes.needs_restart,
                              "removed_lanes": changes.removed_lanes}
        if not changes:
            return changes  # e.g. the engine's own edit (a lane added with n)
        apply_live(self.config, new, changes)
        for lane in self.lanes.values():
            lane.config_changed()
        for name in changes.added_lanes:
            self._make_lane(name)
            self._start_lane(name)
        self._config_notice(f"{path.name} changed: {changes.summary()}", applied=changes.applied,
                            needs_restart=changes.needs_restart, added_lanes=changes.added_lanes,
                            removed_lanes=changes.removed_lanes)
        return changes

    def _config_notice(self, message: str, **fields: Any) -> None:
        for lane in list(self.lanes.values()):
            lane.emit("config", message=message, **fields)

    def with_config_note(self, answer: str) -> str:
        """An answer, plus what the engine has not applied from an edited config (every answer
        says so until the engine restarts: a refusal may come from the old values)."""
        pending = self.config_status.get("needs_restart")
        if not pending:
            return answer
        return (f"{answer} (note: this engine still runs with the old {', '.join(pending)}: "
                "autoresearch.toml changed them; restart the engine to apply: `autoresearch-tui "
                "stop`, then start)")

    def _start_lane(self, name: str) -> None:
        self.lanes[name].start()
        self._in_background(self.watchers[name].run(self._watch_stop), f"metrics-{name}")

    async def run_until_stopped(self, duration: float | None = None,
                                stop_event: asyncio.Event | None = None) -> None:
        await self.start()
        stop_event = stop_event or asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=duration)
        await self.stop()

    async def stop(self) -> None:
        """Stop every lane gracefully (sessions stay resumable) and flush all logs."""
        if self._stopping:
            return
        self._stopping = True
        self._watch_stop.set()
        self.leases.close("the engine is stopping")  # queued runs give up; running ones end with their lanes
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(lane.stop() for lane in self.lanes.values()), return_exceptions=True)
        if self.runner is not None:
            await self.runner.close()
        if self.scripted_model is not None:
            self.scripted_model.stop()
        if self.scripted_responses is not None:
            self.scripted_responses.stop()

    # ----------------------------------------------------------------- the engine API
    def lane(self, name: str) -> Lane:
        try:
            return self.lanes[name]
        except KeyError:
            raise EngineError(f"no lane named {name!r} (lanes: {', '.join(self.lanes)})") from None

    def pause(self, lane: str) -> str:
        return self.with_config_note(self.lane(lane).pause())

    def resume(self, lane: str) -> str:
        return self.with_config_note(self.lane(lane).resume())

    def retrospective_now(self, lane: str) -> str:
        return self.with_config_note(self.lane(lane).request_retrospective())

    def send_message(self, lane: str, text: str) -> str:
        return self.with_config_note(self.lane(lane).send_message(text))

    async def stop_lane(self, lane: str) -> str:
        target = self.lane(lane)
        if target.state == STOPPED:
            return self.with_config_note(f"lane {lane} is already stopped")
        await target.stop(by_user=True)
        return self.with_config_note(
            f"lane {lane} stopped (it stays stopped, also after an engine restart, until resumed)")

    def add_lane(self, name: str, focus: str = "") -> str:
        if not valid_lane_name(name):
            raise EngineError(f"invalid lane name {name!r}: up to 40 letters, digits, '-', '_' and '.'")
        if len(focus) > 20000 or "\x00" in focus:
            raise EngineError("invalid focus: at most 20000 characters, no NUL byte")
        if name in self.lanes:
            raise EngineError(f"lane {name!r} already exists")
        # Recorded in autoresearch.toml (edited in place) so a restart keeps the lane.
        try:
            append_lane(self.config.path, name, focus)
            recorded = f"recorded in {self.config.path.name}"
        except ConfigError as exc:
            log.warning("%s", exc)
            recorded = f"for this engine's life only: {exc}"
        self.config.lanes.append(LaneConfig(name=name, focus=focus))
        self._make_lane(name)
        self._start_lane(name)
        return self.with_config_note(f"lane {name} added ({recorded})")

    async def merge_lane(self, lane: str) -> dict[str, Any]:
        target = self.lane(lane)
        result = await asyncio.to_thread(merge_lane, self.workspace, lane)
        fields = result.event_fields()
        target.emit("merge", **fields)
        if fields.get("message"):
            fields["message"] = self.with_config_note(fields["message"])
        return {"lane": lane, **fields}

    async def merge_preview(self, lane: str) -> dict[str, Any]:
        """What `merge` would do: the metric change and the commits it brings."""
        self.lane(lane)
        return await asyncio.to_thread(merge_preview, self.workspace, lane)

    async def ledger(self, lane: str) -> dict[str, Any]:
        self.lane(lane)
        rows, warnings = await asyncio.to_thread(
            ledger.read_ledger, self.workspace.ledger_path(lane), self.config.experiment.metric)
        frontier = ledger.compute_frontier(rows, self.config.experiment.direction,
                                           self.config.experiment.metric)
        # Each row with its verdict (source, confirmation, within noise, repeat of): the Runs
        # tab shows the evidence as the ledger's own reader judged it.
        return {"rows": [{**{k: v for k, v in r.items() if k != "line"},
                          "verdict": frontier.per_run.get(r["run_id"])} for r in rows],
                "frontier": frontier.to_dict(self.config.loop.plateau_runs), "warnings": warnings}

    async def run_details(self, lane: str, run_id: str) -> dict[str, Any]:
        self.lane(lane)
        return await asyncio.to_thread(run_details, self.workspace, lane, run_id)

    def lane_snapshot(self, name: str) -> LaneSnapshot:
        snapshot = self.lanes[name].snapshot()
        try:
            frontier, _warnings = self.frontiers.get(name)
            snapshot.frontier = FrontierView.from_dict(frontier.to_dict(self.config.loop.plateau_runs))
        except Exception as exc:  # a broken ledger shows as an error, not a dead engine
            snapshot.frontier = FrontierView(error=str(exc))
        watcher = self.watchers.get(name)
        if watcher is not None:
            snapshot.metrics = LiveMetrics.from_dict(watcher.snapshot())
        snapshot.device = self.device_figures.get(name)  # absent (not zero) where nothing reports
        # waiting (its place in line, or queued on the cluster), leased (slot or node), or None
        snapshot.lease = (self.runner.lane_status(name) if self.runner is not None
                          else self.leases.lane_status(name))
        return snapshot

    def devices_snapshot(self) -> dict[str, Any] | None:
        """Per slot leased or free, which lane, since when; the queue; the host's busy share
        (None when runs go to a cluster: see `cluster`)."""
        if self.devices is None:
            return None
        return {**self.devices.to_dict(), **self.leases.status()}

    def _reaped(self, reaped: dict[str, Any]) -> None:
        """What a previous engine left on the cluster and the runner just killed: say so in
        the lanes it belonged to (actor names and worker folders start with "<lane>.<run_id>")."""
        for lane in self.lanes.values():
            mine = [item for item in reaped.get("actors", []) + reaped.get("processes", [])
                    if item.startswith(f"{lane.name}.")]
            if mine:
                lane.emit("warning", where="runner", message="killed on the cluster what a previous engine "
                          "left running: " + "; ".join(mine[:10]))

    def snapshot(self) -> dict[str, Any]:
        lanes = {name: self.lane_snapshot(name) for name in self.lanes}
        return Snapshot(
            workspace=str(self.workspace.root),
            experiment=self.config.experiment.name,
            metric=self.config.experiment.metric,
            direction=self.config.experiment.direction,
            started_at=self.started_at,
            pid=os.getpid(),
            scripted=self.scripted_model is not None,
            config=dict(self.config_status),
            total_cost_usd=round(sum(lane.counters.cost_usd for lane in lanes.values()), 6),
            lanes=lanes,
            devices=self.devices_snapshot(),
            cluster=self.runner.status() if self.runner is not None else None,
        ).to_dict()

    # ----------------------------------------------------------------- lane snapshot pushes
    def subscribe_lane_snapshots(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """`callback(lane_snapshot_dict)` at most every LANE_PUSH_S per lane that changed, so
        clients show the engine's own figures instead of re-deriving them from events."""
        self._snapshot_subscribers.append(callback)
        return lambda: (self._snapshot_subscribers.remove(callback)
                        if callback in self._snapshot_subscribers else None)

    async def _push_lane_snapshots(self) -> None:
        while not self._watch_stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._watch_stop.wait(), timeout=LANE_PUSH_S)
            changed, self._changed_lanes = self._changed_lanes, set()
            if not self._snapshot_subscribers:
                continue
            for name in changed:
                if name not in self.lanes:
                    continue
                data = self.lane_snapshot(name).to_dict()
                for callback in list(self._snapshot_subscribers):
                    try:
                        callback(data)
                    except Exception:
                        log.exception("lane snapshot subscriber failed")
