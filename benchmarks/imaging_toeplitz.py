"""Issue 13 items 1, 3, 4: Toeplitz normal operator speed, cost of training pairs, conformal coverage.

* ``--task operator``: ``NormalOperator`` (Toeplitz embedding, two FFTs of the 2H x 2W
  padded image) against ``adjoint(forward(x))`` (two NUFFTs) on the shared MeerKAT 1 h and
  4 h tracks at 128^2 and 256^2, one thread each, float32; median wall and CPU time after
  compilation, and their relative difference.
* ``--task pairs``: CPU cost of one training pair at 128^2 (``random_sky``, a random
  track variant, ``simulate_observations``: kernel + batched forward/adjoint NUFFTs).
* ``--task conformal``: split-conformal intervals (``learned_uq.learned_uncertainty``) of a
  Tikhonov/Wiener CG reconstruction and of a 3-member Tikhonov ensemble (normalised
  scores), calibrated on N random 128^2 skies through C random coverages (80% MeerKAT
  track variants, 20% random arrays) and tested on N others (disjoint keys); coverage at
  68% and 90% per pixel and for 4x4 and 8x8 super-pixels, with cluster-robust errors.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_toeplitz.py \\
        --task operator|pairs|conformal [--num 300 --coverages 40]

Needs ../shared/data/imaging/meerkat_uv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.learned_uq import learned_uncertainty, tikhonov_reconstruction
from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.skies import random_sky
from astrobayes.imaging.toeplitz import toeplitz_normal_operator
from astrobayes.imaging.uv_coverage import (
    random_array_coverage,
    random_track_coverage,
    simulate_observations,
    simulate_training_set,
)
from astrobayes.io.imaging_files import read_uv_points

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imaging" / "meerkat_uv"
STEPS = {1: 15, 2: 30, 4: 60}


def track(hours):
    return read_uv_points(DATA / f"meerkat_simulation_{hours}h_uv_only.npz")


def clock(fn, repeats):
    """Median wall and CPU seconds of ``fn`` after one warm-up (compilation) call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, p0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - p0)
    return float(np.median(wall)), float(np.median(cpu))


def operator_table():
    print(
        "| size | track | M | kernel CPU s | normal(x) ms wall/CPU | adjoint(forward(x)) ms wall/CPU | CPU ratio | rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (128, 256):
        x = random_sky(jax.random.key(0), (n, n))
        for hours in (1, 4):
            points = track(hours)
            op = nufft_operator_from_pixel_phases(points, image_shape=(n, n), num_threads=1)
            jax.block_until_ready(toeplitz_normal_operator(op).spectrum)  # compile
            p0 = time.process_time()
            normal = toeplitz_normal_operator(op)
            jax.block_until_ready(normal.spectrum)
            build = time.process_time() - p0
            fast = jax.jit(lambda v, normal=normal: normal(v))
            slow = jax.jit(lambda v, op=op: op.adjoint(op(v)))
            wf, cf = clock(lambda fast=fast, x=x: fast(x).block_until_ready(), 20)
            ws, cs = clock(lambda slow=slow, x=x: slow(x).block_until_ready(), 5)
            rel = float(jnp.linalg.norm(fast(x) - slow(x)) / jnp.linalg.norm(slow(x)))
            print(
                f"| {n}^2 | {hours} h | {points.shape[0]} | {build:.3f} | {1e3 * wf:.2f}/{1e3 * cf:.2f} "
                f"| {1e3 * ws:.1f}/{1e3 * cs:.1f} | {cs / cf:.0f}x | {rel:.1e} |",
                flush=True,
            )


def pair_cost(batch=32):
    n = 128
    sky_fn = jax.jit(jax.vmap(lambda k: random_sky(k, (n, n))))
    keys = jax.random.split(jax.random.key(1), batch)
    wall, cpu = clock(lambda: sky_fn(keys).block_until_ready(), 3)
    print(f"skies: {1e3 * wall / batch:.1f} ms wall / {1e3 * cpu / batch:.1f} ms CPU per 128^2 sky")
    skies = np.asarray(sky_fn(keys))
    for hours in (1, 4):
        points = track(hours)

        def one(points=points, hours=hours):
            cov = random_track_coverage(jax.random.key(2), points, num_times=STEPS[hours])
            obs = simulate_observations(jax.random.key(3), skies, cov, isnr_db=30.0)
            jax.block_until_ready((obs.backprojection, obs.normal.spectrum))

        wall, cpu = clock(one, 3)
        print(
            f"{hours} h track variants: {1e3 * wall / batch:.1f} ms wall / {1e3 * cpu / batch:.1f} ms CPU "
            f"per pair ({batch} skies per coverage)",
            flush=True,
        )


def conformal(num, num_coverages):
    tracks = {h: track(h) for h in (1, 2, 4)}
    sky_fn = jax.jit(jax.vmap(lambda k: random_sky(k, (128, 128))))

    def data_set(seed):
        key_sky, key_cov, key_obs = jax.random.split(jax.random.key(seed), 3)
        skies = np.asarray(sky_fn(jax.random.split(key_sky, num)))
        coverages = []
        for i in range(num_coverages):
            k = jax.random.fold_in(key_cov, i)
            if i < int(0.8 * num_coverages):
                hours = (1, 2, 4)[i % 3]
                coverages.append(random_track_coverage(k, tracks[hours], num_times=STEPS[hours]))
            else:
                coverages.append(random_array_coverage(k))
        return simulate_training_set(key_obs, skies, coverages, isnr_db_range=(20.0, 40.0))

    p0 = time.process_time()
    calibration, test = data_set(1001), data_set(2002)  # disjoint keys
    print(f"data: {num} + {num} pairs, {time.process_time() - p0:.1f} CPU s", flush=True)

    @jax.jit
    def tikhonov(b, normal):
        return tikhonov_reconstruction(b, normal, 0.02 * normal.psf_peak(), num_iterations=40)

    @jax.jit
    def ensemble(b, normal):
        strengths = normal.psf_peak() * jnp.array([0.01, 0.02, 0.04])
        return jax.vmap(lambda s: tikhonov_reconstruction(b, normal, s, num_iterations=40))(
            strengths
        )

    for name, fn in (
        ("Tikhonov (residual)", tikhonov),
        ("3-member ensemble (normalised)", ensemble),
    ):
        p0 = time.process_time()
        result = learned_uncertainty(fn, calibration, test, superpixel_sizes=(1, 4, 8))
        print(
            f"\n{name}: status {result.status.name}; test SNR median "
            f"{np.median(result.test_snr_db):.1f} dB; {time.process_time() - p0:.0f} CPU s"
        )
        print("| super-pixel | level | coverage | error | mean width | verdict |")
        print("|---|---|---|---|---|---|")
        for row in result.coverages:
            print(
                f"| {row.superpixel_size}x{row.superpixel_size} | {row.level:.2f} | "
                f"{row.coverage.fraction:.3f} | {row.coverage.error:.3f} | {row.mean_width:.4f} "
                f"| {row.status.name} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("operator", "pairs", "conformal"), default="operator")
    parser.add_argument("--num", type=int, default=300, help="skies per calibration/test set")
    parser.add_argument("--coverages", type=int, default=40, help="coverages per set")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent")
        return
    if args.task == "operator":
        operator_table()
    elif args.task == "pairs":
        pair_cost()
    else:
        conformal(args.num, args.coverages)


if __name__ == "__main__":
    main()
