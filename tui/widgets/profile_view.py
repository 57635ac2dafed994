"""The Profile tab: the latest profile summary's category split and top ops."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from autoresearch_tui.engine.core.render import clean


def _bar(pct: float, width: int = 24) -> str:
    filled = int(round(max(0.0, min(100.0, pct)) / 100 * width))
    return "█" * filled + "░" * (width - filled)


def profile_renderable(profile: dict[str, Any] | None):
    if not profile:
        return Text("No profile yet for this lane.\nA run that writes a jax.profiler capture "
                    '(metrics line {"kind": "profile", "dir": ...}) shows its summary here.', style="dim")
    summary = profile.get("summary")
    run_id = profile.get("run_id", "?")
    if not summary:
        error = profile.get("error")
        return Text(f"Profile of run {run_id}: " + (f"could not be summarized: {clean(error)}" if error
                                                    else "summary pending…"), style="dim")
    head = Text()
    head.append(f"Profile of run {run_id}", style="bold")
    head.append(f"  ({summary.get('backend', '?')}, {len(summary.get('devices') or [])} device(s))\n")
    facts = []
    if summary.get("step_time_ms") is not None:
        facts.append(f"step {summary['step_time_ms']:.3g} ms")
    if summary.get("steps") is not None:
        facts.append(f"{summary['steps']} steps")
    if summary.get("busy_pct") is not None:
        facts.append(f"busy {summary['busy_pct']:.1f}%  idle {summary.get('idle_pct') or 0:.1f}%")
    window = f"step window {summary.get('window_ms', 0):.1f} ms"
    if summary.get("capture_ms") is not None:  # summaries from before capture_ms: window only
        window += f" of a {summary['capture_ms']:.1f} ms capture"
    facts.append(f"{window}, op time {summary.get('op_time_ms', 0):.1f} ms")
    head.append("  ".join(facts))

    categories = Table(title="time by category", title_justify="left", box=None, padding=(0, 1))
    categories.add_column("category")
    categories.add_column("ms", justify="right")
    categories.add_column("%", justify="right")
    categories.add_column("")
    for name, data in (summary.get("categories") or {}).items():
        pct = float(data.get("pct") or 0)
        categories.add_row(Text(clean(name)), f"{data.get('ms', 0):.2f}", f"{pct:.1f}", _bar(pct))

    ops = Table(title="top ops (self time)", title_justify="left", box=None, padding=(0, 1))
    ops.add_column("op")
    ops.add_column("category")
    ops.add_column("count", justify="right")
    ops.add_column("ms", justify="right")
    ops.add_column("%", justify="right")
    for op in (summary.get("top_ops") or [])[:15]:
        ops.add_row(Text(clean(op.get("name", "?"))[:60]), Text(clean(op.get("category", ""))),
                    str(op.get("count", "")), f"{op.get('self_ms', 0):.3f}", f"{op.get('pct', 0):.1f}")
    parts: list[Any] = [head, Text(""), categories, Text(""), ops]
    for warning in summary.get("warnings") or []:
        parts.append(Text(f"note: {clean(warning)}", style="yellow"))
    return Group(*parts)


class ProfileView(VerticalScroll):
    DEFAULT_CSS = """
    ProfileView { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._key: Any = object()

    def compose(self):
        yield Static(profile_renderable(None), id="profile-body")

    def show(self, profile: dict[str, Any] | None) -> None:
        key = (None if not profile else (profile.get("run_id"), bool(profile.get("summary"))))
        if key == self._key:
            return
        self._key = key
        self.query_one("#profile-body", Static).update(profile_renderable(profile))
