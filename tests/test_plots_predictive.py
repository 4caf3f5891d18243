"""Data against posterior predictions for a Gaussian likelihood: chi2 and residuals checked."""

from __future__ import annotations

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from astrobayes.cli._figures import figures_markdown, write_data_vs_model_figure
from astrobayes.plots.predictive import plot_data_vs_model, predictive_draws, whitened_residuals


def test_whitened_residuals_give_the_gaussian_chi2():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 6 * np.eye(6)
    y, m = rng.normal(size=6), rng.normal(size=6)
    white = whitened_residuals(y, m, cov)
    np.testing.assert_allclose(white @ white, (y - m) @ np.linalg.solve(cov, y - m), rtol=1e-10)
    # negative control: the diagonal alone gives another chi2 for a correlated covariance
    diag = whitened_residuals(y, m, np.diag(cov))
    assert abs(diag @ diag - white @ white) > 1e-3
    with pytest.raises(ValueError, match="covariance"):
        whitened_residuals(y, m, np.eye(3))


def test_figure_of_a_straight_line_and_its_files(tmp_path):
    x = np.linspace(0.0, 1.0, 8)
    sigma = 0.1
    y = 1.0 + 2.0 * x + sigma * np.random.default_rng(1).normal(size=8)
    rng = np.random.default_rng(2)
    posteriors = {
        "line": {
            "a": 1.0 + 0.02 * rng.normal(size=(2, 100)),
            "b": 2.0 + 0.03 * rng.normal(size=(2, 100)),
        },
        "flat": {"a": 2.0 + 0.02 * rng.normal(size=(2, 100))},
    }
    means = {
        "line": lambda p: p["a"] + p["b"] * jnp.asarray(x),
        "flat": lambda p: p["a"] * jnp.ones(8),
    }
    draws = predictive_draws(posteriors["line"], means["line"], num_draws=50)
    assert draws.shape == (50, 8)
    fig = plot_data_vs_model(
        x, y, np.full(8, sigma**2), {"line": draws}, x_label="x [m]", y_label="y [s]"
    )
    (label,) = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    white = (y - np.median(draws, axis=0)) / sigma
    assert f"{white @ white:.1f}" in label
    plt.close(fig)
    written = write_data_vs_model_figure(
        tmp_path, x, y, np.full(8, sigma**2), posteriors, means, x_label="x [m]", y_label="y [s]"
    )
    assert written["data_vs_model"].is_file()
    assert "![data_vs_model](data_vs_model.png)" in figures_markdown(written, tmp_path)
    assert (
        write_data_vs_model_figure(tmp_path, x, y, np.ones(8), posteriors, means, no_plots=True)
        == {}
    )
