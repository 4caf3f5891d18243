"""BAO data-versus-model and comparison figures, and the files the commands write from them."""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.integrate import quad

from astrobayes._status import worst
from astrobayes.chains import Chains
from astrobayes.cli._figures import figures_markdown, write_comparison_figures
from astrobayes.comparison import ComparisonResult, ModelReport
from astrobayes.cosmology import desi_dr2_bao
from astrobayes.cosmology.dark_energy import dark_energy_models
from astrobayes.evidence import GaussianTarget, estimate, log_bayes_factor
from astrobayes.plots.bao import PLANCK18_FIDUCIAL, bao_posterior_predictive, plot_bao_data_vs_model
from astrobayes.plots.comparison import plot_comparison

pytest.importorskip("getdist")


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _inverse_e(x, omega_m, w0):
    return 1.0 / np.sqrt(omega_m * (1 + x) ** 3 + (1 - omega_m) * (1 + x) ** (3 * (1 + w0)))


def _dm_over_rd(z, omega_m, w0, h_rd):
    """Independent truth: D_M / r_d of flat wCDM by scipy quadrature."""
    return np.array([2997.92458 / h_rd * quad(_inverse_e, 0, zi, (omega_m, w0))[0] for zi in z])


def _bao_truth(data, omega_m, h_rd):
    """D_M, D_H or D_V over r_d of flat LCDM at each entry of ``data`` (numpy, scipy)."""
    z = np.asarray(data.redshifts)
    dm = _dm_over_rd(z, omega_m, -1.0, h_rd)
    dh = 2997.92458 / h_rd * _inverse_e(z, omega_m, -1.0)
    dv = np.cbrt(z * dm**2 * dh)
    q = np.asarray(data.quantities)
    return np.where(q == "DM_over_rs", dm, np.where(q == "DH_over_rs", dh, dv))


def test_bao_figure_against_independent_truth():
    data = desi_dr2_bao()
    fid = PLANCK18_FIDUCIAL
    delta = {k: np.full(3, v) for k, v in fid.items()}
    fig = plot_bao_data_vs_model(data, {"fid": delta}, num_draws=3, num_redshifts=20)
    for ax in fig.axes[:3]:  # median line of a delta posterior at the fiducial: exactly 1
        np.testing.assert_allclose(ax.lines[0].get_ydata(), 1.0, rtol=1e-6)
    # chi2 in the legend is -2 (ln L - ln normalisation) at the fiducial prediction
    prediction = _bao_truth(data, fid["omega_m"], fid["h_rd"])
    residual = np.asarray(data.values) - prediction
    chi2 = float(residual @ np.linalg.solve(data.covariance, residual))
    (label,) = _legend_texts(fig.axes[3])
    assert f"{chi2:.1f}" in label
    # data points: measured values over the fiducial prediction at the same entry
    dv = np.asarray(data.quantities) == "DV_over_rs"
    points = fig.axes[2].containers[0][0]
    np.testing.assert_allclose(
        points.get_ydata(), np.asarray(data.values)[dv] / prediction[dv], rtol=1e-5
    )
    # wCDM draws: 'w' is read as w0; the D_M ratio line equals the quadrature truth
    off = {"omega_m": np.full(3, 0.40), "h_rd": np.full(3, 95.0), "w": np.full(3, -0.8)}
    fig2 = plot_bao_data_vs_model(data, {"off": off}, num_draws=3, num_redshifts=20)
    line = fig2.axes[0].lines[0]
    z = line.get_xdata()
    truth = _dm_over_rd(z, 0.40, -0.8, 95.0) / _dm_over_rd(z, fid["omega_m"], -1.0, fid["h_rd"])
    np.testing.assert_allclose(line.get_ydata(), truth, rtol=2e-4)
    # negative controls: the same line read as LCDM (w ignored) differs; chi2 is far larger
    wrong = _dm_over_rd(z, 0.40, -1.0, 95.0) / _dm_over_rd(z, fid["omega_m"], -1.0, fid["h_rd"])
    assert np.max(np.abs(line.get_ydata() - wrong)) > 1e-2
    chi2_off = float(_legend_texts(fig2.axes[3])[0].split("= ")[1].split(" ")[0])
    assert chi2_off > chi2 + 50
    with pytest.raises(ValueError, match="h_rd"):
        bao_posterior_predictive({"omega_m": [0.3]}, z)
    plt.close("all")


