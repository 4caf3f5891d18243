"""M31 with a radio-trained denoiser prior: PnP-ULA posterior mean and intervals vs the CRR MAP.

Issue 12, "Radio" acceptance line. The QuantifAI protocol of
``benchmarks/imaging_vs_quantifai.py`` (its loader: M31 flipped and normalised to [0, 1],
the study's Fourier mask, ``y = FFT2(x, ortho)[mask]``, complex Gaussian noise at ISNR
30 dB from ``noise_sigma_from_isnr``, key 0), and in the same run:

* the learned convex ridge (CRR) MAP at the ``trained`` strength rule, with positivity
  (the 27.75 dB row of docs/imaging.md);
* PnP-ULA (``imaging.pnp.pnp_ula``, Laumont et al. 2022, arXiv:2103.04715) with the
  Tweedie score of the radio denoiser (``imaging.denoisers.score_function``, trained on
  simulated skies only, never on M31) at smoothing ``eps = eps_sigma**2``, positivity by
  the Moreau-Yosida term, the step at Laumont et al.'s bound with the score's Lipschitz
  constant estimated (truth-free) at the starting image. Two groups of chains: one
  started at the dirty image ``max(Phi^H y, 0)``, one at the CRR MAP; their means are
  reported separately (agreement = the burn-in is long enough) and pooled;
* or, with ``--sampler annealed``, annealed Langevin (``imaging.diffusion``: the same
  noise-conditional network as the score ``s(x, sigma)`` of a diffusion prior, Song &
  Ermon 2019; Jalal et al. 2021) from ``--sigma-max`` (the network's largest noise level)
  down to the same smoothing over ``--levels`` levels of ``--steps-per-level`` steps
  (likelihood variance ``sigma^2 + c sigma_t^2``, ``c = --inflation``), then PnP-ULA there
  (``--warmup`` discarded, ``--samples`` kept; plain likelihood with the default
  ``--final-inflation 0``): ``--chains`` independent chains, each started from noise. The
  large scales that the mask leaves to the prior mix at the high levels, where the steps
  are large; no positivity constraint.

Printed: SNRs of the mean of the draws and of the mean of their Tweedie denoisings
``D_eps(x)`` (Rao-Blackwellised: ``E[x_clean | y] = E[D_eps(x) | y]``), per-pixel 90%
credible intervals (sample quantiles of the pooled draws:
mean width, and the fraction of M31's pixels inside them -- one image, so an indication,
not a calibrated coverage), split R-hat / ESS per pixel and on 8x8 super-pixel means
(``astrobayes.diagnostics``), the sampler's status, CPU and wall seconds.
``--skies K`` repeats the sampling on K held-out simulated 256x256 skies (the test
key stream of ``scripts/train_denoiser.py --radio``) with the same mask and ISNR, where
per-pixel coverage of the 90% intervals is measured against the known truth.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_radio_denoiser.py \\
        [--weights radio|galaxy|PATH] [--eps-sigma noise] [--chains 2] [--warmup 400] \\
        [--samples 100] [--thinning 4] [--skies 0] [--json out.json] \\
        [--sampler annealed --levels 10 --steps-per-level 40 --sigma-max 0.1] \\
        [--inflation 1] [--final-inflation 0] [--skies K --skies-only] [--images out.npz]

Skips (exit 0, with a message) when ../shared/data/imaging is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from imaging_vs_quantifai import DATA
from imaging_vs_quantifai import load as load_study_image

from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.imaging.denoisers import score_function
from astrobayes.imaging.diffusion import NoiseSchedule, diffusion_posterior, diffusion_score
from astrobayes.imaging.map import snr_db
from astrobayes.imaging.operators import (
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.pnp import pnp_ula, score_lipschitz_estimate
from astrobayes.io import write_json_atomic, write_npz_atomic
from astrobayes.io.denoiser_files import SHIPPED_DENOISERS, load_denoiser, load_shipped_denoiser
from astrobayes.io.imaging_files import read_convex_ridge

CRR_MAP_DOCUMENTED_DB = 27.75  # docs/imaging.md, M31, trained rule, ISNR 30 dB, seed 0


def load_weights(name: str):
    """A shipped denoiser by name, or a ``.eqx`` file."""
    if name in SHIPPED_DENOISERS:
        return load_shipped_denoiser(name)[0], name
    return load_denoiser(name), str(Path(name))


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def superpixel_means(samples: np.ndarray, shape, size: int = 8) -> np.ndarray:
    """``(chains, draws, H*W)`` -> ``(chains, draws, (H/size)*(W/size))`` block means."""
    c, n, _ = samples.shape
    h, w = shape
    blocks = samples.reshape(c, n, h // size, size, w // size, size).mean(axis=(3, 5))
    return blocks.reshape(c, n, -1)


def sample_posterior(key, operator, data, sigma, denoiser, starts, args):
    """PnP-ULA from each start (``args.chains`` chains each); pooled summary."""
    eps_sigma = float(sigma) if args.eps_sigma == "noise" else float(args.eps_sigma)
    score = score_function(denoiser, eps_sigma)

    def record(x):  # the draw and its Tweedie denoising (one more network pass per record)
        return jnp.concatenate([x.reshape(-1), denoiser(x, eps_sigma).reshape(-1)])

    with Clock() as lip_clock:
        # truth-free: the local Lipschitz constant on the central 64x64 patch of the
        # first start (a convolutional score's Jacobian is local), a few iterations
        first = np.asarray(starts[0][1])
        r, c = (first.shape[0] - 64) // 2, (first.shape[1] - 64) // 2
        lipschitz = score_lipschitz_estimate(
            score,
            jnp.asarray(first[r : r + 64, c : c + 64])[None],
            num_iterations=args.lipschitz_iterations,
        )
    print(f"  score Lipschitz estimate {lipschitz:.4g} ({lip_clock.cpu:.0f} CPU-s)", flush=True)
    runs, draws = [], []
    with Clock() as clock:
        if args.sampler == "annealed":
            # annealed Langevin from N(0, sigma_max^2) down to the same smoothing: the
            # same network as a noise-conditional score; L in L / sigma^2 from the
            # Lipschitz estimate at eps (truth-free); chains start from noise
            schedule = NoiseSchedule(eps_sigma, args.sigma_max, args.levels)
            with Clock() as one:
                result = diffusion_posterior(
                    key,
                    operator,
                    data,
                    sigma,
                    diffusion_score(denoiser),
                    schedule,
                    method="langevin",
                    num_chains=args.chains,
                    steps_per_level=args.steps_per_level,
                    num_warmup=args.warmup,
                    num_samples=args.samples,
                    thinning=args.thinning,
                    score_lipschitz=lipschitz * eps_sigma**2,
                    likelihood_inflation=args.inflation,
                    final_likelihood_inflation=args.final_inflation,
                    summary_fn=record,
                )
                result.mean.block_until_ready()
            print(f"  annealed: {result.status.name}, {one.cpu:.0f} CPU-s, {one.wall:.0f} s")
            draws.append(np.asarray(result.summaries, np.float32))
            runs.append(
                {
                    "start": "annealed",
                    "result": result,
                    "wall_s": one.wall,
                    "cpu_s": one.cpu,
                    "step_size": result.final_step_size,
                    "final_noise_variance": result.final_noise_variance,
                    "likelihood_lipschitz": float(operator.norm_upper_bound() ** 2 / sigma**2),
                }
            )
        else:
            for i, (name, start) in enumerate(starts):
                with Clock() as one:
                    result = pnp_ula(
                        jax.random.fold_in(key, i),
                        operator,
                        data,
                        sigma,
                        score,
                        jnp.asarray(start, jnp.float32),
                        score_lipschitz=lipschitz,
                        box=(0.0, None),
                        num_chains=args.chains,
                        num_samples=args.samples,
                        num_warmup=args.warmup,
                        thinning=args.thinning,
                        summary_fn=record,
                        loop="python",  # conv nets: one compiled step per iteration
                    )
                    result.mean.block_until_ready()
                print(
                    f"  start {name}: {result.status.name}, {one.cpu:.0f} CPU-s, {one.wall:.0f} s",
                    flush=True,
                )
                draws.append(np.asarray(result.summaries, np.float32))
                runs.append(
                    {
                        "start": name,
                        "result": result,
                        "wall_s": one.wall,
                        "cpu_s": one.cpu,
                        "step_size": result.step_size,
                        "likelihood_lipschitz": result.likelihood_lipschitz,
                    }
                )
    shape = operator.image_shape
    size = shape[0] * shape[1]
    both = np.concatenate(draws)  # (chains, draws, 2 H*W): x, then D_eps(x)
    out = {
        "runs": runs,
        "lipschitz": lipschitz,
        "lipschitz_cpu_s": lip_clock.cpu,
        "eps_sigma": eps_sigma,
        "sampler": args.sampler,
    }
    for part, samples in (("x", both[..., :size]), ("denoised", both[..., size:])):
        flat = samples.reshape(-1, size)
        lower, upper = np.quantile(flat, [0.05, 0.95], axis=0)
        samples = samples.astype(np.float64)
        blocks = superpixel_means(samples, shape)
        out[part] = {
            "mean": flat.mean(axis=0).reshape(shape),
            "per_start_mean": [  # chains are grouped by start
                group.mean(axis=(0, 1)).reshape(shape) for group in np.split(samples, len(runs))
            ],
            "lower": lower.reshape(shape),
            "upper": upper.reshape(shape),
            "rhat": split_rhat(samples),
            "ess": effective_sample_size(samples),
            "rhat_8x8": split_rhat(blocks),
            "ess_8x8": effective_sample_size(blocks),
        }
    out["wall_s"], out["cpu_s"] = clock.wall, clock.cpu
    return out


def describe(truth, post) -> dict:
    """Numbers of one posterior against its truth.

    ``x``: the chain's draws (the posterior under the smoothed prior ``p_eps``);
    ``denoised``: ``D_eps`` of each draw. Under PnP-ULA's model ``x = x_clean + N(0, eps)``
    with ``y`` depending on ``x`` only, ``E[x_clean | y] = E[D_eps(x) | y]``
    (Rao-Blackwellisation with Tweedie's formula), so the mean of the denoised draws
    estimates the posterior mean of the clean image; the intervals of the raw draws are
    the wider (conservative) ones.
    """
    bright = truth > 0.05
    row = {
        "eps_sigma": post["eps_sigma"],
        "score_lipschitz": post["lipschitz"],
        "sampler": post["sampler"],
        "step_size": post["runs"][0]["step_size"],
        "likelihood_lipschitz": post["runs"][0]["likelihood_lipschitz"],
        "score_evaluations_per_chain": post["runs"][0]["result"].num_score_evaluations,
        "per_start_status": {r["start"]: r["result"].status.name for r in post["runs"]},
        "pnp_wall_s": post["wall_s"],
        "pnp_cpu_s": post["cpu_s"],
        "lipschitz_cpu_s": post["lipschitz_cpu_s"],
    }
    for part in ("x", "denoised"):
        p = post[part]
        inside = (truth >= p["lower"]) & (truth <= p["upper"])
        width = p["upper"] - p["lower"]
        row[part] = {
            "mean_snr_db": snr_db(truth, p["mean"]),
            "per_start_snr_db": {
                r["start"]: snr_db(truth, m)
                for r, m in zip(post["runs"], p["per_start_mean"], strict=True)
            },
            "interval_90_mean_width": float(width.mean()),
            "interval_90_mean_width_bright": float(width[bright].mean()),
            "interval_90_truth_inside": float(inside.mean()),
            "interval_90_truth_inside_bright": float(inside[bright].mean()),
            "rhat_pixel_max": float(np.nanmax(p["rhat"])),
            "rhat_pixel_median": float(np.nanmedian(p["rhat"])),
            "ess_pixel_min": float(np.nanmin(p["ess"])),
            "ess_pixel_median": float(np.nanmedian(p["ess"])),
            "rhat_8x8_max": float(np.nanmax(p["rhat_8x8"])),
            "ess_8x8_min": float(np.nanmin(p["ess_8x8"])),
        }
    return row


def main() -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="radio", help="radio | galaxy | PATH.eqx")
    parser.add_argument(
        "--eps-sigma",
        default="noise",
        help="smoothing sd of the Tweedie score (eps = sd**2), a number or 'noise': the "
        "data's noise sd per real/imaginary part (truth-free)",
    )
    parser.add_argument(
        "--sampler",
        choices=["pnp", "annealed"],
        default="pnp",
        help="pnp: PnP-ULA from each --starts; annealed: annealed Langevin "
        "(imaging.diffusion, the same network as a noise-conditional score) from "
        "--sigma-max down to the smoothing, then PnP-ULA there (--warmup, --samples)",
    )
    parser.add_argument("--levels", type=int, default=10, help="annealed: noise levels")
    parser.add_argument(
        "--inflation",
        type=float,
        default=1.0,
        help="annealed: c in the likelihood variance sigma^2 + c sigma_t^2 while annealing",
    )
    parser.add_argument(
        "--final-inflation",
        type=float,
        default=0.0,
        help="annealed: c for the chain at the smoothing after the annealing (0: PnP-ULA's "
        "target, the plain likelihood)",
    )
    parser.add_argument("--steps-per-level", type=int, default=40, help="annealed")
    parser.add_argument(
        "--sigma-max", type=float, default=0.1, help="annealed: first level (the network's max)"
    )
    parser.add_argument("--chains", type=int, default=2, help="chains per start")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--thinning", type=int, default=4)
    parser.add_argument("--lipschitz-iterations", type=int, default=10)
    parser.add_argument("--starts", nargs="+", default=["dirty", "crr"], choices=["dirty", "crr"])
    parser.add_argument("--skies", type=int, default=0, help="held-out simulated skies")
    parser.add_argument(
        "--skies-only", action="store_true", help="with --skies: the simulated skies, not M31"
    )
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    parser.add_argument(
        "--images", default=None, help="write the truth, CRR MAP, means and intervals (.npz)"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the M31 image and the study's mask live there)")
        return 0
    denoiser, weights = load_weights(args.weights)
    print(
        f"denoiser {weights}: {denoiser.settings.architecture} "
        f"{denoiser.settings.widths}, sigma in [{denoiser.settings.sigma_min}, "
        f"{denoiser.settings.sigma_max}]; eps_sigma {args.eps_sigma}",
        flush=True,
    )
    results = {"weights": weights, "settings": vars(args), "images": []}
    truths = [("M31", *load_study_image("M31"))]
    if args.skies:
        from astrobayes.imaging.skies import random_sky

        mask = truths[0][2]
        base = jax.random.fold_in(jax.random.key(2026), 1)  # the training script's test stream
        for i in range(args.skies):
            sky = np.asarray(random_sky(jax.random.fold_in(base, 10_000 + i), mask.shape))
            sky = (sky - sky.min()) / (sky.max() - sky.min())
            truths.append((f"sky{i}", sky, mask))
    if args.skies and args.skies_only:
        truths = truths[1:]
    crr = read_convex_ridge()
    for name, image, mask in truths:
        operator = fourier_mask_operator(mask)
        clean = operator(jnp.asarray(image, jnp.float32))
        sigma = noise_sigma_from_isnr(clean, 30.0)
        data = add_complex_noise(jax.random.key(0), clean, sigma)
        dirty = np.maximum(np.asarray(operator.adjoint(data)), 0.0)
        config = ImagingConfig(prior="crr", strength_rule="trained", superpixel_sizes=())
        with Clock() as crr_clock:
            crr_result = run_imaging(config, operator, data, sigma, truth=image, crr=crr)
            crr_map = np.asarray(crr_result.map_result.image)
        print(f"{name}: CRR MAP {crr_result.snr_db:.2f} dB ({crr_clock.cpu:.0f} CPU-s)", flush=True)
        starts = [(s, dirty if s == "dirty" else crr_map) for s in args.starts]
        post = sample_posterior(jax.random.key(1), operator, data, sigma, denoiser, starts, args)
        row = {
            "image": name,
            "sigma": sigma,
            "dirty_snr_db": snr_db(image, dirty),
            "crr_map_snr_db": crr_result.snr_db,
            "crr_status": crr_result.status.name,
            "crr_wall_s": crr_clock.wall,
            "crr_cpu_s": crr_clock.cpu,
            **describe(np.asarray(image), post),
        }
        results["images"].append(row)
        if args.images:
            write_npz_atomic(
                Path(args.images).with_suffix(f".{name}.npz"),
                truth=np.asarray(image),
                crr_map=crr_map,
                **{f"{part}_{k}": post[part][k] for part in ("x", "denoised")
                   for k in ("mean", "lower", "upper")},
            )  # fmt: skip
        print(
            f"{name}: dirty {row['dirty_snr_db']:.2f} dB | CRR MAP (trained) "
            f"{row['crr_map_snr_db']:.2f} dB ({row['crr_cpu_s']:.0f} CPU-s, "
            f"{row['crr_wall_s']:.0f} s) | {args.sampler} {row['pnp_cpu_s']:.0f} CPU-s, "
            f"{row['pnp_wall_s']:.0f} s (+ Lipschitz {row['lipschitz_cpu_s']:.0f} CPU-s); "
            f"eps_sigma {row['eps_sigma']:.4g}; status {row['per_start_status']}; step {row['step_size']:.3g} (L_y "
            f"{row['likelihood_lipschitz']:.3g}, L_eps {row['score_lipschitz']:.3g}), "
            f"{row['score_evaluations_per_chain']} score evaluations per chain",
            flush=True,
        )
        for part, label in (("x", "mean of draws"), ("denoised", "mean of D_eps(draws)")):
            p = row[part]
            per_start = ", ".join(f"{k} {v:.2f}" for k, v in p["per_start_snr_db"].items())
            print(
                f"  {label}: {p['mean_snr_db']:.2f} dB (per start {per_start}); 90% "
                f"intervals mean width {p['interval_90_mean_width']:.4f} (truth > 0.05: "
                f"{p['interval_90_mean_width_bright']:.4f}), truth inside "
                f"{p['interval_90_truth_inside']:.3f} (truth > 0.05: "
                f"{p['interval_90_truth_inside_bright']:.3f}); R-hat max "
                f"{p['rhat_pixel_max']:.3f} median {p['rhat_pixel_median']:.3f}, ESS min "
                f"{p['ess_pixel_min']:.0f} median {p['ess_pixel_median']:.0f}; 8x8: R-hat max "
                f"{p['rhat_8x8_max']:.3f}, ESS min {p['ess_8x8_min']:.0f}",
                flush=True,
            )
    if args.json:
        write_json_atomic(args.json, results)
    if results["images"][0]["image"] != "M31":
        return 0
    m31 = results["images"][0]
    for part in ("x", "denoised"):
        snr = m31[part]["mean_snr_db"]
        verdict = "met" if snr >= m31["crr_map_snr_db"] else "NOT met"
        print(
            f"acceptance ({part}: {args.sampler} posterior mean >= CRR MAP on M31; documented CRR "
            f"MAP {CRR_MAP_DOCUMENTED_DB} dB): {snr:.2f} vs {m31['crr_map_snr_db']:.2f} dB: "
            f"{verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
