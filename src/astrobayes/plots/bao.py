r"""BAO data against models: :math:`D_M/r_d`, :math:`D_H/r_d`, :math:`D_V/r_d` over a fiducial ΛCDM.

As the DESI papers plot them (DESI Collaboration 2025, arXiv:2503.14738, Fig. 11): each
measured ratio divided by its prediction in a fiducial flat ΛCDM (Planck 2018,
arXiv:1807.06209: :math:`\Omega_m = 0.3153`, :math:`h\,r_d = 0.6736 \times 147.09`
Mpc), with 1σ error bars from the diagonal of the covariance; each model's
posterior-predictive median and 68%/95% bands on a redshift grid; and the residuals of
the posterior-predictive median at the data, whitened by the full covariance
(:math:`L^{-1}(d - m)` with :math:`C = L L^T`): independent unit normals when the model
fits, so points beyond ±2 or a :math:`\chi^2` far above the number of points are the
warning sign.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.cosmology import (
    COSMOLOGY_PARAMETERS,
    BAOData,
    Cosmology,
    bao_predictions,
    dh_over_rd,
    dm_over_rd,
    dv_over_rd,
)
from astrobayes.plots.style import add_caption, color_cycle, figure_style, new_figure

__all__ = ["PLANCK18_FIDUCIAL", "bao_posterior_predictive", "plot_bao_data_vs_model"]

PLANCK18_FIDUCIAL: Mapping[str, float] = {"omega_m": 0.3153, "h_rd": 0.6736 * 147.09}
"""Flat ΛCDM of Planck 2018 (TT,TE,EE+lowE+lensing; arXiv:1807.06209, Table 2)."""

_QUANTITIES = (
    ("DM_over_rs", r"D_M/r_d", dm_over_rd),
    ("DH_over_rs", r"D_H/r_d", dh_over_rd),
    ("DV_over_rs", r"D_V/r_d", dv_over_rd),
)


def _thin(posterior: Mapping[str, np.ndarray], num_draws: int) -> dict[str, np.ndarray]:
    """At most ``num_draws`` draws, evenly spaced through the flattened chains."""
    flat = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in posterior.items()}
    sizes = {v.size for v in flat.values()}
    if len(sizes) != 1:
        raise ValueError(f"every parameter of posterior must have as many draws; got {sizes}")
    size = sizes.pop()
    index = np.unique(np.linspace(0, size - 1, min(num_draws, size)).round().astype(int))
    return {k: v[index] for k, v in flat.items()}


_STANDARD = ("omega_m", "omega_k", "omega_r", "w0", "wa", "h_rd")
_DEFAULTS = {"omega_k": 0.0, "omega_r": 0.0, "w0": -1.0, "wa": 0.0}


def _standardise(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The draws as ``omega_m, omega_k, omega_r, w0, wa, h_rd`` (ΛCDM values when absent).

    One set of names and shapes for every model, so the predictions compile once.
    """
    size = next(iter(draws.values())).size
    values = dict(draws)
    if "w" in values and "w0" not in values:
        values["w0"] = values.pop("w")
    if "h_rd" not in values:
        if "rd" in values and "h" in values:
            values["h_rd"] = values["h"] * values["rd"]
        else:
            raise ValueError(
                f"the posterior must hold 'h_rd' (h r_d in Mpc), or 'rd' and 'h'; got {sorted(draws)}"
            )
    if "omega_m" not in values:
        raise ValueError(f"the posterior must hold 'omega_m'; got {sorted(draws)}")
    return {
        k: np.asarray(values[k], dtype=np.float64) if k in values else np.full(size, _DEFAULTS[k])
        for k in _STANDARD
    }


