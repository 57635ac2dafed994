"""The loop's guardrail policy: when to re-inject, and what to answer when the agent stops.

Plain data and functions, standard library only: the engine's lanes and the standalone
Claude Code hooks (hooks/stop_hook.py, run by any Python 3.11+) apply the same rules.
Every decision carries a human-readable reason; callers emit it as an event.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

StopAction = Literal["block", "allow"]
StopKind = Literal[
    "continue", "retrospective", "runaway", "paused", "stopping", "budget", "authorized"
]


LOOP_LIMITS: dict[str, tuple[type, str, float]] = {
    "reinject_every_turns": (int, "ge", 1),
    "reinject_every_minutes": (float, "gt", 0),
    "retrospective_every_stops": (int, "ge", 1),
    "plateau_runs": (int, "ge", 1),
    "max_consecutive_blocks": (int, "ge", 1),
}
"""The `[loop]` rules both readers enforce: type, comparison, bound. engine/config.py builds
its pydantic fields from this table; `LoopSettings.from_table` applies it for the hooks."""


@dataclass(frozen=True)
class LoopSettings:
    """The `[loop]` numbers the policy needs (a subset of engine.config.LoopConfig)."""

    reinject_every_turns: int = 20
    reinject_every_minutes: float = 10.0
    retrospective_every_stops: int = 3
    plateau_runs: int = 8
    max_consecutive_blocks: int = 5

    @classmethod
    def from_object(cls, source: Any) -> "LoopSettings":
        """From a LoopConfig, a dict, or anything with the same attribute names."""
        get = source.get if isinstance(source, dict) else lambda k, d: getattr(source, k, d)
        return cls(**{f.name: get(f.name, f.default) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_table(cls, table: Any) -> tuple["LoopSettings", list[str]]:
        """A `[loop]` table as read from TOML: valid values are kept, invalid ones fall back
        to the default with a problem sentence each (the hooks log them; the engine refuses
        the same values as config errors)."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        table = table if isinstance(table, dict) else {}
        for item in fields(cls):
            if item.name not in table:
                continue
            value = table[item.name]
            problem = loop_value_problem(item.name, value)
            if problem:
                problems.append(f"[loop] {item.name} = {value!r}: {problem}; using {item.default}")
            else:
                values[item.name] = float(value) if LOOP_LIMITS[item.name][0] is float else value
        return cls(**values), problems


def loop_value_problem(name: str, value: Any) -> str | None:
    """Why `value` is not a valid `[loop] name`, or None."""
    kind, comparison, bound = LOOP_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "expected a number"
    if kind is int and not isinstance(value, int):
        return "expected a whole number"
    if value != value or value in (float("inf"), float("-inf")):
        return "expected a finite number"
    if comparison == "ge" and value < bound:
        return f"must be at least {bound:g}"
    if comparison == "gt" and value <= bound:
        return f"must be greater than {bound:g}"
    return None


@dataclass
class PolicyState:
    """Counters the policy keeps per lane; persisted in lane.json (or the hook's state file)."""

    turns_since_injection: int = 0
    last_injection_at: float = 0.0
    compaction_pending: bool = False
    retrospective_requested: bool = False
    stops: int = 0
    stops_blocked: int = 0
    consecutive_blocks: int = 0
    injections: int = 0
    retrospectives: int = 0
    plateau_retrospective_at_run: int = -1
    """Total runs when the last plateau retrospective fired (one per plateau episode)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "PolicyState":
        """Known fields of the right type; raises ValueError naming a field of the wrong type."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in (data or {}):
                continue
            value, default = data[item.name], item.default
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"{item.name}: expected {type(default).__name__}, got {type(value).__name__}")
            values[item.name] = float(value) if isinstance(default, float) else value
        return cls(**values)


@dataclass(frozen=True)
class LedgerView:
    """What the stop policy needs to know about the lane's runs."""

    total_runs: int = 0
    runs_since_best: int = 0


@dataclass(frozen=True)
class StopContext:
    lane_state: str = "running"  # running | pausing | stopping | paused | stopped ...
    last_assistant_message: str = ""
    budget_spent: bool = False
    stop_authorized: bool = False
    ledger: LedgerView = field(default_factory=LedgerView)


@dataclass(frozen=True)
class StopDecision:
    action: StopAction
    kind: StopKind
    reason: str
    """Why (for the event log and the Decisions tab)."""
    needs_attention: bool = False

    @property
    def blocks(self) -> bool:
        return self.action == "block"


# Phrases with which an agent gives up or hands control back. Lower-case, matched as
# regular expressions against the last assistant message.
GIVE_UP_PATTERNS = (
    r"\b(i have|i've|we have|we've) (exhausted|run out of|tried all)\b",
    r"\bout of ideas\b",
    r"\bno (further|more|other) (ideas|optimi[sz]ations|improvements)\b",
    r"\b(should|shall) i (continue|proceed|keep going|go on)\b",
    r"\bwould you like me to\b",
    r"\bdo you want me to\b",
    r"\blet me know if\b",
    r"\b(i'll|i will) stop here\b",
    r"\bstopping here\b",
    r"\bthis concludes\b",
    r"\bdiminishing returns\b",
    r"\bwaiting for (your|further) (input|instructions)\b",
)
_GIVE_UP = [re.compile(p) for p in GIVE_UP_PATTERNS]


