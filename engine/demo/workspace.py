"""The demo workspace: the bundled JAX example, two lanes, and the scripted model.

A throwaway workspace whose engine starts its own scripted model server (no API key,
nothing leaves the machine). Edits, benchmark runs, ledger rows, stop interceptions and
merges are all real.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from autoresearch_tui.engine.config import ConfigError, load_config
from autoresearch_tui.engine.setup.init_workspace import create_workspace

DEMO_LOOP = """\
[loop]
reinject_every_turns = 8
reinject_every_minutes = 10
retrospective_every_stops = 3
plateau_runs = 6
max_consecutive_blocks = 5
"""


CODEX_LANE = "b"
CODEX_TABLE = """
[agent.codex]
model = "gpt-5.5"                    # the scripted demo answers for any model
"""


def create_demo_workspace(folder: Path | None = None, *, codex: bool = False) -> Path:
    """A workspace whose engine uses the scripted model; returns its config path.

    `codex`: lane b runs the real Codex CLI (against the engine's scripted Responses server)
    beside lane a's Claude Code."""
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="autoresearch-demo-"))
    config_path = folder / "autoresearch.toml"
    if config_path.exists():
        text = config_path.read_text(encoding="utf-8")
        if "scripted_demo = true" not in text:
            raise ConfigError(f"{config_path} exists and is not a demo workspace")
        return config_path
    config_path = create_workspace(folder, lanes=("a", "b"))
    text = config_path.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^\[agent\]\n", "[agent]\nscripted_demo = true               "
                  "# offline demo: the bundled scripted model, no API key\n", text, count=1)
    if "scripted_demo" not in text:
        text += "\n[agent]\nscripted_demo = true\n"
    text = re.sub(r"(?ms)^\[loop\]\n.*?(?=^\[)", DEMO_LOOP + "\n", text, count=1)
    if codex:
        text, found = re.subn(rf'(?m)^(name = "{CODEX_LANE}"\n)', r'\1agent = "codex"                      '
                              "# the Codex CLI, against the scripted Responses server\n", text, count=1)
        if not found:
            raise ConfigError(f"{config_path}: no lane {CODEX_LANE} to run Codex in")
        text += CODEX_TABLE
    config_path.write_text(text, encoding="utf-8")
    load_config(config_path)  # fail here, loudly, if the demo config is wrong
    return config_path
