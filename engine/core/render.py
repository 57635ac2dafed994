"""The one event renderer: an event as text for a person (`run`, `logs`, the TUI).

Everything that reaches a terminal goes through `clean`: agent output, tool output and
benchmark output may carry escape sequences (CSI, OSC, and C1 controls such as U+009D,
which some terminals honour as OSC and use to set the window title).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from .tools import LANE_STATUS, RECORD_RUN, short_tool_name

# CSI / OSC / other escape sequences, then lone control characters (C0, DEL and C1).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]"
                   r"|\x9b[0-?]*[ -/]*[@-~]|[\x90\x9d-\x9f][^\x07\x9c\x1b]*(?:\x07|\x9c|\x1b\\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """Text made safe for a terminal: no escape sequences, no C0/C1 control characters.

    Newlines stay; tabs become four spaces; carriage returns become newlines."""
    text = _ANSI.sub("", str(text))
    return _CONTROL.sub("", text.replace("\t", "    ").replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: Any, limit: int = 160) -> str:
    text = " ".join(clean(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def figure(value: Any, digits: int = 6) -> str:
    """A number as a person reads it: `6.765`, not `6.765000000000001`; '-' for none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        # str() of a huge int is slow, and refused past 4300 digits: say how big it is.
        return str(value) if abs(value) < 10 ** 15 else f"{value:.6g}" if value.bit_length() < 1000 \
            else f"~{int(value.bit_length() * 0.30103) + 1}-digit integer"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def stamp(ts: Any) -> str:
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--"


def event_detail(event: dict[str, Any]) -> str:
    """What happened, in one line, without time, lane or type."""
    kind = event.get("type", "?")
    if kind == "assistant_text":
        return one_line(event.get("text", ""))
    if kind == "tool_use":
        return one_line(f"{event.get('tool')} {json.dumps(event.get('input', {}), ensure_ascii=False, default=str)}")
    if kind == "tool_result":
        return ("ERROR " if event.get("is_error") else "") + one_line(event.get("output", ""))
    if kind == "lane_state":
        return one_line(f"{event.get('state')}" + (f" ({event['reason']})" if event.get("reason") else ""))
    if kind in ("stop_blocked", "stop_allowed", "injection", "retrospective", "tool_denied"):
        parts = (event.get("kind") or event.get("phase") or "", event.get("reason", ""))
        return one_line(" ".join(str(x) for x in parts if x))
    if kind == "run_started":
        args = f" [{event['args']}]" if event.get("args") else ""
        return one_line(f"{event.get('run_id')}{args} {event.get('description', '')}")
    if kind == "run_finished":
        seconds = event.get("seconds")
        took = f" in {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
        why = f" ({event['reason']})" if event.get("reason") else ""
        return one_line(f"{event.get('run_id')} {event.get('status')}{took} exit {event.get('exit_code')}"
                        f"{_measured(event)}{why}")
    if kind == "run_output":
        return one_line(f"{event.get('run_id')} | {event.get('text', '')}")
    if kind == "run_recorded":
        return one_line(f"{event.get('run_id')} {event.get('status')} {figure(event.get('metric_value'))} "
                        f"{event.get('description', '')}")
    if kind in ("merge", "error", "warning", "config", "api_retry"):
        return one_line(event.get("message", ""), limit=400)
    if kind == "cost":
        total = event.get("total_cost_usd")
        return f"${total:.4f}" if isinstance(total, (int, float)) else "-"
    if kind == "user_message":
        return one_line(f"{event.get('delivery')}: {event.get('text', '')}")
    if kind in LEASE_EVENTS:
        return one_line(lease_text(event))
    if kind in CLUSTER_EVENTS:
        return one_line(f"run {event.get('run_id', '?')} {event.get('text', '')}"
                        + (f" ({event['warning']})" if event.get("warning") else ""))
    if kind in EVIDENCE_EVENTS:
        return one_line(evidence_text(event), limit=400)
    extra = {k: v for k, v in event.items() if k not in ("ts", "lane", "type")}
    return one_line(json.dumps(extra, ensure_ascii=False, default=_readable))


LEASE_EVENTS = ("lease_wait", "lease_acquired", "lease_released", "lease_cancelled")
CLUSTER_EVENTS = ("cluster_queued", "cluster_started")


