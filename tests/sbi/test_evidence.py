"""Model comparison on two linear-Gaussian simulators with analytic evidences."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from astrobayes._status import UnreliableResultError
from astrobayes.evidence import EvidenceStatus
from astrobayes.sbi import NLE, FlowConfig, Prior, SBITrainingConfig, simulate_for_prior, train_nle
from astrobayes.sbi.estimators import conditional_flow
from astrobayes.sbi.evidence import nle_evidence

SIGMA = 0.3
PRIOR_STD = 1.0
A1 = np.array([[1.0, 0.0], [0.0, 1.0]])
A2 = np.array([[1.0, 0.5], [0.0, 2.0]])


def _simulator(matrix):
    m = jnp.asarray(matrix, jnp.float32)

    def simulate(key, theta):
        return m @ theta + SIGMA * jax.random.normal(key, (2,))

    return simulate


def _log_evidence(matrix, x):
    cov = PRIOR_STD**2 * matrix @ matrix.T + SIGMA**2 * np.eye(2)
    return stats.multivariate_normal(np.zeros(2), cov).logpdf(x)


def test_nle_evidence_validation(key):
    with pytest.raises(TypeError, match="must be a trained NLE"):
        nle_evidence(key, "nle", np.zeros(2))
    with pytest.raises(TypeError, match="must be a trained NLE"):
        nle_evidence(key, [], np.zeros(2))


class _FakeEvidence(NamedTuple):
    log_evidence: float
    log_evidence_std: float
    status: EvidenceStatus


def _tiny_nle(key):
    flow = conditional_flow(key, 2, 2, FlowConfig(flow_layers=1, nn_width=4, knots=0))
    zeros, ones = jnp.zeros(2), jnp.ones(2)
    prior = Prior.normal([0.0, 0.0], [1.0, 1.0])
    return NLE(flow=flow, prior=prior, u_shift=zeros, u_scale=ones, x_shift=zeros, x_scale=ones)


def test_nle_evidence_worst_status_and_throw(key, monkeypatch):
    """Forced failure: one member's estimate fails; the ensemble reports it and throws."""
    statuses = iter([EvidenceStatus.OK, EvidenceStatus.NON_FINITE])

    def fake(key, nle, x_obs, num_samples_per_chain, mcmc_config, estimate_kwargs):
        return _FakeEvidence(-1.0, 0.1, next(statuses)), None

    monkeypatch.setattr("astrobayes.sbi.evidence._one_evidence", fake)
    members = [_tiny_nle(key), _tiny_nle(key)]
    with pytest.raises(UnreliableResultError, match="non-finite") as error:
        nle_evidence(key, members, np.zeros(2), throw=True)
    assert error.value.result.status is EvidenceStatus.NON_FINITE
    assert error.value.result.log_evidence == -1.0


@pytest.mark.slow
def test_log_bayes_factor_matches_analytic(key):
    prior = Prior.normal([0.0, 0.0], [PRIOR_STD, PRIOR_STD])
    x_obs = np.array([0.7, -0.4])
    results = []
    for i, matrix in enumerate((A1, A2)):
        k_sim, k_train, k_ev = jax.random.split(jax.random.fold_in(key, i), 3)
        sims = simulate_for_prior(k_sim, prior, _simulator(matrix), 5000)
        ensemble = [
            train_nle(
                k, prior, sims.theta, sims.x, training_config=SBITrainingConfig(max_epochs=300)
            )[0]
            for k in jax.random.split(k_train, 3)
        ]
        results.append(nle_evidence(k_ev, ensemble, x_obs))
    log_b = results[0].log_evidence - results[1].log_evidence
    sigma = np.hypot(results[0].log_evidence_std, results[1].log_evidence_std)
    truth = _log_evidence(A1, x_obs) - _log_evidence(A2, x_obs)
    print(f"ln B = {log_b:.3f} +- {sigma:.3f}; analytic {truth:.3f}")
    for r, m in zip(results, (A1, A2), strict=True):
        print(
            f"ln z = {r.log_evidence:.3f} +- {r.log_evidence_std:.3f} "
            f"(MC {r.log_evidence_std_monte_carlo:.3f}, "
            f"between NLEs {r.log_evidence_std_between_estimators:.3f}); "
            f"analytic {_log_evidence(m, x_obs):.3f}; members "
            f"{[round(e.log_evidence, 3) for e in r.evidences]}"
        )
    assert abs(log_b - truth) < 3 * sigma
