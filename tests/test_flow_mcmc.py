"""Flow-enhanced MCMC: validation, mode weights against truth, and a negative control."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from astrobayes.sampling import (
    FlowMCMCConfig,
    FlowMCMCStatus,
    NUTSConfig,
    SamplingStatus,
    run_flow_mcmc,
    run_nuts,
)

#: Two separated modes with weights 0.75 / 0.25 (2-d, unit scale, means +-3 on each axis).
MEANS = np.array([[-3.0, -3.0], [3.0, 3.0]])
WEIGHTS = np.array([0.75, 0.25])
SMALL = FlowMCMCConfig(
    num_chains=16,
    num_burnin_steps=100,
    num_loops_training=3,
    num_loops_production=10,
    num_local_steps=20,
    num_global_steps=20,
    num_epochs=6,
    flow_layers=2,
    nn_width=16,
    max_flow_samples=2000,
)


def _bimodal(x):
    d2 = jnp.sum((x[None, :] - jnp.asarray(MEANS)) ** 2, axis=-1)
    return logsumexp(jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * d2 - jnp.log(2 * jnp.pi))


def _shares(samples):
    label = np.argmin(((samples[..., None, :] - MEANS) ** 2).sum(-1), axis=-1)
    per_chain = np.mean(label == 0, axis=1)
    return per_chain.mean(), per_chain.std(ddof=1) / np.sqrt(per_chain.size)


def test_rejects_bad_input(key):
    with pytest.raises(ValueError, match=r"shape \(num_chains=16, dim\); got \(3, 2\)"):
        run_flow_mcmc(key, _bimodal, jnp.zeros((3, 2)), config=SMALL)
    with pytest.raises(ValueError, match="initial_positions must be finite"):
        run_flow_mcmc(key, _bimodal, jnp.full((16, 2), jnp.nan), config=SMALL)
    with pytest.raises(ValueError, match=r"initial_positions\[0\] is not finite"):
        run_flow_mcmc(key, lambda x: jnp.log(x[0]), -jnp.ones((16, 2)), config=SMALL)
    with pytest.raises(ValueError, match="names must hold dim = 2"):
        run_flow_mcmc(key, _bimodal, jnp.zeros((16, 2)), config=SMALL, names=("a",))
    with pytest.raises(TypeError, match="config must be a FlowMCMCConfig"):
        run_flow_mcmc(key, _bimodal, jnp.zeros((16, 2)), config=NUTSConfig())
    with pytest.raises(ValueError, match="num_chains"):
        FlowMCMCConfig(num_chains=3)
    with pytest.raises(ValueError, match="num_global_steps"):
        FlowMCMCConfig(num_global_steps=0)
    with pytest.raises(ValueError, match="interval must be a positive finite"):
        FlowMCMCConfig(interval=-1.0)


@pytest.mark.slow
def test_mode_weights_match_truth_and_nuts_alone_does_not(key):
    """Flow MCMC recovers the 0.75 weight; NUTS from the same starts cannot (status says so)."""
    init_key, run_key, nuts_key = jax.random.split(key, 3)
    init = 4.0 * jax.random.normal(init_key, (16, 2))
    result = run_flow_mcmc(run_key, _bimodal, init, config=SMALL)
    share, error = _shares(result.samples)
    # per-chain batch means; 4 sigma so that a correct sampler fails about 1 run in 16,000
    assert abs(share - WEIGHTS[0]) < 4 * error + 0.01, (share, error)
    assert np.all(result.global_acceptance > 0.05)
    assert np.max(result.rhat) < 1.1
    assert result.status.is_ok or FlowMCMCStatus.FLOW_EVIDENCE_TAILS not in result.messages
    assert result.num_logdensity_evaluations == 16 * (1 + 100 + 13 * 20 + 12 * 20)
    # the flow is a normalised proposal: importance sampling recovers ln z = 0
    assert abs(result.flow_log_evidence) < 4 * result.flow_log_evidence_std + 0.02
    chains = result.to_chains()
    assert chains.samples.shape == (16, 10 * 40, 2)

    # Negative control: NUTS alone from the same starts keeps each chain in its basin.
    nuts = run_nuts(
        nuts_key, _bimodal, init, config=NUTSConfig(num_chains=16, num_warmup=100, num_samples=100)
    )
    nuts_share, nuts_error = _shares(nuts.samples)
    assert nuts.status is SamplingStatus.NOT_CONVERGED
    assert np.max(nuts.rhat) > 1.1
    del nuts_share, nuts_error


@pytest.mark.slow
def test_same_key_same_draws(key):
    config = FlowMCMCConfig(
        num_chains=4,
        num_burnin_steps=3,
        num_loops_training=1,
        num_loops_production=1,
        num_local_steps=4,
        num_global_steps=4,
        num_epochs=1,
        flow_layers=1,
        nn_width=8,
        max_flow_samples=40,
    )
    init = jax.random.normal(key, (4, 2))
    first = run_flow_mcmc(key, _bimodal, init, config=config)
    second = run_flow_mcmc(key, _bimodal, init, config=config)
    np.testing.assert_array_equal(first.samples, second.samples)


class _KilledAfter:
    """A checkpoint that stores, then raises ``KeyboardInterrupt`` at its ``after``-th save."""

    def __init__(self, inner, after):
        self.inner, self.after, self.saves = inner, after, 0

    def load(self):
        return self.inner.load()

    def save(self, arrays):
        self.inner.save(arrays)
        self.saves += 1
        if self.saves == self.after:
            raise KeyboardInterrupt


@pytest.mark.slow  # seven runs, each compiling its flow training (~1 min here under load)
def test_killed_run_resumes_bitwise(key, tmp_path):
    """Killed after burn-in, mid-training and mid-production: the resumed run is bitwise equal."""
    from astrobayes.io import NpzCheckpoint

    config = FlowMCMCConfig(
        num_chains=4,
        num_burnin_steps=6,
        num_loops_training=2,
        num_loops_production=3,
        num_local_steps=4,
        num_global_steps=4,
        num_epochs=1,
        flow_layers=1,
        nn_width=8,
        max_flow_samples=60,
        checkpoint_every=1,
    )
    init = 3.0 * jax.random.normal(key, (4, 2))
    whole = run_flow_mcmc(key, _bimodal, init, config=config)
    assert whole.resumed_from == 0
    for after in (1, 2, 4):  # burn-in, first training loop, first production loop
        store = NpzCheckpoint(tmp_path / f"killed{after}.npz")
        with pytest.raises(KeyboardInterrupt):
            run_flow_mcmc(key, _bimodal, init, config=config, checkpoint=_KilledAfter(store, after))
        resumed = run_flow_mcmc(key, _bimodal, init, config=config, checkpoint=store)
        assert resumed.resumed_from > 0
        np.testing.assert_array_equal(resumed.samples, whole.samples)
        np.testing.assert_array_equal(resumed.logdensity, whole.logdensity)
        assert resumed.flow_log_evidence == whole.flow_log_evidence
        assert resumed.num_logdensity_evaluations == whole.num_logdensity_evaluations
    # negative control: another key's checkpoint is refused by name
    with pytest.raises(ValueError, match="checkpoint belongs to a different run"):
        run_flow_mcmc(jax.random.key(99), _bimodal, init, config=config, checkpoint=store)
