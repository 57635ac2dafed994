"""A Codex lane's own CODEX_HOME: the binary, the config.toml, the credentials.

Every Codex process the engine starts gets `<lane>/.codex` as its CODEX_HOME (inside the
lane folder, so its sessions survive with the lane; Codex itself keeps `.codex` read-only to
the agent's commands). Its config.toml is rewritten at every start from `[agent.codex]`:
the user's extra keys first, then the keys the engine owns (engine/config.py
CODEX_ENGINE_KEYS): network-touching features off, the workspace-write sandbox with the
lane's writable roots, approvals "never", and the engine's tools as an MCP server.
"""

from __future__ import annotations

import copy
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomlkit

from autoresearch_tui.engine.agent.lane import AgentSetupError
from autoresearch_tui.engine.core.files import atomic_write_text
from autoresearch_tui.engine.core.tools import TOOL_SERVER_NAME

PINNED_VERSION = "0.171.0"
NPM_PACKAGE = "@openai/codex"
CODEX_BIN_ENV = "AUTORESEARCH_CODEX_BIN"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
"""The installed package (the repository checkout for an editable install: package.json)."""

API_KEY_PROVIDER = "openai-api-key"
SECRET_ENV_PATTERNS = ["*KEY*", "*TOKEN*", "*SECRET*", "*PASSWORD*", "*CREDENTIAL*"]

COMPACT_PROMPT = """\
You are performing a CONTEXT CHECKPOINT COMPACTION. Create a handoff summary for another LLM \
that will resume this unattended autoresearch loop.

Include, under these headings:
- Lane state: the lane, its metric and direction, the baseline and the current best (with its \
commit and run id), runs so far, what is measured right now.
- Hypothesis list, verbatim: every hypothesis tried (one line each: what, run id, result, keep \
or discard) and every queued hypothesis, ranked, with its expected effect.
- Key decisions, constraints and the user's instructions (never stop; the engine's tools \
run_benchmark, record_run and lane_status do the measuring and the ledger).
- The next step to take immediately.

Be concise and structured; keep numbers exact."""


@dataclass(frozen=True)
class LanePaths:
    """What a Codex lane may write, and where its home is."""
    lane_dir: Path
    fork: Path
    runs: Path
    retrospectives: Path

    @property
    def home(self) -> Path:
        return self.lane_dir / ".codex"

    @property
    def tmp(self) -> Path:
        return self.lane_dir / "tmp"

    def writable_roots(self) -> list[str]:
        # The fork (the cwd) is writable by itself; its .git must be named to let the agent
        # commit (Codex keeps a root's .git read-only otherwise). The ledger, lane.json and the
        # events stay read-only: only the engine writes them.
        return [str(self.fork / ".git"), str(self.runs), str(self.retrospectives), str(self.tmp)]

    def create(self) -> None:
        for folder in (self.home, self.runs, self.retrospectives, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)


@dataclass
class HomeSettings:
    model: str = ""
    reasoning_effort: str = ""
    user_config: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] | None = None
    """A provider that replaces the credentials lookup (the scripted demo)."""
    network_access: bool = False
    mcp_command: list[str] = field(default_factory=list)
    tool_timeout_s: float = 86400.0


# ----------------------------------------------------------------- the binary
def native_binary(node_modules: Path) -> Path | None:
    """The platform's real codex binary inside an npm install (the JS launcher only execs it)."""
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform.rstrip("0123456789"))
    if machine and system:
        triple = {("linux", "x64"): "x86_64-unknown-linux-musl", ("linux", "arm64"): "aarch64-unknown-linux-musl",
                  ("darwin", "x64"): "x86_64-apple-darwin", ("darwin", "arm64"): "aarch64-apple-darwin"}
        path = (node_modules / "@openai" / f"codex-{system}-{machine}" / "vendor" / triple[(system, machine)]
                / "bin" / "codex")
        if path.is_file() and os.access(path, os.X_OK):
            return path
    launcher = node_modules / ".bin" / "codex"
    return launcher if launcher.exists() and os.access(launcher, os.X_OK) else None


def find_codex_binary(configured: str, env: Mapping[str, str], workspace: Path | None = None) -> Path:
    """`[agent.codex] binary`, else $AUTORESEARCH_CODEX_BIN, else the pinned npm install (this
    checkout's or the workspace's node_modules), else `codex` on PATH."""
    for source, value in (("[agent.codex] binary", configured), (CODEX_BIN_ENV, env.get(CODEX_BIN_ENV, ""))):
        if value:
            path = Path(value).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise AgentSetupError(f"{source} = {value}: not an executable file")
            return path
    looked = []
    for root in dict.fromkeys(filter(None, [PACKAGE_ROOT, workspace])):
        looked.append(str(root / "node_modules"))
        found = native_binary(root / "node_modules")
        if found:
            return found
    on_path = shutil.which("codex", path=env.get("PATH"))
    if on_path:
        return Path(on_path)
    raise AgentSetupError(
        f"the Codex CLI is not installed (looked in {', '.join(looked)} and on PATH): run `npm install` "
        f"in {PACKAGE_ROOT} (package.json pins {NPM_PACKAGE}@{PINNED_VERSION}), or "
        f"`npm install -g {NPM_PACKAGE}@{PINNED_VERSION}`, or set [agent.codex] binary or ${CODEX_BIN_ENV}")


