"""Write every figure the commands write, from built-in small examples, into one folder.

    python scripts/render_figures.py --out astrobayes-figures      # or: make figures
    python scripts/render_figures.py --out figs --quick            # smaller, a few minutes

Three examples, each through the same function the command uses
(``astrobayes.cli._figures``), so what a reviewer opens is what the commands write:

1. the dark-energy comparison of ``astrobayes demo`` (flat ΛCDM, wCDM, w0waCDM on DESI DR2
   BAO): GetDist triangle plots of each model and of all three on their shared
   parameters, the BAO data-versus-model figure and the comparison figure. NUTS and the
   evidence run for real, on fewer draws than the demo (``--quick``: fewer still, and a
   Gaussian importance target instead of the flow);
2. ``astrobayes image --demo``: reconstruction, local credible intervals per super-pixel
   size, hypothesis tests (skipped with ``--skip-imaging``);
3. the calibration figures of ``astrobayes sbi`` (coverage, SBC ranks) on an exact
   Gaussian posterior, which is calibrated by construction.

``OUT/index.md`` embeds every figure with its caption. Each figure is written atomically;
rerunning overwrites them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np


def dark_energy(out: Path, quick: bool, seed: int) -> dict[str, Path]:
    """Sample the three dark-energy models, estimate evidences, write their figures."""
    from astrobayes.cli._figures import write_comparison_figures
    from astrobayes.comparison import compare
    from astrobayes.cosmology import desi_dr2_bao
    from astrobayes.cosmology.dark_energy import dark_energy_models
    from astrobayes.evidence import GaussianTarget
    from astrobayes.sampling import NUTSConfig

    sampling = NUTSConfig(4, 300, 600) if quick else NUTSConfig(8, 400, 1000)
    models = dark_energy_models()
    result = compare(
        jax.random.key(seed),
        models,
        reference="lcdm",
        sampling=sampling,
        target=GaussianTarget() if quick else None,
    )
    return write_comparison_figures(out, result, models, data=desi_dr2_bao(), chains_dir="getdist")


def imaging(out: Path) -> dict[str, Path]:
    """Run the imaging demo configuration and write its figures."""
    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.cli.image import DEMO_CONFIG, load_config, read_problem
    from astrobayes.imaging.pipeline import run_imaging

    file_config = load_config(DEMO_CONFIG, Path.cwd())
    config = file_config.imaging_config()
    problem = read_problem(file_config.data)
    result = run_imaging(
        config, problem.operator, problem.visibilities, problem.sigma, truth=problem.truth
    )
    paths = write_imaging_figures(
        out, result, truth=problem.truth, test_regions=config.test_regions, prior=config.prior
    )
    return {p.stem: p for p in paths}


def calibration(out: Path, seed: int) -> dict[str, Path]:
    """Calibration figures of an exact (so calibrated) Gaussian posterior."""
    from astrobayes.cli._figures import write_sbi_figures
    from astrobayes.validation import calibration_report

    # theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2): the posterior is N(0.8 x, 0.2), exact.
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(300, 2))
    x = theta + 0.5 * rng.normal(size=theta.shape)
    mean, std = 0.8 * x, np.sqrt(0.2)
    draws = mean[:, None, :] + std * rng.normal(size=(300, 200, 2))

    def log_prob(value, centre):
        return -0.5 * (((value - centre) / std) ** 2).sum(-1)

    report = calibration_report(
        jax.random.key(seed),
        theta,
        draws,
        log_prob(theta, mean),
        log_prob(draws, mean[:, None, :]),
    )
    paths = write_sbi_figures(out, report, ["theta_0", "theta_1"])
    return {p.stem: p for p in paths}


def main() -> None:
    """Parse the arguments and write every figure and ``index.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="astrobayes-figures", help="output folder")
    parser.add_argument("--quick", action="store_true", help="fewer draws, Gaussian target")
    parser.add_argument("--skip-imaging", action="store_true", help="no imaging figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from astrobayes.cli._figures import figures_markdown
    from astrobayes.io import write_text_atomic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = ["# astrobayes figures", "", "Written by `scripts/render_figures.py`.", ""]
    steps = [("Dark energy: ΛCDM, wCDM, w0waCDM on DESI DR2 BAO", "dark_energy")]
    if not args.skip_imaging:
        steps.append(("Radio imaging (`astrobayes image --demo`)", "imaging"))
    steps.append(("SBI calibration on an exact Gaussian posterior", "calibration"))
    for title, name in steps:
        start = time.perf_counter()
        folder = out / name
        folder.mkdir(exist_ok=True)
        if name == "dark_energy":
            written = dark_energy(folder, args.quick, args.seed)
        elif name == "imaging":
            written = imaging(folder)
        else:
            written = calibration(folder, args.seed)
        sections += [figures_markdown(written, out).replace("## Figures", f"## {title}"), ""]
        print(f"{name}: {len(written)} files in {folder} ({time.perf_counter() - start:.0f} s)")
    write_text_atomic(out / "index.md", "\n".join(sections) + "\n")
    print(f"wrote {out / 'index.md'}")


if __name__ == "__main__":
    main()
