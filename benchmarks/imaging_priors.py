"""Truthfulness of plug-and-play Langevin sampling with score priors: the coverage harness.

Problem (exact posterior): 16x16 images from a stationary Gaussian prior with a power-law
spectrum (pixel variance 1), a random masked FFT keeping ~50% of the frequencies
(``y = FFT2(x, ortho)[mask]``), complex Gaussian noise with ``sigma`` per part. For each
configuration, ``--num-truths`` truths are drawn from the prior, data simulated, and the
sampler run on every data set (all data sets in one vectorised program for PnP-ULA);
:func:`astrobayes.imaging.prior_calibration.calibrate_sampler` measures pooled 90%
per-pixel and 4x4 super-pixel coverage (cluster-robust errors), the MMSE gap in dB, the
sample sd relative to the exact posterior's, and TARP. Each row also gives the coverage
*predicted* exactly for what that sampler targets (the posterior of the prior it uses, and
ULA's own stationary law at its step).

Configurations (``--configs``):

* ``pnp-ula``: PnP-ULA with the analytic Tweedie score ``(D_eps(x) - x) / eps`` of the
  prior's exact MMSE denoiser at ``eps = --epsilon`` (the recommended setting: step at
  Laumont et al.'s bound, ``alpha = 1``);
* ``pnp-mala``: the same with the Metropolis correction (the smoothed prior's potential is
  known here), i.e. the exact smoothed posterior;
* ``learned``: PnP-ULA with the Tweedie score of a DnCNN denoiser trained by
  :func:`astrobayes.imaging.denoisers.train_denoiser` (denoising score matching through
  the shared training loop) on draws of the same prior (fewer truths and chains: the
  network costs ~100x the analytic score per step);
* ``sharpened``: negative control, 3 x the analytic score (a prior three times too
  confident); it must be flagged;
* ``myula``: MYULA (:func:`astrobayes.imaging.mcmc.proximal_mcmc`) with the exact Gaussian
  prior as a smooth prior (``eps = 0``), one data set after another.

Peers: deepinv's PnP-ULA (torch) is not run here (see docs/imaging_priors.md).

Run::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_priors.py \\
        --configs pnp-ula,sharpened --num-truths 100
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.pnp import pnp_step_size, pnp_ula_batch, score_lipschitz_estimate
from astrobayes.imaging.prior_calibration import (
    GaussianSmoothPrior,
    calibrate_sampler,
    gaussian_posterior,
    power_law_prior,
    predicted_coverage,
    ula_stationary_covariance,
)

CONFIGS = ("pnp-ula", "pnp-mala", "learned", "sharpened", "myula")


def problem(size: int, fraction: float, sigma: float, seed: int):
    """The masked-FFT operator, noise level and prior of the harness."""
    rng = np.random.default_rng(seed)
    mask = rng.random((size, size)) < fraction
    mask[0, 0] = True
    return fourier_mask_operator(mask), sigma, power_law_prior((size, size))


def train_gaussian_denoiser(key, prior, epsilon, num_train, max_epochs, width, depth):
    """DnCNN trained by 12a's denoising score matching on draws of the Gaussian prior."""
    from astrobayes._training import TrainingConfig
    from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser, train_denoiser

    noise_sd = math.sqrt(epsilon)
    settings = DenoiserSettings(
        architecture="dncnn",
        width=width,
        depth=depth,
        use_bias=False,
        noise_input=True,
        sigma_min=0.7 * noise_sd,
        sigma_max=1.4 * noise_sd,
        padding_mode="CIRCULAR",
    )
    init_key, data_key, train_key = jax.random.split(key, 3)
    images = prior.sample(data_key, num_train + num_train // 8)
    denoiser = init_denoiser(init_key, settings)
    config = TrainingConfig(learning_rate=2e-3, batch_size=64, max_epochs=max_epochs, patience=10)
    return train_denoiser(
        train_key, denoiser, images[:num_train], images[num_train:], config=config
    )


def run(args):
    op, sigma, prior = problem(args.size, args.fraction, args.sigma, args.seed)
    epsilon = args.epsilon
    shape = prior.image_shape
    smoothed = prior.smoothed(epsilon)
    likelihood_lipschitz = op.norm() ** 2 / sigma**2
    exact = gaussian_posterior(op, sigma, prior)
    print(
        f"problem: {shape[0]}x{shape[1]} Gaussian power-law prior (pixel variance 1), "
        f"{op.num_visibilities} of {math.prod(shape)} frequencies, sigma={sigma}, "
        f"eps={epsilon}; exact posterior sd {np.sqrt(np.diag(exact.covariance)).mean():.3f}"
    )
    print(
        f"settings: {args.num_truths} truths, {args.chains} chains x {args.samples} kept "
        f"(thinning {args.thinning}, burn-in {args.warmup})"
    )
    rows = []
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise SystemExit(f"unknown config {name!r}; choose from {CONFIGS}")
        num_truths, chains, samples = args.num_truths, args.chains, args.samples
        extra = {}
        if name in ("pnp-ula", "pnp-mala", "sharpened"):
            factor = 3.0 if name == "sharpened" else 1.0

            def denoiser(x, prior=prior):
                return prior.denoise(x, epsilon)

            model = smoothed.scaled(factor)
            score_lipschitz = model.score_lipschitz
            if factor == 1.0:
                score_fn = model.score  # = (denoiser(x) - x) / eps: checked below
                check = jax.random.normal(jax.random.key(0), shape)
                np.testing.assert_allclose(
                    score_fn(check), (denoiser(check) - check) / epsilon, rtol=1e-3, atol=1e-4
                )
            else:
                score_fn = model.score
            method = "mala" if name == "pnp-mala" else "ula"
            potential = model.potential if method == "mala" else None
        elif name == "learned":
            start = time.perf_counter()
            cpu = time.process_time()
            denoiser_model, info = train_gaussian_denoiser(
                jax.random.key(args.seed + 1),
                prior,
                epsilon,
                args.train_images,
                args.epochs,
                args.learned_width,
                args.learned_depth,
            )
            extra["training_wall_s"] = time.perf_counter() - start
            extra["training_cpu_s"] = time.process_time() - cpu
            extra["training_status"] = info.status.name
            from astrobayes.imaging.denoisers import score_function

            score_fn = score_function(denoiser_model, math.sqrt(epsilon))
            probe = prior.sample(jax.random.key(7), 4)
            score_lipschitz = score_lipschitz_estimate(score_fn, probe)
            error = jax.vmap(score_fn)(probe) - jax.vmap(smoothed.score)(probe)
            extra["score_relative_error"] = float(
                jnp.linalg.norm(error) / jnp.linalg.norm(jax.vmap(smoothed.score)(probe))
            )
            extra["score_lipschitz_estimate"] = score_lipschitz
            model, method, potential = smoothed, "ula", None
            num_truths, chains, samples = args.learned_truths, args.learned_chains, samples
        if name == "myula":
            from astrobayes.imaging.mcmc import proximal_mcmc
            from astrobayes.imaging.posterior import imaging_posterior

            smooth_prior = GaussianSmoothPrior(prior=prior)

            def sampler(key, data, smooth_prior=smooth_prior, chains=chains, samples=samples):
                return [
                    proximal_mcmc(
                        jax.random.fold_in(key, i),
                        imaging_posterior(op, y, sigma, smooth_prior),
                        jnp.zeros(shape),
                        method="myula",
                        num_chains=chains,
                        num_samples=samples,
                        num_warmup=args.warmup,
                        thinning=args.thinning,
                    )
                    for i, y in enumerate(np.asarray(data))
                ]

            lipschitz = likelihood_lipschitz + smooth_prior.lipschitz
            step = 0.98 / (2 * lipschitz)  # proximal_mcmc: step_fraction / (L_f + 1 / lam)
            model_posterior = exact
        else:

            def sampler(
                key,
                data,
                score_fn=score_fn,
                lip=score_lipschitz,
                m=method,
                p=potential,
                chains=chains,
                samples=samples,
            ):
                return pnp_ula_batch(
                    key,
                    op,
                    data,
                    sigma,
                    score_fn,
                    jnp.zeros(shape),
                    score_lipschitz=lip,
                    method=m,
                    potential_fn=p,
                    num_chains=chains,
                    num_samples=samples,
                    num_warmup=args.warmup,
                    thinning=args.thinning,
                )

            step = pnp_step_size(likelihood_lipschitz, score_lipschitz)
            model_posterior = gaussian_posterior(op, sigma, model)
        start = time.perf_counter()
        cpu = time.process_time()
        result = calibrate_sampler(
            jax.random.key(args.seed),
            sampler,
            op,
            sigma,
            prior,
            num_truths=num_truths,
            batch_size=args.batch_size,
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        target = predicted_coverage(prior, op, sigma, model_posterior)
        if name in ("pnp-mala",):
            stationary = target  # Metropolis-adjusted: no discretisation bias
        else:
            stationary = predicted_coverage(
                prior,
                op,
                sigma,
                model_posterior,
                covariance=ula_stationary_covariance(model_posterior, step),
            )
        counts = {s: result.sampler_statuses.count(s) for s in sorted(set(result.sampler_statuses))}
        row = dict(
            config=name,
            num_truths=num_truths,
            chains=chains,
            pixel_coverage=result.pixel_coverage,
            pixel_error=result.pixel_error,
            predicted_target=target,
            predicted_stationary=stationary,
            superpixel_coverage=result.superpixel_coverage,
            superpixel_error=result.superpixel_error,
            mmse_gap_db=result.mmse_gap_db,
            mean_error_in_sd=result.mean_error_in_sd,
            sd_ratio=result.sd_ratio,
            tarp_atc=result.tarp.atc,
            tarp_status=result.tarp.status.name,
            pixel_status=result.pixel_status.name,
            status=result.status.name,
            sampler_statuses=counts,
            max_rhat_median=float(np.median(result.max_rhat)),
            min_ess_median=float(np.median(result.min_ess)),
            within_3_percent=abs(result.pixel_coverage - 0.9) <= 0.03,
            wall_s=wall,
            cpu_s=cpu,
            **extra,
        )
        rows.append(row)
        print(
            f"{name:10s} pixel {row['pixel_coverage']:.4f} ± {row['pixel_error']:.4f} "
            f"(predicted: target {target:.4f}, ULA-stationary {stationary:.4f}) | "
            f"super-pixel {row['superpixel_coverage']:.4f} ± {row['superpixel_error']:.4f} | "
            f"MMSE gap {row['mmse_gap_db']:+.3f} dB | sd ratio {row['sd_ratio']:.3f} | "
            f"TARP atc {row['tarp_atc']:+.3f} {row['tarp_status']} | verdict "
            f"{row['pixel_status']} / {row['status']} | runs {counts} | "
            f"max R-hat (median over runs) {row['max_rhat_median']:.3f}, min ESS "
            f"{row['min_ess_median']:.0f} | {wall:.0f} s wall, {cpu:.0f} s CPU",
            flush=True,
        )
        if extra:
            print(f"           {extra}", flush=True)
    if args.galaxy:
        print("galaxy case: see benchmarks/imaging_galaxy_denoising.py (helper 12a)")
    if args.json:
        from astrobayes.io import write_json_atomic

        write_json_atomic(args.json, {"settings": vars(args), "rows": rows})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="pnp-ula,pnp-mala,sharpened,myula,learned")
    parser.add_argument("--num-truths", type=int, default=100)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--thinning", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--epsilon", type=float, default=0.02)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learned-truths", type=int, default=40)
    parser.add_argument("--learned-chains", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--learned-width", type=int, default=8)
    parser.add_argument("--learned-depth", type=int, default=4)
    parser.add_argument("--galaxy", action="store_true")
    parser.add_argument("--json", default=None)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
