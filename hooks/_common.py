"""Shared plumbing of the standalone hooks: state files, markers, logging, the ledger view.

Standard library only. engine/core (stdlib-only) is loaded by file path, so neither the
`autoresearch_tui` package nor any third-party module is imported by a hook, and the hooks
decide with the engine's own policy, ledger reader and frontier.

On-disk state, all under ``<repo>/.claude/autoresearch/``:

- ``install.json``          what `install-hooks` resolved (experiment, lane, ledger, settings)
                            and what it added (read back by `uninstall-hooks`).
- ``sessions/<id>.json``    one marker per armed session: session id, experiment, lane,
                            settings, policy state, counters. Deleting it disarms the session
                            (its next stop is allowed). Markers not touched for
                            ``marker_max_age_s`` (install.json; env
                            ``AUTORESEARCH_MARKER_MAX_AGE_S`` overrides) are stale: removed,
                            and the session is treated as unarmed.
- ``hooks.log``             why a hook allowed something unusual (malformed input, ...).
- ``lanes/<lane>/``         results.tsv (the ledger the agent appends to), retrospectives/,
                            events.jsonl (hook decisions, in the engine's event format).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


try:  # POSIX: serialize read-modify-write of one session's marker (parallel tool calls)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

STATE_DIRNAME = ".claude/autoresearch"
MARKER_VERSION = 1
DEFAULT_MARKER_MAX_AGE_S = 12 * 3600.0
LOG_MAX_BYTES = 1_000_000
CONFIG_FILENAME = "autoresearch.toml"
DATE_PLACEHOLDER = "<today's date, YYYY-MM-DD>"
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

_HERE = Path(__file__).resolve().parent
CORE_DIR = _HERE.parent / "engine" / "core"
CORE_NAME = "_autoresearch_core"
_core_modules: dict[str, object] = {}


def core(module: str):
    """A module of engine/core, loaded by path (no `autoresearch_tui` import, nothing outside
    the standard library): the hooks and the engine share one policy, one ledger reader and
    frontier, one event format, one set of file helpers."""
    found = _core_modules.get(module)
    if found is None:
        import importlib
        import importlib.util

        if CORE_NAME not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                CORE_NAME, CORE_DIR / "__init__.py", submodule_search_locations=[str(CORE_DIR)])
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load the engine core from {CORE_DIR}")
            package = importlib.util.module_from_spec(spec)
            sys.modules[CORE_NAME] = package  # dataclasses resolve annotations through sys.modules
            spec.loader.exec_module(package)
        found = _core_modules[module] = importlib.import_module(f"{CORE_NAME}.{module}")
    return found


def policy():
    """engine/core/policy.py: the loop policy the engine's lanes apply too."""
    return core("policy")


# ------------------------------------------------------------------------------- paths


