"""The per-observation diagnostic (issue 16 item 3): local_likelihood_check.

The NLE is built by hand so that its learned likelihood is known exactly: the flow maps
a standard normal z to x = theta + offset + scale * z (a conditional affine bijection),
for the linear-Gaussian simulator x = theta + 0.3 * noise. Negative control: with the
simulator's own scale and no offset, at observations typical and in the tail, the check
does not flag. Positive controls, checked against the same simulations: a learned
likelihood twice too narrow (wrong at every x_obs: too many simulations beyond x_obs)
and one whose second component is off by 0.5 (1.7 noise sigmas; wrong near x_obs along
that component only, which the message names). One trained NLE (slow) must pass too.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowjax.bijections import AbstractBijection
from flowjax.distributions import Normal, Transformed

from astrobayes.sbi import (
    NLE,
    FlowConfig,
    LikelihoodCheckStatus,
    Prior,
    SBITrainingConfig,
    local_likelihood_check,
    train_nle,
)

NOISE = 0.3
NUM_DRAWS = 1000


class _ShiftScale(AbstractBijection):
    """x = condition + offset + scale * z (conditional affine, exact test likelihood)."""

    offset: jax.Array
    scale: jax.Array
    shape: tuple[int, ...] = eqx.field(static=True, default=(2,))
    cond_shape: tuple[int, ...] = eqx.field(static=True, default=(2,))

    def transform_and_log_det(self, x, condition=None):
        return condition + self.offset + self.scale * x, jnp.sum(jnp.log(self.scale))

    def inverse_and_log_det(self, y, condition=None):
        return (y - condition - self.offset) / self.scale, -jnp.sum(jnp.log(self.scale))


def _nle(scale=NOISE, offset=(0.0, 0.0)):
    bijection = _ShiftScale(jnp.asarray(offset), jnp.full(2, scale))
    zeros, ones = jnp.zeros(2), jnp.ones(2)
    return NLE(
        flow=Transformed(Normal(zeros), bijection),
        prior=Prior.normal([0.0, 0.0], [3.0, 3.0]),  # unconstrained space = theta
        u_shift=zeros,
        u_scale=ones,
        x_shift=zeros,
        x_scale=ones,
    )


@pytest.fixture(scope="module")
def nle():
    return _nle()


def _posterior_draws(key, x_obs):
    """Draws near x_obs (the check does not need them to be the exact posterior)."""
    return x_obs + NOISE * jax.random.normal(key, (NUM_DRAWS, 2))


@pytest.mark.parametrize("x_obs", [(0.2, -0.4), (1.0, 0.7)])
def test_right_likelihood_not_flagged(nle, x_obs):
    x_obs = jnp.array(x_obs)
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    theta = _posterior_draws(k1, x_obs)
    x = theta + NOISE * jax.random.normal(k2, theta.shape)
    result = local_likelihood_check(k3, nle, x_obs, theta, x)
    assert result.status is LikelihoodCheckStatus.CONSISTENT, result.summary
    assert result.p_adjusted > 0.01
    # The two tail frequencies estimate the same probability.
    assert np.all(np.abs(result.tail_flow - result.tail_simulator) < 0.08)


def test_wrong_scale_flagged():
    x_obs = jnp.array([0.2, -0.4])
    k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
    theta = _posterior_draws(k1, x_obs)
    x = theta + NOISE * jax.random.normal(k2, theta.shape)
    result = local_likelihood_check(k3, _nle(scale=NOISE / 2), x_obs, theta, x)
    assert result.status is LikelihoodCheckStatus.MISJUDGES_X_OBS
    assert result.status.is_warning
    assert result.p_adjusted < 1e-6
    assert result.exceed_observed > 2 * result.exceed_expected  # x_obs "too far" for q
    assert result.calibration_deviation > 0.2  # radii 4x too large: PIT far from uniform


def test_wrong_near_x_obs_flagged_and_located():
    x_obs = jnp.array([0.2, -0.4])
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    theta = _posterior_draws(k1, x_obs)
    x = theta + NOISE * jax.random.normal(k2, theta.shape)
    result = local_likelihood_check(k3, _nle(offset=(0.0, 0.5)), x_obs, theta, x)
    assert result.status is LikelihoodCheckStatus.MISJUDGES_X_OBS
    assert result.p_components[1] < 1e-6 < result.p_components[0]
    assert "component 1" in result.summary
    assert "component 0" not in result.summary


def test_bad_input(nle):
    key = jax.random.key(0)
    theta = jnp.zeros((NUM_DRAWS, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        local_likelihood_check(key, nle, jnp.zeros(2), theta, jnp.zeros((NUM_DRAWS, 3)))
    with pytest.raises(ValueError, match="at least"):
        local_likelihood_check(key, nle, jnp.zeros(2), theta[:50], theta[:50])
    with pytest.raises(ValueError, match="x_obs must have 2"):
        local_likelihood_check(key, nle, jnp.zeros(3), theta, theta)
    with pytest.raises(TypeError, match="NLE"):
        local_likelihood_check(key, object(), jnp.zeros(2), theta, theta)


@pytest.mark.slow
def test_trained_nle_not_flagged():
    """A trained NLE of the same simulator passes (its flow is close, not exact)."""
    prior = Prior.uniform([-2.0, -2.0], [2.0, 2.0])
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    theta = prior.sample(k1, 10_000)
    x = theta + NOISE * jax.random.normal(k2, theta.shape)
    model, _ = train_nle(
        k3, prior, theta, x, flow_config=FlowConfig(flow_layers=3, nn_width=32, knots=0)
    )
    x_obs = jnp.array([0.2, -0.4])
    draws = _posterior_draws(k4, x_obs)
    sims = draws + NOISE * jax.random.normal(k1, draws.shape)
    result = local_likelihood_check(k2, model, x_obs, draws, sims)
    assert result.status is LikelihoodCheckStatus.CONSISTENT, result.summary


def _linear_simulator(key, theta):
    return theta + NOISE * jax.random.normal(key, theta.shape)


def test_pipeline_check_resamples_and_simulates(nle):
    """run_sbi's helper: draws raised to 200 * (D + 1), one fresh simulation each."""
    from astrobayes.sbi import JaxSimulator, SBIConfig
    from astrobayes.sbi.pipeline import _likelihood_check

    config = SBIConfig(
        simulator="unused:f",
        prior={"a": {"normal": [0.0, 3.0]}, "b": {"normal": [0.0, 3.0]}},
        x_obs=(0.2, -0.4),
        method="nle",
        likelihood_check=10,
    )
    x_obs = np.array([0.2, -0.4])
    samples = _posterior_draws(jax.random.key(5), x_obs)[:300]
    result = _likelihood_check(
        jax.random.key(6), config, nle, JaxSimulator(_linear_simulator), x_obs, samples
    )
    assert result.num_draws == 600
    assert result.status is LikelihoodCheckStatus.CONSISTENT, result.summary