def _amount(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def cluster_text(cluster: dict[str, Any] | None) -> str:
    """The Ray cluster in one line: "cluster TPU 1/2 free, CPU 2/2 free, 2 nodes (1 queued)",
    or why it cannot be reached."""
    if not isinstance(cluster, dict):
        return ""
    connection = cluster.get("connection")
    if connection == "unreachable":
        retry = cluster.get("retry_in_s")
        again = f"; next try in {retry:.0f} s" if isinstance(retry, (int, float)) and retry > 0 else ""
        return f"{cluster.get('error') or 'cluster unreachable'}{again}"
    if connection != "connected":
        return f"cluster {cluster.get('address', '')}: connecting…"
    total, free = cluster.get("total") or {}, cluster.get("free") or {}
    wanted = list(cluster.get("resources_per_run") or {}) or sorted(total)
    shown = [name for name in wanted if name in total] + [n for n in ("CPU",) if n in total and n not in wanted]
    parts = [f"{name} {_amount(free.get(name, 0))}/{_amount(total.get(name))} free" for name in shown]
    nodes = cluster.get("nodes") or []
    text = "cluster " + (", ".join(parts) or "no resources") + f", {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    busy = [f"{cluster[k]} {k}" for k in ("running", "queued") if isinstance(cluster.get(k), int) and cluster[k]]
    return text + (f" ({', '.join(busy)})" if busy else "")
EVIDENCE_EVENTS = ("claim_ignored", "check_started", "check_finished", "confirmation")


def _measured(event: dict[str, Any]) -> str:
    """ " score 41" for a finished run: the configured metric the engine read (events from
    before runs carried it: the step time of the summary)."""
    if event.get("metric") and isinstance(event.get("value"), (int, float)):
        return f" {event['metric']} {figure(event['value'])}"
    median = (event.get("summary") or {}).get("step_time_median_s")
    return f" step_time_ms {figure(median * 1000)}" if isinstance(median, (int, float)) else ""


def _values(values: Any) -> str:
    return ", ".join(figure(v) for v in values) if isinstance(values, list) and values else "none"


def evidence_text(event: dict[str, Any]) -> str:
    """A check, a confirmation or an ignored claim for a person, with its numbers."""
    kind, run = event.get("type"), f"run {event.get('run_id', '?')}"
    if kind == "claim_ignored":
        return (f"{run}: the agent's number {figure(event.get('claimed'))} ignored, the engine "
                f"measured {figure(event.get('measured'))}")
    if kind == "check_started":
        return f"{run}: correctness check `{event.get('command', '')}` on {str(event.get('commit', ''))[:10]}"
    if kind == "check_finished":
        verdict = "passed" if event.get("passed") else f"FAILED ({event.get('status')}, exit {event.get('exit_code')})"
        return f"{run}: correctness check {verdict}"
    if event.get("phase") == "started":
        return (f"{run}: confirming against run {event.get('incumbent_run')}, "
                f"{event.get('runs')} re-measures of each (A/B)")
    state = str(event.get("state") or "?")
    text = (f"{run} {state.upper()}: re-measures [{_values(event.get('candidate_values'))}] vs run "
            f"{event.get('incumbent_run')} [{_values(event.get('incumbent_values'))}]")
    if isinstance(event.get("gain_pct"), (int, float)) and isinstance(event.get("band_pct"), (int, float)):
        text += f", gain {event['gain_pct']:+.2f}% vs noise band {event['band_pct']:.2f}%"
    return text + (f" ({event['reason']})" if event.get("reason") else "")


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) and not isinstance(value, bool) else "? s"


