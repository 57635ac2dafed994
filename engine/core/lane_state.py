"""A lane's state names and its lane.json record (counters, policy state, session id).

lane.json is written by the engine (atomically) and read back at start-up, by `status`
with no engine running, and by the TUI through snapshots. It is validated on read: a
malformed file must never stop the engine from starting (the caller quarantines it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .policy import PolicyState

STARTING, RUNNING, PAUSING, PAUSED = "starting", "running", "pausing", "paused"
STOPPING, STOPPED, NEEDS_ATTENTION = "stopping", "stopped", "needs_attention"
WAITING_FOR_DEVICE = "waiting_for_device"
LANE_STATES = (STARTING, RUNNING, PAUSING, PAUSED, STOPPING, STOPPED, NEEDS_ATTENTION)
IDLE_STATES = (PAUSED, STOPPED, NEEDS_ATTENTION)
"""States in which the lane's agent is not working."""
AGENTS = ("claude", "codex")
"""The agent CLIs a lane can run (`[[lanes]] agent`)."""
USER_HOLDS = ("", PAUSED, STOPPED)
"""Values of LaneRecord.user_hold."""
NOT_STARTED = "not started"
"""Shown for a configured lane that has no lane.json yet (never stored)."""


class LaneRecordError(ValueError):
    """lane.json exists but cannot be used; the message says why, in one line."""


@dataclass
class LaneCounters:
    turns: int = 0
    tool_uses: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    consecutive_failures: int = 0
    restarts: int = 0
    input_tokens: int = 0
    """Tokens the lane's model read and wrote (Codex lanes report them; Claude lanes report cost)."""
    cached_input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class LaneRecord:
    """What lane.json holds."""

    name: str
    state: str = STARTING
    session_id: str | None = None
    agent: str = "claude"
    """The agent whose session `session_id` is (a Codex thread id means nothing to Claude)."""
    counters: LaneCounters = field(default_factory=LaneCounters)
    policy: PolicyState = field(default_factory=PolicyState)
    needs_attention_reason: str = ""
    user_hold: str = ""
    """The user's own pause or stop ("paused", "stopped", "" for none). It survives engine
    restarts: a lane the user stopped stays stopped until the user resumes it."""
    last_activity: float = 0.0
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "session_id": self.session_id, "agent": self.agent,
            "counters": vars(self.counters).copy(), "policy": self.policy.to_dict(),
            "needs_attention_reason": self.needs_attention_reason, "user_hold": self.user_hold,
            "last_activity": self.last_activity, "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Any, name: str) -> "LaneRecord":
        """Validate lane.json's content; raises LaneRecordError naming the bad field."""
        if not isinstance(data, dict):
            raise LaneRecordError(f"expected a JSON object, got {type(data).__name__}")
        state = data.get("state", STARTING)
        if state not in LANE_STATES and state != NOT_STARTED:
            raise LaneRecordError(f"state: unknown lane state {str(state)[:40]!r}")
        session_id = data.get("session_id")
        if session_id is not None and not (isinstance(session_id, str) and 0 < len(session_id) <= 200):
            raise LaneRecordError("session_id: expected a string or null")
        agent = data.get("agent", "claude")
        if agent not in AGENTS:
            raise LaneRecordError(f"agent: unknown agent {str(agent)[:40]!r}")
        counters_data = data.get("counters", {})
        if not isinstance(counters_data, dict):
            raise LaneRecordError(f"counters: expected an object, got {type(counters_data).__name__}")
        counters = LaneCounters()
        for item in fields(LaneCounters):
            if item.name in counters_data:
                value = counters_data[item.name]
                if not _number(value) or value < 0:
                    raise LaneRecordError(f"counters.{item.name}: expected a non-negative number")
                setattr(counters, item.name, type(item.default)(value))
        policy_data = data.get("policy")
        if policy_data is not None and not isinstance(policy_data, dict):
            raise LaneRecordError("policy: expected an object")
        try:
            policy = PolicyState.from_dict(policy_data)
        except (TypeError, ValueError) as exc:
            raise LaneRecordError(f"policy: {exc}") from None
        reason = data.get("needs_attention_reason", "")
        hold = data.get("user_hold", "")
        if hold not in USER_HOLDS:
            raise LaneRecordError(f"user_hold: expected one of {', '.join(map(repr, USER_HOLDS))}")
        times = {key: data.get(key, default) for key, default in
                 (("last_activity", 0.0), ("created_at", time.time()))}
        for key, value in times.items():
            if not _number(value):
                raise LaneRecordError(f"{key}: expected a number")
        return cls(name=name, state=state, session_id=session_id, agent=agent, counters=counters, policy=policy,
                   needs_attention_reason=reason if isinstance(reason, str) else "", user_hold=hold,
                   last_activity=float(times["last_activity"]), created_at=float(times["created_at"]))

    @classmethod
    def load(cls, path: Path, name: str) -> "LaneRecord":
        """The record in `path`; a fresh one when the file is missing.

        Raises LaneRecordError when the file exists but is unreadable or invalid."""
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            return cls(name=name)
        except OSError as exc:
            raise LaneRecordError(f"cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise LaneRecordError(f"not valid JSON ({type(exc).__name__})") from None
        return cls.from_dict(data, name)


def _number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False
