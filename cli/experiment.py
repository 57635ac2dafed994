"""An experiment's life on disk: `init`, `merge LANE`, `report`, `stop-experiment`."""

from __future__ import annotations

import argparse
import os
import sys

from autoresearch_tui.cli.common import config_from_args, config_parent, error, request_sync
from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.workspace import Workspace


def register_cli(subparsers) -> None:
    from autoresearch_tui.engine.setup.init_workspace import DEFAULT_LANES

    init = subparsers.add_parser(
        "init",
        help="create a workspace (autoresearch.toml + the example repo, or --repo)",
        description="Create a workspace: DIR/autoresearch.toml and the bundled JAX example as a "
                    "git repo under raw/code/jax-example, or a config pointing at --repo.",
    )
    init.add_argument("dir", nargs="?", help="workspace folder (default: the current folder)")
    init.add_argument("--repo", help="use this existing git repo as the main repo")
    init.add_argument("--lanes", help=f"comma-separated lane names (default: {','.join(DEFAULT_LANES)})")
    init.add_argument("--force", action="store_true", help="overwrite an existing autoresearch.toml")
    init.set_defaults(func=cmd_init)

    merge = subparsers.add_parser(
        "merge", parents=[config_parent()],
        help="merge a lane's best kept commit into the target branch of the main repo",
        description="Fetch the lane's best kept commit into the main repo as branch "
                    "autoresearch/<experiment>/<lane> and merge it (--no-ff) into "
                    "experiment.target_branch. Refuses rather than leave anything dirty.",
    )
    merge.add_argument("lane", metavar="LANE")
    merge.set_defaults(func=cmd_merge)

    report = subparsers.add_parser(
        "report", parents=[config_parent()],
        help="write REPORT.md and progress.png for the experiment",
        description="Regenerate wiki/experiment/<experiment>/REPORT.md and progress.png "
                    "from the lanes' ledgers and events on disk.",
    )
    report.set_defaults(func=cmd_report)

    finish = subparsers.add_parser(
        "stop-experiment", parents=[config_parent()],
        help="stop every lane, write the final REPORT.md and progress.png (forks are kept)",
        description="Stop the engine gracefully, then write the experiment's final report. "
        "Forks are kept unless --remove-forks, and even then only when every recorded commit "
        "is reachable from the main repo (use --archive-runs to make them so).")
    finish.add_argument("--remove-forks", action="store_true",
                        help="delete the lanes' forks when no recorded commit would be lost")
    finish.add_argument("--archive-runs", action="store_true",
                        help="first copy every run ref into the main repo (refs/autoresearch/...)")
    finish.set_defaults(func=cmd_stop_experiment)


def cmd_init(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.setup.init_workspace import DEFAULT_LANES, InitError, create_workspace

    try:
        config_path = create_workspace(args.dir or os.getcwd(), repo=args.repo,
                                       lanes=tuple(args.lanes.split(",")) if args.lanes else DEFAULT_LANES,
                                       force=args.force)
    except InitError as exc:
        error("init", str(exc))
        return 1
    print(f"created {config_path}")
    from autoresearch_tui.engine.config import load_config
    from autoresearch_tui.engine.setup.check import check_workspace

    problems = check_workspace(load_config(config_path))
    where = config_path.parent
    if problems:
        print(f"checked it: {len(problems)} thing{'s' if len(problems) > 1 else ''} to fix before the first run:")
        for problem in problems:
            print("\n".join("  " + line for line in problem.lines()))
        print(f"then try the benchmark once: cd {where} && autoresearch-tui bench")
    else:
        print(f"checked it: repo, branch and benchmark look right; try the benchmark once: "
              f"cd {where} && autoresearch-tui bench")
    print(f"start it with: cd {where} && autoresearch-tui")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.client import EngineClientError

    config = config_from_args(args)
    workspace = Workspace(config)
    try:
        config.lane(args.lane)
    except KeyError:
        names = ", ".join(lane.name for lane in config.lanes)
        error("merge", f"no lane {args.lane!r} (lanes: {names})")
        return 1
    if running_pid(workspace):
        # The engine owns the lanes while it runs: it merges, logs the event, tells the UIs.
        try:
            reply = request_sync(workspace, "merge", raw=True, lane=args.lane)
        except EngineClientError as exc:
            error("merge", str(exc))
            return 1
        message = (reply.get("result") or {}).get("message") or reply.get("error", "merge failed")
        print(message, file=sys.stdout if reply.get("ok") else sys.stderr)
        return 0 if reply.get("ok") else 1
    from autoresearch_tui.engine.core.events import EventLog, make_event
    from autoresearch_tui.engine.repo.merge import merge_lane

    result = merge_lane(workspace, args.lane)
    if workspace.lane_dir(args.lane).is_dir():
        log = EventLog(workspace.events_path(args.lane))
        try:
            log.append(make_event(args.lane, "merge", **result.event_fields()))
        finally:
            log.close()
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.runs.report import write_report

    config = config_from_args(args, check_repo=False)
    path = write_report(Workspace(config))
    print(path)
    print(path.with_name("progress.png"))
    return 0


def cmd_stop_experiment(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.daemon.control import stop_engine
    from autoresearch_tui.engine.repo.forks import ForkError, archive_runs, remove_fork
    from autoresearch_tui.engine.runs.report import write_report

    config = config_from_args(args, check_repo=False)
    workspace = Workspace(config)
    stopped, message = stop_engine(workspace)
    print(message)
    if not stopped:
        return 1
    report = write_report(workspace)
    print(f"report: {report} (plot: {report.with_name('progress.png')})")
    failed = 0
    for lane in config.lanes:
        if not workspace.fork_dir(lane.name).exists():
            continue
        if args.archive_runs:
            count = archive_runs(workspace, lane.name)
            print(f"lane {lane.name}: {count} run refs archived in the main repo")
        if args.remove_forks:
            try:
                remove_fork(workspace, lane.name)
                print(f"lane {lane.name}: fork removed")
            except ForkError as exc:
                failed += 1
                print(f"lane {lane.name}: fork kept: {exc}", file=sys.stderr)
        else:
            print(f"lane {lane.name}: fork kept at {workspace.fork_dir(lane.name)}")
    return 1 if failed else 0
