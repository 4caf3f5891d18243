"""Train and evaluate the chemistry surrogates (MLP, DeepONet, latent ODE) with deep ensembles.

Input: a trajectory file of ``scripts/physics_chemistry_trajectories.py``. Trajectories are
split by index (the generator's draws are independent): the first ``--num-train`` train
(10% of them validate, by trajectory), the next ``--num-calibration`` fit the variance
scale of the ensemble intervals, the next ``--num-test`` are the held-out test set; no
calibration or test trajectory is ever trained on.

For each ``--kinds`` entry the ensemble is trained through ``astrobayes._training.fit``
and saved to ``OUT/<kind>.eqx`` (``astrobayes.io.save_surrogate_ensemble``, atomic; no
pickle) with its training record ``OUT/<kind>_training.json``. A rerun skips kinds whose
weights exist (resumable; the header must match the command's architecture). Then
``OUT/<kind>_metrics.json`` gets: errors per output on the test set (median and 99th
percentile of the relative error and of the error in dex, abundances above
``--error-floor`` per H), the raw 68% coverage on calibration and test, the variance
scale fitted on calibration and the recalibrated coverage on test, and for the MLP the
errors of an autoregressive roll-out at each output time next to the direct prediction.

Run (as in docs/physics.md):
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/physics_train_surrogates.py \
        --data chemistry_trajectories.npz --out surrogates --kinds mlp deeponet latent_ode
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from astrobayes._training import TrainingConfig
from astrobayes.io import software_provenance, write_json_atomic
from astrobayes.io.surrogates import load_surrogate_ensemble, save_surrogate_ensemble
from astrobayes.physics.surrogates import (
    OUTPUT_NAMES,
    SurrogateConfig,
    fit_variance_scale,
    interval_coverage,
    rollout,
    surrogate_data,
    surrogate_errors,
    surrogate_predict,
    train_surrogate_ensemble,
)


def load_splits(path: Path, num_train: int, num_calibration: int, num_test: int):
    """Train / calibration / test :class:`SurrogateData` from a trajectory file."""
    with np.load(path, allow_pickle=False) as file:
        ok = file["is_successful"]
        conditions, states, times = file["conditions"][ok], file["states"][ok], file["times"]
    needed = num_train + num_calibration + num_test
    if len(conditions) < needed:
        raise SystemExit(f"{path}: {len(conditions)} successful trajectories; need {needed}")
    bounds = np.cumsum([0, num_train, num_calibration, num_test])
    return [
        (
            surrogate_data(conditions[a:b], times, states[a:b]),
            conditions[a:b],
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def config_for(kind: str, args) -> SurrogateConfig:
    """Architecture and training settings of one kind from the command line."""
    training = TrainingConfig(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size if kind == "mlp" else args.trajectory_batch,
        max_epochs=args.max_epochs,
        patience=args.patience,
        schedule="cosine",
        cosine_final_fraction=0.01,
        clip_max_norm=1.0,
    )
    return SurrogateConfig(
        kind=kind,
        num_members=args.members,
        width=args.width if kind != "latent_ode" else args.latent_width,
        depth=args.depth,
        basis_size=args.basis_size,
        latent_size=args.latent_size,
        substeps=args.substeps,
        num_pairs=args.num_pairs if kind == "mlp" else 0,
        training=training,
    )


def _table(errors) -> dict:
    return {
        name: {
            "median_relative": float(errors.median_relative[k]),
            "p99_relative": float(errors.p99_relative[k]),
            "median_dex": float(errors.median_dex[k]),
            "p99_dex": float(errors.p99_dex[k]),
            "count": int(errors.count[k]),
        }
        for k, name in enumerate(OUTPUT_NAMES)
    }


def evaluate(kind: str, members, config, splits, floor: float) -> dict:
    """Errors, coverage and (MLP) roll-out of one trained ensemble."""
    (_, _), (calibration, _), (test, _) = splits
    mean_c, std_c = surrogate_predict(members, calibration.initial, calibration.log_times)
    mean_t, std_t = surrogate_predict(members, test.initial, test.log_times)
    errors = surrogate_errors(mean_t, test.targets, floor_dex=floor)
    raw_c = interval_coverage(mean_c, std_c, calibration.targets, floor_dex=floor)
    raw_t = interval_coverage(mean_t, std_t, test.targets, floor_dex=floor)
    scale = fit_variance_scale(mean_c, std_c, calibration.targets, floor_dex=floor)
    cal_t = interval_coverage(mean_t, std_t, test.targets, scale=scale, floor_dex=floor)
    record = {
        "kind": kind,
        "members": config.num_members,
        "error_floor_dex": floor,
        "num_test_trajectories": int(test.initial.shape[0]),
        "num_times": int(test.log_times.shape[0]),
        "overall_median_relative": errors.overall_median_relative,
        "overall_p99_relative": errors.overall_p99_relative,
        "per_output": _table(errors),
        "coverage68_raw_calibration": raw_c[1],
        "coverage68_raw_test": raw_t[1],
        "coverage68_raw_test_per_output": dict(
            zip(OUTPUT_NAMES, map(float, raw_t[0]), strict=True)
        ),
        "variance_scale": dict(zip(OUTPUT_NAMES, map(float, scale), strict=True)),
        "coverage68_recalibrated_test": cal_t[1],
        "coverage68_recalibrated_test_per_output": dict(
            zip(OUTPUT_NAMES, map(float, cal_t[0]), strict=True)
        ),
    }
    if kind == "mlp":
        roll_mean, _ = rollout(members, test.initial, test.log_times)
        direct = np.abs(np.asarray(mean_t) - np.asarray(test.targets))
        rolled = np.abs(np.asarray(roll_mean) - np.asarray(test.targets))
        mask = np.asarray(test.targets) > floor
        mask[..., 9] = True
        record["rollout"] = {
            "log10_time": [float(t) for t in np.asarray(test.log_times)],
            "median_dex_direct": [
                float(np.median(direct[:, k][mask[:, k]])) for k in range(direct.shape[1])
            ],
            "median_dex_rollout": [
                float(np.median(rolled[:, k][mask[:, k]])) for k in range(rolled.shape[1])
            ],
            "p99_dex_rollout": [
                float(np.percentile(rolled[:, k][mask[:, k]], 99)) for k in range(rolled.shape[1])
            ],
        }
        record["rollout_final_errors"] = _table(
            surrogate_errors(roll_mean[:, -1], test.targets[:, -1], floor_dex=floor)
        )
        record["rollout_all_times_overall_median_relative"] = surrogate_errors(
            roll_mean, test.targets, floor_dex=floor
        ).overall_median_relative
    return record


def main() -> None:
    """Train (or resume) each kind, then evaluate it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kinds", nargs="+", default=["mlp", "deeponet", "latent_ode"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=2048)
    parser.add_argument(
        "--train-limit", type=int, default=None, help="train on the first N of the train split"
    )
    parser.add_argument("--num-calibration", type=int, default=512)
    parser.add_argument("--num-test", type=int, default=512)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--latent-width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--basis-size", type=int, default=32)
    parser.add_argument("--latent-size", type=int, default=8)
    parser.add_argument("--substeps", type=int, default=2)
    parser.add_argument("--num-pairs", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--trajectory-batch", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--error-floor", type=float, default=-20.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args.data, args.num_train, args.num_calibration, args.num_test)
    train = splits[0][0]
    if args.train_limit is not None:  # a cheaper fit; calibration and test splits unchanged
        train = type(train)(
            train.initial[: args.train_limit], train.log_times, train.targets[: args.train_limit]
        )
    for index, kind in enumerate(args.kinds):
        config = config_for(kind, args)
        weights = args.out / f"{kind}.eqx"
        if weights.exists():
            members, saved = load_surrogate_ensemble(weights)
            if any(
                getattr(saved, f) != getattr(config, f)
                for f in (
                    "kind",
                    "num_members",
                    "width",
                    "depth",
                    "basis_size",
                    "latent_size",
                    "substeps",
                    "num_pairs",
                )
            ):
                raise SystemExit(
                    f"{weights}: architecture differs from this command; use a new --out"
                )
            print(f"[{kind}] loaded {weights}", flush=True)
        else:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            last = [0.0]

            def progress(stage, done, total, kind=kind, last=last):
                now = time.perf_counter()
                if now - last[0] > 30 or done == total:
                    last[0] = now
                    print(f"[{kind}] epoch {done}/{total}", flush=True)

            ensemble = train_surrogate_ensemble(
                jax.random.fold_in(jax.random.key(args.seed), index),
                train,
                config,
                progress_fn=progress,
            )
            wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            members = ensemble.members
            save_surrogate_ensemble(weights, members, config)
            info = ensemble.info
            write_json_atomic(
                args.out / f"{kind}_training.json",
                {
                    "status": ensemble.status.name,
                    "message": ensemble.status.value,
                    "epochs": info.num_epochs,
                    "best_epoch": info.best_epoch,
                    "num_train_samples": info.num_train,
                    "num_validation_samples": info.num_validation,
                    "best_validation_loss_sum_over_members": float(np.min(info.validation_losses)),
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "command": vars(args) | {"data": str(args.data), "out": str(args.out)},
                    "provenance": software_provenance(),
                },
            )
            print(
                f"[{kind}] trained: {ensemble.status.name}, {info.num_epochs} epochs, "
                f"{wall:.0f} s wall, {cpu:.0f} s CPU",
                flush=True,
            )
        record = evaluate(kind, members, config, splits, args.error_floor)
        write_json_atomic(args.out / f"{kind}_metrics.json", record)
        worst = max(OUTPUT_NAMES, key=lambda n: record["per_output"][n]["median_relative"])
        print(
            f"[{kind}] test: overall median rel {record['overall_median_relative']:.2e}, p99 "
            f"{record['overall_p99_relative']:.2e}; worst species median {worst} "
            f"{record['per_output'][worst]['median_relative']:.2e}; coverage68 raw "
            f"{record['coverage68_raw_test']:.3f}, recalibrated "
            f"{record['coverage68_recalibrated_test']:.3f}",
            flush=True,
        )
        print(json.dumps(record["per_output"], indent=None)[:2000], flush=True)


if __name__ == "__main__":
    main()
