"""Is dark energy evolving? Cosmic shear, LCDM vs w0waCDM (DES-Y1-like: 14 and 16 parameters).

NUTS on the emulated likelihood (gradients through the shipped emulator only) and the
learned harmonic mean evidence, through one ``astrobayes.compare`` call. Then, when
jax-cosmo is installed (``pip install 'astrobayes[cosmo]'``), the emulator is checked
where it matters: the jax-cosmo log-likelihood at ``--check-draws`` posterior draws of each
model, |Delta ln L| and the shift of ln z from importance reweighting,
``ln z_true - ln z_emu = ln E_post[exp(ln L_true - ln L_emu)]``.

Run:  .venv/bin/python examples/cosmic_shear.py [--num-samples 1000] [--check-draws 200]
      [--survey lsst_y1_like]   (28 and 30 parameters)
(a few minutes on 2 CPU cores; see docs/cosmic_shear.md).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.comparison import compare
from astrobayes.cosmology.shear import (
    make_shear_log_likelihood,
    shear_models,
    shear_problems,
)
from astrobayes.cosmology.shear_survey import SURVEYS, fiducial
from astrobayes.io import shipped_shear_data, shipped_shear_emulator
from astrobayes.sampling import NUTSConfig

SHOWN = ("s8", "omega_m", "a_ia", "w0", "wa")


def time_per_call(fn, argument, repeats=200):
    """Seconds per call of a jitted function (after compilation)."""
    jax.block_until_ready(fn(argument))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn(argument))
    return (time.perf_counter() - start) / repeats


def jax_cosmo_log_likelihood(data, survey):
    """The "true" likelihood: direct jax-cosmo spectra (lax.map over points), or None."""
    try:
        import jax_cosmo  # noqa: F401

        from astrobayes.cosmology.shear_jax_cosmo import jax_cosmo_log_likelihood as make
    except ImportError:
        return None
    return jax.jit(lambda batch: jax.lax.map(make(data, survey), batch, batch_size=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-chains", type=int, default=8)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--check-draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--survey", choices=sorted(SURVEYS), default="des_y1_like")
    args = parser.parse_args()
    survey = SURVEYS[args.survey]
    emulator, data = shipped_shear_emulator(args.survey), shipped_shear_data(args.survey)
    truth = fiducial(survey)

    # Per-call costs.
    problem = shear_problems(emulator, data, survey)[1]
    theta = jnp.asarray([truth[n] for n in problem.names])
    value = jax.jit(problem.log_likelihood_fn)
    value_and_grad = jax.jit(jax.value_and_grad(problem.log_likelihood_fn))
    print(
        f"emulated ln L: {1e6 * time_per_call(value, theta):.0f} us per call, "
        f"{1e6 * time_per_call(value_and_grad, theta):.0f} us with its gradient (jitted, 1 point)"
    )
    true_fn = jax_cosmo_log_likelihood(data, survey)
    if true_fn is not None:
        one = {k: jnp.asarray([v] * 8) for k, v in truth.items()}
        start = time.perf_counter()
        jax.block_until_ready(true_fn(one))
        compile_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(true_fn(one))
        print(
            f"jax-cosmo ln L: {(time.perf_counter() - start) / 8:.3f} s wall, "
            f"{(time.process_time() - cpu) / 8:.3f} CPU-s per call (batches of 8; "
            f"compilation {compile_s:.0f} s; forward only)"
        )

    config = NUTSConfig(args.num_chains, args.num_warmup, args.num_samples)
    start = time.perf_counter()
    result = compare(
        jax.random.key(args.seed),
        shear_models(emulator, data, survey),
        reference="lcdm",
        sampling=config,
    )
    total = time.perf_counter() - start
    print(f"\ncompare (NUTS + learned harmonic mean, both models, JIT included): {total:.0f} s")
    header = f"{'model':<9} {'d':>3} {'ln z':>17} {'ln B vs lcdm':>15}  reading"
    print(header + "\n" + "-" * len(header))
    for name, report in result.models.items():
        bf = result.bayes_factors[name]
        dim = len(report.sampling.names)
        print(
            f"{name:<9} {dim:>3} {report.log_evidence:>9.2f} ± {report.log_evidence_std:.2f} "
            f"{bf.log_bayes_factor:>7.2f} ± {bf.log_bayes_factor_std:.2f}  {bf.reading}"
        )
    for name, report in result.models.items():
        summary = ", ".join(
            f"{p} {report.posterior_mean[p]:.3f} ± {report.posterior_std[p]:.3f}"
            for p in SHOWN
            if p in report.posterior_mean
        )
        print(
            f"{name}: {summary}; R-hat max {report.rhat_max:.3f}, ESS min {report.ess_min:.0f}, "
            f"divergences {int(report.sampling.num_divergent.sum())}"
        )

    if true_fn is None:
        print("\njax-cosmo not installed: skipping the check against the expensive model")
        return
    from astrobayes.cosmology.shear_jax_cosmo import log_evidence_shift

    emulated = jax.jit(jax.vmap(make_shear_log_likelihood(emulator, data, survey)))
    rng = np.random.default_rng(args.seed)
    print(f"\nemulator vs jax-cosmo at {args.check_draws} posterior draws per model:")
    for name, report in result.models.items():
        flat = {k: v.reshape(-1) for k, v in report.posterior.items()}
        pick = rng.choice(flat["s8"].size, size=args.check_draws, replace=False)
        draws = {k: jnp.asarray(v[pick]) for k, v in flat.items()}
        start = time.perf_counter()
        true = np.asarray(true_fn(draws), np.float64)
        seconds = time.perf_counter() - start
        delta = true - np.asarray(emulated(draws), np.float64)
        shift, shift_std = log_evidence_shift(delta)
        print(
            f"{name}: |Delta ln L| median {np.median(np.abs(delta)):.3f}, 99% "
            f"{np.percentile(np.abs(delta), 99):.3f}, max {np.abs(delta).max():.3f}; "
            f"ln z shift {shift:+.3f} ± {shift_std:.3f} (sigma_ln z = "
            f"{report.log_evidence_std:.2f}); jax-cosmo {seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
