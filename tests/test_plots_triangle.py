"""GetDist triangle plots: the same contours as GetDist from the same chains written as files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("getdist")
import getdist  # noqa: E402
from getdist import plots  # noqa: E402

from astrobayes.chains import Chains  # noqa: E402
from astrobayes.io import write_getdist_chains  # noqa: E402
from astrobayes.plots.triangle import (  # noqa: E402
    GETDIST_SETTINGS,
    shared_parameters,
    to_mcsamples,
    triangle_plot,
)

NAMES = ("w0", "wa")
LABELS = {"w0": "w_0", "wa": "w_a"}
RANGES = {"w0": (-3.0, 1.0), "wa": (-3.0, 2.0)}


@pytest.fixture(scope="module")
def chains():
    # wa piles up against its prior edge at -3, as in the DESI w0waCDM posterior
    rng = np.random.default_rng(7)
    w0 = -0.7 + 0.25 * rng.normal(size=(2, 400))
    wa = -3.0 + np.abs(-0.5 - 3 * (w0 + 0.7) + 0.6 * rng.normal(size=(2, 400)))
    x = np.stack([w0, wa], -1)
    return Chains(x, -0.5 * (x**2).sum(-1), names=NAMES)


@pytest.fixture(scope="module")
def loaded(chains, tmp_path_factory):
    root = tmp_path_factory.mktemp("getdist") / "w0wa"
    write_getdist_chains(root, chains, None, LABELS, RANGES)
    getdist.chains.print_load_details = False
    return getdist.loadMCSamples(str(root), settings=dict(GETDIST_SETTINGS))


def _filled_paths(fig_or_ax):
    ax = fig_or_ax
    return [
        np.concatenate([p.vertices for p in c.get_paths()]) for c in ax.collections if c.get_paths()
    ]


def test_densities_and_contour_levels_equal_getdist_from_files(chains, loaded):
    ours = to_mcsamples(chains, labels=LABELS, ranges=RANGES)
    assert [ours.parLabel(n) for n in NAMES] == [loaded.parLabel(n) for n in NAMES]
    for name in NAMES:
        assert ours.ranges.getLower(name) == loaded.ranges.getLower(name) == RANGES[name][0]
        a, b = ours.get1DDensity(name), loaded.get1DDensity(name)
        np.testing.assert_allclose(a.P, b.P, rtol=1e-12, atol=1e-14)
    a = ours.get2DDensityGridData("w0", "wa", num_plot_contours=2)
    b = loaded.get2DDensityGridData("w0", "wa", num_plot_contours=2)
    np.testing.assert_allclose(a.x, b.x)
    np.testing.assert_allclose(a.P, b.P, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.contours, b.contours, rtol=1e-12)


def test_prior_range_changes_the_density_negative_control(chains, loaded):
    # Without the prior edge GetDist's boundary correction is off: the densities differ,
    # so the comparison above can fail.
    no_edges = to_mcsamples(chains, labels=LABELS)
    a = no_edges.get1DDensity("wa")
    b = loaded.get1DDensity("wa")
    assert a.x[0] < -3.0 <= b.x[0]  # without the edge the density leaks past the prior
    near_edge = b.x < -2.5
    assert np.max(np.abs(a.Prob(b.x[near_edge]) - b.P[near_edge])) > 0.1


def test_figure_contours_equal_getdists_own_triangle_plot(chains, loaded):
    fig = triangle_plot(to_mcsamples(chains, labels=LABELS, ranges=RANGES))
    g = plots.get_subplot_plotter()
    g.triangle_plot([loaded], list(NAMES), filled=True)
    ours = _filled_paths(fig.axes[[a.get_xlabel() for a in fig.axes].index("$w_0$")])
    theirs = _filled_paths(g.subplots[1, 0])
    assert len(ours) == len(theirs) >= 2  # 68% and 95% filled contours
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(g.fig)


def test_markers_prior_edges_overlay_and_labels(chains):
    a = to_mcsamples(chains, labels=LABELS, ranges=RANGES, label="A")
    b = to_mcsamples({"wa": chains.samples[..., 1] + 0.1}, labels=LABELS, label="B")
    assert shared_parameters([a, b]) == ["wa"]
    fig = triangle_plot([a, b], markers={"wa": 0.0, "h": 1.0}, marker_label="ΛCDM", title="t")
    (ax,) = fig.axes[:1]
    xs = {
        round(float(line.get_xdata()[0]), 6): line.get_linestyle()
        for line in ax.lines
        if len(set(np.atleast_1d(line.get_xdata()))) == 1
    }
    assert xs.get(0.0) == "--"  # ΛCDM marker
    assert xs.get(-3.0) == ":"  # the prior edge the posterior piles up against
    text = " ".join(t.get_text() for t in fig.texts)
    assert "ΛCDM" in text
    assert "prior edges" in text
    with pytest.raises(ValueError, match="not shared"):
        triangle_plot([a, b], ["w0"])
    import matplotlib.pyplot as plt

    plt.close(fig)
