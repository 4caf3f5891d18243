"""The QuantifAI study's ungridded MeerKAT table with our learned convex prior (issue 16 item 5).

Published (the study's repository log
``paper/Liaudat2023/hypothesis_test_potentials_and_results/ungridded_log.out``, A100;
script ``paper/Liaudat2023/scripts/ungridded_vis_experiment.py``): CRR MAP SNR of M31 and
Cygnus A seen through simulated MeerKAT tracks, ISNR 30 dB, their CRR (trained at
noise 5/255, t = 5) with lambda = 1e4 / 1.4e4 / 1.9e4 / 2.25e4 for 1 / 2 / 4 / 8 h and
mu = 20. The 8 h track is not in ../shared/data, so its entries are not rerun.

``--protocol study`` (default) reproduces the study's protocol as far as our library
allows (what was read in its code, see docs/imaging.md, "MeerKAT table"):

* the file's ``uu`` on the image's first axis (rows) and ``vv`` on the second: the study
  passes ``(uu, vv)`` as torchkbnufft's ``omega``, whose first row is the first image
  axis; our ``nufft_operator_from_pixel_phases`` puts ``u`` on the columns, so the
  points are swapped here;
* noise: complex standard deviation ``10^(-ISNR/20) ||y|| / sqrt(M)`` split between the
  real and imaginary parts (``noise_sigma_from_isnr(..., split_complex=True)``), drawn as
  the study draws it (``numpy.random.default_rng(0)``: all real parts, then all
  imaginary parts, in units of that standard deviation), so the realisation is the
  study's own up to the operators' conventions;
* no positivity (the study's MAP only takes the real part).

``--protocol ours`` is the earlier benchmark's protocol (``u`` on the columns, each
part with standard deviation ``10^(-ISNR/20) ||y|| / sqrt(M)``, JAX key 0, positivity).

The data term is the exact negative log likelihood ``||y - Phi x||^2 / (2 sigma^2)``
with ``sigma`` the standard deviation of each part. The strength is our ``trained``
rule (``lam_train / sigma_train^2`` of the shipped weights) times each ``--scales``
factor (each scaled MAP warm-started from the previous one); the study's lambda cannot
be carried over (a different network, and its data term is half the exact one).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_meerkat_table.py \\
        --images M31 CYN --hours 1 2 4 [--scales 1 0.5 2] [--protocol study|ours]
        [--noise-seeds 0 1 2 3]

``--noise-seeds``: the study's generator ``numpy.random.default_rng(seed)`` (seed 0 is the
study's own realisation; ``--protocol ours``: the JAX key), to show the spread of the SNR
over noise realisations.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from imaging_vs_quantifai import DATA, load

from astrobayes.imaging.crr import ConvexRidgePrior
from astrobayes.imaging.map import map_estimate, snr_db, with_strength
from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import add_complex_noise, noise_sigma_from_isnr
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.io.imaging_files import read_convex_ridge, read_uv_points

# (image, hours): (MAP SNR dB, FISTA iterations, MAP seconds on an A100)
PUBLISHED = {
    ("M31", 1): (25.29, 1644, 17.0),
    ("M31", 2): (28.39, 1458, 28.2),
    ("M31", 4): (31.94, 1503, 53.2),
    ("M31", 8): (34.42, 1557, 105.2),
    ("CYN", 1): (25.72, 3241, 36.2),
    ("CYN", 2): (27.84, 2586, 51.7),
    ("CYN", 4): (28.40, 1843, 66.8),
    ("CYN", 8): (28.74, 1346, 91.8),
}
STUDY_LAMBDA = {1: 1e4, 2: 1.4e4, 4: 1.9e4, 8: 2.25e4}
ISNR_DB = 30.0


def problem(name: str, hours: int, protocol: str, uv_axes: str = "protocol", noise_seed: int = 0):
    """Truth, NUFFT operator, noisy visibilities and per-part sigma under ``protocol``."""
    image, _ = load(name)
    path = DATA / "meerkat_uv" / f"meerkat_simulation_{hours}h_uv_only.npz"
    if not path.is_file():
        raise SystemExit(f"{path.name} is not in ../shared/data (only 1, 2 and 4 h are shared)")
    points = read_uv_points(path)
    if uv_axes == "protocol":
        uv_axes = "study" if protocol == "study" else "ours"
    if uv_axes == "study":
        points = points[:, ::-1]  # uu on the rows, vv on the columns (torchkbnufft omega)
    op = nufft_operator_from_pixel_phases(points, image_shape=image.shape)
    clean = op(jnp.asarray(image, jnp.float32))
    if protocol == "study":
        sigma = noise_sigma_from_isnr(clean, ISNR_DB, split_complex=True)
        rng = np.random.default_rng(noise_seed)
        real = rng.normal(0.0, 1.0, clean.shape)
        imag = rng.normal(0.0, 1.0, clean.shape)
        data = clean + jnp.asarray(sigma * (real + 1j * imag), clean.dtype)
    else:
        sigma = noise_sigma_from_isnr(clean, ISNR_DB)
        data = add_complex_noise(jax.random.key(noise_seed), clean, sigma)
    return image, op, data, sigma


def timed_map(posterior, initial_image, max_iterations, tolerance):
    wall, cpu = time.perf_counter(), time.process_time()
    result = map_estimate(
        posterior, initial_image=initial_image, max_iterations=max_iterations, tolerance=tolerance
    )
    result.image.block_until_ready()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", nargs="*", default=["M31", "CYN"])
    parser.add_argument("--hours", nargs="*", type=int, default=[1, 2, 4])
    parser.add_argument("--scales", nargs="*", type=float, default=[1.0])
    parser.add_argument("--protocol", choices=["study", "ours"], default="study")
    parser.add_argument("--max-iterations", type=int, default=3000)
    parser.add_argument(
        "--uv-axes",
        choices=["protocol", "study", "ours"],
        default="protocol",
        help="study: uu on the rows; ours: u on the columns (protocol: the protocol's)",
    )
    parser.add_argument("--tolerance", type=float, default=1e-6, help="FISTA objective tolerance")
    parser.add_argument(
        "--noise-seeds",
        nargs="*",
        type=int,
        default=[0],
        help="noise realisations (0: the study's own draw; others show the spread)",
    )
    parser.add_argument(
        "--positivity",
        choices=["protocol", "on", "off"],
        default="protocol",
        help="x >= 0 (protocol: off for study, on for ours)",
    )
    parser.add_argument(
        "--warm-tracks",
        action="store_true",
        help="start each track's first MAP from the previous track's MAP (same image)",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    weights = read_convex_ridge()
    trained = float(weights.regulariser.strength) / weights.sigma_train**2
    regulariser = weights.regulariser.normalised()
    positivity = (
        args.protocol == "ours" if args.positivity == "protocol" else args.positivity == "on"
    )
    print(
        f"protocol {args.protocol}; uv axes {args.uv_axes}; positivity {positivity}; "
        f"tolerance {args.tolerance:g}; trained-rule strength "
        f"{trained:.4g} (lam_train {float(weights.regulariser.strength):.4g}, "
        f"sigma_train {weights.sigma_train:.4g}); device {jax.devices()[0].device_kind}",
        flush=True,
    )
    header = (
        f"{'image':5s} {'track':>5s} {'M':>7s} {'seed':>4s} {'published':>9s} {'ours':>7s} {'diff':>6s} "
        f"{'strength':>9s} {'x rule':>6s} {'iters':>5s} {'status':>14s} {'wall s':>7s} "
        f"{'CPU s':>7s} {'pub it':>6s} {'pub s':>6s} {'pub lam':>7s}"
    )
    print(header, flush=True)
    rows = []
    cases = [(n, h, seed) for n in args.images for h in args.hours for seed in args.noise_seeds]
    previous = {}  # (image, noise seed) -> the last track's first MAP, for --warm-tracks
    for name, hours, seed in cases:
        image, op, data, sigma = problem(name, hours, args.protocol, args.uv_axes, seed)
        posterior = imaging_posterior(
            op, data, sigma, ConvexRidgePrior(trained, regulariser), positivity=positivity
        )
        start = previous.get((name, seed)) if args.warm_tracks else None
        for scale in args.scales:
            current = with_strength(posterior, trained * scale)
            result, wall, cpu = timed_map(current, start, args.max_iterations, args.tolerance)
            start = result.image
            if scale == args.scales[0]:
                previous[(name, seed)] = result.image
            published = PUBLISHED[(name, hours)]
            row = (
                f"{name:5s} {hours:4d}h {op.num_visibilities:7d} {seed:4d} {published[0]:9.2f} "
                f"{snr_db(image, result.image):7.2f} "
                f"{snr_db(image, result.image) - published[0]:+6.2f} "
                f"{trained * scale:9.4g} {scale:6.3g} {result.num_iterations:5d} "
                f"{result.status.name:>14s} {wall:7.1f} {cpu:7.1f} {published[1]:6d} "
                f"{published[2]:6.1f} {STUDY_LAMBDA[hours]:7.3g}"
            )
            rows.append(row)
            print(row, flush=True)
    print("\n" + header)
    print("\n".join(rows))
    print(
        "8 h track: published M31 34.42 dB, Cygnus A 28.74 dB (not rerun: the track is not "
        "in ../shared/data)"
    )


if __name__ == "__main__":
    main()
