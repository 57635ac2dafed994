"""The prompts a lane's agent reads: the loop program and the skills, with the lane's variables."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Mapping

from autoresearch_tui.engine.core.skills import render, render_skill, strip_front_matter


def lane_variables(config, workspace, lane: str) -> dict[str, str]:
    """The variables every skill may use, for one lane."""
    lane_config = config.lane(lane)
    focus = lane_config.focus.strip()
    return {
        "lane": lane,
        "experiment": config.experiment.name,
        "metric": config.experiment.metric,
        "direction": config.experiment.direction,
        "bench_command": config.experiment.bench_command,
        "fork": str(workspace.fork_dir(lane)),
        "lane_dir": str(workspace.lane_dir(lane)),
        "ledger": str(workspace.ledger_path(lane)),
        "retrospectives_dir": str(workspace.retrospectives_dir(lane)),
        "date": _dt.date.today().isoformat(),
        "focus": focus,
        "focus_block": f"\n## This lane's focus\n{focus}\n" if focus else "",
        "device_note": device_note(config),
        "evidence_note": evidence_note(config),
    }


def evidence_note(config) -> str:
    """What counts as evidence in this lane: frozen files, confirmation, the check."""
    experiment = config.experiment
    parts = ["Only what the engine measured counts: `record_run` records the value `run_benchmark` "
             "measured and the commit it measured (commit before you run; a run on uncommitted "
             "changes cannot be a keep)."]
    if experiment.frozen:
        parts.append(f"These files are frozen and may not change: {', '.join(f'`{g}`' for g in experiment.frozen)}. "
                     "They define the measurement: a change there changes what is measured, not how fast "
                     "the code is, so edits are denied and runs on a changed frozen file are refused.")
    if experiment.confirm_runs:
        parts.append(f"A keep that would be a new best is re-measured {experiment.confirm_runs} more times, "
                     "alternating with the current best, before it counts: a lucky single run does not.")
    if experiment.check_command.strip():
        parts.append(f"Before a keep counts, `{experiment.check_command}` checks its correctness; a "
                     "failing check makes it a discard.")
    return " ".join(parts)


def device_note(config) -> str:
    """What the agent must know about the accelerator (the loop program's step 5)."""
    shared = ("`run_benchmark` takes a device slot for the run's whole duration and waits for a "
              "free one, so runs of other lanes never overlap yours and skew the numbers.")
    if config.devices.agent_shell_device:
        return shared
    return ("Your own shell has no accelerator (`JAX_PLATFORMS=cpu`, `CUDA_VISIBLE_DEVICES` empty): "
            "anything you run through Bash uses the CPU. `run_benchmark` (with `args`, e.g. "
            "`--profile`) is how to use the accelerator. " + shared)


def loop_program(config, variables: Mapping[str, str]) -> str:
    """The loop instructions: experiment.program if set, else the bundled loop skill."""
    program = config.experiment.program.strip()
    if not program:
        return render_skill("autoresearch-loop", variables)
    path = Path(program).expanduser()
    if not path.is_absolute():
        path = config.workspace / path
    text = render(path.read_text(encoding="utf-8"), variables)
    text = strip_front_matter(text)
    if variables.get("focus_block") and "{{focus_block}}" not in program:
        text += variables["focus_block"]
    return text
