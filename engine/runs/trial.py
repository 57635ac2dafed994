"""`autoresearch-tui bench [LANE]`: run bench_command once, exactly as a lane would, with
no agent, and say what the engine would read from it.

The run goes through `measure_run` (the lanes' own path: environment, timeouts, hang
detection, metrics reading) in a fresh checkout: a detached `git worktree` of the lane's
fork at its HEAD, or of the main repo's target_branch, with the fork_include files linked in
as in a fork, removed afterwards. The user's checkout and the lanes' forks are never
touched; the run folder is kept under wiki/experiment/<experiment>/_bench/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.core.git import git, resolve_commit
from autoresearch_tui.engine.environment import engine_environment, lane_environment
from autoresearch_tui.engine.repo.forks import link_includes
from autoresearch_tui.engine.runs.benchmark import BenchmarkResult
from autoresearch_tui.engine.devices.host import device_layout
from autoresearch_tui.engine.devices.leases import LeaseManager
from autoresearch_tui.engine.runs.measure import Emit, measure_run
from autoresearch_tui.engine.runs.metrics import MetricsParseError, parse_metrics_line
from autoresearch_tui.engine.runs.record import metrics_from_summary
from autoresearch_tui.engine.workspace import Workspace


class TrialError(Exception):
    """The benchmark cannot be tried; one line saying why and what to do."""


@dataclass
class TrialReport:
    source: str
    """What was measured: "lane a's fork at 1a2b3c4d5e" or "main repo branch master at ..."."""
    result: BenchmarkResult
    metric: str
    value: float | None
    """The configured metric, as record_run would write it to the ledger."""
    records: dict[str, int] = field(default_factory=dict)
    """Metrics records read, by kind (step, summary, profile, others)."""
    malformed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """What to add so the engine can measure a run, one sentence each."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result.status == "ok" and self.value is not None


def _checkout(workspace: Workspace, lane: str | None) -> tuple[Path, str, str]:
    """(repository, full commit, what it is) to check out."""
    if lane is not None:
        fork = workspace.fork_dir(lane)
        if not (fork / ".git").exists():
            raise TrialError(f"lane {lane} has no fork yet ({fork}): start the engine once, or run "
                             "`autoresearch-tui bench` without a lane to try the main repo")
        commit = resolve_commit(fork, "HEAD")
        if commit is None:
            raise TrialError(f"lane {lane}'s fork has no commit at HEAD")
        return fork, commit, f"lane {lane}'s fork at {commit[:10]}"
    repo = workspace.main_repo
    branch = workspace.config.experiment.target_branch
    commit = resolve_commit(repo, f"refs/heads/{branch}")
    if commit is None:
        raise TrialError(f"experiment.target_branch {branch!r} is not a branch of {repo}: set it "
                         "to the branch your code is on")
    return repo, commit, f"main repo branch {branch} at {commit[:10]}"


def _add_worktree(repo: Path, commit: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="autoresearch-bench-"))
    git(repo, "worktree", "add", "--detach", "--quiet", str(folder), commit)
    return folder


def _remove_worktree(repo: Path, folder: Path) -> None:
    git(repo, "worktree", "remove", "--force", str(folder), check=False)
    shutil.rmtree(folder, ignore_errors=True)
    git(repo, "worktree", "prune", check=False)


def _allocate(runs: Path) -> tuple[str, Path]:
    runs.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in runs.iterdir() if p.name.isdigit()]
    number = max(numbers, default=0) + 1
    while True:
        run_id = f"{number:04d}"
        try:
            os.mkdir(runs / run_id)
            return run_id, runs / run_id
        except FileExistsError:
            number += 1


def read_records(path: Path) -> tuple[dict[str, int], list[str], dict[str, Any] | None]:
    """(records by kind, malformed lines, the last summary) of a run's metrics.jsonl."""
    counts: dict[str, int] = {}
    malformed: list[str] = []
    summary = None
    try:
        handle = open(path, "rb")
    except OSError:
        return counts, malformed, None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = parse_metrics_line(line.rstrip(b"\n"))
            except MetricsParseError as exc:
                malformed.append(f"line {number}: {exc}")
                continue
            kind = record["kind"]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "summary":
                summary = record
    return counts, malformed, summary


def summary_example(metric: str) -> str:
    """The smallest summary record that gives `metric`."""
    if metric in ("step_time_ms", "step_time_s"):
        return '{"v": 1, "kind": "summary", "step_time_median_s": <seconds>}'
    return f'{{"v": 1, "kind": "summary", "{metric}": <value>}}'


def _missing(report: TrialReport, summary: dict[str, Any] | None, wrote_file: bool) -> list[str]:
    metric = report.metric
    example = summary_example(metric)
    if not wrote_file:
        return [f"the run wrote no metrics: append one JSON object per line to the file named by "
                f"$AUTORESEARCH_METRICS, at least a summary: {example}"]
    if summary is None:
        return [f"no summary record: add {example} to $AUTORESEARCH_METRICS when the run ends"]
    if report.value is None:
        field_name = "step_time_median_s" if metric in ("step_time_ms", "step_time_s") else metric
        return [f"no summary record with `{field_name}`: add \"{field_name}\": <value> to the "
                f"summary record ({example})"]
    return []


async def try_benchmark(config: Config, lane: str | None = None, *, args: str = "",
                        emit: Emit, base_env: dict[str, str] | None = None) -> TrialReport:
    """One run of bench_command in a fresh checkout; raises TrialError when it cannot start."""
    workspace = Workspace(config)
    if lane is not None and lane not in {entry.name for entry in config.lanes}:
        raise TrialError(f"no lane {lane!r} (lanes: {', '.join(entry.name for entry in config.lanes)})")
    repo, commit, source = _checkout(workspace, lane)
    folder = _add_worktree(repo, commit)
    notes: list[str] = []
    try:
        if config.runner.kind != "local":
            notes.append(f"[runner] kind = \"{config.runner.kind}\": bench runs on this host, not on the "
                         "cluster (the engine's lanes run there)")
        if link_includes(workspace, lane or "bench", folder, notes):
            notes.append("fork_include files are linked into the checkout, as into a fork")
        env = lane_environment(config, workspace, lane, engine_environment(base_env))
        # This process is not the engine: it leases from its own manager, so the run gets its
        # slot's environment and the fallback check, but does not queue behind the lanes.
        devices = device_layout(config)
        measured = await measure_run(
            config.experiment, leases=LeaseManager(devices.slots), platform=devices.platform,
            lane=lane or "bench", cwd=folder, env=env, emit=emit, args=args,
            allocate=lambda: _allocate(workspace.bench_runs_dir), purpose="bench",
            description=f"autoresearch-tui bench ({source})")
        result = measured.result
        notes.extend(measured.notes)
        if measured.device_problem:
            notes.append(f"not a valid measurement: {measured.device_problem}")
    finally:
        with contextlib.suppress(Exception):
            _remove_worktree(repo, folder)
    metrics_path = Path(result.run_dir) / "metrics.jsonl"
    counts, malformed, summary = read_records(metrics_path)
    report = TrialReport(source=source, result=result, metric=config.experiment.metric,
                         value=metrics_from_summary(summary, config.experiment.metric)["metric"]
                         if summary else None,
                         records=counts, malformed=malformed, notes=notes)
    report.missing = _missing(report, summary, metrics_path.exists())
    return report
