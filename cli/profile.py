"""`profile PATH`: summarize a jax.profiler capture (top ops, category split, idle %)."""

from __future__ import annotations

import argparse
import json

from autoresearch_tui.cli.common import error


def register_cli(subparsers) -> None:
    from autoresearch_tui.engine.profile.summary import BACKENDS

    parser = subparsers.add_parser(
        "profile",
        help="summarize a jax.profiler capture (top ops, category split, idle %%)",
        description="Summarize a jax.profiler capture: a plugins/profile/<run> folder, a log dir "
                    "above it (the newest run), or one *.xplane.pb / *.trace.json.gz file.",
    )
    parser.add_argument("path", help="capture folder, log dir or file")
    parser.add_argument("--json", action="store_true", help="print the summary object as JSON")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="xplane (default with jax), trace (stdlib JSON), xprof (optional package)")
    parser.set_defaults(func=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    from autoresearch_tui.engine.profile.summary import ProfileError, render, summarize

    try:
        summary = summarize(args.path, backend=args.backend)
    except ProfileError as exc:
        error("profile", str(exc))
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        render(summary)
    return 0
