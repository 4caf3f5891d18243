"""Figures of issue 18: mass maps with their uncertainty, per variational family."""

from __future__ import annotations

import numpy as np

from astrobayes.plots.style import image_panel, new_figure

__all__ = ["massmap_figure"]


def massmap_figure(
    truth: np.ndarray,
    exact_mean: np.ndarray,
    exact_std: np.ndarray,
    fits: dict,
    *,
    reference: str = "Wiener filter (exact)",
):
    """Truth, the reference posterior and each variational family's mean and std (one row each).

    Args:
        truth: True convergence map, 2-d.
        exact_mean: Reference posterior mean map (the Wiener filter, or MCMC).
        exact_std: Reference posterior standard deviation map.
        fits: ``{family name: (mean map, std map)}``.
        reference: Name of the reference row.

    Returns:
        The matplotlib figure.

    Example:
        >>> import numpy as np
        >>> fig = massmap_figure(np.zeros((4, 4)), np.zeros((4, 4)), np.ones((4, 4)),
        ...     {"mean-field": (np.zeros((4, 4)), np.ones((4, 4)))})
        >>> len(fig.axes) >= 6
        True

    """
    rows = [(reference, exact_mean, exact_std)] + [
        (name, mean, std) for name, (mean, std) in fits.items()
    ]
    fig, axes = new_figure(len(rows), 3)
    limit = float(np.max(np.abs(truth)))
    std_max = float(max(np.max(std) for _, _, std in rows))
    for row, (name, mean, std) in enumerate(rows):
        image_panel(
            fig,
            axes[row, 0],
            truth,
            title="truth",
            unit="kappa",
            signed=True,
            vmin=-limit,
            vmax=limit,
        )
        image_panel(
            fig,
            axes[row, 1],
            mean,
            title=f"{name}: mean",
            unit="kappa",
            signed=True,
            vmin=-limit,
            vmax=limit,
        )
        image_panel(
            fig, axes[row, 2], std, title=f"{name}: std", unit="kappa", vmin=0, vmax=std_max
        )
    return fig
