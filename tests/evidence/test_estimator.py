"""Tests of astrobayes.evidence.estimate against analytic evidences.

Statistical tests take their tolerance from the reported error: ``|est - truth| <= 4.5
sigma`` after checking that sigma is small enough for the comparison to mean something.
Each family has a negative control (a wrong target or a wrong error must fail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowjax.bijections import Affine
from scipy import integrate, special, stats
from scipy.signal import lfilter

from astrobayes._status import Severity, UnreliableResultError
from astrobayes.chains import Chains
from astrobayes.evidence import (
    EvidenceResult,
    EvidenceStatus,
    EvidenceUnreliableError,
    GaussianTarget,
    RealNVPFlow,
    RQSplineFlow,
    TargetFamily,
    estimate,
)
from astrobayes.models.problems import gaussian_gaussian_prior, normal_gamma, rosenbrock

PULL = 4.5  # tolerance in reported standard errors


def _assert_agrees(result: EvidenceResult, truth: float, max_std: float = 0.05) -> None:
    assert np.isfinite(result.log_evidence)
    assert 0.0 < result.log_evidence_std < max_std, result.log_evidence_std
    pull = (result.log_evidence - truth) / result.log_evidence_std
    assert abs(pull) <= PULL, (result.log_evidence, result.log_evidence_std, truth, pull)


def _log_normal(x: np.ndarray, log_evidence: float = 0.0) -> np.ndarray:
    """``log z + log N(x; 0, I)``: an unnormalised posterior with evidence ``z``."""
    dim = x.shape[-1]
    return log_evidence - 0.5 * np.sum(x**2, axis=-1) - 0.5 * dim * np.log(2 * np.pi)


def _ar1_chains(rng, num_chains, num_samples, dim, rho) -> np.ndarray:
    """AR(1) chains whose stationary law is N(0, I), started in stationarity."""
    noise = rng.standard_normal((num_chains, num_samples, dim))
    noise[:, 1:] *= np.sqrt(1.0 - rho**2)
    return lfilter([1.0], [1.0, -rho], noise, axis=1)


@dataclass(frozen=True)
class _WideTarget(TargetFamily):
    """A deliberately wrong target: whitened coordinates scaled up by ``scale``.

    ``FittedTarget.log_prob`` maps whitened ``z`` to the base space with
    ``bijection.inverse_and_log_det``; the affine map ``z = scale * u`` makes the target
    ``N(0, scale^2 T)`` in whitened units, i.e. ``scale sqrt(T)`` times wider than the
    posterior.
    """

    scale: float = 4.0

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):
        dim = z_train.shape[1]
        return Affine(jnp.zeros(dim), self.scale * jnp.ones(dim)), np.zeros(0)


@dataclass(frozen=True)
class _NaNTarget(TargetFamily):
    """A target whose density is NaN everywhere."""

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):
        dim = z_train.shape[1]
        return Affine(jnp.full(dim, jnp.nan), jnp.ones(dim)), np.zeros(0)


@dataclass(frozen=True)
class _DivergedTarget(TargetFamily):
    """A target whose training 'diverged' (non-finite validation loss)."""

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):
        return None, np.array([1.0, np.nan])


# ---------------------------------------------------------------- analytic truths


def test_gaussian_target_on_gaussian_gaussian_prior(key):
    problem = gaussian_gaussian_prior(4)
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 8, 2000)
    result = estimate(fit_key, chains, target=GaussianTarget())
    _assert_agrees(result, problem.log_evidence, max_std=0.01)
    assert result.status is EvidenceStatus.OK
    assert result.num_training_chains == 4
    assert result.num_inference_chains == 4
    assert result.num_inference_samples == 8000
    assert result.target == "GaussianTarget"
    assert result.temperature in (0.5, 0.6, 0.7, 0.8, 0.9)
    assert set(result.temperature_scores) == {0.5, 0.6, 0.7, 0.8, 0.9}
    assert result.per_chain_log_evidence.shape == (4,)
    assert result.training_losses.size == 0


def test_gaussian_target_on_normal_gamma(key):
    problem = normal_gamma()
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 8, 2000)
    result = estimate(fit_key, chains, target=GaussianTarget())
    _assert_agrees(result, problem.log_evidence, max_std=0.01)
    assert not result.status.is_failure


def test_same_key_same_result(key):
    chains = gaussian_gaussian_prior(3).sample_chains(key, 4, 500)
    fit_key = jax.random.fold_in(key, 1)
    a = estimate(fit_key, chains, target=GaussianTarget())
    b = estimate(fit_key, chains, target=GaussianTarget())
    assert a.log_evidence == b.log_evidence
    assert a.log_evidence_std == b.log_evidence_std
    np.testing.assert_array_equal(a.per_chain_log_evidence, b.per_chain_log_evidence)
    assert a.temperature_scores == b.temperature_scores


def test_legacy_uint32_key_is_accepted():
    chains = gaussian_gaussian_prior(2).sample_chains(jax.random.key(0), 4, 300)
    result = estimate(jax.random.PRNGKey(0), chains, target=GaussianTarget())
    assert np.isfinite(result.log_evidence)


def test_overflow_shift_of_log_posterior(key):
    problem = gaussian_gaussian_prior(3)
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 4, 1000)
    shifted = Chains(chains.samples, chains.log_posterior - 1e4, names=chains.names)
    base = estimate(fit_key, chains, target=GaussianTarget())
    low = estimate(fit_key, shifted, target=GaussianTarget())
    assert np.isfinite(low.log_evidence)
    assert np.isfinite(low.log_evidence_std)
    np.testing.assert_allclose(low.log_evidence - base.log_evidence, -1e4, rtol=0, atol=1e-6)
    np.testing.assert_allclose(low.log_evidence_std, base.log_evidence_std, rtol=1e-6)
    assert low.temperature == base.temperature
    # ... and upwards (ln z ~ +1e4)
    high = estimate(
        fit_key, Chains(chains.samples, chains.log_posterior + 1e4), target=GaussianTarget()
    )
    np.testing.assert_allclose(high.log_evidence - base.log_evidence, 1e4, rtol=0, atol=1e-6)


def test_integer_weights_equal_duplicated_draws(key):
    # Training chains are identical in both inputs (the same draws, padded with zero
    # weight), so the fitted target and temperature are the same; the inference chains
    # hold either every draw twice or every draw once with weight 2.
    num, dim = 500, 2
    x = np.random.default_rng(7).normal(size=(6, num, dim))
    lp = _log_normal(x, 0.3)
    pad_x, pad_lp, pad_w = np.zeros((3, num, dim)), np.zeros((3, num)), np.zeros((3, num))
    train_x = np.concatenate([x[:3], pad_x], axis=1)
    train_lp = np.concatenate([lp[:3], pad_lp], axis=1)
    train_w = np.concatenate([np.ones((3, num)), pad_w], axis=1)

    duplicated = Chains(
        np.concatenate([train_x, np.repeat(x[3:], 2, axis=1)]),
        np.concatenate([train_lp, np.repeat(lp[3:], 2, axis=1)]),
        np.concatenate([train_w, np.ones((3, 2 * num))]),
    )
    weighted = Chains(
        np.concatenate([train_x, np.concatenate([x[3:], pad_x], axis=1)]),
        np.concatenate([train_lp, np.concatenate([lp[3:], pad_lp], axis=1)]),
        np.concatenate([train_w, np.concatenate([2 * np.ones((3, num)), pad_w], axis=1)]),
    )
    a = estimate(key, duplicated, target=GaussianTarget(), training_fraction=0.5)
    b = estimate(key, weighted, target=GaussianTarget(), training_fraction=0.5)
    assert a.temperature == b.temperature
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.per_chain_log_evidence, b.per_chain_log_evidence, atol=1e-9)
    assert a.num_inference_samples == 2 * b.num_inference_samples


def test_importance_weighted_draws(key):
    # Draws from a wider Gaussian q, weighted by p~/q, estimate the evidence of p.
    dim, log_z = 2, -1.7
    mean = np.array([0.5, -1.0])
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    posterior = stats.multivariate_normal(mean, cov)
    proposal = stats.multivariate_normal(mean, 2.25 * np.eye(dim))
    x = proposal.rvs(size=(8, 3000), random_state=np.random.default_rng(8))
    log_p = log_z + posterior.logpdf(x)
    log_w = log_p - proposal.logpdf(x)
    chains = Chains(x, log_p, np.exp(log_w - log_w.max()))
    result = estimate(key, chains, target=GaussianTarget())
    _assert_agrees(result, log_z, max_std=0.02)
    assert not result.status.is_failure


def test_few_training_draws_warns(key):
    x = np.random.default_rng(9).normal(size=(2, 30, 2))
    result = estimate(key, Chains(x, _log_normal(x)), target=GaussianTarget())
    assert EvidenceStatus.FEW_TRAINING_SAMPLES in result.messages
    assert result.status.is_warning


def test_result_to_dict_is_json(key):
    chains = gaussian_gaussian_prior(2).sample_chains(key, 4, 300)
    result = estimate(key, chains, target=GaussianTarget())
    out = json.loads(json.dumps(result.to_dict()))
    assert out["status"] == result.status.name.lower()
    assert out["log_evidence"] == result.log_evidence
    assert len(out["per_chain_log_evidence"]) == 2
    assert result.evidence_summary.startswith("ln z = ")


# ----------------------------------------------- calibration with autocorrelated chains


def test_error_is_calibrated_on_autocorrelated_chains():
    # AR(1) chains (rho = 0.9, tau of the ratios ~ 10) whose stationary law is the
    # posterior N(0, I) in d = 4, exact log posterior with ln z = 1.234. Over repeats, the
    # fraction with |est - truth| <= sigma must be near 68.3%. Window: +/- max(0.10, 2
    # binomial standard deviations).
    num_repeats, dim, rho, log_z, temperature = 60, 4, 0.9, 1.234, 0.8
    rng = np.random.default_rng(10)
    covered, naive_covered = 0, 0
    for index in range(num_repeats):
        x = _ar1_chains(rng, 4, 2000, dim, rho)
        chains = Chains(x, _log_normal(x, log_z))
        result = estimate(
            jax.random.key(index), chains, target=GaussianTarget(), temperature=temperature
        )
        error = abs(result.log_evidence - log_z)
        covered += error <= result.log_evidence_std
        # Negative control: the naive iid error std(r) / mean(r) / sqrt(n) of the same
        # ratios (target ~ N(0, T I), the fitted Gaussian up to its fit error).
        xi = x[2:].reshape(-1, dim)
        log_r = stats.multivariate_normal(np.zeros(dim), temperature * np.eye(dim)).logpdf(xi)
        r = np.exp(log_r - _log_normal(xi, log_z) - np.max(log_r - _log_normal(xi, log_z)))
        naive_std = r.std() / r.mean() / np.sqrt(r.size)
        naive_covered += error <= naive_std
    fraction, naive_fraction = covered / num_repeats, naive_covered / num_repeats
    expected = stats.norm.cdf(1) - stats.norm.cdf(-1)
    slack = max(0.10, 2.0 * np.sqrt(expected * (1 - expected) / num_repeats))
    assert expected - slack <= fraction <= expected + slack, fraction
    # The naive error ignores the autocorrelation (~3x too small): it covers far less.
    assert naive_fraction < expected - slack, naive_fraction
    assert naive_fraction < fraction - 0.2, (naive_fraction, fraction)


# ------------------------------------------------------------------ negative controls


def test_wrong_normalisation_is_detected(key):
    problem = gaussian_gaussian_prior(4)
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 8, 2000)
    wrong = Chains(chains.samples, chains.log_posterior + 0.5)
    result = estimate(fit_key, wrong, target=GaussianTarget())
    assert result.log_evidence_std < 0.05
    assert abs(result.log_evidence - problem.log_evidence) > PULL * result.log_evidence_std


def _standard_normal_chains(num_chains=4, num_samples=2000, dim=2, seed=12) -> Chains:
    x = np.random.default_rng(seed).normal(size=(num_chains, num_samples, dim))
    return Chains(x, _log_normal(x))


def test_too_wide_target_fails(key):
    # At every candidate temperature the target is >= 2.8x wider than the posterior:
    # ratios have Pareto k ~ 1 - 1/2.8^2 ~ 0.87 > 0.7.
    chains = _standard_normal_chains()
    result = estimate(key, chains, target=_WideTarget())
    assert result.status is EvidenceStatus.TARGET_TOO_WIDE
    assert result.status.is_failure
    assert not result.status.is_warning
    assert result.pareto_k > 0.7
    # the retreat to lower temperatures ended at the lowest candidate
    assert result.temperature == 0.5
    with pytest.raises(EvidenceUnreliableError, match="Pareto k > 0.7") as info:
        estimate(key, chains, target=_WideTarget(), throw=True)
    assert info.value.result.status is EvidenceStatus.TARGET_TOO_WIDE
    assert info.value.result.log_evidence == result.log_evidence
    assert isinstance(info.value, UnreliableResultError)
    assert info.value.status is EvidenceStatus.TARGET_TOO_WIDE
    assert str(info.value).startswith("ln z = ")


@dataclass(frozen=True)
class _ScaledSplineTarget(TargetFamily):
    """An untrained spline flow with every parameter multiplied by ``scale``.

    At ``scale = 1`` (flowjax's random initialisation) the float32 spline inverts to
    rounding; from ``scale ~ 3`` its bins get so narrow and steep that the inverse no
    longer undoes the forward map on a third or more of the draws.
    """

    scale: float = 1.0

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):
        import equinox as eqx
        import paramax
        from flowjax.distributions import Normal

        dim = z_train.shape[1]
        flow = RQSplineFlow()._build(key, dim, Normal(jnp.zeros(dim)))
        scaled = jax.tree_util.tree_map(
            lambda a: a * self.scale if eqx.is_inexact_array(a) else a, flow.bijection
        )
        return paramax.unwrap(scaled), np.zeros(0)


def test_non_invertible_flow_is_a_failure(key):
    # The support check's own target draws go back through the inverse map: a flow that
    # does not invert (extreme spline parameters in float32) is not a normalised density.
    chains = _standard_normal_chains()
    with jax.enable_x64(False):  # float32 even in a float64 session (JAX_ENABLE_X64=1)
        broken = estimate(key, chains, target=_ScaledSplineTarget(10.0))
    assert EvidenceStatus.TARGET_NOT_INVERTIBLE in broken.messages
    assert broken.status.is_failure
    # negative control: the same flow at its initial scale inverts, and is not flagged
    sound = estimate(key, chains, target=_ScaledSplineTarget(1.0))
    assert EvidenceStatus.TARGET_NOT_INVERTIBLE not in sound.messages


def test_evidence_status_severity_is_data_and_matches_the_message():
    for status in EvidenceStatus:
        prefix = status.value.split(":")[0]
        expected = {"ok": Severity.OK, "warning": Severity.WARNING, "failure": Severity.FAILURE}
        assert status.severity is expected[prefix], status


def test_gaussian_target_on_lighter_tailed_posterior_fails(key):
    # Posterior prop. to exp(-x1^4 - x2^4): its tails are much lighter than those of any
    # Gaussian, so a Gaussian target at T = 0.9 gives infinite-variance ratios.
    rng = np.random.default_rng(13)
    g = rng.gamma(0.25, 1.0, (4, 2000, 2))
    x = g**0.25 * rng.choice([-1.0, 1.0], size=g.shape)
    chains = Chains(x, -np.sum(x**4, axis=-1))
    result = estimate(key, chains, target=GaussianTarget(), temperature=0.9)
    assert result.status is EvidenceStatus.TARGET_TOO_WIDE
    # a lower temperature keeps the target inside the posterior and works
    low = estimate(key, chains, target=GaussianTarget(), temperature=0.5)
    _assert_agrees(low, 2 * np.log(2 * special.gamma(1.25)))


def test_diverged_training_is_a_failure(key):
    result = estimate(key, _standard_normal_chains(), target=_DivergedTarget(), temperature=0.7)
    assert EvidenceStatus.NON_FINITE in result.messages
    assert result.status is EvidenceStatus.NON_FINITE
    assert result.status.is_failure
    with pytest.raises(EvidenceUnreliableError, match="non-finite"):
        estimate(key, _standard_normal_chains(), target=_DivergedTarget(), throw=True)


def test_non_finite_target_density_is_a_failure(key):
    chains = _standard_normal_chains()
    result = estimate(key, chains, target=_NaNTarget())
    assert result.status is EvidenceStatus.NON_FINITE
    assert np.isnan(result.log_evidence)
    assert all(np.isinf(v) for v in result.temperature_scores.values())
    with pytest.raises(EvidenceUnreliableError, match="non-finite densities") as info:
        estimate(key, chains, target=_NaNTarget(), temperature=0.5, throw=True)
    assert np.isnan(info.value.result.log_evidence)


def test_nan_error_is_a_failure(key):
    x = _ar1_chains(np.random.default_rng(15), 2, 100, 2, 0.99)
    result = estimate(key, Chains(x, _log_normal(x)), target=GaussianTarget())
    assert np.isfinite(result.log_evidence_std) or result.status is EvidenceStatus.ERROR_UNDEFINED
    assert result.status is not EvidenceStatus.OK


def test_bounded_support_posterior_is_flagged(key):
    x = np.random.default_rng(14).uniform(-1.0, 1.0, (4, 4000, 2))
    chains = Chains(x, np.full(x.shape[:2], -2 * np.log(2.0)))  # z = 1
    result = estimate(key, chains, target=GaussianTarget())
    # The Gaussian target leaks mass beyond the box: ln z is biased high and must be flagged.
    assert abs(result.log_evidence) > PULL * result.log_evidence_std
    assert result.status is EvidenceStatus.TARGET_OUTSIDE_SUPPORT
    assert result.status.is_failure
    # The leaked mass explains the bias: ln z_hat ~ -ln(1 - mass).
    assert abs(result.log_evidence + np.log1p(-result.target_mass_outside)) < 0.05


def test_unbounded_posterior_has_negligible_outside_mass(key):
    x = np.random.default_rng(16).normal(size=(4, 4000, 3))
    result = estimate(key, Chains(x, _log_normal(x)), target=GaussianTarget())
    assert result.status is EvidenceStatus.OK
    assert result.target_mass_outside < 0.005


# ------------------------------------------------------------------------ bad input


def test_bad_input_is_refused(key):
    chains = _standard_normal_chains(num_samples=100)
    with pytest.raises(ValueError, match="at least 2 chains"):
        estimate(key, chains.select([0]))
    tiny = np.random.default_rng(0).normal(size=(2, 3, 4))
    with pytest.raises(ValueError, match=r"need at least dim \+ 2"):
        estimate(key, Chains(tiny, _log_normal(tiny)), target=GaussianTarget())
    for bad in (0.0, 1.0, -0.2, 1.5, np.nan):
        with pytest.raises(ValueError, match="temperature must lie strictly between 0.0 and 1.0"):
            estimate(key, chains, target=GaussianTarget(), temperature=bad)
    with pytest.raises(TypeError, match="temperature must be a number"):
        estimate(key, chains, target=GaussianTarget(), temperature="0.5")
    with pytest.raises(ValueError, match=r"temperatures\[\] must lie strictly between"):
        estimate(key, chains, target=GaussianTarget(), temperatures=(0.5, 1.2))
    with pytest.raises(ValueError, match="temperatures must hold at least one value"):
        estimate(key, chains, target=GaussianTarget(), temperatures=())
    with pytest.raises(ValueError, match="training_fraction must lie strictly between"):
        estimate(key, chains, target=GaussianTarget(), training_fraction=1.0)
    with pytest.raises(ValueError, match="max_training_samples must be >= 10"):
        estimate(key, chains, target=GaussianTarget(), max_training_samples=5)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key.*integer 0"):
        estimate(0, chains, target=GaussianTarget())
    with pytest.raises(TypeError, match="key must be a JAX PRNG key.*dtype float"):
        estimate(np.zeros(2), chains, target=GaussianTarget())
    with pytest.raises(TypeError, match="chains must be astrobayes.Chains; got ndarray"):
        estimate(key, chains.samples, target=GaussianTarget())
    with pytest.raises(TypeError, match="target must be a TargetFamily"):
        estimate(key, chains, target=GaussianTarget)


# ------------------------------------------------------------------------ flows


@pytest.mark.slow
def test_small_flow_smoke(key):
    # A tiny, briefly trained flow: the training loop, early stopping and progress hook.
    problem = gaussian_gaussian_prior(2)
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 4, 500)
    calls = []
    flow = RealNVPFlow(num_layers=2, width=8, max_epochs=3, batch_size=256)
    result = estimate(
        fit_key, chains, target=flow, temperature=0.8, progress_fn=lambda *a: calls.append(a)
    )
    assert result.target == "RealNVPFlow"
    assert 1 <= result.training_losses.size <= 3
    assert calls == [("training", i, 3) for i in range(1, result.training_losses.size + 1)]
    _assert_agrees(result, problem.log_evidence)


@pytest.mark.slow
def test_rqspline_flow_on_rosenbrock(key):
    problem = rosenbrock()
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 8, 1500)
    result = estimate(fit_key, chains, target=RQSplineFlow(max_epochs=10))
    _assert_agrees(result, problem.log_evidence, max_std=0.02)
    assert not result.status.is_failure
    assert result.target == "RQSplineFlow"


@pytest.mark.slow
def test_realnvp_flow_on_normal_gamma(key):
    problem = normal_gamma()
    sample_key, fit_key = jax.random.split(key)
    chains = problem.sample_chains(sample_key, 6, 1000)
    result = estimate(fit_key, chains, target=RealNVPFlow(max_epochs=10))
    _assert_agrees(result, problem.log_evidence, max_std=0.02)
    assert not result.status.is_failure


@pytest.mark.slow
def test_same_key_same_result_with_flow(key):
    chains = gaussian_gaussian_prior(2).sample_chains(key, 4, 400)
    flow = RQSplineFlow(num_layers=2, width=16, max_epochs=3)
    a = estimate(key, chains, target=flow)
    b = estimate(key, chains, target=flow)
    assert a.log_evidence == b.log_evidence
    np.testing.assert_array_equal(a.training_losses, b.training_losses)


# ----------------------------------------------- chains that are not stationary


def _relaxing_from_far_out(chains: Chains, problem, length: int = 100) -> Chains:
    """The chains with a burn-in: the first draws start 10 sigma out and relax in."""
    samples = chains.samples.copy()
    scale = samples[:, length:].std(axis=(0, 1))
    decay = np.exp(-np.arange(length) / (length / 6.0))
    samples[:, :length] += 10.0 * scale * decay[None, :, None]
    log_posterior = np.asarray(jax.vmap(jax.vmap(problem.logdensity_fn))(jnp.asarray(samples)))
    return Chains(samples, log_posterior)


def test_a_burn_in_left_in_the_chains_is_named_with_the_fraction_that_removes_it(key):
    problem = gaussian_gaussian_prior(2)
    clean = problem.sample_chains(key, 8, 2000)
    result = estimate(key, clean, target=GaussianTarget())
    # negative control: exact draws are stationary
    assert EvidenceStatus.NOT_STATIONARY not in result.messages
    assert result.stationarity.stationary
    burned = _relaxing_from_far_out(clean, problem)
    result = estimate(key, burned, target=GaussianTarget())
    assert EvidenceStatus.NOT_STATIONARY in result.messages
    # it is the first warning: often the cause of the others
    warnings_ = [m for m in result.messages if m.severity is Severity.WARNING]
    assert warnings_[0] is EvidenceStatus.NOT_STATIONARY
    assert result.stationarity.burn_in == 0.05
    assert "burn_in=0.05" in str(result)
    assert json.loads(json.dumps(result.to_dict()))["stationarity"]["burn_in"] == 0.05
    # dropping what it names gives stationary chains and the right evidence
    kept = Chains(burned.samples[:, 100:], burned.log_posterior[:, 100:])
    result = estimate(key, kept, target=GaussianTarget())
    assert result.status is EvidenceStatus.OK, result.messages
    _assert_agrees(result, problem.log_evidence, max_std=0.02)


# ----------------------------------------------- importance weights (nested samplers)


def _importance_weighted_light_tails(seed: int = 4):
    """Weighted draws as a nested sampler gives them, of a posterior with light tails.

    ``L = exp(-|t|^2 / 2 - |t|^4 / 5)`` under a flat prior on [-10, 10]^2 (ln z by 1-d
    quadrature); draws from 0.8 N(0, 1.2^2) + 0.2 U(box) with weights p / q. The
    uniform draws far out carry weights down to ~1e-200 of the largest, and ratios
    ``phi / p`` up to ~e^400 (a Gaussian target's tails are heavier than these).
    """
    rng = np.random.default_rng(seed)
    shape = (8, 2000, 2)
    theta = np.where(
        rng.uniform(size=(8, 2000, 1)) < 0.8,
        1.2 * rng.normal(size=shape),
        rng.uniform(-10, 10, size=shape),
    )
    gauss = (-0.5 * (theta / 1.2) ** 2 - np.log(1.2 * np.sqrt(2 * np.pi))).sum(-1)
    log_q = np.logaddexp(np.log(0.8) + gauss, np.log(0.2 / 400))
    radius2 = (theta**2).sum(-1)
    log_post = -0.5 * radius2 - radius2**2 / 5.0 - np.log(400)
    weights = np.exp(log_post - log_q - (log_post - log_q).max())
    radial = integrate.quad(lambda r: r * np.exp(-0.5 * r * r - r**4 / 5), 0, 20)[0]
    return Chains(theta, log_post, weights), np.log(2 * np.pi * radial) - np.log(400)


def test_importance_weighted_draws_with_negligible_weights_give_the_evidence(key, monkeypatch):
    chains, truth = _importance_weighted_light_tails()
    assert np.sum(chains.weights < 1e-12) > 1000  # what a nested sampler's output holds
    result = estimate(key, chains, target=GaussianTarget())
    assert result.status is EvidenceStatus.OK, result.messages
    _assert_agrees(result, truth, max_std=0.02)
    # negative control: the tail index and kurtosis of the ratios alone, with the
    # negligible draws kept, call the estimate a failure (with a zero error bar)
    import astrobayes.evidence.estimator as estimator

    monkeypatch.setattr(estimator, "without_negligible_weights", lambda chains: chains)
    monkeypatch.setattr(estimator, "_tail_terms", lambda log_r, weights: log_r)
    with np.errstate(divide="ignore", invalid="ignore"):  # the ratios' sums underflow
        assert estimate(key, chains, target=GaussianTarget()).status.is_failure


def test_draws_in_likelihood_order_are_refused_with_the_remedy(key):
    chains, _ = _importance_weighted_light_tails()
    order = np.argsort(chains.log_posterior[0])  # as a nested sampler lists its draws
    one = Chains(
        chains.samples[:1, order], chains.log_posterior[:1, order], chains.weights[:1, order]
    )
    with pytest.raises(ValueError, match="chain 0 is a nested sampler's weighted draws"):
        estimate(key, one.split_chains(4), target=GaussianTarget())
    # negative control: the same rows shuffled are accepted
    rows = np.random.default_rng(0).permutation(order.size)
    shuffled = Chains(one.samples[:, rows], one.log_posterior[:, rows], one.weights[:, rows])
    assert np.isfinite(
        estimate(key, shuffled.split_chains(4), target=GaussianTarget()).log_evidence
    )


def test_a_constant_parameter_is_named_and_refused(key):
    x = np.random.default_rng(0).normal(size=(4, 500, 3))
    x[..., 2] = 0.7  # a fixed parameter written as a column
    chains = Chains(x, -0.5 * (x[..., :2] ** 2).sum(-1), names=("a", "b", "fixed"))
    with pytest.raises(ValueError, match=r"parameter\(s\) \['fixed'\] take one value"):
        estimate(key, chains, target=GaussianTarget())
    # negative control: without it the same draws are accepted
    kept = Chains(x[..., :2], chains.log_posterior)
    assert np.isfinite(estimate(key, kept, target=GaussianTarget()).log_evidence)


def test_a_derived_parameter_among_the_sampled_ones_is_named_and_refused(key):
    # Omega_m and sigma_8 with S_8 = sigma_8 sqrt(Omega_m / 0.3) written beside them, as
    # a Cobaya chain read without its updated.yaml would hold it: the draws lie on a
    # surface (the Gaussian target's ln z was -8.46 +/- 0.002, "ok", for a linear one)
    rng = np.random.default_rng(0)
    base = rng.normal([0.3, 0.8], [0.01, 0.02], size=(4, 1000, 2))
    s8 = base[..., 1] * np.sqrt(base[..., 0] / 0.3)
    chains = Chains(
        np.concatenate([base, s8[..., None]], -1),
        -0.5 * (((base - [0.3, 0.8]) / [0.01, 0.02]) ** 2).sum(-1),
        names=("omega_m", "sigma_8", "S_8"),
    )
    with pytest.raises(ValueError, match="functions of the other parameters"):
        estimate(key, chains, target=GaussianTarget())
    # negative control: strongly correlated but real parameters (rho = 0.9999) pass
    cov = np.array([[1.0, 0.9999], [0.9999, 1.0]])
    x = rng.multivariate_normal([0.0, 0.0], cov, size=(4, 1000))
    log_post = -0.5 * np.einsum("...i,ij,...j->...", x, np.linalg.inv(cov), x)
    assert np.isfinite(estimate(key, Chains(x, log_post), target=GaussianTarget()).log_evidence)


def test_a_stuck_chain_is_named(key):
    # 16 exact chains, one frozen at a point of the tail (an emcee walker that accepts
    # nothing): the estimate moves by ~6 of its error bars (measured 1.8778 +/- 0.0070
    # against ln 2 pi = 1.8379), and no other check sees it
    x = np.random.default_rng(0).normal(size=(16, 1000, 2))
    clean = estimate(key, Chains(x, -0.5 * (x**2).sum(-1)), target=GaussianTarget())
    assert clean.stuck_chains == ()  # negative control
    assert clean.status is EvidenceStatus.OK
    x[13] = [2.5, -2.0]
    result = estimate(key, Chains(x, -0.5 * (x**2).sum(-1)), target=GaussianTarget())
    assert result.stuck_chains == (13,)
    assert EvidenceStatus.CHAINS_STUCK in result.messages
    assert "stuck chains: [13]" in str(result)
    assert json.loads(json.dumps(result.to_dict()))["stuck_chains"] == [13]


def test_chains_that_disagree_get_the_spread_of_their_log_evidences(key):
    # One inference chain's log posterior is off by 5 (as a chain in a mode of other
    # normalisation would be): its ln z is 5 above the others'. The delta method's
    # relative spread of rho says +-0.33; the chains' ln z spread says +-1.4, and is
    # what the error must cover (until 2026-12-06 the first was reported).
    rng = np.random.default_rng(3)
    samples = rng.standard_normal((8, 1500, 2))
    log_posterior = _log_normal(samples)
    result0 = estimate(key, Chains(samples, log_posterior), target=GaussianTarget())
    assert EvidenceStatus.CHAINS_DISAGREE not in result0.messages  # control: all agree
    log_posterior[-1] += 5.0
    result = estimate(key, Chains(samples, log_posterior), target=GaussianTarget())
    assert EvidenceStatus.CHAINS_DISAGREE in result.messages
    per_chain = result.per_chain_log_evidence
    assert np.sum(per_chain > 4.0) == 1  # the offset chain is among the inference chains
    log_spread = np.std(per_chain, ddof=1) / np.sqrt(per_chain.size)
    assert log_spread > 1.0
    assert result.log_evidence_std >= 0.99 * log_spread
    assert result.log_evidence_std_between_chains >= 0.99 * log_spread


def test_bounds_give_an_estimate_without_edges(key):
    # A half-normal in x on [0, 5] (peaked at its edge) and a flat y on [-1, 1]: on x and y
    # the target puts mass beyond the edges and z is biased high (the control, flagged);
    # on logit/log coordinates with the Jacobian, the same evidence within its error.
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((8, 2000)))
    y = rng.uniform(-1.0, 1.0, (8, 2000))
    log_posterior = -0.5 * x**2 - 0.5 * np.log(2 * np.pi) - np.log(5.0) - np.log(2.0)
    chains = Chains(np.stack([x, y], -1), log_posterior, names=("x", "y"))
    truth = np.log(0.5 / 5.0)
    result = estimate(key, chains, bounds={"x": (0.0, 5.0), "y": (-1.0, 1.0)})
    assert result.unbounded == ("x", "y")
    assert result.status is EvidenceStatus.OK
    _assert_agrees(result, truth, max_std=0.01)
    assert "estimated without edges" in result.summary()
    assert result.to_dict()["unbounded"] == ["x", "y"]
    edged = estimate(key, chains)
    assert edged.status is EvidenceStatus.TARGET_OUTSIDE_SUPPORT
    assert edged.log_evidence - truth > 4.5 * edged.log_evidence_std


def test_unbounded_coordinates_carry_the_jacobian():
    from scipy.special import expit

    rng = np.random.default_rng(1)
    a = rng.uniform(2.0, 5.0, (2, 50))
    b = 1.0 + rng.exponential(size=(2, 50))
    c = 3.0 - rng.exponential(size=(2, 50))
    flat = np.full((2, 50), -np.log(3.0))  # any density: the Jacobian is what is added
    chains = Chains(np.stack([a, b, c], -1), flat, names=("a", "b", "c"))
    mapped, names = chains.unbounded({"a": (2.0, 5.0), "b": (1.0, None), "c": (None, 3.0)})
    assert names == ("a", "b", "c")
    u = mapped.samples
    np.testing.assert_allclose(2.0 + 3.0 * expit(u[..., 0]), a, rtol=1e-12)
    np.testing.assert_allclose(1.0 + np.exp(u[..., 1]), b, rtol=1e-12)
    np.testing.assert_allclose(3.0 - np.exp(u[..., 2]), c, rtol=1e-12)
    jacobian = np.log(3.0 * expit(u[..., 0]) * expit(-u[..., 0])) + u[..., 1] + u[..., 2]
    np.testing.assert_allclose(mapped.log_posterior, flat + jacobian, rtol=1e-10)
    # a draw on its edge leaves that parameter as it is; unknown names and lo >= hi refused
    on_edge = Chains(np.stack([np.where(a > 4.9, 5.0, a), b, c], -1), flat, names=("a", "b", "c"))
    assert on_edge.unbounded({"a": (2.0, 5.0), "b": (1.0, None)})[1] == ("b",)
    with pytest.raises(ValueError, match=r"do not have: \['z'\]"):
        chains.unbounded({"z": (0.0, 1.0)})
    with pytest.raises(ValueError, match="lo < hi"):
        chains.unbounded({"a": (5.0, 2.0)})
