"""Skills (SKILL.md with YAML front matter) rendered with a lane's variables."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Mapping

SKILL_NAMES = ("autoresearch-loop", "start-experiment", "stop-experiment", "create-retrospective")
_VARIABLE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def skills_root() -> Path:
    """The folder holding one sub-folder per skill (inside the installed package)."""
    import skills

    # The first real folder: works for regular, namespace and editable installs alike.
    return next(Path(p) for p in skills.__path__ if Path(p).is_dir())


def skill_path(name: str) -> Path:
    path = skills_root() / name / "SKILL.md"
    if not path.is_file():
        raise FileNotFoundError(f"no bundled skill named {name!r} ({path})")
    return path


def render(text: str, variables: Mapping[str, str]) -> str:
    """Replace {{name}}; unknown names stay visible rather than silently vanishing."""
    return _VARIABLE.sub(lambda m: str(variables.get(m.group(1), m.group(0))), text)


def strip_front_matter(text: str) -> str:
    return _FRONT_MATTER.sub("", text, count=1).lstrip()


def render_skill(name: str, variables: Mapping[str, str], *, body_only: bool = True) -> str:
    text = render(skill_path(name).read_text(encoding="utf-8"), variables)
    return strip_front_matter(text) if body_only else text


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
    }


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


def condensed_program(program: str, limit: int = 1800) -> str:
    """A shorter form for stop-block messages: the numbered steps and rules, headings kept."""
    keep = [line for line in program.splitlines() if line.strip()]
    text = "\n".join(keep)
    return text if len(text) <= limit else text[: limit - 1].rsplit("\n", 1)[0] + "\n…"
