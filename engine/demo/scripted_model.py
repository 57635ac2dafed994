"""A scripted Anthropic Messages API server on 127.0.0.1, for tests and the offline demo.

The bundled Claude CLI (and so claude-agent-sdk) runs unchanged against it: point
``ANTHROPIC_BASE_URL`` at :attr:`ScriptedModelServer.base_url` and use :func:`cli_env`.
The server plays a *script* of :class:`Turn` objects (a list played in order, or a callable
``(ModelRequest) -> Turn``), records every request, and can inject HTTP errors.

Which requests play the script (:func:`classify_request`, observed with CLI 2.1.332):

- ``main``: the agent loop. It always sends a ``tools`` key (``[]`` included), streams, and
  has ``max_tokens`` in the thousands. Only these advance the script.
- ``probe``: ``max_tokens <= 1`` (the start-up quota check, model validation).
- ``compact``: a context compaction (``/compact`` or automatic). It looks like a main request
  (same tools, streaming) but its last user message asks for "a detailed summary of the
  conversation"; it gets a canned ``<analysis>/<summary>`` answer (without the tags the CLI
  asks again).
- ``side``: the CLI's side queries (session titles, topic detection, summaries,
  classifiers): they carry no ``tools`` key and are not streamed. Canned short text.
- ``count_tokens`` and ``other`` endpoints: answered harmlessly, never scripted.

In SDK sessions with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (see :func:`cli_env`) the
observed traffic is only ``main`` requests plus ``compact`` ones when compaction runs.
Sub-agents (the Agent tool) send ``main``-looking requests of their own: they consume turns.

A callable script makes a stateful agent, e.g. for a demo::

    def agent(req: ModelRequest) -> Turn:
        if not req.tool_results():            # a new user prompt: start working
            return Turn.tool("Bash", {"command": "python bench.py"}, text="Measuring.")
        if "step_time" in req.tool_result_text():
            return Turn.text("Recorded the run.")
        return Turn.tool("Read", {"file_path": "bench.py"})

Calls to a callable script are serialized, so it may keep plain state; use
:attr:`ModelRequest.session_id` to keep per-session state when several lanes share a server.

Never used with a real key: :func:`cli_env` always sets an obviously fake one.
Standard library only; never imports textual.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FAKE_API_KEY",
    "ModelRequest",
    "ScriptedModelServer",
    "Script",
    "TextBlock",
    "ToolUseBlock",
    "Turn",
    "classify_request",
    "cli_env",
]

log = logging.getLogger(__name__)

#: The only key this module ever hands out: obviously fake, so a leak is harmless and visible.
FAKE_API_KEY = "scripted-model-no-real-key"

DEFAULT_MODEL = "claude-scripted"
DEFAULT_FINAL_TEXT = "Scripted model: the script is finished; nothing more to do."
AUX_TEXT = "Scripted reply"
DEFAULT_COMPACT_SUMMARY = "Scripted compaction summary: the conversation so far was a scripted session."

# Headers whose values must never be recorded (they may carry credentials).
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})
# Phrases of the CLI's compaction prompt (2.1.332: "Your task is to create a detailed summary
# of the conversation so far ..."); either one is enough.
_COMPACT_MARKERS = ("create a detailed summary of the conversation", "an <analysis> block followed by a <summary> block")

RequestKind = str  # "main" | "compact" | "probe" | "side" | "count_tokens" | "other"

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    # Unique per process and readable in logs: toolu_scripted_000001_ab12cd34.
    return f"{prefix}_scripted_{next(_ids):06d}_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------
# Script: turns and blocks
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: Mapping[str, Any]
    id: str | None = None  # None: a fresh id is generated each time the block is served


Block = Union[TextBlock, ToolUseBlock]


@dataclass(frozen=True)
class Turn:
    """One assistant message. ``stop_reason`` is ``tool_use`` iff it holds a tool_use block."""

    blocks: tuple[Block, ...]
    # Seconds to sleep between streamed events (demo pacing); 0 in tests.
    delay_s: float = 0.0

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(isinstance(b, ToolUseBlock) for b in self.blocks) else "end_turn"

    @classmethod
    def text(cls, text: str, *, delay_s: float = 0.0) -> Turn:
        return cls((TextBlock(text),), delay_s=delay_s)

    @classmethod
    def tool(
        cls,
        name: str,
        input: Mapping[str, Any],
        *,
        text: str | None = None,
        delay_s: float = 0.0,
    ) -> Turn:
        """A tool call, optionally preceded by text (as a real model often does)."""
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.append(ToolUseBlock(name, dict(input)))
        return cls(tuple(blocks), delay_s=delay_s)

    @classmethod
    def tools(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        text: str | None = None,
        delay_s: float = 0.0,
    ) -> Turn:
        """Several tool calls in one assistant message (the CLI runs them, then answers all)."""
        blocks: list[Block] = [TextBlock(text)] if text else []
        blocks.extend(ToolUseBlock(name, dict(inp)) for name, inp in calls)
        return cls(tuple(blocks), delay_s=delay_s)


Script = Union[Sequence[Turn], Callable[["ModelRequest"], Turn]]


# --------------------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Flatten message content (a string, or blocks incl. tool_result) into plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                kind = block.get("type")
                if kind == "text":
                    parts.append(str(block.get("text", "")))
                elif kind == "tool_result":
                    parts.append(_content_text(block.get("content")))
                elif kind == "tool_use":
                    parts.append(json.dumps(block.get("input", {}), sort_keys=True))
        return "\n".join(p for p in parts if p)
    return str(content)


@dataclass
class ModelRequest:
    """One HTTP request the server received, with helpers for assertions."""

    index: int
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names; secret values replaced by "<redacted>"
    body: Any  # parsed JSON (dict for /v1/messages), or None
    received_at: float  # time.time()
    kind: RequestKind = "other"  # see classify_request()
    status: int = 0  # HTTP status answered; 0 while the answer is being decided

    @property
    def is_main(self) -> bool:
        """Part of the agent loop (advances the script)."""
        return self.kind == "main"

    @property
    def session_id(self) -> str | None:
        """The CLI session this request belongs to (header ``x-claude-code-session-id``)."""
        return self.headers.get("x-claude-code-session-id")

    @property
    def is_messages(self) -> bool:
        return self.method == "POST" and self.path.rstrip("/") == "/v1/messages"

    def _body(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def model(self) -> str:
        return str(self._body().get("model", ""))

    @property
    def max_tokens(self) -> int | None:
        value = self._body().get("max_tokens")
        return value if isinstance(value, int) else None

    @property
    def stream(self) -> bool:
        return bool(self._body().get("stream", False))

    @property
    def system(self) -> str:
        """The system prompt as text (the API allows a string or a list of text blocks)."""
        return _content_text(self._body().get("system"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self._body().get("messages")
        return msgs if isinstance(msgs, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self._body().get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in self.tools if isinstance(t, dict)]

    @property
    def last_user_message(self) -> dict[str, Any] | None:
        for msg in reversed(self.messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                return msg
        return None

    @property
    def last_user_text(self) -> str:
        """Text of the last user message: its text blocks and tool_result contents.

        Stop-hook block reasons land here ("Stop hook feedback:\n<reason>").
        """
        msg = self.last_user_message
        return _content_text(msg.get("content")) if msg else ""

    @property
    def new_messages(self) -> list[dict[str, Any]]:
        """The messages after the last assistant message: what is new to the model.

        The CLI (2.1.332) also sends ``role: "system"`` messages inside ``messages``:
        PostToolUse ``additionalContext`` arrives as one after the tool_result user message
        ("PostToolUse:Bash hook additional context: ..."), so it is *not* in last_user_text.
        """
        msgs = self.messages
        last_assistant = max(
            (i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "assistant"),
            default=-1,
        )
        return [m for m in msgs[last_assistant + 1 :] if isinstance(m, dict)]

    @property
    def new_text(self) -> str:
        """Text of :attr:`new_messages` (user and system roles, tool results included)."""
        return "\n".join(t for t in (_content_text(m.get("content")) for m in self.new_messages) if t)

    def tool_results(self) -> list[dict[str, Any]]:
        """tool_result blocks of the last user message (what the tools just answered)."""
        msg = self.last_user_message
        content = msg.get("content") if msg else None
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]

    def tool_result_text(self, tool_use_id: str | None = None) -> str:
        """Joined text of the last user message's tool results (or of one, by id)."""
        return "\n".join(
            _content_text(b.get("content"))
            for b in self.tool_results()
            if tool_use_id is None or b.get("tool_use_id") == tool_use_id
        )

    @property
    def body_text(self) -> str:
        """The whole request body as JSON text."""
        return json.dumps(self.body, ensure_ascii=False) if self.body is not None else ""

    def contains(self, needle: str) -> bool:
        """True when `needle` occurs anywhere in the request (system, messages, tools...)."""
        if needle in self.body_text:
            return True
        # Also match against decoded text, where JSON escaping (quotes, newlines) would differ.
        return needle in self.system or any(
            needle in _content_text(m.get("content")) for m in self.messages if isinstance(m, dict)
        )

    def summary(self) -> str:
        return (
            f"#{self.index} {self.method} {self.path} [{self.kind}] status={self.status} "
            f"model={self.model!r} max_tokens={self.max_tokens} tools={len(self.tools)} "
            f"messages={len(self.messages)} last_user={self.last_user_text[:80]!r}"
        )


