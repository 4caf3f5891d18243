"""The Gaussian-mixture target of the learned harmonic mean on multimodal posteriors.

Truth: a two-mode Gaussian mixture posterior (weights 0.7 / 0.3, modes at -3 and +3 in
every coordinate, unit covariance) with a known evidence, sampled exactly (i.i.d.), so the
reported error must cover the truth at its nominal rate. Negative controls: a single
Gaussian target on the same draws is flagged, and the coverage check rejects an error
bar that is too small.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

from astrobayes.chains import Chains
from astrobayes.evidence import EvidenceStatus, GaussianMixtureTarget, GaussianTarget, estimate

LOG_Z = -1.5
WEIGHTS = np.array([0.7, 0.3])
DIM = 4


def _bimodal_chains(rng, num_chains=8, num_samples=1000) -> Chains:
    """Exact draws of ``0.7 N(-3, I) + 0.3 N(3, I)`` with log posterior ``ln z + ln p``."""
    shape = (num_chains, num_samples)
    centre = np.where(rng.random(shape) < WEIGHTS[0], -3.0, 3.0)[..., None]
    x = centre + rng.standard_normal((*shape, DIM))
    log_norm = -0.5 * DIM * np.log(2 * np.pi)
    terms = [
        np.log(w) + log_norm - 0.5 * np.sum((x - m) ** 2, axis=-1)
        for w, m in zip(WEIGHTS, (-3.0, 3.0), strict=True)
    ]
    return Chains(x, LOG_Z + np.logaddexp(*terms))


# slow (~20 s, 24 EM fits): the fast suite checks one estimate against the truth within
# its error (with a shifted truth as the control) in the test below
@pytest.mark.slow
@pytest.mark.usefixtures("optimized_xla")  # 24 EM fits: running, not compiling
def test_mixture_target_error_covers_the_truth_on_a_bimodal_posterior():
    # Over repeats the fraction with |est - truth| <= sigma must be near 68.3%, within
    # max(0.12, 2 binomial standard deviations); every pull within 4.5 sigma.
    num_repeats = 24
    rng = np.random.default_rng(3)
    pulls = []
    for index in range(num_repeats):
        result = estimate(
            jax.random.key(index), _bimodal_chains(rng), target=GaussianMixtureTarget(3)
        )
        assert result.status is EvidenceStatus.OK, result.messages
        assert 0.0 < result.log_evidence_std < 0.02
        pulls.append((result.log_evidence - LOG_Z) / result.log_evidence_std)
    pulls = np.asarray(pulls)
    assert np.all(np.abs(pulls) <= 4.5), pulls
    expected = stats.norm.cdf(1) - stats.norm.cdf(-1)
    slack = max(0.12, 2.0 * np.sqrt(expected * (1 - expected) / num_repeats))
    fraction = np.mean(np.abs(pulls) <= 1.0)
    assert abs(fraction - expected) <= slack, (fraction, pulls)
    # Negative control for the check itself: an error bar three times too small covers
    # far less than nominal and fails the same window.
    assert np.mean(np.abs(3.0 * pulls) <= 1.0) < expected - slack


def test_single_gaussian_target_is_flagged_on_the_same_posterior(key):
    # One Gaussian across both modes has fatter tails than the posterior between and
    # beyond them: the ratios are heavy-tailed and the status must not be OK.
    chains = _bimodal_chains(np.random.default_rng(4))
    result = estimate(key, chains, target=GaussianTarget())
    assert not result.status.is_ok, (result.status, result.pareto_k)
    assert result.pareto_k > 0.5
    good = estimate(key, chains, target=GaussianMixtureTarget(3))
    assert good.status is EvidenceStatus.OK
    assert good.pareto_k < 0.5
    # and its ln z is within its error of the truth; a truth 0.1 nats off (many sigma)
    # fails the same check (the calibration over 24 repeats is in the slow suite)
    assert 0.0 < good.log_evidence_std < 0.02
    assert abs(good.log_evidence - LOG_Z) < 4.5 * good.log_evidence_std
    assert abs(good.log_evidence - (LOG_Z + 0.1)) > 4.5 * good.log_evidence_std


def test_component_count_is_chosen_on_held_out_draws(key):
    chains = _bimodal_chains(np.random.default_rng(5), num_chains=2)
    z = chains.samples.reshape(-1, DIM)
    w = np.ones(z.shape[0])
    mixture, losses = GaussianMixtureTarget(max_components=4).fit(
        key, z[:1000], w[:1000], z[1000:], w[1000:], None
    )
    used = np.asarray(mixture.weights) > 1e-6
    assert used.sum() == 2, mixture.weights
    np.testing.assert_allclose(np.sort(np.asarray(mixture.weights)[used]), [0.3, 0.7], atol=0.05)
    assert losses.shape == (1,)
    assert np.isfinite(losses[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_components": 0}, ValueError, "max_components must be >= 1; got 0"),
        ({"num_inits": 1.5}, TypeError, "num_inits must be an integer; got float 1.5"),
        (
            {"selection_tolerance": -1.0},
            ValueError,
            "selection_tolerance must be a finite number >= 0",
        ),
        (
            {"covariance_floor": float("nan")},
            ValueError,
            "covariance_floor must be a finite number",
        ),
    ],
)
def test_bad_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianMixtureTarget(**kwargs)
