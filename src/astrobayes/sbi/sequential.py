"""Sequential, truncated rounds for one observation.

Round 1 simulates from the prior. After each round the posterior for ``x_obs`` defines
a highest-probability region: the set where the learned log posterior exceeds its
``epsilon`` quantile over posterior draws. The next round's parameters are drawn from
the prior *truncated* to that region (by rejection, the acceptance rate is reported),
and the estimator is retrained on all simulations so far. Because the proposal is the
prior restricted to a region holding all but ``epsilon`` of the posterior mass, NPE
needs no loss correction (truncated sequential NPE) and NLE / NRE stay valid for any
proposal.

References:
    Deistler, Goncalves & Macke 2022, arXiv:2210.04815 (truncated sequential NPE);
    Miller, Cole, Forre, Louppe & Weniger 2021, arXiv:2107.01214 (truncated marginal NRE).

"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_fraction, check_key, check_positive_int
from astrobayes._training import TrainingStatus
from astrobayes.sbi.estimators import AbstractEstimator
from astrobayes.sbi.posterior import PosteriorStatus
from astrobayes.sbi.priors import Prior
from astrobayes.sbi.simulators import SimulationStatus

__all__ = ["RoundInfo", "TruncatedPrior", "truncate_prior"]


class TruncatedPrior(eqx.Module):
    """The prior restricted to ``{theta : log_posterior(theta, x_obs) > threshold}``.

    Sampling is by rejection from the prior in batches. ``acceptance_rate`` is the
    fraction of prior draws inside the region measured when it was built.

    Attributes:
        prior: The untruncated prior.
        estimator: Estimator defining the region.
        x_obs: The observation.
        threshold: Log-posterior threshold.
        acceptance_rate: Measured acceptance of prior draws.

    """

    prior: Prior
    estimator: AbstractEstimator
    x_obs: Array
    threshold: Array
    acceptance_rate: float = eqx.field(static=True)

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return self.prior.dim

    def contains(self, theta: Array) -> Array:
        """Whether each row of ``theta`` lies in the truncated region."""
        return self.estimator.log_posterior(theta, self.x_obs) > self.threshold

    def sample(self, key: PRNGKeyArray, num_samples: int, max_batches: int = 1000) -> Array:
        """Draw ``num_samples`` parameters by rejection from the prior.

        Raises:
            RuntimeError: If fewer than ``num_samples`` were accepted after ``max_batches``.

        """
        num_samples = check_positive_int(num_samples, "num_samples")
        batch = int(min(max(2 * num_samples / max(self.acceptance_rate, 1e-4), 1000), 200_000))
        contains = eqx.filter_jit(lambda m, t: m.contains(t))
        accepted, total = [], 0
        for k in jax.random.split(key, max_batches):
            theta = self.prior.sample(k, batch)
            keep = np.asarray(contains(self, theta))
            accepted.append(np.asarray(theta)[keep])
            total += int(keep.sum())
            if total >= num_samples:
                return jnp.asarray(np.concatenate(accepted)[:num_samples])
        raise RuntimeError(
            f"truncated prior accepted only {total} of {max_batches * batch} prior draws; "
            "the region is too small for rejection sampling"
        )


class RoundInfo(NamedTuple):
    """Diagnostics of one sequential round.

    Attributes:
        round_index: 0 for the prior round.
        num_simulations: Valid simulations added in the round.
        num_failed: Failed simulations in the round.
        acceptance_rate: Prior acceptance of the truncated proposal used (1 in round 0).
        training_epochs: Epochs of the retraining after the round.
        training_time_s: Wall time of that retraining.
        training_status: :class:`astrobayes._training.TrainingStatus` of that retraining
            (``MAX_EPOCHS`` is a warning: the estimator may be under-trained).
        simulation_status: :class:`~astrobayes.sbi.SimulationStatus` of the round.
        posterior_status: :class:`~astrobayes.sbi.PosteriorStatus` of the round's
            posterior draws.

    """

    round_index: int
    num_simulations: int
    num_failed: int
    acceptance_rate: float
    training_epochs: int
    training_time_s: float
    training_status: TrainingStatus
    simulation_status: SimulationStatus
    posterior_status: PosteriorStatus


def truncate_prior(
    key: PRNGKeyArray,
    prior: Prior,
    estimator: AbstractEstimator,
    x_obs: Array | np.ndarray,
    posterior_samples: Float[Array, "num_samples dim"] | np.ndarray,
    *,
    epsilon: float = 1e-4,
    num_acceptance_draws: int = 10_000,
) -> TruncatedPrior:
    """Build the truncated prior for the next round.

    Args:
        key: JAX PRNG key (measures the acceptance rate).
        prior: The prior.
        estimator: Trained estimator.
        x_obs: The observation.
        posterior_samples: Draws from the current posterior for ``x_obs``, ``(n, dim)``.
        epsilon: Posterior mass allowed outside the region.
        num_acceptance_draws: Prior draws used to measure the acceptance rate.

    Returns:
        A :class:`TruncatedPrior`.

    Raises:
        ValueError: If ``epsilon`` is not in ``(0, 1)`` or no posterior sample is finite.

    """
    check_key(key)
    epsilon = check_fraction(epsilon, "epsilon")
    x_obs = jnp.asarray(x_obs, jnp.result_type(float)).reshape(estimator.x_shift.shape)
    log_post = np.asarray(estimator.log_posterior(jnp.asarray(posterior_samples), x_obs))
    log_post = log_post[np.isfinite(log_post)]
    if log_post.size == 0:
        raise ValueError("no posterior sample has a finite log posterior")
    threshold = jnp.asarray(np.quantile(log_post, epsilon), jnp.result_type(float))
    theta = prior.sample(key, num_acceptance_draws)
    inside = np.asarray(estimator.log_posterior(theta, x_obs) > threshold)
    acceptance = max(float(inside.mean()), 1.0 / num_acceptance_draws)
    return TruncatedPrior(
        prior=prior,
        estimator=estimator,
        x_obs=x_obs,
        threshold=threshold,
        acceptance_rate=acceptance,
    )
