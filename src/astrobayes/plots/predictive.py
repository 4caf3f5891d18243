r"""Data against posterior predictions for any Gaussian likelihood: bands and whitened residuals.

For a model with ``ln L = ln N(y | m(theta), C)``, the figure shows the data ``y`` with 1σ
error bars (diagonal of ``C``) against each model's posterior-predictive median and
68%/95% bands of ``m(theta)`` (from posterior draws), and below it the residuals of the
median whitened by the full covariance, :math:`L^{-1}(y - m)` with :math:`C = L L^T`:
independent unit normals when the model fits. :math:`\chi^2` per model is in the legend.
The BAO figure (:mod:`astrobayes.plots.bao`) is the same picture in the DESI layout.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from astrobayes.plots.style import add_caption, color_cycle, figure_style, new_figure

__all__ = ["plot_data_vs_model", "predictive_draws", "whitened_residuals"]


def predictive_draws(
    posterior: Mapping[str, np.ndarray], mean_fn, *, num_draws: int = 300
) -> np.ndarray:
    """``mean_fn(params)`` at up to ``num_draws`` posterior draws (evenly spaced), ``(draws, n)``.

    Args:
        posterior: ``{name: draws}`` (any shape per name, flattened), e.g.
            :attr:`astrobayes.comparison.ModelReport.posterior`.
        mean_fn: A JAX function ``{name: scalar} -> (n,)`` model mean (vmapped and jitted).
        num_draws: Largest number of draws used.

    Returns:
        The model means, shape ``(draws, n)``.

    Example:
        >>> import numpy as np
        >>> out = predictive_draws({"a": np.arange(10.0)}, lambda p: p["a"] * np.ones(3), num_draws=4)
        >>> out.shape
        (4, 3)

    """
    import jax

    flat = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in posterior.items()}
    sizes = {v.size for v in flat.values()}
    if len(sizes) != 1:
        raise ValueError(f"every parameter of posterior must have as many draws; got {sizes}")
    size = sizes.pop()
    index = np.unique(np.linspace(0, size - 1, min(num_draws, size)).round().astype(int))
    values = {k: v[index] for k, v in flat.items()}
    return np.asarray(jax.jit(jax.vmap(mean_fn))(values), dtype=np.float64)


def whitened_residuals(y: np.ndarray, prediction: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    r""":math:`L^{-1}(y - m)` with :math:`C = L L^T` (Cholesky); a 1-d ``covariance`` is the variances.

    Example:
        >>> whitened_residuals(np.array([1.0, 2.0]), np.zeros(2), np.array([1.0, 4.0]))
        array([1., 1.])

    """
    y = np.asarray(y, dtype=float)
    cov = np.asarray(covariance, dtype=float)
    if cov.ndim == 1:
        cov = np.diag(cov)
    if cov.shape != (y.size, y.size):
        raise ValueError(f"covariance must be ({y.size}, {y.size}) or ({y.size},); got {cov.shape}")
    lower = np.linalg.cholesky(cov)
    return np.linalg.solve(lower, y - np.asarray(prediction, dtype=float))


def plot_data_vs_model(
    x: np.ndarray,
    y: np.ndarray,
    covariance: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    x_label: str = "x",
    y_label: str = "y",
    title: str | None = None,
):
    """Data with error bars, each model's predictive median and 68/95% bands, whitened residuals.

    Args:
        x: Abscissa of each data point, shape ``(n,)``.
        y: Data, shape ``(n,)``.
        covariance: Covariance ``(n, n)`` or variances ``(n,)`` of ``y``.
        predictions: ``{model name: (num_draws, n)}`` model means ``m(theta)`` at posterior
            draws.
        x_label: Axis label of ``x`` (with unit).
        y_label: Axis label of ``y`` (with unit).
        title: Figure title.

    Returns:
        The matplotlib ``Figure`` (two panels).

    Raises:
        ValueError: On shapes that disagree or no model.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0, 1, 5)
        >>> draws = 2 * x + 0.01 * np.random.default_rng(0).normal(size=(50, 5))
        >>> fig = plot_data_vs_model(x, 2 * x, np.full(5, 0.01), {"line": draws})
        >>> len(fig.axes)
        2

    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d of one shape; got {x.shape} and {y.shape}")
    if not predictions:
        raise ValueError("predictions must hold at least one model; got none")
    cov = np.asarray(covariance, dtype=float)
    errors = np.sqrt(np.diag(cov) if cov.ndim == 2 else cov)
    order = np.argsort(x, kind="stable")
    colors = color_cycle(len(predictions))
    with figure_style():
        fig, axes = new_figure(2, 1, width=6.0, height=2.6, sharex=True)
        top, bottom = axes[0, 0], axes[1, 0]
        for color, (name, draws) in zip(colors, predictions.items(), strict=True):
            draws = np.asarray(draws, dtype=float)
            if draws.ndim != 2 or draws.shape[1] != y.size:
                raise ValueError(
                    f"predictions[{name!r}] must have shape (num_draws, {y.size}); got {draws.shape}"
                )
            lo95, lo68, mid, hi68, hi95 = np.percentile(draws, [2.5, 16, 50, 84, 97.5], axis=0)
            top.fill_between(x[order], lo95[order], hi95[order], color=color, alpha=0.18, lw=0)
            top.fill_between(x[order], lo68[order], hi68[order], color=color, alpha=0.35, lw=0)
            top.plot(x[order], mid[order], color=color, lw=1.3, label=f"{name}: median, 68/95%")
            white = whitened_residuals(y, mid, cov)
            bottom.plot(
                x,
                white,
                "o",
                color=color,
                ms=4,
                label=f"{name}: $\\chi^2$ = {float(white @ white):.1f} ({y.size} points)",
            )
        top.errorbar(x, y, yerr=errors, fmt="o", color="k", ms=4, capsize=2, label="data (1σ)")
        top.set_ylabel(y_label)
        top.legend(loc="best")
        top.set_title(title or "data against the posterior predictions")
        bottom.axhspan(-1, 1, color="0.85", lw=0)
        bottom.axhspan(-2, 2, color="0.93", lw=0, zorder=-1)
        bottom.axhline(0, color="0.4", lw=0.8)
        bottom.set_xlabel(x_label)
        bottom.set_ylabel("whitened residual")
        bottom.legend(loc="best")
        fig.tight_layout()
        add_caption(
            fig,
            [
                "Top: data with 1σ errors; lines and bands: posterior-predictive median, 68%, 95%.",
                "Bottom: residuals whitened by the full covariance (shaded ±1, ±2). Warning "
                "sign: points outside the bands, or χ² well above the number of points.",
            ],
        )
    return fig
