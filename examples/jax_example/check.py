"""Correctness check: does model.py still compute what the baseline computed?

    python check.py [--steps 5] [--rtol 0.02] [--baseline COMMIT]

Runs a few training steps of this folder's `model.step_fn` and of the baseline's model
(`model.py` at COMMIT, default $AUTORESEARCH_BASELINE_COMMIT, read with `git show`) from
the same parameters and batch, and compares the losses after each step. Exits 1 when a
loss differs by more than `rtol` (relative), 0 when they agree, and 0 with a note when
there is no baseline to compare with (the first run of a lane is the baseline).

autoresearch-tui runs it (`[experiment] check_command`) before a keep counts, in a clean
checkout of the kept commit; a failing check makes the run a discard.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path



def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def losses(module, steps: int) -> list[float]:
    import jax  # here, not at the top: the baseline's own check needs no jax at all

    params = module.init_params()
    opt_state = module.init_opt_state(params)
    batch = module.make_batch()
    out = []
    for _ in range(steps):
        params, opt_state, loss = module.step_fn(params, opt_state, batch)
        out.append(float(jax.block_until_ready(loss)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rtol", type=float, default=0.02, help="relative loss tolerance (default 0.02)")
    parser.add_argument("--baseline", default=os.environ.get("AUTORESEARCH_BASELINE_COMMIT", ""))
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    if not args.baseline:  # the lane's first keep is the baseline: nothing to compare it with
        print("check: no baseline commit to compare with (this run is the baseline)")
        return 0
    current = losses(load_module("model", here / "model.py"), args.steps)
    try:
        text = subprocess.run(["git", "-C", str(here), "show", f"{args.baseline}:model.py"],
                              capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        print(f"check: cannot read model.py at {args.baseline}: {exc.stderr.strip()}")
        return 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "baseline_model.py"
        path.write_text(text)
        reference = losses(load_module("baseline_model", path), args.steps)
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(current, reference))
    ok = all(math.isfinite(a) for a in current) and worst <= args.rtol
    print(f"check: losses {[round(x, 6) for x in current]} vs baseline {args.baseline[:10]} "
          f"{[round(x, 6) for x in reference]}: worst relative difference {worst:.2e} "
          f"({'within' if ok else 'OUTSIDE'} rtol {args.rtol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
