"""autoresearch.toml: typed, validated, with errors that name the key and the line.

The schema is the contract in docs/architecture.md ("autoresearch.toml"). Every section has defaults except `[[lanes]]`.
Unknown keys are errors (a typo must never silently fall back to a default during a
week-long run).
"""

from __future__ import annotations

import importlib.util
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoresearch_tui.engine.core.ledger import RESERVED_COLUMNS
from autoresearch_tui.engine.core.policy import LOOP_LIMITS, LoopSettings
from autoresearch_tui.engine.devices.slots import check_slots

CONFIG_FILENAME = "autoresearch.toml"
LANE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
MAX_SECONDS = 30 * 86400.0
"""Longer timeouts are typos (and past ~1e16 s they overflow the event loop's clock)."""
MAX_MINUTES = 7 * 1440.0
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
THEME_NAMES = (
    "autoresearch-dark", "autoresearch-light",  # themes/
    # Textual's own (textual.theme.BUILTIN_THEMES; tests/tui check the two lists agree).
    "ansi-dark", "ansi-light", "atom-one-dark", "atom-one-light", "catppuccin-frappe",
    "catppuccin-latte", "catppuccin-macchiato", "catppuccin-mocha", "dracula", "flexoki",
    "gruvbox", "monokai", "nord", "rose-pine", "rose-pine-dawn", "rose-pine-moon",
    "solarized-dark", "solarized-light", "textual-dark", "textual-light", "tokyo-night",
)


def valid_lane_name(name: str) -> bool:
    """The whole name matches LANE_NAME_PATTERN (re's `$` would also accept a trailing newline)."""
    return isinstance(name, str) and re.fullmatch(LANE_NAME_PATTERN.strip("^$"), name) is not None


class ConfigError(Exception):
    """A config problem, phrased as one line for the user (no traceback)."""


class _Section(BaseModel):
    # No inf/nan anywhere: a value that passes validation must work in every lane.
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_bytes(cls, value):
        for where, text in _strings(value):
            if "\x00" in text:
                raise ValueError(f"{where}: contains a NUL byte" if where else "contains a NUL byte")
        return value


