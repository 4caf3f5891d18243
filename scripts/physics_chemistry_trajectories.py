"""Training trajectories of the primordial-chemistry network (resumable, atomic).

Initial conditions are drawn uniformly in log10 over ``astrobayes.physics.chemistry.
ConditionBox`` (density, temperature, ionised and molecular fractions, Lyman-Werner J21);
draw ``i`` uses ``fold_in(key, i)``, so a chunked run is reproducible and resumable. Each
chunk is solved by the vmapped Kvaerno5 solver (float64) and then the whole file is
rewritten atomically (``astrobayes.io.write_npz_atomic``): an interrupted run loses at most
the chunk in progress, and running the same command again resumes (settings must match).

Arrays: ``conditions (num, 5)``, ``times (num_times,)``, ``states (num, num_times, 10)``
(abundances per H nucleus in ``SPECIES`` order, then ln T), ``is_successful (num,)``,
``num_steps (num,)``, ``settings`` (JSON string).

Run:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/physics_chemistry_trajectories.py \
        --out chemistry_trajectories.npz --num 2048 --chunk 128
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # the stiff network needs float64

import numpy as np  # noqa: E402

from astrobayes.io import write_npz_atomic  # noqa: E402
from astrobayes.physics.chemistry import (  # noqa: E402
    ConditionBox,
    sample_conditions,
    simulate_trajectories,
)


def settings_record(args) -> str:
    """JSON record of everything that determines the file's content (checked on resume)."""
    return json.dumps(
        {
            "seed": args.seed,
            "box": ConditionBox().bounds.tolist(),
            "times": [args.first_time, args.last_time, args.num_times],
            "rtol": args.rtol,
            "atol": args.atol,
        },
        sort_keys=True,
    )


def main() -> None:
    """Generate or resume the trajectory file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--num", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-times", type=int, default=32)
    parser.add_argument("--first-time", type=float, default=1e8)
    parser.add_argument("--last-time", type=float, default=3e15)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--atol", type=float, default=1e-20)
    args = parser.parse_args()
    settings = settings_record(args)
    times = np.geomspace(args.first_time, args.last_time, args.num_times)
    arrays = {
        "conditions": np.zeros((0, 5)),
        "states": np.zeros((0, args.num_times, 10)),
        "is_successful": np.zeros(0, bool),
        "num_steps": np.zeros(0, np.int64),
    }
    if args.out.exists():
        with np.load(args.out, allow_pickle=False) as old:
            if str(old["settings"]) != settings:
                raise SystemExit(f"{args.out}: settings differ from this command; use a new --out")
            arrays = {name: old[name] for name in arrays}
        print(f"resuming from {len(arrays['conditions'])} trajectories")
    key = jax.random.key(args.seed)
    box = ConditionBox()
    while len(arrays["conditions"]) < args.num:
        start = len(arrays["conditions"])
        stop = min(start + args.chunk, args.num)
        began = time.perf_counter()
        conditions = np.asarray(sample_conditions(key, range(start, stop), box))
        solution = simulate_trajectories(conditions, times, rtol=args.rtol, atol=args.atol)
        arrays["conditions"] = np.concatenate([arrays["conditions"], conditions])
        arrays["states"] = np.concatenate([arrays["states"], np.asarray(solution.states)])
        arrays["is_successful"] = np.concatenate(
            [arrays["is_successful"], np.asarray(solution.is_successful)]
        )
        arrays["num_steps"] = np.concatenate([arrays["num_steps"], np.asarray(solution.num_steps)])
        write_npz_atomic(args.out, times=times, settings=np.array(settings), **arrays)
        print(
            f"{stop}/{args.num} trajectories ({time.perf_counter() - began:.1f} s for "
            f"{stop - start}; failed so far {int(np.sum(~arrays['is_successful']))})",
            flush=True,
        )


if __name__ == "__main__":
    main()
