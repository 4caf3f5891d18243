"""Per-observation check of a learned likelihood against fresh simulations.

Coverage, TARP and SBC average over the prior predictive, and the posterior predictive
check asks whether ``x_obs`` is in the tail of the posterior's predictive distribution;
none of them asks whether the *learned likelihood is right at this observation*. An
NLE posterior is ``q(x_obs | theta) p(theta)``: if the flow ``q`` misjudges how extreme
``x_obs`` is at the parameters the posterior uses (for instance because ``x_obs`` lies
where the flow extrapolates), the posterior is wrong and every sampler diagnostic stays
green (slcp observation 7, docs/sbi.md).

This check needs only the trained NLE and one fresh simulation ``x_i`` at each of ``n``
posterior draws ``theta_i``. It compares, at the same parameters, the simulator with the
learned likelihood *at the observation*:

* **Tail of x_obs, per data component** (paired sign test). For each component ``j``
  the flow also draws ``x~_i ~ q(x | theta_i)``. If ``q = p`` at ``theta_i``, the events
  "simulated ``x_ij`` is beyond ``x_obs,j``" and "flow draw ``x~_ij`` is beyond
  ``x_obs,j``" have the same probability for every ``i``, so among the discordant pairs
  the simulator's share is Binomial(n_discordant, 1/2) (McNemar 1947) whatever the
  posterior. "Beyond" is the side of ``x_obs,j`` away from the pooled median.
* **Tail of x_obs, jointly** (latent radius). The flow maps ``x`` to a standard normal
  latent ``z = T(x; theta)`` in ``D`` dimensions; if ``q = p`` at ``theta_i``,
  ``r_i = |T(x_i; theta_i)|^2`` is chi-square with ``D`` degrees of freedom, so the number
  of draws with ``r_i >= |T(x_obs; theta_i)|^2`` is a sum of independent Bernoullis with
  the known probabilities ``t_i = P(chi2_D >= |T(x_obs; theta_i)|^2)`` (an exact
  Poisson-binomial test).
* **Calibration at the posterior's parameters** (latent PIT), reported, not part of the
  verdict. The same radii ``r_i``, through the chi-square CDF, are uniform if ``q = p``;
  their Kolmogorov-Smirnov statistic measures how far the flow is from the simulator
  where the posterior lives, whatever ``x_obs``.

The tail tests test the learned likelihood where the posterior puts its mass and at the
level of ``x_obs``; they need neither the posterior to be right nor any refit. Each
p-value is Bonferroni-adjusted over the ``D + 1`` tail tests and compared with
``significance``; a test flags only if its effect is also large: the two tail
frequencies it compares, on either side of ``x_obs`` (counts plus one), differ by more
than the factor ``ratio`` (default 2, about 0.7 nat in the learned log likelihood at
``x_obs``). The PIT is kept
out of the verdict because trained flows are rarely exact in the bulk: an amortised NLE
of slcp (10^4 simulations) had KS statistics 0.07-0.21 at observations 1-4, whose
posteriors scored C2ST 0.68-0.82, and a converged one-layer
affine flow of a Gaussian likelihood had 0.09 on 600 draws. A flag is a
warning: the learned likelihood misjudges ``x_obs`` at the parameters the posterior
uses, so the posterior for this observation should not be trusted as it is; add
simulations where the posterior lives (more rounds) or check the simulator.

It is blind to an error in the likelihood at parameters the posterior does not visit
(for that, the draws can come from any proposal that covers them, e.g. a widened
posterior), and it says nothing about NPE or NRE.

References:
    McNemar 1947, Psychometrika 12, 153 (paired sign test); Papamakarios, Sterratt &
    Murray 2019, arXiv:1805.07226 (NLE); Linhart, Gramfort & Rodrigues 2023,
    arXiv:2306.03580 (local calibration at one observation, for NPE).

"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from jaxtyping import Array, PRNGKeyArray
from scipy import stats

from astrobayes._checks import as_float_array, check_finite, check_fraction, check_key
from astrobayes._status import Severity, Status, check
from astrobayes.sbi.estimators import NLE

__all__ = ["LikelihoodCheckResult", "LikelihoodCheckStatus", "local_likelihood_check"]


class LikelihoodCheckStatus(Status):
    """Verdict of :func:`local_likelihood_check`; the value is the message."""

    CONSISTENT = (
        Severity.OK,
        "the learned likelihood agrees with fresh simulations at x_obs, at the posterior's "
        "parameters",
    )
    MISJUDGES_X_OBS = (
        Severity.WARNING,
        "the learned likelihood misjudges how extreme x_obs is at the posterior's parameters "
        "(fresh simulations disagree with it there): the posterior for this observation is "
        "not reliable; add simulations where it lives or check the simulator",
    )


class LikelihoodCheckResult(NamedTuple):
    """Outcome of :func:`local_likelihood_check`.

    Attributes:
        p_components: Two-sided paired sign-test p-value per data component, ``(D,)``.
        tail_simulator: Per component, the fraction of simulations beyond ``x_obs``.
        tail_flow: Per component, the fraction of flow draws beyond ``x_obs``.
        p_radius: Two-sided Poisson-binomial p-value of the latent-radius count.
        exceed_observed: Simulations whose latent radius exceeds that of ``x_obs``.
        exceed_expected: The count the learned likelihood predicts.
        p_calibration: KS p-value of the simulations' latent radii against chi-square
            (reported, not in the verdict).
        calibration_deviation: Its KS statistic (largest CDF difference).
        p_adjusted: ``min(1, (D + 1) * smallest tail-test p-value)`` (Bonferroni).
        num_draws: Posterior draws (one simulation each).
        summary: One line saying what was compared and, when flagged, where it failed.
        status: :class:`LikelihoodCheckStatus`.

    """

    p_components: np.ndarray
    tail_simulator: np.ndarray
    tail_flow: np.ndarray
    p_radius: float
    exceed_observed: int
    exceed_expected: float
    p_calibration: float
    calibration_deviation: float
    p_adjusted: float
    num_draws: int
    summary: str
    status: LikelihoodCheckStatus


@eqx.filter_jit
def _latents_and_draws(nle: NLE, key: PRNGKeyArray, theta: Array, x: Array, x_obs: Array):
    flow = paramax.unwrap(nle.flow)
    cond = nle._z(nle.prior.to_unconstrained(theta))

    def one(k, c, xi):
        z_sim = flow.bijection.inverse(nle._x_std(xi), c)
        z_obs = flow.bijection.inverse(nle._x_std(x_obs), c)
        draw = flow.sample(k, condition=c) * nle.x_scale + nle.x_shift
        return z_sim, z_obs, draw

    return jax.vmap(one)(jax.random.split(key, theta.shape[0]), cond, x)


def _poisson_binomial_p(count: int, probs: np.ndarray) -> float:
    """Two-sided p-value of ``count`` for a sum of Bernoulli(``probs``)."""
    pmf = np.zeros(probs.size + 1)
    pmf[0] = 1.0
    for i, t in enumerate(probs):
        pmf[1 : i + 2] = pmf[1 : i + 2] * (1.0 - t) + pmf[: i + 1] * t
        pmf[0] *= 1.0 - t
    low, high = pmf[: count + 1].sum(), pmf[count:].sum()
    return float(min(1.0, 2.0 * min(low, high)))


def local_likelihood_check(
    key: PRNGKeyArray,
    nle: NLE,
    x_obs: Array | np.ndarray,
    theta: Array | np.ndarray,
    x: Array | np.ndarray,
    *,
    significance: float = 0.01,
    ratio: float = 2.0,
    throw: bool = False,
) -> LikelihoodCheckResult:
    """Check the learned likelihood at ``x_obs`` against simulations at posterior draws.

    Args:
        key: JAX PRNG key (the flow's draws ``x~ ~ q(x | theta)``).
        nle: The trained :class:`~astrobayes.sbi.NLE` whose posterior is checked.
        x_obs: The observation (flattened to the NLE's data size).
        theta: ``(n, dim)`` posterior draws for ``x_obs``.
        x: ``(n, D)`` one simulation at each draw (fresh: not used in training).
        significance: Flag a tail test when its Bonferroni-adjusted p-value is below
            this ...
        ratio: ... and its two frequencies, on either side (counts plus one), differ
            by more than this factor.
        throw: Accepted for the shared protocol; the verdict is at most a warning, so
            nothing is raised.

    Returns:
        :class:`LikelihoodCheckResult`.

    Raises:
        TypeError: If ``nle`` is not an :class:`~astrobayes.sbi.NLE`.
        ValueError: On mismatched shapes, non-finite inputs, or too few draws to reject
            at ``significance``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.sbi import FlowConfig, Prior, SBITrainingConfig, train_nle
        >>> prior = Prior.uniform([-2.0], [2.0])
        >>> k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
        >>> theta = prior.sample(k1, 2000)
        >>> nle, _ = train_nle(k3, prior, theta, theta + 0.3 * jax.random.normal(k2, theta.shape),
        ...     flow_config=FlowConfig(flow_layers=1, nn_width=16, knots=0),
        ...     training_config=SBITrainingConfig(learning_rate=1e-2, max_epochs=100))
        >>> draws = 0.5 + 0.3 * jax.random.normal(k1, (600, 1))
        >>> for noise in (0.3, 1.2):  # the simulator it learned, then one 4x noisier
        ...     sims = draws + noise * jax.random.normal(k2, draws.shape)
        ...     print(local_likelihood_check(k3, nle, jnp.array([0.5]), draws, sims).status.name)
        CONSISTENT
        MISJUDGES_X_OBS

    """
    check_key(key)
    if not isinstance(nle, NLE):
        raise TypeError(f"nle must be an astrobayes.sbi.NLE; got {type(nle).__name__}")
    significance = check_fraction(significance, "significance")
    if not ratio > 1.0:
        raise ValueError(f"ratio must be a factor > 1; got {ratio}")
    size = int(np.prod(nle.x_shift.shape))
    x_obs = as_float_array(x_obs, "x_obs").reshape(-1)
    if x_obs.size != size:
        raise ValueError(f"x_obs must have {size} elements (the NLE's data size); got {x_obs.size}")
    theta = as_float_array(theta, "theta", ndim=2)
    if theta.shape[1] != nle.prior.dim:
        raise ValueError(f"theta must have shape (n, {nle.prior.dim}); got {theta.shape}")
    x = as_float_array(x, "x")
    if x.shape[0] != theta.shape[0] or x.size != theta.shape[0] * size:
        raise ValueError(
            f"x must have shape ({theta.shape[0]}, {size}) (one simulation per draw); got {x.shape}"
        )
    x = x.reshape(theta.shape[0], size)
    for value, name in ((x_obs, "x_obs"), (theta, "theta"), (x, "x")):
        check_finite(value, name)
    n = theta.shape[0]
    needed = int(np.ceil(2 * (size + 1) / significance))
    if n < needed:
        raise ValueError(
            f"theta has {n} draws; at least {needed} are needed for a {size}-component check "
            f"to be able to reject at significance {significance}"
        )
    z_sim, z_obs, draws = (
        np.asarray(a, float)
        for a in _latents_and_draws(
            nle,
            key,
            jnp.asarray(theta, jnp.result_type(float)),
            jnp.asarray(x, jnp.result_type(float)),
            jnp.asarray(x_obs, jnp.result_type(float)),
        )
    )
    # Per component: paired sign test of "beyond x_obs" (simulator vs flow).
    median = np.median(np.concatenate([x, draws]), axis=0)
    upper = x_obs >= median
    beyond_sim = np.where(upper, x >= x_obs, x <= x_obs)
    beyond_flow = np.where(upper, draws >= x_obs, draws <= x_obs)
    only_sim = np.sum(beyond_sim & ~beyond_flow, axis=0)
    only_flow = np.sum(beyond_flow & ~beyond_sim, axis=0)
    p_components = np.array(
        [
            stats.binomtest(int(a), int(a + b), 0.5).pvalue if a + b > 0 else 1.0
            for a, b in zip(only_sim, only_flow, strict=True)
        ]
    )
    tail_sim = beyond_sim.mean(axis=0)
    tail_flow = beyond_flow.mean(axis=0)
    # Jointly: latent radius of the simulations against that of x_obs.
    radius_sim = np.sum(z_sim**2, axis=1)
    radius_obs = np.sum(z_obs**2, axis=1)
    t = stats.chi2.sf(radius_obs, size)
    exceed = int(np.sum(radius_sim >= radius_obs))
    expected = float(t.sum())
    p_radius = _poisson_binomial_p(exceed, t)
    # Overall (reported only): the simulations' latent radii against chi-square (PIT, KS).
    pit = stats.kstest(stats.chi2.cdf(radius_sim, size), "uniform")
    p_calibration, deviation = float(pit.pvalue), float(pit.statistic)
    num_tests = size + 1
    p_adjusted = float(min(1.0, num_tests * min(float(p_components.min()), p_radius)))

    def differs(p: float, a: float, b: float) -> bool:
        """Significant, and either side's frequencies (counts + 1) differ by ``ratio``."""
        factors = [(a * n + 1.0) / (b * n + 1.0), ((1 - a) * n + 1.0) / ((1 - b) * n + 1.0)]
        return num_tests * p < significance and max(max(f, 1.0 / f) for f in factors) > ratio

    bad_components = [j for j in range(size) if differs(p_components[j], tail_flow[j], tail_sim[j])]
    bad_radius = differs(p_radius, expected / n, exceed / n)
    flagged = bool(bad_components) or bad_radius
    parts = []
    for j in bad_components:
        side = ">=" if upper[j] else "<="
        parts.append(
            f"component {j} (x_obs = {x_obs[j]:.4g}): P(x {side} x_obs) is "
            f"{tail_flow[j]:.2%} under the learned likelihood, {tail_sim[j]:.2%} in simulations"
        )
    if bad_radius:
        parts.append(
            f"jointly: {exceed} simulations lie beyond x_obs in the flow's latent space, "
            f"{expected:.2g} expected"
        )
    lo, hi = np.percentile(theta, [5, 95], axis=0)
    where = ", ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True))
    summary = (
        f"learned likelihood vs {n} simulations at the posterior's draws (5-95% ranges {where}): "
        + ("; ".join(parts) if flagged else f"consistent (adjusted p {p_adjusted:.2g})")
    )
    result = LikelihoodCheckResult(
        p_components=p_components,
        tail_simulator=tail_sim,
        tail_flow=tail_flow,
        p_radius=p_radius,
        exceed_observed=exceed,
        exceed_expected=expected,
        p_calibration=p_calibration,
        calibration_deviation=deviation,
        p_adjusted=p_adjusted,
        num_draws=n,
        summary=summary,
        status=(
            LikelihoodCheckStatus.MISJUDGES_X_OBS if flagged else LikelihoodCheckStatus.CONSISTENT
        ),
    )
    return check(result, throw)
