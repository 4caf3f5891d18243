"""The learned harmonic mean with a flow trained elsewhere (e.g. flow MCMC's) as its target."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowjax.bijections import Affine
from flowjax.distributions import Normal, Transformed

from astrobayes.chains import Chains
from astrobayes.evidence import EvidenceStatus, PretrainedFlowTarget, estimate

MU = np.array([3.0, -1.0])
SD = np.array([0.5, 2.0])
TRUTH = float(np.log(2 * np.pi * np.prod(SD)))  # z of exp(-|(x - mu) / sd|^2 / 2)


def _chains(seed: int = 1) -> Chains:
    x = MU + SD * np.random.default_rng(seed).normal(size=(8, 1000, 2))
    return Chains(x, -0.5 * (((x - MU) / SD) ** 2).sum(-1))


def _unit_flow():
    return Transformed(Normal(jnp.zeros(2)), Affine(jnp.zeros(2), jnp.ones(2)))


def test_exact_flow_gives_the_evidence_and_its_density_is_the_flows():
    target = PretrainedFlowTarget(_unit_flow(), MU, SD)
    result = estimate(jax.random.key(0), _chains(), target=target)
    assert result.status is EvidenceStatus.OK
    assert abs(result.log_evidence - TRUTH) < 4 * result.log_evidence_std
    # a 1% error in ln z would fail the same window: the error bar is tight
    assert abs(result.log_evidence + 0.01 - TRUTH) > 4 * result.log_evidence_std
    # the whitening is the flow's own standardisation
    whitening = target.make_whitening(np.zeros((3, 2)), np.ones(3))
    np.testing.assert_allclose(whitening.mean, MU)
    np.testing.assert_allclose(np.diag(whitening.cholesky), SD)


@pytest.mark.parametrize(("mean", "scale"), [(MU + 5 * SD, SD), (MU, 3 * SD)])
def test_a_wrong_flow_is_flagged(mean, scale):
    """Negative controls: a shifted or too wide flow is reported, not trusted."""
    result = estimate(
        jax.random.key(0), _chains(), target=PretrainedFlowTarget(_unit_flow(), mean, scale)
    )
    assert not result.status.is_ok


def test_validation():
    with pytest.raises(ValueError, match="mean and scale must be"):
        PretrainedFlowTarget(_unit_flow(), np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="scale must be finite and positive"):
        PretrainedFlowTarget(_unit_flow(), np.zeros(2), np.array([1.0, 0.0]))
    x = np.random.default_rng(0).normal(size=(4, 100, 3))
    with pytest.raises(ValueError, match="the flow is 2-dimensional; the chains have 3"):
        estimate(
            jax.random.key(0),
            Chains(x, -0.5 * (x**2).sum(-1)),
            target=PretrainedFlowTarget(_unit_flow(), np.zeros(2), np.ones(2)),
        )


@pytest.mark.slow
def test_flow_mcmc_flow_as_target_on_a_bimodal_posterior():
    """Flow MCMC's frozen production flow as the target: ln z = -ln 256 within 4 sigma."""
    from jax.scipy.stats import norm

    from astrobayes.sampling import FlowMCMCConfig, run_flow_mcmc

    def logdensity(x):  # weights 0.75 / 0.25 in x, N(0, 1) in y, Uniform(-8, 8)^2 prior
        modes = jnp.stack(
            [
                jnp.log(0.75) + norm.logpdf(x[0], -3.0, 1.0),
                jnp.log(0.25) + norm.logpdf(x[0], 3.0, 1.0),
            ]
        )
        inside = jnp.all(jnp.abs(x) < 8.0)
        value = jax.scipy.special.logsumexp(modes) + norm.logpdf(x[1]) - jnp.log(256.0)
        return jnp.where(inside, value, -jnp.inf)

    config = FlowMCMCConfig(
        num_chains=16,
        num_loops_training=3,
        num_loops_production=20,
        num_epochs=10,
        flow_layers=2,
        nn_width=16,
        max_flow_samples=4000,
    )
    starts = jax.random.uniform(jax.random.key(1), (16, 2), minval=-6.0, maxval=6.0)
    run = run_flow_mcmc(jax.random.key(0), logdensity, starts, config=config)
    proposal = run.proposal
    target = PretrainedFlowTarget(
        proposal.flow, np.asarray(proposal.mean), np.asarray(proposal.scale)
    )
    result = estimate(jax.random.key(2), run.to_chains(), target=target)
    truth = -np.log(256.0)
    assert abs(result.log_evidence - truth) < 4 * result.log_evidence_std, (
        result.log_evidence,
        result.log_evidence_std,
        result.status,
    )
