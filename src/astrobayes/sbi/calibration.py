"""Batched posterior draws for calibration checks (expected coverage, TARP, SBC).

For ``n`` test pairs ``(theta_i, x_i)`` from the joint, returns ``m`` posterior draws per
``x_i`` with their log densities and the log density at each ``theta_i``, all in one
vectorised pass: direct flow draws for NPE, importance sampling from the prior (shared
proposals, ``vmap`` over tests) for NLE and NRE. Feed the arrays to
:func:`astrobayes.validation.calibration_report`. The per-test importance effective sample
size is Kish's (:func:`astrobayes.diagnostics.kish_effective_sample_size`, inside ``jit``);
a median below 100 is a warning status, non-finite draws a failure.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes._status import check
from astrobayes.diagnostics import kish_effective_sample_size
from astrobayes.sbi.estimators import NPE, AbstractEstimator
from astrobayes.sbi.importance import resample
from astrobayes.sbi.posterior import PosteriorStatus

__all__ = ["CalibrationDraws", "calibration_draws"]


class CalibrationDraws(NamedTuple):
    """Inputs of the calibration checks.

    Attributes:
        theta_true: ``(n, dim)``.
        samples: ``(n, m, dim)``.
        log_prob_true: ``(n,)``.
        log_prob_samples: ``(n, m)``.
        effective_sample_size: Per-test importance-sampling ESS (``m`` for NPE), ``(n,)``.
        status: :class:`~astrobayes.sbi.PosteriorStatus`: ``LOW_EFFECTIVE_SAMPLE_SIZE``
            when the median ESS is below 100, ``NON_FINITE`` on non-finite draws.

    """

    theta_true: np.ndarray
    samples: np.ndarray
    log_prob_true: np.ndarray
    log_prob_samples: np.ndarray
    effective_sample_size: np.ndarray
    status: PosteriorStatus


@eqx.filter_jit
def _npe_draws(estimator, keys, x, num_samples):
    return jax.vmap(lambda k, xi: estimator.sample_and_log_prob(k, xi, num_samples))(keys, x)


@eqx.filter_jit
def _is_draws(estimator, keys, x, proposals, num_samples):
    u = estimator.prior.to_unconstrained(proposals)
    log_prior_u = estimator.prior.log_prob_unconstrained(u)

    def one(k, xi):
        log_u = jax.vmap(estimator.log_posterior_unconstrained, in_axes=(0, None))(u, xi)
        log_w = jnp.where(jnp.isfinite(log_u), log_u - log_prior_u, -jnp.inf)
        ess = kish_effective_sample_size(jnp.exp(log_w - jnp.max(log_w)))
        index = resample(k, log_w, num_samples)
        return proposals[index], (log_u - estimator.prior.log_abs_det_jacobian(u))[index], ess

    return jax.lax.map(lambda args: one(*args), (keys, x), batch_size=16)


def calibration_draws(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    theta_true: Float[Array, "n dim"] | np.ndarray,
    x: Array | np.ndarray,
    num_samples: int = 200,
    *,
    num_proposals: int = 5000,
    throw: bool = False,
) -> CalibrationDraws:
    """Posterior draws and log densities for many test simulations at once.

    Args:
        key: JAX PRNG key.
        estimator: Trained NPE, NLE or NRE.
        theta_true: True parameters of the tests, ``(n, dim)``.
        x: Their simulated data, ``(n, *data_shape)``.
        num_samples: Draws per test.
        num_proposals: Prior proposals shared by the importance sampler (NLE / NRE).
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        :class:`CalibrationDraws`.

    Raises:
        TypeError: If ``estimator`` is not an estimator.
        ValueError: If ``theta_true`` and ``x`` disagree in length.
        UnreliableResultError: With ``throw=True``, on a failure status.

    """
    check_key(key)
    if not isinstance(estimator, AbstractEstimator):
        raise TypeError(f"estimator must be an NPE, NLE or NRE; got {type(estimator).__name__}")
    num_samples = check_positive_int(num_samples, "num_samples")
    theta_true = as_float_array(theta_true, "theta_true", ndim=2)
    x = as_float_array(x, "x")
    if x.shape[0] != theta_true.shape[0]:
        raise ValueError(
            f"x must have len(theta_true) = {theta_true.shape[0]} rows; got {x.shape[0]}"
        )
    x = jnp.asarray(x.reshape(x.shape[0], *estimator.x_shift.shape), jnp.result_type(float))
    theta_j = jnp.asarray(theta_true, jnp.result_type(float))
    key_draw, key_proposal = jax.random.split(key)
    keys = jax.random.split(key_draw, theta_true.shape[0])
    log_true = eqx.filter_jit(
        jax.vmap(lambda e, t, xi: e.log_posterior(t, xi), in_axes=(None, 0, 0))
    )(estimator, theta_j, x)
    if isinstance(estimator, NPE):
        samples, log_samples = _npe_draws(estimator, keys, x, num_samples)
        ess = np.full(theta_true.shape[0], float(num_samples))
    else:
        proposals = estimator.prior.sample(key_proposal, num_proposals)
        samples, log_samples, ess = _is_draws(estimator, keys, x, proposals, num_samples)
        ess = np.asarray(ess, dtype=float)
    samples = np.asarray(samples, dtype=float)
    log_samples = np.asarray(log_samples, dtype=float)
    if not np.all(np.isfinite(samples)) or np.any(np.isnan(log_samples)):
        status = PosteriorStatus.NON_FINITE
    elif np.median(ess) < 100:
        status = PosteriorStatus.LOW_EFFECTIVE_SAMPLE_SIZE
    else:
        status = PosteriorStatus.SUCCESS
    result = CalibrationDraws(
        theta_true=theta_true,
        samples=samples,
        log_prob_true=np.asarray(log_true, dtype=float),
        log_prob_samples=log_samples,
        effective_sample_size=ess,
        status=status,
    )
    return check(result, throw)
