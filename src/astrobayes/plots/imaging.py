"""Figures for imaging: reconstruction panels, local credible intervals, hypothesis tests.

Each function returns a matplotlib ``Figure`` (the CLI saves it atomically through
:mod:`astrobayes.cli._figures`); every image panel has a title, pixel axes and a colour
bar naming the quantity and its unit (the package style, :mod:`astrobayes.plots.style`).
Intensities carry the unit of the input image (``unit``; images normalised by the imaging
protocol are in arbitrary units). Super-pixel maps are drawn in super-pixels.
"""

from __future__ import annotations

import numpy as np

from astrobayes.plots.style import add_caption, figure_style, image_panel, new_figure

__all__ = ["hypothesis_test_figure", "lci_figure", "reconstruction_figure"]

DEFAULT_UNIT = "arb. units"


def reconstruction_figure(
    dirty: np.ndarray,
    estimate: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    snr_db: float | None = None,
    unit: str = DEFAULT_UNIT,
    prior: str | None = None,
):
    """Truth (if known), dirty image, MAP and (with the truth) the error, with colour bars.

    Args:
        dirty: Dirty image (back-projected visibilities).
        estimate: MAP image.
        truth: Optional ground truth.
        snr_db: Optional reconstruction SNR for the title.
        unit: Unit of the intensities.
        prior: Name of the prior (said in the MAP title).

    Returns:
        The matplotlib ``Figure``.

    Example:
        >>> import numpy as np
        >>> fig = reconstruction_figure(np.eye(4), np.eye(4), truth=np.eye(4))
        >>> [a.get_label() for a in fig.axes].count("<colorbar>")
        4

    """
    which = "MAP" if prior is None else f"MAP ({prior} prior)"
    title = which if snr_db is None else f"{which}, SNR {snr_db:.2f} dB"
    panels = [(dirty, "dirty image", f"dirty intensity [{unit}]", False)]
    panels.append((estimate, title, f"intensity [{unit}]", False))
    if truth is not None:
        error = np.asarray(truth) - np.asarray(estimate)
        panels = [
            (truth, "truth", f"intensity [{unit}]", False),
            *panels,
            (error, "truth − MAP", f"intensity difference [{unit}]", True),
        ]
    with figure_style():
        fig, axes = new_figure(1, len(panels), width=3.9, height=3.4)
        for ax, (image, label, bar, signed) in zip(axes[0], panels, strict=True):
            image_panel(fig, ax, image, title=label, unit=bar, signed=signed)
        fig.tight_layout()
        lines = ["Dirty image: the data back-projected; MAP: the reconstruction."]
        if truth is not None:
            lines.append(
                "truth − MAP: red over-, blue under-estimated. Warning sign: structure in the "
                "error that follows the source (bias) rather than noise."
            )
        add_caption(fig, lines)
    return fig


def lci_figure(intervals, *, unit: str = DEFAULT_UNIT):
    """Super-pixel MAP means, local credible interval lengths and bound status codes.

    Args:
        intervals: A :class:`~astrobayes.imaging.intervals.LocalCredibleIntervals`.
        unit: Unit of the intensities.

    Returns:
        The matplotlib ``Figure``.

    """
    size = intervals.superpixel_size
    length = np.asarray(intervals.length)
    status = np.asarray(intervals.lower_status) + 3 * np.asarray(intervals.upper_status)
    with figure_style():
        fig, axes = new_figure(1, 3, width=3.9, height=3.4)
        common = {"pixel_unit": f"super-pixel of {size}×{size}"}
        image_panel(
            fig,
            axes[0, 0],
            intervals.map_mean,
            title=f"MAP mean on {size}×{size} super-pixels",
            unit=f"mean intensity [{unit}]",
            **common,
        )
        image_panel(
            fig,
            axes[0, 1],
            length,
            title=f"credible-interval length (mean {float(np.mean(length)):.3g})",
            unit=f"interval length [{unit}]",
            **common,
        )
        image_panel(
            fig,
            axes[0, 2],
            status,
            title="bound status (0: both converged)",
            unit="code: lower + 3·upper (1 positivity, 2 open)",
            cmap="viridis",
            vmin=0,
            vmax=8,
            **common,
        )
        fig.tight_layout()
        add_caption(
            fig,
            [
                "Interval length: how far each super-pixel can move before the image leaves "
                "the credible region. Warning sign: open bounds (codes ≥ 2) over the source.",
            ],
        )
    return fig


def hypothesis_test_figure(
    estimate: np.ndarray, surrogate: np.ndarray, result, *, unit: str = DEFAULT_UNIT
):
    """The MAP, the surrogate with a structure removed, the removed structure and the verdict.

    Args:
        estimate: MAP image.
        surrogate: Image with the structure removed (inpainted).
        result: A :class:`~astrobayes.imaging.uq.HypothesisTestResult`.
        unit: Unit of the intensities.

    Returns:
        The matplotlib ``Figure``.

    """
    estimate = np.asarray(estimate)
    vmax = float(np.max(estimate))
    verdict = "reject H0: structure is physical" if result.reject_null else "cannot reject H0"
    with figure_style():
        fig, axes = new_figure(1, 3, width=3.9, height=3.4)
        image_panel(
            fig, axes[0, 0], estimate, title="MAP", unit=f"intensity [{unit}]", vmin=0, vmax=vmax
        )
        image_panel(
            fig,
            axes[0, 1],
            surrogate,
            title="surrogate (structure removed)",
            unit=f"intensity [{unit}]",
            vmin=0,
            vmax=vmax,
        )
        image_panel(
            fig,
            axes[0, 2],
            estimate - np.asarray(surrogate),
            title="removed structure",
            unit=f"intensity difference [{unit}]",
            signed=True,
        )
        fig.suptitle(
            f"U(surrogate) = {result.potential_surrogate:.5g} vs γ_α = "
            f"{result.gamma_alpha:.5g}: {verdict}"
        )
        fig.tight_layout()
        add_caption(
            fig,
            [
                "H0: the structure is not physical. Rejected when the surrogate's potential "
                "exceeds the credible-region threshold γ_α. Warning sign: a verdict that "
                "flips with the region drawn.",
            ],
        )
    return fig
