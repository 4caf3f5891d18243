"""The unrolled imaging network against CRR and wavelet MAPs on held-out images (issue 13).

M31 and Cygnus A (never used in training) seen through the shared MeerKAT tracks with
the NUFFT, ISNR 30 dB, in the QuantifAI study's protocol (``imaging_meerkat_table.problem``:
``uu`` on the rows, the study's noise definition and draw), plus robustness rows on
uv-coverages that training never drew. Per row: SNR, wall and CPU seconds, speed-up.

* ``unrolled``: :func:`astrobayes.imaging.unrolled.reconstruct` with the shipped (or
  ``--weights``) network; the Toeplitz kernel of ``Phi^H Phi`` (one NUFFT, per coverage)
  and the dirty image are timed apart (``setup``); the reconstruction is timed on its
  first call (compilation included) and again after compilation (``warm``).
* ``crr``: :func:`astrobayes.imaging.pipeline.run_imaging` with the shipped CRR and the
  pipeline's default strength rule (``trained``: no search), positivity, HPD bound (no
  LCIs): the time is the strength selection plus the FISTA MAP, compilation included.
* ``wavelets`` (``--wavelets``): db8, 4 levels, positivity, Morozov's discrepancy
  principle (a strength search of several MAPs).

With ``--hypothesis``, the MAP-based hypothesis test is evaluated at the network's image
with the CRR posterior of the same data (``imaging.learned_uq.learned_hypothesis_test``:
Pereyra's bound with ``U`` at the network's image, a conservative superset of the HPD
region, so no MAP is needed) on three boxes chosen from the truth by a fixed rule: the
brightest 16x16 box (true structure), the box whose mean is nearest 15% of that
brightest box's mean at least 48 pixels away (faint true structure), and the darkest box
(background: the test must not reject there).

The speed-up is the MAP's CPU seconds over the network's (warm, and including setup and
compilation). Baseline rows can be cached (``--cache FILE``) so a rerun with new weights
does not redo the MAPs; the table says which rows came from the cache.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/learned_imaging.py \\
        [--images M31 CYN] [--hours 1 2 4] [--robustness] [--wavelets] [--cache FILE]
        [--weights FILE] [--out results.json] [--hypothesis]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from imaging_meerkat_table import PUBLISHED, problem

from astrobayes.imaging.map import snr_db
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.unrolled import normal_operator_of, reconstruct
from astrobayes.io import write_json_atomic
from astrobayes.io.imaging_files import read_convex_ridge
from astrobayes.io.unrolled_files import read_unrolled


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    return time.perf_counter() - start[0], time.process_time() - start[1]


def run_network(network, op, data, truth, sigma) -> tuple[dict, np.ndarray]:
    """The unrolled network on one problem: setup, first call, warm call.

    Also the truth-free data check of ``run_unrolled_imaging``:
    ``||y - Phi x||^2 / (2 M sigma^2)`` (``sigma`` per real/imaginary part; outside
    ``[1/4, 4]`` is its ``RESIDUAL_FAR_FROM_NOISE`` warning).
    """
    start = _clock()
    normal = normal_operator_of(op)
    dirty = op.adjoint(data)
    dirty.block_until_ready()
    setup_wall, setup_cpu = _since(start)
    start = _clock()
    image = reconstruct(network, normal, dirty)
    image.block_until_ready()
    first_wall, first_cpu = _since(start)
    start = _clock()
    image = reconstruct(network, normal, dirty)
    image.block_until_ready()
    warm_wall, warm_cpu = _since(start)
    return {
        "method": "unrolled",
        "snr_db": snr_db(truth, np.asarray(image)),
        "setup_wall_s": setup_wall,
        "setup_cpu_s": setup_cpu,
        "first_wall_s": first_wall,
        "first_cpu_s": first_cpu,
        "wall_s": warm_wall,
        "cpu_s": warm_cpu,
        "discrepancy_ratio": float(
            np.sum(np.abs(np.asarray(data - op(image))) ** 2) / (2 * data.shape[0] * sigma**2)
        ),
    }, np.asarray(image)


def run_map(prior, op, data, sigma, truth) -> dict:
    """The pipeline's MAP (strength rule included, HPD bound, no LCIs).

    The CRR uses the ``trained`` strength (the pipeline default until 2026-12-03, now
    ``noise_scaled``): on M31 through the MeerKAT tracks it is the stronger baseline
    (25.85 against 23.85 dB at 1 h, docs/imaging.md), so the network is compared with
    the better of the two truth-free rules there.
    """
    rule = "trained" if prior == "crr" else "auto"
    config = ImagingConfig(prior=prior, superpixel_sizes=(), strength_rule=rule)
    crr = read_convex_ridge() if prior == "crr" else None
    start = _clock()
    result = run_imaging(config, op, data, sigma, truth=truth, crr=crr)
    result.map_result.image.block_until_ready()
    wall, cpu = _since(start)
    return {
        "method": prior,
        "snr_db": result.snr_db,
        "wall_s": wall,
        "cpu_s": cpu,
        "strength_rule": result.strength_rule,
        "map_iterations": result.map_result.num_iterations,
        "status": result.status.name,
    }


def hypothesis_boxes(truth: np.ndarray, size: int = 16) -> dict[str, tuple[int, int]]:
    """Top-left corners of the structure, faint-structure and background boxes.

    Boxes on a ``size // 2`` grid inside a ``size`` margin; "structure" has the largest
    mean of the truth, "faint" the mean nearest 15% of that one among boxes whose centres
    are at least ``3 size`` pixels from it, "background" the smallest maximum.
    """
    step, rows, cols = size // 2, truth.shape[0], truth.shape[1]
    corners = [
        (r, c)
        for r in range(size, rows - 2 * size + 1, step)
        for c in range(size, cols - 2 * size + 1, step)
    ]
    means = np.array([truth[r : r + size, c : c + size].mean() for r, c in corners])
    peaks = np.array([truth[r : r + size, c : c + size].max() for r, c in corners])
    bright = corners[int(np.argmax(means))]
    far = np.array([np.hypot(r - bright[0], c - bright[1]) >= 3 * size for r, c in corners])
    faint = corners[int(np.argmin(np.where(far, np.abs(means - 0.15 * means.max()), np.inf)))]
    return {"structure": bright, "faint": faint, "background": corners[int(np.argmin(peaks))]}


def run_hypothesis(op, data, sigma, truth, image, size: int = 16) -> list[dict]:
    """The hypothesis test at the network's image with the CRR posterior (trained strength)."""
    import jax.numpy as jnp

    from astrobayes.imaging.learned_uq import learned_hypothesis_test
    from astrobayes.imaging.pipeline import build_prior, initial_strength
    from astrobayes.imaging.posterior import imaging_posterior

    config = ImagingConfig(prior="crr", superpixel_sizes=(), strength_rule="trained")
    crr = read_convex_ridge()
    strength = initial_strength(config, op, data, crr=crr)
    prior = build_prior(config, op.image_shape, strength, crr=crr)
    posterior = imaging_posterior(op, data, sigma, prior, positivity=True)
    out = []
    for name, (r, c) in hypothesis_boxes(np.asarray(truth), size).items():
        region = np.zeros(truth.shape, bool)
        region[r : r + size, c : c + size] = True
        result = learned_hypothesis_test(posterior, jnp.maximum(jnp.asarray(image), 0.0), region)
        out.append(
            {
                "region": name,
                "corner": [r, c],
                "truth_mean": float(np.asarray(truth)[region].mean()),
                "potential_image": result.potential_map,
                "gamma": result.gamma_alpha,
                "potential_surrogate": result.potential_surrogate,
                "reject": bool(result.reject_null),
            }
        )
    return out


