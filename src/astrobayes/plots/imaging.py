"""Figures for imaging: dirty / MAP / error panels, LCI maps, hypothesis-test panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_hypothesis_test", "plot_lci", "plot_reconstruction"]


def _figure(ncols: int, width: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, width), squeeze=False)
    return plt, fig, axes[0]


def _show(fig, ax, image, title, cmap="cubehelix", vmin=None, vmax=None):
    im = ax.imshow(np.asarray(image), cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_reconstruction(
    path: str | Path,
    dirty: np.ndarray,
    estimate: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    snr_db: float | None = None,
) -> Path:
    """Save dirty image, MAP and (with the truth) truth and error panels.

    Args:
        path: Output PNG.
        dirty: Dirty image.
        estimate: MAP image.
        truth: Optional ground truth.
        snr_db: Optional SNR for the title.

    Returns:
        The path written.
    """
    panels = [(dirty, "dirty image")]
    title = "MAP" if snr_db is None else f"MAP (SNR {snr_db:.2f} dB)"
    panels.append((estimate, title))
    if truth is not None:
        panels = (
            [(truth, "truth")]
            + panels
            + [(np.asarray(truth) - np.asarray(estimate), "truth - MAP")]
        )
    plt, fig, axes = _figure(len(panels))
    for ax, (image, label) in zip(axes, panels, strict=True):
        _show(fig, ax, image, label, cmap="RdBu_r" if label == "truth - MAP" else "cubehelix")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lci(path: str | Path, intervals) -> Path:
    """Save MAP super-pixel means, LCI lengths and bound status for one super-pixel size.

    Args:
        path: Output PNG.
        intervals: A :class:`~astrobayes.imaging.intervals.LocalCredibleIntervals`.

    Returns:
        The path written.
    """
    plt, fig, axes = _figure(3)
    size = intervals.superpixel_size
    _show(fig, axes[0], intervals.map_mean, f"MAP mean, {size}x{size} super-pixels")
    _show(
        fig, axes[1], intervals.length, f"LCI length (mean {float(np.mean(intervals.length)):.3g})"
    )
    status = np.asarray(intervals.lower_status) + 3 * np.asarray(intervals.upper_status)
    _show(fig, axes[2], status, "bound status (0: both converged)", cmap="viridis")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_hypothesis_test(
    path: str | Path, estimate: np.ndarray, surrogate: np.ndarray, result
) -> Path:
    """Save the MAP, the surrogate and the conclusion of a hypothesis test.

    Args:
        path: Output PNG.
        estimate: MAP image.
        surrogate: Image with the structure removed.
        result: A :class:`~astrobayes.imaging.uq.HypothesisTestResult`.

    Returns:
        The path written.
    """
    plt, fig, axes = _figure(3)
    vmax = float(np.max(estimate))
    _show(fig, axes[0], estimate, "MAP", vmin=0, vmax=vmax)
    _show(fig, axes[1], surrogate, "surrogate (structure removed)", vmin=0, vmax=vmax)
    _show(
        fig,
        axes[2],
        np.asarray(estimate) - np.asarray(surrogate),
        "removed structure",
        cmap="RdBu_r",
    )
    verdict = "reject H0: structure is physical" if result.reject_null else "cannot reject H0"
    fig.suptitle(
        f"U(surrogate) = {result.potential_surrogate:.5g}, gamma = {result.gamma_alpha:.5g}: {verdict}"
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
