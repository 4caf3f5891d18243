"""Figures for fields on the sphere: Mollweide maps and texture validation panels.

Each function returns a matplotlib ``Figure``; the CLI saves it atomically. Maps are drawn
in Mollweide projection (longitude increasing to the left, as on the sky, like
``healpy.mollview``) with a colour bar naming the quantity and its unit.
"""

from __future__ import annotations

import numpy as np

from astrobayes.plots.style import figure_style, new_figure

__all__ = ["mollweide_figure", "texture_maps_figure", "texture_statistics_figure"]


def _project(values: np.ndarray, width: int = 480):
    """Sample a RING HEALPix map on a longitude-latitude raster for a Mollweide axis."""
    import healpy

    nside = healpy.npix2nside(values.size)
    lon = np.linspace(np.pi, -np.pi, width)
    lat = np.linspace(-np.pi / 2, np.pi / 2, width // 2)
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    pixels = healpy.ang2pix(nside, np.pi / 2 - lat_grid, np.mod(lon_grid, 2 * np.pi))
    return -lon_grid, lat_grid, values[pixels]


def _map_panel(fig, ax, values, *, title: str, label: str, vmin=None, vmax=None, cmap="viridis"):
    """One Mollweide panel; NaN pixels (masked out) are drawn light grey."""
    import matplotlib

    lon, lat, image = _project(np.asarray(values, float))
    colours = matplotlib.colormaps[cmap].with_extremes(bad="lightgrey")
    mesh = ax.pcolormesh(
        lon,
        lat,
        np.ma.masked_invalid(image),
        shading="auto",
        cmap=colours,
        vmin=vmin,
        vmax=vmax,
        rasterized=True,
    )
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    bar = fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.06, pad=0.04)
    bar.set_label(label, fontsize=8)


def mollweide_figure(
    values: np.ndarray, *, title: str = "", quantity: str = "field", unit: str = ""
):
    """One HEALPix map (RING order) in Mollweide projection with a labelled colour bar.

    Args:
        values: ``(12 nside^2,)`` map.
        title: panel title.
        quantity: what the values are (colour-bar label).
        unit: their unit (``""``: dimensionless).

    Returns:
        The figure.

    Examples:
        >>> fig = mollweide_figure(np.arange(192.0), title="pixel index", unit="")
        >>> len(fig.axes)
        2
    """
    with figure_style():
        fig, axes = new_figure(1, 1, width=6.0, height=3.6, subplot_kw={"projection": "mollweide"})
        label = f"{quantity} [{unit}]" if unit else quantity
        _map_panel(fig, axes[0, 0], values, title=title, label=label)
    return fig


def texture_maps_figure(
    target: np.ndarray,
    samples: np.ndarray,
    gaussian: np.ndarray | None = None,
    *,
    quantity: str = "field",
    unit: str = "",
    mask: np.ndarray | None = None,
):
    """Target, up to four samples and the Gaussian comparison field on one colour scale.

    With ``mask`` (``True`` = kept), the target's masked-out pixels are drawn grey and
    the colour scale comes from its kept pixels.
    """
    target = np.asarray(target, float)
    title = "target"
    if mask is not None:
        target = np.where(np.asarray(mask, bool), target, np.nan)
        title = "target (masked pixels grey)"
    maps = [(title, target)] + [(f"sample {i}", s) for i, s in enumerate(samples[:4])]
    if gaussian is not None:
        maps.append(("Gaussian field, same $C_\\ell$", gaussian))
    lo, hi = np.nanpercentile(target, [0.5, 99.5])
    label = f"{quantity} [{unit}]" if unit else quantity
    with figure_style():
        ncols = 3
        nrows = -(-len(maps) // ncols)
        fig, axes = new_figure(
            nrows, ncols, width=4.2, height=2.9, subplot_kw={"projection": "mollweide"}
        )
        for ax, (name, values) in zip(axes.flat, maps, strict=False):
            _map_panel(fig, ax, values, title=name, label=label, vmin=lo, vmax=hi)
        for ax in list(axes.flat)[len(maps) :]:
            ax.set_visible(False)
    return fig


def texture_statistics_figure(report: dict, *, unit: str = ""):
    """Validation panels from :func:`astrobayes.sphere.validate_textures`'s report.

    (a) band-power ratio to the target per band; (b)-(d) Minkowski functionals V0, V1, V2
    of target, samples and the Gaussian field against the threshold.
    """
    bands = report["bands"]
    centres = [np.sqrt(lo * hi) for lo, hi in bands]
    with figure_style():
        fig, axes = new_figure(1, 4, width=3.4, height=3.0)
        ax = axes[0, 0]
        for index, ratio in enumerate(report["cl_ratio"]["samples"]):
            ax.plot(
                centres, ratio, "o-", color="C0", alpha=0.7, label="samples" if index == 0 else None
            )
        ax.plot(centres, report["cl_ratio"]["gaussian"], "s--", color="C1", label="Gaussian field")
        ax.axhspan(0.9, 1.1, color="grey", alpha=0.2, label="±10%")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(centres)
        ax.set_xticklabels([f"{lo}–{hi}" for lo, hi in bands], rotation=45, fontsize=7)
        ax.set_xlabel(r"multipole band $\ell$")
        ax.set_ylabel(r"$C_\ell$ / target $C_\ell$ (band mean)")
        ax.set_title("(a) power spectrum", fontsize=9)
        ax.legend(fontsize=7)
        mf = report["minkowski"]
        nu = mf["thresholds"]
        names = {"v0": "$V_0$ (area fraction)", "v1": "$V_1$ (boundary)", "v2": "$V_2$ (genus)"}
        for ax, (key, name) in zip(axes[0, 1:], names.items(), strict=True):
            ax.plot(nu, mf["target"][key], "k-", lw=2, label="target")
            for index, sample in enumerate(mf["samples"]):
                ax.plot(
                    nu,
                    sample[key],
                    "-",
                    color="C0",
                    alpha=0.6,
                    label="samples" if index == 0 else None,
                )
            ax.plot(nu, mf["gaussian"][key], "--", color="C1", label="Gaussian field")
            ax.set_xlabel(r"threshold $\nu$ [standard deviations]")
            ax.set_ylabel(name)
            ax.set_title(f"({'bcd'[list(names).index(key)]}) {name}", fontsize=9)
        axes[0, 1].legend(fontsize=7)
        fig.tight_layout()
    return fig
