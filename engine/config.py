"""autoresearch.toml: typed, validated, with errors that name the key and the line.

The schema is the contract in docs/architecture.md ("autoresearch.toml"). Every section has defaults except `[[lanes]]`.
Unknown keys are errors (a typo must never silently fall back to a default during a
week-long run).
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoresearch_tui.engine.core.policy import LOOP_LIMITS, LoopSettings
from autoresearch_tui.engine.devices.slots import check_slots

CONFIG_FILENAME = "autoresearch.toml"
LANE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


class ConfigError(Exception):
    """A config problem, phrased as one line for the user (no traceback)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


class ExperimentConfig(_Section):
    name: str = Field("example", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Folder name under wiki/experiment/."""
    repo: str = "raw/code/jax-example"
    """Main repo, relative to the config file or absolute."""
    program: str = ""
    """Loop instructions (markdown); "" = the bundled skills/autoresearch-loop."""
    metric: str = "step_time_ms"
    direction: Literal["minimize", "maximize"] = "minimize"
    bench_command: str = "python bench.py"
    """How one run is measured, run inside the lane's fork."""
    run_timeout_s: float = Field(900.0, gt=0)
    hang_timeout_s: float = Field(300.0, gt=0)
    """A benchmark with no output and no new metrics for this long is killed as hung."""
    target_branch: str = "main"
    fork_include: list[str] = Field(default_factory=list)
    """Globs (relative to the main repo) of untracked files each fork links in."""

    @field_validator("run_timeout_s", "hang_timeout_s", mode="before")
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
    max_budget_usd: float = Field(0.0, ge=0)
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
    _kind, comparison, bound = LOOP_LIMITS[name]
    return Field(LoopSettings.__dataclass_fields__[name].default, **{comparison: bound})


class LoopConfig(_Section):
    reinject_every_turns: int = _loop_field("reinject_every_turns")
    reinject_every_minutes: float = _loop_field("reinject_every_minutes")
    retrospective_every_stops: int = _loop_field("retrospective_every_stops")
    plateau_runs: int = _loop_field("plateau_runs")
    max_consecutive_blocks: int = _loop_field("max_consecutive_blocks")
    max_failures: int = Field(5, ge=1)
    """Consecutive API/CLI failures before a lane needs attention."""
    idle_nudge_minutes: float = Field(20.0, gt=0)
    """A running lane with no activity for this long is nudged."""

    @field_validator("reinject_every_minutes", "idle_nudge_minutes", mode="before")
    @classmethod
    def _int_is_float(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LaneConfig(_Section):
    name: str = Field(pattern=LANE_NAME_PATTERN)
    agent: Literal["claude", "codex"] = "claude"
    """Which agent CLI runs the lane: Claude Code (bundled) or OpenAI's Codex CLI."""
    focus: str = ""
    env: dict[str, str] = Field(default_factory=dict)


class TuiConfig(_Section):
    theme: str = "autoresearch-dark"
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


class Config(_Section):
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tui: TuiConfig = Field(default_factory=TuiConfig)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    config = parse_config(text, path)
    if check_repo and not config.repo_path.is_dir():
        line = _line_of(text, ("experiment", "repo"))
        where = f"{path}:{line}" if line else str(path)
        hint = ""
        if config.experiment.repo == ExperimentConfig.model_fields["repo"].default:
            hint = f" (run `autoresearch-tui init {path.parent}` to create the bundled example there)"
        raise ConfigError(f"{where}: experiment.repo: no such folder {config.repo_path}{hint}")
    return config


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
    if error["type"] == "value_error" and not loc:
        # Model-level checks phrase their own location ("lanes[1].name: ...").
        message = message.removeprefix("Value error, ")
        match = re.match(r"lanes\[(\d+)\]\.(\w+)", message)
        loc = ("lanes", int(match.group(1)), match.group(2)) if match else ()
        key = ""
    else:
        if error["type"] == "value_error" and loc[:3] == ("agent", "codex", "config"):
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