def _report(key, name, posterior, shift):
    # A Gaussian "posterior" whose evidence is known: ln z = shift (unit normal, normalised).
    x = np.random.default_rng(abs(hash(name)) % 2**32).normal(size=(4, 300, 1))
    logp = -0.5 * (x**2).sum(-1) - 0.5 * np.log(2 * np.pi) + shift
    evidence = estimate(key, Chains(x, logp), target=GaussianTarget())
    return ModelReport(
        name=name,
        log_evidence=evidence.log_evidence,
        log_evidence_std=evidence.log_evidence_std,
        evidence=evidence,
        sampling=None,
        posterior=posterior,
        posterior_mean={k: float(np.mean(v)) for k, v in posterior.items()},
        posterior_std={k: float(np.std(v)) for k, v in posterior.items()},
        rhat_max=1.0,
        ess_min=100.0,
        status=evidence.status,
    )


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(0)
    shape = (2, 300)
    om = 0.3 + 0.01 * rng.normal(size=shape)
    hrd = 101.0 - 60 * (om - 0.3) + 0.5 * rng.normal(size=shape)
    w0 = -0.8 + 0.15 * rng.normal(size=shape)
    posteriors = {
        "lcdm": {"omega_m": om, "h_rd": hrd},
        "wcdm": {"omega_m": om, "h_rd": hrd, "w": w0},
        "w0wacdm": {
            "omega_m": om,
            "h_rd": hrd,
            "w0": w0,
            "wa": -3 + np.abs(-1 - 3 * (w0 + 0.8) + 0.3 * rng.normal(size=shape)),
        },
    }
    key = jax.random.key(1)
    reports = {
        n: _report(jax.random.fold_in(key, i), n, p, shift)
        for i, (n, p, shift) in enumerate(
            (n, p, s) for (n, p), s in zip(posteriors.items(), (0.0, -2.0, 1.5), strict=True)
        )
    }
    factors = {n: log_bayes_factor(r, reports["lcdm"], n, "lcdm") for n, r in reports.items()}
    return ComparisonResult(
        models=reports,
        reference="lcdm",
        bayes_factors=factors,
        status=worst(r.status for r in reports.values()),
    )


def test_comparison_figure_values_bands_and_captions(comparison):
    fig = plot_comparison(
        {n: r.evidence for n, r in comparison.models.items()},
        comparison.bayes_factors,
        "lcdm",
    )
    axes = fig.axes
    assert len(axes) == 6
    # (b): ln B points at the known differences 0, -2, +1.5 (within 4 sigma)
    points = [c[0].get_xdata()[0] for c in axes[1].containers]
    errors = [r.log_bayes_factor_std for r in comparison.bayes_factors.values()]
    for value, truth, sigma in zip(points, (0.0, -2.0, 1.5), errors, strict=True):
        assert abs(value - truth) <= 4 * sigma + 1e-9
    readings = {t.get_text() for t in axes[1].texts}
    assert {"inconclusive", "weak", "moderate", "strong"} <= readings
    caption = fig.texts[-1].get_text()
    assert caption.count("Warning sign") == 6
    plt.close(fig)


def _subset(comparison, names):
    reports = {n: comparison.models[n] for n in names}
    return comparison._replace(
        models=reports, bayes_factors={n: comparison.bayes_factors[n] for n in names}
    )


def _check_comparison_figures(tmp_path, comparison, names, *, with_data):
    models = dark_energy_models()
    bao = desi_dr2_bao() if with_data else None
    written = write_comparison_figures(tmp_path, comparison, models, data=bao, chains_dir="getdist")
    expected = {f"triangle_{n}" for n in names} | {"triangle_overlay", "comparison"}
    if with_data:
        expected.add("bao_data_vs_model")
    else:
        assert "bao_data_vs_model" not in written
    assert expected <= set(written)
    for key in expected:
        assert written[key].is_file()
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = figures_markdown(written, tmp_path)
    for key in expected:
        assert f"![{key}]({key}.png)" in markdown
    assert "warning sign" in markdown.lower()
    # --no-plots: no figure, and a report with no figure section
    quiet = tmp_path / "quiet"
    assert write_comparison_figures(quiet, comparison, models, no_plots=True) == {}
    assert not list(quiet.glob("*.png"))
    assert figures_markdown({}, quiet) == ""
    with pytest.raises(ValueError, match="missing"):
        write_comparison_figures(tmp_path, comparison, models[:1], no_plots=True)
    return written


def test_comparison_figures_files_report_and_no_plots(tmp_path, comparison):
    # two models (2 and 3 parameters), the BAO figure drawn in its own test: the default
    # suite stays quick; the slow test renders the demo's full set
    two = _subset(comparison, ["lcdm", "wcdm"])
    _check_comparison_figures(tmp_path, two, ["lcdm", "wcdm"], with_data=False)
    labels = (tmp_path / "getdist" / "wcdm.paramnames").read_text()
    assert "w\tw" in labels
    assert r"\Omega_{\rm m}" in labels
    assert (tmp_path / "getdist" / "wcdm.ranges").read_text().splitlines()[-1] == "w\t-3.0\t1.0"


@pytest.mark.slow
def test_all_dark_energy_figures(tmp_path, comparison):
    _check_comparison_figures(tmp_path, comparison, ["lcdm", "wcdm", "w0wacdm"], with_data=True)
    assert (tmp_path / "getdist" / "w0wacdm.ranges").read_text().splitlines()[-1] == "wa\t-3.0\tN"
