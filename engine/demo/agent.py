"""The scripted "agent" of the offline demo, played by the scripted model server.

It is not a model: it follows a fixed plan per lane, but everything it asks for is real —
the CLI really edits the bundled example, the engine really runs bench.py and writes the
ledger, the Stop hook really blocks its attempts to stop. Its keep/discard decisions read
the real step times the engine reports back.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoresearch_tui.engine.demo.scripted_model import ModelRequest, Turn
from autoresearch_tui.engine.core import tools
from autoresearch_tui.engine.core.tools import tool_id

RUN_BENCHMARK, RECORD_RUN, LANE_STATUS = (tool_id(name) for name in (tools.RUN_BENCHMARK, tools.RECORD_RUN,
                                                                      tools.LANE_STATUS))
PACE_S = 0.03  # between streamed events: watchable, still quick
PROFILE_EVERY = 3
"""Every third re-measure of the best captures a profile (the first one too)."""
BASELINE = "baseline"
JIT = "jit the whole train step"
CALLBACK = "drop the per-step host callback"

_LANE = re.compile(r"lane (\S+) of experiment")
_CWD = re.compile(r"Primary working directory: ([^\s\\\"]+)")
_RUN_DIR = re.compile(r"run_dir=([^\s\\\"]+)")
_STEP_MS = re.compile(r"step_time_ms \(median\): ([0-9.]+)")


@dataclass
class _LaneState:
    lane: str
    fork: str = ""
    plan: list[Callable[[ModelRequest], Turn]] = field(default_factory=list)
    step: int = 0
    best_ms: float | None = None
    last_run_dir: str = ""
    last_ms: float | None = None
    retrospectives_written: int = 0
    cycle: int = 0
    remeasures: int = 0
    reset_tried: str = ""
    remeasure_what: str = ""


class DemoAgent:
    """A callable script: `(ModelRequest) -> Turn`, one plan per lane (by session)."""

    def __init__(self, config: Any = None):
        self.config = config
        self._lanes: dict[str, _LaneState] = {}
        self._by_session: dict[str, _LaneState] = {}
        self._lock = threading.Lock()

    def __call__(self, request: ModelRequest) -> Turn:
        with self._lock:
            state = self._state_for(request)
            return self._next_turn(state, request)

    # ------------------------------------------------------------------ bookkeeping
    def _state_for(self, request: ModelRequest) -> _LaneState:
        session = request.session_id or "-"
        if session in self._by_session:
            return self._by_session[session]
        match = _LANE.search(request.body_text)
        lane = match.group(1) if match else f"lane{len(self._lanes) + 1}"
        state = self._lanes.get(lane)
        if state is None:
            state = _LaneState(lane=lane)
            self._lanes[lane] = state
            match = _CWD.search(request.body_text)
            state.fork = match.group(1) if match else str(self._fork_dir(lane) or ".")
            state.plan = self._plan(lane)
        self._by_session[session] = state
        return state

    def _observe(self, state: _LaneState, request: ModelRequest) -> str:
        fresh = request.new_text
        if not state.fork:
            match = _CWD.search(request.body_text)
            state.fork = match.group(1) if match else "."
        run_dir = _RUN_DIR.search(fresh)
        if run_dir and "status=" in fresh:  # a run_benchmark answer
            state.last_run_dir = run_dir.group(1)
            step = _STEP_MS.search(fresh)
            state.last_ms = float(step.group(1)) if step else None
        return fresh

    def _next_turn(self, state: _LaneState, request: ModelRequest) -> Turn:
        fresh = self._observe(state, request)
        if "Time for a retrospective" in fresh or "asks for a retrospective" in fresh:
            state.retrospectives_written += 1
            return self._write_retrospective(state)
        if state.step < len(state.plan):
            turn = state.plan[state.step](request)
            state.step += 1
            return turn
        return self._steady_cycle(state)

    # ------------------------------------------------------------------ the lane's real state
    def _workspace(self):
        if self.config is None:
            return None
        from autoresearch_tui.engine.workspace import Workspace

        return Workspace(self.config)

    def _fork_dir(self, lane: str) -> Path | None:
        workspace = self._workspace()
        return workspace.fork_dir(lane) if workspace is not None else None

    def _ledger(self, lane: str) -> tuple[list[dict], Any]:
        """The lane's ledger rows and frontier (empty without a workspace)."""
        workspace = self._workspace()
        if workspace is None:
            return [], None
        from autoresearch_tui.engine.runs.record import lane_frontier, read_ledger

        rows, _ = read_ledger(workspace.ledger_path(lane), self.config.experiment.metric)
        frontier, _ = lane_frontier(workspace, lane)
        return rows, frontier

    def _model_text(self, lane: str) -> str:
        try:
            return (Path(self._lanes[lane].fork) / "model.py").read_text(encoding="utf-8")
        except OSError:
            return ""

    def _subject(self, lane: str) -> str:
        from autoresearch_tui.engine.core.git import git

        return git(self._lanes[lane].fork, "log", "-1", "--format=%s", check=False).stdout.strip()

    def _head(self, lane: str) -> str:
        from autoresearch_tui.engine.core.git import resolve_commit

        return resolve_commit(self._lanes[lane].fork, "HEAD") or ""

    # ------------------------------------------------------------------ plans
    def _plan(self, lane: str) -> list[Callable[[ModelRequest], Turn]]:
        """Only what neither the ledger nor the fork's code holds yet (see the module doc)."""
        rows, frontier = self._ledger(lane)
        state = self._lanes[lane]
        if frontier is not None and frontier.best is not None:
            state.best_ms = frontier.best
        recorded = {row["description"] for row in rows}
        code = self._model_text(lane)
        applied = {JIT: "step_fn = jax.jit(train_step)" in code,
                   CALLBACK: bool(code) and "jax.debug.callback(_check_finite" not in code}
        baseline = [] if rows else [
            lambda r: self._bench("Baseline: measure the example unchanged.", BASELINE),
            lambda r: self._record(self._state(lane), BASELINE, first=True),
            lambda r: Turn.text("Baseline recorded. Next I will look for work that runs outside XLA.",
                                delay_s=PACE_S),
        ]
        if rows:
            done = [d for d in (JIT, CALLBACK) if d in recorded or applied[d]]
            baseline = [lambda r: Turn.text(
                f"Continuing lane {lane} from its ledger: {len(rows)} runs recorded"
                + (f", best {state.best_ms:.2f} ms" if state.best_ms is not None else "")
                + (f"; already done: {', '.join(done)}" if done else "") + ".", delay_s=PACE_S)]
            head = self._head(lane)
            if head and head not in {row["commit"] for row in rows}:
                # Work committed before the restart and never measured: measure it, never lose it.
                subject = self._subject(lane) or "the unmeasured commit at HEAD"
                baseline += [lambda r: self._bench(f"Measuring {subject!r}, committed but not yet "
                                                   "measured before the restart.", subject),
                             lambda r: self._record(self._state(lane), subject)]
        jit = [
            lambda r: Turn.tool("Read", {"file_path": self._path(lane, "model.py")},
                                text="Reading the model to see what step_fn is.", delay_s=PACE_S),
            lambda r: Turn.tool("Edit", {"file_path": self._path(lane, "model.py"),
                                         "old_string": "step_fn = train_step",
                                         "new_string": "step_fn = jax.jit(train_step)"},
                                text="Only loss_and_grad is jitted; the optimizer update runs op by "
                                     "op. Jitting the whole step should remove the dispatch cost.",
                                delay_s=PACE_S),
            lambda r: self._commit("jit the whole train step"),
            lambda r: self._bench("Hypothesis: jitting the whole step removes per-op dispatch.",
                                  "jit the whole train step"),
            lambda r: self._record(self._state(lane), "jit the whole train step"),
        ]
        callback = [
            lambda r: Turn.tool("Bash", {
                "command": "sed -i 's/^    jax.debug.callback(_check_finite, loss, grad_norm).*$/"
                           "    # finite check moved out of the hot loop/' model.py && git diff --stat",
                "description": "drop the per-step host callback"},
                text="The step calls back to the host every iteration; drop that round trip.",
                delay_s=PACE_S),
            lambda r: self._commit("drop the per-step host callback"),
            lambda r: self._bench("Hypothesis: the host callback costs a round trip per step.",
                                  "drop the per-step host callback"),
            lambda r: self._record(self._state(lane), "drop the per-step host callback"),
        ]
        todo = {JIT: [] if JIT in recorded or applied[JIT] else jit,
                CALLBACK: [] if CALLBACK in recorded or applied[CALLBACK] else callback}
        if lane == "b":
            closing = [lambda r: Turn.text("Both changes are measured. I have exhausted all ideas I "
                                           "had for this model; should I continue?", delay_s=PACE_S)]
            return baseline + todo[CALLBACK] + todo[JIT] + closing
        closing = [lambda r: Turn.text("Run recorded. That was the biggest win available; I think "
                                       "we are at diminishing returns here.", delay_s=PACE_S)]
        return baseline + todo[JIT] + todo[CALLBACK] + closing

    def _state(self, lane: str) -> _LaneState:
        return self._lanes[lane]

    def _path(self, lane: str, name: str) -> str:
        return f"{self._lanes[lane].fork.rstrip('/')}/{name}"

    # ------------------------------------------------------------------ turns
    @staticmethod
    def _bench(text: str, description: str) -> Turn:
        return Turn.tool(RUN_BENCHMARK, {"description": description}, text=text, delay_s=PACE_S)

    @staticmethod
    def _commit(message: str) -> Turn:
        return Turn.tool("Bash", {"command": f"git commit -qam '{message}' && git log --oneline -1",
                                  "description": "commit the experiment"}, delay_s=PACE_S)

    def _record(self, state: _LaneState, description: str, first: bool = False) -> Turn:
        measured = state.last_ms
        improved = measured is not None and (state.best_ms is None or measured < state.best_ms * 0.95)
        status = "crash" if measured is None else ("keep" if first or improved else "discard")
        if status == "keep" and measured is not None:
            state.best_ms = measured if state.best_ms is None else min(state.best_ms, measured)
        if status in ("discard", "crash") and not first:
            # After recording, the discard is reset away (the ref keeps the commit): back to the
            # lane's best kept commit as the ledger names it, never blindly one commit back.
            state.plan.insert(state.step + 1, lambda r: self._reset_to_best(state))
        text = (f"{measured:.2f} ms" if measured is not None else "no measurement") + f": {status}."
        return Turn.tool(RECORD_RUN, {"status": status, "description": description,
                                      "run_dir": state.last_run_dir}, text=text, delay_s=PACE_S)

    def _best_commit(self, lane: str) -> str | None:
        _rows, frontier = self._ledger(lane)
        return frontier.best_commit if frontier is not None else None

    def _reset_to_best(self, state: _LaneState) -> Turn:
        best = self._best_commit(state.lane)
        if not best:
            return Turn.text("Discarded; there is no kept commit to go back to yet.", delay_s=PACE_S)
        return Turn.tool("Bash", {"command": f"git reset -q --hard {best} && git log --oneline -1",
                                  "description": "reset the discarded experiment"},
                         text=f"Discarded: not better than the best. Resetting to the best kept commit "
                              f"{best[:10]}.", delay_s=PACE_S)

    def _write_retrospective(self, state: _LaneState) -> Turn:
        path = re.sub(r"/\.repo/.*$", "", state.fork) + (
            f"/retrospectives/demo-{state.retrospectives_written}-{state.lane}-retrospective.md")
        body = (
            f"# Retrospective {state.retrospectives_written} — lane {state.lane}\n\n"
            "## Runs by direction\n- compilation/dispatch: jit of the whole step (kept)\n"
            "- host transfers: per-step callback (measured)\n\n"
            "## Under-explored\n- dtypes (bf16), fused QKV projection, the one-hot loss, scan over layers\n\n"
            "## Next, by expected gain / effort\n1. fused QKV projection\n2. take_along_axis loss\n"
            "3. bf16 activations (TPU)\n"
        )
        return Turn.tool("Write", {"file_path": path, "content": body},
                         text="Stepping back: reviewing every run and ranking the next directions.",
                         delay_s=PACE_S)

    def _steady_cycle(self, state: _LaneState) -> Turn:
        """After the plan: re-measure the best (checked out first) for the noise figure,
        record it, look at the frontier, go on. Some re-measures capture a profile."""
        phase = state.cycle % 4
        if phase == 0:
            best, head = self._best_commit(state.lane), self._head(state.lane)
            if best and head != best and state.reset_tried != best:
                state.reset_tried = best
                return self._reset_to_best(state)  # the cycle goes on from this phase next time
            state.cycle += 1
            profile = state.remeasures % PROFILE_EVERY == 0
            state.remeasures += 1
            what = (f"re-measure the best (commit {head[:10]})" if head == best or not best else
                    f"re-measure HEAD {head[:10]} (not the best, {best[:10]}: the reset failed)")
            state.remeasure_what = what
            return Turn.tool(RUN_BENCHMARK, {"description": what, **({"args": "--profile"} if profile else {})},
                             text=f"Re-measuring {what[len('re-measure '):]} to tighten the noise "
                                  "estimate" + (", with a profile capture." if profile else "."),
                             delay_s=PACE_S)
        state.cycle += 1
        if phase == 1:
            what = state.remeasure_what or "re-measure"
            return Turn.tool(RECORD_RUN, {"status": "inconclusive", "description": what,
                                          "run_dir": state.last_run_dir},
                             text="Repeat measurement recorded for the noise figure.", delay_s=PACE_S)
        if phase == 2:
            return Turn.tool(LANE_STATUS, {}, text="Checking the frontier before the next idea.",
                             delay_s=PACE_S)
        return Turn.text("Frontier checked; this lane is on a plateau for now.", delay_s=PACE_S)