@pytest.mark.slow
def test_pipeline_runs_the_check_without_changing_the_posterior():
    """``likelihood_check = n`` adds the check to SBIResult (and its status); same draws."""
    from dataclasses import replace

    from astrobayes.sbi import SBIConfig, run_sbi

    config = SBIConfig(
        simulator="unused:f",
        prior={"a": {"uniform": [-1.0, 1.0]}, "b": {"uniform": [-1.0, 1.0]}},
        x_obs=(0.1, -0.2),
        method="nle",
        num_simulations=200,
        num_posterior_samples=100,
        posterior_method="importance",
        num_validation=0,
        training=SBITrainingConfig(max_epochs=3, batch_size=50),
        flow=FlowConfig(flow_layers=1, nn_width=8, nn_depth=1, knots=0),
    )
    key, x_obs = jax.random.key(4), np.array([0.1, -0.2])
    plain = run_sbi(key, config, x_obs, simulator=_linear_simulator)
    checked = run_sbi(key, replace(config, likelihood_check=10), x_obs, simulator=_linear_simulator)
    assert plain.likelihood_check is None
    np.testing.assert_array_equal(plain.posterior.samples, checked.posterior.samples)
    result = checked.likelihood_check
    assert result.num_draws == 600  # raised to 200 * (2 + 1)
    assert isinstance(result.status, LikelihoodCheckStatus)
    assert checked.status.severity >= result.status.severity
    with pytest.raises(ValueError, match="needs method 'nle'"):
        replace(config, method="npe", likelihood_check=10)


@pytest.mark.slow
def test_cli_reports_the_check(tmp_path, capsys):
    """``likelihood_check`` in the TOML: diagnostics.json and one line on the terminal."""
    import json

    from astrobayes.cli.main import main

    (tmp_path / "lin_sim.py").write_text(
        "import jax\n\ndef simulate(key, theta):\n"
        "    return theta + 0.3 * jax.random.normal(key, theta.shape)\n"
    )
    (tmp_path / "config.toml").write_text(
        'simulator = "lin_sim:simulate"\nmethod = "nle"\nnum_simulations = 300\n'
        "x_obs = [0.1, -0.2]\nnum_posterior_samples = 200\nnum_validation = 0\n"
        "posterior_method = 'importance'\nlikelihood_check = 600\n"
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
        "[training]\nmax_epochs = 3\nbatch_size = 50\n"
        "[flow]\nflow_layers = 1\nnn_width = 8\nnn_depth = 1\nknots = 0\n"
    )
    out = tmp_path / "out"
    main(["sbi", str(tmp_path / "config.toml"), "--out", str(out), "--no-plots"])
    captured = capsys.readouterr()
    assert "astrobayes sbi: likelihood check " in captured.out + captured.err
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert diagnostics["likelihood_check"]["num_draws"] == 600
    assert diagnostics["likelihood_check"]["status"] in ("consistent", "misjudges_x_obs")