def coverages(args) -> list[tuple[str, int, str]]:
    """(name, hours, kind): the full tracks, and the held-out ones with --robustness."""
    rows = [(f"{h}h", h, "track") for h in args.hours]
    if args.robustness:
        rows += [(name, 0, "heldout") for name in HELDOUT]
    return rows


HELDOUT_ANGLE_DEG = 75.0
"""Inside the rotation window ``[pi/3, pi/2]`` (modulo pi) that training never draws."""
HELDOUT_ARRAY_SEED = 10_000
"""``random_array_coverage(jax.random.key(10_000))``: a key training never uses."""


def heldout_problem(name: str, points: np.ndarray):
    """Truth, NUFFT operator, data and sigma at ``points``, noise as in the study protocol."""
    import jax.numpy as jnp
    from imaging_vs_quantifai import load

    from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
    from astrobayes.imaging.operators import noise_sigma_from_isnr

    truth, _ = load(name)
    op = nufft_operator_from_pixel_phases(points, image_shape=truth.shape)
    clean = op(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, 30.0, split_complex=True)
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, clean.shape) + 1j * rng.normal(0.0, 1.0, clean.shape)
    return truth, op, clean + jnp.asarray(sigma * noise, clean.dtype), sigma


def _rotated_track(name: str):
    """The 2 h track (study axes) rotated by HELDOUT_ANGLE_DEG: a rotation never trained on."""
    from imaging_vs_quantifai import DATA

    from astrobayes.imaging.uv_coverage import rotate_uv
    from astrobayes.io.imaging_files import read_uv_points

    points = read_uv_points(DATA / "meerkat_uv" / "meerkat_simulation_2h_uv_only.npz")[:, ::-1]
    return heldout_problem(name, rotate_uv(points, np.deg2rad(HELDOUT_ANGLE_DEG)))


