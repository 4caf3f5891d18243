import jax
import numpy as np

from astrobayes.plots.validation import plot_coverage, plot_rank_histograms
from astrobayes.validation import calibration_report


def test_plots_build(tmp_path):
    rng = np.random.default_rng(0)
    theta, draws = rng.normal(size=(100, 2)), rng.normal(size=(100, 50, 2))
    report = calibration_report(
        jax.random.key(0), theta, draws, -0.5 * (theta**2).sum(-1), -0.5 * (draws**2).sum(-1)
    )
    plot_coverage(report).savefig(tmp_path / "coverage.png")
    plot_rank_histograms(report.sbc, ("a", "b")).savefig(tmp_path / "ranks.png")
    assert (tmp_path / "coverage.png").stat().st_size > 0
