"""`bench [LANE]`: try the benchmark once, as a lane would run it, with no agent."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from autoresearch_tui.cli.common import config_from_args, config_parent, error
from autoresearch_tui.engine.core.events import tidy_numbers
from autoresearch_tui.engine.core.render import clean, figure


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", parents=[config_parent()],
        help="run bench_command once, as a lane would, and show what the engine reads from it",
        description="Run experiment.bench_command once in a fresh checkout (the lane's fork at its "
        "HEAD, or the main repo's target_branch), with a lane's environment, timeouts and hang "
        "detection, then show the metrics records it wrote, the summary, the metric value and "
        "what is missing. Nothing of yours is changed; the run folder is kept under "
        "wiki/experiment/<experiment>/_bench/.")
    parser.add_argument("lane", nargs="?", metavar="LANE",
                        help="measure this lane's fork (default: the main repo's target_branch)")
    parser.add_argument("--args", default="", metavar="ARGS",
                        help="extra arguments for the bench command, e.g. --args=--profile")
    parser.set_defaults(func=cmd_bench)


def _printer(event_type: str, **fields) -> None:
    if event_type == "run_started":
        print(f"run {fields['run_id']} in {fields['run_dir']}", flush=True)
    elif event_type == "run_output":
        sys.stdout.write(clean(fields.get("text", "")))  # the benchmark's own output, live
        sys.stdout.flush()
    elif event_type == "run_finished":
        seconds = fields.get("seconds")
        took = f" in {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
        print(f"run {fields['run_id']}: {fields['status']}{took} (exit code {fields.get('exit_code')})",
              flush=True)
    elif event_type == "warning":
        print(f"warning: {clean(fields.get('message', ''))}", flush=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.daemon.control import running_pid
    from autoresearch_tui.engine.runs.trial import TrialError, try_benchmark
    from autoresearch_tui.engine.setup.check import check_workspace
    from autoresearch_tui.engine.workspace import Workspace

    config = config_from_args(args)
    problems = check_workspace(config)
    for problem in problems:
        print("\n".join(problem.lines()), file=sys.stderr)
    if args.lane is None and any(p.blocking for p in problems):
        error("bench", "fix the problems above first")
        return 1
    pid = running_pid(Workspace(config))
    if pid:
        print(f"note: an engine is running (pid {pid}): this run competes with its lanes' benchmarks "
              "for the machine and its accelerator", file=sys.stderr)
    command = f"{config.experiment.bench_command} {args.args}".strip()
    print(f"$ {command}", flush=True)
    try:
        report = asyncio.run(try_benchmark(config, args.lane, args=args.args, emit=_printer))
    except TrialError as exc:
        error("bench", str(exc))
        return 1
    result = report.result
    print(f"measured: {report.source} (a fresh checkout, removed afterwards)")
    for note in report.notes:
        print(f"note: {note}")
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(report.records.items())) or "none"
    print(f"metrics records read: {kinds}" + (f"; {len(report.malformed)} malformed" if report.malformed else ""))
    for line in report.malformed[:5]:
        print(f"  malformed {line}")
    if result.summary:
        print(f"summary: {json.dumps(tidy_numbers(result.summary), ensure_ascii=False)}")
    direction = "lower" if config.experiment.direction == "minimize" else "higher"
    if report.value is not None:
        print(f"{report.metric} = {figure(report.value)} ({direction} is better): what the ledger "
              "would record for this run")
    for missing in report.missing:
        print(f"missing: {missing}")
    if result.status != "ok":
        print(f"the run ended {result.status} (exit code {result.exit_code}): see its log, "
              f"{result.run_dir}/run.log")
    if report.ok:
        print("ready: the engine can measure runs of this benchmark")
    return 0 if report.ok else 1