_versions: dict[str, str] = {}


def binary_version(binary: Path) -> str:
    """`codex --version` ("codex-cli 0.171.0" -> "0.171.0"); "" when it cannot tell."""
    key = str(binary)
    if key not in _versions:
        try:
            out = subprocess.run([key, "--version"], capture_output=True, text=True, timeout=20,
                                 stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _versions[key] = out.strip().split()[-1] if out.strip() else ""
    return _versions[key]


# ----------------------------------------------------------------- credentials
def credentials(settings: HomeSettings, env: Mapping[str, str], home: Path) -> dict[str, Any]:
    """The provider keys for config.toml; links `codex login`'s auth.json where that is the way.

    In order: a provider given by the engine (the scripted demo) or in `[agent.codex] config`;
    OPENAI_API_KEY (a Responses provider that reads the key from the environment: it is never
    written to disk); the user's `codex login` (their CODEX_HOME/auth.json, linked, not copied,
    so a token Codex refreshes stays one file).
    """
    if settings.provider is not None:
        return copy.deepcopy(settings.provider)
    if "model_provider" in settings.user_config:
        return {}
    if env.get("OPENAI_API_KEY"):
        base_url = env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return {"model_provider": API_KEY_PROVIDER, "model_providers": {API_KEY_PROVIDER: {
            "name": "OpenAI (OPENAI_API_KEY)", "base_url": base_url, "wire_api": "responses",
            "env_key": "OPENAI_API_KEY"}}}
    user_home = Path(env.get("CODEX_HOME") or Path(env.get("HOME") or Path.home()) / ".codex").expanduser()
    login = user_home / "auth.json"
    link = home / "auth.json"
    if login.is_file() and login.resolve() != link.resolve():
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(login)
        return {}
    if link.is_file():  # logged in inside the lane's own home (`CODEX_HOME=<lane>/.codex codex login`)
        return {}
    raise AgentSetupError(
        "Codex has no credentials: set OPENAI_API_KEY, or run `codex login` (it writes "
        f"{login}), or name a model provider in [agent.codex.config]")


# ----------------------------------------------------------------- config.toml
def merge(base: dict, extra: Mapping) -> dict:
    """`extra` over `base`, tables merged key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def codex_config(paths: LanePaths, settings: HomeSettings, provider: dict[str, Any]) -> dict[str, Any]:
    """The lane's config.toml as a dict: engine defaults < the user's keys < engine-owned keys."""
    defaults: dict[str, Any] = {
        "compact_prompt": COMPACT_PROMPT,
        # Agent commands must not see the keys the engine runs with.
        "shell_environment_policy": {"exclude": list(SECRET_ENV_PATTERNS)},
        "history": {"persistence": "none"},
    }
    config = merge(merge(defaults, provider), settings.user_config)
    owned: dict[str, Any] = {
        "check_for_update_on_startup": False,
        "features": {"plugins": False},
        "analytics": {"enabled": False},
        "sandbox_mode": "workspace-write",
        "approval_policy": "never",
        "sandbox_workspace_write": {"writable_roots": paths.writable_roots(), "exclude_slash_tmp": True,
                                    "network_access": settings.network_access},
    }
    if settings.mcp_command:
        owned["mcp_servers"] = {TOOL_SERVER_NAME: {
            "command": settings.mcp_command[0], "args": settings.mcp_command[1:],
            # Without "approve" a call fails under approval policy "never"; `required` makes
            # thread/start wait for the server instead of starting the turn without its tools.
            # The engine times benchmarks itself (and a run may first wait for a lease).
            "default_tools_approval_mode": "approve", "required": True,
            "startup_timeout_sec": 60, "tool_timeout_sec": int(settings.tool_timeout_s)}}
    if settings.model:
        owned["model"] = settings.model
    if settings.reasoning_effort:
        owned["model_reasoning_effort"] = settings.reasoning_effort
    return merge(config, owned)


def write_home(paths: LanePaths, settings: HomeSettings, env: Mapping[str, str]) -> Path:
    """Create the lane's CODEX_HOME and write its config.toml; returns the home."""
    paths.create()
    provider = credentials(settings, env, paths.home)
    text = ("# Written by autoresearch-tui at every start of this lane's Codex: edit [agent.codex] in\n"
            "# autoresearch.toml instead (changes here are lost).\n"
            + tomlkit.dumps(codex_config(paths, settings, provider)))
    atomic_write_text(paths.home / "config.toml", text, mode=0o600)
    return paths.home
