"""What a re-injection carries besides the loop program: the lane's state and its hypotheses.

A compaction (Claude's or Codex's) summarises the conversation in the model's own words and
can lose the plan; a Codex lane of the seed author's lost its hypothesis queue 116 times this
way. So every program re-injection ends with facts the engine holds on disk: the frontier,
the hypotheses already tried (the ledger's last rows) and the ones queued (the ranked list of
the newest retrospective the agent wrote).
"""

from __future__ import annotations

import re
from pathlib import Path

from autoresearch_tui.engine.core.ledger import compute_frontier, read_ledger
from autoresearch_tui.engine.core.render import figure
from autoresearch_tui.engine.workspace import Workspace

TRIED_ROWS = 8
QUEUE_LIMIT = 1500
_HEADING = re.compile(r"^#{1,4}\s")
_QUEUE_HEADING = re.compile(r"^#{1,4}\s.*\b(next|rank|queue|hypothes)", re.IGNORECASE)


def lane_state_block(workspace: Workspace, lane: str, state_line: str) -> str:
    """The lane's state and hypothesis list, as markdown for the agent."""
    config = workspace.config.experiment
    rows, _warnings = read_ledger(workspace.ledger_path(lane), config.metric)
    frontier = compute_frontier(rows, config.direction, config.metric)
    lines = ["## Lane state (from the engine's ledger)", state_line]
    if frontier.baseline is not None:
        lines.append(f"{config.metric} ({config.direction}): baseline {figure(frontier.baseline)} "
                     f"(run {frontier.baseline_run}), best {figure(frontier.best)} (run {frontier.best_run}"
                     + (f", commit {frontier.best_commit[:12]}" if frontier.best_commit else "") + ")")
    lines.append("\n## Hypotheses tried (newest last)")
    if rows:
        lines += [f"- run {row.get('run_id')}: {row.get('status')} {figure(row.get('metric'))} — "
                  f"{row.get('description', '')}" for row in rows[-TRIED_ROWS:]]
        if len(rows) > TRIED_ROWS:
            lines.append(f"- … {len(rows) - TRIED_ROWS} earlier runs: see the ledger or lane_status")
    else:
        lines.append("- none recorded yet")
    queued = queued_hypotheses(workspace.retrospectives_dir(lane))
    lines.append("\n## Hypotheses queued")
    lines.append(queued or "- none written down yet: keep a ranked list in your next retrospective")
    return "\n".join(lines)


def queued_hypotheses(folder: Path) -> str:
    """The ranked-directions section of the newest retrospective, or ""."""
    try:
        newest = max((p for p in folder.glob("*.md") if p.is_file()), key=lambda p: p.stat().st_mtime)
        text = newest.read_text(encoding="utf-8", errors="replace")
    except (ValueError, OSError):
        return ""
    sections: list[list[str]] = []
    for line in text.splitlines():
        if _HEADING.match(line):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    queued = [section for section in sections if _QUEUE_HEADING.match(section[0])]
    body = "\n".join(queued[-1]).strip() if queued else ""
    if len(body) > QUEUE_LIMIT:
        body = body[:QUEUE_LIMIT].rsplit("\n", 1)[0] + "\n…"
    return f"From {newest.name}:\n{body}" if body else ""
