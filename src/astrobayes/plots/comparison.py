r"""A model-comparison figure that explains itself: ln z, ln B on Jeffreys' scale, per-chain checks.

Six panels, each with a one-line caption of what it shows and what would be a warning
sign:

1. ``ln z`` of each model with its standard error (the learned harmonic mean, McEwen et
   al. 2021, arXiv:2111.12720);
2. ``ln B`` of each model against the reference with its error, over the Jeffreys scale
   as revised by Trotta (2008, arXiv:0803.4089): ``|ln B| < 1`` inconclusive, ``< 2.5``
   weak, ``< 5`` moderate, beyond strong (shaded bands);
3. the estimate from each inference chain alone against the combined one: their scatter
   should match the quoted error;
4. the temperature choice: the relative variance of the estimator on validation draws
   for each candidate temperature, and the one chosen (or the fixed temperature);
5. the validation loss of each flow target per epoch;
6. the estimator's diagnostics (temperature, Pareto k, effective sample size, status).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from astrobayes.plots.style import add_caption, color_cycle, figure_style, new_figure

__all__ = ["JEFFREYS_BANDS", "plot_comparison"]

JEFFREYS_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 1.0, "inconclusive"),
    (1.0, 2.5, "weak"),
    (2.5, 5.0, "moderate"),
    (5.0, np.inf, "strong"),
)
"""``(low, high, reading)`` of ``|ln B|`` (Trotta 2008, arXiv:0803.4089, Table 1)."""

_BAND_SHADES = ("0.97", "0.91", "0.84", "0.77")


def plot_comparison(
    evidences: Mapping[str, object],
    bayes_factors: Mapping[str, object] | None = None,
    reference: str | None = None,
    *,
    title: str | None = None,
):
    r"""The comparison figure: ln z, ln B with Jeffreys bands, per-chain ln z, temperature.

    Args:
        evidences: ``{model name: EvidenceResult}`` (e.g.
            ``{n: r.evidence for n, r in comparison.models.items()}``).
        bayes_factors: ``{model name: BayesFactor}`` against ``reference`` (default: ln
            B computed here from ``evidences``, errors added in quadrature).
        reference: Reference model (default: the first).
        title: Figure title.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: If ``evidences`` is empty or ``reference`` is not among them.

    Example:
        >>> import numpy as np
        >>> import jax
        >>> from astrobayes.chains import Chains
        >>> from astrobayes.evidence import GaussianTarget, estimate
        >>> x = np.random.default_rng(0).normal(size=(4, 300, 1))
        >>> r = estimate(jax.random.key(0), Chains(x, -0.5 * (x**2).sum(-1) - 0.5 * np.log(2 * np.pi)),
        ...              target=GaussianTarget())
        >>> fig = plot_comparison({"a": r, "b": r})
        >>> len(fig.axes)
        6

    """
    names = list(evidences)
    if not names:
        raise ValueError("evidences must hold at least one model; got none")
    reference = names[0] if reference is None else reference
    if reference not in evidences:
        raise ValueError(f"reference must be one of {names}; got {reference!r}")
    log_z = np.array([float(evidences[n].log_evidence) for n in names])
    log_z_std = np.array([float(evidences[n].log_evidence_std) for n in names])
    if bayes_factors is None:
        ref = names.index(reference)
        log_b = log_z - log_z[ref]
        log_b_std = np.sqrt(log_z_std**2 + log_z_std[ref] ** 2)
        log_b_std[ref] = 0.0
    else:
        log_b = np.array([float(bayes_factors[n].log_bayes_factor) for n in names])
        log_b_std = np.array([float(bayes_factors[n].log_bayes_factor_std) for n in names])
    colors = color_cycle(len(names))
    y = np.arange(len(names))
    with figure_style():
        fig, axes = new_figure(3, 2, width=4.6, height=3.0)
        ax = axes[0, 0]
        for k in range(len(names)):
            ax.errorbar(log_z[k], y[k], xerr=log_z_std[k], fmt="o", color=colors[k], capsize=3)
            ax.annotate(
                f"{log_z[k]:.2f} ± {log_z_std[k]:.2f}",
                (log_z[k], y[k]),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=7,
            )
        ax.set_yticks(y, names)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_xlabel(r"$\ln z$")
        ax.set_title("(a) log evidence per model")
        _pad_x(ax, log_z, log_z_std)

        ax = axes[0, 1]
        finite_b = log_b[np.isfinite(log_b)]
        extent = (
            max(6.0, float(np.max(np.abs(finite_b) + 2 * log_b_std[np.isfinite(log_b)])) + 0.5)
            if finite_b.size
            else 6.0
        )
        for (low, high, reading), shade in zip(JEFFREYS_BANDS, _BAND_SHADES, strict=True):
            high = min(high, extent)
            ax.axvspan(low, high, color=shade, lw=0, zorder=0)
            ax.axvspan(-high, -low, color=shade, lw=0, zorder=0)
            if low < extent:
                ax.text(
                    0.5 * (low + high),
                    len(names) - 0.45,
                    reading,
                    ha="center",
                    va="top",
                    fontsize=6,
                    color="0.35",
                    rotation=90 if high - low < 1.6 else 0,
                )
        ax.axvline(0, color="0.4", lw=0.8)
        for k in range(len(names)):
            ax.errorbar(log_b[k], y[k], xerr=log_b_std[k], fmt="o", color=colors[k], capsize=3)
        ax.set_yticks(y, names)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_xlim(-extent, extent)
        ax.set_xlabel(rf"$\ln B$ against {reference} (> 0 favours the model)")
        ax.set_title("(b) Bayes factors on the Jeffreys scale")

        ax = axes[1, 0]
        for k, name in enumerate(names):
            per_chain = np.asarray(evidences[name].per_chain_log_evidence, dtype=float)
            offsets = np.linspace(-0.25, 0.25, max(per_chain.size, 1))[: per_chain.size]
            ax.plot(k + offsets, per_chain - log_z[k], "o", color=colors[k], ms=3.5, alpha=0.8)
            ax.fill_between(
                [k - 0.35, k + 0.35], -log_z_std[k], log_z_std[k], color=colors[k], alpha=0.2, lw=0
            )
        ax.axhline(0, color="0.4", lw=0.8)
        ticks = []
        for name in names:
            between = float(evidences[name].log_evidence_std_between_chains)
            ticks.append(f"{name}\nσ(chains) {between:.2f}" if np.isfinite(between) else name)
        ax.set_xticks(np.arange(len(names)), ticks, fontsize=7)
        ax.set_ylabel(r"per-chain $\ln z$ − combined")
        ax.set_title("(c) each inference chain alone (band: ±1σ quoted)")

        ax = axes[1, 1]
        any_scores = False
        for k, name in enumerate(names):
            r = evidences[name]
            scores = dict(r.temperature_scores or {})
            if scores:
                any_scores = True
                temps = np.array(sorted(float(t) for t in scores))
                values = np.array([float(scores[t]) for t in sorted(scores, key=float)])
                ax.plot(temps, values, "-o", color=colors[k], ms=3, label=name)
                chosen = float(r.temperature)
                if chosen in temps:
                    ax.plot(
                        [chosen],
                        [values[list(temps).index(chosen)]],
                        "*",
                        color=colors[k],
                        ms=11,
                        markeredgecolor="k",
                    )
        if any_scores:
            ax.set_yscale("log")
            ax.set_xlabel("temperature $T$ of the target")
            ax.set_ylabel("relative variance (validation)")
            ax.legend(loc="best")
        else:
            text = "\n".join(f"{n}: T = {float(evidences[n].temperature):g} (fixed)" for n in names)
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title("(d) temperature choice (star: chosen)")
        ax = axes[2, 0]
        trained = False
        for k, name in enumerate(names):
            losses = np.asarray(evidences[name].training_losses, dtype=float)
            if losses.size:
                trained = True
                ax.plot(np.arange(1, losses.size + 1), losses, color=colors[k], label=name)
        if trained:
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation loss (NLL)")
            ax.legend(loc="best")
        else:
            ax.text(
                0.5,
                0.5,
                "no flow trained (Gaussian target)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title("(e) training of each importance target")

        ax = axes[2, 1]
        rows = [f"{'model':<10}{'T':>5}{'Pareto k':>10}{'ESS':>8}  status"]
        for name in names:
            r = evidences[name]
            rows.append(
                f"{name[:10]:<10}{float(r.temperature):>5.2g}{float(r.pareto_k):>10.2f}"
                f"{float(r.effective_sample_size):>8.0f}  {r.status.name.lower()}"
            )
        ax.text(
            0.02,
            0.95,
            "\n".join(rows),
            ha="left",
            va="top",
            transform=ax.transAxes,
            family="monospace",
            fontsize=8,
        )
        ax.set_axis_off()
        ax.set_title("(f) estimator diagnostics")
        fig.suptitle(title or f"Model comparison against {reference}")
        fig.tight_layout()
        add_caption(
            fig,
            [
                "(a) ln z ± its standard error. Warning sign: an error bar as wide as the "
                "differences between models.",
                "(b) ln B ± error over the Jeffreys bands (Trotta 2008). Warning sign: an "
                "error bar crossing a band edge, so the reading is not settled.",
                "(c) ln z from each inference chain alone minus the combined value. Warning "
                "sign: scatter much wider than the ±1σ band, or one chain far off (a mode missed).",
                "(d) estimator variance vs the target's temperature. Warning sign: the chosen T "
                "at the end of the grid, or variance rising steeply near it.",
                "(e) validation loss of the flow per epoch. Warning sign: still falling at the "
                "last epoch (stopped early) or rising (over-fitting).",
                "(f) temperature, Pareto k, effective sample size and status of each estimate. "
                "Warning sign: Pareto k > 0.7 (infinite-variance ratios) or a status other than ok.",
            ],
        )
    return fig


def _pad_x(ax, values, errors) -> None:
    finite = np.isfinite(values) & np.isfinite(errors)
    if not finite.any():
        return
    low = float(np.min(values[finite] - errors[finite]))
    high = float(np.max(values[finite] + errors[finite]))
    pad = max(0.15 * (high - low), 0.5)
    ax.set_xlim(low - pad, high + pad)
