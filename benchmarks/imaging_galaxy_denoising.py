"""The talk's galaxy case (issue 12 item 5): data-driven prior vs wavelet and CRR MAPs.

Held-out GalSim galaxies (``scripts/make_galaxy_images.py``'s ``test`` stream, never
trained on; 32 x 32, peak 1) are observed through the full orthonormal FFT with complex
noise of standard deviation ``sigma`` per part, so ``Phi^H y = x + N(0, sigma^2 I)``: pure
denoising, with the same operator, data and positivity for every prior. Per noise level
and image:

* ``noisy``: ``Phi^H y``;
* ``wavelets``: the db8 wavelet MAP (4 levels, positivity) at the pipeline's rule
  (Morozov's discrepancy principle, ``ImagingConfig(prior="wavelets")``);
* ``crr``: the CRR MAP at the pipeline's default rule (``trained``) and at the opt-in
  ``noise_scaled`` rule;
* ``wavelets*`` / ``crr*``: the same MAPs at the best strength of a grid
  ``rule * 2**k`` **chosen with the truth** (an oracle upper bound for the baselines);
* ``denoiser``: the data-driven posterior mean for denoising, ``D_sigma(Phi^H y)``: by
  Tweedie's formula the MMSE estimate ``E[x | y]`` under the learned prior, one network
  pass (no sampling);
* ``pnp-ula`` (``--pnp N``): the posterior mean of PnP-ULA
  (:func:`astrobayes.imaging.pnp.pnp_ula`) with the shipped denoiser's Tweedie score at
  smoothing ``eps`` and positivity, on the first ``N`` images of each noise level.

Prints the mean SNR (dB) over the images with its standard error, the gains of the
denoiser over each MAP (mean and minimum over images), and wall / CPU seconds per method.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_galaxy_denoising.py \\
        [--num-images 20] [--sigmas 0.02 0.05 0.1] [--pnp 0]

Needs GalSim (``imaging`` extra) and the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.denoisers import score_function
from astrobayes.imaging.galaxies import GalaxySettings, galaxy_images
from astrobayes.imaging.map import discrepancy_strength, map_estimate, snr_db, with_strength
from astrobayes.imaging.operators import add_complex_noise, fourier_mask_operator
from astrobayes.imaging.pipeline import (
    ImagingConfig,
    build_prior,
    initial_strength,
    noise_scaled_strength,
)
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.io.denoiser_files import load_denoiser, load_shipped_denoiser
from astrobayes.io.imaging_files import read_convex_ridge

GRID = (-3, -2, -1, 0, 1, 2, 3)


class Clock:
    """Wall and CPU seconds per method."""

    def __init__(self):
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)

    def __call__(self, name, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        jax.block_until_ready(out)
        self.wall[name] += time.perf_counter() - wall
        self.cpu[name] += time.process_time() - cpu
        return out


def total_flux(image):
    """The summary whose R-hat the PnP-ULA rows report."""
    return jnp.sum(image)[None]


def held_out_images(record: dict, num: int) -> np.ndarray:
    """The first ``num`` images of the held-out (test) stream named in the training record."""
    data = record["data"]
    settings = GalaxySettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in data["settings"].items()}
    )
    key = jax.random.fold_in(jax.random.key(data["seed"]), data["test_stream"])
    return galaxy_images(key, record["num_test"], settings)[:num]


def map_snrs(config, truth, op, data, sigma, crr, rules, grid):
    """SNR of the MAP at each named rule's strength and at the best grid strength."""
    first = initial_strength(config, op, data, crr=crr)
    prior = build_prior(config, truth.shape, first, crr=crr)
    post = imaging_posterior(op, data, sigma, prior, positivity=True)
    out, strengths = {}, {}
    for rule in rules:
        if rule == "discrepancy":
            result = discrepancy_strength(post)
            strengths[rule], image = result.strength, result.map_result.image
        else:
            strength = first if rule == "trained" else noise_scaled_strength(crr, sigma, 1.0)
            strengths[rule] = strength
            image = map_estimate(with_strength(post, strength)).image
        out[rule] = snr_db(truth, image)
    centre = strengths[rules[0]]
    best, start = -np.inf, None
    for k in grid:
        result = map_estimate(with_strength(post, centre * 2.0**k), initial_image=start)
        start = result.image
        best = max(best, snr_db(truth, result.image))
    out["oracle"] = best
    return out


