"""Summarize a jax.profiler capture: steps, busy/idle, time by category, top ops.

    summarize(path, backend=None) -> ProfileSummary

`path` is a `plugins/profile/<run>` folder, a log dir above it (the newest run is taken), or
one file (`*.xplane.pb` or `*.trace.json.gz`). Backends:

- "xplane": the XSpace protobuf through `jax.profiler.ProfileData` (jaxlib). No event cap;
  remote captures have only this file. Default when jax is importable and the file exists.
- "trace": the Chrome trace JSON (`*.trace.json.gz`) with the standard library. Always
  available; the profiler caps it at 1,000,000 events (a warning says when it may be capped).
- "xprof": the optional xprof package's op profile (it returns empty tables for CPU captures).

Layouts (docs/architecture.md, "Profiles"): on TPU/GPU each core is a `/device:...` plane/process whose
"XLA Ops" row holds the ops (with `hlo_category`), and "Steps" the steps. On CPU the ops are
events with an `hlo_op` stat on the `/host:CPU` threads (`tf_XLAEigen/*`, the caller thread),
several at once, with zero-length `end: <op>` markers to drop. When the capture folder holds
an HLO text dump (`*.hlo.txt`, bench.py writes one), fusions are classified by the ops they
contain; otherwise by name.

`summarize` is pure and blocking: call it through `asyncio.to_thread` (or `summarize_async`)
from the event loop. It raises only `ProfileError`, with a one-line message.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import statistics
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

BACKENDS = ("xplane", "trace", "xprof")
TRACE_EVENT_CAP = 1_000_000
TOP_OPS = 15

CATEGORIES = ("matmul", "collective", "copy", "fusion", "other")
CATEGORY_LABELS = {
    "matmul": "matmul/convolution",
    "collective": "collectives",
    "copy": "copies and layout",
    "fusion": "other fusions",
    "other": "other",
}


class ProfileError(Exception):
    """A capture that cannot be summarized; the message is one line for the user."""


@dataclass
class OpStat:
    name: str
    category: str
    count: int
    self_ms: float
    pct: float


@dataclass
class ProfileSummary:
    path: str
    """The file that was read."""
    backend: str
    window_ms: float
    """The step window busy and idle are shares of: first step start to last step end (step
    markers, else the main program's executions); the whole capture when neither exists."""
    capture_ms: float
    """Span of the whole capture (first event start to last event end), shown apart: time
    before the first and after the last step is not the steps' idle time."""
    window_source: str
    """"steps", "program" (executions of the main program) or "capture"."""
    steps: int | None
    step_time_ms: float | None
    """Median step time in the window (step markers, else executions of the main program)."""
    busy_pct: float | None
    """Share of the step window where at least one op ran (union over threads/cores; mean over devices)."""
    idle_pct: float | None
    op_time_ms: float
    """Sum of op self times (ops on several threads at once all count)."""
    categories: dict[str, dict[str, float]]
    """category -> {"ms", "pct"} (pct of op_time_ms), keys in CATEGORIES order."""
    top_ops: list[OpStat]
    devices: list[str]
    event_count: int
    op_count: int
    classified_by: str
    """"hlo_category", "hlo text" or "name"."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- locating files

def _files_in(folder: Path) -> tuple[list[Path], list[Path]]:
    return sorted(folder.glob("*.xplane.pb")), sorted(folder.glob("*.trace.json.gz"))


def resolve_capture(path: Path | str) -> tuple[Path, list[Path], list[Path]]:
    """(run folder, xplane files, trace files) for a file, a run folder or a log dir above it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ProfileError(f"{path}: no such file or folder")
    if path.is_file():
        name = path.name
        if name.endswith(".xplane.pb"):
            return path.parent, [path], []
        if name.endswith(".trace.json.gz") or name.endswith(".trace.json"):
            return path.parent, [], [path]
        raise ProfileError(f"{path}: not a profile file (expected *.xplane.pb or *.trace.json.gz)")
    xplanes, traces = _files_in(path)
    if xplanes or traces:
        return path, xplanes, traces
    runs = {p.parent for pattern in ("*.xplane.pb", "*.trace.json.gz") for p in path.rglob(pattern)}
    if not runs:
        raise ProfileError(f"{path}: no profile capture (*.xplane.pb or *.trace.json.gz) in or below it")
    if all(p.parent.name == "profile" for p in runs):
        newest = max(runs, key=lambda p: (p.name, _mtime(p)))  # <YYYY_MM_DD_HH_MM_SS> names
    else:
        newest = max(runs, key=lambda p: (_mtime(p), p.name))
    return (newest, *_files_in(newest))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _jax_available() -> bool:
    try:
        from jax.profiler import ProfileData  # noqa: F401
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- classification

_MATMUL = re.compile(r"(^|[_.\-])(dot|dot_general|conv|convolution|matmul|gemm|einsum|cublas|cudnn|onednn|mkl)", re.I)
_COLLECTIVE = re.compile(
    r"(all-reduce|all_reduce|allreduce|all-gather|all_gather|allgather|reduce-scatter|reduce_scatter|"
    r"collective|all-to-all|all_to_all|alltoall|send|recv|megascale|psum|ppermute)", re.I,
)
_LAYOUT_OPS = {
    "copy", "transpose", "bitcast", "reshape", "broadcast", "slice", "concatenate", "pad",
    "dynamic-slice", "dynamic-update-slice", "dynamic_slice", "dynamic_update_slice",
    "copy-start", "copy-done", "reverse", "iota", "convert", "tuple", "get-tuple-element",
    "parameter", "constant", "gather", "scatter",
}
_LAYOUT_NAME = re.compile(r"^(copy|transpose|bitcast|reshape|broadcast|slice|concatenate|pad|"
                          r"dynamic[-_]update[-_]slice|dynamic[-_]slice|reverse|host|device|"
                          r"memcpy|copy-start|copy-done|infeed|outfeed|transfer)", re.I)


def _base_name(name: str) -> str:
    return re.sub(r"\.\d+$", "", name.strip().lstrip("%"))


def category_from_hlo_category(value: str) -> str:
    v = value.lower()
    if "convolution" in v or "dot" in v or "matmul" in v or "einsum" in v:
        return "matmul"
    if _COLLECTIVE.search(v):
        return "collective"
    if "data formatting" in v or "copy" in v or "transpose" in v or "layout" in v or "host" in v:
        return "copy"
    if "fusion" in v:
        return "fusion"
    return "other"


def category_from_name(name: str) -> str:
    base = _base_name(name)
    if _COLLECTIVE.search(base):
        return "collective"
    if _MATMUL.search(base):
        return "matmul"
    if base.endswith("fusion") or "fusion" in base:
        parts = [p for p in re.split(r"[_]", base.replace("fusion", "")) if p]
        if parts and all(p in _LAYOUT_OPS for p in parts):
            return "copy"
        return "fusion"
    if _LAYOUT_NAME.match(base) or base in _LAYOUT_OPS:
        return "copy"
    return "other"


def category_from_opcodes(opcodes: set[str], is_fusion: bool) -> str:
    if any(op in ("dot", "convolution") for op in opcodes):
        return "matmul"
    if any(_COLLECTIVE.search(op) for op in opcodes):
        return "collective"
    if opcodes and all(op in _LAYOUT_OPS for op in opcodes):
        return "copy"
    return "fusion" if is_fusion else "other"


_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([^\s=]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"(?<![\w\-.%])([a-z][a-z0-9\-]*)\(")
_COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?([^\s(]+)\s*\(.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_CUSTOM_TARGET = re.compile(r'custom_call_target="([^"]+)"')


def parse_hlo_text(text: str) -> dict[str, str]:
    """HLO text dump -> {instruction name: category} for every instruction it defines."""
    computations: dict[str, set[str]] = {}
    instructions: list[tuple[str, str, str | None, str | None]] = []  # name, opcode, calls, target
    current: set[str] | None = None
    for line in text.splitlines():
        header = _COMPUTATION.match(line)
        if header and "=" not in line.split("(", 1)[0]:
            current = computations.setdefault(header.group(1), set())
            continue
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        opcode_match = _OPCODE.search(match.group(2))
        if not opcode_match:
            continue
        opcode = opcode_match.group(1)
        target = _CUSTOM_TARGET.search(line)
        if current is not None:
            current.add(opcode)
            if target and re.search(r"matmul|gemm|conv", target.group(1), re.I):
                current.add("dot")
        calls = _CALLS.search(match.group(2))
        instructions.append((match.group(1), opcode, calls.group(1) if calls else None,
                             target.group(1) if target else None))
    out: dict[str, str] = {}
    for name, opcode, calls, target in instructions:
        if opcode == "fusion" and calls in computations:
            out[name] = category_from_opcodes(computations[calls], is_fusion=True)
        elif opcode == "custom-call" and target:
            out[name] = "matmul" if re.search(r"matmul|gemm|conv", target, re.I) else category_from_name(target)
        else:
            out[name] = category_from_opcodes({opcode}, is_fusion=False)
    return out


def _load_hlo_categories(folder: Path, warnings: list[str]) -> dict[str, str]:
    categories: dict[str, str] = {}
    for dump in sorted(folder.glob("*.hlo.txt")):
        try:
            categories.update(parse_hlo_text(dump.read_text(encoding="utf-8", errors="replace")))
        except OSError as exc:
            warnings.append(f"{dump.name}: cannot read HLO dump ({exc.strerror}); classifying by name")
    return categories


# ----------------------------------------------------------------------------- normalized events

@dataclass
class _Capture:
    """What a backend extracts; aggregation is shared."""
    # (device, thread, name, start_ns, dur_ns, hlo_category or None, module or None, run_id or None)
    ops: list[tuple] = field(default_factory=list)
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (device, start, dur)
    span_start: float = float("inf")
    span_end: float = float("-inf")
    event_count: int = 0
    warnings: list[str] = field(default_factory=list)

    def see(self, start: float, dur: float) -> None:
        if start < self.span_start:
            self.span_start = start
        if start + dur > self.span_end:
            self.span_end = start + dur


def _is_end_marker(name: str, dur: float) -> bool:
    return dur <= 0 and name.startswith("end: ")


_OP_LINES = ("XLA Ops",)
_STEP_LINES = ("Steps",)
_NOT_OP_LINES = ("XLA Modules", "Async XLA Ops", "Steps", "XLA TraceMe")


def _collect(capture: _Capture, device: str, thread: str, name: str, start: float, dur: float,
             stats: dict) -> None:
    """Route one complete event: device planes by row name, host threads by stats."""
    capture.event_count += 1
    capture.see(start, dur)
    if _is_end_marker(name, dur):
        return
    if device.startswith("/device:"):
        if thread in _STEP_LINES:
            capture.steps.append((device, start, dur))
        elif thread in _OP_LINES or ("hlo_op" in stats and thread not in _NOT_OP_LINES):
            _add_op(capture, device, thread, name, start, dur, stats)
        return
    if "hlo_op" in stats:
        _add_op(capture, device, thread, name, start, dur, stats)
    elif "step_num" in stats:
        capture.steps.append((device, start, dur))


def _add_op(capture: _Capture, device, thread, name, start, dur, stats) -> None:
    category = stats.get("hlo_category")
    run_id = stats.get("run_id")
    capture.ops.append((device, thread, str(stats.get("hlo_op") or name), start, dur,
                        str(category) if category else None, stats.get("hlo_module"),
                        str(run_id) if run_id is not None else None))


def _prefer_device(capture: _Capture) -> _Capture:
    """When accelerator planes carry ops/steps, host-side ones are launches: drop them."""
    if any(op[0].startswith("/device:") for op in capture.ops):
        capture.ops = [op for op in capture.ops if op[0].startswith("/device:")]
    if any(step[0].startswith("/device:") for step in capture.steps):
        capture.steps = [step for step in capture.steps if step[0].startswith("/device:")]
    return capture


# ----------------------------------------------------------------------------- backends

def _read_xplane(file: Path) -> _Capture:
    try:
        from jax.profiler import ProfileData
    except Exception as exc:
        raise ProfileError(f"the xplane backend needs jax (jaxlib): {exc}") from None
    try:
        data = ProfileData.from_file(str(file))
    except Exception as exc:
        raise ProfileError(f"{file.name}: cannot read xplane ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    capture = _Capture()
    wanted = ("hlo_op", "hlo_category", "hlo_module", "run_id", "step_num")
    try:
        for plane in data.planes:
            device = plane.name
            if not (device.startswith("/device:") or device.startswith("/host:CPU")):
                continue
            for line in plane.lines:
                thread = line.name
                for event in line.events:
                    start = event.start_ns
                    dur = event.duration_ns
                    stats = {k: v for k, v in event.stats if k in wanted}
                    _collect(capture, device, thread, event.name, start, dur, stats)
    except Exception as exc:
        capture.warnings.append(f"{file.name}: stopped reading early ({exc})")
    return capture


_SEPARATORS = re.compile(r"[\s,]*")


def _read_text_salvaging(file: Path, warnings: list[str]) -> str:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{file}: cannot read ({exc.strerror})") from None
    if not file.name.endswith(".gz"):
        return raw.decode("utf-8", errors="replace")
    try:
        return gzip.decompress(raw).decode("utf-8", errors="replace")
    except (OSError, EOFError, zlib.error) as exc:
        # Truncated or damaged: keep whatever decompresses.
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            data = decompressor.decompress(raw)
        except zlib.error:
            data = b""
        if not data:
            raise ProfileError(f"{file.name}: not a readable gzip file ({exc})") from None
        warnings.append(f"{file.name}: damaged or truncated gzip ({exc}); summarizing what could be read")
        return data.decode("utf-8", errors="replace")


def _read_trace(file: Path) -> _Capture:
    capture = _Capture()
    text = _read_text_salvaging(file, capture.warnings)
    key = text.find('"traceEvents"')
    if key < 0:
        raise ProfileError(f"{file.name}: not a Chrome trace (no traceEvents)")
    index = text.find("[", key)
    if index < 0:
        raise ProfileError(f"{file.name}: not a Chrome trace (traceEvents is not a list)")
    index += 1
    decoder = json.JSONDecoder()
    match_separators = _SEPARATORS.match
    raw_decode = decoder.raw_decode
    processes: dict[Any, str] = {}
    threads: dict[tuple, str] = {}
    complete: list[tuple] = []  # only the fields used, so the parsed events can be freed
    wanted = ("hlo_op", "hlo_category", "hlo_module", "run_id", "step_num")
    total = 0
    truncated = False
    length = len(text)
    while True:
        index = match_separators(text, index).end()
        if index >= length:
            truncated = True
            break
        if text[index] == "]":
            break
        try:
            event, index = raw_decode(text, index)
        except ValueError:
            truncated = True
            break
        total += 1
        if type(event) is not dict:
            continue
        phase = event.get("ph")
        if phase == "X":
            args = event.get("args")
            stats = {k: args[k] for k in wanted if k in args} if type(args) is dict else {}
            complete.append((event.get("pid"), event.get("tid"), event.get("name", ""),
                             event.get("ts"), event.get("dur"), stats))
        elif phase == "M":
            args = event.get("args") or {}
            if event.get("name") == "process_name":
                processes[event.get("pid")] = str(args.get("name", ""))
            elif event.get("name") == "thread_name":
                threads[(event.get("pid"), event.get("tid"))] = str(args.get("name", ""))
    del text
    if truncated:
        capture.warnings.append(f"{file.name}: trace ends early (truncated?); read {total} events")
    if total >= TRACE_EVENT_CAP - 1000:
        capture.warnings.append(
            f"{file.name}: {total} events, at the Chrome trace cap of {TRACE_EVENT_CAP:,}: later "
            "events may be missing (use the xplane backend)"
        )
    for pid, tid, name, ts, dur, stats in complete:
        if not isinstance(ts, (int, float)) or not isinstance(dur, (int, float)):
            continue
        device = processes.get(pid, str(pid))
        thread = threads.get((pid, tid), str(tid))
        _collect(capture, device, thread, str(name), ts * 1e3, dur * 1e3, stats)
    return capture


def _read_xprof(file: Path) -> _Capture:
    """Op profile from the optional xprof package (best effort; xprof returns nothing for CPU)."""
    try:
        from xprof.convert import raw_to_tool_data  # type: ignore[import-not-found]
    except Exception:
        raise ProfileError("the xprof backend needs the optional xprof package (pip install xprof)") from None
    try:
        result = raw_to_tool_data.xspace_to_tool_data([str(file)], "op_profile", {})
        data = result[0] if isinstance(result, tuple) else result
        profile = json.loads(data)
    except Exception as exc:
        raise ProfileError(f"{file.name}: xprof could not convert it ({exc})") from None
    capture = _Capture()
    root = profile.get("byCategory") or profile.get("byProgram") or {}
    ops: list[tuple] = []

    def walk(node, category):
        metrics = node.get("metrics") or {}
        xla = node.get("xla")
        if xla and not node.get("children"):
            time_ps = float(metrics.get("rawTime", 0) or 0)
            ops.append(("/device:xprof", "XLA Ops", node.get("name", "?"), 0.0, time_ps / 1e3,
                        xla.get("category") or category, None, None))
        for child in node.get("children") or []:
            walk(child, node.get("name") if category is None else category)

    walk(root, None)
    capture.ops = ops
    capture.event_count = len(ops)
    capture.span_start, capture.span_end = 0.0, sum(op[4] for op in ops)
    capture.warnings.append("xprof gives op totals only: no steps, busy or idle figures")
    if not ops:
        capture.warnings.append("xprof returned no ops (it gives empty tables for CPU captures)")
    return capture


# ----------------------------------------------------------------------------- aggregation

def _union_ns(intervals: list[tuple[float, float]]) -> float:
    total = 0.0
    current_start = current_end = None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_end is not None:
        total += current_end - current_start
    return total


def _self_times(ops: list[tuple]) -> list[float]:
    """Self time of each op: its duration minus nested ops on the same device and thread."""
    result = [op[4] for op in ops]
    by_line: dict[tuple, list[int]] = {}
    for i, op in enumerate(ops):
        by_line.setdefault((op[0], op[1]), []).append(i)
    for indexes in by_line.values():
        indexes.sort(key=lambda i: (ops[i][3], -ops[i][4]))
        stack: list[int] = []
        for i in indexes:
            start, end = ops[i][3], ops[i][3] + ops[i][4]
            while stack and ops[stack[-1]][3] + ops[stack[-1]][4] <= start:
                stack.pop()
            if stack and end <= ops[stack[-1]][3] + ops[stack[-1]][4]:
                result[stack[-1]] -= ops[i][4]
            stack.append(i)
    return [max(0.0, t) for t in result]


def _steps(capture: _Capture) -> tuple[int | None, float | None, tuple[float, float] | None, str]:
    """(steps, median step ms, step window (start_ns, end_ns) or None, where it came from)."""
    if capture.steps:
        devices: dict[str, list[tuple[float, float]]] = {}
        for device, start, dur in capture.steps:
            devices.setdefault(device, []).append((start, dur))
        device_steps = max(devices.values(), key=len)
        window = (min(start for start, _ in device_steps), max(start + dur for start, dur in device_steps))
        return (len(device_steps), statistics.median(dur for _, dur in device_steps) / 1e6, window,
                "steps")
    # No step markers: executions (run ids) of the program with the most op time.
    programs: dict[str, float] = {}
    runs: dict[tuple, list[float]] = {}  # (module, run, device) -> [first start, last end]
    for device, _thread, _name, start, dur, _cat, module, run_id in capture.ops:
        if module is None or run_id is None:
            continue
        programs[module] = programs.get(module, 0.0) + dur
        span = runs.setdefault((module, run_id, device), [start, start + dur])
        span[0], span[1] = min(span[0], start), max(span[1], start + dur)
    if not programs:
        return None, None, None, "capture"
    main = max(programs, key=programs.get)
    devices_spans: dict[str, list[list[float]]] = {}
    for (module, _run, device), span in runs.items():
        if module == main:
            devices_spans.setdefault(device, []).append(span)
    spans = sorted(max(devices_spans.values(), key=len))
    window = (spans[0][0], max(end for _, end in spans))
    if len(spans) < 2:
        return len(spans), None, window, "program"
    gaps = [b[0] - a[0] for a, b in zip(spans, spans[1:])]
    return len(spans), statistics.median(gaps) / 1e6, window, "program"


def _aggregate(capture: _Capture, file: Path, backend: str, hlo_categories: dict[str, str],
               warnings: list[str]) -> ProfileSummary:
    ops = _prefer_device(capture).ops
    warnings = [*warnings, *capture.warnings]
    capture_ns = max(0.0, capture.span_end - capture.span_start) if capture.event_count else 0.0
    steps, step_ms, window, window_source = (_steps(capture) if backend != "xprof"
                                             else (None, None, None, "capture"))
    if window is None or window[1] <= window[0]:
        window, window_source = (capture.span_start, capture.span_end), "capture"
    window_ns = max(0.0, window[1] - window[0]) if capture.event_count else 0.0
    self_times = _self_times(ops)
    classified_by = "name"
    if any(op[5] for op in ops):
        classified_by = "hlo_category"
    elif hlo_categories:
        classified_by = "hlo text"
    per_op: dict[str, list] = {}
    category_ns = {c: 0.0 for c in CATEGORIES}
    for op, self_ns in zip(ops, self_times):
        name, hlo_category = op[2], op[5]
        if hlo_category:
            category = category_from_hlo_category(hlo_category)
        elif name in hlo_categories:
            category = hlo_categories[name]
        else:
            category = category_from_name(name)
        category_ns[category] += self_ns
        entry = per_op.get(name)
        if entry is None:
            per_op[name] = [category, 1, self_ns]
        else:
            entry[1] += 1
            entry[2] += self_ns
    op_ns = sum(category_ns.values())
    pct = (lambda ns: round(100.0 * ns / op_ns, 2)) if op_ns > 0 else (lambda ns: 0.0)
    top = sorted(per_op.items(), key=lambda item: -item[1][2])[:TOP_OPS]
    devices = sorted({op[0] for op in ops})
    busy_pct = idle_pct = None
    if ops and window_ns > 0 and backend != "xprof":
        per_device: dict[str, list[tuple[float, float]]] = {}
        for op in ops:  # only what ran inside the window counts
            start, end = max(op[3], window[0]), min(op[3] + op[4], window[1])
            per_device.setdefault(op[0], [])
            if end > start:
                per_device[op[0]].append((start, end))
        busy = [min(1.0, _union_ns(iv) / window_ns) for iv in per_device.values()]
        busy_pct = round(100.0 * sum(busy) / len(busy), 2)
        idle_pct = round(100.0 - busy_pct, 2)
    if not ops:
        warnings.append("no XLA ops found in the capture")
    return ProfileSummary(
        path=str(file),
        backend=backend,
        window_ms=round(window_ns / 1e6, 4),
        capture_ms=round(capture_ns / 1e6, 4),
        window_source=window_source,
        steps=steps,
        step_time_ms=round(step_ms, 4) if step_ms is not None else None,
        busy_pct=busy_pct,
        idle_pct=idle_pct,
        op_time_ms=round(op_ns / 1e6, 4),
        categories={c: {"ms": round(category_ns[c] / 1e6, 4), "pct": pct(category_ns[c])} for c in CATEGORIES},
        top_ops=[OpStat(name, cat, count, round(ns / 1e6, 4), pct(ns)) for name, (cat, count, ns) in top],
        devices=devices,
        event_count=capture.event_count,
        op_count=len(ops),
        classified_by=classified_by,
        warnings=warnings,
    )


# ----------------------------------------------------------------------------- entry points

def summarize(path: Path | str, backend: str | None = None) -> ProfileSummary:
    """Summarize one capture (blocking). Raises ProfileError only."""
    if backend is not None and backend not in BACKENDS:
        raise ProfileError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    try:
        folder, xplanes, traces = resolve_capture(path)
        warnings: list[str] = []
        if len(xplanes) > 1 or len(traces) > 1:
            warnings.append(f"{folder}: several hosts' files; summarizing the first "
                            f"({(xplanes or traces)[0].name})")
        hlo = _load_hlo_categories(folder, warnings)
        if backend is None:
            if xplanes and _jax_available():
                try:
                    return _aggregate(_read_xplane(xplanes[0]), xplanes[0], "xplane", hlo, warnings)
                except ProfileError as exc:
                    if not traces:
                        raise
                    warnings.append(f"{exc}; used the trace JSON instead")
                    return _aggregate(_read_trace(traces[0]), traces[0], "trace", hlo, warnings)
            if traces:
                return _aggregate(_read_trace(traces[0]), traces[0], "trace", hlo, warnings)
            raise ProfileError(f"{xplanes[0]}: reading xplane files needs jax (jaxlib); no trace JSON beside it")
        if backend == "trace":
            if not traces:
                raise ProfileError(f"{folder}: no *.trace.json.gz (remote captures have only the xplane)")
            return _aggregate(_read_trace(traces[0]), traces[0], "trace", hlo, warnings)
        if not xplanes:
            raise ProfileError(f"{folder}: no *.xplane.pb for the {backend} backend")
        reader = _read_xplane if backend == "xplane" else _read_xprof
        return _aggregate(reader(xplanes[0]), xplanes[0], backend, hlo, warnings)
    except ProfileError:
        raise
    except MemoryError:
        raise ProfileError(f"{path}: out of memory while summarizing") from None
    except Exception as exc:  # never a traceback for a bad capture
        raise ProfileError(f"{path}: cannot summarize: {type(exc).__name__}: {exc}") from None


async def summarize_async(path: Path | str, backend: str | None = None) -> ProfileSummary:
    """`summarize` in a worker thread, for the engine's event loop."""
    return await asyncio.to_thread(summarize, path, backend)


# ----------------------------------------------------------------------------- CLI

def render(summary: ProfileSummary, console=None) -> None:
    """Readable tables (rich)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: whole paths and op names, no cut
            console = Console(width=max(200, len(summary.path) + 40), soft_wrap=True)

    def fmt(value, unit="", digits=2):
        return "—" if value is None else f"{value:.{digits}f}{unit}"

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("capture", summary.path)
    head.add_row("backend", f"{summary.backend} (categories by {summary.classified_by})")
    head.add_row("devices", ", ".join(summary.devices) or "—")
    where = {"steps": "first step to last step", "program": "the main program's executions",
             "capture": "the whole capture: no steps found"}.get(summary.window_source, "")
    head.add_row("step window", f"{summary.window_ms:.2f} ms ({where})")
    head.add_row("capture span", f"{summary.capture_ms:.2f} ms, {summary.event_count} events, {summary.op_count} ops")
    head.add_row("steps", f"{summary.steps if summary.steps is not None else '—'}"
                          f"  step time {fmt(summary.step_time_ms, ' ms', 3)}")
    head.add_row("busy / idle", f"{fmt(summary.busy_pct, '%', 1)} / {fmt(summary.idle_pct, '%', 1)} of the step window")
    head.add_row("op time", f"{summary.op_time_ms:.3f} ms (sum over threads)")
    console.print(head)

    categories = Table(title="Time by category", title_justify="left")
    categories.add_column("category")
    categories.add_column("ms", justify="right")
    categories.add_column("%", justify="right")
    for key in CATEGORIES:
        row = summary.categories[key]
        categories.add_row(CATEGORY_LABELS[key], f"{row['ms']:.3f}", f"{row['pct']:.1f}")
    console.print(categories)

    ops = Table(title="Top ops by self time", title_justify="left")
    ops.add_column("op", overflow="fold")
    ops.add_column("category")
    ops.add_column("count", justify="right")
    ops.add_column("self ms", justify="right")
    ops.add_column("%", justify="right")
    for op in summary.top_ops:
        ops.add_row(op.name, CATEGORY_LABELS[op.category], str(op.count), f"{op.self_ms:.3f}", f"{op.pct:.1f}")
    console.print(ops)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)


def iter_summaries(paths: Iterable[Path | str], backend: str | None = None):
    """(path, summary or ProfileError) for each path; handy for batch tools and benches."""
    for path in paths:
        try:
            yield path, summarize(path, backend)
        except ProfileError as exc:
            yield path, exc
