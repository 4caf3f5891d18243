"""Corner plots of posterior draws and evidence diagnostics (matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "corner_plot",
    "evidence_diagnostics_plot",
]


def corner_plot(
    samples: Mapping[str, np.ndarray] | np.ndarray,
    names: Sequence[str] | None = None,
    *,
    title: str | None = None,
    bins: int = 40,
    color: str = "C0",
):
    """Corner plot: 1-d histograms on the diagonal, 2-d 68%/95% contours below.

    Args:
        samples: ``{name: draws}`` (any shape, flattened) or an ``(n, dim)`` array.
        names: Parameter labels (required for an array input without names).
        title: Figure title.
        bins: Histogram bins.
        color: Matplotlib colour.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(samples, Mapping):
        names = list(samples) if names is None else list(names)
        data = np.stack([np.asarray(samples[n]).ravel() for n in names], axis=1)
    else:
        data = np.asarray(samples)
        names = [f"p{i}" for i in range(data.shape[1])] if names is None else list(names)
    dim = data.shape[1]
    fig, axes = plt.subplots(dim, dim, figsize=(2.2 * dim + 0.6, 2.2 * dim + 0.6), squeeze=False)
    for i in range(dim):
        for j in range(dim):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(data[:, i], bins=bins, color=color, histtype="stepfilled", alpha=0.6)
                mean, std = data[:, i].mean(), data[:, i].std()
                ax.set_title(f"{names[i]} = {mean:.3g} ± {std:.2g}", fontsize=8)
                ax.set_yticks([])
            else:
                _contours(ax, data[:, j], data[:, i], bins, color)
            if i == dim - 1:
                ax.set_xlabel(names[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif j > 0:
                ax.set_yticklabels([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _contours(ax, x, y, bins, color):
    hist, xe, ye = np.histogram2d(x, y, bins=bins)
    flat = np.sort(hist.ravel())[::-1]
    cumulative = np.cumsum(flat) / flat.sum()
    levels = sorted(
        {flat[min(np.searchsorted(cumulative, q), flat.size - 1)] for q in (0.95, 0.68)}
    )
    xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
    ax.plot(x[:: max(len(x) // 2000, 1)], y[:: max(len(y) // 2000, 1)], ",", color=color, alpha=0.3)
    if len(levels) >= 1 and hist.max() > 0:
        ax.contour(xc, yc, hist.T, levels=[*levels, hist.max() + 1], colors=color, linewidths=1)


def evidence_diagnostics_plot(results: Mapping[str, object]):
    """Per-chain ln z estimates with the combined estimate, and flow training curves.

    Args:
        results: ``{model name: EvidenceResult}``.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 6), squeeze=False)
    for k, name in enumerate(names):
        r = results[name]
        ax = axes[0, k]
        per_chain = np.asarray(r.per_chain_log_evidence)
        ax.plot(np.arange(per_chain.size), per_chain, "o", color="C0", label="per chain")
        ax.axhline(r.log_evidence, color="k", label="combined")
        ax.axhspan(
            r.log_evidence - r.log_evidence_std,
            r.log_evidence + r.log_evidence_std,
            color="k",
            alpha=0.15,
            label="±1σ",
        )
        ax.set_title(
            f"{name}: ln z = {r.log_evidence:.3f} ± {r.log_evidence_std:.3f}\n"
            f"T = {r.temperature}, k̂ = {r.pareto_k:.2f}, {r.status.name.lower()}",
            fontsize=8,
        )
        ax.set_xlabel("inference chain")
        ax.set_ylabel("ln z")
        ax.legend(fontsize=7)
        ax = axes[1, k]
        losses = np.asarray(r.training_losses)
        if losses.size:
            ax.plot(np.arange(1, losses.size + 1), losses, color="C1")
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation NLL")
        else:
            ax.text(0.5, 0.5, "no training (Gaussian target)", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig
