"""Bridge sampling of the evidence with a learned proposal (needs the log density).

The learned harmonic mean (:func:`~astrobayes.evidence.estimate`) uses the posterior draws
only; its importance ratios ``phi / p~`` have finite variance only when the target's
tails are thinner than the posterior's everywhere. In 30 dimensions a target fitted on a
few thousand draws sits several nats above the posterior on ~1% of them, and the ratios'
tail check fails (docs/cosmic_shear.md). Where the unnormalised log density can be
evaluated, the optimal bridge estimator of Meng & Wong (1996),

    z = E_q[ p~ a ] / E_p[ q a ],    a = 1 / (s1 p~ / z + s2 q),

with draws of the posterior ``p`` (the chains not used for fitting) and of the fitted,
normalised target ``q``, has bounded terms on both sides (``q a <= 1 / s2``,
``p~ a / z <= 1 / s1``): its variance is finite whatever the tails, and a poor overlap
shows as a large error bar instead of a bias that the error bar misses. It is solved
by the fixed-point iteration of Meng & Wong (1996, eq. 4.1), in log space and float64.
The error is the relative mean-squared error of Frühwirth-Schnatter (2004, eq. 13) as
used by Gronau et al. (2017): the proposal side's variance over ``N2`` independent
draws plus the posterior side's, with its autocorrelation taken by batch means along
each chain.

References:
    Meng & Wong (1996), Statistica Sinica 6, 831;
    Frühwirth-Schnatter (2004), Econometrics Journal 7, 143;
    Gronau et al. (2017), arXiv:1703.05984 (bridge sampling tutorial and error);
    Polanska et al. (2024), arXiv:2405.05969 (flows fitted to posterior draws).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from scipy import special, stats

from astrobayes import diagnostics
from astrobayes._checks import check_fraction, check_positive_int
from astrobayes._status import check
from astrobayes._types import ProgressFn
from astrobayes.chains import Chains, prior_edges
from astrobayes.evidence.estimator import (
    _Context,
    _result,
    batch_count_messages,
    batch_lengths_of,
    check_chains_and_target,
    fit_target_on_chains,
    with_stationarity,
    without_negligible_weights,
)
from astrobayes.evidence.result import (
    EvidenceResult,
    EvidenceStatus,
    EvidenceUnreliableError,
)
from astrobayes.evidence.support import (
    MAX_ROUND_TRIP_FAILURES,
    jitted_sample,
    round_trip_failures,
)
from astrobayes.evidence.targets import (
    TargetFamily,
    log_density_from_terms,
    target_terms,
)

__all__ = ["bridge_estimate"]

#: Log densities are evaluated in padded chunks of this many points (one compiled program).
_CHUNK = 1024


def bridge_estimate(
    key: PRNGKeyArray,
    chains: Chains,
    logdensity_fn: Callable,
    *,
    target: TargetFamily | None = None,
    temperature: float = 1.0,
    num_proposal: int | None = None,
    training_fraction: float = 0.5,
    max_training_samples: int = 20_000,
    max_iterations: int = 1000,
    tolerance: float = 1e-10,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    throw: bool = False,
    progress_fn: ProgressFn | None = None,
) -> EvidenceResult:
    """Estimate the log evidence by bridge sampling between the posterior and a fitted flow.

    The target is fitted exactly as for :func:`~astrobayes.evidence.estimate` (same
    chains, same split, same training). Unlike the harmonic mean it also draws
    ``num_proposal`` points from the target and evaluates ``logdensity_fn`` there, so it
    needs the model, not only its chains.

    Args:
        key: JAX PRNG key (target fit and proposal draws).
        chains: Posterior chains; ``log_posterior`` must be ``logdensity_fn`` at the
            samples (the *normalised* log prior included). At least two chains.
        logdensity_fn: ``theta (dim,) -> +log`` unnormalised posterior density on the
            space of ``chains.samples``, JAX-traceable (it is vmapped and jitted).
        target: Target family (default :class:`~astrobayes.evidence.RQSplineFlow`).
        temperature: Variance scale of the proposal's base distribution, in ``(0, 2)``;
            the bridge needs no thin tails, so the default is 1 (the fitted flow).
        num_proposal: Proposal draws; default the number of inference draws (at least
            4096).
        training_fraction: Fraction of chains used to fit the target, in ``(0, 1)``.
        max_training_samples: Training draws are thinned to at most this many.
        max_iterations: Cap on the fixed-point iterations (a warning when reached).
        tolerance: Convergence of the iteration, on ``ln z``.
        bounds: ``{name: (lo, hi)}`` hard prior edges, as for
            :func:`~astrobayes.evidence.estimate`: the chains and ``logdensity_fn`` are
            moved to coordinates without edges (:meth:`~astrobayes.chains.Chains.unbounded`,
            the Jacobian added to both), and ``result.unbounded`` names the parameters.
        throw: Raise :class:`~astrobayes.evidence.EvidenceUnreliableError` on a failure
            status instead of returning it.
        progress_fn: Progress callback of the flow's training.

    Returns:
        :class:`~astrobayes.evidence.EvidenceResult` with ``method = "bridge"``; its
        ``pareto_k`` and ``effective_sample_size`` describe the plain importance weights
        ``p~ / q`` of the proposal draws (for information: the bridge does not need them
        to have finite variance), ``autocorrelation_time`` that of the posterior-side
        bridge terms.

    Raises:
        TypeError: If ``key``, ``chains`` or ``logdensity_fn`` are of the wrong type.
        ValueError: On a single chain, a bad ``temperature`` or counts, a
            ``logdensity_fn`` that does not return one number per point, or draws with
            no density to integrate (as :func:`~astrobayes.evidence.estimate`).
        EvidenceUnreliableError: With ``throw=True`` and a failure status.

    References:
        Meng & Wong (1996); Frühwirth-Schnatter (2004); Gronau et al. (2017),
        arXiv:1703.05984.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from astrobayes import Chains
        >>> from astrobayes.evidence import GaussianTarget, bridge_estimate
        >>> def logdensity(theta):  # unnormalised N(0, I): z = 2 pi
        ...     return -0.5 * jnp.sum(theta**2)
        >>> x = np.random.default_rng(1).normal(size=(4, 1000, 2))
        >>> chains = Chains(x, -0.5 * (x**2).sum(-1))
        >>> result = bridge_estimate(jax.random.key(0), chains, logdensity,
        ...                          target=GaussianTarget())
        >>> bool(abs(result.log_evidence - np.log(2 * np.pi)) < 4 * result.log_evidence_std)
        True

    """
    target, training_fraction = check_chains_and_target(key, chains, target, training_fraction)
    if not callable(logdensity_fn):
        raise TypeError(
            f"logdensity_fn must be a callable theta -> log density; got "
            f"{type(logdensity_fn).__name__}"
        )
    temperature = check_fraction(temperature, "temperature", high=2.0)
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    if not (isinstance(tolerance, int | float) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number; got {tolerance!r}")
    if num_proposal is not None:
        num_proposal = check_positive_int(num_proposal, "num_proposal", minimum=100)

    mapped: tuple[str, ...] = ()
    if bounds:
        chains, mapped = chains.unbounded(bounds)
        logdensity_fn = _on_unbounded(logdensity_fn, chains.names, mapped, bounds)
    chains = without_negligible_weights(chains)
    fit_key, proposal_key = jax.random.split(key)
    split = fit_target_on_chains(
        fit_key, chains, target, training_fraction, max_training_samples, progress_fn
    )
    fitted, infer, dim = split.fitted, split.infer, chains.dim
    # The harmonic mean's result builder, with the bridge's own fields.
    context = _Context(fitted, infer, [], (), {}, split.losses, split.num_train)
    messages: list[EvidenceStatus] = []
    if split.losses.size and not np.all(np.isfinite(split.losses)):
        messages.append(EvidenceStatus.NON_FINITE)

    # Posterior side: the chains not used for fitting, in chain order (for batch means).
    post_lp, post_lq, post_w = [], [], []
    for c in range(infer.num_chains):
        used = infer.weights[c] > 0
        terms = target_terms(fitted, infer.samples[c][used])
        post_lq.append(log_density_from_terms(*terms, temperature, dim))
        post_lp.append(np.asarray(infer.log_posterior[c][used], np.float64))
        post_w.append(np.asarray(infer.weights[c][used], np.float64))
    num_post = sum(lp.size for lp in post_lp)

    # Proposal side: independent draws of the fitted target and the density there.
    num_prop = max(num_post, 4096) if num_proposal is None else num_proposal
    method_fields = {"method": "bridge", "num_proposal_samples": int(num_prop)}
    draws, base_norm = jitted_sample(
        fitted, proposal_key, jnp.asarray(temperature, jnp.float32), num_prop
    )
    if round_trip_failures(fitted, draws, base_norm) > MAX_ROUND_TRIP_FAILURES:
        messages.append(EvidenceStatus.TARGET_NOT_INVERTIBLE)
    draws = np.asarray(draws, np.float64)
    terms = target_terms(fitted, draws)
    prop_lq = log_density_from_terms(*terms, temperature, dim)
    prop_lp = evaluate_log_density(logdensity_fn, draws)

    l1 = [lp - lq for lp, lq in zip(post_lp, post_lq, strict=True)]  # ln(p~/q), posterior draws
    l2 = prop_lp - prop_lq  # ln(p~/q), proposal draws
    # NaN or +inf anywhere, or no proposal draw with a positive density: no estimate.
    bad_proposal = np.any(np.isnan(prop_lp) | (prop_lp == np.inf)) or not np.any(np.isfinite(l2))
    if bad_proposal or not all(np.all(np.isfinite(v)) for v in l1):
        return _result(
            context,
            temperature,
            [EvidenceStatus.NON_FINITE, *messages],
            per_chain_log_evidence=np.full(infer.num_chains, np.nan),
            num_inference_samples=num_post,
            effective_sample_size=0.0,
            **method_fields,
        )
    # What is left of l2 is finite or -inf: a zero density (outside a bounded support).
    all_l1, all_w = np.concatenate(l1), np.concatenate(post_w)
    log_z, iterations = solve_bridge(all_l1, all_w, l2, max_iterations, tolerance)
    if iterations >= max_iterations:
        messages.append(EvidenceStatus.BRIDGE_NOT_CONVERGED)

    # Relative error (Frühwirth-Schnatter 2004, eq. 13): f1 = q a on posterior draws
    # (autocorrelated: batch means per chain), f2 = p~ a / z on proposal draws (iid).
    s1, s2 = _fractions(all_w, l2.size)
    f1 = [-np.logaddexp(np.log(s1) + v - log_z, np.log(s2)) for v in l1]
    f1_scaled = [np.exp(v) for v in f1]
    batch_lengths, taus = batch_lengths_of(f1_scaled)
    batches = diagnostics.weighted_batch_means(f1_scaled, post_w, batch_lengths)
    post_rel_var = (batches.std / batches.mean) ** 2
    f2 = np.exp(l2 - log_z - np.logaddexp(np.log(s1) + l2 - log_z, np.log(s2)))
    prop_rel_var = np.var(f2) / (f2.size * np.mean(f2) ** 2)
    log_z_std = float(np.sqrt(post_rel_var + prop_rel_var))

    per_chain = np.array(
        [
            solve_bridge(v, w, l2, max_iterations, tolerance)[0]
            for v, w in zip(l1, post_w, strict=True)
        ]
    )
    between_std, disagree = _chains_disagree(
        per_chain, f1_scaled, post_w, batch_lengths, prop_rel_var
    )
    if disagree:
        messages.append(EvidenceStatus.CHAINS_DISAGREE)
        log_z_std = max(log_z_std, between_std)

    finite_l2 = l2[np.isfinite(l2)]
    ess = diagnostics.kish_effective_sample_size(np.exp(finite_l2 - finite_l2.max()))
    num_batches = batches.batch_means.size
    messages += batch_count_messages(num_batches, log_z_std)
    if ess < 0.01 * num_prop:
        messages.append(EvidenceStatus.LOW_OVERLAP)
    if split.num_training_draws < 20 * dim:
        messages.append(EvidenceStatus.FEW_TRAINING_SAMPLES)
    return check(
        with_stationarity(
            _result(
                context,
                temperature,
                messages,
                num_inference_samples=num_post,
                log_evidence=log_z,
                log_evidence_std=log_z_std,
                per_chain_log_evidence=per_chain,
                effective_sample_size=float(ess),
                autocorrelation_time=float(max(taus)),
                pareto_k=diagnostics.pareto_tail_index(finite_l2),
                log_evidence_std_between_chains=between_std,
                **method_fields,
            )._replace(unbounded=mapped),
            chains,
        ),
        throw,
        error=EvidenceUnreliableError,
    )


def _on_unbounded(logdensity_fn: Callable, names, mapped, bounds) -> Callable:
    """``logdensity_fn`` on the coordinates of :meth:`Chains.unbounded`, Jacobian added."""
    edges = [(names.index(name), *prior_edges(*bounds[name])) for name in mapped]

    def on_u(u):
        theta, log_jacobian = u, 0.0
        for i, low, high in edges:
            if low is not None and high is not None:  # x = lo + (hi - lo) sigmoid(u)
                x = low + (high - low) * jax.nn.sigmoid(u[i])
                term = jnp.log(high - low) + jax.nn.log_sigmoid(u[i]) + jax.nn.log_sigmoid(-u[i])
            elif low is not None:  # x = lo + exp(u)
                x, term = low + jnp.exp(u[i]), u[i]
            else:  # x = hi - exp(u)
                x, term = high - jnp.exp(u[i]), u[i]
            theta = theta.at[i].set(x)
            log_jacobian = log_jacobian + term
        return logdensity_fn(theta) + log_jacobian

    return on_u


def solve_bridge(
    log_ratio_posterior: np.ndarray,
    weights: np.ndarray,
    log_ratio_proposal: np.ndarray,
    max_iterations: int = 1000,
    tolerance: float = 1e-10,
) -> tuple[float, int]:
    """The optimal bridge fixed point (Meng & Wong 1996, eq. 4.1) in log space.

    Args:
        log_ratio_posterior: ``ln(p~/q)`` at the posterior draws, shape ``(n1,)``.
        weights: Their non-negative weights, shape ``(n1,)``.
        log_ratio_proposal: ``ln(p~/q)`` at the proposal draws, shape ``(n2,)``
            (``-inf`` where ``p~ = 0``).
        max_iterations: Cap on the iterations.
        tolerance: Stop when ``ln z`` moves less than this.

    Returns:
        ``(ln z, iterations used)``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> # p~ = 3 q exactly: every ratio is ln 3
        >>> log_z, _ = solve_bridge(np.full(50, np.log(3)), np.ones(50), np.full(80, np.log(3)))
        >>> round(float(np.exp(log_z)), 6)
        3.0

    """
    l1 = np.asarray(log_ratio_posterior, np.float64)
    w = np.asarray(weights, np.float64)
    l2 = np.asarray(log_ratio_proposal, np.float64)
    s1, s2 = _fractions(w, l2.size)
    log_s1, log_s2 = np.log(s1), np.log(s2)
    log_w = np.log(np.where(w > 0, w, 1.0)) + np.where(w > 0, 0.0, -np.inf)
    log_w -= special.logsumexp(log_w)
    # Start from the geometric bridge's value (robust in the tails), then iterate.
    log_z = float(0.5 * (np.median(l1) + np.median(l2[np.isfinite(l2)])))
    for iteration in range(1, max_iterations + 1):
        numerator = special.logsumexp(l2 - np.logaddexp(log_s1 + l2, log_s2 + log_z)) - np.log(
            l2.size
        )
        denominator = special.logsumexp(log_w - np.logaddexp(log_s1 + l1, log_s2 + log_z))
        new = float(numerator - denominator)
        if abs(new - log_z) < tolerance:
            return new, iteration
        log_z = new
    return log_z, max_iterations


def evaluate_log_density(logdensity_fn: Callable, draws: np.ndarray) -> np.ndarray:
    """``logdensity_fn`` at each row of ``draws``, vmapped in padded chunks, float64.

    Raises:
        ValueError: If ``logdensity_fn`` does not return one number per point.
    """
    num, dim = draws.shape
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 under jax_enable_x64
    probe = jax.eval_shape(logdensity_fn, jax.ShapeDtypeStruct((dim,), dtype))
    if getattr(probe, "shape", None) != ():
        raise ValueError(
            "logdensity_fn must return one number (shape ()) per point of shape "
            f"({dim},); got shape {getattr(probe, 'shape', type(probe).__name__)}"
        )
    batched = jax.jit(jax.vmap(logdensity_fn))
    padded = np.concatenate([draws, np.repeat(draws[:1], (-num) % _CHUNK, axis=0)])
    out = [
        np.asarray(batched(jnp.asarray(padded[lo : lo + _CHUNK], dtype)), np.float64)
        for lo in range(0, padded.shape[0], _CHUNK)
    ]
    return np.concatenate(out)[:num]


def _fractions(weights: np.ndarray, num_proposal: int) -> tuple[float, float]:
    """``s1, s2``: the posterior side counted by its Kish size (Gronau et al. 2017)."""
    n1 = float(diagnostics.kish_effective_sample_size(np.asarray(weights, np.float64)))
    return n1 / (n1 + num_proposal), num_proposal / (n1 + num_proposal)


def _chains_disagree(per_chain, f1_scaled, weights, batch_lengths, prop_rel_var):
    """Spread of per-chain ``ln z`` against their own errors (chi-square, ``p < 1e-3``)."""
    if per_chain.size < 2:
        return float("nan"), False
    between_std = float(np.std(per_chain, ddof=1) / np.sqrt(per_chain.size))
    chain_errors = []
    for f, w, b in zip(f1_scaled, weights, batch_lengths, strict=True):
        bm = diagnostics.weighted_batch_means([f], [w], [b])
        chain_errors.append(np.sqrt((bm.std / bm.mean) ** 2 + prop_rel_var))
    chain_errors = np.asarray(chain_errors)
    if not np.all(np.isfinite(chain_errors)) or np.any(chain_errors <= 0):
        return between_std, False
    mean = np.sum(per_chain / chain_errors**2) / np.sum(1 / chain_errors**2)
    chi2 = np.sum(((per_chain - mean) / chain_errors) ** 2)
    return between_std, bool(stats.chi2.sf(chi2, per_chain.size - 1) < 1e-3)
