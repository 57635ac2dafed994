"""The engine's wire protocol: JSON lines over a private unix socket.

Client → engine: one request object per line, `{"id": <any>, "op": "<name>", ...args}`.
Engine → client: replies `{"id": <same>, "ok": true, ...}` / `{"id": ..., "ok": false,
"error": "<sentence>"}`, and, after `subscribe`, pushed events `{"event": {...}}` and pushed
lane snapshots `{"lane_snapshot": {...}}` (engine/core/snapshot.LaneSnapshot) whenever a lane
changed, at most every 0.25 s per lane.

A connection starts with `hello` (`{"op": "hello", "version": 1}`); a client speaking
another major version gets an error and may retry with the version the reply names.
Unknown ops and malformed lines get an error reply; the connection stays open.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.core.events import tidy_numbers

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1024 * 1024

# op name -> (required args, optional args)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hello": (("version",), ("client",)),
    "snapshot": ((), ()),
    "subscribe": ((), ("lanes", "since")),
    "unsubscribe": ((), ()),
    "history": (("lane",), ("before", "limit", "types")),
    "ledger": (("lane",), ()),
    "run_details": (("lane", "run_id"), ()),
    "pause": (("lane",), ()),
    "resume": (("lane",), ()),
    "retrospective": (("lane",), ()),
    "stop_lane": (("lane",), ()),
    "merge": (("lane",), ()),
    "merge_preview": (("lane",), ()),
    "send_message": (("lane", "text"), ()),
    "add_lane": (("name",), ("focus",)),
    "stop_engine": ((), ()),
    "ping": ((), ()),
}


class ProtocolError(ValueError):
    """A request the engine cannot act on; the text goes back to the client."""


def parse_request(line: bytes | str) -> dict[str, Any]:
    """Validate one request line; raises ProtocolError with a sentence for the client."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("request is not UTF-8") from None
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"request is not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(request, dict):
        raise ProtocolError("request must be a JSON object")
    op = request.get("op")
    if not isinstance(op, str):
        raise ProtocolError("request has no 'op' string")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r} (known: {', '.join(sorted(OPS))})")
    required, optional = OPS[op]
    missing = [name for name in required if name not in request]
    if missing:
        raise ProtocolError(f"op {op!r} needs {', '.join(missing)}")
    unknown = set(request) - set(required) - set(optional) - {"op", "id"}
    if unknown:
        raise ProtocolError(f"op {op!r} does not take {', '.join(sorted(unknown))}")
    for name in ("lane", "text", "name", "focus", "run_id"):
        if name in request and not isinstance(request[name], str):
            raise ProtocolError(f"{name!r} must be a string")
    if "limit" in request and not (isinstance(request["limit"], int) and 0 < request["limit"] <= 10000):
        raise ProtocolError("'limit' must be an integer from 1 to 10000")
    if "lanes" in request and request["lanes"] is not None and not (
        isinstance(request["lanes"], list) and all(isinstance(x, str) for x in request["lanes"])
    ):
        raise ProtocolError("'lanes' must be a list of lane names or null")
    for name in ("since", "before"):
        if request.get(name) is not None and not isinstance(request[name], (int, float)):
            raise ProtocolError(f"{name!r} must be a unix timestamp")
    return request


def request_id_of(line: bytes | str) -> Any:
    """The request's id if the line is a JSON object with one (so errors can be matched)."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return request.get("id") if isinstance(request, dict) else None


def encode(message: dict[str, Any]) -> bytes:
    """One message line; floats without noise (core.events.tidy_numbers)."""
    return (json.dumps(tidy_numbers(message), ensure_ascii=False, default=str) + "\n").encode("utf-8")


def runtime_dir() -> Path:
    """A directory only this user can open, for sockets (short path: sun_path is ~108 bytes)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) if base and Path(base).is_dir() else Path(tempfile.gettempdir())
    path = root / f"autoresearch-tui-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by you: refusing to use it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def socket_path(workspace: Path) -> Path:
    """One socket per workspace, named by a hash of its resolved path."""
    digest = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / f"{digest}.sock"
