r"""Triangle plots through GetDist: smoothed 68/95% contours, LaTeX labels, prior edges.

GetDist (Lewis 2019, arXiv:1910.13970) is the field's standard: kernel density
estimates with an optimised bandwidth, boundary correction at hard prior edges
(``ranges``), filled 68% and 95% contours and marker lines. :func:`to_mcsamples` turns
our draws (a :class:`~astrobayes.chains.Chains`, an array, or the ``{name: draws}`` of a
:class:`~astrobayes.comparison.ModelReport`) into a ``getdist.MCSamples`` with the same
settings GetDist uses when it loads the files written by
:func:`astrobayes.io.write_getdist_chains`, so the contours drawn here are the ones
``getdist.loadMCSamples(root)`` gives. :func:`triangle_plot` draws one or several
models (overlaid on their shared parameters), reference markers (e.g. ΛCDM's
:math:`w_0 = -1`, :math:`w_a = 0`) and the hard prior edges that lie inside the plotted
range, where a posterior that piles up against its prior shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from astrobayes.chains import Chains
from astrobayes.plots.style import add_caption, add_title, color_cycle, figure_style

__all__ = ["GETDIST_SETTINGS", "shared_parameters", "to_mcsamples", "triangle_plot"]

GETDIST_SETTINGS: Mapping[str, object] = {
    "ignore_rows": 0,  # warm-up is already dropped by our samplers
    "smooth_scale_1D": -1,  # GetDist's optimised bandwidth
    "smooth_scale_2D": -1,
    "boundary_correction_order": 1,  # linear boundary correction at prior edges
    "mult_bias_correction_order": 1,
    "fine_bins_2D": 256,
}
"""Analysis settings of every :class:`getdist.MCSamples` we build; pass the same to
``getdist.loadMCSamples(root, settings=GETDIST_SETTINGS)`` to reproduce a figure."""


def to_mcsamples(
    posterior: Chains | np.ndarray | Mapping[str, np.ndarray],
    *,
    names: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    weights: np.ndarray | None = None,
    label: str | None = None,
    settings: Mapping[str, object] | None = None,
):
    r"""Our draws as a ``getdist.MCSamples`` (one GetDist chain per chain).

    Args:
        posterior: A :class:`~astrobayes.chains.Chains`, draws ``(num_chains,
            num_samples, dim)`` (or ``(num_samples, dim)``), or ``{name: (num_chains,
            num_samples)}`` (or ``(num_samples,)``).
        names: Parameter names (required for an array; else a subset/order).
        labels: ``{name: LaTeX}`` without ``$``; a missing name is its own label.
        ranges: ``{name: (low, high)}`` hard prior edges (``None`` for an open side).
        weights: ``(num_chains, num_samples)`` weights (default: those of ``Chains``,
            else ones); draws of zero weight are dropped.
        label: Legend label of these samples (e.g. the model name).
        settings: GetDist analysis settings (default :data:`GETDIST_SETTINGS`).

    Returns:
        A ``getdist.MCSamples``.

    Raises:
        ValueError: On shapes that disagree, unknown names or non-finite draws.
        TypeError: If ``posterior`` is none of the accepted types.

    Example:
        >>> import numpy as np
        >>> draws = np.random.default_rng(1).normal(size=(2, 400, 2))
        >>> samples = to_mcsamples(draws, names=["x", "y"], labels={"x": r"\alpha"},
        ...                        ranges={"x": (-5.0, 5.0)})
        >>> samples.getParamNames().list(), samples.parLabel("x")
        (['x', 'y'], '\\alpha')

    """
    from getdist import MCSamples, chains

    draws, chosen, default_weights = _as_draws(posterior, names)
    shape = draws.shape[:2]
    if weights is None:
        weights = np.ones(shape) if default_weights is None else default_weights
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1 and shape[0] == 1:
        weights = weights[None]
    if weights.shape != shape:
        raise ValueError(f"weights must have shape {shape} to match the draws; got {weights.shape}")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError("weights must be finite and non-negative")
    labels = {} if labels is None else dict(labels)
    used = [weights[c] > 0 for c in range(shape[0])]
    getdist_ranges = {}
    for name, (low, high) in (ranges or {}).items():
        if name in chosen:
            getdist_ranges[name] = [_finite_or_none(low), _finite_or_none(high)]
    loud, chains.print_load_details = chains.print_load_details, False  # "Removed no burn in"
    try:
        return MCSamples(
            samples=[draws[c][used[c]] for c in range(shape[0])],
            weights=[weights[c][used[c]] for c in range(shape[0])],
            names=list(chosen),
            labels=[str(labels.get(n, n)).strip("$") for n in chosen],
            ranges=getdist_ranges,
            label=label,
            settings=dict(GETDIST_SETTINGS if settings is None else settings),
        )
    finally:
        chains.print_load_details = loud


def shared_parameters(samples: Sequence) -> list[str]:
    """Parameter names present in every ``MCSamples`` of ``samples``, in the first's order.

    Example:
        >>> import numpy as np
        >>> a = to_mcsamples(np.zeros((10, 2)) + np.arange(10)[:, None], names=["x", "y"])
        >>> b = to_mcsamples(np.zeros((10, 1)) + np.arange(10)[:, None], names=["y"])
        >>> shared_parameters([a, b])
        ['y']

    """
    if not samples:
        return []
    common = [p.name for p in samples[0].getParamNames().names]
    for other in samples[1:]:
        present = {p.name for p in other.getParamNames().names}
        common = [n for n in common if n in present]
    return common


def triangle_plot(
    samples,
    params: Sequence[str] | None = None,
    *,
    legend_labels: Sequence[str] | None = None,
    markers: Mapping[str, float] | None = None,
    marker_label: str | None = None,
    title: str | None = None,
    caption: Sequence[str] | None = None,
    show_prior_edges: bool = True,
    width_inch: float | None = None,
):
    r"""A GetDist triangle plot of one or several posteriors, filled 68%/95% contours.

    Args:
        samples: One ``getdist.MCSamples`` (see :func:`to_mcsamples`) or a sequence
            of them, overlaid in the package's palette.
        params: Parameters to show (default: those shared by all samples).
        legend_labels: Legend entries (default: each sample's ``label``).
        markers: ``{name: value}`` reference lines (e.g. :data:`astrobayes.cosmology.
            LCDM_VALUES`); names not shown are ignored.
        marker_label: What the markers are (added to the legend), e.g. ``"ΛCDM"``.
        title: Figure title (what, for which model).
        caption: Caption lines under the figure.
        show_prior_edges: Draw each hard prior edge (from the samples' ranges) that lies
            inside the plotted range as a dotted grey line: a posterior that reaches
            it is cut by the prior, not by the data.
        width_inch: Figure width (default: GetDist's, by number of parameters).

    Returns:
        The matplotlib ``Figure`` (``plotter.fig``); save it with
        :func:`astrobayes.io.save_figure_atomic`.

    Raises:
        ValueError: If no parameter is shared or a requested one is missing.

    Example:
        >>> import numpy as np
        >>> draws = np.random.default_rng(2).normal(size=(1, 500, 2))
        >>> s = to_mcsamples(draws, names=["w0", "wa"], labels={"w0": "w_0", "wa": "w_a"})
        >>> fig = triangle_plot(s, markers={"w0": 0.0, "wa": 0.0}, title="test")
        >>> len(fig.axes) >= 3
        True

    """
    from getdist import plots

    group = list(samples) if isinstance(samples, list | tuple) else [samples]
    if not group:
        raise ValueError("samples must hold at least one MCSamples; got none")
    available = shared_parameters(group)
    if params is None:
        params = available
    params = list(params)
    missing = [p for p in params if p not in available]
    if missing:
        raise ValueError(f"params {missing} are not shared by every sample; shared: {available}")
    if not params:
        raise ValueError("the samples share no parameter; give params explicitly")
    labels = list(legend_labels) if legend_labels is not None else [s.label for s in group]
    colors = color_cycle(len(group))
    with figure_style():
        plotter = plots.get_subplot_plotter(width_inch=width_inch)
        plotter.settings.alpha_filled_add = 0.75
        plotter.settings.legend_fontsize = 9
        plotter.settings.axes_labelsize = 11
        plotter.settings.axes_fontsize = 8
        plotter.settings.num_plot_contours = 2  # 68% and 95%
        shown_markers = {k: float(v) for k, v in (markers or {}).items() if k in params}
        plotter.triangle_plot(
            group,
            params,
            filled=True,
            contour_colors=colors,
            legend_labels=labels if len(group) > 1 else None,
            markers=shown_markers or None,
            marker_args={"color": "0.25", "ls": "--", "lw": 1.0},
        )
        fig = plotter.fig
        drawn = _draw_prior_edges(plotter, group, params) if show_prior_edges else 0
        lines = list(caption or [])
        if shown_markers and marker_label:
            values = ", ".join(
                f"${group[0].parLabel(k)} = {v:g}$" for k, v in shown_markers.items()
            )
            lines.append(f"Dashed lines: {marker_label} ({values}).")
        if drawn:
            lines.append(
                "Dotted grey lines: hard prior edges; a posterior pressed against one is cut "
                "by the prior, not by the data."
            )
        if title:
            add_title(fig, title)
        add_caption(fig, lines)
    return fig


def _draw_prior_edges(plotter, group, params) -> int:
    """Dotted lines at the hard prior edges inside each panel's range; returns how many."""
    edges: dict[str, list[float]] = {}
    for s in group:
        for name in params:
            for value in (s.ranges.getLower(name), s.ranges.getUpper(name)):
                if value is not None and np.isfinite(value):
                    edges.setdefault(name, [])
                    if value not in edges[name]:
                        edges[name].append(float(value))
    drawn = 0
    for i, y_name in enumerate(params):
        for j, x_name in enumerate(params[: i + 1]):
            ax = plotter.subplots[i, j]
            if ax is None:
                continue
            lo, hi = ax.get_xlim()
            for value in edges.get(x_name, []):
                if lo <= value <= hi:
                    ax.axvline(value, color="0.5", ls=":", lw=1.2, zorder=0)
                    drawn += 1
            if i != j:
                lo, hi = ax.get_ylim()
                for value in edges.get(y_name, []):
                    if lo <= value <= hi:
                        ax.axhline(value, color="0.5", ls=":", lw=1.2, zorder=0)
                        drawn += 1
    return drawn


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _as_draws(posterior, names):
    """``(draws (c, n, d), names, weights or None)`` from the accepted input types."""
    if isinstance(posterior, Chains):
        available = tuple(posterior.names)
        chosen = available if names is None else tuple(str(n) for n in names)
        unknown = [n for n in chosen if n not in available]
        if unknown:
            raise ValueError(f"names {unknown} are not among the chains' names {list(available)}")
        index = [available.index(n) for n in chosen]
        return posterior.samples[:, :, index], chosen, posterior.weights
    if isinstance(posterior, Mapping):
        available = tuple(str(k) for k in posterior)
        chosen = available if names is None else tuple(str(n) for n in names)
        unknown = [n for n in chosen if n not in available]
        if unknown:
            raise ValueError(
                f"names {unknown} are not among the posterior's names {list(available)}"
            )
        arrays = [np.asarray(posterior[n], dtype=np.float64) for n in chosen]
        if not arrays or len({a.shape for a in arrays}) != 1 or arrays[0].ndim not in (1, 2):
            raise ValueError(
                "posterior must map names to arrays of one shape, (num_chains, num_samples) "
                f"or (num_samples,); got {[a.shape for a in arrays]}"
            )
        draws = np.stack(arrays, axis=-1)
        draws = draws[None] if draws.ndim == 2 else draws
    elif isinstance(posterior, np.ndarray | list | tuple):
        draws = np.asarray(posterior, dtype=np.float64)
        draws = draws[None] if draws.ndim == 2 else draws
        if draws.ndim != 3:
            raise ValueError(
                f"posterior must have shape (num_chains, num_samples, dim); got {draws.shape}"
            )
        if names is None:
            raise ValueError("names must be given for draws passed as an array")
        chosen = tuple(str(n) for n in names)
        if len(chosen) != draws.shape[2]:
            raise ValueError(f"names must hold dim = {draws.shape[2]} names; got {len(chosen)}")
    else:
        raise TypeError(
            "posterior must be an astrobayes Chains, an array or a mapping name -> draws; "
            f"got {type(posterior).__name__}"
        )
    if min(draws.shape) < 1 or not np.isfinite(draws).all():
        raise ValueError(f"draws must be non-empty and finite; got shape {draws.shape}")
    return draws, chosen, None