def bao_posterior_predictive(
    posterior: Mapping[str, np.ndarray],
    redshifts: np.ndarray,
    data: BAOData | None = None,
    *,
    num_draws: int = 300,
) -> dict[str, np.ndarray]:
    r"""Posterior-predictive BAO ratios from draws of a background-cosmology posterior.

    Parameter names are those of :func:`~astrobayes.cosmology.make_bao_log_likelihood`
    (``omega_m``, ``h_rd`` or ``rd`` with ``h``, ``w0``, ``wa``, ``omega_k``, ...);
    ``w`` (wCDM) is read as ``w0``. Absent parameters take their flat ΛCDM values
    (``w0 = -1``, ``wa = 0``, ``omega_k = omega_r = 0``); other names are ignored.

    Args:
        posterior: ``{name: draws}``, any shape per name (flattened).
        redshifts: Redshift grid, shape ``(nz,)``.
        data: Optional BAO data: also predict its entries (key ``"data"``).
        num_draws: Draws used, evenly spaced through the chains.

    Returns:
        ``{"DM_over_rs", "DH_over_rs", "DV_over_rs": (draws, nz)}`` and, with ``data``,
        ``"data": (draws, n)``.

    Example:
        >>> import numpy as np
        >>> out = bao_posterior_predictive({"omega_m": np.full(4, 0.3), "h_rd": np.full(4, 100.0)},
        ...                                np.array([0.5, 1.0]))
        >>> out["DM_over_rs"].shape
        (4, 2)

    """
    draws = _standardise(_thin(posterior, num_draws))
    z = jnp.asarray(np.asarray(redshifts, dtype=np.float64))
    result = _predict({k: jnp.asarray(v) for k, v in draws.items()}, z, data)
    return {k: np.asarray(v, dtype=np.float64) for k, v in result.items()}


@jax.jit
def _predict(values, z, data):
    """Compiled once per shape: every model is standardised to the same names."""

    def one(v):
        cosmology = Cosmology(**{k: v[k] for k in _STANDARD if k in COSMOLOGY_PARAMETERS})
        h_rd = v["h_rd"]
        out = {key: fn(cosmology, z, h_rd=h_rd) for key, _, fn in _QUANTITIES}
        if data is not None:
            out["data"] = bao_predictions(cosmology, data, h_rd=h_rd)
        return out

    return jax.vmap(one)(values)


