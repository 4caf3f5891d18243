r"""Render the GalSim galaxy images that train (and test) the data-driven galaxy prior.

Bulge + disk galaxies convolved with random Moffat PSFs
(:func:`astrobayes.imaging.galaxies.galaxy_images`), peak 1. Two disjoint sets from one
seed: ``train`` from ``fold_in(key(seed), 0)`` (the training script holds 10% of it out
for early stopping) and ``test`` from ``fold_in(key(seed), 1)``, the held-out galaxies of
the benchmark, never trained on. Written atomically (``astrobayes.io.write_npz_atomic``)
with the seed and settings; rerunning with the same arguments gives the same file.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/make_galaxy_images.py \\
        --out runs/galaxies/galaxies_32.npz --num-train 9000 --num-test 200

About 7 ms per image (GalSim, one core).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import numpy as np

from astrobayes.imaging.galaxies import GalaxySettings, galaxy_images
from astrobayes.io import write_npz_atomic

TRAIN_STREAM, TEST_STREAM = 0, 1


def main() -> None:
    """Render and save the training and held-out sets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/galaxies/galaxies_32.npz")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--num-train", type=int, default=9000)
    parser.add_argument("--num-test", type=int, default=200)
    args = parser.parse_args()
    settings = GalaxySettings(size=args.size)
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    train = galaxy_images(jax.random.fold_in(key, TRAIN_STREAM), args.num_train, settings)
    test = galaxy_images(jax.random.fold_in(key, TEST_STREAM), args.num_test, settings)
    record = {
        "seed": args.seed,
        "train_stream": TRAIN_STREAM,
        "test_stream": TEST_STREAM,
        "settings": dataclasses.asdict(settings),
        "script": "scripts/make_galaxy_images.py",
    }
    write_npz_atomic(
        args.out, train=train, test=test, record=np.asarray(json.dumps(record, sort_keys=True))
    )
    print(
        f"wrote {args.out}: train {train.shape}, test {test.shape} in "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
