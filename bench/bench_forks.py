"""Lane fork creation: `git clone --local` (autoresearch_tui.engine.repo.forks.ensure_fork) vs `cp -r`.

Two repos, generated locally (no network):
  (a) real history: a few thousand commits over a few hundred files (git fast-import);
  (b) the same repo carrying ~1 GB of untracked data, brought into the fork by
      fork_include (a symlinked folder, or hard-linked files) vs `cp -r` of everything.

Prints wall time (median of --repeat) and the extra disk each fork costs (`du` of the main
repo and the fork together minus the main repo alone, so hard links count once).
This is a benchmark: it prints figures and asserts nothing. Cleans up after itself.

    python bench/bench_forks.py [--commits 3000] [--files 300] [--data-mb 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoresearch_tui.engine.config import parse_config  # noqa: E402
from autoresearch_tui.engine.repo.forks import ensure_fork, git  # noqa: E402
from autoresearch_tui.engine.workspace import Workspace  # noqa: E402

WORDS = ("jnp", "lax", "scan", "vmap", "pjit", "shard", "mesh", "dtype", "bf16", "einsum",
         "remat", "carry", "params", "grads", "opt_state", "logits", "loss", "step", "axis")


def make_history(repo: Path, commits: int, files: int, seed: int = 0) -> None:
    """A repo with `commits` commits touching `files` source files, via git fast-import."""
    rng = random.Random(seed)
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    contents = [
        [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(rng.randint(60, 240))]
        for _ in range(files)
    ]
    names = [f"src/pkg{i % 17}/mod_{i}.py" for i in range(files)]
    out: list[bytes] = []
    when = 1_600_000_000
    for c in range(commits):
        touched = range(files) if c == 0 else rng.sample(range(files), rng.randint(1, 4))
        ops = []
        for i in touched:
            lines = contents[i]
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(lines) + 1)
                if rng.random() < 0.3 and lines:
                    lines.pop(min(pos, len(lines) - 1))
                else:
                    lines.insert(pos, " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))))
            data = ("\n".join(lines) + "\n").encode()
            ops.append(b"M 100644 inline " + names[i].encode() + b"\n" +
                       b"data %d\n" % len(data) + data)
        message = f"commit {c}: tweak {len(ops)} file(s)\n".encode()
        when += rng.randint(60, 7200)
        out.append(b"commit refs/heads/main\n")
        out.append(b"author Bench <bench@example.com> %d +0000\n" % when)
        out.append(b"committer Bench <bench@example.com> %d +0000\n" % when)
        out.append(b"data %d\n" % len(message) + message)
        out.extend(ops)
        out.append(b"\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(out),
                   check=True)
    git(repo, "reset", "--quiet", "--hard", "main")
    git(repo, "config", "user.name", "Bench")
    git(repo, "config", "user.email", "bench@example.com")


def make_data(folder: Path, megabytes: int, files: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(16 * 1024 * 1024)
    per_file = max(1, megabytes // files)
    for i in range(files):
        with open(folder / f"shard_{i}.bin", "wb") as handle:
            for _ in range(max(1, per_file // 16)):
                handle.write(chunk)


def du_kib(*paths: Path) -> list[int]:
    out = subprocess.run(["du", "-sk", *map(str, paths)], capture_output=True, text=True,
                         check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()]


def extra_kib(main: Path, copy: Path) -> int:
    """Disk the copy adds beyond the main repo (hard links to main's files count zero)."""
    return du_kib(main, copy)[1]


def workspace_for(root: Path, repo: Path, include: list[str]) -> Workspace:
    inc = ", ".join(f'"{g}"' for g in include)
    toml = (f'[experiment]\nname = "bench"\nrepo = "{repo}"\nfork_include = [{inc}]\n'
            '[[lanes]]\nname = "a"\n')
    return Workspace(parse_config(toml, root / "autoresearch.toml"))


def time_fork(root: Path, repo: Path, include: list[str], repeat: int) -> tuple[float, int]:
    times, extra = [], 0
    for r in range(repeat):
        ws_root = root / f"ws-{len(include)}-{r}"
        ws_root.mkdir()
        ws = workspace_for(ws_root, repo, include)
        start = time.perf_counter()
        fork = ensure_fork(ws, "a")
        times.append(time.perf_counter() - start)
        extra = extra_kib(repo, fork)
        shutil.rmtree(ws_root)
    return statistics.median(times), extra


def time_raw_clone(root: Path, repo: Path, repeat: int) -> float:
    times = []
    for r in range(repeat):
        dest = root / f"raw-{r}"
        start = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", "--local", str(repo), str(dest)], check=True)
        times.append(time.perf_counter() - start)
        shutil.rmtree(dest)
    return statistics.median(times)


def time_cp(root: Path, repo: Path, repeat: int) -> tuple[float, float, int]:
    times, syncs, extra = [], [], 0
    for r in range(repeat):
        dest = root / f"cp-{r}"
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(repo), str(dest)], check=True)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        os.sync()  # writing back the copy is part of its cost
        syncs.append(time.perf_counter() - start)
        extra = extra_kib(repo, dest)
        shutil.rmtree(dest)
    return statistics.median(times), statistics.median(syncs), extra


