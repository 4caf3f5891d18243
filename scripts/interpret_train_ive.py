"""Train the interpretable encoder (β-VAE) on the halo laboratory and measure its MI matrix.

Issue 14, items 2-3. Steps (each result is written atomically and reused on a rerun, so
the script resumes where it stopped):

1. draw three disjoint sets of laboratory halos (:func:`astrobayes.interpret.halo_profiles`):
   ``train`` (10% of it held out inside ``fit`` for early stopping), ``select`` (choice of
   β) and ``test`` (the reported numbers; never trained on, never used to choose);
2. for each β of the sweep, train a :class:`~astrobayes.interpret.ProfileVAE` through
   ``astrobayes._training.fit``; on ``select``: reconstruction rms, active latents (mean
   KL > ``--kl-threshold`` nats), MI matrix of the active latents with the factors;
3. choose β by the rule: **the largest β whose selection rms is within
   ``--rms-tolerance`` (25%) of the smallest rms of the sweep** — the most compressed
   model that is still as accurate; the rule does not look at the factors;
4. on ``test``: rms and the MI matrix (GMM-MI, bootstrap errors) of the chosen model;
   every MI matrix is reported twice: of the raw posterior means and of their ICA
   rotation ("β-VAE + ICA": :func:`astrobayes.interpret.ica_rotation` fitted on the
   *training* profiles' latent means, never on the factors or held-out sets);
5. control: the same β trained on laboratory halos whose outer profile is independent
   of Γ (``control=True``); its test MI matrix should show no latent informative about Γ.

Outputs in ``--out``: ``ive_beta<β>.eqx`` (equinox leaves, atomic), ``ive_beta<β>.json``,
``ive_control_beta<β>.eqx``/``.json``, ``results.json`` and the figures ``tradeoff.png``,
``traversal.png``, ``mi_matrix.png``, ``mi_matrix_ica.png``, ``mi_matrix_control.png``.

Usage (about 10 CPU-minutes)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/interpret_train_ive.py --out runs/ive
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from astrobayes._training import TrainingConfig
from astrobayes.interpret import (
    FACTOR_NAMES,
    MIConfig,
    ProfileVAE,
    VAEConfig,
    active_latents,
    encode_profiles,
    halo_profiles,
    ica_rotation,
    latent_factor_mi,
    reconstruction_rms,
    train_profile_vae,
)
from astrobayes.io import (
    save_figure_atomic,
    software_provenance,
    write_atomic,
    write_json_atomic,
)


def parse() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/ive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-select", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--betas", default="1,2,4,8")
    parser.add_argument("--num-latents", type=int, default=5)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--decorrelation", type=float, default=0.0, help="DIP-VAE-I weight")
    parser.add_argument("--noise-scale", type=float, default=0.02)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--kl-threshold", type=float, default=0.1)
    parser.add_argument("--rms-tolerance", type=float, default=0.25)
    parser.add_argument("--num-bootstrap", type=int, default=50, help="GMM-MI replicas")
    parser.add_argument("--num-mc-samples", type=int, default=20_000, help="GMM-MI MC draws")
    parser.add_argument("--sweep-bootstrap", type=int, default=20, help="GMM-MI replicas, sweep")
    parser.add_argument("--skip-control", action="store_true")
    return parser.parse_args()


def train_or_load(key, name, data, args, beta, out: Path):
    """Train one model (or load it and its record when both files exist)."""
    config = VAEConfig(
        num_latents=args.num_latents, width=args.width, depth=args.depth,
        beta=beta, noise_scale=args.noise_scale,
        decorrelation=args.decorrelation,
    )  # fmt: skip
    weights, record_path = out / f"{name}.eqx", out / f"{name}.json"
    if weights.exists() and record_path.exists():
        skeleton = ProfileVAE(jax.random.key(0), data.log_density.shape[1], config)
        model = eqx.tree_deserialise_leaves(weights, skeleton)
        print(f"{name}: loaded", flush=True)
        return model, json.loads(record_path.read_text())
    training = TrainingConfig(
        learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_epochs=args.max_epochs, patience=args.patience, schedule="cosine",
    )  # fmt: skip
    start = time.process_time()
    model, info = train_profile_vae(
        key, data.log_density, data.log_radius, config=config, training=training
    )
    write_atomic(weights, lambda handle: eqx.tree_serialise_leaves(handle, model))
    record = {
        "beta": beta,
        "config": dataclasses.asdict(config),
        "epochs": info.num_epochs,
        "best_epoch": info.best_epoch,
        "best_validation_loss": float(np.min(info.validation_losses)),
        "training_status": info.status.name,
        "cpu_seconds": time.process_time() - start,
    }
    print(f"{name}: {info.num_epochs} epochs, {info.status.name}, "
          f"{record['cpu_seconds']:.0f} s CPU", flush=True)  # fmt: skip
    write_json_atomic(record_path, record)
    return model, record


def evaluate(key, model, data, args, mi_config, train):
    """rms, active latents and the MI matrices of the active latents on ``data``.

    Two matrices: of the raw posterior means, and of their ICA rotation
    (:func:`~astrobayes.interpret.ica_rotation` fitted on the *training* profiles' means
    of the same latents; the factors are never used).
    """
    rms, rms_per_radius = reconstruction_rms(model, data.log_density, data.log_radius)
    mean, log_var = encode_profiles(model, data.log_density)
    active, kl = active_latents(mean, log_var, args.kl_threshold)
    summary = {
        "rms": rms,
        "rms_per_radius": rms_per_radius,
        "kl_per_latent": kl,
        "active_latents": active,
    }
    mi = ica_mi = None
    if active.size >= len(FACTOR_NAMES):
        key_ica, key_rotation = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
        mi = latent_factor_mi(key, np.asarray(mean)[:, active], data.factors, config=mi_config)
        summary.update(_mi_summary(mi, [int(active[i]) for i in mi.matching]))
        train_mean, _ = encode_profiles(model, train.log_density)
        rotation = ica_rotation(key_rotation, np.asarray(train_mean)[:, active])
        rotated = rotation.apply(np.asarray(mean)[:, active])
        ica_mi = latent_factor_mi(key_ica, rotated, data.factors, config=mi_config)
        summary.update(
            {f"ica_{k}": v for k, v in _mi_summary(ica_mi, list(ica_mi.matching)).items()}
        )
        summary.update(
            ica_unmixing=rotation.unmixing,
            ica_kurtosis=rotation.kurtosis,
            ica_iterations=rotation.num_iterations,
            ica_rotation_status=rotation.status.name,
        )
    else:
        summary.update(off_diagonal_ratio=float("nan"), status="FEWER_ACTIVE_THAN_FACTORS",
                       ica_off_diagonal_ratio=float("nan"))  # fmt: skip
    return summary, mi, ica_mi, np.asarray(mean)


def _mi_summary(mi, matching):
    return {
        "mi_estimate": mi.estimate,
        "mi_error": mi.error,
        "matching": matching,
        "diagonal": mi.diagonal,
        "off_diagonal_ratio": mi.off_diagonal_ratio,
        "off_diagonal_ratio_error": mi.off_diagonal_ratio_error,
        "mi_statuses": mi.mi_statuses.tolist(),
        "status": mi.status.name,
    }


def main() -> None:
    """Run the sweep, the choice of β, the test measurement and the control."""
    from astrobayes.plots.interpret import plot_beta_tradeoff, plot_latent_traversal, plot_mi_matrix

    args = parse()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    betas = [float(b) for b in args.betas.split(",")]
    key = jax.random.key(args.seed)
    keys = jax.random.split(key, 10)
    total = args.num_train + args.num_select + args.num_test

    def split(halos):
        edges = (args.num_train, args.num_train + args.num_select)
        parts = []
        for lo, hi in ((0, edges[0]), edges, (edges[1], total)):
            parts.append(halos._replace(
                log_density=halos.log_density[lo:hi], factors=halos.factors[lo:hi],
                concentration=halos.concentration[lo:hi],
                splashback_radius=halos.splashback_radius[lo:hi],
            ))  # fmt: skip
        return parts

    train, select, test = split(halo_profiles(keys[0], total))
    mi_config = MIConfig(num_bootstrap=args.num_bootstrap, num_mc_samples=args.num_mc_samples)
    sweep_config = MIConfig(num_bootstrap=args.sweep_bootstrap, num_mc_samples=5000)
    sweep = []
    for i, beta in enumerate(betas):
        model, record = train_or_load(jax.random.fold_in(keys[1], i), f"ive_beta{beta:g}",
                                      train, args, beta, out)  # fmt: skip
        summary, _, _, _ = evaluate(jax.random.fold_in(keys[2], i), model, select, args,
                                    sweep_config, train)  # fmt: skip
        sweep.append({**record, **{f"select_{k}": v for k, v in summary.items()}})
        print(f"beta {beta:g}: select rms {summary['rms']:.4f}, active "
              f"{len(summary['active_latents'])}, off-diagonal "
              f"{summary['off_diagonal_ratio']:.3f}, after ICA "
              f"{summary['ica_off_diagonal_ratio']:.3f}", flush=True)  # fmt: skip
    rms = np.array([s["select_rms"] for s in sweep])
    eligible = [b for b, r in zip(betas, rms, strict=True)
                if r <= (1 + args.rms_tolerance) * rms.min()]  # fmt: skip
    chosen = max(eligible)
    index = betas.index(chosen)
    print(f"chosen beta {chosen:g} (largest with rms <= {1 + args.rms_tolerance:.2f} x best)")
    model, _ = train_or_load(jax.random.fold_in(keys[1], index), f"ive_beta{chosen:g}",
                             train, args, chosen, out)  # fmt: skip
    test_summary, test_mi, test_ica_mi, test_mean = evaluate(
        keys[3], model, test, args, mi_config, train
    )
    results = {
        "settings": vars(args),
        "factor_names": FACTOR_NAMES,
        "rule": f"largest beta with selection rms <= (1 + {args.rms_tolerance}) x smallest",
        "sweep": sweep,
        "chosen_beta": chosen,
        "test": test_summary,
    }
    save_figure_atomic(out / "tradeoff.png", plot_beta_tradeoff(
        betas, rms, [s["select_off_diagonal_ratio"] for s in sweep],
        [len(s["select_active_latents"]) for s in sweep], chosen=chosen))  # fmt: skip
    active = test_summary["active_latents"]
    if active.size:
        save_figure_atomic(out / "traversal.png", plot_latent_traversal(
            model, test.log_radius, test_mean.mean(axis=0), active))  # fmt: skip
    if test_mi is not None:
        labels = [f"z{i}" for i in active]
        save_figure_atomic(out / "mi_matrix.png", plot_mi_matrix(test_mi, FACTOR_NAMES, labels))
        ica_labels = [f"ica{i}" for i in range(len(active))]
        save_figure_atomic(out / "mi_matrix_ica.png",
                           plot_mi_matrix(test_ica_mi, FACTOR_NAMES, ica_labels))  # fmt: skip
    if not args.skip_control:
        control_halos = halo_profiles(keys[4], total, control=True)
        c_train, _, c_test = split(control_halos)
        c_model, c_record = train_or_load(
            keys[5], f"ive_control_beta{chosen:g}", c_train, args, chosen, out
        )
        c_summary, c_mi, c_ica_mi, _ = evaluate(keys[6], c_model, c_test, args, mi_config,
                                                c_train)  # fmt: skip
        results["control"] = {**c_record, **c_summary}
        if c_mi is not None:
            labels = [f"z{i}" for i in c_summary["active_latents"]]
            save_figure_atomic(out / "mi_matrix_control.png",
                               plot_mi_matrix(c_mi, FACTOR_NAMES, labels))  # fmt: skip
        # every active latent's MI with Γ, main and control
        results["accretion_mi"] = {
            "main_max": float(np.max(test_summary["mi_estimate"][:, 2])),
            "control_max": float(np.max(c_summary["mi_estimate"][:, 2]))
            if c_mi is not None else None,
            "main_ica_max": float(np.max(test_summary["ica_mi_estimate"][:, 2])),
            "control_ica_max": float(np.max(c_summary["ica_mi_estimate"][:, 2]))
            if c_ica_mi is not None else None,
        }  # fmt: skip
    results["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", results)
    print(json.dumps({k: results[k] for k in ("chosen_beta",)}))
    print("test rms", test_summary["rms"], "off-diagonal", test_summary["off_diagonal_ratio"],
          "+-", test_summary.get("off_diagonal_ratio_error"), "after ICA",
          test_summary["ica_off_diagonal_ratio"], "+-",
          test_summary.get("ica_off_diagonal_ratio_error"))  # fmt: skip
    for name, part in (("test", test_summary), ("control", results.get("control", {}))):
        for prefix in ("", "ica_"):
            if f"{prefix}mi_estimate" in part:
                print(f"{name} {prefix or 'raw '}MI\n", np.round(part[f"{prefix}mi_estimate"], 3),
                      "\n+-\n", np.round(part[f"{prefix}mi_error"], 3))  # fmt: skip


if __name__ == "__main__":
    main()
