"""Latency of each standalone hook invocation, as Claude Code runs them (a fresh subprocess).

    python bench/bench_hooks.py [--runs 200]

Installs the hooks into a throwaway git repo, then times `<python> hooks/<script>.py --root
<repo>` with realistic stdin for each case (armed / unarmed session, blocking stop, arming
prompt, re-injection) and prints p50 / p99 / max in milliseconds, next to a bare
`python -c pass` for reference. The CLI's default hook timeout is 60 s (installed: 30 s).
Not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoresearch_tui.engine.setup.install_hooks import install  # noqa: E402

HOOKS = ROOT / "hooks"
ARMED = "11111111-2222-4333-8444-555555555555"
UNARMED = "66666666-7777-4888-9999-aaaaaaaaaaaa"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def time_cmd(argv: list[str], payload: str, runs: int, before=None) -> list[float]:
    out = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        proc = subprocess.run(argv, input=payload, capture_output=True, text=True)
        out.append((time.perf_counter() - t0) * 1000)
        if proc.returncode:
            raise SystemExit(f"{argv} failed: {proc.stderr}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        install(repo)
        ledger = repo / ".claude/autoresearch/lanes/main/results.tsv"
        with ledger.open("a") as fh:  # a realistic ledger: 500 runs
            for i in range(1, 501):
                fh.write(f"{i:04d}\t{1700000000 + i}\tabc{i:04d}\t{10 + (i % 7) / 10}\t"
                         f"{'keep' if i % 9 == 0 else 'discard'}\trun {i}\n")
        python = sys.executable

        def script(name: str) -> list[str]:
            return [python, "-S", str(HOOKS / name), "--root", str(repo)]  # as installed

        def payload(session: str, event: str, **extra) -> str:
            return json.dumps({"session_id": session, "transcript_path": "/nonexistent", "cwd": str(repo),
                               "hook_event_name": event, **extra})

        arm_payload = payload(ARMED, "UserPromptSubmit", prompt="/start-experiment")

        def rearm() -> None:  # keep the armed session far from the runaway guard
            subprocess.run(script("prompt_hook.py"), input=arm_payload, capture_output=True, text=True)

        rearm()
        stop_armed = payload(ARMED, "Stop", stop_hook_active=True, last_assistant_message="Run 12 recorded.")
        tool = dict(tool_name="Bash", tool_input={"command": "python bench.py"},
                    tool_response={"stdout": "step_time_ms: 10.2"}, tool_use_id="toolu_1")
        cases = [
            ("python -c pass (reference)", [python, "-c", "pass"], "", None),
            ("python -S -c pass (reference)", [python, "-S", "-c", "pass"], "", None),
            ("stop_hook, unarmed session", script("stop_hook.py"),
             payload(UNARMED, "Stop", stop_hook_active=False, last_assistant_message="done"), None),
            ("stop_hook, armed: block (500-run ledger)", script("stop_hook.py"), stop_armed, None),
            ("prompt_hook, ordinary prompt", script("prompt_hook.py"),
             payload(ARMED, "UserPromptSubmit", prompt="how is it going?"), None),
            ("prompt_hook, /start-experiment (arm)", script("prompt_hook.py"), arm_payload, None),
            ("reinject_hook, unarmed session", script("reinject_hook.py"),
             payload(UNARMED, "PostToolUse", **tool), None),
            ("reinject_hook, armed (counts, injects every 20)", script("reinject_hook.py"),
             payload(ARMED, "PostToolUse", **tool), None),
        ]
        print(f"{args.runs} runs each, {python} (Python {sys.version.split()[0]}), "
              f"{os.cpu_count()} CPUs")
        print(f"{'case':52s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
        for label, argv, data, before in cases:
            if "armed: block" in label:
                # stop hooks with no tool use in between hit the runaway guard after 5 blocks;
                # a PostToolUse between them (as in a real loop) keeps every stop a block.
                def before(argv=script("reinject_hook.py"), data=payload(ARMED, "PostToolUse", **tool)):
                    subprocess.run(argv, input=data, capture_output=True, text=True)
            times = time_cmd(argv, data, args.runs, before)
            print(f"{label:52s} {statistics.median(times):8.1f} {pct(times, 99):8.1f} {max(times):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
