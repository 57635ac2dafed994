"""A scripted OpenAI Responses API server on 127.0.0.1, for Codex lanes in tests and the demo.

The real Codex CLI runs unchanged against it through a custom model provider
(``wire_api = "responses"``, ``base_url = server.base_url``; see :func:`provider_config`).
It serves ``POST /v1/responses`` with ``stream: true`` as data-only server-sent events, the
way Codex 0.171 reads them, and every request takes the next *step* of a script::

    server = ScriptedResponses([
        FunctionCall("exec_command", {"cmd": "echo hi"}),
        FunctionCall("run_benchmark", {"description": "d"}, namespace="mcp__autoresearch"),
        Message("done"),
    ]).start()
    server.fail_next(2, 429)          # the next 2 requests answer HTTP 429
    ...
    server.main_requests[-1].input    # what the model received last time
    server.stop()

A step is one model response: a :class:`Reply` (output items plus usage) or a shorthand that
becomes a one-item reply: a ``str`` (an assistant message), :class:`Message`,
:class:`FunctionCall`, :class:`CustomToolCall`, :class:`ToolSearchCall`; or a failure:
:class:`HttpError` (a status and a JSON body, no stream), :class:`StreamDrop` (the stream ends
before ``response.completed``), :class:`ResponseFailed` (a ``response.failed`` event). A step
may also be a callable ``f(request) -> step``, so a script can answer from what it received;
calls to callables are serialized, so they may keep plain state.

Compaction requests (Codex's own context summarisation, :func:`is_compaction`) never consume
a step: they get ``compact_reply`` and are recorded with ``kind == "compact"``.

Facts this relies on (observed with Codex 0.171.0, see docs/architecture.md "Codex lanes"):
Codex only ever sends ``POST /v1/responses`` with the whole history; compaction with a custom
provider is an ordinary streamed request whose ``x-codex-turn-metadata`` header says
``"request_kind": "compaction"``; without ``usage`` in ``response.completed`` token counts
read 0, so every reply carries usage (by default ``input_tokens = len(body) // 4``).

Standard library only; never imports textual. Secret headers are never recorded.
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Union

__all__ = [
    "COMPACT_MARKERS", "CustomToolCall", "FAKE_API_KEY", "FunctionCall", "HttpError", "Message",
    "Reply", "Request", "ResponseFailed", "ScriptedResponses", "StreamDrop", "ToolSearchCall",
    "Usage", "is_compaction", "provider_config", "turn_metadata",
]

FAKE_API_KEY = "scripted-responses-no-real-key"
"""The only key handed to Codex for this server: obviously fake, so a leak is harmless."""

PROVIDER_ID = "scripted"
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
COMPACT_MARKERS = ("CONTEXT CHECKPOINT COMPACTION",)


def provider_config(base_url: str, *, env_key: str = "AUTORESEARCH_SCRIPTED_KEY",
                    retries: int | None = None) -> dict[str, Any]:
    """The Codex config keys that point it at a scripted server (``[agent.codex] config``).

    ``retries`` sets the provider's request and stream retry counts (Codex's defaults are 4
    and 5, with backoff: a test of a lane's own backoff wants 0).
    """
    provider: dict[str, Any] = {"name": "Scripted Responses (offline)", "base_url": base_url,
                                "wire_api": "responses", "env_key": env_key}
    if retries is not None:
        provider.update(request_max_retries=retries, stream_max_retries=retries)
    return {"model_provider": PROVIDER_ID, "model_providers": {PROVIDER_ID: provider}}


# ---------------------------------------------------------------- steps


@dataclass
class Usage:
    input_tokens: int | None = None      # None: estimated from the request's size
    output_tokens: int = 10
    cached_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def to_json(self, request_bytes: int) -> dict:
        inp = self.input_tokens if self.input_tokens is not None else max(1, request_bytes // 4)
        return {
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_output_tokens},
            "total_tokens": inp + self.output_tokens,
        }


@dataclass
class Message:
    """An assistant message (ends the turn unless another item of the reply calls a tool)."""
    text: str
    chunks: int = 1          # >1: streamed as that many output_text deltas

    def item(self, ids: "_Ids") -> dict:
        return {"type": "message", "id": ids.next("msg"), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": self.text, "annotations": []}]}


@dataclass
class FunctionCall:
    """A function call. The shell is ``exec_command`` ({"cmd", "workdir"}); MCP tools are
    ``namespace="mcp__<server>"`` with ``name=<tool>``."""
    name: str
    arguments: Union[dict, str] = field(default_factory=dict)
    namespace: str | None = None
    call_id: str | None = None

    def item(self, ids: "_Ids") -> dict:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        item = {"type": "function_call", "id": ids.next("fc"), "call_id": self.call_id or ids.next("call"),
                "name": self.name, "arguments": args, "status": "completed"}
        if self.namespace:
            item["namespace"] = self.namespace
        return item


@dataclass
class CustomToolCall:
    """A freeform tool call, e.g. ``CustomToolCall("apply_patch", "*** Begin Patch ...")``."""
    name: str
    input: str
    call_id: str | None = None

    def item(self, ids: "_Ids") -> dict:
        return {"type": "custom_tool_call", "id": ids.next("ctc"), "call_id": self.call_id or ids.next("call"),
                "name": self.name, "input": self.input, "status": "completed"}


@dataclass
class ToolSearchCall:
    """Client-side tool search (bundled model slugs defer MCP tools behind ``tool_search``)."""
    query: str
    limit: int | None = None
    call_id: str | None = None

    def item(self, ids: "_Ids") -> dict:
        args: dict = {"query": self.query}
        if self.limit is not None:
            args["limit"] = self.limit
        return {"type": "tool_search_call", "id": ids.next("tsc"), "call_id": self.call_id or ids.next("call"),
                "execution": "client", "arguments": args, "status": "completed"}


@dataclass
class Reply:
    """One model response: output items in order, then ``response.completed``."""
    items: list = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class HttpError:
    status: int = 500
    message: str = "scripted error"
    retry_after: float | None = None     # seconds, sent as Retry-After when set
    code: str | None = None              # e.g. "rate_limit_exceeded", "context_length_exceeded"


@dataclass
class StreamDrop:
    """Send these items, then close the stream without ``response.completed``."""
    items: list = field(default_factory=list)


@dataclass
class ResponseFailed:
    code: str = "server_error"
    message: str = "scripted response.failed"


Step = Union[str, Message, FunctionCall, CustomToolCall, ToolSearchCall, Reply, HttpError, StreamDrop,
             ResponseFailed, Callable[["Request"], Any]]

# ---------------------------------------------------------------- recording


@dataclass
class Request:
    """One HTTP request the server received, with views for assertions."""
    n: int                      # 0-based arrival order, all kinds
    method: str
    path: str
    headers: dict               # lower-cased names; secret values replaced by "<redacted>"
    body: Any                   # parsed JSON (None when not JSON)
    size: int                   # bytes of the body
    kind: str = "main"          # "main" | "compact" | "other"
    answer: str = ""            # what was answered: "reply", "http 429", "drop", ...
    step: int | None = None     # index into the script for main requests
    t: float = field(default_factory=time.time)

    @property
    def meta(self) -> dict:
        """Codex's x-codex-turn-metadata: request_kind, turn_id, window_id, compaction, ..."""
        return turn_metadata(self.headers)

    @property
    def thread_id(self) -> str | None:
        """The Codex thread (conversation) this request belongs to."""
        return self.headers.get("thread-id") or self.meta.get("thread_id")

    @property
    def input(self) -> list:
        return self.body.get("input", []) if isinstance(self.body, dict) else []

    @property
    def tools(self) -> list:
        return self.body.get("tools", []) if isinstance(self.body, dict) else []

    def tool_names(self) -> list[str]:
        """Tool names; namespaced tools as ``namespace/name``."""
        out = []
        for tool in self.tools:
            if tool.get("type") == "namespace":
                out.extend(f"{tool.get('name')}/{sub.get('name')}" for sub in tool.get("tools", []))
            else:
                out.append(tool.get("name") or tool.get("type"))
        return out

    def user_texts(self) -> list[str]:
        """Text of every user message in the input, in order."""
        return [_text(item) for item in self.input
                if item.get("type") == "message" and item.get("role") == "user"]

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def outputs(self) -> dict[str, str]:
        """call_id -> output text, for every tool output in the input."""
        return {item["call_id"]: _output_text(item) for item in self.input
                if item.get("type") in ("function_call_output", "custom_tool_call_output", "tool_search_output")}

    @property
    def new_text(self) -> str:
        """What the model got after its own last output: tool outputs and user messages."""
        tail: list[str] = []
        for item in reversed(self.input):
            kind = item.get("type")
            if kind in ("function_call", "custom_tool_call", "tool_search_call", "reasoning") or (
                    kind == "message" and item.get("role") == "assistant"):
                break
            if kind == "message":
                tail.append(_text(item))
            elif kind and kind.endswith("_output"):
                tail.append(_output_text(item))
        return "\n".join(reversed(tail))

    def contains(self, needle: str) -> bool:
        return needle in self.text_blob()

    def text_blob(self) -> str:
        return json.dumps(self.body, ensure_ascii=False) if self.body is not None else ""

    def summary(self) -> str:
        return (f"#{self.n} {self.kind} {self.answer} step={self.step} thread={(self.thread_id or '-')[-8:]} "
                f"last user: {self.last_user_text()[:100]!r}")


