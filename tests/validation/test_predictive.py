"""Posterior predictive check against a conjugate Gaussian with an exact posterior."""

import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.validation import PredictiveStatus, posterior_predictive_check

DIM, NUM_DRAWS, NUM_OBS = 3, 4000, 40


def _predictive(rng, x_obs, shift=0.0, scale=1.0):
    """x ~ N(theta, I), theta ~ N(0, I): the posterior is N(x_obs / 2, I / 2) exactly.

    ``shift`` moves and ``scale`` scales the posterior draws (a wrong posterior).
    """
    theta = x_obs / 2 + shift + scale * np.sqrt(0.5) * rng.normal(size=(NUM_DRAWS, DIM))
    return theta + rng.normal(size=(NUM_DRAWS, DIM))


def _observations(rng):
    theta = rng.normal(size=(NUM_OBS, DIM))
    return theta + rng.normal(size=(NUM_OBS, DIM))


def test_exact_posterior_is_rarely_flagged():
    rng = np.random.default_rng(0)
    flags = [
        posterior_predictive_check(x, _predictive(rng, x)).status is PredictiveStatus.X_OBS_IN_TAIL
        for x in _observations(rng)
    ]
    # At most the nominal 1% (predictive p-values are conservative): P(>= 4 of 40) < 1e-3.
    assert sum(flags) <= 3


def test_wrong_posterior_is_flagged():
    """Negative control: a posterior shifted by 4 (5.7 posterior sd) in every component.

    The check has little power against small errors (measured: a shift of 2, 2.8 posterior
    sd, is flagged 3 times in 40); it is meant for gross, silent failures.
    """
    rng = np.random.default_rng(1)
    results = [
        posterior_predictive_check(x, _predictive(rng, x, shift=4.0)) for x in _observations(rng)
    ]
    assert sum(r.status is PredictiveStatus.X_OBS_IN_TAIL for r in results) >= 36  # 40 seen
    assert all(r.p_adjusted <= 1 for r in results)


def test_p_values_are_uniform_ranks_for_a_draw_of_the_predictive():
    """If x_obs were itself a predictive draw, its component ranks are uniform."""
    rng = np.random.default_rng(2)
    p = []
    for _ in range(200):
        sims = rng.normal(size=(NUM_DRAWS + 1, DIM))
        p.append(posterior_predictive_check(sims[0], sims[1:]).p_values)
    p = np.concatenate(p)
    # Two-sided rank p-values of a uniform rank are uniform on (0, 1]: mean 1/2, sd 1/sqrt(12).
    assert abs(p.mean() - 0.5) <= 4.5 / np.sqrt(12 * p.size)


def test_bad_inputs():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(NUM_DRAWS, DIM))
    with pytest.raises(ValueError, match="x_predictive must have shape"):
        posterior_predictive_check(np.zeros(2), sims)
    with pytest.raises(ValueError, match="at least 800 are needed"):
        posterior_predictive_check(np.zeros(DIM), sims[:100])
    with pytest.raises(ValueError, match="x_obs must be finite"):
        posterior_predictive_check(np.array([0.0, np.nan, 0.0]), sims)
    with pytest.raises(ValueError, match="significance"):
        posterior_predictive_check(np.zeros(DIM), sims, significance=1.5)


def test_flag_is_a_failure_and_throws():
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(NUM_DRAWS, DIM))
    assert PredictiveStatus.X_OBS_IN_TAIL.is_failure
    assert posterior_predictive_check(np.zeros(DIM), draws, throw=True).status.is_ok
    with pytest.raises(UnreliableResultError, match="far tail") as error:
        posterior_predictive_check(np.full(DIM, 6.0), draws, throw=True)
    assert error.value.result.p_adjusted < 0.01
