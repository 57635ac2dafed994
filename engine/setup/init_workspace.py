"""`autoresearch-tui init [DIR] [--repo PATH] [--force]`: create a workspace.

A workspace is a folder with `autoresearch.toml` and the main repo the lanes fork. By
default the bundled JAX example is copied to `raw/code/jax-example` and committed as the
first commit of branch `main`; with `--repo` the config points at an existing git repo.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from autoresearch_tui.engine.core.git import GitError, git
from autoresearch_tui.engine.config import CONFIG_FILENAME, ConfigError, load_config

EXAMPLE_REPO = "raw/code/jax-example"
DEFAULT_LANES = ("a", "b")
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "profile", ".pytest_cache", "metrics.jsonl")


def experiment_name_for(repo: Path | str) -> str:
    """An experiment name (a folder name under wiki/experiment/) from a repo's folder name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(repo).resolve().name).strip("-._")[:60]
    return name or "experiment"


class InitError(Exception):
    """Workspace creation refused or failed; one line for the user."""


def example_source() -> Path:
    """The bundled example (works from a checkout and from an installed wheel)."""
    here = Path(__file__).resolve().parent.parent / "examples" / "jax_example"
    if (here / "bench.py").is_file():
        return here
    try:
        from importlib.resources import files

        candidate = Path(str(files("autoresearch_tui.examples") / "jax_example"))
        if (candidate / "bench.py").is_file():
            return candidate
    except Exception:
        pass
    raise InitError("the bundled example (examples/jax_example) is missing from this installation")


EXAMPLE_FROZEN = ("bench.py", "check.py")
"""The bundled example's measurement and its correctness check: the agent may not change them."""
EXAMPLE_CHECK = "python check.py"


def render_config(repo: str, lanes: tuple[str, ...] | list[str] = DEFAULT_LANES,
                  bench_command: str = "python bench.py", *, name: str = "example",
                  target_branch: str = "main", frozen: tuple[str, ...] = (),
                  check_command: str = "") -> str:
    lane_tables = "".join(
        f'\n[[lanes]]\nname = {_toml_string(name)}\nfocus = ""\nenv = {{}}\n' for name in lanes
    )
    return f'''# autoresearch-tui workspace: every key is explained in the README, "Configuration"

[experiment]
{_commented("name", name, "folder name under wiki/experiment/")}
{_commented("repo", repo, "main repo, relative to this file or absolute")}
program = ""                         # loop instructions file; "" = bundled skills/autoresearch-loop
metric = "step_time_ms"
direction = "minimize"
bench_command = {_toml_string(bench_command)}
run_timeout_s = 900
{_commented("target_branch", target_branch, "where merges land in the main repo")}
{f"frozen = [{', '.join(_toml_string(g) for g in frozen)}]".ljust(36)} # globs the agent may not change (the benchmark, its data)
confirm_runs = 2                     # a would-be new best is re-measured A/B this many times; 0 = off
{_commented("check_command", check_command, 'correctness check before a keep counts ("" = none)')}

[agent]
model = ""                           # "" = the CLI's default
permission_mode = "acceptEdits"
allowed_tools = ["Bash", "Read", "Edit", "Write", "Glob", "Grep"]
max_budget_usd = 0.0                 # per lane; 0 = no cap

[loop]
reinject_every_turns = 20
reinject_every_minutes = 10
retrospective_every_stops = 3
plateau_runs = 8
max_consecutive_blocks = 5

[devices]
platform = "auto"                    # auto | tpu | gpu | cpu
chips = 0                            # accelerator chips on this host (CPU: cores); 0 = detect
slots = 1                            # benchmark slots: a count, or chip lists [[0,1,2,3],[4,5,6,7]];
                                     # 1 = one engine-run benchmark at a time on the whole host
agent_shell_device = false           # the agent's own Bash gets no accelerator (JAX_PLATFORMS=cpu)
{lane_tables}'''


