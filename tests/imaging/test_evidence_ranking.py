"""Helpers of ``benchmarks/imaging_evidence_ranking.py`` (issue 12 item 5), cheap checks.

The benchmark itself (10 galaxies, nested sampling per prior) takes about an hour; here
the exact posterior mean of the smoothed data-driven prior is checked against a Gaussian
prior, where every term is analytic, and the ranking verdict on hand-made rows.
"""

import math
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from imaging_evidence_ranking import PriorRow, agreement, denoiser_posterior_mean  # noqa: E402


def test_smoothed_prior_posterior_mean_is_exact_for_a_gaussian_prior():
    # p_data = N(0, a^2): the MMSE denoiser is D_t(z) = a^2 / (a^2 + t^2) z, and under the
    # smoothed prior p_s = N(0, a^2 + s^2) with noise sigma, E[x | z] = (a^2 + s^2) /
    # (a^2 + s^2 + sigma^2) z.
    a, sigma, s = 0.7, 0.3, 0.15

    def gaussian_denoiser(z, t):
        return a**2 / (a**2 + t**2) * z

    z = jnp.asarray(np.random.default_rng(0).normal(size=(8, 8)))
    mean = denoiser_posterior_mean(gaussian_denoiser, z, sigma, s)
    expected = (a**2 + s**2) / (a**2 + s**2 + sigma**2) * z
    np.testing.assert_allclose(np.asarray(mean), np.asarray(expected), rtol=1e-6, atol=1e-7)


def _row(log_z, error, snr):
    nan = math.nan
    return PriorRow(log_z, error, nan, 0, nan, "OK", snr, nan, "", nan, nan, nan)


@pytest.mark.parametrize(
    ("snr_den", "agree", "significant"),
    [(12.0, True, True), (8.0, False, True)],
)
def test_agreement_compares_orderings_and_flags_significance(snr_den, agree, significant):
    rows = {"wavelets": _row(100.0, 3.0, 10.0), "denoiser": _row(120.0, 4.0, snr_den)}
    verdict = agreement(rows)
    assert verdict["rank_by_lnz"] == ["denoiser", "wavelets"]
    assert verdict["agree"] is agree
    assert verdict["delta_lnz_closest"] == pytest.approx(20.0)
    assert verdict["delta_lnz_error"] == pytest.approx(5.0)
    assert verdict["significant_3sigma"] is significant
    close = {"wavelets": _row(100.0, 3.0, 10.0), "denoiser": _row(104.0, 4.0, 12.0)}
    assert agreement(close)["significant_3sigma"] is False
