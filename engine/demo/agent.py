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
from typing import Any, Callable

from autoresearch_tui.engine.demo.scripted_model import ModelRequest, Turn
from autoresearch_tui.engine.core import tools
from autoresearch_tui.engine.core.tools import tool_id

RUN_BENCHMARK, RECORD_RUN, LANE_STATUS = (tool_id(name) for name in (tools.RUN_BENCHMARK, tools.RECORD_RUN,
                                                                      tools.LANE_STATUS))
PACE_S = 0.03  # between streamed events: watchable, still quick

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
            state.plan = self._plan(lane)
            self._lanes[lane] = state
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

    # ------------------------------------------------------------------ plans
    def _plan(self, lane: str) -> list[Callable[[ModelRequest], Turn]]:
        baseline = [
            lambda r: self._bench("Baseline: measure the example unchanged.", "baseline"),
            lambda r: self._record(self._state(lane), "baseline", first=True),
            lambda r: Turn.text("Baseline recorded. Next I will look for work that runs outside XLA.",
                                delay_s=PACE_S),
        ]
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
        if lane == "b":
            closing = [lambda r: Turn.text("Both changes are measured. I have exhausted all ideas I "
                                           "had for this model; should I continue?", delay_s=PACE_S)]
            return baseline + callback + jit + closing
        closing = [lambda r: Turn.text("Run recorded. That was the biggest win available; I think "
                                       "we are at diminishing returns here.", delay_s=PACE_S)]
        return baseline + jit + callback + closing

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
            # After recording, the discard is reset away (the ref keeps the commit).
            state.plan.insert(state.step + 1, lambda r: Turn.tool(
                "Bash", {"command": "git reset -q --hard HEAD~1 && git log --oneline -1",
                         "description": "reset the discarded experiment"},
                text="Discarded: within the noise of the best. Resetting to the last kept commit.",
                delay_s=PACE_S))
        text = (f"{measured:.2f} ms" if measured is not None else "no measurement") + f": {status}."
        return Turn.tool(RECORD_RUN, {"status": status, "description": description,
                                      "run_dir": state.last_run_dir}, text=text, delay_s=PACE_S)

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
        """After the plan: re-measure the best for the noise figure, record, go on."""
        phase = state.cycle % 4
        state.cycle += 1
        if phase == 0:
            return self._bench("Re-measuring the current best to tighten the noise estimate.",
                               "re-measure the current best")
        if phase == 1:
            return Turn.tool(RECORD_RUN, {"status": "inconclusive",
                                          "description": "re-measure the current best",
                                          "run_dir": state.last_run_dir},
                             text="Repeat measurement recorded for the noise figure.", delay_s=PACE_S)
        if phase == 2:
            return Turn.tool(LANE_STATUS, {}, text="Checking the frontier before the next idea.",
                             delay_s=PACE_S)
        return Turn.text("Frontier checked; this lane is on a plateau for now.", delay_s=PACE_S)
