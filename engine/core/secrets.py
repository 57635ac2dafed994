"""Credentials: the one redactor, and which environment variables a benchmark never gets.

Every string the engine writes (events, ledger descriptions, run.log, engine.log) or sends
(socket replies) goes through `redact`. It removes two kinds of things:

- values that look like credentials whatever they are (`sk-ant-...`, `api_key=...`,
  `token: ...`, `password=...`);
- the exact values of the credentials in the engine's own environment (registered once
  with `register_secrets_from_env`), so a key of any shape (a Vertex token, a test key)
  is caught too.

Benchmarks do not need the agent's key: `credential_free_env` strips credentials from
their environment, so a benchmark printing `env` has nothing to leak.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from typing import Any, Iterable, Mapping

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: redacting "1" or "true" everywhere would garble text."""

_ANTHROPIC_KEY = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
_ASSIGNMENT = r"(?:api[_-]?key|access[_-]?key|private[_-]?key|token|secret|password|passwd)" \
              r"[\"']?\s*[:=]\s*[\"']?([^\s\"',}]{6,})"
_ASSIGNMENT_LOWER = re.compile(_ASSIGNMENT)  # run on lower-cased ASCII text: much faster than (?i)
_ASSIGNMENT_ANY_CASE = re.compile("(?i)" + _ASSIGNMENT)
_KEYWORDS = ("key", "token", "secret", "passw")

CREDENTIAL_NAME_PATTERNS = (
    "ANTHROPIC_*", "CLAUDE_CODE_OAUTH*", "AWS_*", "GOOGLE_APPLICATION_CREDENTIALS",
    "*_TOKEN", "*_API_KEY", "*_SECRET*", "*PASSWORD*", "*_CREDENTIALS",
)
"""Environment variables a benchmark process never receives (unless passed explicitly)."""

_SECRET_VALUE_PATTERNS = ("*_TOKEN", "*_API_KEY", "*API_KEY", "*_SECRET*", "*PASSWORD*",
                          "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
"""Variables whose *values* are secrets (ANTHROPIC_BASE_URL is a credential-adjacent name
to strip from benchmarks, but its value is an address, not something to redact)."""

_lock = threading.Lock()
_secret_values: tuple[str, ...] = ()
_secret_bytes: tuple[bytes, ...] = ()
_ANTHROPIC_KEY_BYTES = re.compile(_ANTHROPIC_KEY.pattern.encode())


def is_credential_name(name: str) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in CREDENTIAL_NAME_PATTERNS)


def credential_free_env(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """`env` without credentials; names in `keep` pass anyway (a benchmark that needs HF_TOKEN)."""
    kept = set(keep)
    return {name: value for name, value in env.items() if name in kept or not is_credential_name(name)}


def register_secret(value: str) -> None:
    """Redact this exact value from now on, wherever it appears."""
    global _secret_values, _secret_bytes
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value not in _secret_values:
            # Longest first, so a key that contains another registered value goes whole.
            _secret_values = tuple(sorted({*_secret_values, value}, key=len, reverse=True))
            _secret_bytes = tuple(v.encode("utf-8", errors="surrogateescape") for v in _secret_values)


def register_secrets_from_env(env: Mapping[str, str]) -> int:
    """Register the values of every secret-looking variable of `env`; returns how many."""
    count = 0
    for name, value in env.items():
        if any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in _SECRET_VALUE_PATTERNS) \
                and isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
            register_secret(value)
            count += 1
    return count


def redact(text: str) -> str:
    """`text` without registered secret values, Anthropic keys and `key=value` credentials
    (api_key, access_key, private_key, token, secret, password: a value of 6+ characters)."""
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    if "sk-ant-" in text:
        text = _ANTHROPIC_KEY.sub(REDACTED, text)
    if text.isascii():
        lower = text.lower()
        if not any(keyword in lower for keyword in _KEYWORDS):
            return text
        spans = [match.span(1) for match in _ASSIGNMENT_LOWER.finditer(lower)]
    else:
        spans = [match.span(1) for match in _ASSIGNMENT_ANY_CASE.finditer(text)]
    for start, end in reversed(spans):
        text = text[:start] + REDACTED + text[end:]
    return text


def redact_output(data: bytes) -> bytes:
    """The fast redactor for raw benchmark output (run.log), drained at full pipe speed:
    registered secret values and Anthropic keys. (Benchmarks never receive credentials.)"""
    for value in _secret_bytes:
        if value in data:
            data = data.replace(value, REDACTED.encode())
    if b"sk-ant-" in data:
        data = _ANTHROPIC_KEY_BYTES.sub(REDACTED.encode(), data)
    return data


def redact_values(value: Any) -> Any:
    """Redact every string inside a JSON-like value (keys included: a key may be a secret too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {(redact(key) if isinstance(key, str) else key): redact_values(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(item) for item in value]
    return value


