"""Make the training and test sets of the cosmic-shear emulator with jax-cosmo (forward only).

For each design point of the survey's emulator box (``--survey``, a name in
``astrobayes.cosmology.shear_survey.SURVEYS``; ``emulator_names(survey)``: cosmology
``(omega_m, s8, omega_b, h, n_s, w0, wa)``, ``eta_ia`` and ``a_mod`` where the survey has
them, the photo-z shifts) one jitted, mapped jax-cosmo call gives the GG, GI and II Limber
spectra of every bin pair (``astrobayes.cosmology.shear_jax_cosmo.spectrum_components``).
A_IA and m_i enter analytically, so they are not design dimensions.

Design: ``--num-test`` Latin-hypercube test points first, then ``--num-train`` scrambled
Sobol' training points (a prefix of a Sobol' sequence is still space filling, so a run
stopped early leaves a usable training set). The output ``.npz`` also holds the synthetic
data vector (direct jax-cosmo call at the fiducial parameters, A_IA = 0.5, m_i = 0) and its
Gaussian covariance with shape noise.

The work goes in chunks of ``--chunk`` points; after each chunk the whole file is rewritten
atomically (``astrobayes.io.write_npz_atomic``), so an interrupted run loses at most the
chunk in progress; running the same command again resumes (the settings must match).

Run (float64; des_y1_like about 0.15 CPU-s per point here, lsst_y1_like about 0.6):
    .venv/bin/python scripts/make_shear_training_set.py --out shear_training_set.npz \
        --num-train 4096 --num-test 256
    .venv/bin/python scripts/make_shear_training_set.py --survey lsst_y1_like \
        --out lsst_training_set.npz --num-train 2048 --num-test 256

Needs the ``cosmo`` extra (jax-cosmo).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # a script: the training truth in float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from astrobayes.cosmology.shear_jax_cosmo import (  # noqa: E402
    gaussian_covariance,
    spectra,
    spectrum_components,
)
from astrobayes.cosmology.shear_survey import (  # noqa: E402
    SURVEYS,
    ShearSurvey,
    emulator_bounds,
    emulator_names,
    fiducial,
)
from astrobayes.emulators import design  # noqa: E402
from astrobayes.io import write_npz_atomic  # noqa: E402


def settings_record(args, survey: ShearSurvey) -> str:
    """JSON record of everything that determines the file's content (checked on resume)."""
    return json.dumps(
        {
            "seed": args.seed,
            "num_train": args.num_train,
            "num_test": args.num_test,
            "names": list(emulator_names(survey)),
            "bounds": emulator_bounds(survey).tolist(),
            "survey": dataclasses.asdict(survey),
            "fiducial": fiducial(survey),
        },
        sort_keys=True,
    )


def fiducial_data(survey: ShearSurvey):
    """Synthetic data vector (noiseless) and Gaussian covariance at the survey's fiducial."""
    values = fiducial(survey)
    theta = jnp.asarray([values[name] for name in emulator_names(survey)])
    m = jnp.asarray([values[f"m_{i + 1}"] for i in range(survey.num_bins)])
    fn = jax.jit(lambda t, a, m: spectra(t, a, m, survey))
    signal = np.asarray(fn(theta, values["a_ia"], m), dtype=np.float64)
    return signal.reshape(-1), gaussian_covariance(signal, survey)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("shear_training_set.npz"))
    parser.add_argument("--num-train", type=int, default=4096)
    parser.add_argument("--num-test", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--survey", choices=sorted(SURVEYS), default="des_y1_like")
    args = parser.parse_args()

    survey = SURVEYS[args.survey]
    record = settings_record(args, survey)
    shape = (3, survey.num_pairs, survey.num_ell)
    total = args.num_test + args.num_train
    if args.out.exists():
        with np.load(args.out, allow_pickle=False) as stored:
            state = {k: stored[k] for k in stored.files}
        if str(state["settings"]) != record:
            raise SystemExit(
                f"{args.out} was made with other settings; use another --out or the same "
                "options (delete the file to start over)"
            )
        print(f"resuming {args.out}: {int(state['num_done'])} of {total} points done")
    else:
        key = jax.random.key(args.seed)
        test_key, train_key = jax.random.split(key)
        bounds = emulator_bounds(survey)
        points = np.concatenate(
            [
                design(test_key, bounds, args.num_test, method="lhs"),
                design(train_key, bounds, args.num_train, method="sobol"),
            ]
        )
        start = time.perf_counter()
        data_vector, covariance = fiducial_data(survey)
        print(f"fiducial data vector: {time.perf_counter() - start:.1f} s (with compilation)")
        state = {
            "settings": np.asarray(record),
            "names": np.asarray(emulator_names(survey)),
            "parameters": points,
            "is_test": np.arange(total) < args.num_test,
            "components": np.full((total, *shape), np.nan),
            "num_done": np.asarray(0),
            "cpu_seconds": np.asarray(0.0),
            "wall_seconds": np.asarray(0.0),
            "num_timed": np.asarray(0),
            "ell": np.asarray(survey.ell),
            "data_vector": data_vector,
            "covariance": covariance,
        }
        write_npz_atomic(args.out, **state)

    # vmap over 8 points at a time (a chunk of 64 vmapped at once needs ~26 GB)
    def one(point):
        return spectrum_components(point, survey)

    batched = jax.jit(lambda points: jax.lax.map(one, points, batch_size=8))
    done = int(state["num_done"])
    compiled = False
    while done < total:
        stop = min(done + args.chunk, total)
        batch = np.asarray(state["parameters"][done:stop])
        pad = args.chunk - batch.shape[0]  # keep one compiled shape
        if pad:
            batch = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)])
        wall, cpu = time.perf_counter(), time.process_time()
        values = np.asarray(batched(jnp.asarray(batch)), dtype=np.float64)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        values = values[: stop - done]
        if not np.all(np.isfinite(values)):
            bad = np.flatnonzero(~np.isfinite(values).all(axis=(1, 2, 3)))
            raise SystemExit(f"non-finite spectra at design rows {(done + bad).tolist()}")
        state["components"][done:stop] = values
        state["num_done"] = np.asarray(stop)
        if compiled:  # the first chunk of a run includes compilation: not timed
            state["cpu_seconds"] = np.asarray(float(state["cpu_seconds"]) + cpu)
            state["wall_seconds"] = np.asarray(float(state["wall_seconds"]) + wall)
            state["num_timed"] = np.asarray(int(state["num_timed"]) + args.chunk)
        compiled = True
        write_npz_atomic(args.out, **state)
        print(
            f"{stop}/{total} points; chunk of {args.chunk}: {wall:.1f} s wall, "
            f"{cpu / args.chunk:.3f} CPU-s per point",
            flush=True,
        )
        done = stop
    timed = int(state["num_timed"])
    if timed > 0:
        print(
            f"done: {float(state['cpu_seconds']) / timed:.3f} CPU-s and "
            f"{float(state['wall_seconds']) / timed:.3f} wall-s per point (after compilation)"
        )


if __name__ == "__main__":
    main()