def detect_give_up(message: str) -> str | None:
    """The give-up or permission-asking phrase in `message`, or None."""
    text = " ".join((message or "").lower().split())
    for pattern in _GIVE_UP:
        match = pattern.search(text)
        if match:
            return match.group(0)
    return None


def note_assistant_turn(state: PolicyState) -> None:
    state.turns_since_injection += 1


def note_tool_use(state: PolicyState) -> None:
    """Real work happened: the runaway guard starts counting again."""
    state.consecutive_blocks = 0


def note_compaction(state: PolicyState) -> None:
    state.compaction_pending = True


def injection_due(state: PolicyState, settings: LoopSettings, now: float) -> str | None:
    """Why the loop program should be re-injected now, or None."""
    if state.compaction_pending:
        return "context was compacted"
    if state.turns_since_injection >= settings.reinject_every_turns:
        return f"{state.turns_since_injection} assistant turns since the last injection"
    if state.last_injection_at and now - state.last_injection_at >= settings.reinject_every_minutes * 60:
        minutes = (now - state.last_injection_at) / 60
        return f"{minutes:.0f} minutes since the last injection"
    return None


def mark_injected(state: PolicyState, now: float) -> None:
    state.turns_since_injection = 0
    state.last_injection_at = now
    state.compaction_pending = False
    state.injections += 1


def next_injection(state: PolicyState, settings: LoopSettings, now: float) -> dict[str, float]:
    """When the next scheduled injection falls due (for the UI)."""
    turns_left = max(0, settings.reinject_every_turns - state.turns_since_injection)
    start = state.last_injection_at or now
    seconds_left = max(0.0, start + settings.reinject_every_minutes * 60 - now)
    return {"turns_left": turns_left, "seconds_left": round(seconds_left, 1)}


def decide_stop(state: PolicyState, settings: LoopSettings, context: StopContext) -> StopDecision:
    """Answer one Stop attempt and update the counters.

    Order matters: a lane being paused or stopped, an authorized stop, or a spent budget
    always lets the agent stop; then the runaway guard (never burn tokens in a block
    loop); then a retrospective when one is due; otherwise block and continue.
    """
    if context.lane_state in ("pausing", "paused"):
        return _allow(state, "paused", "lane is pausing: the agent may stop")
    if context.lane_state in ("stopping", "stopped"):
        return _allow(state, "stopping", "lane is stopping: the agent may stop")
    if context.stop_authorized:
        return _allow(state, "authorized", "the stop was authorized by the user")
    if context.budget_spent:
        return _allow(state, "budget", "the lane's budget (max_budget_usd) is spent")
    if state.consecutive_blocks >= settings.max_consecutive_blocks:
        decision = _allow(
            state,
            "runaway",
            f"{state.consecutive_blocks} stops blocked with no tool use in between: "
            "letting the agent stop and asking for attention instead of burning tokens",
        )
        return StopDecision(decision.action, decision.kind, decision.reason, needs_attention=True)

    state.stops += 1
    retrospective_reason = _retrospective_reason(state, settings, context)
    state.stops_blocked += 1
    state.consecutive_blocks += 1
    if retrospective_reason:
        state.retrospectives += 1
        state.retrospective_requested = False
        return StopDecision("block", "retrospective", retrospective_reason)
    return StopDecision("block", "continue", f"stop #{state.stops} while the loop runs: continue")


def take_requested_retrospective(state: PolicyState) -> bool:
    """A retrospective asked for with the key is delivered at the next chance (tool use)."""
    if state.retrospective_requested:
        state.retrospective_requested = False
        state.retrospectives += 1
        return True
    return False


def _retrospective_reason(state: PolicyState, settings: LoopSettings, context: StopContext) -> str | None:
    if state.retrospective_requested:
        return "retrospective requested by the user"
    phrase = detect_give_up(context.last_assistant_message)
    if phrase:
        return f"the agent gave up or asked permission ({phrase!r})"
    ledger = context.ledger
    if (
        ledger.runs_since_best >= settings.plateau_runs
        and ledger.total_runs - max(state.plateau_retrospective_at_run, 0) >= settings.plateau_runs
    ):
        state.plateau_retrospective_at_run = ledger.total_runs
        return f"plateau: {ledger.runs_since_best} runs without a new best"
    if state.stops % settings.retrospective_every_stops == 0:
        return f"stop #{state.stops}: every {settings.retrospective_every_stops} stops is a retrospective"
    return None


def _allow(state: PolicyState, kind: StopKind, reason: str) -> StopDecision:
    state.consecutive_blocks = 0
    return StopDecision("allow", kind, reason)