class State:
    """The hook state folder of one repo."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.dir = self.root / STATE_DIRNAME
        self.sessions = self.dir / "sessions"
        self.log_path = self.dir / "hooks.log"
        self.install_path = self.dir / "install.json"
        self._install: dict | None = None

    def marker_path(self, session_id: str) -> Path:
        return self.sessions / f"{session_id}.json"

    def lock_path(self, session_id: str) -> Path:
        return self.sessions / f"{session_id}.lock"

    # install.json ---------------------------------------------------------------------
    def install(self) -> dict:
        if self._install is None:
            data = read_json(self.install_path)
            self._install = data if isinstance(data, dict) else {}
        return self._install

    def marker_max_age_s(self) -> float:
        env = os.environ.get("AUTORESEARCH_MARKER_MAX_AGE_S", "").strip()
        for value in (env, self.install().get("marker_max_age_s")):
            try:
                if value not in (None, ""):
                    return float(value)
            except (TypeError, ValueError):
                continue
        return DEFAULT_MARKER_MAX_AGE_S

    # log ------------------------------------------------------------------------------
    def log(self, hook: str, message: str, session_id: str | None = None) -> None:
        """Append one line to hooks.log; never raises (a hook must not fail on logging)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                if self.log_path.stat().st_size > LOG_MAX_BYTES:
                    os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
            except FileNotFoundError:
                pass
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
            sid = f" session={session_id}" if session_id else ""
            line = f"{stamp} {hook}{sid}: {' '.join(str(message).split())}\n"
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(line)
        except Exception:
            pass

    # markers --------------------------------------------------------------------------
    def lock(self, session_id: str) -> "_Lock":
        return _Lock(self.lock_path(session_id))

    def load_marker(self, session_id: str, hook: str) -> dict | None:
        """The session's marker, or None when the session is not armed.

        A malformed marker is logged and treated as unarmed (left in place for inspection,
        renamed *.bad); a stale one is removed and logged.
        """
        path = self.marker_path(session_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.log(hook, f"cannot read marker {path}: {exc}; treating the session as unarmed", session_id)
            return None
        try:
            marker = json.loads(raw)
            if not isinstance(marker, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError) as exc:
            self.log(hook, f"malformed marker {path} ({exc}); renamed to .bad, session unarmed", session_id)
            _quiet(os.replace, path, path.with_suffix(".json.bad"))
            return None
        if self.is_stale(marker, path):
            self.log(hook, f"stale marker removed (untouched for more than "
                           f"{self.marker_max_age_s():.0f}s); session unarmed", session_id)
            _quiet(path.unlink)
            _quiet(self.lock_path(session_id).unlink)
            return None
        return marker

    def is_stale(self, marker: dict, path: Path | None = None, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        updated = marker.get("updated_at")
        if not isinstance(updated, (int, float)) or isinstance(updated, bool):
            try:
                updated = path.stat().st_mtime if path else 0.0
            except OSError:
                updated = 0.0
        return now - float(updated) > self.marker_max_age_s()

    def save_marker(self, marker: dict) -> None:
        marker["updated_at"] = time.time()
        atomic_write_json(self.marker_path(marker["session_id"]), marker)

    def remove_marker(self, session_id: str) -> None:
        _quiet(self.marker_path(session_id).unlink)
        _quiet(self.lock_path(session_id).unlink)

    def sweep_stale(self, hook: str) -> int:
        """Remove every stale marker (run when a session is armed); returns how many."""
        removed = 0
        try:
            entries = list(self.sessions.glob("*.json"))
        except OSError:
            return 0
        now = time.time()
        for path in entries:
            data = read_json(path)
            if isinstance(data, dict) and not self.is_stale(data, path, now):
                continue
            if not isinstance(data, dict):
                try:
                    if now - path.stat().st_mtime <= self.marker_max_age_s():
                        continue
                except OSError:
                    continue
            _quiet(path.unlink)
            _quiet(path.with_suffix(".lock").unlink)
            removed += 1
            self.log(hook, f"stale marker {path.name} removed")
        return removed

    # the lane -------------------------------------------------------------------------
    def lane_info(self) -> dict:
        """experiment / lane / metric / direction / ledger / lane_dir for a new marker."""
        inst = self.install()
        lane = str(inst.get("lane") or "main")
        lane_dir = inst.get("lane_dir") or str(self.dir / "lanes" / lane)
        return {
            "experiment": str(inst.get("experiment") or "experiment"),
            "lane": lane,
            "metric": str(inst.get("metric") or "step_time_ms"),
            "direction": "maximize" if inst.get("direction") == "maximize" else "minimize",
            "lane_dir": str(lane_dir),
            "ledger": str(inst.get("ledger") or Path(lane_dir) / "results.tsv"),
        }

    def loop_settings(self, hook: str) -> dict:
        """[loop] of the nearest autoresearch.toml from the repo upward, else install.json's,
        else defaults; invalid values fall back to the default and are logged."""
        P = policy()
        source: dict = {}
        config = find_config(self.root)
        if config is not None:
            try:
                import tomllib

                with open(config, "rb") as fh:
                    loop = tomllib.load(fh).get("loop", {})
                source = loop if isinstance(loop, dict) else {}
            except Exception as exc:
                self.log(hook, f"cannot read {config} ({exc}); using the installed loop settings")
                source = {}
        if not source:
            installed = self.install().get("settings")
            source = installed if isinstance(installed, dict) else {}
        settings, problems = P.LoopSettings.from_table(source)
        for problem in problems:
            self.log(hook, problem)
        return settings.to_dict()

    def skill_text(self, name: str, fallback: str) -> str:
        """A rendered skill installed under .claude/skills (front matter stripped)."""
        path = self.root / ".claude" / "skills" / name / "SKILL.md"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return fallback
        text = core("skills").strip_front_matter(text)
        return text.replace(DATE_PLACEHOLDER, time.strftime("%Y-%m-%d")) or fallback


class _Lock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "_Lock":
        if fcntl is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            self.fd = None  # locking is best effort; the atomic rename still protects the file
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            _quiet(os.close, self.fd)
            self.fd = None


# ------------------------------------------------------------------------------- helpers


def _quiet(fn, *args: object) -> None:
    try:
        fn(*args)
    except OSError:
        pass


def read_json(path: Path) -> object:
    return core("files").read_json(path)


def atomic_write_json(path: Path, data: object) -> None:
    core("files").atomic_write_json(path, data, 0o600)


def find_config(start: Path) -> Path | None:
    return core("files").find_upward(CONFIG_FILENAME, start)


def valid_session_id(value: object) -> bool:
    return isinstance(value, str) and bool(_SESSION_ID.match(value)) and ".." not in value


def armed_session(data: dict, state: "State", hook: str, otherwise: str) -> str | None:
    """The session id when this session is armed (has a marker); None for every other case.

    An unusable id is logged (only where the hooks are in use); an unarmed session is not
    ours and passes silently."""
    session_id = data.get("session_id")
    if not valid_session_id(session_id):
        if session_id is not None or state.sessions.is_dir():
            state.log(hook, f"no usable session_id in the input ({session_id!r}); {otherwise}")
        return None
    if not state.marker_path(session_id).exists():
        return None
    return session_id


def append_event(lane_dir: str | Path, lane: str, type_: str, **fields: object) -> None:
    """One event in the lane's events.jsonl (the engine's format, redacted); never raises."""
    try:
        events = core("events")
        core("secrets").register_secrets_from_env(os.environ)  # the key in this hook's env too
        events.append_event(Path(lane_dir) / "events.jsonl",
                            events.make_event(lane, type_, source="hook", **fields))
    except Exception:
        pass


def condensed(program: str) -> str:
    return core("skills").condensed_program(program)


# ------------------------------------------------------------------------------- ledger


def ledger_view(path: str | Path, metric: str, direction: str) -> tuple[int, int]:
    """(total_runs, runs_since_best) of a results.tsv, by the engine's own reader and frontier."""
    ledger = core("ledger")
    rows, _warnings = ledger.read_ledger(path, metric or None)
    frontier = ledger.compute_frontier(rows, "maximize" if direction == "maximize" else "minimize",
                                       metric or "metric")
    return frontier.runs, frontier.runs_since_best


# ------------------------------------------------------------------------------- running


def parse_root(argv: list[str], data: dict | None) -> Path:
    """The repo whose state the hook uses: --root, else $CLAUDE_PROJECT_DIR, else the input's cwd."""
    for i, arg in enumerate(argv):
        if arg == "--root" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--root="):
            return Path(arg.split("=", 1)[1])
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env:
        return Path(env)
    cwd = data.get("cwd") if isinstance(data, dict) else None
    return Path(cwd) if isinstance(cwd, str) and cwd else Path.cwd()


def read_input(stream=None) -> tuple[dict | None, str | None]:
    """The hook input object, or (None, why it is unusable)."""
    stream = stream or sys.stdin
    try:
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    except Exception as exc:
        return None, f"cannot read stdin: {type(exc).__name__}: {exc}"
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw.strip():
        return None, "empty stdin"
    try:
        data = json.loads(raw)
    except RecursionError:
        return None, "stdin JSON is nested too deeply"
    except ValueError as exc:
        return None, f"stdin is not JSON ({exc}): {raw[:120]!r}"
    if not isinstance(data, dict):
        return None, f"stdin JSON is a {type(data).__name__}, not an object"
    return data, None


def run_hook(name: str, handler, argv: list[str] | None = None) -> int:
    """Read stdin, call handler(data, state), print its answer as JSON. Always exits 0.

    Anything unexpected (bad input, a bug, a full disk) is logged and answered with no
    output, which Claude Code reads as "allow / nothing to add".
    """
    argv = sys.argv[1:] if argv is None else argv
    data, problem = read_input()
    state = State(parse_root(argv, data))
    if data is None:
        state.log(name, f"{problem}; allowing")
        return 0
    try:
        answer = handler(data, state)
    except Exception as exc:
        import traceback

        detail = traceback.format_exc(limit=4).strip().replace("\n", " | ")
        state.log(name, f"internal error, allowing: {type(exc).__name__}: {exc} [{detail}]",
                  data.get("session_id") if isinstance(data.get("session_id"), str) else None)
        return 0
    if answer:
        try:
            sys.stdout.write(json.dumps(answer, ensure_ascii=False))
            sys.stdout.flush()
        except Exception as exc:
            state.log(name, f"cannot write the answer: {exc}")
    return 0
