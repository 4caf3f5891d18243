"""One figure style for the package: a colour-blind-safe palette, captions, colour bars.

Every figure module draws through these helpers, so that all figures share the palette
of Okabe & Ito (2008, "Color Universal Design"), distinguishable under the common forms
of colour blindness; a title that says what is shown and for which model; a caption
line under the axes saying what the panel shows and what would be a warning sign; and,
on every image, a colour bar with the quantity and its unit. Sequential images use
``cividis`` (perceptually uniform and colour-blind safe); signed images (residuals,
differences) use the diverging ``RdBu_r`` centred on zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

__all__ = [
    "DIVERGING_CMAP",
    "PALETTE",
    "SEQUENTIAL_CMAP",
    "add_caption",
    "add_title",
    "color_cycle",
    "figure_style",
    "image_panel",
    "new_figure",
]

PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (last: weak on white)
)
"""Okabe–Ito colours, in the order models are drawn."""

SEQUENTIAL_CMAP = "cividis"
DIVERGING_CMAP = "RdBu_r"

_RC = {
    "axes.prop_cycle": None,  # set in figure_style (needs matplotlib's cycler)
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "image.cmap": SEQUENTIAL_CMAP,
    "axes.grid": False,
    "mathtext.fontset": "cm",
}


def color_cycle(n: int) -> list[str]:
    """The first ``n`` palette colours (repeating after eight).

    Example:
        >>> color_cycle(2)
        ['#0072B2', '#D55E00']

    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


@contextmanager
def figure_style() -> Iterator[None]:
    """Matplotlib settings of the package's figures, inside a ``with`` block (Agg backend).

    Example:
        >>> with figure_style():
        ...     fig = new_figure(1, 1)[0]

    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from cycler import cycler

    rc = dict(_RC)
    rc["axes.prop_cycle"] = cycler(color=list(PALETTE))
    with matplotlib.rc_context(rc):
        yield


def new_figure(nrows: int, ncols: int, *, width: float = 4.0, height: float = 3.2, **kwargs):
    """``(figure, axes)`` with ``axes`` a 2-d array of shape ``(nrows, ncols)``.

    Args:
        nrows: Rows of panels.
        ncols: Columns of panels.
        width: Width of one panel in inches.
        height: Height of one panel in inches.
        **kwargs: Passed to :func:`matplotlib.pyplot.subplots`.

    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs
    )
    return fig, axes


def add_caption(fig, lines: Sequence[str], *, fontsize: float = 8.0) -> None:
    """Write caption lines under the panels (and make room for them).

    Args:
        fig: A matplotlib figure, laid out already.
        lines: One line per panel: what it shows; what would be a warning sign.
        fontsize: Font size of the caption.

    """
    lines = [str(line) for line in lines if line]
    if not lines:
        return
    height = fig.get_figheight()
    extra = (0.17 * len(lines) + 0.12) * fontsize / 8.0
    total = height + extra
    boxes = [(axis, axis.get_position()) for axis in fig.axes]
    fig.set_figheight(total)
    for axis, box in boxes:  # keep every panel's size in inches; room opens at the bottom
        axis.set_position(
            [box.x0, (box.y0 * height + extra) / total, box.width, box.height * height / total]
        )
    for text in fig.texts:  # suptitle and other figure text keep their place too
        x, y = text.get_position()
        text.set_position((x, (y * height + extra) / total))
    fig.text(
        0.01,
        0.01,
        "\n".join(lines),
        ha="left",
        va="bottom",
        fontsize=fontsize,
        wrap=True,
    )


def add_title(fig, title: str, *, fontsize: float = 11.0) -> None:
    """Put a title above the panels, making room for it (panels keep their size in inches).

    For figures laid out by another library (GetDist), where a ``suptitle`` would overlap
    the top panels or fall outside the figure.

    Args:
        fig: A matplotlib figure, laid out already.
        title: The title.
        fontsize: Its font size.

    """
    height = fig.get_figheight()
    extra = 0.45 * fontsize / 11.0
    total = height + extra
    boxes = [(axis, axis.get_position()) for axis in fig.axes]
    fig.set_figheight(total)
    for axis, box in boxes:
        axis.set_position([box.x0, box.y0 * height / total, box.width, box.height * height / total])
    for text in fig.texts:
        x, y = text.get_position()
        text.set_position((x, y * height / total))
    for legend in fig.legends:
        anchor = legend.get_bbox_to_anchor().transformed(fig.transFigure.inverted())
        legend.set_bbox_to_anchor(
            (anchor.x0, anchor.y0 * height / total, anchor.width, anchor.height * height / total),
            transform=fig.transFigure,
        )
    fig.text(0.5, 1 - 0.5 * extra / total, title, ha="center", va="center", fontsize=fontsize)


def image_panel(
    fig,
    ax,
    image: np.ndarray,
    *,
    title: str,
    unit: str,
    signed: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
    pixel_unit: str = "pixel",
):
    """Show a 2-d image with a labelled colour bar (quantity and unit) and pixel axes.

    Args:
        fig: The figure.
        ax: The axes.
        image: 2-d array.
        title: What is shown, and for which model.
        unit: Colour-bar label with its unit, e.g. ``"intensity [Jy/pixel]"``.
        signed: Diverging colour map centred on zero (residuals, differences).
        vmin: Lower colour limit.
        vmax: Upper colour limit.
        cmap: Colour map (default: sequential or diverging as above).
        pixel_unit: Unit of the axes.

    Returns:
        The ``AxesImage``.

    Raises:
        ValueError: If ``image`` is not 2-d or ``unit`` is empty.

    Example:
        >>> import numpy as np
        >>> with figure_style():
        ...     fig, axes = new_figure(1, 1)
        ...     im = image_panel(fig, axes[0, 0], np.eye(3), title="t", unit="flux [Jy]")

    """
    image = np.asarray(image, dtype=float)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-d; got shape {image.shape}")
    if not unit:
        raise ValueError("unit must name the quantity and unit of the colour bar; got ''")
    if signed:
        finite = image[np.isfinite(image)]
        bound = float(np.max(np.abs(finite))) if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        vmin = -bound if vmin is None else vmin
        vmax = bound if vmax is None else vmax
    shown = ax.imshow(
        image,
        cmap=cmap or (DIVERGING_CMAP if signed else SEQUENTIAL_CMAP),
        vmin=vmin,
        vmax=vmax,
        origin="upper",
        interpolation="nearest",
    )
    ax.set_title(title)
    ax.set_xlabel(f"x [{pixel_unit}]")
    ax.set_ylabel(f"y [{pixel_unit}]")
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(unit)
    return shown