def _commented(key: str, value: str, comment: str) -> str:
    """`key = "value"` with its comment in the template's comment column."""
    return f"{key} = {_toml_string(value)}".ljust(36) + f" # {comment}"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def current_branch(repo: Path) -> str | None:
    """The branch checked out in `repo` (also before its first commit); None when detached."""
    proc = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _git_identity_configured(repo: Path) -> bool:
    name = git(repo, "config", "user.name", check=False).stdout.strip()
    email = git(repo, "config", "user.email", check=False).stdout.strip()
    return bool(name and email)


def create_example_repo(target: Path, branch: str = "main") -> Path:
    """Copy the bundled example to `target` and make it a git repo with one commit on `branch`."""
    if target.exists() and any(target.iterdir()):
        raise InitError(f"{target} already exists and is not empty")
    shutil.copytree(example_source(), target, ignore=_COPY_IGNORE, dirs_exist_ok=True)
    (target / ".gitignore").write_text("__pycache__/\n*.pyc\nprofile/\n", encoding="utf-8")
    if shutil.which("git") is None:
        raise InitError("git is not installed (needed for the example repo)")
    try:
        git(target, "init", "-q")
        git(target, "checkout", "-q", "-B", branch)
        if not _git_identity_configured(target):
            git(target, "config", "user.name", "autoresearch-tui")
            git(target, "config", "user.email", "autoresearch-tui@localhost")
        git(target, "add", "-A")
        git(target, "commit", "-q", "--no-verify", "-m", "jax-example: initial version")
    except GitError as exc:
        raise InitError(str(exc)) from None
    return target


def ensure_example_repo(config_path: Path | str) -> bool:
    """Create the example repo an existing config names when it is missing; True if created.

    Only for the default example location (`raw/code/jax-example`), e.g. the repository's
    own autoresearch.toml on a fresh checkout.
    """
    try:
        config = load_config(config_path, check_repo=False)
    except ConfigError:
        return False
    if Path(config.experiment.repo) != Path(EXAMPLE_REPO) or config.repo_path.exists():
        return False
    config.repo_path.parent.mkdir(parents=True, exist_ok=True)
    create_example_repo(config.repo_path, branch=config.experiment.target_branch)
    return True


def create_workspace(
    dir: Path | str,
    repo: Path | str | None = None,
    lanes: tuple[str, ...] | list[str] = DEFAULT_LANES,
    *,
    force: bool = False,
) -> Path:
    """Create a workspace in `dir`; returns the path of its autoresearch.toml.

    Without `repo` the bundled example becomes `dir/raw/code/jax-example` (a git repo with
    one commit on `main`); with `repo` the config points at that existing git repo. An
    existing config is kept unless `force` (the example repo, when present, is reused).
    """
    root = Path(dir).expanduser().resolve()
    config_path = root / CONFIG_FILENAME
    if config_path.exists() and not force:
        if repo is None and ensure_example_repo(config_path):
            return config_path  # kept the config, created the example repo it names
        raise InitError(f"{config_path} already exists (use --force to overwrite it)")
    root.mkdir(parents=True, exist_ok=True)
    if repo is None:
        repo_path = root / EXAMPLE_REPO
        if not (repo_path / ".git").exists():
            repo_path.parent.mkdir(parents=True, exist_ok=True)
            create_example_repo(repo_path)
        repo_value = EXAMPLE_REPO
    else:
        repo_path = Path(repo).expanduser().resolve()
        if not repo_path.is_dir():
            raise InitError(f"--repo {repo}: no such folder")
        if not (repo_path / ".git").exists():
            raise InitError(f"--repo {repo}: not a git repository (run `git init` and commit first)")
        try:
            repo_value = str(repo_path.relative_to(root))
        except ValueError:
            repo_value = str(repo_path)
    if repo is None:  # the bundled example ships its frozen files and its check
        text = render_config(repo_value, tuple(lanes), frozen=EXAMPLE_FROZEN, check_command=EXAMPLE_CHECK)
    else:  # the user's repo: its own name and the branch it is on
        text = render_config(repo_value, tuple(lanes), name=experiment_name_for(repo_path),
                             target_branch=current_branch(repo_path) or "main")
    config_path.write_text(text, encoding="utf-8")
    try:
        load_config(config_path)
    except ConfigError as exc:  # a bug here, not the user's: say so plainly
        raise InitError(f"the generated config does not load: {exc}") from None
    return config_path