def _strings(value, where: str = ""):
    """(dotted key inside the value, text) of every string in a value, keys included."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield where, str(key)
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item, where)


class ExperimentConfig(_Section):
    name: str = Field("example", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Folder name under wiki/experiment/."""
    repo: str = "raw/code/jax-example"
    """Main repo, relative to the config file or absolute."""
    program: str = ""
    """Loop instructions (markdown); "" = the bundled skills/autoresearch-loop."""
    metric: str = Field("step_time_ms", pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
    direction: Literal["minimize", "maximize"] = "minimize"
    bench_command: str = "python bench.py"
    """How one run is measured, run inside the lane's fork."""
    run_timeout_s: float = Field(900.0, gt=0, le=MAX_SECONDS)
    hang_timeout_s: float = Field(300.0, gt=0, le=MAX_SECONDS)
    """A benchmark with no output and no new metrics for this long is killed as hung."""
    target_branch: str = "main"
    fork_include: list[str] = Field(default_factory=list)
    """Globs (relative to the main repo) of untracked files each fork links in."""
    max_metrics_mb: float = Field(256.0, gt=0, le=1024 * 1024)
    """A run whose metrics.jsonl grows past this is cut off (killed, and read no further)."""
    bench_pass_env: list[str] = Field(default_factory=list)
    """Credential variables a benchmark does need (e.g. HF_TOKEN); all others are withheld."""
    frozen: list[str] = Field(default_factory=list, max_length=200)
    """Globs (relative to the repo) the agent may not change: the benchmark, its data."""
    confirm_runs: int = Field(2, ge=0, le=20)
    """A measured keep that would be a new best is re-measured this many times, A/B against
    the incumbent best, before it counts; 0 = off."""
    check_command: str = ""
    """Optional correctness check run (in a clean checkout of the commit) before a keep counts."""

    @field_validator("frozen")
    @classmethod
    def _frozen_globs(cls, value):
        for pattern in value:
            if not pattern.strip() or len(pattern) > 500 or "\x00" in pattern:
                raise ValueError(f"a glob must be 1-500 characters without NUL (got {pattern[:40]!r})")
            if pattern.strip().startswith("/") or ".." in pattern.split("/"):
                raise ValueError(f"globs are relative to the repo, inside it (got {pattern!r})")
        return value

    @field_validator("bench_command", "check_command")
    @classmethod
    def _command(cls, value):
        if "\x00" in value or len(value) > 4000:
            raise ValueError("a command must be under 4000 characters without NUL bytes")
        return value

    @field_validator("metric")
    @classmethod
    def _metric_is_not_a_ledger_column(cls, value):
        if value in RESERVED_COLUMNS:
            raise ValueError(f"{value!r} is a ledger column of its own; name the metric "
                             "after what it measures (e.g. step_time_ms, tokens_per_s)")
        return value

    @field_validator("run_timeout_s", "hang_timeout_s", "max_metrics_mb", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


CODEX_ENGINE_KEYS = {
    "sandbox_mode": "every Codex lane runs in workspace-write, confined to its lane",
    "approval_policy": "a lane has nobody to approve commands: the engine sets \"never\"",
    "sandbox_workspace_write": "the engine sets the writable roots to the lane's fork, runs and retrospectives",
    "features.plugins": "plugins stay off: they reach github.com at start-up",
    "analytics": "analytics stay off",
    "check_for_update_on_startup": "update checks stay off",
    "mcp_servers.autoresearch": "the engine's own tools (run_benchmark, record_run, lane_status)",
    "model": "use [agent.codex] model",
    "model_reasoning_effort": "use [agent.codex] reasoning_effort",
}
"""Codex config.toml keys the engine owns (engine/agent/codex_home.py writes them)."""


def _check_codex_config(table: dict, prefix: str = "", depth: int = 0) -> None:
    """Values Codex's config.toml can hold, and none of the keys the engine owns."""
    if depth > 8:
        raise ValueError(f"{prefix.rstrip('.')}: nested too deeply")
    for key, value in table.items():
        if not key or len(key) > 200 or re.search(r"[\x00-\x1f\x7f]", key):
            raise ValueError(f"{prefix}{key!r}"[:80] + ": not a usable key")
        dotted = prefix + key
        if dotted in CODEX_ENGINE_KEYS:
            raise ValueError(f"{dotted}: set by the engine ({CODEX_ENGINE_KEYS[dotted]})")
        _check_codex_value(value, dotted, depth)


def _check_codex_value(value: Any, dotted: str, depth: int) -> None:
    if depth > 8:
        raise ValueError(f"{dotted}: nested too deeply")
    if isinstance(value, dict):
        _check_codex_config(value, dotted + ".", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_codex_value(item, dotted, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{dotted}: expected a finite number")
    elif isinstance(value, str) and ("\0" in value or len(value) > 20000):
        raise ValueError(f"{dotted}: NUL bytes and strings over 20000 characters are not allowed")


class CodexPrices(_Section):
    """US dollars per million tokens, as the model's price list gives them."""
    input: float = Field(ge=0, allow_inf_nan=False)
    cached_input: float | None = Field(None, ge=0, allow_inf_nan=False)
    """None = the input price."""
    output: float = Field(ge=0, allow_inf_nan=False)

    @field_validator("input", "cached_input", "output", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class CodexConfig(_Section):
    """`[agent.codex]`: how Codex lanes run (engine/agent/codex.py)."""
    model: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f]*$")
    """"" = Codex's default model."""
    reasoning_effort: str = Field("", pattern=r"^[a-z]{0,20}$")
    """"" = the model's default; e.g. low, medium, high, xhigh (the model's own list)."""
    binary: str = Field("", max_length=4096, pattern=r"^[^\x00]*$")
    """"" = $AUTORESEARCH_CODEX_BIN, then the pinned npm install, then `codex` on PATH."""
    sandbox_network: bool = False
    """Whether the agent's own commands may use the network (Codex's sandbox default: no)."""
    usd_per_mtok: CodexPrices | None = None
    """Prices for the lane's cost (Codex reports tokens); needed for max_budget_usd."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Extra keys for the lane's Codex config.toml, e.g. a model provider."""

    @field_validator("config")
    @classmethod
    def _usable_codex_config(cls, value: dict) -> dict:
        _check_codex_config(value)
        return value


class AgentConfig(_Section):
    model: str = ""
    permission_mode: Literal["default", "acceptEdits", "plan", "bypassPermissions"] = "acceptEdits"
    allowed_tools: list[str] = Field(
        default_factory=lambda: ["Bash", "Read", "Edit", "Write", "Glob", "Grep"]
    )
    max_budget_usd: float = Field(0.0, ge=0, le=1e6)
    """Per lane; 0 = no cap."""
    scripted_demo: bool = False
    """Offline demo: lanes talk to the bundled scripted model, not to a real API."""
    codex: CodexConfig = Field(default_factory=CodexConfig)
    """Codex lanes (`[[lanes]] agent = "codex"`)."""

    @field_validator("max_budget_usd", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _loop_field(name: str):
    """A [loop] field with the policy's own default and bound (engine/core/policy.py)."""
    kind, comparison, bound = LOOP_LIMITS[name]
    upper = {"le": MAX_MINUTES} if name.endswith("_minutes") else {"le": 10**9} if kind is int else {}
    return Field(LoopSettings.__dataclass_fields__[name].default, **{comparison: bound}, **upper)


class LoopConfig(_Section):
    reinject_every_turns: int = _loop_field("reinject_every_turns")
    reinject_every_minutes: float = _loop_field("reinject_every_minutes")
    retrospective_every_stops: int = _loop_field("retrospective_every_stops")
    plateau_runs: int = _loop_field("plateau_runs")
    max_consecutive_blocks: int = _loop_field("max_consecutive_blocks")
    max_failures: int = Field(5, ge=1)
    """Consecutive API/CLI failures before a lane needs attention."""
    idle_nudge_minutes: float = Field(20.0, gt=0, le=MAX_MINUTES)
    """A running lane with no activity for this long is nudged."""

    @field_validator("reinject_every_minutes", "idle_nudge_minutes", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LaneConfig(_Section):
    name: str = Field(pattern=LANE_NAME_PATTERN)
    agent: Literal["claude", "codex"] = "claude"
    """Which agent CLI runs the lane: Claude Code (bundled) or OpenAI's Codex CLI."""
    focus: str = Field("", max_length=20000)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value):
        for name in value:
            if not re.match(ENV_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not an environment variable name (letters, digits, '_')")
        return value


class TuiConfig(_Section):
    theme: str = "autoresearch-dark"

    @field_validator("theme")
    @classmethod
    def _known_theme(cls, value):
        if value not in THEME_NAMES:
            raise ValueError(f"unknown theme {value!r} (themes: {', '.join(THEME_NAMES)})")
        return value

    keys: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, e.g. {detach = "ctrl+d"}."""
    bell: bool = True
    desktop_notifications: bool = True


MAX_CHIPS = 4096


class DevicesConfig(_Section):
    """How engine-run benchmarks share the host's accelerator (engine/devices/)."""

    platform: Literal["auto", "tpu", "gpu", "cpu"] = "auto"
    chips: int = Field(0, ge=0, le=MAX_CHIPS)
    """Accelerator chips on this host (CPU: cores); 0 = detect."""
    slots: int | list[list[int]] = 1
    """Benchmark slots: a count (chips split evenly) or explicit chip lists [[0,1],[2,3]]."""
    agent_shell_device: bool = False
    """False: the agent's own shell gets JAX_PLATFORMS=cpu and CUDA_VISIBLE_DEVICES=""."""

    @field_validator("slots")
    @classmethod
    def _slots_fit(cls, value, info):
        if isinstance(value, int) and value > MAX_CHIPS:
            raise ValueError(f"at most {MAX_CHIPS} slots")
        if isinstance(value, list):
            if len(value) > MAX_CHIPS or any(len(chips) > MAX_CHIPS for chips in value):
                raise ValueError(f"at most {MAX_CHIPS} slots and chips")
            if any(chip > MAX_CHIPS for chips in value for chip in chips):
                raise ValueError(f"a chip number above {MAX_CHIPS}")
        check_slots(value, info.data.get("chips") or 0)
        return value


RAY_EXTRA_HINT = "pip install 'autoresearch-tui[ray]'"
RESOURCE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:/-]{0,63}$"
_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


def ray_installed() -> bool:
    """Whether this environment can run the Ray bridge (without importing Ray)."""
    return importlib.util.find_spec("ray") is not None


class RuntimeEnvConfig(_Section):
    """The Ray runtime_env every remote run gets (Ray's own keys; only the common ones)."""

    env_vars: dict[str, str] = Field(default_factory=dict)
    pip: list[str] = Field(default_factory=list)
    """Packages Ray installs on the worker before the run (a per-job virtualenv)."""
    uv: list[str] = Field(default_factory=list)
    conda: str = ""
    """The name of a conda environment that exists on the workers."""
    py_executable: str = ""
    """The worker's Python, e.g. a venv's bin/python on every node."""
    working_dir: str = ""
    """A folder or URI Ray uploads to the workers (the measured code travels anyway)."""
    py_modules: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    image_uri: str = ""
    config: dict[str, int | bool] = Field(default_factory=dict)
    """Ray's RuntimeEnvConfig, e.g. { setup_timeout_seconds = 1800 }."""

    @field_validator("env_vars")
    @classmethod
    def _env_names(cls, value):
        for name, text in value.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if "\0" in text or "\0" in name:
                raise ValueError(f"{name}: NUL bytes are not allowed")
        return value

    @field_validator("config")
    @classmethod
    def _known_config(cls, value):
        unknown = sorted(set(value) - {"setup_timeout_seconds", "eager_install"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (setup_timeout_seconds, eager_install)")
        return value

    def to_ray(self) -> dict:
        """What Ray gets: only the keys the config set."""
        return self.model_dump(exclude_defaults=True)


class RunnerConfig(_Section):
    """Where engine-run benchmarks execute: this host's device slots, or a Ray cluster
    (engine/runners/; docs/architecture.md, "Ray runner")."""

    kind: Literal["local", "ray"] = "local"
    address: str = ""
    """ray: "auto" (a raylet on this host), "host:6379" (the head's GCS; this host must run a
    raylet of the cluster), or "ray://host:10001" (Ray Client)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """What one run needs on a worker, e.g. { TPU = 4 }, { GPU = 1 }, { CPU = 8 }."""
    runtime_env: RuntimeEnvConfig = Field(default_factory=RuntimeEnvConfig)
    ship: list[str] = Field(default_factory=list)
    """`experiment.fork_include` globs whose files travel with the code to the worker."""
    connect_timeout_s: float = Field(60.0, gt=0, le=3600)
    """How long connecting (the bridge's ray.init) may take before the cluster counts as unreachable."""
    lost_after_s: float = Field(15.0, ge=5, le=3600)
    """A head that has not answered for this long ends every run in flight as "cluster unreachable"."""

    @field_validator("connect_timeout_s", "lost_after_s", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("address")
    @classmethod
    def _address_form(cls, value):
        value = value.strip()
        if value in ("", "auto"):
            return value
        match = _ADDRESS.match(value)
        if not match or not 0 < int(match.group("port")) < 65536:
            raise ValueError(f"{value!r} is not \"auto\", \"host:port\" or \"ray://host:port\"")
        return value

    @field_validator("resources")
    @classmethod
    def _resource_amounts(cls, value):
        for name, amount in value.items():
            if not re.match(RESOURCE_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a Ray resource name")
            if not math.isfinite(amount) or amount <= 0 or amount > 1e6:
                raise ValueError(f"{name} = {amount!r}: a positive amount up to 1e6")
            if amount > 1 and amount != int(amount):
                raise ValueError(f"{name} = {amount!r}: amounts above 1 must be whole (Ray's rule)")
        return value

    @model_validator(mode="after")
    def _ray_needs(self):
        if self.kind != "ray":
            return self
        if not self.address:
            raise ValueError("runner.address: required with kind = \"ray\" "
                             "(\"auto\", \"host:6379\" or \"ray://host:10001\")")
        if not self.resources:
            # A request for nothing can land on the engine's own node (a zero-CPU raylet).
            raise ValueError("runner.resources: required with kind = \"ray\", e.g. { TPU = 4 } or { GPU = 1 }")
        if not ray_installed():
            raise ValueError(f"runner.kind: \"ray\" needs Ray in this environment: {RAY_EXTRA_HINT}")
        return self


class Config(_Section):
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tui: TuiConfig = Field(default_factory=TuiConfig)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    lanes: list[LaneConfig] = Field(min_length=1)

    # Not part of the file: where it was loaded from.
    path: Path = Field(default=Path(CONFIG_FILENAME), exclude=True)

    @model_validator(mode="after")
    def _unique_lane_names(self):
        seen: set[str] = set()
        for index, lane in enumerate(self.lanes):
            if lane.name in seen:
                raise ValueError(f"lanes[{index}].name: duplicate lane name {lane.name!r}")
            seen.add(lane.name)
        for index, pattern in enumerate(self.runner.ship):
            if pattern not in self.experiment.fork_include:
                raise ValueError(f"runner.ship[{index}]: {pattern!r} is not one of experiment.fork_include")
        return self

    @model_validator(mode="after")
    def _codex_budget_has_prices(self):
        # Codex reports tokens, not dollars: a cap it cannot price would never stop a lane.
        codex = [i for i, lane in enumerate(self.lanes) if lane.agent == "codex"]
        if codex and self.agent.max_budget_usd and self.agent.codex.usd_per_mtok is None:
            raise ValueError(f"lanes[{codex[0]}].agent: a Codex lane with agent.max_budget_usd needs "
                             "[agent.codex] usd_per_mtok = {input = ..., output = ...} (Codex reports "
                             "tokens, not dollars)")
        return self

    @property
    def workspace(self) -> Path:
        return self.path.parent

    @property
    def repo_path(self) -> Path:
        repo = Path(self.experiment.repo).expanduser()
        return repo if repo.is_absolute() else (self.workspace / repo)

    def lane(self, name: str) -> LaneConfig:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise KeyError(name)


def find_config(start: Path | None = None) -> Path:
    """The nearest autoresearch.toml from `start` (default: cwd) upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {CONFIG_FILENAME} in {here} or any folder above it (use --config FILE)")


def load_config(path: Path | str, *, check_repo: bool = True) -> Config:
    path = Path(path).expanduser().resolve()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    text = decode_config(data, path)
    config = parse_config(text, path)
    if check_repo and not config.repo_path.is_dir():
        line = _line_of(text, ("experiment", "repo"))
        where = f"{path}:{line}" if line else str(path)
        hint = ""
        if config.experiment.repo == ExperimentConfig.model_fields["repo"].default:
            hint = f" (run `autoresearch-tui init {path.parent}` to create the bundled example there)"
        raise ConfigError(f"{where}: experiment.repo: no such folder {config.repo_path}{hint}")
    _check_program(config, text)
    return config


def decode_config(data: bytes, path: Path) -> str:
    """The config's text; a byte-order mark or bytes that are not UTF-8 are config errors."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(f"{path}: starts with a byte-order mark (BOM): save it as UTF-8 without BOM")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}): "
                          "TOML files are UTF-8") from None


def _check_program(config: Config, text: str) -> None:
    """experiment.program must be a readable UTF-8 file (every lane reads it at start)."""
    program = config.experiment.program.strip()
    if not program:
        return
    path = Path(program).expanduser()
    if not path.is_absolute():
        path = config.workspace / path
    line = _line_of(text, ("experiment", "program"))
    where = f"{config.path}:{line}" if line else str(config.path)
    try:
        path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: experiment.program: no such file {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: experiment.program: {path} is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: experiment.program: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: experiment.program: {path} is not UTF-8 text") from None


def parse_config(text: str, path: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, text, path)) from None
    config.path = path
    return config


_SLOTS_UNION_TAGS = ("int", "list[list[int]]")


def _describe(exc: ValidationError, text: str, path: Path) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    message = error["msg"]
    if loc[:2] == ("devices", "slots") and len(loc) > 2 and loc[2] in _SLOTS_UNION_TAGS:
        # A value of neither form: one message for the union, not pydantic's per-branch one.
        loc, message = loc[:2], "expected a slot count (1, 2, ...) or chip lists like [[0, 1], [2, 3]]"
        error = {**error, "loc": loc, "msg": message, "type": "union"}
    own_key = re.match(r"^(?:Value error, )?([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): ", message)
    codex_table = loc[:3] == ("agent", "codex", "config")  # its check names keys inside the table
    if error["type"] == "value_error" and (not loc or own_key) and not codex_table:
        # Model-level checks phrase their own location ("lanes[1].name: ...", "runner.address: ...").
        message = message.removeprefix("Value error, ")
        key = ""
        if own_key and own_key.group(1).startswith("runner."):
            key = own_key.group(1)
            message = message[len(key) + 2:]
            loc = tuple(int(part) if part.isdigit() else part for part in re.split(r"[.\[\]]+", key) if part)
        else:
            match = re.match(r"lanes\[(\d+)\]\.(\w+)", message)
            loc = ("lanes", int(match.group(1)), match.group(2)) if match else ()
    else:
        if error["type"] == "value_error" and codex_table:
            # The free-form Codex table's check names the key inside it ("features.plugins: ...").
            dotted, _, message = message.removeprefix("Value error, ").partition(": ")
            loc = loc + tuple(dotted.split("."))
        key = _dotted(loc)
        message = message.removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required" if loc != ("lanes",) else "at least one [[lanes]] table is required"
        elif "input" in error and not isinstance(error["input"], dict | list):
            message = f"{message} (got {error['input']!r})"
    line = _line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {key}: {message}" if key else f"{where}: {message}"


def config_error(config: Config, key: str, message: str) -> ConfigError:
    """A ConfigError for a value that passed validation but cannot work on this host
    (found later, e.g. by device detection): `path:line: key: message`."""
    try:
        text = config.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    line = _line_of(text, tuple(key.split(".")))
    where = f"{config.path}:{line}" if line else str(config.path)
    return ConfigError(f"{where}: {key}: {message}")


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(text: str, loc: tuple) -> int | None:
    """Best-effort line number of the key at `loc` (tomllib gives none for valid TOML); a key
    inside an inline table is found by its enclosing key."""
    line = _line_of_key(text, loc)
    while line is None and len([part for part in loc if isinstance(part, str)]) > 2:
        loc = loc[:-1]
        line = _line_of_key(text, loc)
    return line


def _line_of_key(text: str, loc: tuple) -> int | None:
    keys = [part for part in loc if isinstance(part, str)]
    if not keys:
        return None
    lane_index = loc[1] if len(loc) > 1 and loc[0] == "lanes" and isinstance(loc[1], int) else None
    table, key = (".".join(keys[:-1]), keys[-1]) if len(keys) > 1 else ("", keys[0])
    current_table, lanes_seen, table_line = "", -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([\w.-]+)\s*\]\]?", stripped)
        if header:
            current_table = header.group(1)
            if stripped.startswith("[[") and current_table == "lanes":
                lanes_seen += 1
            if current_table == ".".join(keys) and lane_index is None:
                return number  # the unknown or wrong key is a whole table
            if current_table == table and (lane_index is None or lanes_seen == lane_index):
                table_line = table_line or number
            continue
        in_target = current_table == table and (lane_index is None or lanes_seen == lane_index)
        if in_target and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return number
    return table_line


def append_lane(path: Path | str, name: str, focus: str = "") -> None:
    """Add a `[[lanes]]` table to the config file in place: every comment, the layout and the
    file's mode stay as they were; only the new table is added at the end. Raises ConfigError
    (the file unchanged) when the file cannot be read, parsed or written."""
    import tomlkit

    from autoresearch_tui.engine.core.files import atomic_write_text

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot add lane {name!r}: {exc}") from None
    lanes = document.get("lanes")
    if lanes is None or isinstance(lanes, tomlkit.items.AoT):
        entry = tomlkit.table()
    else:  # the user wrote `lanes = [{...}, ...]`: keep that style
        entry = tomlkit.inline_table()
    entry["name"] = name
    if focus:
        entry["focus"] = focus
    if lanes is None:
        lanes = tomlkit.aot()
        lanes.append(entry)
        if text and not text.endswith("\n"):
            document.add(tomlkit.nl())
        document["lanes"] = lanes
    else:
        lanes.append(entry)
    new_text = tomlkit.dumps(document)
    parse_config(new_text, path)  # never write a file the engine would refuse at its next start
    try:
        atomic_write_text(path, new_text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot add lane {name!r}: {exc.strerror or exc}") from None
