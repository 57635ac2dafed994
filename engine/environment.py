"""The environments the engine gives the processes it starts: its own (inherited by each
lane's agent CLI) and a lane's (every benchmark it runs, before a slot's own variables) and its agent's (the same,
without the accelerator).

One place, so a lane's benchmark and `autoresearch-tui bench` see the same variables.
"""

from __future__ import annotations

import os
import sys

from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.devices.host import AGENT_SHELL_NO_DEVICE


def engine_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: `env` (default: this process's), with this interpreter's
    bin folder on PATH, so `python` in bench_command is the venv's python (the one with jax)
    even when the engine was started as .venv/bin/autoresearch-tui without activating it."""
    out = dict(os.environ if env is None else env)
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in out.get("PATH", "").split(os.pathsep):
        out["PATH"] = os.pathsep.join(filter(None, [bin_dir, out.get("PATH", "")]))
    return out


def lane_environment(config: Config, workspace, lane: str | None, base_env: dict[str, str]) -> dict[str, str]:
    """What a lane's agent CLI and its benchmarks run with: the engine's environment, the
    Bash timeouts raised to run_timeout_s, the lane's folders, and the lane's own `env`.
    `lane` None: no lane (the `bench` command on the main repo)."""
    timeout_ms = str(int(config.experiment.run_timeout_s * 1000))
    env = {
        **base_env,
        # Benchmarks the agent runs through Bash must not die at the CLI's 2-minute default.
        "BASH_DEFAULT_TIMEOUT_MS": timeout_ms,
        "BASH_MAX_TIMEOUT_MS": timeout_ms,
    }
    if lane is None:
        return env
    env.update({
        "AUTORESEARCH_LANE": lane,
        "AUTORESEARCH_LANE_DIR": str(workspace.lane_dir(lane)),
        "AUTORESEARCH_RUNS_DIR": str(workspace.runs_dir(lane)),
    })
    if any(entry.name == lane for entry in config.lanes):
        env.update(config.lane(lane).env)
    return env


def agent_environment(config: Config, workspace, lane: str, base_env: dict[str, str]) -> dict[str, str]:
    """What a lane's agent CLI (and so its Bash tool) runs with: the lane's environment, and,
    unless `[devices] agent_shell_device` is true, no accelerator: a stray `import jax` in
    the agent's shell must not grab the TPU a leased run needs."""
    env = lane_environment(config, workspace, lane, base_env)
    if not config.devices.agent_shell_device:
        env.update(AGENT_SHELL_NO_DEVICE)
    return env
