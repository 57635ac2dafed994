"""Guardrails for plain Claude Code sessions: `install-hooks`, `uninstall-hooks`."""

from __future__ import annotations

import argparse

from autoresearch_tui.cli.common import config_parent, error


def register_cli(subparsers) -> None:
    from autoresearch_tui.engine.setup.install_hooks import DEFAULT_LANE, DEFAULT_MARKER_MAX_AGE_H

    parser = subparsers.add_parser(
        "install-hooks", parents=[config_parent()],
        help="install the loop's guardrails (hooks + skills) for plain Claude Code sessions in a repo",
        description="Merge the autoresearch hooks into <repo>/.claude/settings.local.json and copy "
                    "the skills into <repo>/.claude/skills, so a plain `claude` session gets "
                    "/start-experiment, /stop-experiment and /create-retrospective.",
    )
    parser.add_argument("--repo", default=".", help="the repo the agent works in (default: .)")
    parser.add_argument("--lane", default=None,
                        help=f"lane name (default: the config's first lane, else {DEFAULT_LANE!r})")
    parser.add_argument("--marker-max-age-hours", type=float, default=DEFAULT_MARKER_MAX_AGE_H,
                        help="an armed session with no hook activity for this long is disarmed "
                             f"(default {DEFAULT_MARKER_MAX_AGE_H:g})")
    parser.set_defaults(func=cmd_install)
    parser = subparsers.add_parser(
        "uninstall-hooks", parents=[config_parent()],
        help="remove exactly what install-hooks added to a repo",
    )
    parser.add_argument("--repo", default=".", help="the repo (default: .)")
    parser.set_defaults(func=cmd_uninstall)


def cmd_install(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.setup.install_hooks import InstallError, install

    try:
        result = install(args.repo, args.lane, getattr(args, "config", None), args.marker_max_age_hours)
    except InstallError as exc:
        error("install-hooks", str(exc))
        return 2
    print("\n".join(result.lines))
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.setup.install_hooks import InstallError, uninstall

    try:
        result = uninstall(args.repo)
    except InstallError as exc:
        error("uninstall-hooks", str(exc))
        return 2
    print("\n".join(result.lines))
    return 0