def row(label: str, seconds: float, kib: int, note: str = "") -> str:
    return f"  {label:<44} {seconds * 1000:9.0f} ms {kib / 1024:10.1f} MiB extra  {note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--data-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch folder (default: system temp)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-forks-", dir=args.dir))
    try:
        repo = root / "main" / "proj"
        start = time.perf_counter()
        make_history(repo, args.commits, args.files)
        n_commits = git(repo, "rev-list", "--count", "HEAD").stdout.strip()
        n_files = git(repo, "ls-files").stdout.count("\n")
        git_kib, tree_kib = du_kib(repo / ".git")[0], du_kib(repo)[0]
        print(f"(a) repo with history: {n_commits} commits, {n_files} files, .git "
              f"{git_kib / 1024:.1f} MiB, repo {tree_kib / 1024:.1f} MiB "
              f"(generated in {time.perf_counter() - start:.1f} s); median of {args.repeat}")
        fork_s, fork_kib = time_fork(root, repo, [], args.repeat)
        raw_s = time_raw_clone(root, repo, args.repeat)
        cp_s, cp_sync_s, cp_kib = time_cp(root, repo, args.repeat)
        print(row("clone --local (ensure_fork, all steps)", fork_s, fork_kib))
        print(row("  of which the bare `git clone --local`", raw_s, fork_kib))
        print(row("cp -r", cp_s, cp_kib, f"(+{cp_sync_s * 1000:.0f} ms sync)"))
        print(f"  ratio cp -r / clone --local: time {cp_s / fork_s:.2f}x, "
              f"disk {cp_kib / max(fork_kib, 1):.2f}x")

        start = time.perf_counter()
        make_data(repo / "data", args.data_mb)
        os.sync()
        data_kib = du_kib(repo / "data")[0]
        print(f"\n(b) same repo + {data_kib / 1024:.0f} MiB untracked data in data/ "
              f"(written in {time.perf_counter() - start:.1f} s; page cache warm)")
        dir_s, dir_kib = time_fork(root, repo, ["data"], args.repeat)
        files_s, files_kib = time_fork(root, repo, ["data/*"], args.repeat)
        cp_s, cp_sync_s, cp_kib = time_cp(root, repo, args.repeat)
        print(row("clone + fork_include 'data' (symlink)", dir_s, dir_kib))
        print(row("clone + fork_include 'data/*' (hard links)", files_s, files_kib))
        print(row("cp -r", cp_s, cp_kib, f"(+{cp_sync_s * 1000:.0f} ms sync)"))
        print(f"  ratio cp -r / clone+symlink: time {cp_s / dir_s:.2f}x "
              f"({(cp_s + cp_sync_s) / dir_s:.2f}x with sync), disk {cp_kib / max(dir_kib, 1):.1f}x")
        print(f"  ratio cp -r / clone+hard links: time {cp_s / files_s:.2f}x, "
              f"disk {cp_kib / max(files_kib, 1):.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