def _random_array(name: str):
    """A random array (MeerKAT latitude) drawn from a key training never uses."""
    import jax

    from astrobayes.imaging.uv_coverage import random_array_coverage

    return heldout_problem(name, random_array_coverage(jax.random.key(HELDOUT_ARRAY_SEED)))


HELDOUT = {"2h_rot75": _rotated_track, "random_array": _random_array}


def run_conformal(network, num: int, size: int) -> None:
    """Split-conformal intervals of the network on held-out simulated skies (13op's learned_uq).

    Calibration and test sets: ``num`` random skies each at ``size x size``, observed
    through random MeerKAT-track variants and random arrays drawn from keys training
    never uses (``key(20_000)``, ``key(30_000)``), ISNR uniform in [20, 40] dB.
    """
    import jax
    from imaging_vs_quantifai import DATA

    from astrobayes.imaging.learned_uq import learned_uncertainty
    from astrobayes.imaging.skies import random_sky
    from astrobayes.imaging.uv_coverage import (
        random_array_coverage,
        random_track_coverage,
        simulate_training_set,
    )
    from astrobayes.io.imaging_files import read_uv_points

    tracks = {
        h: read_uv_points(DATA / "meerkat_uv" / f"meerkat_simulation_{h}h_uv_only.npz")
        for h in (1, 2, 4)
    }

    def held_out_set(seed):
        key = jax.random.key(seed)
        skies = jax.vmap(lambda k: random_sky(k, (size, size)))(jax.random.split(key, num))
        coverages = []
        for c in range(max(1, num // 8)):
            k = jax.random.fold_in(key, 1000 + c)
            if c % 4 == 3:
                coverages.append(random_array_coverage(k))
            else:
                hours = (1, 2, 4)[c % 3]
                times = {1: 15, 2: 30, 4: 60}[hours]
                coverages.append(random_track_coverage(k, tracks[hours], num_times=times))
        return simulate_training_set(jax.random.fold_in(key, 7), skies, coverages)

    calibration, test = held_out_set(20_000), held_out_set(30_000)
    start = _clock()
    result = learned_uncertainty(lambda d, n: network(n, d), calibration, test)
    wall, cpu = _since(start)
    print(
        f"\nconformal intervals ({num} calibration + {num} test skies, {size}x{size}; "
        f"test SNR median {np.median(result.test_snr_db):.2f} dB; {cpu:.0f} CPU s): "
        f"{result.status.name}"
    )
    for row in result.coverages:
        print(
            f"  {row.superpixel_size}x{row.superpixel_size} at {row.level:.2f}: coverage "
            f"{row.coverage.fraction:.3f} +- {row.coverage.error:.3f}, mean width "
            f"{row.mean_width:.3g} ({row.status.name})"
        )
    del wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=["M31"])
    parser.add_argument("--hours", nargs="*", type=int, default=[1, 2, 4])
    parser.add_argument("--weights", default=None, help="network .eqx (default: shipped)")
    parser.add_argument("--wavelets", action="store_true", help="add the wavelet MAP")
    parser.add_argument("--robustness", action="store_true", help="add held-out coverages")
    parser.add_argument("--skip-maps", action="store_true", help="network rows only")
    parser.add_argument("--cache", default=None, help="JSON cache of the MAP rows")
    parser.add_argument("--out", default=None, help="write all rows as JSON")
    parser.add_argument(
        "--conformal", type=int, default=0, help="skies per conformal calibration/test set"
    )
    parser.add_argument("--conformal-size", type=int, default=128)
    parser.add_argument(
        "--hypothesis", action="store_true", help="hypothesis tests at the network's image"
    )
    args = parser.parse_args()

    weights = read_unrolled(args.weights)
    network = weights.network
    window = weights.metadata.get("heldout_angles_rad")
    if args.robustness and window is not None:
        angle = np.deg2rad(HELDOUT_ANGLE_DEG) % np.pi
        if not window[0] <= angle <= window[1]:
            raise SystemExit(f"{HELDOUT_ANGLE_DEG} deg is not in the weights' held-out window")
    cache = {}
    if args.cache and Path(args.cache).is_file():
        cache = json.loads(Path(args.cache).read_text())
    methods = [] if args.skip_maps else ["crr"] + (["wavelets"] if args.wavelets else [])
    rows = []
    for name in args.images:
        for label, hours, kind in coverages(args):
            truth, op, data, sigma = problem_for(name, hours, kind, label)
            net_row, image = run_network(network, op, data, truth, sigma)
            net_row.update(image=name, coverage=label)
            if args.hypothesis:
                net_row["hypothesis_tests"] = run_hypothesis(op, data, sigma, truth, image)
            rows.append(net_row)
            for method in methods:
                key = f"{name}|{label}|{method}"
                if key in cache:
                    row = dict(cache[key], cached=True)
                else:
                    row = run_map(method, op, data, sigma, truth)
                    row.update(image=name, coverage=label)
                    cache[key] = row
                    if args.cache:
                        write_json_atomic(args.cache, cache)
                rows.append(row)
            report(rows, name, label)
    if args.conformal:
        run_conformal(network, args.conformal, args.conformal_size)
    if args.out:
        write_json_atomic(args.out, {"weights": str(weights.path), "rows": rows})


def problem_for(name, hours, kind, label):
    """Truth, operator, data, sigma for a full track or a held-out coverage."""
    if kind == "track":
        return problem(name, hours, "study")[:4]
    return HELDOUT[label](name)


def report(rows, name, label) -> None:
    """Print the rows of one (image, coverage) with the speed-ups."""
    here = [r for r in rows if r["image"] == name and r["coverage"] == label]
    net = next(r for r in here if r["method"] == "unrolled")
    published = PUBLISHED.get((name, int(label[:-1]))) if label[:-1].isdigit() else None
    pub = "" if published is None else f"  (A100 CRR, published: {published[0]:.2f} dB)"
    print(f"\n{name} {label}{pub}")
    print(f"  {'method':10s} {'SNR dB':>7s} {'wall s':>8s} {'CPU s':>8s}  notes")
    total_cpu = net["setup_cpu_s"] + net["first_cpu_s"]
    print(
        f"  {'unrolled':10s} {net['snr_db']:7.2f} {net['wall_s']:8.3f} {net['cpu_s']:8.3f}  "
        f"warm; setup {net['setup_cpu_s']:.2f} CPU s, first call {net['first_cpu_s']:.2f} CPU s; "
        f"||y - Phi x||^2 / (2 M sigma^2) = {net['discrepancy_ratio']:.2f}"
    )
    for test in net.get("hypothesis_tests", []):
        verdict = "rejects 'artefact'" if test["reject"] else "does not reject"
        print(
            f"    hypothesis test, {test['region']:10s} box at {tuple(test['corner'])} "
            f"(truth mean {test['truth_mean']:.3g}): U(x) {test['potential_image']:.4g}, "
            f"gamma' {test['gamma']:.4g}, U(surrogate) {test['potential_surrogate']:.4g}: {verdict}"
        )
    for row in here:
        if row["method"] == "unrolled":
            continue
        cached = " (cached)" if row.get("cached") else ""
        print(
            f"  {row['method']:10s} {row['snr_db']:7.2f} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}  "
            f"speed-up {row['cpu_s'] / net['cpu_s']:.0f}x warm, "
            f"{row['cpu_s'] / total_cpu:.0f}x incl. setup+compile; "
            f"{row['map_iterations']} iterations{cached}"
        )


if __name__ == "__main__":
    main()
