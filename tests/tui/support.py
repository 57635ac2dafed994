"""Shared helpers for the TUI tests (no tests here): a scripted agent that does real work
(edits, benchmark runs, recorded runs, a give-up stop) and a daemon started against it."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from pathlib import Path

from autoresearch_tui.engine.core.tools import tool_id
from autoresearch_tui.engine.demo.scripted_model import ModelRequest, ScriptedModelServer, Turn, cli_env

BENCH = (
    "import json, os\n"
    "speed = float(open('speed.txt').read()) if os.path.exists('speed.txt') else 10.0\n"
    "print('step 1: warming up')\n"
    "print('\\x1b[31mcoloured\\x1b[0m output [bold]not markup[/bold]')\n"
    "path = os.environ.get('AUTORESEARCH_METRICS')\n"
    "if path:\n"
    "    with open(path, 'a') as f:\n"
    "        f.write(json.dumps({'v': 1, 'kind': 'step', 'step': 1, 'step_time_s': speed / 1000}) + '\\n')\n"
    "        f.write(json.dumps({'v': 1, 'kind': 'summary', 'step_time_median_s': speed / 1000, 'n': 1}) + '\\n')\n"
    "print(f'step_time_ms: {speed}')\n"
)


class WorkingAgent:
    """Per session: measure, record, make a change, measure, record keep, then loop with
    small pauses. Each new best makes the next speed lower."""

    def __init__(self, pace_s: float = 0.3):
        self.pace_s = pace_s
        self._steps: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def __call__(self, req: ModelRequest) -> Turn:
        key = req.session_id or "?"
        with self._lock:
            step = next(self._steps.setdefault(key, itertools.count()))
        time.sleep(self.pace_s)
        cycle = step % 5
        speed = max(1.0, 10.0 - (step // 5 + 1) * 0.5)
        if cycle == 0:
            return Turn.tool(tool_id("run_benchmark"), {"description": "baseline"},
                             text="Measuring the current step time.")
        if cycle == 1:
            return Turn.tool(tool_id("record_run"),
                             {"status": "keep", "description": f"measure {step}", "metric": speed + 0.5 if step else 10.0},
                             text="Recording the run.")
        if cycle == 2:
            return Turn.tool("Bash", {"command": f"echo {speed} > speed.txt && git commit -qam 'speed {speed}' "
                                                 f"|| (git add -A && git commit -qm 'speed {speed}')",
                                      "description": "edit"},
                             text=f"Trying a faster kernel: speed {speed}.")
        if cycle == 3:
            return Turn.tool(tool_id("run_benchmark"), {"description": f"speed {speed}"})
        return Turn.tool(tool_id("record_run"),
                         {"status": "keep", "description": f"speed {speed}", "metric": speed})


def start_daemon(config, home: Path, server: ScriptedModelServer) -> int:
    from autoresearch_tui.engine.daemon.control import spawn_daemon

    env = {**os.environ, **cli_env(home, server.base_url)}
    return spawn_daemon(config, env=env, timeout=30)


def stop_daemon(config) -> None:
    from autoresearch_tui.engine.client import EngineClient
    from autoresearch_tui.engine.daemon.control import running_pid
    from autoresearch_tui.engine.protocol import socket_path
    from autoresearch_tui.engine.workspace import Workspace

    workspace = Workspace(config)

    async def _stop():
        client = await EngineClient.connect(socket_path(workspace.root))
        try:
            await client.request("stop_engine")
        finally:
            await client.close()

    if running_pid(workspace):
        try:
            asyncio.run(_stop())
        except Exception:
            pass
        deadline = time.monotonic() + 30
        while running_pid(workspace) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid = running_pid(workspace)
    if pid and pid > 0:  # never leave a test's engine running (it would spend and grow)
        os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------ deterministic data
T0 = 1_780_000_000.0  # fixed clock for snapshots


def fixed_lane(name: str, state: str, best_history: list[float], runs: int, blocks: int,
               profile: dict | None = None) -> dict:
    best = best_history[-1] if best_history else None
    baseline = best_history[0] if best_history else None
    change = round((best - baseline) / baseline * 100, 2) if best_history else None
    return {
        "name": name, "state": state, "session_id": f"session-{name}",
        "counters": {"turns": runs * 3, "tool_uses": runs * 4, "cost_usd": 0.0, "failures": 0,
                     "consecutive_failures": 0, "restarts": 0},
        "policy": {"stops_blocked": blocks, "injections": 2, "retrospectives": 1},
        "needs_attention_reason": "5 stops in a row with no tool use" if state == "needs_attention" else "",
        "last_activity": T0,
        "next_injection": {"turns_left": 7, "seconds_left": 312.0} if state == "running" else None,
        "fork": f"/ws/{name}", "focus": "try fusing the attention kernels" if name == "a" else "",
        "frontier": {"runs": runs, "counts": {"keep": runs}, "baseline": baseline, "best": best,
                     "best_run": f"{runs:04d}" if runs else None, "change_pct": change,
                     "runs_since_best": 0, "noise": 0.1, "noise_pct": 1.0, "plateau": False,
                     "best_history": best_history},
        "metrics": {"latest_profile": profile},
    }


PROFILE = {
    "run_id": "0004", "path": "/ws/a/runs/0004/profile",
    "summary": {
        "path": "x.xplane.pb", "backend": "xplane", "window_ms": 812.4, "capture_ms": 870.2, "window_source": "steps", "steps": 5, "step_time_ms": 118.2,
        "busy_pct": 91.5, "idle_pct": 8.5, "op_time_ms": 1402.0,
        "categories": {"matmul": {"ms": 801.2, "pct": 57.1}, "fusion": {"ms": 350.0, "pct": 25.0},
                       "collective": {"ms": 120.5, "pct": 8.6}, "other": {"ms": 130.3, "pct": 9.3}},
        "top_ops": [
            {"name": "dot_general.12", "category": "matmul", "count": 50, "self_ms": 402.1, "pct": 28.7},
            {"name": "fusion.7 [bold]x[/bold]", "category": "fusion", "count": 50, "self_ms": 201.0, "pct": 14.3},
            {"name": "all-reduce.3", "category": "collective", "count": 10, "self_ms": 120.5, "pct": 8.6},
        ],
        "devices": ["/device:CPU:0"], "event_count": 1234, "op_count": 321, "classified_by": "name",
        "warnings": [],
    },
}


def fixed_snapshot() -> dict:
    return {
        "workspace": "/ws", "experiment": "jax-example", "metric": "step_time_ms", "direction": "minimize",
        "started_at": T0 - 3725, "pid": 4242, "scripted": True, "total_cost_usd": 1.234,
        "lanes": {
            "a": fixed_lane("a", "running", [10.0, 9.5, 9.5, 9.0, 8.2, 8.2, 7.9], 7, 2, PROFILE),
            "b": {**fixed_lane("b", "paused", [10.0, 10.0, 9.8], 3, 0), "agent": "codex", "model": "gpt-5.5"},
            "c": fixed_lane("c", "needs_attention", [10.0], 1, 5),
            "d": fixed_lane("d", "stopped", [], 0, 0),
        },
    }


def fixed_events() -> list[dict]:
    events = []
    ts = T0 - 60
    for lane in ("a", "b", "c", "d"):
        for i in range(6):
            ts += 0.5
            events += [
                {"ts": ts, "lane": lane, "type": "assistant_text", "text": f"Trying idea {i} in lane {lane}.\nSecond line [red]no markup[/red]"},
                {"ts": ts + 0.1, "lane": lane, "type": "tool_use", "tool": "Bash", "input": {"command": f"python bench.py --idea {i}"}},
                {"ts": ts + 0.2, "lane": lane, "type": "tool_result", "is_error": False,
                 "output": f"step 1: 12.{i} ms\n\x1b[31mred text\x1b[0m stripped\nstep_time_ms: 9.{i}"},
            ]
        events += [
            {"ts": ts + 0.3, "lane": lane, "type": "stop_blocked", "kind": "continue", "reason": "the loop is still running"},
            {"ts": ts + 0.4, "lane": lane, "type": "injection", "kind": "program", "reason": "20 assistant turns since the last injection"},
            {"ts": ts + 0.45, "lane": lane, "type": "retrospective", "phase": "started", "reason": "3 stops"},
        ]
    return events


LEDGER_ROWS = [
    {"run_id": f"{i:04d}", "ts": f"2026-05-28T20:0{i}:00Z", "commit": f"{i:07d}abcdef", "metric": m,
     "status": s, "description": d}
    for i, (m, s, d) in enumerate([(10.0, "keep", "baseline"), (9.5, "keep", "fuse bias add"),
                                   (11.2, "discard", "bigger blocks"), (None, "crash", "remat everything"),
                                   (8.2, "keep", "bf16 matmuls"), (7.9, "keep", "donate buffers")], start=1)
]


class FakeBridge:
    """Answers the ops the UI sends with fixed data and records them (no daemon)."""

    def __init__(self, store, replies: dict | None = None):
        self.store = store
        self.sent: list[tuple[str, dict]] = []
        self.connected = True
        self.target = None
        self.replies = {
            "ledger": {"ok": True, "rows": LEDGER_ROWS, "frontier": {"baseline": 10.0, "best": 7.9, "best_run": "0006"}},
            "run_details": {"ok": True, "run_id": "0006", "row": LEDGER_ROWS[-1],
                            "diff": "commit 0000006abcdef\ndonate buffers\n\n--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-jit(step)\n+jit(step, donate_argnums=0)",
                            "log": "step 1: 7.9 ms\nstep_time_ms: 7.9"},
            "merge_preview": {"ok": True, "baseline": 10.0, "best": 7.9, "change_pct": -21.0, "best_run": "0006",
                              "best_commit": "0000006abcdef", "mergeable": True,
                              "noise_pct": 1.0, "noise_source": "repeats",
                              "evidence": {"state": "confirmed", "candidate_values": [7.9, 8.0],
                                           "incumbent_values": [8.3, 8.2], "candidate_median": 7.95,
                                           "incumbent_median": 8.25, "gain_pct": 3.64, "band_pct": 1.2},
                              "commits": ["0000006 donate buffers", "0000005 bf16 matmuls", "0000002 fuse bias add"]},
            "history": {"ok": True, "events": []},
        }
        if replies:
            self.replies.update(replies)

    async def attach(self, selected=None):
        names = self.store.lane_names()
        return selected if selected in names else (names[0] if names else None)

    async def load_history(self, lane, limit=0):
        self.store.feed(lane).history_loaded = True
        return 0

    async def request(self, op, **args):
        self.sent.append((op, args))
        if op == "snapshot" and op not in self.replies:  # the engine's current view: the store's own
            return {"ok": True, "snapshot": self.store.snapshot.to_dict()}
        reply = self.replies.get(op, {"ok": True, "message": f"{op} done"})
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def close(self):
        pass


def fixed_store():
    from autoresearch_tui.tui.store import LaneStore

    from autoresearch_tui.engine.core.snapshot import Snapshot

    store = LaneStore(Snapshot.from_dict(fixed_snapshot()))
    store.alert_after = float("inf")
    for event in fixed_events():
        store.ingest(event)
    for feed in store.feeds.values():
        feed.history_loaded = True
    return store


def fixed_app(**kwargs):
    from autoresearch_tui.engine.config import TuiConfig
    from autoresearch_tui.tui.app import AutoresearchApp

    store = fixed_store()
    bridge = FakeBridge(store)
    app = AutoresearchApp(TuiConfig(**kwargs), bridge=bridge, store=store)
    return app


def screen_text(app) -> str:
    """The current screen as plain text (what a person would read)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
