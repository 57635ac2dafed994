"""UserPromptSubmit hook: `/start-experiment` arms the session, `/stop-experiment` authorizes its stop.

The hook input carries the session id, so the marker names exactly the session in which the
command was typed (no guessing from transcript files). Arming writes
.claude/autoresearch/sessions/<session_id>.json with the experiment, the lane, the loop
settings ([loop] of the nearest autoresearch.toml from the repo upward, else the installed
ones, else defaults), a fresh policy state and turn counters, and hands the model the loop
program as additional context. Arming also sweeps stale markers of other sessions.

Usage (as installed): <python> prompt_hook.py --root <repo>
"""

from __future__ import annotations

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import MARKER_VERSION, State, append_event, policy, run_hook, valid_session_id  # noqa: E402

NAME = "prompt_hook"
START = re.compile(r"^\s*/start-experiment(?:\s|$)")
STOP = re.compile(r"^\s*/stop-experiment(?:\s|$)")


def handle(data: dict, state: State) -> dict | None:
    prompt = data.get("prompt")
    if not isinstance(prompt, str):
        state.log(NAME, f"no prompt string in the input ({type(prompt).__name__}); nothing to do")
        return None
    starting, stopping = bool(START.match(prompt)), bool(STOP.match(prompt))
    if not (starting or stopping):
        return None
    session_id = data.get("session_id")
    if not valid_session_id(session_id):
        state.log(NAME, f"{prompt.split()[0]} typed but the input has no usable session_id "
                        f"({session_id!r}); nothing armed")
        return None
    if starting:
        return arm(session_id, data, state)
    return authorize(session_id, state)


def arm(session_id: str, data: dict, state: State) -> dict:
    P = policy()
    state.sweep_stale(NAME)
    now = time.time()
    info = state.lane_info()
    settings = state.loop_settings(NAME)
    pstate = P.PolicyState()
    P.mark_injected(pstate, now)  # the program goes out with this prompt (below)
    with state.lock(session_id):
        previous = state.load_marker(session_id, NAME)
        marker = {
            "version": MARKER_VERSION,
            "session_id": session_id,
            "armed_at": now,
            "transcript_path": data.get("transcript_path") if isinstance(data.get("transcript_path"), str) else None,
            **info,
            "settings": settings,
            "policy": pstate.to_dict(),
            "turns": 0,
            "tool_uses": 0,
            "stop_authorized": False,
            "rearmed": previous is not None,
        }
        state.save_marker(marker)
    append_event(info["lane_dir"], info["lane"], "lane_state", state="running", session_id=session_id,
                 reason="armed by /start-experiment")
    append_event(info["lane_dir"], info["lane"], "injection", kind="program", session_id=session_id,
                 reason="session armed")
    program = state.skill_text("autoresearch-loop", "")
    context = (
        f"[autoresearch] Guardrails armed for this session (experiment {info['experiment']}, "
        f"lane {info['lane']}). Stop attempts will be answered with 'continue' or a retrospective "
        f"until the user runs /stop-experiment. Ledger: {info['ledger']}."
    )
    if program:
        context += "\n\nThe loop program you are running:\n\n" + program
    return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": context}}


def authorize(session_id: str, state: State) -> dict | None:
    with state.lock(session_id):
        marker = state.load_marker(session_id, NAME)
        if marker is None:
            return None  # not armed: nothing to authorize
        marker["stop_authorized"] = True
        marker["authorized_at"] = time.time()
        state.save_marker(marker)
    append_event(marker.get("lane_dir") or "", str(marker.get("lane") or ""), "lane_state",
                 state="stopping", session_id=session_id, reason="/stop-experiment")
    return {"hookSpecificOutput": {
        "hookEventName": "UserPromptSubmit",
        "additionalContext": "[autoresearch] The user ran /stop-experiment: the loop may end. "
                             "Wrap up as the stop-experiment instructions say; your next stop is allowed.",
    }}


def main(argv: list[str] | None = None) -> int:
    return run_hook(NAME, handle, argv)


if __name__ == "__main__":
    sys.exit(main())
