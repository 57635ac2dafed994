"""The bundled skills (SKILL.md with YAML front matter) and their text, rendered.

Skills live in the installed package's `skills/` folder; this module finds it by path
(two levels above engine/core), so the standalone hooks use the same text the engine does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

SKILL_NAMES = ("autoresearch-loop", "start-experiment", "stop-experiment", "create-retrospective")
_VARIABLE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
CONDENSED_LIMIT = 1800


def skills_root() -> Path:
    """The folder holding one sub-folder per skill (inside the installed package)."""
    return Path(__file__).resolve().parent.parent.parent / "skills"


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


def condensed_program(program: str, limit: int = CONDENSED_LIMIT) -> str:
    """A shorter form for stop-block messages: the non-blank lines, cut at a line near `limit`."""
    text = "\n".join(line for line in program.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1].rsplit("\n", 1)[0] + "\n…"
