"""The support check: does the importance target stay inside the posterior draws.

The learned harmonic mean sees the posterior only at its draws. Where the posterior has a
bounded support (hard prior edges sampled in the constrained space), target mass outside
it biases ``z`` high by ``1 / (1 - mass)``; :func:`check_support` measures that mass and
adds :class:`~astrobayes.evidence.EvidenceStatus` messages.

The same draws check that the fitted flow is numerically invertible. A rational-quadratic
spline with extreme parameters (very narrow bins, steep derivatives) maps monotonically
in exact arithmetic, but in float32 its inverse no longer undoes its forward map, and its
log-determinant no longer matches the map (measured on flowjax's spline and on
:class:`~astrobayes._flows.DenseRationalQuadraticSpline` alike). The target is then not
normalised, and ``z`` is biased by an unknown amount.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes.chains import Chains
from astrobayes.compilation import compiled_with_options, network_compiler_options
from astrobayes.evidence.result import EvidenceResult, EvidenceStatus
from astrobayes.evidence.targets import FittedTarget, target_terms
from astrobayes.mixtures import GaussianMixture

__all__ = ["MAX_ROUND_TRIP_FAILURES", "check_support", "jitted_sample", "round_trip_failures"]

_NUM_SUPPORT_DRAWS = 4096
#: A draw fails the round trip when the base point recovered through the inverse map is
#: off by more than this, relative to ``1 + |u|^2``; float32 round trips of sound flows
#: are ~1e-6.
_ROUND_TRIP_TOLERANCE = 1e-2
#: Fraction of failing draws above which the target counts as not invertible.
MAX_ROUND_TRIP_FAILURES = 0.01


def check_support(
    key: PRNGKeyArray, fitted: FittedTarget, chains: Chains, result: EvidenceResult
) -> EvidenceResult:
    """Estimate the target's mass outside the bounding box of all posterior draws.

    The estimator sees the posterior only at its draws; where the posterior has a bounded
    support, target mass outside it biases ``z`` high by the factor ``1 / (1 - mass)``. A
    target with thinner tails than a posterior of unbounded support puts almost no mass
    beyond the most extreme of ``n`` draws, so a clearly larger fraction flags a bounded
    support (or too wide a target). The same draws go back through the flow's inverse
    map: where more than 1% of them miss their base point, the flow is not numerically
    invertible and :attr:`~astrobayes.evidence.EvidenceStatus.TARGET_NOT_INVERTIBLE` is
    added.
    """
    if not np.isfinite(result.log_evidence):
        return result
    theta, _, _ = chains.flat()
    lo, hi = theta.min(axis=0), theta.max(axis=0)
    sampled, base_norm = jitted_sample(
        fitted, key, jnp.asarray(result.temperature, jnp.float32), _NUM_SUPPORT_DRAWS
    )
    draws = np.asarray(sampled, dtype=np.float64)
    failures = round_trip_failures(fitted, sampled, base_norm)
    if failures > MAX_ROUND_TRIP_FAILURES:
        result = result.with_messages([EvidenceStatus.TARGET_NOT_INVERTIBLE])
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


def round_trip_failures(fitted: FittedTarget, draws, base_norm) -> float:
    """Fraction of the target's own draws whose base point the inverse map misses.

    Flows only: the Gaussian target and mixtures are affine maps, exact to rounding.
    """
    if fitted.bijection is None or isinstance(fitted.bijection, GaussianMixture):
        return 0.0
    recovered, _ = target_terms(fitted, np.asarray(draws))
    expected = np.asarray(base_norm, np.float64)
    error = np.abs(recovered - expected) / (1.0 + expected)
    return float(np.mean(~(error <= _ROUND_TRIP_TOLERANCE)))


def _sample(fitted, key, temperature, num):
    return fitted.sample_with_base(key, temperature, num)


def jitted_sample(fitted, key, temperature, num):
    """:meth:`FittedTarget.sample_with_base`, compiled (one program per draw count).

    With the options of :func:`astrobayes.compilation.network_compiler_options` for the
    flow's dimension.
    """
    options = network_compiler_options(int(fitted.whitening.mean.shape[0]))
    return compiled_with_options(_sample, options)(fitted, key, temperature, num)
