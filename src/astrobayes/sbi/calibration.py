"""Batched posterior draws for calibration checks (expected coverage, TARP, SBC).

For ``n`` test pairs ``(theta_i, x_i)`` from the joint, returns ``m`` posterior draws per
``x_i`` with their log densities and the log density at each ``theta_i``, all in one
vectorised pass: direct flow draws for NPE, importance sampling from the prior (shared
proposals, ``vmap`` over tests) for NLE and NRE. Feed the arrays to
:func:`astrobayes.validation.calibration_report`.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes.sbi.estimators import NPE, AbstractEstimator
from astrobayes.sbi.posterior import _resample

__all__ = ["CalibrationDraws", "calibration_draws"]


class CalibrationDraws(NamedTuple):
    """Inputs of the calibration checks.

    Attributes:
        theta_true: ``(n, dim)``.
        samples: ``(n, m, dim)``.
        log_prob_true: ``(n,)``.
        log_prob_samples: ``(n, m)``.
        effective_sample_size: Per-test importance-sampling ESS (``m`` for NPE), ``(n,)``.

    """

    theta_true: np.ndarray
    samples: np.ndarray
    log_prob_true: np.ndarray
    log_prob_samples: np.ndarray
    effective_sample_size: np.ndarray


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
        w = jax.nn.softmax(log_w)
        ess = 1.0 / jnp.sum(w**2)
        index = _resample(k, log_w, num_samples)
        return proposals[index], (log_u - estimator.prior.log_abs_det_jacobian(u))[index], ess

    return jax.lax.map(lambda args: one(*args), (keys, x), batch_size=16)


def calibration_draws(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    theta_true,
    x,
    num_samples: int = 200,
    *,
    num_proposals: int = 5000,
) -> CalibrationDraws:
    """Posterior draws and log densities for many test simulations at once.

    Args:
        key: JAX PRNG key.
        estimator: Trained NPE, NLE or NRE.
        theta_true: True parameters of the tests, ``(n, dim)``.
        x: Their simulated data, ``(n, *data_shape)``.
        num_samples: Draws per test.
        num_proposals: Prior proposals shared by the importance sampler (NLE / NRE).

    Returns:
        :class:`CalibrationDraws`.

    Raises:
        TypeError: If ``estimator`` is not an estimator.
        ValueError: If ``theta_true`` and ``x`` disagree in length.

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
    x = jnp.asarray(x.reshape(x.shape[0], *estimator.x_shift.shape), jnp.float32)
    theta_j = jnp.asarray(theta_true, jnp.float32)
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
    return CalibrationDraws(
        theta_true,
        np.asarray(samples, dtype=float),
        np.asarray(log_true, dtype=float),
        np.asarray(log_samples, dtype=float),
        ess,
    )