def main() -> None:
    """Run the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=20)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--pnp", type=int, default=0, help="PnP-ULA on the first N images")
    parser.add_argument("--pnp-samples", type=int, default=400)
    parser.add_argument(
        "--pnp-eps-fraction",
        type=float,
        default=0.5,
        help="smoothing std of the score as a fraction of sigma",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--weights", default=None, help="a denoiser .eqx with its .json record (default: shipped)"
    )
    args = parser.parse_args()

    if args.weights is None:
        denoiser, record = load_shipped_denoiser("galaxy")
    else:
        denoiser = load_denoiser(args.weights)
        record = json.loads(Path(args.weights).with_suffix(".json").read_text())
    crr = read_convex_ridge()
    truths = held_out_images(record, args.num_images)
    op = fourier_mask_operator(np.ones(truths.shape[1:], bool))
    clock = Clock()
    print(
        f"{len(truths)} held-out galaxies {truths.shape[1]}x{truths.shape[2]} (peak 1); "
        f"denoiser trained on {record['num_train']} galaxies, sigma in "
        f"[{record['settings']['sigma_min']}, {record['settings']['sigma_max']}]"
    )
    header = f"{'sigma':>6s} {'method':28s} {'SNR dB':>7s} {'+-':>5s}"
    rows = []
    for s_index, sigma in enumerate(args.sigmas):
        snrs = defaultdict(list)
        for i, truth in enumerate(truths):
            key = jax.random.fold_in(jax.random.key(args.seed), 1000 * s_index + i)
            data = add_complex_noise(key, op(jnp.asarray(truth)), sigma)
            noisy = op.adjoint(data)
            snrs["noisy Phi^H y"].append(snr_db(truth, noisy))
            wav = clock(
                "wavelet MAP",
                map_snrs,
                ImagingConfig(prior="wavelets"),
                truth,
                op,
                data,
                sigma,
                None,
                ("discrepancy",),
                GRID,
            )
            snrs["wavelet MAP (discrepancy)"].append(wav["discrepancy"])
            snrs["wavelet MAP* (oracle grid)"].append(wav["oracle"])
            crr_snr = clock(
                "CRR MAP",
                map_snrs,
                ImagingConfig(prior="crr"),
                truth,
                op,
                data,
                sigma,
                crr,
                ("trained", "noise_scaled"),
                GRID,
            )
            snrs["CRR MAP (trained)"].append(crr_snr["trained"])
            snrs["CRR MAP (noise_scaled)"].append(crr_snr["noise_scaled"])
            snrs["CRR MAP* (oracle grid)"].append(crr_snr["oracle"])
            mmse = clock("denoiser MMSE", denoiser, noisy, sigma)
            snrs["denoiser MMSE D_sigma(z)"].append(snr_db(truth, mmse))
            if i < args.pnp:
                from astrobayes.imaging.pnp import pnp_ula

                eps_std = args.pnp_eps_fraction * sigma
                result = clock(
                    "PnP-ULA",
                    pnp_ula,
                    jax.random.fold_in(key, 7),
                    op,
                    data,
                    sigma,
                    score_function(denoiser, eps_std),
                    jnp.clip(mmse, 0.0, None),
                    score_lipschitz=1.0 / eps_std**2,
                    box=(0.0, None),
                    num_chains=2,
                    num_samples=args.pnp_samples,
                    num_warmup=200,
                    thinning=5,
                    summary_fn=total_flux,
                )
                snrs["PnP-ULA posterior mean"].append(snr_db(truth, result.mean))
                snrs["PnP-ULA R-hat(flux) max"].append(float(np.max(result.rhat)))
        rows.append((sigma, snrs))
        print(header if s_index == 0 else "", flush=True)
        for name, values in snrs.items():
            values = np.asarray(values)
            err = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
            print(f"{sigma:6.3f} {name:28s} {values.mean():7.2f} {err:5.2f}", flush=True)
        mm = np.asarray(snrs["denoiser MMSE D_sigma(z)"])
        for base in (
            "wavelet MAP (discrepancy)",
            "wavelet MAP* (oracle grid)",
            "CRR MAP (trained)",
            "CRR MAP (noise_scaled)",
            "CRR MAP* (oracle grid)",
        ):
            gain = mm - np.asarray(snrs[base])
            print(
                f"{sigma:6.3f}   gain of the denoiser over {base:28s} mean {gain.mean():+.2f} dB, "
                f"min {gain.min():+.2f} dB",
                flush=True,
            )
    print("\nseconds (all noise levels and images; MAP rows include their oracle grids)")
    for name in clock.wall:
        print(f"  {name:16s} wall {clock.wall[name]:8.1f}  CPU {clock.cpu[name]:8.1f}")


if __name__ == "__main__":
    main()
