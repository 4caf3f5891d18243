"""``astrobayes image CONFIG.toml [--out DIR]``: MAP imaging with uncertainty.

The TOML format is documented in ``docs/imaging.md``; ``astrobayes image --demo`` runs
a built-in offline example. Outputs in ``DIR``: ``map.fits``, ``dirty.fits``, PNG
figures and ``results.json`` (``snr_db`` when a truth is given, ``gamma_alpha``,
``map_potential``, timings, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
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
    parser.add_argument("--no-plots", action="store_true", help="write no figures")
    parser.set_defaults(func=run)


def load_config(text: str, base: Path):
    """Parse the TOML text into an ``ImagingFileConfig``; paths resolved against ``base``."""
    from astrobayes._config import from_mapping
    from astrobayes.imaging.problem import DEMO, ImagingFileConfig

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None
    config = from_mapping(ImagingFileConfig, document)

    def resolve(value):
        return value if value is None or value == DEMO else str((base / value).resolve())

    data = config.data
    data = dataclasses.replace(
        data, **{k: resolve(getattr(data, k)) for k in ("truth", "mask", "uv", "visibilities")}
    )
    prior = dataclasses.replace(
        config.prior,
        crr_weights=resolve(config.prior.crr_weights),
        weights=resolve(config.prior.weights),
    )
    return dataclasses.replace(config, data=data, prior=prior)


def read_problem(config):
    """Read the files named by the ``[data]`` settings and build the imaging problem."""
    import jax

    from astrobayes.imaging.problem import (
        DEMO,
        build_problem,
        demo_sky,
        problem_image_shape,
        resize_image,
    )
    from astrobayes.io.imaging_files import (
        prepare_protocol_image,
        read_fits_image,
        read_fourier_mask,
        read_uv_points,
        read_visibilities,
    )

    truth = None
    if config.truth == DEMO:
        truth = demo_sky(64)
    elif config.truth is not None:
        truth = read_fits_image(config.truth)
        if config.resize is not None:
            truth = resize_image(truth, config.resize)
        if config.normalise:
            truth = prepare_protocol_image(truth, flip=config.flip)
        elif config.flip:
            truth = np.flipud(truth)
    arrays = {}
    if config.is_observed:
        observed = read_visibilities(config.visibilities)
        arrays.update(
            visibilities=observed.visibilities,
            visibility_sigma=observed.sigma,
            uv_points=observed.uv,
        )
    elif config.uv is not None:
        arrays["uv_points"] = read_uv_points(config.uv)
    if config.mask is not None and config.mask != DEMO:
        arrays["mask"] = read_fourier_mask(config.mask, shape=problem_image_shape(config, truth))
    return build_problem(jax.random.key(config.seed), config, truth=truth, **arrays)


def _summary(config, problem, result, figures, *, is_observed: bool) -> dict:
    """The content of ``results.json``."""
    image = np.asarray(result.map_result.image)
    return {
        "prior": config.prior,
        "status": result.status,
        "strength": result.strength,
        "strength_rule": result.strength_rule,
        "discrepancy_ratio": None
        if result.strength_result is None
        else result.strength_result.discrepancy_ratio,
        "snr_db": result.snr_db,
        "map_potential": result.map_result.potential,
        "map_status": result.map_result.status,
        "map_iterations": result.map_result.num_iterations,
        "gamma_alpha": None if result.hpd is None else result.hpd.gamma_alpha,
        "alpha": config.alpha,
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": is_observed,
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


def _write_outputs(out: Path, config, problem, result, *, no_plots: bool = False) -> list[Path]:
    """FITS images and figures; returns the figure paths."""
    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.io.imaging_files import write_fits_image

    image = np.asarray(result.map_result.image)
    write_fits_image(
        out / "map.fits", image, header={"PRIOR": config.prior, "STRENGTH": result.strength}
    )
    write_fits_image(out / "dirty.fits", np.asarray(result.dirty))
    for lci in result.intervals:
        size = lci.superpixel_size
        write_fits_image(out / f"lci_length_{size}x{size}.fits", np.asarray(lci.length))
    return write_imaging_figures(
        out,
        result,
        truth=problem.truth,
        test_regions=config.test_regions,
        prior=config.prior,
        no_plots=no_plots,
    )


def _run_unrolled(config, file_config, problem, out: Path, *, no_plots: bool) -> int:
    """``[prior] kind = "unrolled"``: the learned network; same files as a MAP run."""
    from types import SimpleNamespace

    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.imaging.unrolled import run_unrolled_imaging
    from astrobayes.io import write_json_atomic
    from astrobayes.io.imaging_files import write_fits_image
    from astrobayes.io.unrolled_files import read_unrolled

    weights = read_unrolled(config.unrolled_weights)
    result = run_unrolled_imaging(
        weights.network,
        problem.operator,
        problem.visibilities,
        problem.sigma,
        truth=problem.truth,
    )
    out.mkdir(parents=True, exist_ok=True)
    image = np.asarray(result.image)
    write_fits_image(out / "map.fits", image, header={"PRIOR": "unrolled"})
    write_fits_image(out / "dirty.fits", np.asarray(result.dirty))
    view = SimpleNamespace(  # the figure writer's view of a MAP result
        map_result=result, dirty=result.dirty, snr_db=result.snr_db, intervals=(), tests=()
    )
    figures = write_imaging_figures(
        out, view, truth=problem.truth, prior="unrolled", no_plots=no_plots
    )
    summary = {
        "prior": "unrolled",
        "status": result.status,
        "snr_db": result.snr_db,
        "discrepancy_ratio": result.discrepancy_ratio,
        "weights": str(weights.path),
        "network": dataclasses.asdict(weights.network.settings),
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": file_config.data.is_observed,
        "image_shape": list(image.shape),
        "timings": result.timings,
        "figures": [p.name for p in figures],
    }
    write_json_atomic(out / "results.json", summary)
    snr = "" if result.snr_db is None else f", SNR {result.snr_db:.2f} dB"
    print(
        f"astrobayes image: unrolled network{snr}; data residual ratio "
        f"{result.discrepancy_ratio:.3g}; status {result.status.name.lower()}; "
        f"wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1


def run(args: argparse.Namespace) -> int:
    """Run the ``image`` command; return the exit code."""
    from astrobayes.imaging.pipeline import run_imaging
    from astrobayes.io import write_json_atomic
    from astrobayes.io.imaging_files import read_convex_ridge

    if args.demo == (args.config is not None):
        raise ValueError("give a CONFIG.toml or --demo (not both)")
    if args.demo:
        text, base = DEMO_CONFIG, Path.cwd()
    else:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        text, base = path.read_text(), path.parent
    file_config = load_config(text, base)
    config = file_config.imaging_config()
    problem = read_problem(file_config.data)
    if config.prior == "unrolled":
        return _run_unrolled(config, file_config, problem, Path(args.out), no_plots=args.no_plots)
    crr = read_convex_ridge(config.crr_weights) if config.prior == "crr" else None
    result = run_imaging(
        config, problem.operator, problem.visibilities, problem.sigma, truth=problem.truth, crr=crr
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _write_outputs(out, config, problem, result, no_plots=args.no_plots)
    summary = _summary(config, problem, result, figures, is_observed=file_config.data.is_observed)
    write_json_atomic(out / "results.json", summary)
    snr = "" if result.snr_db is None else f", SNR {result.snr_db:.2f} dB"
    gamma = "n/a" if result.hpd is None else f"{result.hpd.gamma_alpha:.6g}"
    print(
        f"astrobayes image: MAP ({config.prior}, strength {result.strength:.4g}){snr}; "
        f"gamma_alpha {gamma}; status {result.status.name.lower()}; wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1