def plot_bao_data_vs_model(
    data: BAOData,
    posteriors: Mapping[str, Mapping[str, np.ndarray]],
    *,
    fiducial: Mapping[str, float] = PLANCK18_FIDUCIAL,
    num_draws: int = 300,
    num_redshifts: int = 80,
    title: str | None = None,
):
    r"""BAO data over a fiducial ΛCDM with each model's posterior-predictive bands.

    Args:
        data: The BAO data (e.g. :func:`~astrobayes.cosmology.desi_dr2_bao`).
        posteriors: ``{model name: {parameter: draws}}`` (e.g.
            ``{n: r.posterior for n, r in comparison.models.items()}``).
        fiducial: Parameters of the fiducial cosmology the ratios are divided by.
        num_draws: Posterior draws per model for the bands.
        num_redshifts: Points of the redshift grid.
        title: Figure title (default names the data set).

    Returns:
        The matplotlib ``Figure``: three ratio panels and the whitened residuals.

    Raises:
        ValueError: If ``posteriors`` is empty or a posterior lacks ``h_rd``/``rd``.

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import desi_dr2_bao
        >>> rng = np.random.default_rng(0)
        >>> post = {"omega_m": 0.3 + 0.01 * rng.normal(size=50), "h_rd": 101 + rng.normal(size=50)}
        >>> fig = plot_bao_data_vs_model(desi_dr2_bao(), {"lcdm": post}, num_draws=20)
        >>> len(fig.axes)
        4

    """
    if not posteriors:
        raise ValueError("posteriors must hold at least one model; got none")
    z_data = np.asarray(data.redshifts)
    grid = np.linspace(0.0, 1.1 * float(z_data.max()), num_redshifts + 1)[1:]
    everywhere = np.concatenate([grid, z_data])  # one redshift array: one compilation
    sizes = [min(num_draws, np.size(next(iter(p.values())))) for p in posteriors.values()]
    fid = bao_posterior_predictive(  # as many (equal) draws as a model: one compiled shape
        {k: np.full(sizes[0], float(v)) for k, v in fiducial.items()},
        everywhere,
        data,
        num_draws=num_draws,
    )
    errors = np.sqrt(np.diag(data.covariance))
    quantities = np.asarray(data.quantities)
    colors = color_cycle(len(posteriors))
    predictions = {
        name: {
            k: v[:, : grid.size] if k != "data" else v
            for k, v in bao_posterior_predictive(
                post, everywhere, data, num_draws=num_draws
            ).items()
        }
        for name, post in posteriors.items()
    }
    with figure_style():
        fig, axes = new_figure(2, 2, width=4.6, height=3.0)
        panels = [axes[0, 0], axes[0, 1], axes[1, 0]]
        for ax, (key, label, _) in zip(panels, _QUANTITIES, strict=True):
            reference = fid[key][0, : grid.size]
            for color, (name, pred) in zip(colors, predictions.items(), strict=True):
                ratio = pred[key] / reference
                lo95, lo68, mid, hi68, hi95 = np.percentile(ratio, [2.5, 16, 50, 84, 97.5], axis=0)
                ax.fill_between(grid, lo95, hi95, color=color, alpha=0.18, lw=0)
                ax.fill_between(grid, lo68, hi68, color=color, alpha=0.35, lw=0)
                ax.plot(grid, mid, color=color, lw=1.3, label=f"{name}: median, 68/95%")
            chosen = quantities == key
            if chosen.any():
                at_data = fid["data"][0][chosen]
                ax.errorbar(
                    z_data[chosen],
                    np.asarray(data.values)[chosen] / at_data,
                    yerr=errors[chosen] / at_data,
                    fmt="o",
                    color="k",
                    ms=4,
                    capsize=2,
                    label=f"{data.name} (1σ)",
                )
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            ax.set_xlabel("redshift $z$")
            ax.set_ylabel(f"$({label}) / ({label})_{{\\rm fid}}$")
            ax.set_title(f"${label}$ relative to Planck 2018 ΛCDM")
            ax.set_xlim(0, grid[-1])
        panels[0].legend(loc="best")
        ax = axes[1, 1]
        order = np.argsort(z_data, kind="stable")
        width = 0.8 / len(predictions)
        for k, (color, (name, pred)) in enumerate(zip(colors, predictions.items(), strict=True)):
            median = np.median(pred["data"], axis=0)
            whitened = np.asarray(data.likelihood.whitening) @ (np.asarray(data.values) - median)
            chi2 = float(np.sum(whitened**2))
            x = np.arange(len(order)) - 0.4 + width * (k + 0.5)
            ax.plot(
                x,
                whitened[order],
                "o",
                color=color,
                ms=4,
                label=f"{name}: $\\chi^2$ = {chi2:.1f} ({data.num_data} points)",
            )
        ax.axhspan(-1, 1, color="0.85", lw=0)
        ax.axhspan(-2, 2, color="0.93", lw=0, zorder=-1)
        ax.axhline(0, color="0.4", lw=0.8)
        short = {"DM_over_rs": "$D_M$", "DH_over_rs": "$D_H$", "DV_over_rs": "$D_V$"}
        ax.set_xticks(np.arange(len(order)))
        ax.set_xticklabels(
            [f"{short[quantities[i]]} {z_data[i]:.2f}" for i in order], rotation=60, fontsize=7
        )
        ax.set_ylabel(r"whitened residual $[L^{-1}(d-m)]_i$")
        ax.set_title("residuals of the predictive median")
        ax.legend(loc="best")
        fig.suptitle(title or f"{data.name} ({data.reference}) against the models")
        fig.tight_layout()
        add_caption(
            fig,
            [
                "Ratio panels: data / fiducial with 1σ errors; lines and bands: each model's "
                "posterior-predictive median, 68% and 95%. Warning sign: data points outside a "
                "model's band.",
                "Residuals: whitened by the full covariance (C = L Lᵀ), shaded ±1 and ±2; "
                "unit normals if the model fits. Warning sign: several points beyond ±2, or χ² "
                "well above the number of points.",
            ],
        )
    return fig
