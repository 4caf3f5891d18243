"""Train the cosmic-shear emulator on the jax-cosmo training set and write the package data.

Reads the ``.npz`` of ``scripts/make_shear_training_set.py`` (the rows done so far), trains
an ``astrobayes.emulators.Emulator`` of ``log [C_GG, -C_GI, C_II]`` (3 x pairs x multipoles
outputs: 360 for des_y1_like, 1980 for lsst_y1_like; PCA) on the Sobol' training points,
reports its accuracy on the held-out Latin-hypercube points (component spectra, and
observed spectra at A_IA = 0.5 and A_IA = 2) and writes, for ``--survey NAME``,

* ``<out-dir>/NAME_emulator.eqx`` (``save_emulator``, no pickle) and
* ``<out-dir>/NAME.npz`` (multipoles, synthetic data vector, covariance).

The shipped files in ``src/astrobayes/cosmology/shear_data/`` were made with

    .venv/bin/python scripts/make_shear_training_set.py --out /tmp/shear_training_set.npz
    .venv/bin/python scripts/train_shear_emulator.py /tmp/shear_training_set.npz \
        --out-dir src/astrobayes/cosmology/shear_data

(the options' defaults are the shipped DES-Y1-like settings) and, for the LSST-Y1-like files,
the commands in docs/cosmic_shear.md ("30+ parameters"), where the numbers are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from astrobayes.cosmology.shear import shear_spectra
from astrobayes.cosmology.shear_survey import SURVEYS, emulator_names
from astrobayes.emulators import train_emulator, validate_emulator
from astrobayes.io import save_emulator, write_npz_atomic


def positive_outputs(components: np.ndarray) -> np.ndarray:
    """(N, 3, pairs, ell) GG, GI, II -> (N, 3 pairs ell) [GG, -GI, II] (all positive)."""
    signs = np.array([1.0, -1.0, 1.0])[None, :, None, None]
    return (components * signs).reshape(components.shape[0], -1)


def observed_errors(emulator, parameters, components, a_ia, sigma, survey):
    """Relative error and error in data standard deviations of the spectra (m = 0)."""
    shape = components.shape[1:]
    emulated = np.asarray(emulator(parameters), np.float64).reshape(-1, *shape)
    emulated[:, 1] *= -1.0
    zero = np.zeros(survey.num_bins)
    true = np.stack([np.asarray(shear_spectra(c, a_ia, zero, survey)) for c in components])
    approx = np.stack([np.asarray(shear_spectra(c, a_ia, zero, survey)) for c in emulated])
    return np.abs(approx / true - 1.0), np.abs(approx - true) / sigma


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_set", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--pca-components", type=int, default=48)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    parser.add_argument("--num-epochs", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=300)
    parser.add_argument("--max-train", type=int, default=None, help="use the first N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--survey", choices=sorted(SURVEYS), default="des_y1_like")
    args = parser.parse_args()
    survey = SURVEYS[args.survey]

    with np.load(args.training_set, allow_pickle=False) as stored:
        done = int(stored["num_done"])
        parameters = stored["parameters"][:done]
        components = stored["components"][:done]
        is_test = stored["is_test"][:done]
        ell, data_vector, covariance = stored["ell"], stored["data_vector"], stored["covariance"]
        names = tuple(str(n) for n in stored["names"])
        if int(stored["num_timed"]) > 0:
            print(
                f"jax-cosmo ({2 * survey.num_bins} tracers, float64): {float(stored['cpu_seconds']) / int(stored['num_timed']):.3f} "
                f"CPU-s, {float(stored['wall_seconds']) / int(stored['num_timed']):.3f} wall-s per point"
            )
    if names != emulator_names(survey):
        raise SystemExit(f"training set inputs {names} differ from {emulator_names(survey)}")
    if not np.allclose(ell, survey.ell):
        raise SystemExit("training set multipoles differ from the survey's")
    train_x, train_c = parameters[~is_test], components[~is_test]
    test_x, test_c = parameters[is_test], components[is_test]
    if args.max_train is not None:
        train_x, train_c = train_x[: args.max_train], train_c[: args.max_train]
    print(f"{len(train_x)} training points, {len(test_x)} held-out test points")

    start = time.perf_counter()
    emulator, info = train_emulator(
        jax.random.key(args.seed),
        train_x,
        positive_outputs(train_c),
        pca_components=args.pca_components,
        hidden=tuple(args.hidden),
        log_outputs=True,
        num_epochs=args.num_epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
    )
    print(
        f"training: {time.perf_counter() - start:.0f} s, {info.num_epochs} epochs "
        f"(best {info.best_epoch}), validation loss {info.validation_losses.min():.2e}"
    )
    report = validate_emulator(emulator, test_x, positive_outputs(test_c))
    print(
        f"held-out GG/-GI/II ({report.num_points} LHS points over the box): relative error "
        f"max {report.max_relative_error:.2e}, 99% {report.percentile_99_relative_error:.2e}, "
        f"median {report.median_relative_error:.2e}"
    )
    sigma = np.sqrt(np.diag(covariance)).reshape(survey.num_pairs, survey.num_ell)
    for a_ia in (0.5, 2.0):
        relative, in_sigma = observed_errors(emulator, test_x, test_c, a_ia, sigma, survey)
        print(
            f"held-out observed C_ell at A_IA = {a_ia}: relative error max {relative.max():.2e}, "
            f"99% {np.percentile(relative, 99):.2e}, median {np.median(relative):.2e}; "
            f"in data sigmas max {in_sigma.max():.2e}, 99% {np.percentile(in_sigma, 99):.2e}"
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_emulator(args.out_dir / f"{survey.name}_emulator.eqx", emulator)
    write_npz_atomic(
        args.out_dir / f"{survey.name}.npz",
        ell=np.asarray(ell),
        data_vector=np.asarray(data_vector),
        covariance=np.asarray(covariance),
    )
    size = (args.out_dir / f"{survey.name}_emulator.eqx").stat().st_size
    print(f"wrote {args.out_dir} (emulator {size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
