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
  reported separately (agreement = the burn-in is long enough) and pooled.

Printed: SNRs, per-pixel 90% credible intervals (sample quantiles of the pooled draws:
mean width, and the fraction of M31's pixels inside them -- one image, so an indication,
not a calibrated coverage), split R-hat / ESS per pixel and on 8x8 super-pixel means
(``astrobayes.diagnostics``), the sampler's status, CPU and wall seconds.
``--skies K`` repeats the PnP-ULA part on K held-out simulated 256x256 skies (the test
key stream of ``scripts/train_denoiser.py --radio``) with the same mask and ISNR, where
per-pixel coverage of the 90% intervals is measured against the known truth.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_radio_denoiser.py \\
        [--weights radio|galaxy|PATH] [--eps-sigma 0.01] [--chains 2] [--warmup 400] \\
        [--samples 100] [--thinning 4] [--skies 0] [--json out.json]

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
from astrobayes.imaging.map import snr_db
from astrobayes.imaging.operators import (
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.pnp import pnp_ula, score_lipschitz_estimate
from astrobayes.io import write_json_atomic
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
    score = score_function(denoiser, args.eps_sigma)
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
                    loop="python",  # conv nets: one compiled step per iteration
                )
                result.mean.block_until_ready()
            print(
                f"  start {name}: {result.status.name}, {one.cpu:.0f} CPU-s, {one.wall:.0f} s",
                flush=True,
            )
            draws.append(np.asarray(result.summaries, np.float32))
            runs.append({"start": name, "result": result, "wall_s": one.wall, "cpu_s": one.cpu})
    samples = np.concatenate(draws)  # (chains, draws, H*W)
    shape = operator.image_shape
    flat = samples.reshape(-1, samples.shape[-1])
    lower, upper = np.quantile(flat, [0.05, 0.95], axis=0)
    rhat = split_rhat(samples.astype(np.float64))
    ess = effective_sample_size(samples.astype(np.float64))
    blocks = superpixel_means(samples.astype(np.float64), shape)
    rhat_blocks, ess_blocks = split_rhat(blocks), effective_sample_size(blocks)
    return {
        "mean": flat.mean(axis=0).reshape(shape),
        "lower": lower.reshape(shape),
        "upper": upper.reshape(shape),
        "runs": runs,
        "lipschitz": lipschitz,
        "lipschitz_cpu_s": lip_clock.cpu,
        "rhat": rhat,
        "ess": ess,
        "rhat_8x8": rhat_blocks,
        "ess_8x8": ess_blocks,
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
    }


def describe(truth, post) -> dict:
    """Numbers of one posterior against its truth."""
    inside = (truth >= post["lower"]) & (truth <= post["upper"])
    width = post["upper"] - post["lower"]
    bright = truth > 0.05
    row = {
        "pnp_mean_snr_db": snr_db(truth, post["mean"]),
        "per_start_snr_db": {
            r["start"]: snr_db(truth, np.asarray(r["result"].mean)) for r in post["runs"]
        },
        "per_start_status": {r["start"]: r["result"].status.name for r in post["runs"]},
        "interval_90_mean_width": float(width.mean()),
        "interval_90_mean_width_bright": float(width[bright].mean()),
        "interval_90_truth_inside": float(inside.mean()),
        "interval_90_truth_inside_bright": float(inside[bright].mean()),
        "rhat_pixel_max": float(np.nanmax(post["rhat"])),
        "rhat_pixel_median": float(np.nanmedian(post["rhat"])),
        "ess_pixel_min": float(np.nanmin(post["ess"])),
        "ess_pixel_median": float(np.nanmedian(post["ess"])),
        "rhat_8x8_max": float(np.nanmax(post["rhat_8x8"])),
        "ess_8x8_min": float(np.nanmin(post["ess_8x8"])),
        "step_size": post["runs"][0]["result"].step_size,
        "score_lipschitz": post["lipschitz"],
        "likelihood_lipschitz": post["runs"][0]["result"].likelihood_lipschitz,
        "score_evaluations_per_chain": post["runs"][0]["result"].num_score_evaluations,
        "pnp_wall_s": post["wall_s"],
        "pnp_cpu_s": post["cpu_s"],
        "lipschitz_cpu_s": post["lipschitz_cpu_s"],
    }
    return row


def main() -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="radio", help="radio | galaxy | PATH.eqx")
    parser.add_argument("--eps-sigma", type=float, default=0.01)
    parser.add_argument("--chains", type=int, default=2, help="chains per start")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--thinning", type=int, default=4)
    parser.add_argument("--lipschitz-iterations", type=int, default=10)
    parser.add_argument("--starts", nargs="+", default=["dirty", "crr"], choices=["dirty", "crr"])
    parser.add_argument("--skies", type=int, default=0, help="held-out simulated skies")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
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
        print(
            f"{name}: dirty {row['dirty_snr_db']:.2f} dB | CRR MAP (trained) "
            f"{row['crr_map_snr_db']:.2f} dB ({row['crr_cpu_s']:.0f} CPU-s, "
            f"{row['crr_wall_s']:.0f} s) | PnP-ULA mean {row['pnp_mean_snr_db']:.2f} dB "
            f"(per start {', '.join(f'{k} {v:.2f}' for k, v in row['per_start_snr_db'].items())})"
            f" | {row['pnp_cpu_s']:.0f} CPU-s, {row['pnp_wall_s']:.0f} s "
            f"(+ Lipschitz {row['lipschitz_cpu_s']:.0f} CPU-s)",
            flush=True,
        )
        print(
            f"  90% intervals: mean width {row['interval_90_mean_width']:.4f} "
            f"(pixels > 0.05: {row['interval_90_mean_width_bright']:.4f}); truth inside "
            f"{row['interval_90_truth_inside']:.3f} (pixels > 0.05: "
            f"{row['interval_90_truth_inside_bright']:.3f})",
            flush=True,
        )
        print(
            f"  R-hat per pixel max {row['rhat_pixel_max']:.3f} median "
            f"{row['rhat_pixel_median']:.3f}; ESS min {row['ess_pixel_min']:.0f} median "
            f"{row['ess_pixel_median']:.0f}; 8x8 means: R-hat max {row['rhat_8x8_max']:.3f}, "
            f"ESS min {row['ess_8x8_min']:.0f}; status {row['per_start_status']}; step "
            f"{row['step_size']:.3g} (L_y {row['likelihood_lipschitz']:.3g}, L_eps "
            f"{row['score_lipschitz']:.3g}), {row['score_evaluations_per_chain']} score "
            f"evaluations per chain",
            flush=True,
        )
    m31 = results["images"][0]
    verdict = "met" if m31["pnp_mean_snr_db"] >= m31["crr_map_snr_db"] else "NOT met"
    print(
        f"acceptance (PnP-ULA mean >= CRR MAP on M31; documented CRR MAP "
        f"{CRR_MAP_DOCUMENTED_DB} dB): {m31['pnp_mean_snr_db']:.2f} vs "
        f"{m31['crr_map_snr_db']:.2f} dB: {verdict}"
    )
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
