"""``astrobayes texture TARGET.fits --out DIR``: new sky maps with the target's statistics.

Reads a HEALPix map (RING order, as ``healpy.write_map`` writes it), draws
``--num-samples`` maps whose scattering covariances match it (microcanonical gradient
descent, Mousset et al. 2024, arXiv:2407.08687) at band limit ``L = 2 nside``, and writes
into ``DIR``:

* ``samples.fits``: the samples, one map per column (``healpy.read_map(path, field=None)``),
* ``validation.json``: band-power ratios, pixel skewness and kurtosis, Minkowski
  functionals of target, samples and a Gaussian field with the target's C_ell, the checks
  of issue 11, the run's status, losses and timing,
* ``maps.png`` (Mollweide views) and ``statistics.png`` (validation panels), unless
  ``--no-plots``.

Runs offline. Bad input (not a HEALPix map, NaN pixels, unsupported nside, a mask of
another size) is refused with a message.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    """Register the ``texture`` subcommand."""
    parser = subparsers.add_parser(
        "texture",
        help="generative textures on the sphere from one HEALPix map",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help="HEALPix FITS map (RING order)")
    parser.add_argument("--out", default="texture_output", help="output folder")
    parser.add_argument("--num-samples", type=int, default=4, help="maps to draw (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--num-steps", type=int, default=300, help="L-BFGS steps (default 300)")
    parser.add_argument(
        "--moment-weight",
        type=float,
        default=0.0,
        help="weight of the one-point term on pixel skewness and kurtosis (default 0: off; "
        "when on, those moments are constrained and no longer an independent check)",
    )
    parser.add_argument("--field", type=int, default=0, help="FITS column of the map (default 0)")
    parser.add_argument("--mask", default=None, help="HEALPix mask FITS (1 = keep), same nside")
    parser.add_argument("--unit", default=None, help="unit of the map (default: from the file)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; return the exit code (1 when the synthesis failed)."""
    import jax

    from astrobayes.cli._common import ProgressBar
    from astrobayes.io import save_figure_atomic, software_provenance, write_json_atomic
    from astrobayes.io.healpix import read_healpix_map, read_healpix_mask, write_healpix_maps
    from astrobayes.plots.sphere import texture_maps_figure, texture_statistics_figure
    from astrobayes.sphere import (
        SphereGrid,
        TextureConfig,
        comparison_field,
        generate_textures,
        validate_textures,
    )

    config = TextureConfig(
        num_samples=args.num_samples, num_steps=args.num_steps, moment_weight=args.moment_weight
    )
    mask = read_healpix_mask(args.mask) if args.mask else None
    target, nside, file_unit = read_healpix_map(args.target, field=args.field, mask=mask)
    unit = file_unit if args.unit is None else args.unit
    jax.config.update("jax_enable_x64", True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = SphereGrid(2 * nside, "healpix", nside=nside)
    sample_key, check_key = jax.random.split(jax.random.key(args.seed))
    with ProgressBar("texture", disable=args.no_progress) as bar:
        result = generate_textures(sample_key, target, grid, config=config, progress_fn=bar)
    samples = np.asarray(result.samples)
    gaussian = comparison_field(check_key, target, grid)
    report = validate_textures(check_key, target, samples, grid, gaussian=gaussian)
    report.update(
        target=str(args.target),
        unit=unit,
        status=result.status,
        loss=result.loss,
        num_steps_run=int(result.loss_history.size),
        num_statistics=result.num_statistics,
        seconds=result.seconds,
        config=dataclasses.asdict(config),
        seed=args.seed,
    )
    write_healpix_maps(out / "samples.fits", samples, unit=unit)
    report["provenance"] = software_provenance()
    write_json_atomic(out / "validation.json", report)
    written = ["samples.fits", "validation.json"]
    if not args.no_plots:
        figure = texture_maps_figure(target, samples, gaussian, unit=unit, mask=mask)
        save_figure_atomic(out / "maps.png", figure)
        save_figure_atomic(out / "statistics.png", texture_statistics_figure(report, unit=unit))
        written += ["maps.png", "statistics.png"]
    print(f"texture: {result.status.value} ({result.seconds:.0f} s, nside {nside})")
    for name, passed in report["checks"].items():
        print(f"  {name}: {'yes' if passed else 'no'}")
    print(f"wrote {', '.join(written)} in {out}")
    return 1 if result.status.is_failure else 0
