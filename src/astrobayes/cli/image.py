"""``astrobayes image CONFIG.toml [--out DIR]``: MAP imaging with uncertainty.

The TOML format is documented in ``docs/imaging.md``; ``astrobayes image --demo`` runs
a built-in offline example. Outputs in ``DIR``: ``map.fits``, ``dirty.fits``, PNG
figures and ``results.json`` (``snr_db`` when a truth is given, ``gamma_alpha``,
``map_potential``, timings, ...).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np

DEMO_CONFIG = """
# Built-in demo: a synthetic 64x64 radio source observed through a random
# low-frequency-weighted Fourier mask at ISNR 30 dB.
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0
seed = 0

[prior]
kind = "wavelets"
wavelet_order = 8
wavelet_levels = 3
strength = "discrepancy"
positivity = true

[uq]
alpha = 0.01
superpixel_sizes = [8, 4]
test_regions = [[28, 36, 28, 36], [2, 8, 2, 8]]
"""

_DATA_KEYS = {
    "truth",
    "flip",
    "normalise",
    "mask",
    "mask_centred",
    "uv",
    "uv_units",
    "pixel_size_arcsec",
    "visibilities",
    "image_shape",
    "isnr_db",
    "seed",
}
_PRIOR_KEYS = {"kind", "wavelet_order", "wavelet_levels", "strength", "positivity", "crr_weights"}
_UQ_KEYS = {"alpha", "superpixel_sizes", "test_regions"}
_MAP_KEYS = {"max_iterations", "tolerance"}


def add_parser(subparsers) -> None:
    """Register the ``image`` subcommand."""
    parser = subparsers.add_parser(
        "image",
        help="radio-interferometric imaging with MAP-based uncertainty",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="TOML configuration (see docs/imaging.md)")
    parser.add_argument("--out", default="imaging_output", help="output folder")
    parser.add_argument("--demo", action="store_true", help="run the built-in offline demo")
    parser.set_defaults(func=run)


def _check_keys(table: dict, allowed: set, name: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(
            f"unknown key(s) in [{name}]: {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def load_config(text: str, base: Path):
    """Parse the TOML text into ``(ImagingConfig, data table)``; paths relative to ``base``."""
    from astrobayes.imaging.pipeline import ImagingConfig

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None
    unknown = set(document) - {"data", "prior", "uq", "map"}
    if unknown:
        raise ValueError(
            f"unknown table(s) {sorted(unknown)}; expected [data], [prior], [uq], [map]"
        )
    data = dict(document.get("data", {}))
    prior = document.get("prior", {})
    uq = document.get("uq", {})
    map_table = document.get("map", {})
    _check_keys(data, _DATA_KEYS, "data")
    _check_keys(prior, _PRIOR_KEYS, "prior")
    _check_keys(uq, _UQ_KEYS, "uq")
    _check_keys(map_table, _MAP_KEYS, "map")
    strength = prior.get("strength", "auto")
    if isinstance(strength, str):
        if strength not in ("auto", "discrepancy", "trained"):
            raise ValueError(
                f"prior.strength must be a number, 'auto', 'discrepancy' or 'trained'; got {strength!r}"
            )
        rule, strength = strength, None
    else:
        rule = "fixed"
    for key in ("truth", "mask", "uv", "visibilities"):
        if key in data and data[key] != "demo":
            data[key] = str((base / data[key]).resolve())
    weights = prior.get("crr_weights")
    config = ImagingConfig(
        prior=prior.get("kind", "wavelets"),
        wavelet_order=int(prior.get("wavelet_order", 8)),
        wavelet_levels=int(prior.get("wavelet_levels", 4)),
        crr_weights=None if weights is None else str((base / weights).resolve()),
        strength=None if strength is None else float(strength),
        strength_rule=rule,
        positivity=bool(prior.get("positivity", True)),
        alpha=float(uq.get("alpha", 0.01)),
        superpixel_sizes=tuple(int(s) for s in uq.get("superpixel_sizes", [8])),
        max_iterations=int(map_table.get("max_iterations", 3000)),
        tolerance=float(map_table.get("tolerance", 1e-6)),
        test_regions=tuple(tuple(int(v) for v in r) for r in uq.get("test_regions", [])),
    )
    return config, data


def _build_problem(data: dict):
    """Return ``(operator, visibilities, sigma, truth)`` from the [data] table."""
    import jax
    import jax.numpy as jnp

    from astrobayes.imaging.operators import (
        add_complex_noise,
        fourier_mask_operator,
        noise_sigma_from_isnr,
        nufft_operator,
        nufft_operator_from_pixel_phases,
    )
    from astrobayes.imaging.pipeline import demo_sky
    from astrobayes.io.imaging_files import (
        prepare_protocol_image,
        read_fits_image,
        read_fourier_mask,
        read_uv_points,
    )

    truth = None
    if "truth" in data:
        if data["truth"] == "demo":
            truth = demo_sky(64)
        else:
            truth = read_fits_image(data["truth"])
            if data.get("normalise", True):
                truth = prepare_protocol_image(truth, flip=bool(data.get("flip", True)))
            elif data.get("flip", True):
                truth = np.flipud(truth)
    seed = int(data.get("seed", 0))
    key_mask, key_noise = jax.random.split(jax.random.key(seed))
    if "visibilities" in data:
        operator, visibilities, sigma = _observed_problem(data, truth)
        return operator, visibilities, sigma, truth
    if "image_shape" in data:
        raise ValueError(
            "[data].image_shape is for observed visibilities; with a truth its shape is used"
        )
    if truth is None:
        raise ValueError(
            "[data] needs 'truth' (a FITS image or 'demo') to simulate visibilities, or 'visibilities' (an .npz)"
        )
    shape = truth.shape
    if "mask" in data and "uv" in data:
        raise ValueError("[data] takes either 'mask' or 'uv', not both")
    if "mask" in data:
        if data["mask"] == "demo":
            radius = np.hypot(
                *np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
            )
            probability = np.clip(0.9 * np.exp(-radius / 0.12), 0.02, 1.0)
            mask = np.asarray(jax.random.uniform(key_mask, shape)) < probability
            mask[0, 0] = True
        else:
            mask = read_fourier_mask(data["mask"], shape=shape)
        operator = fourier_mask_operator(mask, centred=bool(data.get("mask_centred", False)))
    elif "uv" in data:
        points = read_uv_points(data["uv"])
        units = data.get("uv_units", "wavelengths")
        if units == "wavelengths":
            if "pixel_size_arcsec" not in data:
                raise ValueError("[data].pixel_size_arcsec is required with uv in wavelengths")
            operator = nufft_operator(
                points, image_shape=shape, pixel_size_arcsec=float(data["pixel_size_arcsec"])
            )
        elif units == "radians_per_pixel":
            operator = nufft_operator_from_pixel_phases(points, image_shape=shape)
        else:
            raise ValueError(
                f"uv_units must be 'wavelengths' or 'radians_per_pixel'; got {units!r}"
            )
    else:
        raise ValueError("[data] needs 'mask' (.mat/.npy/'demo') or 'uv' (.npz)")
    isnr = data.get("isnr_db", 30.0)
    clean = operator(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, isnr)
    visibilities = add_complex_noise(key_noise, clean, sigma)
    return operator, visibilities, sigma, truth


def _observed_problem(data: dict, truth):
    """Operator, whitened visibilities and noise level from an observed ``.npz``."""
    import jax.numpy as jnp

    from astrobayes.imaging.operators import (
        fourier_mask_operator,
        nufft_operator,
        nufft_operator_from_pixel_phases,
    )
    from astrobayes.io.imaging_files import read_fourier_mask, read_visibilities

    for key in ("isnr_db", "uv"):
        if key in data:
            raise ValueError(
                f"[data].{key} is for simulated data; with [data].visibilities the data, "
                "noise and uv points come from the visibilities file"
            )
    observed = read_visibilities(data["visibilities"])
    if "image_shape" in data:
        raw = data["image_shape"]
        if (
            not isinstance(raw, list)
            or len(raw) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in raw)
        ):
            raise ValueError(f"[data].image_shape must be two integers >= 2; got {raw!r}")
        shape = (raw[0], raw[1])
        if truth is not None and truth.shape != shape:
            raise ValueError(f"[data].image_shape {shape} differs from the truth's {truth.shape}")
    elif truth is not None:
        shape = truth.shape
    else:
        raise ValueError("[data].image_shape = [height, width] is required with visibilities")
    num = observed.visibilities.shape[0]
    sigma_values = observed.sigma
    if "mask" in data:
        if data["mask"] == "demo":
            raise ValueError("mask = 'demo' cannot be used with observed visibilities")
        if observed.uv is not None:
            raise ValueError(
                "the visibilities file has 'uu'/'vv' and [data].mask is given; give one of them"
            )
        if not np.all(sigma_values == sigma_values[0]):
            raise ValueError(
                "per-visibility sigma is supported with uv points (NUFFT), not with a Fourier mask"
            )
        mask = read_fourier_mask(data["mask"], shape=shape)
        operator = fourier_mask_operator(mask, centred=bool(data.get("mask_centred", False)))
        if operator.num_visibilities != num:
            raise ValueError(
                f"the mask samples {operator.num_visibilities} coefficients but the file has "
                f"{num} visibilities"
            )
        return operator, jnp.asarray(observed.visibilities), float(sigma_values[0])
    if observed.uv is None:
        raise ValueError("the visibilities file has no 'uu'/'vv'; add them or give [data].mask")
    # natural weighting: whiten by w_i = sigma_0^2 / sigma_i^2 (exact likelihood)
    sigma = float(1.0 / np.sqrt(np.mean(1.0 / sigma_values**2)))
    weights = (sigma / sigma_values) ** 2
    units = data.get("uv_units", "wavelengths")
    if units == "wavelengths":
        if "pixel_size_arcsec" not in data:
            raise ValueError("[data].pixel_size_arcsec is required with uv in wavelengths")
        operator = nufft_operator(
            observed.uv,
            image_shape=shape,
            pixel_size_arcsec=float(data["pixel_size_arcsec"]),
            weights=weights,
        )
    elif units == "radians_per_pixel":
        operator = nufft_operator_from_pixel_phases(observed.uv, image_shape=shape, weights=weights)
    else:
        raise ValueError(f"uv_units must be 'wavelengths' or 'radians_per_pixel'; got {units!r}")
    return operator, jnp.asarray(np.sqrt(weights) * observed.visibilities), sigma


def run(args: argparse.Namespace) -> int:
    """Run the ``image`` command; return the exit code."""
    from astrobayes.imaging.pipeline import run_imaging
    from astrobayes.imaging.uq import inpaint_region
    from astrobayes.io.imaging_files import write_fits_image
    from astrobayes.plots.imaging import plot_hypothesis_test, plot_lci, plot_reconstruction

    if args.demo == (args.config is not None):
        raise ValueError("give a CONFIG.toml or --demo (not both)")
    if args.demo:
        text, base = DEMO_CONFIG, Path.cwd()
    else:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        text, base = path.read_text(), path.parent
    config, data = load_config(text, base)
    operator, visibilities, sigma, truth = _build_problem(data)
    result = run_imaging(config, operator, visibilities, sigma, truth=truth)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = np.asarray(result.map_result.image)
    write_fits_image(
        out / "map.fits", image, header={"PRIOR": config.prior, "STRENGTH": result.strength}
    )
    write_fits_image(out / "dirty.fits", np.asarray(result.dirty))
    figures = [
        plot_reconstruction(
            out / "reconstruction.png", result.dirty, image, truth=truth, snr_db=result.snr_db
        )
    ]
    for lci in result.intervals:
        size = lci.superpixel_size
        figures.append(plot_lci(out / f"lci_{size}x{size}.png", lci))
        write_fits_image(out / f"lci_length_{size}x{size}.fits", np.asarray(lci.length))
    for index, (test, region) in enumerate(zip(result.tests, config.test_regions, strict=True)):
        mask = np.zeros(image.shape, bool)
        mask[region[0] : region[1], region[2] : region[3]] = True
        surrogate = np.asarray(inpaint_region(image, mask))
        figures.append(
            plot_hypothesis_test(out / f"hypothesis_test_{index}.png", image, surrogate, test)
        )
    summary = {
        "prior": config.prior,
        "strength": result.strength,
        "strength_rule": result.strength_rule,
        "discrepancy_ratio": None
        if result.strength_result is None
        else result.strength_result.discrepancy_ratio,
        "snr_db": result.snr_db,
        "map_potential": result.map_result.potential,
        "map_status": result.map_result.status.name,
        "map_iterations": result.map_result.num_iterations,
        "gamma_alpha": result.hpd.gamma_alpha,
        "alpha": result.hpd.alpha,
        "sigma": float(sigma),
        "num_visibilities": operator.num_visibilities,
        "observed_visibilities": "visibilities" in data,
        "image_shape": list(image.shape),
        "lci": [
            {
                "superpixel_size": lci.superpixel_size,
                "mean_length": float(np.mean(lci.length)),
                "num_unbounded": lci.num_unbounded,
                "num_lower_at_positivity": int(np.sum(np.asarray(lci.lower_status) == 1)),
            }
            for lci in result.intervals
        ],
        "hypothesis_tests": [
            {
                "region": list(region),
                "reject_null": t.reject_null,
                "potential_surrogate": t.potential_surrogate,
            }
            for t, region in zip(result.tests, config.test_regions, strict=True)
        ],
        "timings": result.timings,
        "figures": [p.name for p in figures],
    }
    from astrobayes.io import write_json_atomic

    write_json_atomic(out / "results.json", summary)
    snr = "" if result.snr_db is None else f", SNR {result.snr_db:.2f} dB"
    print(
        f"astrobayes image: MAP ({config.prior}, strength {result.strength:.4g}){snr}; "
        f"gamma_alpha {result.hpd.gamma_alpha:.6g}; wrote {out}/results.json"
    )
    return 0