def classify_request(method: str, path: str, body: Any) -> RequestKind:
    """Sort a request into main / compact / probe / side / count_tokens / other.

    The rule is documented in the module docstring; only ``main`` advances the script.
    """
    clean = path.rstrip("/")
    if method == "POST" and clean == "/v1/messages/count_tokens":
        return "count_tokens"
    if method != "POST" or clean != "/v1/messages" or not isinstance(body, dict):
        return "other"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= 1:
        return "probe"
    if "tools" not in body:
        return "side"
    messages = body.get("messages")
    if isinstance(messages, list):
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None
        )
        text = _content_text(last_user.get("content")) if last_user else ""
        if any(marker in text for marker in _COMPACT_MARKERS):
            return "compact"
    return "main"


# --------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------


def _estimate_tokens(body: Any) -> int:
    # Roughly 4 characters a token: good enough for context-usage displays.
    return max(1, len(json.dumps(body)) // 4) if body is not None else 1


@dataclass(frozen=True)
class _Materialized:
    """A turn with concrete ids, ready to be sent as JSON or as SSE."""

    message_id: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str
    input_tokens: int
    output_tokens: int


def _materialize(turn: Turn, model: str, input_tokens: int) -> _Materialized:
    content: list[dict[str, Any]] = []
    for block in turn.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": block.id or _new_id("toolu"),
                    "name": block.name,
                    "input": dict(block.input),
                }
            )
    output_tokens = max(1, len(json.dumps(content)) // 4)
    return _Materialized(
        _new_id("msg"), model or DEFAULT_MODEL, content, turn.stop_reason, input_tokens, output_tokens
    )


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message_json(m: _Materialized) -> dict[str, Any]:
    return {
        "id": m.message_id,
        "type": "message",
        "role": "assistant",
        "model": m.model,
        "content": m.content,
        "stop_reason": m.stop_reason,
        "stop_sequence": None,
        "usage": _usage(m.input_tokens, m.output_tokens),
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _chunks(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def _sse_events(m: _Materialized) -> Iterator[bytes]:
    """The event sequence of the streaming Messages API, text/tool input split in deltas."""
    start = _message_json(m) | {"content": [], "stop_reason": None}
    start["usage"] = _usage(m.input_tokens, 1)
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(m.content):
        if block["type"] == "text":
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in _chunks(block["text"], 64):
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
        else:
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                },
            )
            for piece in _chunks(json.dumps(block["input"], ensure_ascii=False), 64):
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": m.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": m.output_tokens},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _error_body(status: int, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    etype = error_type or _ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": message or f"Scripted {etype} (HTTP {status})"},
        "request_id": _new_id("req"),
    }


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: float | None
    error_type: str | None


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


