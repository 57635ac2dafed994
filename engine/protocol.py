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

from autoresearch_tui.engine.core.events import dumps, tidy_numbers
from autoresearch_tui.engine.core.ledger import RUN_ID_PATTERN

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
    except RecursionError:
        raise ProtocolError("request is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ProtocolError(f"request is not usable JSON: {str(exc)[:120]}") from None
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
    if "run_id" in request and not RUN_ID_PATTERN.match(request["run_id"]):
        raise ProtocolError("'run_id' must be a run number such as 0001")
    if "name" in request and len(request["name"]) > 200:
        raise ProtocolError("'name' is too long")
    if request.get("types") is not None and not (
        isinstance(request["types"], list) and all(isinstance(x, str) for x in request["types"])
    ):
        raise ProtocolError("'types' must be a list of event types or null")
    if "limit" in request and not (isinstance(request["limit"], int) and not isinstance(request["limit"], bool)
                                   and 0 < request["limit"] <= 10000):
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
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return request.get("id") if isinstance(request, dict) else None


def encode(message: dict[str, Any]) -> bytes:
    """One message line; floats without noise (core.events.tidy_numbers), DEL and C1 escaped
    (core.events.dumps)."""
    return (dumps(tidy_numbers(message)) + "\n").encode("utf-8")


SUN_PATH_MAX = 107
"""Bytes of a unix socket path (108 with the terminating NUL on Linux)."""
STATE_DIRNAME = ".autoresearch"
SOCKET_NAME = "engine.sock"


class SocketLocationError(RuntimeError):
    """The socket's folder cannot be used safely; the text says why and what to do."""


def check_private_dir(path: Path, *, create: bool) -> Path:
    """`path` as a folder only this user can open (created 0700 when `create`).

    Refuses a folder, or a symlink, owned by someone else: a socket there could be
    swapped or watched by them."""
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SocketLocationError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise SocketLocationError(f"cannot inspect {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SocketLocationError(f"{path} is not a folder (a symlink or a file is in its place): "
                                  "remove it, or move the workspace")
    if info.st_uid != os.getuid():
        raise SocketLocationError(f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
                                  "refusing to put the engine's socket there; remove it or ask its owner")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def runtime_dir() -> Path:
    """The per-user fallback folder for sockets: /tmp/autoresearch-tui-<uid> (or $TMPDIR).

    Not $XDG_RUNTIME_DIR: logind deletes /run/user/<uid> when the user's last session ends,
    which is exactly when a detached engine must stay reachable."""
    return check_private_dir(Path(tempfile.gettempdir()) / f"autoresearch-tui-{os.getuid()}", create=True)


def socket_path(workspace: Path) -> Path:
    """The engine's socket: `<workspace>/.autoresearch/engine.sock` (it survives logout and
    lives as long as the workspace), or, when that path is too long for a unix socket, a
    file named by a hash of the workspace in the per-user runtime_dir()."""
    root = Path(workspace).resolve()
    preferred = root / STATE_DIRNAME / SOCKET_NAME
    if len(os.fsencode(str(preferred))) <= SUN_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return runtime_dir() / f"{digest}.sock"
