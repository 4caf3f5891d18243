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

Diffusion priors (:mod:`astrobayes.imaging.diffusion`, a VE schedule from
``--diffusion-sigma-max`` down to ``sigma_min = sqrt(eps)``, the PnP rows' smoothing):

* ``diffusion``: annealed Langevin with the exact noise-conditional score
  ``-(C + sigma^2)^-1 x`` (``--diffusion-levels`` levels x ``--diffusion-steps`` steps),
  then ``--warmup`` + ``--samples`` x ``--thinning`` steps at ``sigma_min``, ``--chains``
  chains; likelihood variance ``sigma^2 + c sigma_t^2`` (``c = --diffusion-inflation``);
* ``diffusion-oneshot``: the same annealing, but each of ``--oneshot-chains`` chains
  gives one draw at the end (annealed Langevin as it is used in practice);
* ``diffusion-sharpened``: negative control, 3 x the exact noise-conditional score;
* ``dps``: diffusion posterior sampling (Chung et al. 2023) with the exact score,
  ``--dps-levels`` levels from ``--diffusion-sigma-max`` to ``--dps-sigma-min``, guidance
  ``--dps-guidance``, one draw per chain, ``--oneshot-chains`` chains;
* ``diffusion-learned``: ``diffusion`` with a noise-conditional DnCNN trained by
  :func:`astrobayes.imaging.diffusion.train_diffusion_prior` (denoising score matching
  over the schedule through the shared training loop) on draws of the same prior.

``--fourier`` adds a per-Fourier-mode diagnostic (:class:`FourierRecorder`): the exact
posterior is diagonal in the Fourier basis, so the draws' sd over the exact sd and the
error of their mean are reported separately for the data-constrained modes and the
prior-only ones (this is what shows where DPS loses its spread).

Peers: deepinv's PnP-ULA and DPS (torch) are not run here (see docs/imaging_priors.md).

Run::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_priors.py \\
        --configs pnp-ula,sharpened --num-truths 100
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_priors.py \\
        --configs diffusion,diffusion-sharpened,diffusion-oneshot,dps --num-truths 100 --fourier
"""

from __future__ import annotations

import argparse
import math
import time

import equinox as eqx
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

CONFIGS = (
    "pnp-ula",
    "pnp-mala",
    "learned",
    "sharpened",
    "myula",
    "diffusion",
    "diffusion-oneshot",
    "diffusion-sharpened",
    "dps",
    "diffusion-learned",
)
DIFFUSION_CONFIGS = CONFIGS[5:]


def problem(size: int, fraction: float, sigma: float, seed: int):
    """The masked-FFT operator, noise level and prior of the harness."""
    rng = np.random.default_rng(seed)
    mask = rng.random((size, size)) < fraction
    mask[0, 0] = True
    return fourier_mask_operator(mask), sigma, power_law_prior((size, size))


def train_gaussian_denoiser(
    key, prior, epsilon, num_train, max_epochs, width, depth, sigma_range=None
):
    """DnCNN trained by 12a's denoising score matching on draws of the Gaussian prior.

    ``sigma_range``: the training noise range (default ``[0.7, 1.4] x sqrt(eps)``; a
    diffusion prior passes its schedule's ``(sigma_min, sigma_max)``).
    """
    from astrobayes._training import TrainingConfig
    from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser, train_denoiser

    noise_sd = math.sqrt(epsilon)
    low, high = sigma_range or (0.7 * noise_sd, 1.4 * noise_sd)
    settings = DenoiserSettings(
        architecture="dncnn",
        width=width,
        depth=depth,
        use_bias=False,
        noise_input=True,
        sigma_min=low,
        sigma_max=high,
        padding_mode="CIRCULAR",
    )
    init_key, data_key, train_key = jax.random.split(key, 3)
    images = prior.sample(data_key, num_train + num_train // 8)
    denoiser = init_denoiser(init_key, settings)
    config = TrainingConfig(learning_rate=2e-3, batch_size=64, max_epochs=max_epochs, patience=10)
    return train_denoiser(
        train_key, denoiser, images[:num_train], images[num_train:], config=config
    )


def diffusion_sampler(name, args, op, sigma, prior, likelihood_lipschitz):
    """The sampler, its target's exact posterior (``None`` for DPS), last step, extras."""
    from astrobayes.imaging.diffusion import (
        NoiseSchedule,
        diffusion_posterior_batch,
        diffusion_score,
    )
    from astrobayes.imaging.prior_calibration import StationaryGaussianPrior

    class ScaledScore(eqx.Module):
        prior: StationaryGaussianPrior
        factor: float

        def __call__(self, x, sigma_t):
            return self.factor * self.prior.noisy_score(x, sigma_t)

    sigma_min = math.sqrt(args.epsilon)
    inflation = args.diffusion_inflation
    factor = 3.0 if name == "diffusion-sharpened" else 1.0
    extra = {}
    if name == "dps":
        schedule = NoiseSchedule(args.dps_sigma_min, args.diffusion_sigma_max, args.dps_levels)
    else:
        schedule = NoiseSchedule(sigma_min, args.diffusion_sigma_max, args.diffusion_levels)
    score = ScaledScore(prior=prior, factor=factor)
    if name == "diffusion-learned":
        start, cpu = time.perf_counter(), time.process_time()
        denoiser, info = train_gaussian_denoiser(
            jax.random.key(args.seed + 2),
            prior,
            args.epsilon,
            args.train_images,
            args.epochs,
            args.learned_width,
            args.learned_depth,
            sigma_range=(schedule.sigma_min, schedule.sigma_max),
        )
        extra["training_wall_s"] = time.perf_counter() - start
        extra["training_cpu_s"] = time.process_time() - cpu
        extra["training_status"] = info.status.name
        score = diffusion_score(denoiser)
        probe = prior.sample(jax.random.key(7), 4)
        errors = {}
        for level in (schedule.sigma_min, 1.0, schedule.sigma_max):
            noisy = probe + level * jax.random.normal(jax.random.key(8), probe.shape)
            exact = jax.vmap(lambda x, s=level: prior.noisy_score(x, s))(noisy)
            learned = score(noisy, level)
            errors[f"{level:.3g}"] = float(
                jnp.linalg.norm(learned - exact) / jnp.linalg.norm(exact)
            )
        extra["score_relative_error"] = errors
    oneshot = name in ("diffusion-oneshot", "dps")
    settings = dict(
        method="dps" if name == "dps" else "langevin",
        num_chains=args.oneshot_chains if oneshot else args.chains,
        steps_per_level=args.diffusion_steps,
        likelihood_inflation=inflation,
        guidance=args.dps_guidance,
    )
    if name != "dps":
        settings.update(
            num_warmup=0 if oneshot else args.warmup,
            num_samples=1 if oneshot else args.samples,
            thinning=1 if oneshot else args.thinning,
        )
    if name == "diffusion-learned":
        settings["num_chains"] = args.learned_chains

    def sampler(key, data):
        return diffusion_posterior_batch(key, op, data, sigma, score, schedule, **settings)

    if name == "dps":
        return sampler, None, float("nan"), extra
    noise_sd = math.sqrt(sigma**2 + inflation * sigma_min**2)
    model = prior.smoothed(sigma_min**2).scaled(factor)
    step = 1.0 / (3 * (likelihood_lipschitz * sigma**2 / noise_sd**2 + 1.0 / sigma_min**2))
    extra["final_step"] = step
    return sampler, gaussian_posterior(op, noise_sd, model), step, extra


class FourierRecorder:
    """Wraps a harness sampler and accumulates per-Fourier-mode statistics of its draws.

    The prior is stationary and the operator a masked FFT, so the exact posterior is
    diagonal in the (orthonormal) Fourier basis: modes whose frequency ``k`` or ``-k`` is
    measured are constrained by the data, the others keep the prior. For each data set
    it records, per mode, the draws' sd over the exact posterior's sd and the error of
    the draws' mean in exact-posterior sds, then averages them over the two groups.
    """

    def __init__(self, sampler, op, sigma, prior, exact):
        self.sampler, self.exact = sampler, exact
        shape = prior.image_shape
        self.shape = shape
        mask = np.asarray(op.mask(), bool)
        mirrored = np.roll(np.flip(mask, axis=(0, 1)), 1, axis=(0, 1))  # mask[-k]
        self.measured = (mask | mirrored).reshape(-1)
        size = math.prod(shape)
        basis = np.eye(size).reshape(size, *shape)
        fourier = np.fft.fft2(basis, norm="ortho").reshape(size, size).T  # F[k, j]
        cov = fourier @ exact.covariance @ fourier.conj().T
        self.fourier = fourier
        self.exact_sd = np.sqrt(np.real(np.diag(cov)))
        self.ratios, self.errors = [], []

    def __call__(self, key, data):
        results = self.sampler(key, data)
        for y, result in zip(np.asarray(data), results, strict=True):
            draws = np.asarray(result.summaries, np.float64).reshape(-1, *self.shape)
            modes = np.fft.fft2(draws, norm="ortho").reshape(draws.shape[0], -1)
            mean = modes.mean(axis=0)
            sd = np.sqrt(np.mean(np.abs(modes - mean) ** 2, axis=0) * len(modes) / (len(modes) - 1))
            exact_mean = self.fourier @ self.exact.mean(y).reshape(-1)
            self.ratios.append(sd / self.exact_sd)
            self.errors.append(np.abs(mean - exact_mean) / self.exact_sd)
        return results

    def summary(self):
        ratios, errors = np.array(self.ratios), np.array(self.errors)
        out = {}
        for name, group in (("measured", self.measured), ("unmeasured", ~self.measured)):
            out[f"fourier_sd_ratio_{name}"] = float(ratios[:, group].mean())
            out[f"fourier_mean_error_{name}"] = float(np.sqrt(np.mean(errors[:, group] ** 2)))
            out[f"fourier_modes_{name}"] = int(group.sum())
        return out


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
        if name in DIFFUSION_CONFIGS:
            sampler, model_posterior, step, diffusion_extra = diffusion_sampler(
                name, args, op, sigma, prior, likelihood_lipschitz
            )
            extra.update(diffusion_extra)
            num_truths = args.learned_truths if name == "diffusion-learned" else num_truths
            chains = args.learned_chains if name == "diffusion-learned" else chains
            if name in ("diffusion-oneshot", "dps"):
                chains, samples = args.oneshot_chains, 1
        elif name == "myula":
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
        recorder = None
        if args.fourier:
            recorder = sampler = FourierRecorder(sampler, op, sigma, prior, exact)
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
        if recorder is not None:
            extra.update(recorder.summary())
        if model_posterior is None:  # DPS: no exact prediction
            target = stationary = float("nan")
        else:
            target = predicted_coverage(prior, op, sigma, model_posterior)
        if model_posterior is None:
            pass
        elif name in ("pnp-mala",):
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
    parser.add_argument("--diffusion-sigma-max", type=float, default=5.0)
    parser.add_argument("--diffusion-levels", type=int, default=10)
    parser.add_argument("--diffusion-steps", type=int, default=20)
    parser.add_argument("--diffusion-inflation", type=float, default=1.0)
    parser.add_argument("--oneshot-chains", type=int, default=100)
    parser.add_argument("--dps-levels", type=int, default=200)
    parser.add_argument("--dps-sigma-min", type=float, default=0.01)
    parser.add_argument("--dps-guidance", type=float, default=1.0)
    parser.add_argument(
        "--fourier",
        action="store_true",
        help="also report, per Fourier mode (measured / unmeasured by the mask), the draws' "
        "sd over the exact posterior's and the error of their mean (in exact sds)",
    )
    parser.add_argument("--galaxy", action="store_true")
    parser.add_argument("--json", default=None)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
