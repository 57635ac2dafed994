"""Stop hook: keep an armed autoresearch session going; ignore every other session.

Claude Code runs it when the agent tries to end its turn, with JSON on stdin
(session_id, cwd, stop_hook_active, last_assistant_message, ...). For a session armed by
`/start-experiment` (a marker in .claude/autoresearch/sessions/), it applies the engine's
stop policy (engine/policy.py: decide_stop): block and continue, block with a retrospective
(every K-th stop, a give-up phrase, a plateau in the lane's results.tsv), allow after too
many blocks with no tool use (runaway guard), allow once `/stop-experiment` authorized it.
Unarmed sessions: no output (the stop goes through). Bad input: allow and log.

Usage (as installed): <python> stop_hook.py --root <repo>
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    State, append_event, condensed, ledger_view, policy, run_hook, armed_session,
)

NAME = "stop_hook"


def handle(data: dict, state: State) -> dict | None:
    session_id = armed_session(data, state, NAME, "allowing the stop")
    if session_id is None:
        return None
    P = policy()
    with state.lock(session_id):
        marker = state.load_marker(session_id, NAME)
        if marker is None:
            return None
        settings = P.LoopSettings.from_object(marker.get("settings") or {})
        pstate = P.PolicyState.from_dict(marker.get("policy") if isinstance(marker.get("policy"), dict) else {})
        P.note_assistant_turn(pstate)
        marker["turns"] = int(marker.get("turns") or 0) + 1
        last = data.get("last_assistant_message")
        if not isinstance(last, str):
            last = last_assistant_text(data.get("transcript_path"))
        total, since = ledger_view(marker.get("ledger") or "", str(marker.get("metric") or ""),
                                   str(marker.get("direction") or "minimize"))
        decision = P.decide_stop(pstate, settings, P.StopContext(
            lane_state="running",
            last_assistant_message=last,
            stop_authorized=bool(marker.get("stop_authorized")),
            ledger=P.LedgerView(total_runs=total, runs_since_best=since),
        ))
        marker["policy"] = pstate.to_dict()
        lane, lane_dir = str(marker.get("lane") or ""), str(marker.get("lane_dir") or "")
        if decision.kind == "authorized":
            state.remove_marker(session_id)  # the loop is over for this session: disarm
            append_event(lane_dir, lane, "stop_allowed", kind=decision.kind, reason=decision.reason,
                         session_id=session_id)
            append_event(lane_dir, lane, "lane_state", state="stopped", session_id=session_id,
                         reason="stop authorized by /stop-experiment")
            return None
        state.save_marker(marker)
    if not decision.blocks:
        append_event(lane_dir, lane, "stop_allowed", kind=decision.kind, reason=decision.reason,
                     session_id=session_id, needs_attention=decision.needs_attention)
        state.log(NAME, f"stop allowed ({decision.kind}): {decision.reason}", session_id)
        if decision.needs_attention:
            return {"systemMessage": f"[autoresearch] lane {lane} needs attention: {decision.reason}. "
                                     "The session is still armed; run /stop-experiment to end the loop."}
        return None
    message = block_message(decision, marker, state, total, since, pstate)
    append_event(lane_dir, lane, "stop_blocked", kind=decision.kind, reason=decision.reason,
                 stops_blocked=pstate.stops_blocked, session_id=session_id)
    if decision.kind == "retrospective":
        append_event(lane_dir, lane, "retrospective", phase="started", reason=decision.reason,
                     session_id=session_id)
    return {"decision": "block", "reason": message}


def block_message(decision, marker: dict, state: State, total: int, since: int, pstate) -> str:
    """Same shape as the engine's (engine/lane.py _block_message)."""
    lane = marker.get("lane") or "?"
    if decision.kind == "retrospective":
        head = f"[autoresearch] Do not stop. Time for a retrospective ({decision.reason})."
        body = state.skill_text("create-retrospective", RETRO_FALLBACK)
    else:
        head = ("[autoresearch] Do not stop: the loop is still running and the user is away. "
                "Continue with the next experiment now.")
        body = condensed(state.skill_text("autoresearch-loop", PROGRAM_FALLBACK))
    line = (f"Lane {lane}: {total} runs recorded, {since} since the last new best; "
            f"{int(marker.get('tool_uses') or 0)} tool uses; {pstate.stops_blocked} stops blocked. "
            "(Only the user ends the loop, with /stop-experiment.)")
    return "\n\n".join([head, line, body])


PROGRAM_FALLBACK = ("Continue the autoresearch loop: profile, hypothesize, edit, commit, run the "
                    "benchmark, record the run in the ledger, keep or reset, repeat.")
RETRO_FALLBACK = ("Review every run in the ledger, group them by direction, name the "
                  "under-explored directions, rank the next ones, write it down, then continue.")


def last_assistant_text(transcript_path) -> str:
    """Fallback for CLIs that do not send last_assistant_message: the transcript's tail."""
    if not isinstance(transcript_path, str) or not transcript_path:
        return ""
    try:
        with open(transcript_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 262144))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message") if isinstance(entry, dict) else None
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
            if any(texts):
                return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def main(argv: list[str] | None = None) -> int:
    return run_hook(NAME, handle, argv)


if __name__ == "__main__":
    sys.exit(main())
