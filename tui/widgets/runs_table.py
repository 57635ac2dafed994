"""The Runs tab: the lane's ledger as a table (Enter opens the run's diff and log)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from autoresearch_tui.engine.core.render import clean
from autoresearch_tui.tui.widgets.lane_card import fmt_number

STATUS_STYLES = {"keep": "green", "discard": "dim", "crash": "red", "inconclusive": "yellow", "repeat": "dim"}
CONFIRMATION_MARKS = {"confirmed": ("✓ confirmed", "bold green"), "rejected": ("✗ not confirmed", "red"),
                      "unconfirmed": ("? unconfirmed", "yellow")}


def evidence(row: dict[str, Any]) -> Text:
    """What a row's number is worth: measured or claimed, confirmed or not, within noise."""
    verdict = row.get("verdict") or {}
    if row.get("kind") == "confirmation":
        return Text(f"re-measure ({row.get('role', '?')})", style="dim")
    if row.get("source") == "claimed":
        return Text("claimed ⚠ unverified", style="bold yellow")
    confirmation = verdict.get("confirmation") or {}
    if confirmation.get("state") in CONFIRMATION_MARKS:
        mark, style = CONFIRMATION_MARKS[confirmation["state"]]
        return Text(mark, style=style)
    if verdict.get("repeat_of"):
        return Text(f"repeat of {verdict['repeat_of']}", style="dim")
    if row.get("status") == "keep" and verdict.get("within_noise"):
        return Text("measured ≈ within noise", style="yellow")
    return Text("measured", style="dim")


def folded(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """Newest first, each candidate's confirmation re-measures folded right under it."""
    under: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("kind") == "confirmation" and row.get("confirms"):
            under.setdefault(str(row["confirms"]), []).append(row)
    out: list[tuple[dict[str, Any], bool]] = []
    experiments = {str(r.get("run_id")) for r in rows if r.get("kind") != "confirmation"}
    for row in reversed(rows):
        if row.get("kind") == "confirmation" and str(row.get("confirms")) in experiments:
            continue
        out.append((row, False))
        out.extend((child, True) for child in under.get(str(row.get("run_id")), []))
    return out


class RunsTable(DataTable):
    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.lane: str | None = None
        self._signature: tuple = ()

    def on_mount(self) -> None:
        self.add_columns("run", "time", "status", "metric", "Δ baseline", "evidence", "commit", "description")

    def show_rows(self, lane: str, rows: list[dict[str, Any]], frontier: dict[str, Any]) -> None:
        signature = (lane, len(rows), rows[-1].get("run_id") if rows else None, frontier.get("best_run"))
        if signature == self._signature:
            return
        self._signature = signature
        # The cursor stays on its run (not its row number) when new runs land above it.
        selected_run = self._run_at_cursor() if self.lane == lane else None
        self.lane = lane
        self.clear()
        baseline = frontier.get("baseline")
        best_run = frontier.get("best_run")
        for row, child in folded(rows):  # newest first, re-measures under their candidate
            value = row.get("metric")
            delta = ""
            if isinstance(value, (int, float)) and isinstance(baseline, (int, float)) and baseline:
                delta = f"{(value - baseline) / abs(baseline) * 100:+.1f}%"
            run_id = str(row.get("run_id", ""))
            status = str(row.get("status", ""))
            shown_id = f"  └ {run_id}" if child else run_id + (" ★" if run_id == best_run else "")
            self.add_row(
                Text(shown_id, style="dim" if child else ("bold" if run_id == best_run else "")),
                Text(str(row.get("ts", ""))[11:19]),
                Text(status, style=STATUS_STYLES.get(status, "")),
                Text(fmt_number(value), style="dim" if child else ""),
                Text(delta),
                evidence(row),
                Text(str(row.get("commit") or "")[:8]),
                Text(clean(row.get("description", ""))[:80]),
                key=run_id,
            )
        if selected_run is not None and selected_run in self.rows:
            self.move_cursor(row=self.get_row_index(selected_run))

    def _run_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # no cell under the cursor (an empty table)
            return None
