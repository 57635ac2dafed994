"""A dry check of a workspace: what would stop its first run, and how to fix it.

`init` prints it after writing the config, `bench` before it runs anything. Nothing here
changes a file or runs the benchmark: it reads the config, the main repo (through git) and
the benchmark script's text at the target branch.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from autoresearch_tui.engine.config import Config
from autoresearch_tui.engine.core.git import git, is_git_repo
from autoresearch_tui.engine.environment import engine_environment
from autoresearch_tui.engine.runs.trial import summary_example

INTERPRETERS = ("bash", "sh", "uv", "poetry", "pipenv", "conda")
"""Besides python: commands whose script argument is the benchmark file (`uv run x.py`)."""


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str
    blocking: bool = True
    """False for a likely mistake that does not stop a run (a note)."""

    def lines(self) -> list[str]:
        return [f"{'problem' if self.blocking else 'note'}: {self.what}", f"  fix: {self.fix}"]


def branches(repo: Path) -> list[str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/", check=False).stdout
    return out.split()


def bench_script(command: str) -> str | None:
    """The file bench_command runs, when it names one: `python bench.py` and
    `FOO=1 uv run python -u tools/bench.py --x` -> the script; `make bench`, `python -m pkg`
    -> None (a program or a module: checked on PATH, or not at all)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)  # VAR=value before the command
    for index, word in enumerate(words):
        name = Path(word).name
        if name in INTERPRETERS or re.fullmatch(r"python3?(\.\d+)?", name) or word == "run":
            continue
        if word == "-m":
            return None
        if word.startswith("-"):
            continue
        if index == 0 and not word.endswith((".py", ".sh")) and "/" not in word:
            return None
        return word
    return None


def check_workspace(config: Config) -> list[Problem]:
    """Everything that would stop or spoil the first run, each with its fix."""
    problems: list[Problem] = []
    experiment = config.experiment
    repo = config.repo_path
    if not is_git_repo(repo):
        said = git(repo, "rev-parse", "--show-toplevel", check=False).stderr if repo.is_dir() else ""
        if "dubious ownership" in said:  # files owned by another user (an unpacked tarball...)
            return [Problem(f"git refuses {repo}: it is owned by another user (\"dubious ownership\")",
                            f"run `git config --global --add safe.directory {repo}`, or take "
                            f"ownership of it (chown -R $(id -u) {repo})")]
        return [Problem(f"experiment.repo {repo} is not the top of a git repository"
                        + (f" (git says: {said.strip().splitlines()[0]})" if said.strip() else ""),
                        f"run `git init` in {repo} and commit your code, or point experiment.repo at "
                        "your repository")]
    if git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).returncode != 0:
        return [Problem(f"{repo} has no commit yet", f"commit your code first: cd {repo} && git add -A "
                        "&& git commit -m 'baseline'")]
    branch = experiment.target_branch
    have = branches(repo)
    if branch not in have:
        problems.append(Problem(
            f"experiment.target_branch {branch!r} is not a branch of {repo} (its branches: "
            f"{', '.join(have) or 'none'})",
            f"set target_branch = \"{have[0]}\"" if len(have) == 1 else
            "set target_branch to the branch merges should land on"))
        ref = "HEAD"
    else:
        ref = branch
    if experiment.program.strip():
        program = Path(experiment.program).expanduser()
        program = program if program.is_absolute() else config.workspace / program
        if not program.is_file():
            problems.append(Problem(f"experiment.program {experiment.program!r}: no such file ({program})",
                                    "write the loop program there, or set program = \"\" for the "
                                    "bundled one"))
    script = bench_script(experiment.bench_command)
    if script is None:
        try:
            program_name = shlex.split(experiment.bench_command)[0]
        except (ValueError, IndexError):
            return problems + [Problem(f"bench_command {experiment.bench_command!r} is not a command",
                                       "set bench_command to how one run is measured, e.g. "
                                       "\"python bench.py\"")]
        path = engine_environment().get("PATH")
        if shutil.which(program_name, path=path) is None:
            problems.append(Problem(f"bench_command runs `{program_name}`, which is not on PATH",
                                    "install it, or set bench_command to a command that exists"))
        return problems
    in_repo = Path(script) if not Path(script).is_absolute() else None
    if in_repo is None:
        if not Path(script).is_file():
            problems.append(Problem(f"bench_command runs {script}, which does not exist",
                                    "write the benchmark there, or change bench_command"))
        return problems
    shown = git(repo, "show", f"{ref}:{in_repo.as_posix()}", check=False)
    if shown.returncode != 0:
        committed_elsewhere = (repo / in_repo).is_file()
        problems.append(Problem(
            f"bench_command runs {in_repo}, which is not "
            + ("committed in" if committed_elsewhere else "in") + f" {repo} at {ref}",
            (f"commit it (cd {repo} && git add {in_repo} && git commit): each lane works on a "
             "clone of the committed code" if committed_elsewhere else
             f"write a benchmark as {repo / in_repo} ({_example_bench()} is a complete one) and "
             "commit it, or change bench_command")))
        return problems
    if "AUTORESEARCH_METRICS" not in shown.stdout:
        problems.append(Problem(
            f"{in_repo} never mentions AUTORESEARCH_METRICS: the engine reads each run's metrics "
            "from that file, so no run would be measured",
            f"append one JSON object per line to os.environ['AUTORESEARCH_METRICS'], at least a "
            f"summary: {summary_example(experiment.metric)}", blocking=False))
    return problems


def _example_bench() -> str:
    """Where the bundled example's bench.py is, in this installation."""
    from autoresearch_tui.engine.setup.init_workspace import InitError, example_source

    try:
        return str(example_source() / "bench.py")
    except InitError:
        return "the bundled examples/jax_example/bench.py"
