"""BAO data-versus-model and comparison figures, and the files the commands write from them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.integrate import quad

from astrobayes._status import worst
from astrobayes.cli._figures import figures_markdown, write_comparison_figures
from astrobayes.comparison import ComparisonResult, ModelReport
from astrobayes.cosmology import desi_dr2_bao
from astrobayes.cosmology.dark_energy import dark_energy_models
from astrobayes.evidence import EvidenceResult, EvidenceStatus, log_bayes_factor
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


def _evidence(log_z, std, per_chain, temperature=0.8):
    # Known numbers, built by keyword: the figure must show exactly these.
    return EvidenceResult(
        log_evidence=log_z,
        log_evidence_std=std,
        status=EvidenceStatus.OK,
        messages=(EvidenceStatus.OK,),
        temperature=temperature,
        target="rqspline",
        per_chain_log_evidence=np.asarray(per_chain),
        num_training_chains=4,
        num_inference_chains=len(per_chain),
        num_inference_samples=1200,
        effective_sample_size=900.0,
        autocorrelation_time=1.2,
        pareto_k=0.2,
        kurtosis=3.1,
        variance_of_variance=0.1,
        log_evidence_std_between_chains=float(np.std(per_chain) / np.sqrt(len(per_chain))),
        temperature_scores={0.5: 0.3, 0.6: 0.2, 0.7: 0.15, 0.8: 0.1, 0.9: 0.12},
        training_losses=np.linspace(3.0, 1.0, 20),
    )


def _report(name, posterior, evidence):
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
    log_z = {"lcdm": (-10.0, 0.05), "wcdm": (-12.0, 0.08), "w0wacdm": (-8.5, 0.2)}
    reports = {
        n: _report(n, p, _evidence(*log_z[n], log_z[n][0] + np.array([-0.05, 0.02, 0.04])))
        for n, p in posteriors.items()
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
    # (a) and (b): the values and error bars given, at their models' rows
    lnz = [c[0].get_xdata()[0] for c in axes[0].containers]
    np.testing.assert_allclose(lnz, [-10.0, -12.0, -8.5])
    points = [c[0].get_xdata()[0] for c in axes[1].containers]
    np.testing.assert_allclose(points, [0.0, -2.0, 1.5])
    bar = axes[1].containers[2][2][0].get_segments()[0]  # w0wacdm's error bar
    sigma = comparison.bayes_factors["w0wacdm"].log_bayes_factor_std
    np.testing.assert_allclose(bar[:, 0], [1.5 - sigma, 1.5 + sigma])
    # (c) per-chain minus combined; (d) the chosen temperature starred at its score
    np.testing.assert_allclose(axes[2].lines[0].get_ydata(), [-0.05, 0.02, 0.04], atol=1e-12)
    stars = [ln for ln in axes[3].lines if ln.get_marker() == "*"]
    assert len(stars) == 3
    assert stars[0].get_xdata()[0] == 0.8
    assert stars[0].get_ydata()[0] == 0.1
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


def _check_comparison_figures(tmp_path, comparison, names, *, with_data, overlay=True):
    models = dark_energy_models()
    bao = desi_dr2_bao() if with_data else None
    written = write_comparison_figures(tmp_path, comparison, models, data=bao, chains_dir="getdist")
    expected = {f"triangle_{n}" for n in names} | {"comparison"}
    if overlay:
        expected.add("triangle_overlay")
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
        write_comparison_figures(tmp_path, comparison, models[1:], no_plots=True)
    return written


def test_comparison_figures_files_report_and_no_plots(tmp_path, comparison):
    # one model keeps the default suite quick (overlays: test_plots_triangle; BAO: above);
    # the slow test renders the demo's full set
    one = _subset(comparison, ["lcdm"])
    written = _check_comparison_figures(tmp_path, one, ["lcdm"], with_data=False, overlay=False)
    assert "triangle_overlay" not in written
    assert r"\Omega_{\rm m}" in (tmp_path / "getdist" / "lcdm.paramnames").read_text()
    assert (tmp_path / "getdist" / "lcdm.ranges").read_text().splitlines()[
        -1
    ] == "h_rd\t50.0\t150.0"


@pytest.mark.slow
def test_all_dark_energy_figures(tmp_path, comparison):
    _check_comparison_figures(tmp_path, comparison, ["lcdm", "wcdm", "w0wacdm"], with_data=True)
    labels = (tmp_path / "getdist" / "wcdm.paramnames").read_text()
    assert "w\tw" in labels
    assert (tmp_path / "getdist" / "wcdm.ranges").read_text().splitlines()[-1] == "w\t-3.0\t1.0"
    assert (tmp_path / "getdist" / "w0wacdm.ranges").read_text().splitlines()[-1] == "wa\t-3.0\tN"


def test_log_uniform_parameters_are_drawn_in_ln_x(tmp_path, monkeypatch):
    # v is log-uniform in both models that have it, s only in one: v is drawn as ln v
    # (labels, ranges and values), s and a as they are; the GetDist chains keep x
    import numpyro.distributions as dist

    import astrobayes.plots.triangle as triangle
    from astrobayes.models import Model

    rng = np.random.default_rng(1)
    v = np.exp(rng.normal(1.0, 0.5, (2, 300)))
    s = rng.uniform(1.0, 2.0, (2, 300))
    a = rng.normal(size=(2, 300))
    priors = {
        "one": {"v": dist.LogUniform(0.01, 100.0), "s": dist.LogUniform(1.0, 2.0)},
        "two": {
            "v": dist.LogUniform(0.01, 100.0),
            "s": dist.Uniform(1.0, 2.0),
            "a": dist.Normal(0.0, 1.0),
        },
    }
    models = {
        n: Model.from_priors(n, lambda p: 0.0, p, labels={"v": "V_b"}) for n, p in priors.items()
    }
    posteriors = {"one": {"v": v, "s": s}, "two": {"v": v, "s": s, "a": a}}
    reports = {
        n: _report(n, posteriors[n], _evidence(-1.0 - i, 0.01, [-1.0 - i] * 3))
        for i, n in enumerate(posteriors)
    }
    comparison = ComparisonResult(
        models=reports,
        reference="one",
        bayes_factors={
            n: log_bayes_factor(r, reports["one"], n, "one") for n, r in reports.items()
        },
        status=EvidenceStatus.OK,
    )
    seen = {}
    original = triangle.to_mcsamples

    def capture(posterior, *, names, labels, ranges, label):
        seen[label] = (dict(posterior), dict(labels), dict(ranges))
        return original(posterior, names=names, labels=labels, ranges=ranges, label=label)

    monkeypatch.setattr(triangle, "to_mcsamples", capture)
    written = write_comparison_figures(tmp_path, comparison, models, chains_dir="getdist")
    assert written["triangle_overlay"].is_file()
    for name in ("one", "two"):
        posterior, labels, ranges = seen[name]
        np.testing.assert_allclose(posterior["v"], np.log(v))
        assert labels["v"] == r"\ln V_b"
        np.testing.assert_allclose(ranges["v"], np.log([0.01, 100.0]))
        np.testing.assert_array_equal(posterior["s"], s)  # log-uniform in one model only
        assert labels["s"] == "s"
    np.testing.assert_array_equal(seen["two"][0]["a"], a)
    names = (tmp_path / "getdist" / "one.paramnames").read_text().split()
    column = names.index("v") // 2  # "name label" lines: v's column among the parameters
    getdist_chain = np.loadtxt(str(written["getdist_one"]) + "_1.txt")
    np.testing.assert_allclose(getdist_chain[:, 2 + column], v[0], rtol=1e-6)
    plt.close("all")
