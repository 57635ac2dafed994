"""The experiment report: wiki/experiment/<experiment>/REPORT.md and progress.png beside it.

Per lane: runs, keep/discard/crash/inconclusive counts, baseline, best, change, noise,
plateau and merges (the lane's `merge` events). The plot shows every lane's metric per run
(kept: filled dots, discarded: crosses, inconclusive: hollow dots), the running best as a
step line, the lane's bests (diamonds) and its merges (a star and a dotted line at the merged
run), on a log axis when the metric spans more than 10x: the picture people want in the
morning. Both files are written atomically.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.core.events import read_events
from autoresearch_tui.engine.core.ledger import compute_frontier, read_ledger
from autoresearch_tui.engine.core.files import atomic_write_bytes, atomic_write_text
from autoresearch_tui.engine.workspace import Workspace


def _fmt(value: float | None, digits: int = 6) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def lane_report_data(workspace: Workspace, lane: str) -> dict[str, Any]:
    cfg = workspace.config.experiment
    rows, warnings = read_ledger(workspace.ledger_path(lane), cfg.metric)
    frontier = compute_frontier(rows, cfg.direction, cfg.metric)
    merges = []
    events_path = workspace.events_path(lane)
    if events_path.exists():
        merges = [e for e in read_events(events_path) if e.get("type") == "merge"]
    return {"lane": lane, "rows": rows, "warnings": warnings, "frontier": frontier,
            "merges": merges}


def render_markdown(workspace: Workspace, lanes: list[dict[str, Any]], plot_name: str) -> str:
    cfg = workspace.config.experiment
    better = "lower" if cfg.direction == "minimize" else "higher"
    out = [
        f"# Experiment {cfg.name}",
        "",
        f"Metric: `{cfg.metric}` ({better} is better). Main repo: `{workspace.main_repo}`, "
        f"target branch `{cfg.target_branch}`.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "",
        f"![progress]({plot_name})",
        "",
        "| lane | runs | keep | discard | crash | inconclusive | baseline | best | change | "
        "noise | runs since best | merges |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for data in lanes:
        f = data["frontier"]
        ok_merges = sum(1 for m in data["merges"] if m.get("ok"))
        noise = "–" if f.noise_pct is None else f"±{f.noise_pct:.1f}%"
        out.append(
            f"| {data['lane']} | {f.runs} | {f.counts['keep']} | {f.counts['discard']} | "
            f"{f.counts['crash']} | {f.counts['inconclusive']} | {_fmt(f.baseline)} | "
            f"{_fmt(f.best)} | {_pct(f.change_pct)} | {noise} | {f.runs_since_best} | {ok_merges} |")
    for data in lanes:
        f = data["frontier"]
        out += ["", f"## Lane {data['lane']}", ""]
        if not data["rows"]:
            out.append("No runs recorded.")
        else:
            out.append(f"- Baseline: {_fmt(f.baseline)} (run {f.baseline_run})")
            best_line = f"- Best: {_fmt(f.best)} (run {f.best_run}"
            if f.best_commit:
                best_line += f", commit `{f.best_commit[:12]}`"
            out.append(best_line + f"), {_pct(f.change_pct)} vs baseline")
            if f.noise_pct is not None:
                out.append(f"- Noise: ±{f.noise_pct:.2f}% (scaled MAD of {f.noise_samples} "
                           f"{f.noise_source})")
            out.append(f"- Runs since the last new best: {f.runs_since_best}")
            kept = [r for r in data["rows"] if f.per_run[r["run_id"]]["new_best"]]
            if kept:
                out += ["", "New bests:", ""]
                for r in kept:
                    verdict = f.per_run[r["run_id"]]
                    flag = " (within noise)" if verdict["within_noise"] else ""
                    out.append(f"- run {r['run_id']}: {_fmt(r['metric'])} "
                               f"({_pct(verdict['delta_vs_best_pct'])} vs previous best){flag} — "
                               f"{r['description'] or '(no description)'}")
        if data["merges"]:
            out += ["", "Merges:", ""]
            for m in data["merges"]:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.get("ts", 0)))
                if m.get("ok") and m.get("merged_commit"):
                    out.append(f"- {when}: merged run {m.get('best_run')} as "
                               f"`{str(m.get('merged_commit'))[:12]}` into "
                               f"{m.get('target_branch')} ({_pct(m.get('change_pct'))})")
                else:
                    out.append(f"- {when}: {m.get('message', 'merge not done')}")
        if data["warnings"]:
            out += ["", f"Ledger warnings ({len(data['warnings'])}):", ""]
            out += [f"- {w}" for w in data["warnings"][:20]]
    return "\n".join(out) + "\n"


LOG_SCALE_SPAN = 10.0
"""A metric spanning more than this factor is plotted on a log axis: one slow baseline must
not squash the interesting range (5-10 ms after a 90 ms start) against the bottom."""


def best_marks(data: dict[str, Any]) -> list[str]:
    """Run ids marked as the lane's bests on the plot: today the ledger's new-best keeps.

    The one place to change when bests are confirmed by re-measurement (issue 12): return
    the confirmed ones, and the plot marks those."""
    frontier = data["frontier"]
    return [row["run_id"] for row in data["rows"]
            if row["status"] == "keep" and frontier.per_run[row["run_id"]]["new_best"]]


def build_figure(workspace: Workspace, lanes: list[dict[str, Any]]):
    """The progress plot as a matplotlib Figure (no pyplot: no global state, thread safe)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    cfg = workspace.config.experiment
    fig = Figure(figsize=(10, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
              "#e377c2", "#7f7f7f", "#bcbd22"]
    values: list[float] = []
    for index, data in enumerate(lanes):
        color = colors[index % len(colors)]
        f = data["frontier"]
        xs_keep, ys_keep, xs_disc, ys_disc, xs_inc, ys_inc = [], [], [], [], [], []
        best_x, best_y, best = [], [], None
        position = {}
        for n, row in enumerate(data["rows"], start=1):
            position[row["run_id"]] = (n, row["metric"])
            value = row["metric"]
            if value is not None and row["status"] != "crash":
                values.append(value)
                target = {"keep": (xs_keep, ys_keep), "discard": (xs_disc, ys_disc)}.get(
                    row["status"], (xs_inc, ys_inc))
                target[0].append(n)
                target[1].append(value)
            if f.per_run[row["run_id"]]["new_best"] or (best is None and row["run_id"] == f.baseline_run):
                best = value
            if best is not None:
                best_x.append(n)
                best_y.append(best)
        label = data["lane"]
        if best_x:
            ax.step(best_x, best_y, where="post", color=color, linewidth=1.8,
                    label=f"{label}: running best")
        if xs_keep:
            ax.scatter(xs_keep, ys_keep, color=color, marker="o", s=36, zorder=3,
                       label=f"{label}: keep")
        if xs_disc:
            ax.scatter(xs_disc, ys_disc, color=color, marker="x", s=30, alpha=0.7, zorder=2,
                       label=f"{label}: discard")
        if xs_inc:
            ax.scatter(xs_inc, ys_inc, facecolors="none", edgecolors=color, marker="o", s=30,
                       zorder=2, label=f"{label}: inconclusive")
        bests = [position[run] for run in best_marks(data) if position[run][1] is not None]
        if bests:
            ax.scatter([x for x, _ in bests], [y for _, y in bests], marker="D", s=70, zorder=4,
                       facecolors="none", edgecolors="black", linewidths=1.2, label=f"{label}: best")
        merged = [position[m["best_run"]] for m in data["merges"]
                  if m.get("ok") and m.get("best_run") in position]
        for n, _ in merged:
            ax.axvline(n, color=color, linestyle=":", linewidth=1.2, zorder=1)
        merged = [(n, y) for n, y in merged if y is not None]
        if merged:
            ax.scatter([x for x, _ in merged], [y for _, y in merged], marker="*", s=220, zorder=5,
                       color=color, edgecolors="black", linewidths=0.6, label=f"{label}: merged")
    better = "lower" if cfg.direction == "minimize" else "higher"
    ax.set_title(f"{cfg.name}: {cfg.metric} per run ({better} is better)")
    ax.set_xlabel("run (per lane)")
    log_axis = bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SCALE_SPAN
    if log_axis:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(f"{cfg.metric} (log scale)" if log_axis else cfg.metric)
    ax.grid(True, alpha=0.3, which="both" if log_axis else "major")
    if values:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no runs with a metric yet", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    return fig


def render_plot(workspace: Workspace, lanes: list[dict[str, Any]], path: Path) -> None:
    buffer = io.BytesIO()
    build_figure(workspace, lanes).savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def write_report(workspace: Workspace) -> Path:
    """Write REPORT.md and progress.png under wiki/experiment/<experiment>/; returns REPORT.md."""
    lanes = [lane_report_data(workspace, lane.name) for lane in workspace.config.lanes]
    folder = workspace.experiment_dir
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "progress.png"
    render_plot(workspace, lanes, plot)
    report = folder / "REPORT.md"
    atomic_write_text(report, render_markdown(workspace, lanes, plot.name))
    return report
