"""Plots of calibration checks: coverage curves (expected coverage, TARP) and SBC rank histograms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from astrobayes.plots.style import add_caption

__all__ = ["plot_coverage", "plot_rank_histograms"]


def plot_coverage(report, ax=None):
    """Plot expected coverage and TARP ECP against the nominal level.

    Args:
        report: A :class:`astrobayes.validation.CalibrationReport`.
        ax: Optional matplotlib axes.

    Returns:
        The matplotlib figure.

    """
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="calibrated")
    if report.coverage is not None:
        c = report.coverage
        ax.fill_between(c.levels, c.coverage_low, c.coverage_high, color="C0", alpha=0.25, lw=0)
        ax.plot(c.levels, c.coverage, color="C0", label="expected coverage (HPD)")
    t = report.tarp
    ax.plot(t.levels, t.ecp, color="C1", label="TARP")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("empirical coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.03, 0.92, "calibrated" if report.is_calibrated else "FLAGGED", transform=ax.transAxes)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("calibration: coverage of posterior credible regions")
    fig.tight_layout()
    add_caption(
        fig,
        [
            "Share of true parameters inside each credible level.",
            "Warning sign: below the diagonal (over-confident) or above it (under-confident).",
        ],
    )
    return fig


def plot_rank_histograms(sbc, names: Sequence[str] | None = None, num_bins: int = 20):
    """Plot SBC rank histograms with the 99% band of a uniform histogram.

    Args:
        sbc: An :class:`astrobayes.validation.SBCResult`.
        names: Parameter names.
        num_bins: Histogram bins.

    Returns:
        The matplotlib figure.

    """
    import matplotlib.pyplot as plt

    ranks = np.asarray(sbc.ranks)
    n, dim = ranks.shape
    names = list(names) if names is not None else [f"theta_{j}" for j in range(dim)]
    fig, axes = plt.subplots(1, dim, figsize=(3.0 * dim, 2.6), squeeze=False)
    edges = np.linspace(0, sbc.num_posterior_samples + 1, num_bins + 1)
    expected = n / num_bins
    low, high = stats.binom.ppf([0.005, 0.995], n, 1.0 / num_bins)
    for j, ax in enumerate(axes[0]):
        ax.axhspan(low, high, color="0.85")
        ax.axhline(expected, color="0.5", lw=1)
        ax.hist(ranks[:, j], bins=edges, color="C0", alpha=0.8)
        ax.set_title(names[j], fontsize=9)
        ax.set_xlabel("rank")
    axes[0][0].set_ylabel("count")
    fig.suptitle("simulation-based calibration: rank of the truth among posterior draws")
    fig.tight_layout()
    add_caption(
        fig,
        [
            "Grey: 99% band of a uniform histogram. Warning sign: ∪ shape (over-confident), "
            "∩ shape (under-confident), a slope (bias).",
        ],
    )
    return fig