def _ordinal(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return "?"
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def lease_text(event: dict[str, Any]) -> str:
    """A device lease event for a person: "run 0003 waiting for device (2nd in queue)"."""
    kind, run = event.get("type"), f"run {event.get('run_id', '?')}"
    if kind == "lease_wait":
        held = event.get("held_by") or []
        busy = f"; busy: {', '.join(str(h) for h in held)}" if isinstance(held, list) and held else ""
        return f"{run} waiting for device ({_ordinal(event.get('position'))} in queue{busy})"
    if kind == "lease_acquired":
        return f"{run} on slot {event.get('slot')} after waiting {_seconds(event.get('waited_s'))}"
    if kind == "lease_released":
        return f"{run} released slot {event.get('slot')} after {_seconds(event.get('held_s'))}"
    return f"{run} gave up waiting for the device after {_seconds(event.get('waited_s'))}: {event.get('reason', '')}"


def _readable(value: Any) -> str:
    return str(value)


def format_event(event: dict[str, Any]) -> str:
    """One readable line for a person: `12:00:01 a        run_recorded 0003 keep 7.1 jit`."""
    lane = clean(event.get("lane", "-"))
    kind = clean(event.get("type", "?"))
    return f"{stamp(event.get('ts', 0))} {lane:<8} {kind:<14} {event_detail(event)}"


# ----------------------------------------------------------------- the TUI's layout
TOOL_OUTPUT_LINES = 400
"""Lines of one tool result shown in the transcript (the rest is in the full logs view)."""


def _indent(prefix: str, text: str, rest: str = "  ") -> list[str]:
    lines = clean(text).split("\n")
    return [prefix + lines[0], *(rest + line for line in lines[1:])]


def _tool_input(tool: str, data: Any) -> str:
    if isinstance(data, dict):
        for key in ("command", "file_path", "pattern", "path", "description"):
            if key in data and isinstance(data[key], str):
                return data[key]
    return json.dumps(data, ensure_ascii=False, default=str)


def transcript_lines(event: dict[str, Any]) -> list[str]:
    """The transcript's text for one event (several lines; [] for events not shown there)."""
    kind = event.get("type")
    t = stamp(event.get("ts"))
    if kind == "assistant_text":
        who = "thinking" if event.get("thinking") else "agent"
        return _indent(f"{t} {who}: ", event.get("text", ""), "         ")
    if kind == "tool_use":
        tool = short_tool_name(str(event.get("tool", "?")))
        return _indent(f"{t} → {one_line(tool, 80)}: ", _tool_input(tool, event.get("input")), "           ")
    if kind == "tool_result":
        answer = engine_tool_answer(event)
        if answer is not None:
            mark = "ERROR " if event.get("is_error") else ""
            return [f"{t} ← {mark}{short_tool_name(str(event.get('tool')))}: {answer}  (l: full answer)"]
        lines = clean(event.get("output", "")).split("\n")
        if len(lines) > TOOL_OUTPUT_LINES:
            hidden = len(lines) - TOOL_OUTPUT_LINES
            lines = lines[:TOOL_OUTPUT_LINES] + [f"… {hidden} more lines (l: full logs)"]
        head = f"{t} ← {'ERROR ' if event.get('is_error') else ''}result"
        return [head, *("  │ " + line for line in lines)]
    if kind == "injection":
        return [f"{t} ⟳ injection ({clean(event.get('kind', '?'))}): {clean(event.get('reason', ''))}"]
    if kind == "stop_blocked":
        return [f"{t} ⛔ stop blocked ({clean(event.get('kind', '?'))}): {clean(event.get('reason', ''))}"]
    if kind == "stop_allowed":
        return [f"{t} ✓ stop allowed: {clean(event.get('reason', ''))}"]
    if kind == "run_started":
        return [f"{t} ▶ run {clean(event.get('run_id'))} started: {clean(event.get('description', ''))}"]
    if kind == "run_output":  # the benchmark's own output, streamed while it runs
        return ["  ┊ " + line for line in clean(event.get("text", "")).rstrip("\n").split("\n")]
    if kind == "run_finished":
        shown = _measured(event).replace(" ", ": ", 1) if _measured(event) else ""
        seconds = event.get("seconds")
        took = f" in {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
        waited = event.get("waited_s")
        queued = f" (waited {waited:.1f}s for the device)" if isinstance(waited, (int, float)) and waited >= 0.1 else ""
        why = f" ({clean(event['reason'])})" if event.get("reason") else ""
        return [f"{t} ■ run {clean(event.get('run_id'))} {clean(event.get('status'))}{took}{shown}{queued}{why}"]
    if kind in LEASE_EVENTS:
        return [f"{t} ⧗ {clean(lease_text(event))}"] if kind in ("lease_wait", "lease_cancelled") else []
    if kind in CLUSTER_EVENTS:
        return [f"{t} {'⧗' if kind == 'cluster_queued' else '▸'} {clean(event_detail(event))}"]
    if kind in EVIDENCE_EVENTS:
        return [f"{t} {'✓' if kind == 'confirmation' else '⚖'} {clean(evidence_text(event))}"]
    if kind == "metric" and event.get("kind") != "summary":
        return []  # per-step metrics are too many for the transcript; the lane list shows them
    if kind in ("cost", "session"):
        return []
    return _indent(f"{t} {clean(kind):<14} ", event_detail(event), "  ")


def engine_tool_answer(event: dict[str, Any]) -> str | None:
    """One readable line for an answer of the engine's own record_run / lane_status tools
    (their JSON is 25-30 lines); None for any other tool result."""
    tool = short_tool_name(str(event.get("tool") or ""))
    if tool not in (RECORD_RUN, LANE_STATUS):
        return None
    try:
        data = json.loads(str(event.get("output", "")))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    metric = clean(data.get("metric_name") or "metric")
    best = f"best {figure(data.get('best'))}" + (f" (run {clean(data['best_run'])})" if data.get("best_run") else "")
    if tool == RECORD_RUN:
        parts = [f"run {clean(data.get('run_id', '?'))} {clean(data.get('status', '?'))}",
                 f"{metric} {figure(data.get('metric'))}"]
        change = data.get("delta_vs_baseline_pct")
        if isinstance(change, (int, float)):
            parts.append(f"{change:+.1f}% vs baseline")
        if data.get("source") == "claimed":
            parts.append("claimed (unverified)")
        confirmation = data.get("confirmation")
        if isinstance(confirmation, dict) and confirmation.get("state"):
            parts.append(f"confirmation {clean(confirmation['state'])}")
        if data.get("repeat_of"):
            parts.append(f"repeat of run {clean(data['repeat_of'])}")
        if data.get("new_best"):
            parts.append("NEW BEST" + (" (within noise)" if data.get("within_noise") else ""))
        elif data.get("within_noise"):
            parts.append("within noise")
        parts.append(best)
        if data.get("already_recorded"):
            parts.append("already recorded")
        return " · ".join(parts)
    parts = [f"{data.get('runs', 0)} runs", best, f"{data.get('runs_since_best', 0)} since the best"]
    if isinstance(data.get("noise_pct"), (int, float)):
        parts.append(f"noise ±{data['noise_pct']:.1f}%")
    if data.get("plateau"):
        parts.append("PLATEAU")
    return " · ".join(parts)


def decision_row(event: dict[str, Any]) -> tuple[str, str, str]:
    """(time, what, reason) for the Decisions tab."""
    kind = event.get("type", "?")
    detail = ""
    if kind == "injection":
        what = f"injection: {event.get('kind', '?')}"
        detail = event.get("reason", "")
    elif kind in ("stop_blocked", "stop_allowed"):
        what = f"{'blocked' if kind == 'stop_blocked' else 'allowed'} stop: {event.get('kind', '?')}"
        detail = event.get("reason", "")
    elif kind == "retrospective":
        what = f"retrospective {event.get('phase', '')}".strip()
        detail = event.get("reason", "")
    elif kind == "merge":
        what = "merge" if event.get("ok", True) else "merge FAILED"
        detail = event.get("message", "")
    elif kind in ("error", "warning"):
        what = f"{kind} ({event.get('where', '?')})"
        detail = event.get("message", "")
    elif kind == "config":
        what = "config reloaded" if not event.get("error") else "config not loaded"
        detail = event.get("message", "")
    elif kind == "confirmation" and event.get("phase") == "finished":
        what = f"confirmation: {event.get('state', '?')}"
        detail = evidence_text(event)
    elif kind == "check_finished" and not event.get("passed"):
        what = "check failed"
        detail = evidence_text(event)
    elif kind == "tool_denied":
        what = f"tool denied: {event.get('tool', '?')}"
        detail = event.get("reason", "")
    elif kind == "user_message":
        what = f"message {event.get('delivery', '')}".strip()
        detail = event.get("text", "")
    elif kind == "lane_state":
        what = f"state: {event.get('state')}"
        detail = event.get("reason", "")
    else:
        what = kind
    return stamp(event.get("ts")), one_line(what, 80), " ".join(clean(detail).split())[:300]
