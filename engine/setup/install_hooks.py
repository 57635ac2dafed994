"""`install-hooks` / `uninstall-hooks`: the loop's guardrails for plain Claude Code sessions.

install-hooks [--repo PATH] [--lane NAME] [--config FILE] [--marker-max-age-hours H]

- merges command hooks into ``<repo>/.claude/settings.local.json`` (UserPromptSubmit,
  Stop, PostToolUse, PreCompact), each ``<this python> -S <package>/hooks/<script>.py
  --root <repo>``, keeping every other key and hook; the previous file is kept next to it as
  ``settings.local.json.autoresearch-backup``;
- copies the rendered skills into ``<repo>/.claude/skills/<name>/SKILL.md``, which the
  Claude CLI offers as slash commands (/start-experiment, /stop-experiment,
  /create-retrospective, /autoresearch-loop);
- creates the lane's ledger ``.claude/autoresearch/lanes/<lane>/results.tsv`` (header only)
  and writes ``.claude/autoresearch/install.json`` (what the hooks read, and what was added);
- adds those paths to the repo's ``.git/info/exclude`` so the loop's ``git add -A`` and
  ``git reset --hard`` never touch them.

Experiment, metric, bench command, lane focus and [loop] come from ``--config`` or the
nearest autoresearch.toml from the repo upward; without one, the defaults.

uninstall-hooks [--repo PATH] removes exactly that: the hook entries it added (the settings
file comes back byte-identical when nothing else changed in it; deleted if install created
it), the skill files it wrote (unless edited since), the exclude lines, the markers, the
empty folders it created, the ledger if it still holds only its header, and the event log
of a lane with no runs. A lane's ledger rows, retrospectives and events are the user's
results and stay, still ignored by git (one exclude line is kept for them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from autoresearch_tui.engine.core import policy
from autoresearch_tui.engine.core.files import atomic_write_bytes
from autoresearch_tui.engine.core.git import git
from autoresearch_tui.engine.config import CONFIG_FILENAME, LANE_NAME_PATTERN, Config, ConfigError, load_config
from autoresearch_tui.engine.agent.prompts import loop_program
from autoresearch_tui.engine.core.skills import SKILL_NAMES, render_skill
from autoresearch_tui.engine.setup.init_workspace import experiment_name_for

SETTINGS_NAME = "settings.local.json"
BACKUP_SUFFIX = ".autoresearch-backup"
STATE_DIR = Path(".claude") / "autoresearch"
MANIFEST_NAME = "install.json"
HOOK_TIMEOUT_S = 30
DEFAULT_LANE = "main"
DEFAULT_MARKER_MAX_AGE_H = 12.0
DATE_PLACEHOLDER = "<today's date, YYYY-MM-DD>"  # hooks/_common.py replaces it when injecting
EXCLUDE_HEADER = "# autoresearch-tui install-hooks (uninstall-hooks removes this block)"

# event -> script (hooks/<script>.py)
HOOK_SCRIPTS = (
    ("UserPromptSubmit", "prompt_hook.py"),
    ("Stop", "stop_hook.py"),
    ("PostToolUse", "reinject_hook.py"),
    ("PreCompact", "reinject_hook.py"),
)

PLAIN_SESSION_NOTE = """
## In this plain Claude Code session
The engine's tools (`run_benchmark`, `record_run`, `lane_status`) do not exist here; do their
work yourself:
- **Benchmark** with Bash, in `{fork}`: `{bench_command}`. Bash kills a command after 2
  minutes by default (10 at most, with the tool's `timeout` parameter): for longer runs start
  it in the background with its output in a log file, and poll the log.
- **Record every run** by appending one tab-separated line to `{ledger}`:
  `run_id<TAB>ts<TAB>commit<TAB>{metric}<TAB>status<TAB>description` — run_id 0001, 0002, ...;
  ts from `date +%s`; commit from `git rev-parse --short HEAD`; status `keep`, `discard`,
  `crash` or `inconclusive`. The guardrails read this file (plateau detection).
- **Lane status** is that file: read it before every hypothesis.
- Append to the ledger with Bash (`printf '...\\n' >> <ledger>`); touch nothing else under
  `.claude/`: the guardrails' state lives there.
"""


class InstallError(Exception):
    """A problem phrased for the user (no traceback)."""


@dataclass
class Result:
    lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)


# ------------------------------------------------------------------------------- paths


def hooks_dir() -> Path:
    """The installed hooks/ folder (inside the package, next to engine/)."""
    return Path(str(resources.files("autoresearch_tui.hooks")))


def hook_command(script: str, repo: Path, python: str | None = None) -> str:
    """`<python> -S <hooks>/<script> --root <repo>`.

    -S skips site-packages (the hooks are stdlib-only and load engine/policy.py by path):
    about 15 ms less per invocation with an editable install's import finder.
    """
    return " ".join(shlex.quote(part) for part in (
        python or sys.executable, "-S", str(hooks_dir() / script), "--root", str(repo)))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _mkdirs(path: Path, created: list[str]) -> None:
    """mkdir -p, remembering each folder that did not exist (for uninstall)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir()
        created.append(str(folder))


# ------------------------------------------------------------------------------- config


def _find_config(repo: Path) -> Path | None:
    for folder in (repo, *repo.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _resolve(repo: Path, lane: str | None, config_path: str | Path | None) -> tuple[Config | None, dict]:
    """The config (or None) and everything the skills and hooks need for this lane."""
    path = Path(config_path) if config_path else _find_config(repo)
    config = load_config(path, check_repo=False) if path else None
    if lane is None:
        lane = config.lanes[0].name if config else DEFAULT_LANE
    if not re.match(LANE_NAME_PATTERN, lane):
        raise InstallError(f"--lane {lane!r}: lane names are letters, digits, '_', '.', '-' (max 40)")
    focus = ""
    if config:
        try:
            focus = config.lane(lane).focus.strip()
        except KeyError:
            focus = ""
    experiment = config.experiment if config else None
    lane_dir = repo / STATE_DIR / "lanes" / lane
    variables = {
        "lane": lane,
        "experiment": experiment.name if experiment else experiment_name_for(repo),
        "metric": experiment.metric if experiment else "step_time_ms",
        "direction": experiment.direction if experiment else "minimize",
        "bench_command": experiment.bench_command if experiment else "python bench.py",
        "fork": str(repo),
        "lane_dir": str(lane_dir),
        "ledger": str(lane_dir / "results.tsv"),
        "retrospectives_dir": str(lane_dir / "retrospectives"),
        "date": DATE_PLACEHOLDER,
        "focus": focus,
        "focus_block": f"\n## This lane's focus\n{focus}\n" if focus else "",
        "device_note": "",  # no engine, no device leases in a plain session
        "evidence_note": "",
    }
    settings = policy.LoopSettings.from_object(config.loop) if config else policy.LoopSettings()
    info = {"config": str(path.resolve()) if path else None, "variables": variables,
            "settings": {k: getattr(settings, k) for k in policy.LoopSettings.__dataclass_fields__}}
    return config, info


def _skill_files(config: Config | None, variables: dict) -> dict[str, str]:
    """name -> full SKILL.md text (front matter kept: the CLI lists skills by it)."""
    note = PLAIN_SESSION_NOTE.format(**variables)
    out = {}
    for name in SKILL_NAMES:
        text = render_skill(name, variables, body_only=False)
        if name == "autoresearch-loop":
            front = re.match(r"\A---\n.*?\n---\n", text, re.DOTALL)
            body = loop_program(config, variables) if config else render_skill(name, variables)
            text = (front.group(0) if front else "") + body.rstrip() + "\n" + note
        elif name == "start-experiment":
            text = text.rstrip() + "\n" + note
        out[name] = text if text.endswith("\n") else text + "\n"
    return out


# ------------------------------------------------------------------------------- git exclude


def _git_exclude(repo: Path) -> tuple[Path, Path] | None:
    """(info/exclude path, work tree top) of the repo's git, or None outside git."""
    try:
        top = git(repo, "rev-parse", "--show-toplevel", check=False, timeout=20)
        gp = git(repo, "rev-parse", "--git-path", "info/exclude", check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if top.returncode or gp.returncode:
        return None
    exclude = Path(gp.stdout.strip())
    if not exclude.is_absolute():
        exclude = repo / exclude
    return exclude, Path(top.stdout.strip())


def _exclude_block(repo: Path, top: Path, skill_names) -> str:
    try:
        rel = repo.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        rel = ""
    prefix = "/" + (rel + "/" if rel and rel != "." else "")
    paths = [f"{prefix}.claude/autoresearch/", f"{prefix}.claude/{SETTINGS_NAME}",
             f"{prefix}.claude/{SETTINGS_NAME}{BACKUP_SUFFIX}",
             *(f"{prefix}.claude/skills/{name}/" for name in skill_names)]
    return "\n".join([EXCLUDE_HEADER, *paths, ""])


# ------------------------------------------------------------------------------- install


def install(repo: Path | str = ".", lane: str | None = None, config_path: str | Path | None = None,
            marker_max_age_h: float = DEFAULT_MARKER_MAX_AGE_H, python: str | None = None) -> Result:
    repo = Path(repo).expanduser().resolve()
    if not repo.is_dir():
        raise InstallError(f"--repo {repo}: no such folder")
    if marker_max_age_h <= 0:
        raise InstallError("--marker-max-age-hours must be positive")
    result = Result()
    manifest_path = repo / STATE_DIR / MANIFEST_NAME
    if manifest_path.exists():
        result.lines += uninstall(repo, quiet_missing=True).lines
        result.say("(re-installing: the previous installation was removed first)")
    config, info = _resolve(repo, lane, config_path)
    variables = info["variables"]
    claude_dir = repo / ".claude"
    settings_path = claude_dir / SETTINGS_NAME

    # Read and check everything before writing anything.
    before: bytes | None = settings_path.read_bytes() if settings_path.exists() else None
    if before is not None:
        try:
            data = json.loads(before.decode("utf-8")) if before.strip() else {}
        except ValueError as exc:
            raise InstallError(f"{settings_path}: not valid JSON ({exc}); fix or move it first") from None
        if not isinstance(data, dict) or not isinstance(data.get("hooks", {}), dict):
            raise InstallError(f"{settings_path}: expected a JSON object with a 'hooks' object")
    else:
        data = {}
    skills = _skill_files(config, variables)
    for name, text in skills.items():
        dest = claude_dir / "skills" / name / "SKILL.md"
        if dest.exists() and dest.read_text(encoding="utf-8", errors="replace") != text:
            raise InstallError(f"{dest} exists and is not ours: move it away or rename that skill first")

    created_dirs: list[str] = []
    _mkdirs(claude_dir, created_dirs)
    manifest: dict[str, Any] = {
        "version": 1,
        "installed_at": time.time(),
        "repo": str(repo),
        "python": python or sys.executable,
        "hooks_dir": str(hooks_dir()),
        "config": info["config"],
        "experiment": variables["experiment"],
        "lane": variables["lane"],
        "metric": variables["metric"],
        "direction": variables["direction"],
        "bench_command": variables["bench_command"],
        "lane_dir": variables["lane_dir"],
        "ledger": variables["ledger"],
        "settings": info["settings"],
        "marker_max_age_s": marker_max_age_h * 3600.0,
        "settings_file": str(settings_path),
        "settings_before": before.decode("utf-8", errors="surrogateescape") if before is not None else None,
        "settings_had_hooks_key": "hooks" in data,
        "added_hooks": {},
        "skills": {},
        "created_dirs": created_dirs,
        "created_ledger": None,
        "exclude": None,
    }

    try:
        # 1. settings.local.json (backup first)
        if before is not None:
            backup = settings_path.with_name(SETTINGS_NAME + BACKUP_SUFFIX)
            atomic_write_bytes(backup, before)
            manifest["backup"] = str(backup)
            result.say(f"backup of the previous settings: {backup}")
        hooks = data.setdefault("hooks", {})
        for event, script in HOOK_SCRIPTS:
            group = {"hooks": [{"type": "command", "command": hook_command(script, repo, python),
                                "timeout": HOOK_TIMEOUT_S}]}
            existing = hooks.get(event)
            if existing is not None and not isinstance(existing, list):
                raise InstallError(f"{settings_path}: hooks.{event} is not a list")
            manifest["added_events"] = manifest.get("added_events", []) + ([event] if existing is None else [])
            hooks.setdefault(event, []).append(group)
            manifest["added_hooks"].setdefault(event, []).append(group)
        atomic_write_bytes(settings_path, _json_bytes(data))
        result.say(f"hooks added to {settings_path}")

        # 2. skills
        for name, text in skills.items():
            dest = claude_dir / "skills" / name / "SKILL.md"
            _mkdirs(dest.parent, created_dirs)
            payload = text.encode("utf-8")
            atomic_write_bytes(dest, payload)
            manifest["skills"][name] = {"path": str(dest), "sha256": _sha(payload)}
        result.say(f"skills copied to {claude_dir / 'skills'}: "
                   + ", ".join(f"/{name}" for name in skills))

        # 3. the lane's ledger
        lane_dir = Path(variables["lane_dir"])
        _mkdirs(lane_dir / "retrospectives", created_dirs)
        ledger = Path(variables["ledger"])
        if not ledger.exists():
            header = "\t".join(["run_id", "ts", "commit", variables["metric"], "status", "description"]) + "\n"
            ledger.write_text(header, encoding="utf-8")
            manifest["created_ledger"] = {"path": str(ledger), "sha256": _sha(header.encode())}
        result.say(f"ledger: {ledger}")

        # 4. git exclude
        found = _git_exclude(repo)
        if found:
            exclude, top = found
            block = _exclude_block(repo, top, skills)
            old = exclude.read_text(encoding="utf-8") if exclude.exists() else None
            if old is not None and old and not old.endswith("\n"):
                block = "\n" + block
            _mkdirs(exclude.parent, created_dirs)
            exclude.write_text((old or "") + block, encoding="utf-8")
            manifest["exclude"] = {"path": str(exclude), "block": block, "created": old is None}
            result.say(f"git will ignore the guardrails' files ({exclude})")

    except BaseException:
        # Leave a manifest of what was done so far, so uninstall-hooks can undo it.
        (repo / STATE_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(manifest_path, _json_bytes(manifest))
        raise

    # 5. the manifest last: its presence means "installed"
    (repo / STATE_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(manifest_path, _json_bytes(manifest))
    result.say(f"installed for experiment {variables['experiment']}, lane {variables['lane']}"
               + (f" (settings from {info['config']})" if info["config"] else
                  " (no autoresearch.toml found: default settings, the experiment named after "
                  "the repo; --config FILE uses one)"))
    result.say("in that repo run `claude`, then type /start-experiment; /stop-experiment ends the loop")
    return result


# ------------------------------------------------------------------------------- uninstall


def uninstall(repo: Path | str = ".", *, quiet_missing: bool = False) -> Result:
    repo = Path(repo).expanduser().resolve()
    result = Result()
    manifest_path = repo / STATE_DIR / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        if not quiet_missing:
            result.say(f"nothing to uninstall: no {manifest_path}")
        return result
    except ValueError as exc:
        raise InstallError(f"{manifest_path}: unreadable ({exc}); remove the hooks by hand") from None

    _remove_settings(manifest, result)
    for name, entry in (manifest.get("skills") or {}).items():
        path = Path(entry["path"])
        if not path.exists():
            continue
        if _sha(path.read_bytes()) == entry.get("sha256"):
            path.unlink()
        else:
            result.say(f"kept {path}: edited since install")
    ledger = manifest.get("created_ledger")
    if ledger and Path(ledger["path"]).exists() and _sha(Path(ledger["path"]).read_bytes()) == ledger["sha256"]:
        Path(ledger["path"]).unlink()
    elif ledger and Path(ledger["path"]).exists():
        result.say(f"kept the ledger {ledger['path']} (it has runs)")
    _remove_exclude(manifest, result)
    sessions = repo / STATE_DIR / "sessions"
    if sessions.is_dir():
        for path in sessions.iterdir():
            if path.suffix in (".json", ".lock", ".bad") or path.name.endswith(".json.bad"):
                path.unlink(missing_ok=True)
        _rmdir(sessions)
    manifest_path.unlink()
    kept = _remove_lanes_without_results(repo)
    for folder in sorted(manifest.get("created_dirs") or [], key=lambda p: -len(Path(p).parts)):
        _rmdir(Path(folder))
    _rmdir(repo / STATE_DIR / "lanes")
    if not kept:
        (repo / STATE_DIR / "hooks.log").unlink(missing_ok=True)  # the hooks' diagnostics, nothing more
    _rmdir(repo / STATE_DIR)
    if kept:
        _keep_results_excluded(repo, manifest, result)
        for lane_dir, what in kept:
            result.say(f"kept {lane_dir} ({', '.join(what)}): your results; delete the folder "
                       "once you no longer need them")
    result.say(f"uninstalled the autoresearch hooks and skills from {repo}")
    return result


def _remove_lanes_without_results(repo: Path) -> list[tuple[Path, list[str]]]:
    """Delete the hooks' event logs of lanes that have no runs and no retrospectives;
    return the lanes whose results stay, each with what it holds."""
    kept = []
    lanes = repo / STATE_DIR / "lanes"
    for lane_dir in sorted(lanes.iterdir()) if lanes.is_dir() else []:
        if not lane_dir.is_dir():
            continue
        retrospectives = lane_dir / "retrospectives"
        what = []
        if (lane_dir / "results.tsv").exists():
            what.append("a ledger with runs")
        if retrospectives.is_dir() and any(retrospectives.iterdir()):
            what.append("retrospectives")
        if what:
            kept.append((lane_dir, what))
            continue
        for log in lane_dir.glob("events*.jsonl"):
            log.unlink()
        _rmdir(retrospectives)
        _rmdir(lane_dir)
    return kept


KEPT_EXCLUDE_HEADER = "# autoresearch-tui: results kept by uninstall-hooks (remove with the folder)"


def _keep_results_excluded(repo: Path, manifest: dict, result: Result) -> None:
    """Results left behind stay out of `git status` and out of a loop's `git add -A`."""
    found = _git_exclude(repo)
    if not found:
        return
    exclude, top = found
    try:
        rel = repo.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        rel = ""
    prefix = "/" + (rel + "/" if rel and rel != "." else "")
    line = f"{prefix}{STATE_DIR.as_posix()}/"
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if line in text.splitlines():
        return
    block = ("" if not text or text.endswith("\n") else "\n") + f"{KEPT_EXCLUDE_HEADER}\n{line}\n"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text(text + block, encoding="utf-8")
    result.say(f"git still ignores {line} ({exclude})")


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (user data) or already gone


def _remove_settings(manifest: dict, result: Result) -> None:
    path = Path(manifest["settings_file"])
    before_text = manifest.get("settings_before")
    before = before_text.encode("utf-8", errors="surrogateescape") if before_text is not None else None
    if not path.exists():
        result.say(f"{path} is gone; nothing to remove there")
        return
    try:
        data = json.loads(path.read_bytes().decode("utf-8") or "{}")
    except ValueError as exc:
        result.say(f"{path}: not valid JSON ({exc}); remove the autoresearch hooks by hand")
        return
    hooks = data.get("hooks") if isinstance(data, dict) else None
    if not isinstance(hooks, dict):
        result.say(f"{path}: no hooks left to remove")
        return
    for event, groups in (manifest.get("added_hooks") or {}).items():
        current = hooks.get(event)
        if not isinstance(current, list):
            continue
        for group in groups:
            if group in current:
                current.remove(group)
        if not current and event in (manifest.get("added_events") or []):
            del hooks[event]
    if not hooks and not manifest.get("settings_had_hooks_key"):
        del data["hooks"]
    backup = Path(manifest["backup"]) if manifest.get("backup") else None
    if before is None and data == {}:
        path.unlink()
    elif before is not None and data == (json.loads(before.decode("utf-8")) if before.strip() else {}):
        atomic_write_bytes(path, before)  # byte-identical to the file before install
    else:
        atomic_write_bytes(path, _json_bytes(data))
        result.say(f"{path} changed since install: rewritten without the autoresearch hooks"
                   + (f" (the pre-install file is kept at {backup})" if backup else ""))
        return
    if backup and backup.exists() and before is not None and backup.read_bytes() == before:
        backup.unlink()


def _remove_exclude(manifest: dict, result: Result) -> None:
    entry = manifest.get("exclude")
    if not entry:
        return
    path, block = Path(entry["path"]), entry["block"]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return
    if block in text:
        text = text.replace(block, "", 1)
        if not text and entry.get("created"):
            path.unlink()
        else:
            path.write_text(text, encoding="utf-8")
    else:
        result.say(f"{path}: the autoresearch block was edited; remove it by hand")
