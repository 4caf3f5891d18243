"""What a NUTS run returns: :class:`SamplingResult` with its :class:`SamplingStatus`.

The status is judged from the draws after warm-up, with the package's one R-hat and ESS
(:mod:`astrobayes.diagnostics`; they differ slightly from blackjax's, which older runs
reported):

- failure: a non-finite draw or log density; split R-hat above 1.1 for any parameter
  (chains that disagree this much have not found the same distribution; the classical
  threshold of Gelman et al. 2013, BDA3, Sec. 11.4);
- warning: split R-hat above 1.01 (Vehtari et al. 2021, arXiv:1903.08008, Sec. 4);
  effective sample size below 100 per chain (the same paper's minimum for reliable
  R-hat and Monte Carlo error estimates); any divergent transition after warm-up
  (Betancourt 2017, arXiv:1701.02434, Sec. 6.2: the trajectory met curvature it could
  not follow, so part of the posterior may be missed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jaxtyping import Float

from astrobayes import diagnostics
from astrobayes._status import Severity, Status, by_severity
from astrobayes.chains import Chains

__all__ = [
    "MAX_RHAT_FAILURE",
    "MAX_RHAT_WARNING",
    "MIN_ESS_PER_CHAIN",
    "SamplingResult",
    "SamplingStatus",
    "sampling_diagnostics",
]

#: Split R-hat above which the run is a failure (Gelman et al. 2013).
MAX_RHAT_FAILURE = 1.1
#: Split R-hat above which the run is a warning (Vehtari et al. 2021, arXiv:1903.08008).
MAX_RHAT_WARNING = 1.01
#: Effective sample size per chain below which the run is a warning (Vehtari et al. 2021).
MIN_ESS_PER_CHAIN = 100


class SamplingStatus(Status):
    """Outcome of a NUTS run; each value is the message shown to the user."""

    OK = (Severity.OK, "ok")
    DIVERGENCES = (
        Severity.WARNING,
        "warning: divergent transitions after warm-up: the sampler met curvature it could "
        "not follow and may miss part of the posterior (Betancourt 2017, arXiv:1701.02434); "
        "reparameterise or raise target_acceptance_rate",
    )
    HIGH_RHAT = (
        Severity.WARNING,
        "warning: split R-hat above 1.01 for some parameter (Vehtari et al. 2021, "
        "arXiv:1903.08008): the chains have not fully mixed; run longer chains",
    )
    LOW_EFFECTIVE_SAMPLE_SIZE = (
        Severity.WARNING,
        "warning: effective sample size below 100 per chain for some parameter (Vehtari "
        "et al. 2021, arXiv:1903.08008): posterior summaries are noisy; run longer chains",
    )
    NOT_CONVERGED = (
        Severity.FAILURE,
        "failure: split R-hat above 1.1 for some parameter: the chains disagree (not "
        "converged), so the draws must not be used; run longer or start elsewhere",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: non-finite draws or log densities",
    )


class SamplingResult(NamedTuple):
    """Draws and diagnostics of :func:`~astrobayes.sampling.run_nuts`.

    Attributes:
        samples: ``(num_chains, num_samples, dim)`` draws (in the space of ``logdensity_fn``).
        logdensity: ``(num_chains, num_samples)`` +log density of each draw.
        names: Parameter names.
        rhat: Split R-hat per parameter (:func:`astrobayes.diagnostics.split_rhat`).
        ess: Effective sample size per parameter, all chains together
            (:func:`astrobayes.diagnostics.effective_sample_size`).
        acceptance_rate: Mean acceptance per chain.
        num_divergent: Divergent transitions per chain.
        step_size: Adapted step size per chain.
        resumed_from: Draws per chain found in the checkpoint (0 for a fresh run).
        status: The most severe :class:`SamplingStatus`.
        messages: Every status raised (most severe first).
        num_gradient_evaluations: Evaluations of the density and its gradient per chain
            (NUTS leapfrog steps, warm-up included, with the padding steps of a last
            partial block, which are computed too): the machine-independent cost to set
            beside a nested sampler's likelihood calls. Vectorised chains pay for the
            longest trajectory of each step, so their compute can exceed the sum.
            ``None`` where unknown (a sampler that does not count them, or a run resumed
            from a checkpoint written before the count existed).
        num_computed_evaluations: Evaluations the program computed, all chains together.
            Vectorized chains: ``num_chains`` times the longest trajectory of each step,
            summed (1.1-1.5x the sum of ``num_gradient_evaluations`` on the d = 30 shear
            posterior, docs/cosmic_shear.md). That is a lower bound: the batched loop
            runs each tree doubling until its longest chain is done, a few percent more
            (3% in a test with a callback). Sequential chains: the per-chain sum.
            ``None`` where unknown, as above.

    """

    samples: Float[np.ndarray, "num_chains num_samples dim"]
    logdensity: Float[np.ndarray, "num_chains num_samples"]
    names: tuple[str, ...]
    rhat: Float[np.ndarray, " dim"]
    ess: Float[np.ndarray, " dim"]
    acceptance_rate: Float[np.ndarray, " num_chains"]
    num_divergent: np.ndarray
    step_size: Float[np.ndarray, " num_chains"]
    resumed_from: int
    status: SamplingStatus
    messages: tuple[SamplingStatus, ...]
    num_gradient_evaluations: np.ndarray | None = None
    num_computed_evaluations: int | None = None

    def to_chains(self) -> Chains:
        """The draws as :class:`~astrobayes.chains.Chains` (log posterior = log density)."""
        return Chains(self.samples, self.logdensity, names=self.names)


def sampling_diagnostics(
    samples: Float[np.ndarray, "num_chains num_samples dim"],
    logdensity: Float[np.ndarray, "num_chains num_samples"],
    num_divergent: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, SamplingStatus, tuple[SamplingStatus, ...]]:
    """Split R-hat, ESS and the status of a run's draws.

    Args:
        samples: Draws after warm-up, ``(num_chains, num_samples, dim)``.
        logdensity: Their log densities, ``(num_chains, num_samples)``.
        num_divergent: Divergent transitions per chain.

    Returns:
        ``(rhat, ess, status, messages)``: R-hat and ESS per parameter (``nan`` where
        undefined, e.g. fewer than 4 draws per chain), the most severe status and all.

    Example:
        >>> draws = np.random.default_rng(0).normal(size=(4, 500, 2))
        >>> rhat, ess, status, _ = sampling_diagnostics(draws, np.zeros((4, 500)), np.zeros(4))
        >>> status.name
        'OK'

    """
    samples = np.asarray(samples, np.float64)
    num_chains = samples.shape[0]
    if not (np.all(np.isfinite(samples)) and np.all(np.isfinite(logdensity))):
        nan = np.full(samples.shape[-1], np.nan)
        return nan, nan, SamplingStatus.NON_FINITE, (SamplingStatus.NON_FINITE,)
    rhat = np.asarray(diagnostics.split_rhat(samples), np.float64)
    ess = np.asarray(diagnostics.effective_sample_size(samples), np.float64)
    messages = []
    if np.any(rhat > MAX_RHAT_FAILURE):
        messages.append(SamplingStatus.NOT_CONVERGED)
    elif np.any(rhat > MAX_RHAT_WARNING):
        messages.append(SamplingStatus.HIGH_RHAT)
    if np.any(ess < MIN_ESS_PER_CHAIN * num_chains):
        messages.append(SamplingStatus.LOW_EFFECTIVE_SAMPLE_SIZE)
    if np.sum(num_divergent) > 0:
        messages.append(SamplingStatus.DIVERGENCES)
    ordered = by_severity(messages)
    return rhat, ess, ordered[0] if ordered else SamplingStatus.OK, ordered
