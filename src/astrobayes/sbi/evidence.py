"""Model comparison for SBI: evidence from a learned likelihood, NUTS and the learned harmonic mean.

For a trained :class:`~astrobayes.sbi.estimators.NLE`, the unnormalised posterior
``q(x_o | theta) p(theta)`` is sampled with NUTS in the prior's unconstrained space,
where the pushed-forward prior is still normalised, so ``z = int q(x_o | theta)
p(theta) dtheta`` is unchanged by the reparametrisation. The chains go to
:func:`astrobayes.evidence.estimate`. The quoted error is the harmonic-mean Monte
Carlo error only: the error of the learned likelihood itself is not included (compare
evidences of simulators with analytic ones, or retrain with other seeds, to gauge it).

References:
    Spurio Mancini, Docherty, Price & McEwen 2023, arXiv:2207.04037 (learned harmonic
    mean for SBI); McEwen et al. 2021, arXiv:2111.12720 (learned harmonic mean);
    Papamakarios, Sterratt & Murray 2019, arXiv:1805.07226 (NLE).

"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes.chains import Chains
from astrobayes.evidence import EvidenceResult, estimate
from astrobayes.sbi.estimators import NLE
from astrobayes.sbi.posterior import MCMCConfig, _initial_positions, _nuts

__all__ = ["SBIEvidence", "nle_evidence"]


class SBIEvidence(NamedTuple):
    """Evidence of one simulator for one observation.

    Attributes:
        log_evidence: ``ln z`` of the learned likelihood times the prior.
        log_evidence_std: Monte Carlo standard error of the learned harmonic mean.
        evidence: The full :class:`astrobayes.evidence.EvidenceResult`.
        chains: The NUTS chains (unconstrained coordinates).
        status: ``evidence.status``.

    """

    log_evidence: float
    log_evidence_std: float
    evidence: EvidenceResult
    chains: Chains
    status: object


def nle_evidence(
    key: PRNGKeyArray,
    nle: NLE,
    x_obs,
    *,
    num_samples_per_chain: int = 1000,
    mcmc_config: MCMCConfig | None = None,
    **estimate_kwargs,
) -> SBIEvidence:
    """Estimate ``ln z`` of a simulator for ``x_obs`` from its trained NLE.

    Args:
        key: JAX PRNG key.
        nle: Trained neural likelihood estimator.
        x_obs: The observation.
        num_samples_per_chain: NUTS draws kept per chain.
        mcmc_config: Chains, warmup and initialisation (default 8 chains, 500 warmup).
        **estimate_kwargs: Passed to :func:`astrobayes.evidence.estimate`.

    Returns:
        :class:`SBIEvidence`.

    Raises:
        TypeError: If ``nle`` is not an :class:`NLE`.
        ValueError: If ``x_obs`` does not match the training data.

    """
    check_key(key)
    if not isinstance(nle, NLE):
        raise TypeError(f"nle must be a trained NLE; got {type(nle).__name__}")
    num_samples_per_chain = check_positive_int(num_samples_per_chain, "num_samples_per_chain")
    mcmc_config = mcmc_config or MCMCConfig(num_chains=8, num_warmup=500)
    x_obs = as_float_array(x_obs, "x_obs").reshape(-1)
    if x_obs.size != nle.x_shift.size:
        raise ValueError(f"x_obs must have {nle.x_shift.size} values; got {x_obs.size}")
    x_obs = jnp.asarray(x_obs, jnp.float32)
    key_init, key_run, key_evidence = jax.random.split(key, 3)
    u, _, index = _initial_positions(
        key_init, nle, x_obs, mcmc_config.num_chains, mcmc_config.num_initial
    )

    def logdensity_fn(position):
        return nle.log_posterior_unconstrained(position, x_obs)

    positions, log_post, _, _ = _nuts(
        key_run, logdensity_fn, u[np.asarray(index)], mcmc_config.num_warmup, num_samples_per_chain
    )
    chains = Chains(
        np.asarray(positions, dtype=float), np.asarray(log_post, dtype=float), names=nle.prior.names
    )
    result = estimate(key_evidence, chains, **estimate_kwargs)
    return SBIEvidence(result.log_evidence, result.log_evidence_std, result, chains, result.status)
