"""Redshift augmentation vs none on a simulated two-class transient task (issue 17 item 5).

Training set only at low redshift, test set at high redshift (and a low-z test set).
Per seed: one training set; three classifiers with the same initialisation and training
keys, trained through the shared loop: (a) no augmentation, (b) augmentation from the
observed light curves (per-epoch blackbody fits, ``physics.augmentation.redshift_augment``),
(c) augmentation from the true SED (``redshift_augment_latent``, an upper bound). The
augmented sets are the originals plus ``--copies`` redshifted versions of each object. The
same test sets serve every arm. One JSON record per seed is written atomically
(``astrobayes.io.write_json_atomic``); a rerun skips the seeds already in the file.

Run:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/physics_redshift_augmentation.py \
        --out augmentation.json --seeds 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.io import write_json_atomic
from astrobayes.physics.augmentation import (
    LightCurves,
    SurveyConfig,
    classification_accuracy,
    redshift_augment,
    redshift_augment_latent,
    simulate_transients,
    train_classifier,
)


def _concatenate(a: LightCurves, b: LightCurves) -> LightCurves:
    return LightCurves(*(jnp.concatenate([x, y]) for x, y in zip(a, b, strict=True)))


def main() -> None:
    """Run (or resume) the seeds and write the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=2000)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--train-z", type=float, nargs=2, default=(0.05, 0.3))
    parser.add_argument("--test-z", type=float, nargs=2, default=(0.6, 1.0))
    parser.add_argument("--augment-z", type=float, nargs=2, default=(0.05, 1.0))
    args = parser.parse_args()
    config = SurveyConfig()
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "seeds")}
    path = Path(args.out)
    record = {"settings": settings, "seeds": {}}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") != json.loads(json.dumps(settings)):
            raise SystemExit(f"{path} was made with other settings; use another --out")
        record = old
    test_key = jax.random.key(10_000)
    high = simulate_transients(jax.random.fold_in(test_key, 0), args.num_test, args.test_z, config)
    low = simulate_transients(jax.random.fold_in(test_key, 1), args.num_test, args.train_z, config)
    for seed in range(args.seeds):
        if str(seed) in record["seeds"]:
            continue
        start = time.perf_counter()
        cpu = time.process_time()
        data_key, augment_key, train_key = jax.random.split(jax.random.key(seed), 3)
        train = simulate_transients(data_key, args.num_train, args.train_z, config)
        arms = {
            "none": train,
            "observed": _concatenate(
                train, redshift_augment(augment_key, train, args.copies, args.augment_z, config)
            ),
            "true_sed": _concatenate(
                train,
                redshift_augment_latent(augment_key, train, args.copies, args.augment_z, config),
            ),
        }
        row = {}
        for name, curves in arms.items():
            classifier, info = train_classifier(train_key, curves)
            row[name] = {
                "accuracy_high_z": float(classification_accuracy(classifier, high)),
                "accuracy_low_z": float(classification_accuracy(classifier, low)),
                "epochs": int(info.num_epochs),
                "status": info.status.name,
                "num_train": int(curves.labels.shape[0]),
            }
            print(f"seed {seed} {name:9s} {row[name]}", flush=True)
        row["wall_s"] = time.perf_counter() - start
        row["cpu_s"] = time.process_time() - cpu
        record["seeds"][str(seed)] = row
        write_json_atomic(path, record)
    seeds = list(record["seeds"].values())
    summary = {}
    for arm in ("none", "observed", "true_sed"):
        for metric in ("accuracy_high_z", "accuracy_low_z"):
            values = np.array([s[arm][metric] for s in seeds])
            summary[f"{arm}.{metric}"] = (
                float(values.mean()),
                float(values.std(ddof=1) / np.sqrt(len(values))),
            )
    for arm in ("observed", "true_sed"):
        gain = np.array([s[arm]["accuracy_high_z"] - s["none"]["accuracy_high_z"] for s in seeds])
        summary[f"gain_high_z.{arm}"] = (
            float(gain.mean()),
            float(gain.std(ddof=1) / np.sqrt(len(gain))),
        )
    record["summary"] = summary
    for name, (mean, error) in summary.items():
        print(f"{name:32s} {mean:.4f} ± {error:.4f}")
    write_json_atomic(path, record)


if __name__ == "__main__":
    main()