def _text(item: dict) -> str:
    return "".join(c.get("text", "") for c in item.get("content") or []
                   if isinstance(c, dict) and c.get("type") in ("input_text", "output_text", "text"))


def _output_text(item: dict) -> str:
    output = item.get("output", item.get("tools"))
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # content items
        return "".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in output)
    return json.dumps(output)


def turn_metadata(headers: dict) -> dict:
    """Codex's ``x-codex-turn-metadata`` header (JSON); {} when absent or malformed."""
    try:
        value = json.loads(headers.get("x-codex-turn-metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_compaction(body: Any, headers: dict | None = None) -> bool:
    """Does this request ask the model to summarise the history (Codex's compaction)?

    The header's ``request_kind`` decides (it also holds with a custom ``compact_prompt``);
    without it, the summarisation prompt as the last user item does.
    """
    if headers and turn_metadata(headers).get("request_kind") == "compaction":
        return True
    if not isinstance(body, dict) or not body.get("input"):
        return False
    last = body["input"][-1]
    if not isinstance(last, dict) or last.get("type") != "message" or last.get("role") != "user":
        return False
    return any(marker in _text(last) for marker in COMPACT_MARKERS)


# ---------------------------------------------------------------- server


class _Ids:
    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._counter)}"


class ScriptedResponses:
    def __init__(self, script: Iterable[Step] | Callable[[Request], Any] = (), *, host: str = "127.0.0.1",
                 port: int = 0, compact_reply: Union[str, Callable[[Request], Any]] =
                 "SUMMARY: scripted compaction summary.", when_exhausted: Step = "(script exhausted)",
                 delta_delay_s: float = 0.0, pace_s: float = 0.0, keep_requests: int | None = None) -> None:
        """``script``: steps played in order, or one callable answering every main request.
        ``pace_s`` sleeps between streamed events (the demo's pacing); ``keep_requests``
        bounds the recorded requests (a long demo must not keep every conversation)."""
        self._callable_script = script if callable(script) else None
        self.script: list = [] if callable(script) else list(script)
        self.host, self.port = host, port
        self.compact_reply = compact_reply
        self.when_exhausted = when_exhausted
        self.delta_delay_s = delta_delay_s
        self.pace_s = pace_s
        self.keep_requests = keep_requests
        self.requests: list[Request] = []
        self.exhausted = 0                       # main requests answered after the script ran out
        self._count = 0
        self._cursor = 0
        self._fail_queue: list[HttpError | StreamDrop | ResponseFailed] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._script_lock = threading.Lock()     # callables run one at a time
        self._ids = _Ids()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control
    def start(self) -> "ScriptedResponses":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-responses",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ScriptedResponses":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def add(self, *steps: Step) -> None:
        """Append steps to the script (e.g. between turns)."""
        with self._lock:
            self.script.extend(steps)

    def fail_next(self, n: int, status: int = 500, *, retry_after: float | None = None,
                  message: str | None = None, code: str | None = None) -> None:
        """The next ``n`` main requests answer HTTP ``status`` instead of a script step.

        Codex 0.171 retries a 5xx itself (request_max_retries, then stream_max_retries); a
        429 only when ``retry_after`` is set: without a Retry-After header the turn fails.
        """
        with self._lock:
            self._fail_queue.extend(HttpError(status, message or f"scripted {status}", retry_after, code)
                                    for _ in range(n))

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` main requests get a stream that ends without response.completed."""
        with self._lock:
            self._fail_queue.extend(StreamDrop() for _ in range(n))

    @property
    def main_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind == "main"]

    @property
    def remaining(self) -> int:
        return len(self.script) - self._cursor

    def wait_for_requests(self, n: int, timeout: float = 30.0, kind: str | None = "main") -> list[Request]:
        """Block until at least ``n`` requests (of ``kind``; None = any) were recorded."""
        def have() -> list[Request]:
            return [r for r in self.requests if kind is None or r.kind == kind]
        with self._cond:
            if not self._cond.wait_for(lambda: len(have()) >= n, timeout):
                raise TimeoutError(f"{len(have())} of {n} {kind or ''} requests after {timeout}s")
            return have()

    def dump(self) -> str:
        """Every recorded request in one line each (attached to failing tests' reports)."""
        with self._lock:
            return "\n".join(r.summary() for r in self.requests) or "(no requests)"

    # -- request handling (handler threads)
    def _record(self, req: Request) -> None:
        with self._lock:
            req.n = self._count
            self._count += 1
            self.requests.append(req)
            if self.keep_requests is not None and len(self.requests) > 2 * self.keep_requests:
                del self.requests[: -self.keep_requests]
            self._cond.notify_all()

    def _choose(self, req: Request) -> Any:
        self._record(req)
        with self._lock:
            if req.kind == "compact":
                step = self.compact_reply
            elif self._fail_queue:
                step = self._fail_queue.pop(0)
            elif self._callable_script is not None:
                req.step = self._cursor
                self._cursor += 1
                step = self._callable_script
            elif self._cursor < len(self.script):
                req.step = self._cursor
                step = self.script[self._cursor]
                self._cursor += 1
            else:
                self.exhausted += 1
                step = self.when_exhausted
        while callable(step) and not isinstance(step, type):
            with self._script_lock:
                step = step(req)
        return step

    def _events_for(self, step: Any, request_bytes: int) -> tuple[list[dict], str]:
        """-> (events, label) of a streamed answer."""
        rid = self._ids.next("resp")
        created = {"type": "response.created", "response": {"id": rid}}
        if isinstance(step, ResponseFailed):
            return [created, {"type": "response.failed", "response": {"id": rid, "error": {
                "code": step.code, "message": step.message}}}], "response.failed"
        drop = isinstance(step, StreamDrop)
        reply = step if isinstance(step, Reply) else Reply(items=step.items) if drop else Reply(items=[step])
        events: list[dict] = [created]
        for index, raw in enumerate(reply.items):
            spec = Message(raw) if isinstance(raw, str) else raw
            item = spec.item(self._ids) if hasattr(spec, "item") else dict(spec)
            added = dict(item, status="in_progress")
            if item.get("type") == "message":
                added["content"] = []
            events.append({"type": "response.output_item.added", "output_index": index, "item": added})
            if isinstance(spec, Message) and spec.chunks > 1:
                size = max(1, -(-len(spec.text) // spec.chunks))
                for start in range(0, len(spec.text), size):
                    events.append({"type": "response.output_text.delta", "item_id": item["id"],
                                   "output_index": index, "content_index": 0,
                                   "delta": spec.text[start:start + size]})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        if drop:
            return events, "drop"
        events.append({"type": "response.completed", "response": {
            "id": rid, "status": "completed", "usage": reply.usage.to_json(request_bytes)}})
        return events, "reply"


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedResponses
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _request(self, raw: bytes, kind: str | None = None) -> Request:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
                   for k, v in self.headers.items()}
        req = Request(n=-1, method=self.command, path=self.path, headers=headers, body=body, size=len(raw))
        req.kind = kind or ("compact" if is_compaction(body, headers) else "main")
        return req

    def do_GET(self) -> None:
        req = self._request(b"", kind="other")
        self.owner._record(req)
        req.answer = "http 404"
        self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        raw = self._read_body()
        if not self.path.split("?")[0].rstrip("/").endswith("/responses"):
            req = self._request(raw, kind="other")
            self.owner._record(req)
            req.answer = "http 404"
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        req = self._request(raw)
        step = self.owner._choose(req)
        if isinstance(step, HttpError):
            req.answer = f"http {step.status}"
            headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else {}
            error = {"message": step.message, "type": "scripted"}
            if step.code:
                error["code"] = step.code
            self._json(step.status, {"error": error}, headers)
            return
        events, label = self.owner._events_for(step, len(raw))
        req.answer = label
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if label == "drop":
            self.send_header("Connection", "close")
        self.end_headers()
        owner = self.owner
        try:
            for event in events:
                self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                if owner.delta_delay_s and event["type"] == "response.output_text.delta":
                    time.sleep(owner.delta_delay_s)
                elif owner.pace_s:
                    time.sleep(owner.pace_s)
            if label == "drop":
                self.wfile.flush()
                self.close_connection = True
                return          # no terminating chunk: the stream breaks mid-way
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
