"""The one place that turns results into figure files for the commands.

Each command that writes figures calls a function here; every figure goes through
:func:`astrobayes.io.save_figure_atomic` (temporary file + rename) and every chain file
through :func:`astrobayes.io.write_getdist_chains` (optional here: ``astrobayes run``
writes its own). ``no_plots=True`` writes no figure. :func:`figures_markdown` gives the
section of ``report.md`` that embeds the figures written, each with its caption.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "FIGURE_CAPTIONS",
    "figures_markdown",
    "write_comparison_figures",
    "write_data_vs_model_figure",
    "write_imaging_figures",
    "write_sbi_figures",
]

FIGURE_CAPTIONS: dict[str, str] = {
    "triangle": (
        "GetDist triangle plot of {model}: smoothed marginals, filled 68% and 95% contours; "
        "dashed lines (when drawn) mark the reference values, ΛCDM's w₀ = −1 and w_a = 0 for "
        "the dark-energy models; dotted lines mark hard prior edges. A posterior pressed "
        "against a dotted line is shaped by the prior, not the data."
    ),
    "triangle_overlay": (
        "All models overlaid on the parameters they share (GetDist, filled 68% and 95% "
        "contours). Shifts between models show how the extension moves the common parameters."
    ),
    "bao_data_vs_model": (
        "BAO data divided by a fiducial (Planck 2018) ΛCDM, with each model's "
        "posterior-predictive median and 68/95% bands; bottom right: residuals whitened by the "
        "full covariance. Warning sign: points outside the bands, or χ² well above the number "
        "of points."
    ),
    "comparison": (
        "(a) ln z per model, (b) ln B against the reference over the Jeffreys bands, (c) ln z "
        "of each inference chain alone, (d) the temperature choice, (e) the flow's training, "
        "(f) the estimator's diagnostics; each panel's warning sign is written under it."
    ),
    "data_vs_model": (
        "Data with 1σ errors against each model's posterior-predictive median and 68/95% "
        "bands; below, residuals whitened by the full covariance. Warning sign: points "
        "outside the bands, or χ² well above the number of points."
    ),
    "reconstruction": (
        "Truth (when known), dirty image, MAP and truth − MAP, each with its colour bar. "
        "Warning sign: error structure that follows the source."
    ),
    "lci": (
        "Local credible intervals on super-pixels: MAP mean, interval length, bound status. "
        "Warning sign: open bounds over the source."
    ),
    "hypothesis_test": (
        "MAP, the surrogate with the tested structure removed, and the removed structure; "
        "the title gives the verdict."
    ),
    "coverage": (
        "Coverage of the posterior's credible regions against the nominal level (HPD and "
        "TARP). Warning sign: a curve off the diagonal beyond its band."
    ),
    "sbc_ranks": (
        "Simulation-based calibration: ranks of the truths among posterior draws, with the "
        "99% band of a uniform histogram. Warning sign: a U, a hump or a slope."
    ),
}
"""Caption of each figure kind, used in ``report.md``."""


def write_comparison_figures(
    out_dir: str | os.PathLike[str],
    comparison_result,
    models=None,
    *,
    data=None,
    reference: Mapping[str, float] | None = None,
    no_plots: bool = False,
    chains_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    r"""Write the figures (and GetDist chains) of a model comparison into ``out_dir``.

    Files written (``<name>`` is each model's name):

    * with ``chains_dir``: ``<chains_dir>/<name>_1.txt ...``, ``<name>.paramnames``
      (LaTeX labels), ``<name>.ranges`` (prior edges): the draws the figures were made
      from, for GetDist or :func:`astrobayes.io.read_chains` (written also with
      ``no_plots``);
    * ``triangle_<name>.png``: GetDist triangle plot of each model;
    * ``triangle_overlay.png``: all models on their shared parameters (two or more models);
    * ``bao_data_vs_model.png``: with BAO ``data``, data against posterior predictions;
    * ``comparison.png``: ln z, ln B on the Jeffreys scale, per-chain ln z, temperature.

    Args:
        out_dir: Output directory (created when missing).
        comparison_result: A :class:`~astrobayes.comparison.ComparisonResult`.
        models: The :class:`~astrobayes.models.Model` objects compared (a sequence or
            ``{name: Model}``), for their parameter labels and prior edges; ``None``:
            names as labels (cosmology names get their LaTeX labels), no prior edges.
        data: A :class:`~astrobayes.cosmology.BAOData` to plot against the models, or
            ``None``.
        reference: ``{parameter: value}`` drawn as marker lines (default: the ΛCDM values
            :data:`astrobayes.cosmology.LCDM_VALUES` of the parameters shown).
        no_plots: Write no figure (only the GetDist chains, if ``chains_dir`` is given).
        chains_dir: Folder (relative to ``out_dir`` unless absolute) for GetDist chains
            of the plotted posteriors; ``None`` writes none (``astrobayes run`` writes its
            own, with derived parameters).

    Returns:
        ``{key: path}`` of what was written: ``"getdist_<name>"`` (the chain root, with
        ``chains_dir``),
        ``"triangle_<name>"``, ``"triangle_overlay"``, ``"bao_data_vs_model"``,
        ``"comparison"``.

    Raises:
        ValueError: If ``models`` does not hold a model of the comparison.

    """
    from astrobayes.cosmology import LCDM_VALUES, BAOData, parameter_label
    from astrobayes.io import save_figure_atomic, write_getdist_chains
    from astrobayes.models import Model, prior_supports

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = comparison_result.models
    by_name: dict[str, Model] = {}
    if isinstance(models, Mapping):
        by_name = dict(models)
    elif models is not None:
        by_name = {m.name: m for m in models}
    missing = [n for n in reports if models is not None and n not in by_name]
    if missing:
        raise ValueError(f"models must include every compared model; missing {missing}")
    written: dict[str, Path] = {}
    labels, ranges, order, in_log = {}, {}, {}, {}
    for name, report in reports.items():
        model = by_name.get(name)
        labels[name] = {
            p: (model.label(p) if model is not None and p in model.labels else parameter_label(p))
            for p in report.posterior
        }
        # one abstract trace of the model gives its edges and its log-uniform parameters
        supports = prior_supports(model) if model is not None else {}
        edges = {p: (s.low, s.high) for p, s in supports.items()}
        in_log[name] = {p for p, s in supports.items() if s.log_uniform}
        ranges[name] = {p: edges[p] for p in report.posterior if p in edges}
        # the model's order (omega_m before h_rd), not the alphabetical order of the draws
        order[name] = [p for p in edges if p in report.posterior] + [
            p for p in report.posterior if p not in edges
        ]
        if chains_dir is not None:
            folder = out / chains_dir
            folder.mkdir(parents=True, exist_ok=True)
            write_getdist_chains(
                folder / name, report.posterior, order[name], labels[name], ranges[name]
            )
            written[f"getdist_{name}"] = folder / name
    if no_plots:
        return written

    import numpy as np

    from astrobayes.plots.bao import plot_bao_data_vs_model
    from astrobayes.plots.comparison import plot_comparison
    from astrobayes.plots.triangle import to_mcsamples, triangle_plot

    markers = dict(LCDM_VALUES) if reference is None else dict(reference)
    marker_label = "ΛCDM" if reference is None else "reference"
    # a log-uniform parameter is drawn as ln x (where its prior is flat) when it is
    # log-uniform in every model that has it, so that overlays share one coordinate; in
    # x a prior over decades squeezed the marginal against the axis (an outlier variance
    # on [0.1, 1000]: GetDist's bandwidth failed and the contours broke into islands)
    logged = {
        p
        for name in reports
        for p in in_log[name]
        if all(p in in_log[other] for other in reports if p in reports[other].posterior)
    }
    markers = {
        p: (float(np.log(v)) if v > 0 else None) if p in logged else v for p, v in markers.items()
    }
    markers = {p: v for p, v in markers.items() if v is not None}
    samples = {
        name: to_mcsamples(
            {p: np.log(v) if p in logged else v for p, v in report.posterior.items()},
            names=order[name],
            labels={p: rf"\ln {v}" if p in logged else v for p, v in labels[name].items()},
            ranges={
                p: tuple(None if e is None else float(np.log(e)) for e in edges)
                if p in logged
                else edges
                for p, edges in ranges[name].items()
            },
            label=name,
        )
        for name, report in reports.items()
    }
    for name, s in samples.items():
        figure = triangle_plot(
            s,
            markers=markers,
            marker_label=marker_label,
            title=f"{name}: posterior ({_draws_text(reports[name].posterior)})",
        )
        written[f"triangle_{name}"] = save_figure_atomic(out / f"triangle_{name}.png", figure)
    if len(samples) > 1:
        from astrobayes.plots.triangle import shared_parameters

        shared = shared_parameters(list(samples.values()))
        if shared:
            figure = triangle_plot(
                list(samples.values()),
                shared,
                markers=markers,
                marker_label=marker_label,
                title="all models on their shared parameters",
            )
            written["triangle_overlay"] = save_figure_atomic(out / "triangle_overlay.png", figure)
    if isinstance(data, BAOData):
        figure = plot_bao_data_vs_model(data, {n: r.posterior for n, r in reports.items()})
        written["bao_data_vs_model"] = save_figure_atomic(out / "bao_data_vs_model.png", figure)
    elif data is not None:
        raise TypeError(
            f"data must be astrobayes.cosmology.BAOData or None; got {type(data).__name__}"
        )
    figure = plot_comparison(
        {n: r.evidence for n, r in reports.items()},
        comparison_result.bayes_factors,
        comparison_result.reference,
    )
    written["comparison"] = save_figure_atomic(out / "comparison.png", figure)
    return written


def _draws_text(posterior) -> str:
    import numpy as np

    shape = np.shape(next(iter(posterior.values())))
    if len(shape) == 2:
        return f"{shape[0]} chains × {shape[1]} draws"
    return f"{int(np.prod(shape))} draws"


def figures_markdown(figures: Mapping[str, Path], out_dir: str | os.PathLike[str]) -> str:
    """A ``## Figures`` section of markdown that embeds every figure written, with captions.

    Args:
        figures: What :func:`write_comparison_figures` returned.
        out_dir: Directory of the report (links are relative to it).

    Returns:
        Markdown text (empty when no figure was written).

    """
    out = Path(out_dir)
    lines: list[str] = []
    for key, path in figures.items():
        path = Path(path)
        if path.suffix not in (".png", ".pdf", ".svg"):
            continue
        if key in FIGURE_CAPTIONS:
            kind = key
        else:
            kind = next((k for k in FIGURE_CAPTIONS if key.startswith(k + "_")), key)
        caption = FIGURE_CAPTIONS.get(kind, "").format(model=key.removeprefix("triangle_"))
        link = Path(os.path.relpath(path, out)).as_posix()
        lines += [f"![{key}]({link})", ""] + ([caption, ""] if caption else [])
    chains = [k.removeprefix("getdist_") for k in figures if k.startswith("getdist_")]
    if chains:
        root = os.path.relpath(Path(figures[f"getdist_{chains[0]}"]).parent, out)
        lines += [
            f"GetDist chains of {', '.join(chains)} are in `{Path(root).as_posix()}/` "
            "(`getdist.loadMCSamples(root)` reads them).",
            "",
        ]
    if not lines:
        return ""
    return "\n".join(["## Figures", "", *lines])


def write_imaging_figures(
    out_dir: str | os.PathLike[str],
    result,
    *,
    truth=None,
    test_regions=(),
    prior: str | None = None,
    unit: str = "arb. units",
    no_plots: bool = False,
) -> list[Path]:
    """Write the figures of ``astrobayes image``: reconstruction, LCI maps, hypothesis tests.

    Args:
        out_dir: Output directory (must exist).
        result: The imaging pipeline's result (``map_result``, ``dirty``, ``snr_db``,
            ``intervals``, ``tests``).
        truth: Ground-truth image, when known.
        test_regions: ``[row0, row1, col0, col1]`` of each hypothesis test, in the order of
            ``result.tests``.
        prior: Name of the prior (in the MAP title).
        unit: Unit of the image intensities.
        no_plots: Write nothing.

    Returns:
        The paths written: ``reconstruction.png``, ``lci_<s>x<s>.png`` per super-pixel
        size, ``hypothesis_test_<i>.png`` per test.

    """
    import numpy as np

    from astrobayes.imaging.uq import inpaint_region
    from astrobayes.io import save_figure_atomic
    from astrobayes.plots.imaging import hypothesis_test_figure, lci_figure, reconstruction_figure

    if no_plots:
        return []
    out = Path(out_dir)
    image = np.asarray(result.map_result.image)
    figures = [
        save_figure_atomic(
            out / "reconstruction.png",
            reconstruction_figure(
                np.asarray(result.dirty),
                image,
                truth=truth,
                snr_db=result.snr_db,
                unit=unit,
                prior=prior,
            ),
        )
    ]
    for lci in result.intervals:
        size = lci.superpixel_size
        figures.append(
            save_figure_atomic(out / f"lci_{size}x{size}.png", lci_figure(lci, unit=unit))
        )
    for index, (test, region) in enumerate(zip(result.tests, test_regions, strict=True)):
        mask = np.zeros(image.shape, bool)
        mask[region[0] : region[1], region[2] : region[3]] = True
        surrogate = np.asarray(inpaint_region(image, mask))
        figures.append(
            save_figure_atomic(
                out / f"hypothesis_test_{index}.png",
                hypothesis_test_figure(image, surrogate, test, unit=unit),
            )
        )
    return figures


def write_sbi_figures(
    out_dir: str | os.PathLike[str],
    report,
    names,
    *,
    samples=None,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    no_plots: bool = False,
) -> list[Path]:
    """Write the figures of ``astrobayes sbi``: the posterior, coverage and SBC ranks.

    Args:
        out_dir: Output directory (must exist).
        report: A :class:`~astrobayes.validation.CalibrationReport`, or ``None`` (nothing
            was checked: no calibration figure).
        names: Parameter names.
        samples: Posterior draws ``(num_samples, dim)`` for ``triangle.png`` (``None``:
            no triangle plot).
        ranges: ``{name: (low, high)}`` hard prior edges, drawn in the triangle plot.
        no_plots: Write nothing.

    Returns:
        The paths written (``triangle.png``, ``coverage.png``, ``sbc_ranks.png``).

    """
    from astrobayes.io import save_figure_atomic
    from astrobayes.plots.style import figure_style
    from astrobayes.plots.validation import plot_coverage, plot_rank_histograms

    if no_plots:
        return []
    out = Path(out_dir)
    written = []
    if samples is not None:
        import numpy as np

        from astrobayes.plots.triangle import to_mcsamples, triangle_plot

        draws = np.asarray(samples, np.float64)
        mc = to_mcsamples(draws[None], names=list(names), ranges=ranges, label="posterior")
        figure = triangle_plot(mc, title=f"SBI posterior of x_obs ({draws.shape[0]} draws)")
        written.append(save_figure_atomic(out / "triangle.png", figure))
    if report is None:
        return written
    with figure_style():
        coverage = plot_coverage(report)
        ranks = plot_rank_histograms(report.sbc, list(names))
    return written + [
        save_figure_atomic(out / "coverage.png", coverage),
        save_figure_atomic(out / "sbc_ranks.png", ranks),
    ]


def write_data_vs_model_figure(
    out_dir: str | os.PathLike[str],
    x,
    y,
    covariance,
    posteriors: Mapping,
    mean_fns: Mapping,
    *,
    x_label: str = "x",
    y_label: str = "y",
    title: str | None = None,
    no_plots: bool = False,
) -> dict[str, Path]:
    """Write ``data_vs_model.png`` for models with a Gaussian likelihood ``N(y | m(theta), C)``.

    Args:
        out_dir: Output directory (must exist).
        x: Abscissa of the data, ``(n,)``.
        y: Data, ``(n,)``.
        covariance: ``(n, n)`` covariance or ``(n,)`` variances.
        posteriors: ``{model name: {parameter: draws}}`` (e.g. from ``ModelReport.posterior``).
        mean_fns: ``{model name: m(params) -> (n,)}`` JAX functions; models without one
            are left out.
        x_label: Axis label of ``x``, with unit.
        y_label: Axis label of ``y``, with unit.
        title: Figure title.
        no_plots: Write nothing.

    Returns:
        ``{"data_vs_model": path}``, or ``{}`` with ``no_plots`` or no model with a mean.

    """
    from astrobayes.io import save_figure_atomic
    from astrobayes.plots.predictive import plot_data_vs_model, predictive_draws

    chosen = {n: f for n, f in mean_fns.items() if n in posteriors}
    if no_plots or not chosen:
        return {}
    draws = {n: predictive_draws(posteriors[n], f) for n, f in chosen.items()}
    figure = plot_data_vs_model(
        x, y, covariance, draws, x_label=x_label, y_label=y_label, title=title
    )
    return {"data_vs_model": save_figure_atomic(Path(out_dir) / "data_vs_model.png", figure)}
