"""QuantifAI protocol on M31 and Cygnus A: our SNRs and timings beside the published ones.

Protocol (Liaudat et al. 2024, RASTI, arXiv:2312.00125; ../shared/data/README.md): image
flipped up-down (Cygnus A resized to 256x512, cubic, anti-aliased) and normalised to
[0, 1]; y = FFT2(x, ortho)[mask] with the study's MATLAB masks; complex Gaussian noise
at ISNR 30 dB; SNR = 20 log10(||x|| / ||x - x_hat||).

Ours: db8 (4 levels) wavelet prior and the shipped learned convex ridge regulariser,
both with positivity, strengths by the discrepancy principle (never tuned on the
truth); HPD bound at alpha = 0.01; 8x8 local credible intervals. Run on this machine's
CPU; the published timings are on an A100 GPU.

    .venv/bin/python benchmarks/imaging_vs_quantifai.py [--images M31 CYN] [--skip-crr]
        [--meerkat 1 4] [--evidence [--evidence-delete 10]]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.map import map_estimate, snr_db
from astrobayes.imaging.operators import (
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.problem import resize_image
from astrobayes.io.imaging_files import (
    prepare_protocol_image,
    read_convex_ridge,
    read_fits_image,
    read_fourier_mask,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imaging"

# QuantifAI repository outputs (A100 GPU), M31 at ISNR 30 dB
PUBLISHED = {
    "M31": {
        "dirty_snr_db": 5.01,
        "wavelets_snr_db": 25.52,
        "crr_snr_db": 27.48,
        "map_s": 0.64,
        "lci_8x8_s": 108.0,
        "skrock_s": 1.8 * 3600,
    }
}


def load(name: str):
    """Truth in [0, 1] (Cygnus A resized to 256x512 as the study does) and its Fourier mask."""
    image = read_fits_image(DATA / "images" / f"{name}.fits")
    if name == "CYN":
        image = prepare_protocol_image(resize_image(np.flipud(image), (256, 512)), flip=False)
    else:
        image = prepare_protocol_image(image)
    mask = read_fourier_mask(DATA / "masks" / f"{name}_fourier_mask.mat", shape=image.shape)
    return image, mask


def run(name: str, priors: list[str]) -> list[dict]:
    image, mask = load(name)
    op = fourier_mask_operator(mask)
    clean = op(jnp.asarray(image, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, 30.0)
    data = add_complex_noise(jax.random.key(0), clean, sigma)
    plane = jnp.zeros(image.shape, jnp.complex64).at[op.rows, op.cols].set(data)
    dirty = jnp.abs(jnp.fft.ifft2(plane, norm="ortho"))  # the study's dirty image |Phi^H y|
    rows = [{"image": name, "method": "dirty", "snr_db": snr_db(image, dirty)}]
    for prior in priors:
        config = ImagingConfig(prior=prior, superpixel_sizes=(8,), alpha=0.01)
        start = time.perf_counter()
        crr = read_convex_ridge() if prior == "crr" else None
        result = run_imaging(config, op, data, sigma, truth=image, crr=crr)
        total = time.perf_counter() - start
        # cold-start MAP at the selected strength, compiled (second call)
        map_estimate(result.posterior).image.block_until_ready()
        tic = time.perf_counter()
        cold = map_estimate(result.posterior)
        cold.image.block_until_ready()
        cold_s = time.perf_counter() - tic
        lci = result.intervals[0]
        rows.append(
            {
                "image": name,
                "method": prior,
                "snr_db": result.snr_db,
                "cold_map_snr_db": snr_db(image, cold.image),
                "strength": result.strength,
                "map_s": cold_s,
                "map_iterations": cold.num_iterations,
                "strength_search_s": result.timings.get("strength_search_s", 0.0),
                "lci_8x8_s": result.timings["lci_8x8_s"],
                "map_hpd_lci_total_s": total,
                "gamma_alpha": result.hpd.gamma_alpha,
                "lci_mean_length": float(np.mean(lci.length)),
                "lci_unbounded": lci.num_unbounded,
            }
        )
    return rows


def run_meerkat(hours: int) -> dict:
    """M31 observed at the simulated MeerKAT uv points (NUFFT); no published number."""
    from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
    from astrobayes.io.imaging_files import read_uv_points

    image, _ = load("M31")
    points = read_uv_points(DATA / "meerkat_uv" / f"meerkat_simulation_{hours}h_uv_only.npz")
    op = nufft_operator_from_pixel_phases(points, image_shape=image.shape)
    clean = op(jnp.asarray(image, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, 30.0)
    data = add_complex_noise(jax.random.key(0), clean, sigma)
    start = time.perf_counter()
    result = run_imaging(
        ImagingConfig(prior="wavelets", superpixel_sizes=(8,)), op, data, sigma, truth=image
    )
    strength = result.strength_result
    return {
        "hours": hours,
        "num_visibilities": op.num_visibilities,
        "snr_db": result.snr_db,
        "total_s": time.perf_counter() - start,
        "lci_8x8_s": result.timings["lci_8x8_s"],
        "strength": result.strength,
        "discrepancy": ""
        if strength is None
        else f"ratio {strength.discrepancy_ratio:.3f} after {strength.num_solves} MAP solves "
        f"({strength.status.name})",
        "map": f"{result.map_result.status.name} after {result.map_result.num_iterations} iterations",
    }


def run_evidence(
    size: int, num_repeats: int, num_live: int, num_mcmc_steps: int, num_delete: int
) -> dict:
    """Rank the wavelet and learned priors by evidence on a downsampled M31 (no published number).

    M31 block-averaged to ``size x size`` and rescaled to peak 1; a random Fourier mask
    denser at low frequencies (zero frequency excluded: the CRR ignores the image mean);
    ISNR 30 dB. Wavelet prior (db4, 2 levels) at the discrepancy-principle strength, the
    CRR at its trained strength, both without positivity (proper, normalised priors).
    """
    from astrobayes.imaging.crr import ConvexRidgePrior
    from astrobayes.imaging.map import discrepancy_strength
    from astrobayes.imaging.pipeline import initial_strength
    from astrobayes.imaging.posterior import imaging_posterior
    from astrobayes.imaging.prior_evidence import compare_priors
    from astrobayes.imaging.priors import WaveletSparsityPrior
    from astrobayes.imaging.wavelets import WaveletTransform

    image, _ = load("M31")
    factor = image.shape[0] // size
    truth = image.reshape(size, factor, size, factor).mean(axis=(1, 3))
    truth = truth / truth.max()
    rng = np.random.default_rng(0)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    mask = rng.random((size, size)) < np.clip(0.9 * np.exp(-radius / 0.15), 0.05, 1)
    mask[0, 0] = False
    op = fourier_mask_operator(mask)
    clean = op(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, 30.0)
    data = add_complex_noise(jax.random.key(1), clean, sigma)
    wavelets = imaging_posterior(
        op, data, sigma, WaveletSparsityPrior(10.0, WaveletTransform(4, 2))
    )
    wavelets = discrepancy_strength(wavelets).posterior
    crr = read_convex_ridge()
    strength = initial_strength(ImagingConfig(prior="crr"), op, data, crr=crr)
    crr = imaging_posterior(
        op, data, sigma, ConvexRidgePrior(strength, crr.regulariser.normalised())
    )
    snrs = {
        name: snr_db(truth, map_estimate(post).image)
        for name, post in (("wavelets", wavelets), ("crr", crr))
    }
    start = time.perf_counter()
    last = [start]

    def progress(name, repeat, result):
        now = time.perf_counter()
        nested = result.nested
        print(
            f"  {name:9s} run {repeat}: ln z = {result.log_evidence:.2f} +- "
            f"{result.log_evidence_error:.2f}, H = {nested.information:.1f} nats, "
            f"{nested.num_iterations} dead points, acceptance {nested.acceptance_rate:.2f}, "
            f"prior-draw R-hat {result.prior_samples.rhat:.3f}, {result.status.name}, "
            f"{now - last[0]:.0f} s",
            flush=True,
        )
        last[0] = now

    comparison = compare_priors(
        jax.random.key(0),
        {"wavelets": wavelets, "crr": crr},
        num_repeats=num_repeats,
        on_result=progress,
        num_live=num_live,
        num_mcmc_steps=num_mcmc_steps,
        num_delete=num_delete,
    )
    return {
        "size": size,
        "num_visibilities": op.num_visibilities,
        "snr_db": snrs,
        "comparison": comparison,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", nargs="*", default=["M31", "CYN"])
    parser.add_argument("--skip-crr", action="store_true")
    parser.add_argument(
        "--meerkat",
        nargs="*",
        type=int,
        default=[],
        help="also run M31 with these MeerKAT tracks (hours: 1 2 4)",
    )
    parser.add_argument(
        "--evidence",
        action="store_true",
        help="also rank the wavelet and learned priors by evidence on a 16x16 M31",
    )
    parser.add_argument("--evidence-size", type=int, default=16)
    parser.add_argument("--evidence-repeats", type=int, default=3)
    parser.add_argument("--evidence-live", type=int, default=50)
    parser.add_argument("--evidence-steps", type=int, default=60)
    parser.add_argument(
        "--evidence-delete",
        type=int,
        default=10,
        help="live points deleted and replaced in parallel per nested-sampling iteration",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    priors = ["wavelets"] + ([] if args.skip_crr else ["crr"])
    print(
        f"device: {jax.devices()[0].device_kind} ({jax.device_count()} device(s)); published: A100 GPU\n"
    )
    for name in args.images:
        rows = run(name, priors)
        published = PUBLISHED.get(name, {})
        print(f"== {name} ==")
        print(
            f"{'method':10s} {'SNR ours':>9s} {'published':>9s} {'MAP s':>7s} {'pub MAP s':>9s} "
            f"{'8x8 LCI s':>9s} {'pub LCI s':>9s} {'total s':>8s} {'strength':>9s}"
        )
        for row in rows:
            method = row["method"]
            key = "dirty_snr_db" if method == "dirty" else f"{method}_snr_db"
            pub = published.get(key)
            line = (
                f"{method:10s} {row['snr_db']:9.2f} {pub if pub is not None else float('nan'):9.2f}"
            )
            if method != "dirty":
                line += (
                    f" {row['map_s']:7.2f} {published.get('map_s', float('nan')):9.2f}"
                    f" {row['lci_8x8_s']:9.2f} {published.get('lci_8x8_s', float('nan')):9.1f}"
                    f" {row['map_hpd_lci_total_s']:8.2f} {row['strength']:9.4g}"
                )
            print(line)
        for row in rows[1:]:
            if "map_s" in published:
                print(
                    f"  {row['method']}: SNR ours - published = {row['snr_db'] - published[row['method'] + '_snr_db']:+.2f} dB; "
                    f"MAP time ratio ours/published = {row['map_s'] / published['map_s']:.2f}; "
                    f"8x8 LCI time ratio = {row['lci_8x8_s'] / published['lci_8x8_s']:.3f}; "
                    f"gamma_alpha = {row['gamma_alpha']:.6g}; unbounded LCI bounds = {row['lci_unbounded']}"
                )
        if "skrock_s" in published:
            print(
                f"  published SK-ROCK sampling time: {published['skrock_s'] / 3600:.1f} h (not rerun here)"
            )
        print()
    for hours in args.meerkat:
        row = run_meerkat(hours)
        print(
            f"M31 + MeerKAT {hours}h uv ({row['num_visibilities']} visibilities, NUFFT), wavelets: "
            f"SNR {row['snr_db']:.2f} dB, MAP+HPD+8x8 LCI {row['total_s']:.1f} s (no published number)"
        )
        print(
            f"  strength {row['strength']:.4g}; discrepancy {row['discrepancy']}; MAP {row['map']}"
        )

    if args.evidence:
        print(
            f"Evidence of priors (M31 {args.evidence_size}x{args.evidence_size}): "
            f"{args.evidence_repeats} runs per prior, {args.evidence_live} live points, "
            f"{args.evidence_steps} moves, {args.evidence_delete} deleted per iteration",
            flush=True,
        )
        row = run_evidence(
            args.evidence_size,
            args.evidence_repeats,
            args.evidence_live,
            args.evidence_steps,
            args.evidence_delete,
        )
        comparison = row["comparison"]
        print(
            f"\nEvidence of priors, M31 {row['size']}x{row['size']}, "
            f"{row['num_visibilities']} visibilities, ISNR 30 dB, no positivity "
            f"({args.evidence_repeats} nested-sampling runs each, {args.evidence_live} live "
            f"points, {args.evidence_steps} moves, {args.evidence_delete} deleted per "
            f"iteration; {row['seconds']:.0f} s):"
        )
        for index, name in enumerate(comparison.names):
            runs = ", ".join(
                f"{z:.2f}+-{e:.2f}"
                for z, e in zip(
                    comparison.log_evidence[index],
                    comparison.log_evidence_error[index],
                    strict=True,
                )
            )
            print(
                f"  {name:9s} ln z = {comparison.mean_log_evidence[index]:.2f} "
                f"+- {comparison.mean_log_evidence_error[index]:.2f} (runs: {runs}); "
                f"MAP SNR {row['snr_db'][name]:.2f} dB"
            )
        print(
            f"  ln B(crr / wavelets) = {comparison.log_bayes_factor[1]:.2f} "
            f"+- {comparison.log_bayes_factor_error[1]:.2f}; evidence prefers {comparison.best}; "
            f"higher MAP SNR: {max(row['snr_db'], key=row['snr_db'].get)}"
        )
        for index, name in enumerate(comparison.names):
            runs = comparison.log_evidence[index]
            if len(runs) > 1:
                print(
                    f"  {name:9s} spread of runs (std) {np.std(runs, ddof=1):.2f} vs mean "
                    f"reported error {np.sqrt(np.mean(comparison.log_evidence_error[index] ** 2)):.2f}"
                )


if __name__ == "__main__":
    main()