class ScriptedModelServer:
    """Loopback Messages API server playing a script. Thread-safe; use as a context manager.

    Args:
        script: turns played in order by main requests, or a callable deciding each turn.
        final_text: the end_turn text answered once a list script is exhausted.
        aux_text: the canned answer to probe and side requests.
        compact_summary: the summary answered to compaction requests.
        input_tokens: report this fixed input token count (deterministic cost) instead of
            an estimate from the request size.
        classify: override the request classification (default :func:`classify_request`).
        host: bind address; loopback only by design.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        final_text: str = DEFAULT_FINAL_TEXT,
        aux_text: str = AUX_TEXT,
        compact_summary: str = DEFAULT_COMPACT_SUMMARY,
        input_tokens: int | None = None,
        classify: Callable[[str, str, Any], RequestKind] = classify_request,
        host: str = "127.0.0.1",
        keep_requests: int | None = None,
    ) -> None:
        # None keeps every request (tests assert on them); a long-running demo keeps only the
        # newest: each request carries the whole conversation, so keeping all grows quadratically.
        self.keep_requests = keep_requests
        self._request_count = 0
        self.final_text = final_text
        self.aux_text = aux_text
        self.compact_summary = compact_summary
        self.input_tokens = input_tokens
        self._classify = classify
        self._host = host
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Serializes calls to a callable script so it may keep plain (non-thread-safe) state.
        self._script_lock = threading.Lock()
        self._requests: list[ModelRequest] = []
        self._failures: list[_Failure] = []
        self._turns: list[Turn] = []
        self._next_turn = 0
        self._script_fn: Callable[[ModelRequest], Turn] | None = None
        self.script_errors: list[BaseException] = []  # exceptions raised by a callable script
        self.unknown_paths: list[str] = []
        self.set_script(script)
        self._httpd: _HTTPServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> ScriptedModelServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"model_server": self})
        httpd = _HTTPServer((self._host, 0), handler)
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-model", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ScriptedModelServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- script -------------------------------------------------------------------------

    def set_script(self, script: Script | None) -> None:
        """Replace the script (a list restarts from its first turn)."""
        with self._lock:
            if script is None:
                self._script_fn, self._turns = None, []
            elif callable(script):
                self._script_fn, self._turns = script, []
            else:
                self._script_fn, self._turns = None, list(script)
            self._next_turn = 0

    def add_turns(self, *turns: Turn) -> None:
        """Append turns to a list script (e.g. from a test while the agent runs)."""
        with self._lock:
            if self._script_fn is not None:
                raise RuntimeError("add_turns() needs a list script, not a callable")
            self._turns.extend(turns)

    @property
    def turns_left(self) -> int:
        with self._lock:
            return max(0, len(self._turns) - self._next_turn) if self._script_fn is None else 0

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        *,
        error_type: str | None = None,
    ) -> None:
        """Answer the next `count` main requests with HTTP `status` and an Anthropic error body.

        Failed requests do not consume the script. `retry_after` sets the Retry-After header.
        """
        with self._lock:
            self._failures.append(_Failure(status, count, retry_after, error_type))

    # -- recorded requests --------------------------------------------------------------

    @property
    def requests(self) -> list[ModelRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[ModelRequest]:
        """Main requests that were answered with a turn (not the injected failures)."""
        with self._lock:
            return [r for r in self._requests if r.is_main and r.status == 200]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(
        self, predicate: Callable[[list[ModelRequest]], bool], timeout: float = 10.0
    ) -> list[ModelRequest]:
        """Block until predicate(requests) holds; raise TimeoutError with a log otherwise.

        Blocking: from async code (where the CLI's client runs on the same loop) use
        :meth:`wait_for_async`.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("scripted model: condition not met; requests:\n" + self._dump_locked())
                self._changed.wait(left)
            return list(self._requests)

    async def wait_for_async(
        self, predicate: Callable[[list[ModelRequest]], bool], timeout: float = 10.0
    ) -> list[ModelRequest]:
        """Like :meth:`wait_for` without blocking the event loop (polls every 20 ms)."""
        import asyncio  # local: the server itself is thread-based

        deadline = time.monotonic() + timeout
        while True:
            requests = self.requests
            if predicate(requests):
                return requests
            if time.monotonic() >= deadline:
                raise TimeoutError("scripted model: condition not met; requests:\n" + self.dump())
            await asyncio.sleep(0.02)

    def dump(self) -> str:
        """One line per request, for assertion messages."""
        with self._lock:
            return self._dump_locked()

    def _dump_locked(self) -> str:
        return "\n".join(r.summary() for r in self._requests) or "(no requests)"

    # -- request handling (called from handler threads) ----------------------------------

    def _record(self, method: str, raw_path: str, headers: Mapping[str, str], body: Any) -> ModelRequest:
        parts = urlsplit(raw_path)
        clean = {
            k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()
        }
        with self._lock:
            req = ModelRequest(
                index=self._request_count,
                method=method,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=clean,
                body=body,
                received_at=time.time(),
                kind=self._classify(method, parts.path, body),
            )
            self._requests.append(req)
            self._request_count += 1
            if self.keep_requests is not None and len(self._requests) > 2 * self.keep_requests:
                del self._requests[: -self.keep_requests]
            self._changed.notify_all()
            return req

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            while self._failures and self._failures[0].remaining <= 0:
                self._failures.pop(0)
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.remaining -= 1
            return failure

    def _set_status(self, req: ModelRequest, status: int) -> None:
        with self._changed:
            req.status = status
            self._changed.notify_all()

    def _next_main_turn(self, req: ModelRequest) -> Turn:
        with self._lock:
            fn = self._script_fn
            if fn is None:
                if self._next_turn < len(self._turns):
                    turn = self._turns[self._next_turn]
                    self._next_turn += 1
                    return turn
                return Turn.text(self.final_text)
        # Call the script outside the main lock: it may inspect server.requests.
        try:
            with self._script_lock:
                return fn(req)
        except Exception as exc:  # a broken script must not kill the server
            log.exception("scripted model: script raised; answering the final text")
            with self._lock:
                self.script_errors.append(exc)
            return Turn.text(f"{self.final_text} (script error: {exc!r})")


class _HTTPServer(ThreadingHTTPServer):
    # The CLI keeps connections alive: never wait for them on close, and cut them on stop()
    # so a stopped server really stops answering.
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # several lanes connecting at once must not wait on SYN retries

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client (the CLI) hanging up mid-connection is normal; anything else is logged.
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        log.exception("scripted model: error while serving %s", client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    model_server: ScriptedModelServer  # set on the bound subclass
    protocol_version = "HTTP/1.1"  # keep-alive + chunked SSE, as the real API does
    server_version = "ScriptedModel/1.0"
    timeout = 300  # idle keep-alive connections are dropped after this (the client reconnects)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("scripted model: " + format, *args)

    # -- plumbing -----------------------------------------------------------------------

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _send_json(self, status: int, payload: Any, extra_headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _new_id("req"))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: Iterator[bytes], delay_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            if delay_s:
                time.sleep(delay_s)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        server = self.model_server
        body = self._read_body() if method in ("POST", "PUT") else None
        req = server._record(method, self.path, dict(self.headers.items()), body)
        path = req.path.rstrip("/")
        try:
            if method == "POST" and path == "/v1/messages":
                self._messages(req)
            elif method == "POST" and path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": _estimate_tokens(body)})
            elif method == "HEAD":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                # Unknown endpoint (metrics, feature flags, ...): log it and answer an empty
                # success so the CLI carries on; `unknown_paths` shows what was hit.
                log.info("scripted model: unknown endpoint %s %s", method, req.path)
                with server._lock:
                    server.unknown_paths.append(f"{method} {req.path}")
                self._send_json(200, {})
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-answer (e.g. an interrupt); nothing to do.
            log.debug("scripted model: client disconnected during %s", req.summary())

    def _messages(self, req: ModelRequest) -> None:
        server = self.model_server
        if req.is_main:
            failure = server._take_failure()
            if failure is not None:
                server._set_status(req, failure.status)
                # The real API's hint; the CLI honours it over its own status rules.
                retryable = failure.status in (408, 409, 429) or failure.status >= 500
                headers = {"x-should-retry": "true" if retryable else "false"}
                if failure.retry_after is not None:
                    headers["retry-after"] = f"{failure.retry_after:g}"
                self._send_json(failure.status, _error_body(failure.status, failure.error_type), headers)
                return
            turn = server._next_main_turn(req)
        elif req.kind == "compact":
            # The CLI keeps only what is inside <summary>; without the tags it asks again.
            turn = Turn.text(
                "<analysis>Scripted compaction.</analysis>\n\n"
                f"<summary>\n{server.compact_summary}\n</summary>"
            )
        else:
            turn = Turn.text(server.aux_text)
        input_tokens = server.input_tokens if server.input_tokens is not None else _estimate_tokens(req.body)
        m = _materialize(turn, req.model, input_tokens)
        server._set_status(req, 200)
        if req.stream:
            self._send_sse(_sse_events(m), turn.delay_s)
        else:
            self._send_json(200, _message_json(m))


# --------------------------------------------------------------------------------------
# CLI environment
# --------------------------------------------------------------------------------------


def cli_env(home: Path, base_url: str, *, max_retries: int | None = None) -> dict[str, str]:
    """Environment for the Claude CLI to run offline against a scripted server.

    Pass it as ``ClaudeAgentOptions(env=...)`` (the SDK merges it over the inherited
    environment) or merge it over ``os.environ`` for a ``claude`` subprocess. `home` becomes
    HOME and CLAUDE_CONFIG_DIR, so the user's real ~/.claude (credentials, settings,
    sessions) is never read or written. `max_retries` sets CLAUDE_CODE_MAX_RETRIES (the CLI
    retries 429/5xx up to 10 times by default, backing off from ~0.5 s; 0 = no retry).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    # Loopback must never go through a proxy inherited from the environment.
    no_proxy = ",".join(
        dict.fromkeys(
            [*filter(None, os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",")),
             "127.0.0.1", "localhost", "::1"]
        )
    )
    env = {
        "HOME": str(home),
        "USERPROFILE": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        # Inherited credentials or provider switches would win over the fake key: blank them
        # (the CLI treats an empty value as unset).
        "ANTHROPIC_AUTH_TOKEN": "",
        "CLAUDE_CODE_OAUTH_TOKEN": "",
        "CLAUDE_CODE_USE_BEDROCK": "",
        "CLAUDE_CODE_USE_VERTEX": "",
        "CLAUDE_CODE_USE_FOUNDRY": "",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        # No telemetry, error reporting, update checks or feature-flag fetches.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    }
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env
