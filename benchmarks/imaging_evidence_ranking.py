"""Evidence without truth (issue 12 item 5): does ranking priors by ln z agree with their SNR?

Held-out GalSim galaxies (the ``test`` stream of ``scripts/make_galaxy_images.py`` that
the shipped galaxy denoiser never saw in training; 32 x 32, peak 1) are observed through
the full orthonormal FFT with complex noise ``sigma`` per part, so ``Phi^H y = x +
N(0, sigma^2 I)``: pure denoising. For each image and each prior this script computes

* ``ln z +- err`` by proximal nested sampling, **without the truth**
  (:func:`astrobayes.imaging.prior_evidence.prior_log_evidence` for the wavelet prior,
  :func:`~astrobayes.imaging.prior_evidence.score_prior_log_evidence` for the
  data-driven prior), and
* the SNR (dB, **with the truth**) of that prior's posterior mean,

and reports per image whether the ordering of the priors by ``ln z`` is the ordering
by SNR, the number of agreeing images, and whether each ``|Delta ln z|`` exceeds three
times its combined error.

The priors (both proper, both normalised, no positivity, as the evidence requires):

* ``wavelets``: Laplace prior on db8 wavelet coefficients (4 levels, the pipeline's
  wavelet prior), strength from Morozov's discrepancy principle (data and ``sigma``
  only, no truth). Posterior mean: SK-ROCK proximal MCMC
  (:func:`astrobayes.imaging.mcmc.proximal_mcmc`, Moreau-Yosida smoothing ``1 / L``, so
  the mean of the smoothed posterior); the wavelet MAP's SNR is printed beside it.
* ``denoiser``: the shipped galaxy denoiser's prior at smoothing ``s`` (default
  ``0.5 sigma``): ``p_s = p_data * N(0, s^2 I)``, score ``(D_s(x) - x) / s^2`` (Tweedie),
  exact prior draws = held-out galaxies **other than the test images** (the
  ``--live-points`` after the first ``--num-images``) plus ``s`` noise.
  Posterior mean, exact for pure denoising by Tweedie's formula applied at
  ``tau = sqrt(sigma^2 + s^2)``: with ``z = Phi^H y = x0 + N(0, tau^2)`` (``x0 ~ p_data``),
  ``E[x | z] = D_tau(z) + (s^2 / tau^2) (z - D_tau(z))`` (one network pass).

The CRR prior is left out: in pure denoising the zero frequency is measured, and the
CRR's prior on the image mean is arbitrary, so its evidence is not defined
(:func:`~astrobayes.imaging.prior_evidence.compare_priors` refuses it).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_evidence_ranking.py \\
        [--num-images 10] [--noise 0.05] [--live-points 20] [--mcmc-steps 6] \\
        [--smoothing-fraction 0.5 ...] [--seed 0] [--out FILE.json]

The defaults are the acceptance run (~55 CPU-min on one core). Six constrained moves per
replacement are set by that budget: ``ln z`` of both priors still rises with more moves
(see docs/imaging_priors.md), so read the absolute values as biased low by tens to a
hundred nats; the reported errors (``sqrt(H / N)``) do not include that bias.

Needs GalSim (``imaging`` extra) and the shipped weights.

References:
    McEwen, Liaudat, Price, Cai & Pereyra 2023, "Proximal nested sampling with
    data-driven priors for physical scientists" (arXiv:2307.00056).
    Cai, McEwen & Pereyra 2022, Statistics and Computing 32, 87 (arXiv:2106.03646).
    Efron 2011, JASA 106, 1602, "Tweedie's formula and selection bias".
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.denoisers import Denoiser, score_function
from astrobayes.imaging.map import discrepancy_strength, snr_db, with_strength
from astrobayes.imaging.mcmc import proximal_mcmc
from astrobayes.imaging.operators import add_complex_noise, fourier_mask_operator
from astrobayes.imaging.pipeline import ImagingConfig, build_prior, initial_strength
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.imaging.prior_evidence import (
    prior_log_evidence,
    score_prior_log_evidence,
)


class EvidenceSettings(NamedTuple):
    """Nested-sampling and posterior-mean settings shared by every prior and image."""

    num_live: int = 20
    num_mcmc_steps: int = 6
    num_delete: int = 2
    smoothing_fractions: tuple[float, ...] = (0.5,)
    wavelet_levels: int = 4
    mcmc_samples: int = 200
    mcmc_chains: int = 2


class PriorRow(NamedTuple):
    """One prior on one image: evidence (no truth) and posterior-mean SNR (truth).

    ``strength`` is the wavelet prior's strength, or the denoiser prior's smoothing ``s``;
    ``snr_map_db`` is the wavelet MAP's SNR (NaN for the score-only prior, which has no
    MAP here); ``mean_method`` says how the posterior mean was computed.
    """

    log_evidence: float
    log_evidence_error: float
    information: float
    num_iterations: int
    acceptance_rate: float
    status: str
    snr_mean_db: float
    snr_map_db: float
    mean_method: str
    strength: float
    cpu_seconds: float
    wall_seconds: float


def _evidence_fields(evidence) -> dict:
    """The :class:`PriorRow` fields that come from one nested-sampling evidence."""
    return {
        "log_evidence": evidence.log_evidence,
        "log_evidence_error": evidence.log_evidence_error,
        "information": evidence.nested.information,
        "num_iterations": evidence.nested.num_iterations,
        "acceptance_rate": evidence.nested.acceptance_rate,
        "status": evidence.status.name,
    }


def denoiser_posterior_mean(denoiser: Denoiser, noisy, sigma: float, smoothing: float):
    """``E[x | z]`` under ``p_s = p_data * N(0, s^2)`` for ``z = x + N(0, sigma^2)`` (Tweedie).

    ``z = x0 + N(0, tau^2)`` with ``tau^2 = sigma^2 + s^2``; ``E[x0 | z] = D_tau(z)`` and
    the smoothing part of ``x`` has conditional mean ``(s^2 / tau^2) (z - E[x0 | z])``.
    """
    tau2 = sigma**2 + smoothing**2
    d_tau = denoiser(jnp.asarray(noisy), math.sqrt(tau2))
    return d_tau + smoothing**2 / tau2 * (noisy - d_tau)


def rank_one_image(
    key: jax.Array,
    truth,
    sigma: float,
    denoiser: Denoiser,
    galaxy_draws,
    settings: EvidenceSettings | None = None,
) -> dict[str, PriorRow]:
    """Evidence and posterior-mean SNR of the wavelet and denoiser priors on one image.

    Args:
        key: JAX PRNG key (data noise, prior-draw noise, samplers).
        truth: ``(H, W)`` true image (used for the data and for the SNRs only).
        sigma: Noise standard deviation per real/imaginary part.
        denoiser: The learned denoiser.
        galaxy_draws: ``(num_live, H, W)`` independent images from the data
            distribution, none of them ``truth`` (exact prior draws once noise is added).
        settings: :class:`EvidenceSettings` (default: its defaults).

    Returns:
        ``{"wavelets": PriorRow, "denoiser": PriorRow}`` (with several smoothing
        fractions, one ``"denoiser s=...sigma"`` row each).
    """
    settings = EvidenceSettings() if settings is None else settings
    truth = np.asarray(truth, float)
    op = fourier_mask_operator(np.ones(truth.shape, bool))
    k_data, k_wav, k_mcmc, k_draws, k_den = jax.random.split(key, 5)
    data = add_complex_noise(k_data, op(jnp.asarray(truth)), sigma)
    noisy = op.adjoint(data)
    rows = {}

    # wavelets: strength by the discrepancy principle (no truth), then ln z and the mean
    wall, cpu = time.perf_counter(), time.process_time()
    config = ImagingConfig(prior="wavelets", wavelet_levels=settings.wavelet_levels)
    first = initial_strength(config, op, data)
    post = imaging_posterior(op, data, sigma, build_prior(config, truth.shape, first))
    chosen = discrepancy_strength(post)
    post = with_strength(post, chosen.strength)
    evidence = prior_log_evidence(
        k_wav,
        post,
        num_live=settings.num_live,
        num_mcmc_steps=settings.num_mcmc_steps,
        num_delete=settings.num_delete,
    )
    mcmc = proximal_mcmc(
        k_mcmc,
        post,
        chosen.map_result.image,
        num_chains=settings.mcmc_chains,
        num_samples=settings.mcmc_samples,
        thinning=5,
        summary_fn=lambda x: jnp.sum(x)[None],
    )
    rows["wavelets"] = PriorRow(
        **_evidence_fields(evidence),
        snr_mean_db=snr_db(truth, mcmc.mean),
        snr_map_db=snr_db(truth, chosen.map_result.image),
        mean_method=f"SK-ROCK {mcmc.status.name}, max R-hat(flux) {float(np.max(mcmc.rhat)):.3f}",
        strength=float(chosen.strength),
        cpu_seconds=time.process_time() - cpu,
        wall_seconds=time.perf_counter() - wall,
    )

    # data-driven priors p_s: exact draws are galaxies + s noise; ln z needs only the score
    for j, fraction in enumerate(settings.smoothing_fractions):
        wall, cpu = time.perf_counter(), time.process_time()
        smoothing = fraction * sigma
        k_s, k_run = (k_draws, k_den) if j == 0 else jax.random.split(jax.random.fold_in(k_den, j))
        draws = jnp.asarray(galaxy_draws, float)
        draws = draws + smoothing * jax.random.normal(k_s, draws.shape, draws.dtype)
        score = score_function(denoiser, smoothing)
        evidence = score_prior_log_evidence(
            k_run,
            op,
            data,
            sigma,
            lambda x, score=score: score(x),
            draws,
            num_mcmc_steps=settings.num_mcmc_steps,
            num_delete=settings.num_delete,
        )
        mean = denoiser_posterior_mean(denoiser, noisy, sigma, smoothing)
        name = (
            "denoiser"
            if len(settings.smoothing_fractions) == 1
            else f"denoiser s={fraction:g}sigma"
        )
        rows[name] = PriorRow(
            **_evidence_fields(evidence),
            snr_mean_db=snr_db(truth, mean),
            snr_map_db=float("nan"),  # no MAP for a prior known only through its score
            mean_method="Tweedie at tau = sqrt(sigma^2 + s^2), exact for pure denoising",
            strength=float(smoothing),
            cpu_seconds=time.process_time() - cpu,
            wall_seconds=time.perf_counter() - wall,
        )
    return rows


def agreement(rows: dict[str, PriorRow]) -> dict:
    """Whether the ordering by ``ln z`` equals the ordering by SNR, and its significance.

    The significance is that of the closest pair of neighbours in the ``ln z`` order:
    ``Delta ln z`` over the two errors in quadrature (``significant_3sigma`` when every
    neighbouring gap exceeds three such errors).
    """
    names = tuple(rows)
    by_lnz = sorted(names, key=lambda n: -rows[n].log_evidence)
    by_snr = sorted(names, key=lambda n: -rows[n].snr_mean_db)
    gaps = []
    for a, b in zip(by_lnz[:-1], by_lnz[1:], strict=True):
        delta = rows[a].log_evidence - rows[b].log_evidence
        error = math.hypot(rows[a].log_evidence_error, rows[b].log_evidence_error)
        gaps.append((delta / error if error > 0 else math.inf, delta, error))
    pull, delta, error = min(gaps)
    return {
        "rank_by_lnz": by_lnz,
        "rank_by_snr": by_snr,
        "agree": by_lnz == by_snr,
        "delta_lnz_closest": delta,
        "delta_lnz_error": error,
        "delta_lnz_pulls": pull,
        "significant_3sigma": bool(pull > 3),
    }


DEFAULTS = EvidenceSettings()


def main() -> None:
    """Run the ranking benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=10)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05])
    parser.add_argument("--live-points", type=int, default=DEFAULTS.num_live)
    parser.add_argument("--mcmc-steps", type=int, default=DEFAULTS.num_mcmc_steps)
    parser.add_argument("--num-delete", type=int, default=None, help="default live points // 10")
    parser.add_argument(
        "--smoothing-fraction",
        type=float,
        nargs="+",
        default=list(DEFAULTS.smoothing_fractions),
        help="denoiser prior's smoothing s as a fraction of sigma (several: one prior each)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from imaging_galaxy_denoising import held_out_images

    from astrobayes.io.denoiser_files import load_shipped_denoiser

    denoiser, record = load_shipped_denoiser("galaxy")
    settings = EvidenceSettings(
        num_live=args.live_points,
        num_mcmc_steps=args.mcmc_steps,
        num_delete=args.num_delete or max(1, args.live_points // 10),
        smoothing_fractions=tuple(args.smoothing_fraction),
    )
    needed = args.num_images + settings.num_live
    if needed > record["num_test"]:
        raise SystemExit(
            f"--num-images + --live-points = {needed} exceeds the {record['num_test']} "
            "held-out galaxies"
        )
    held_out = held_out_images(record, needed)
    truths, galaxy_draws = held_out[: args.num_images], held_out[args.num_images :]
    print(
        f"{len(truths)} held-out galaxies {truths.shape[1]}x{truths.shape[2]} (test stream "
        f"{record['data']['test_stream']}, seed {record['data']['seed']}); prior draws: the "
        f"next {settings.num_live} held-out galaxies; {settings}",
        flush=True,
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = []
    for s_index, sigma in enumerate(args.noise):
        count = 0
        print(
            f"\nsigma = {sigma}: per prior ln z +- err (no truth) and SNR (dB, truth) of its "
            "posterior mean [wavelet MAP]; agree = same order; pull = closest Delta ln z / err",
            flush=True,
        )
        for i, truth in enumerate(truths):
            key = jax.random.fold_in(jax.random.key(args.seed), 1000 * s_index + i)
            rows = rank_one_image(key, truth, sigma, denoiser, galaxy_draws, settings)
            verdict = agreement(rows)
            count += verdict["agree"]
            results.append(
                {
                    "sigma": sigma,
                    "image": i,
                    "priors": {name: row._asdict() for name, row in rows.items()},
                    **verdict,
                }
            )
            cells = []
            for name, row in rows.items():
                extra = f" [{row.snr_map_db:.2f}]" if name == "wavelets" else ""
                cells.append(
                    f"{name}: {row.log_evidence:.1f} +- {row.log_evidence_error:.1f}, "
                    f"{row.snr_mean_db:.2f} dB{extra}"
                )
            print(
                f"{i:3d} {' | '.join(cells)} | pull {verdict['delta_lnz_pulls']:.1f} | agree "
                f"{'yes' if verdict['agree'] else 'NO'}",
                flush=True,
            )
            print(
                "    "
                + "; ".join(
                    f"{name}: H {row.information:.0f} nats, acc {row.acceptance_rate:.2f}, "
                    f"{row.status}, {row.cpu_seconds:.0f} CPU-s"
                    for name, row in rows.items()
                )
                + f"; wavelet strength {rows['wavelets'].strength:.3g}, mean by "
                f"{rows['wavelets'].mean_method}",
                flush=True,
            )
        print(f"sigma = {sigma}: ln z ranking agrees with the SNR ranking on {count} of "
              f"{len(truths)} images", flush=True)  # fmt: skip
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"\nwall {wall:.0f} s, CPU {cpu:.0f} s (all images and noise levels)")
    for sigma in args.noise:
        sel = [r for r in results if r["sigma"] == sigma]
        print(
            f"sigma = {sigma}: agree {sum(r['agree'] for r in sel)} / {len(sel)}; "
            f"|dlnz| > 3 err on {sum(r['significant_3sigma'] for r in sel)} / {len(sel)}"
        )
    if args.out:
        from astrobayes.io.writers import write_json_atomic

        path = write_json_atomic(
            args.out,
            {
                "benchmark": "imaging_evidence_ranking",
                "command": " ".join(sys.argv),
                "settings": settings._asdict(),
                "noise": args.noise,
                "num_images": len(truths),
                "seed": args.seed,
                "results": results,
                "agree_count": {
                    str(s): sum(r["agree"] for r in results if r["sigma"] == s) for s in args.noise
                },
                "wall_seconds": wall,
                "cpu_seconds": cpu,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
