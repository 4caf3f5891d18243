"""The support check: does the importance target stay inside the posterior draws.

The learned harmonic mean sees the posterior only at its draws. Where the posterior has a
bounded support (hard prior edges sampled in the constrained space), target mass outside
it biases ``z`` high by ``1 / (1 - mass)``; :func:`check_support` measures that mass and
adds :class:`~astrobayes.evidence.EvidenceStatus` messages.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes.chains import Chains
from astrobayes.evidence.result import EvidenceResult, EvidenceStatus
from astrobayes.evidence.targets import FittedTarget

__all__ = ["check_support"]

_NUM_SUPPORT_DRAWS = 4096


def check_support(
    key: PRNGKeyArray, fitted: FittedTarget, chains: Chains, result: EvidenceResult
) -> EvidenceResult:
    """Estimate the target's mass outside the bounding box of all posterior draws.

    The estimator sees the posterior only at its draws; where the posterior has a bounded
    support, target mass outside it biases ``z`` high by the factor ``1 / (1 - mass)``. A
    target with thinner tails than a posterior of unbounded support puts almost no mass
    beyond the most extreme of ``n`` draws, so a clearly larger fraction flags a bounded
    support (or too wide a target).
    """
    if not np.isfinite(result.log_evidence):
        return result
    theta, _, _ = chains.flat()
    lo, hi = theta.min(axis=0), theta.max(axis=0)
    draws = np.asarray(
        _jitted_sample(
            fitted, key, jnp.asarray(result.temperature, jnp.float32), _NUM_SUPPORT_DRAWS
        ),
        dtype=np.float64,
    )
    outside = np.any((draws < lo) | (draws > hi), axis=1)
    mass = float(outside.mean())
    result = result._replace(target_mass_outside=mass)
    # The posterior's own draws put ~2 dim / n beyond their extremes; allow ten times that
    # plus Monte Carlo noise before calling the mass real.
    noise = 3.0 * np.sqrt(max(mass, 1.0 / _NUM_SUPPORT_DRAWS) / _NUM_SUPPORT_DRAWS)
    if mass <= 20.0 * chains.dim / theta.shape[0] + noise:
        return result
    bias = -np.log1p(-min(mass, 1 - 1e-12))
    if bias > result.log_evidence_std:
        return result.with_messages([EvidenceStatus.TARGET_OUTSIDE_SUPPORT])
    return result.with_messages([EvidenceStatus.TARGET_MASS_OUTSIDE])


@eqx.filter_jit
def _jitted_sample(fitted, key, temperature, num):
    return fitted.sample(key, temperature, num)
