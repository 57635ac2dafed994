"""What an edit of autoresearch.toml changes for a running engine, and what it can apply live.

A running engine reloads its config when the file changes (supervisor.Engine watches it).
Live: the [loop] numbers, [tui], a lane's focus, new lanes (started), the benchmark's
command and timeouts, the loop program, the budget cap. Everything else (the repo, the
experiment's name or metric, the agent's model, tools and permissions, a lane's env or
agent, [agent.codex], ...) is fixed for the engine's life or for a lane's agent process: the engine says so, on the
notice and on every answer, until it is restarted.

The config object is shared by the engine, its lanes, their tools and the workspace, so
applying a change is an assignment on that one object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoresearch_tui.engine.config import Config

LIVE_KEYS = {
    "experiment.bench_command", "experiment.run_timeout_s", "experiment.hang_timeout_s",
    "experiment.program", "agent.max_budget_usd",
}
LIVE_SECTIONS = ("loop.", "tui.")
LIVE_LANE_KEYS = ("focus",)


@dataclass
class ConfigChanges:
    applied: list[str] = field(default_factory=list)
    """Dotted keys applied live, each as `key: old → new`."""
    needs_restart: list[str] = field(default_factory=list)
    """Dotted keys whose new value waits for an engine restart."""
    added_lanes: list[str] = field(default_factory=list)
    removed_lanes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.applied or self.needs_restart or self.added_lanes or self.removed_lanes)

    def summary(self) -> str:
        parts = []
        if self.applied:
            parts.append("applied " + "; ".join(self.applied))
        if self.added_lanes:
            parts.append("lanes added and started: " + ", ".join(self.added_lanes))
        if self.needs_restart:
            parts.append("needs an engine restart (`autoresearch-tui stop`, then start): "
                         + ", ".join(self.needs_restart))
        if self.removed_lanes:
            parts.append("lanes no longer in the file (still running; stop them with s): "
                         + ", ".join(self.removed_lanes))
        return "; ".join(parts)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): data}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def diff_configs(old: Config, new: Config, running_lanes: set[str]) -> ConfigChanges:
    changes = ConfigChanges()
    before = _flat(old.model_dump(exclude={"lanes"}))
    after = _flat(new.model_dump(exclude={"lanes"}))
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if key in LIVE_KEYS or key.startswith(LIVE_SECTIONS):
            changes.applied.append(f"{key}: {_shown(before.get(key))} → {_shown(after.get(key))}")
        else:
            changes.needs_restart.append(key)
    old_lanes = {lane.name: lane for lane in old.lanes}
    for lane in new.lanes:
        previous = old_lanes.get(lane.name)
        if previous is None:
            if lane.name not in running_lanes:
                changes.added_lanes.append(lane.name)
            continue
        for key in ("focus", "env", "agent"):
            if getattr(previous, key) != getattr(lane, key):
                dotted = f"lanes.{lane.name}.{key}"
                if key in LIVE_LANE_KEYS:
                    changes.applied.append(f"{dotted}: {_shown(getattr(previous, key))} → "
                                           f"{_shown(getattr(lane, key))}")
                else:
                    changes.needs_restart.append(dotted)
    new_names = {lane.name for lane in new.lanes}
    changes.removed_lanes = [name for name in old_lanes if name not in new_names]
    return changes


def apply_live(config: Config, new: Config, changes: ConfigChanges) -> None:
    """Assign the live values of `new` onto the shared `config` (restart-only ones stay)."""
    config.loop = new.loop
    config.tui = new.tui
    config.agent.max_budget_usd = new.agent.max_budget_usd
    for key in ("bench_command", "run_timeout_s", "hang_timeout_s", "program"):
        setattr(config.experiment, key, getattr(new.experiment, key))
    new_lanes = {lane.name: lane for lane in new.lanes}
    for lane in config.lanes:
        if lane.name in new_lanes:
            lane.focus = new_lanes[lane.name].focus
    for name in changes.added_lanes:
        config.lanes.append(new_lanes[name])
