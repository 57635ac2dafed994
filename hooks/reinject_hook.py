"""PostToolUse / PreCompact hook: re-inject the loop program on the engine's schedule.

For an armed session (see prompt_hook.py) each PostToolUse counts one turn and one tool use
in the marker (policy.note_assistant_turn / note_tool_use: real work resets the runaway
guard); when policy.injection_due says so (every `reinject_every_turns` turns, every
`reinject_every_minutes` minutes, or after a compaction) the answer carries the loop program
as additionalContext, which Claude Code puts into the very next model request. PreCompact
only notes the compaction, so the program goes out again right after it.

A turn here is one tool call: a model message with several parallel tool calls counts as
several turns (the hook cannot see message boundaries cheaply), so injections come a little
early, never late.

Usage (as installed): <python> reinject_hook.py --root <repo>
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import State, append_event, armed_session, policy, run_hook  # noqa: E402

NAME = "reinject_hook"


def handle(data: dict, state: State) -> dict | None:
    session_id = armed_session(data, state, NAME, "nothing to do")
    if session_id is None:
        return None
    P = policy()
    event = data.get("hook_event_name")
    now = time.time()
    with state.lock(session_id):
        marker = state.load_marker(session_id, NAME)
        if marker is None:
            return None
        settings = P.LoopSettings.from_object(marker.get("settings") or {})
        pstate = P.PolicyState.from_dict(marker.get("policy") if isinstance(marker.get("policy"), dict) else {})
        if event == "PreCompact":
            P.note_compaction(pstate)
            marker["policy"] = pstate.to_dict()
            state.save_marker(marker)
            append_event(marker.get("lane_dir") or "", str(marker.get("lane") or ""), "injection",
                         kind="scheduled", reason="context compaction: the program is due again",
                         session_id=session_id)
            return None
        P.note_tool_use(pstate)
        P.note_assistant_turn(pstate)
        marker["turns"] = int(marker.get("turns") or 0) + 1
        marker["tool_uses"] = int(marker.get("tool_uses") or 0) + 1
        reason = P.injection_due(pstate, settings, now)
        if reason:
            P.mark_injected(pstate, now)
        marker["policy"] = pstate.to_dict()
        state.save_marker(marker)
    if not reason:
        return None
    append_event(marker.get("lane_dir") or "", str(marker.get("lane") or ""), "injection",
                 kind="program", reason=reason, session_id=session_id)
    program = state.skill_text("autoresearch-loop", "Continue the autoresearch loop without stopping.")
    text = f"[autoresearch] Reminder of the loop program you are running ({reason}):\n\n{program}"
    return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": text}}


def main(argv: list[str] | None = None) -> int:
    return run_hook(NAME, handle, argv)


if __name__ == "__main__":
    sys.exit(main())
