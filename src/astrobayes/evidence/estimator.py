"""The learned harmonic mean estimator of the Bayesian evidence.

With posterior draws ``theta_i`` and a normalised target density ``phi`` whose tails are
thinner than the posterior's, the re-targeted harmonic mean (Gelfand & Dey 1994) gives

    1 / z = E_posterior[ phi(theta) / (L(theta) pi(theta)) ].

``phi`` is learned (a normalizing flow, or a Gaussian) on some chains and concentrated by
a temperature ``T < 1``; the expectation is taken over the *other* chains, in log space
and accumulated in float64. Its standard error comes from batch means of the importance
ratios along each chain (batches longer than the ratios' autocorrelation time), checked
against the spread of the per-chain estimates.

References:
    Newton & Raftery (1994); Gelfand & Dey (1994), J. R. Stat. Soc. B 56, 501;
    McEwen, Wallis, Price & Spurio Mancini (2021), arXiv:2111.12720;
    Polanska, Price, Piras, Spurio Mancini & McEwen (2024), arXiv:2405.05969;
    Vehtari et al., arXiv:1507.02646 (Pareto tail diagnostic).

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from scipy import stats

from astrobayes import diagnostics
from astrobayes._checks import check_fraction, check_key, check_positive_int
from astrobayes._status import check
from astrobayes._types import ProgressFn
from astrobayes.chains import Chains, is_nested_sampling_order
from astrobayes.evidence.result import (
    EvidenceResult,
    EvidenceStatus,
    EvidenceUnreliableError,
    order_messages,
    status_of,
)
from astrobayes.evidence.support import check_support
from astrobayes.evidence.targets import (
    FittedTarget,
    RQSplineFlow,
    TargetFamily,
    log_density_from_terms,
    target_terms,
)

__all__ = ["DEFAULT_TEMPERATURES", "estimate"]

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


def estimate(
    key: PRNGKeyArray,
    chains: Chains,
    *,
    target: TargetFamily | None = None,
    temperature: float | None = None,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    training_fraction: float = 0.5,
    max_training_samples: int = 20_000,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    throw: bool = False,
    progress_fn: ProgressFn | None = None,
) -> EvidenceResult:
    """Estimate the log evidence from posterior chains with the learned harmonic mean.

    The first ``round(training_fraction * num_chains)`` chains (at least one) fit the
    target on whitened coordinates; the rest evaluate
    ``1/z = sum_i w_i phi_T(theta_i) / p~(theta_i) / sum_i w_i`` in log space, with
    ``p~ = exp(log_posterior)``. When ``temperature`` is not given it is chosen from
    ``temperatures`` (all ``< 1``) by the smallest relative variance of the ratios on
    held-out draws of the training chains, among temperatures whose ratios are not
    heavy-tailed (Pareto ``k <= 0.5``), so a target with fatter tails than the posterior
    is never selected. The input chains are also tested for stationarity
    (``result.stationarity``, warning ``NOT_STATIONARY`` with the burn-in that removes
    it) and for chains that never move (``result.stuck_chains``, warning
    ``CHAINS_STUCK``).

    Args:
        key: JAX PRNG key (flow initialisation and training).
        chains: Posterior chains (samples ``(num_chains, num_samples, dim)``);
            ``log_posterior`` must include the *normalised* log prior. At least two
            chains.
        target: Target family: :class:`RQSplineFlow` (default), :class:`RealNVPFlow`
            or :class:`GaussianTarget`.
        temperature: Variance scale ``T`` of the base distribution, in ``(0, 1)``; chosen
            automatically when ``None``.
        temperatures: Candidates for the automatic choice, each in ``(0, 1)``.
        training_fraction: Fraction of chains used to fit the target, in ``(0, 1)``.
        max_training_samples: Training draws are thinned to at most this many.
        bounds: ``{name: (lo, hi)}`` hard prior edges of the draws (``None`` for an open
            side), as :func:`astrobayes.io.read_chains` returns them in ``bounds``: the
            estimate is then made on coordinates without edges
            (:meth:`~astrobayes.chains.Chains.unbounded`, the same evidence), so that the
            target puts no mass beyond an edge the posterior presses against; the
            parameters mapped are in ``result.unbounded``.
        throw: Raise :class:`EvidenceUnreliableError` (carrying the result) on a
            failure status instead of returning it.
        progress_fn: Called as ``progress_fn("training", epoch, max_epochs)`` during
            flow training (the CLI draws a progress bar with it).

    Returns:
        :class:`EvidenceResult` with ``log_evidence``, ``log_evidence_std``, per-chain
        estimates, diagnostics and ``status``.

    Raises:
        TypeError: If ``key`` is not a PRNG key or ``chains`` not :class:`Chains`.
        ValueError: On a single chain, fewer training draws than ``dim + 2``, a
            temperature outside ``(0, 1)``, or draws with no density to integrate: a
            parameter constant in every draw, parameters that are functions of the
            others (a derived column), a nested sampler's draws in likelihood order.
        EvidenceUnreliableError: With ``throw=True`` and a failure status.

    References:
        McEwen et al. (2021), arXiv:2111.12720; Polanska et al. (2024), arXiv:2405.05969.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes import Chains
        >>> from astrobayes.evidence import estimate, GaussianTarget
        >>> x = np.random.default_rng(1).normal(size=(8, 2000, 2))
        >>> # unnormalised log posterior of N(0, I) whose evidence is z = 2 pi
        >>> chains = Chains(x, -0.5 * (x**2).sum(-1))
        >>> result = estimate(jax.random.key(0), chains, target=GaussianTarget())
        >>> bool(abs(result.log_evidence - np.log(2 * np.pi)) < 5 * result.log_evidence_std)
        True

    """
    target, candidates, training_fraction = _check_inputs(
        key, chains, target, temperature, temperatures, training_fraction
    )
    mapped: tuple[str, ...] = ()
    if bounds:
        chains, mapped = chains.unbounded(bounds)
    chains = without_negligible_weights(chains)
    support_key = jax.random.split(key, 3)[2]
    split = fit_target_on_chains(
        key, chains, target, training_fraction, max_training_samples, progress_fn
    )
    fitted, infer, losses, dim = split.fitted, split.infer, split.losses, chains.dim
    context = _Context(
        fitted=fitted,
        infer=infer,
        messages=(EvidenceStatus.NON_FINITE,)
        if losses.size and not np.all(np.isfinite(losses))
        else (),
        scores={},
        losses=losses,
        num_train=split.num_train,
        # The flow is evaluated once per draw; every temperature reuses the base terms.
        infer_terms=[
            target_terms(fitted, infer.samples[c][infer.weights[c] > 0])
            for c in range(infer.num_chains)
        ],
    )
    if len(candidates) == 1:
        chosen = candidates[0]
    else:
        valid_terms = target_terms(fitted, split.theta_valid)
        chosen, scores = _choose_temperature(
            valid_terms, split.lp_valid, split.w_valid, candidates, dim
        )
        context = context._replace(scores=scores)
    result = _evaluate_or_retreat(context, chosen, candidates)
    result = check_support(support_key, fitted, chains, result)
    if split.num_training_draws < 20 * dim:
        result = result.with_messages([EvidenceStatus.FEW_TRAINING_SAMPLES])
    result = result._replace(unbounded=mapped)
    return check(with_stationarity(result, chains), throw, error=EvidenceUnreliableError)


def with_stationarity(
    result: EvidenceResult, chains: Chains, pieces_per_chain: int = 2, *, stuck: bool = True
) -> EvidenceResult:
    """``result`` with the chains' stationarity and stuck chains, and warnings for them.

    Every estimator from chains assumes draws from the posterior: a burn-in left in, a
    trend or a change of mode biases it by an amount its error bar does not hold.
    Shared by :func:`estimate` and :func:`~astrobayes.evidence.bridge_estimate`; the CLI
    calls it again on a chain it cut into sub-chains (``pieces_per_chain`` twice the
    cuts), so that the burn-in it suggests is a fraction of the chain in the file, with
    ``stuck=False`` (the stuck chains found among the sub-chains are kept). The warning
    comes first among the warnings: it is often their cause.
    """
    test = diagnostics.stationarity(
        chains.samples,
        chains.log_posterior,
        chains.weights,
        names=chains.names,
        pieces_per_chain=pieces_per_chain,
    )
    stuck_chains = (
        tuple(
            int(c)
            for c in np.flatnonzero(
                diagnostics.move_fractions(chains.samples, chains.weights) < 0.01
            )
        )
        if stuck
        else result.stuck_chains
    )
    ours = (EvidenceStatus.NOT_STATIONARY, EvidenceStatus.CHAINS_STUCK)
    messages = [m for m in result.messages if m not in ours]
    if stuck_chains:
        messages.insert(0, EvidenceStatus.CHAINS_STUCK)
    if not test.stationary:
        messages.insert(0, EvidenceStatus.NOT_STATIONARY)
    ordered = order_messages(messages)
    return result._replace(
        stationarity=test, stuck_chains=stuck_chains, messages=ordered, status=status_of(ordered)
    )


class TargetFit(NamedTuple):
    """A target fitted on some chains, and the chains left to evaluate an estimator on.

    Attributes:
        fitted: The fitted target (whitening and bijection).
        infer: The chains not used for training.
        losses: Validation loss per training epoch (empty for closed-form targets).
        num_train: Number of training chains.
        num_training_draws: Training draws after thinning (fit and validation together).
        theta_valid: Held-out draws of the training chains (never fitted on).
        lp_valid: Their log posterior.
        w_valid: Their weights.
    """

    fitted: FittedTarget
    infer: Chains
    losses: np.ndarray
    num_train: int
    num_training_draws: int
    theta_valid: np.ndarray
    lp_valid: np.ndarray
    w_valid: np.ndarray


def fit_target_on_chains(
    key: PRNGKeyArray,
    chains: Chains,
    target: TargetFamily,
    training_fraction: float,
    max_training_samples: int,
    progress_fn: ProgressFn | None = None,
) -> TargetFit:
    """Fit ``target`` on the first chains; the rest are returned for the estimator.

    The first ``round(training_fraction * num_chains)`` chains (at least one, at most all
    but one) are thinned to ``max_training_samples`` draws; 20% of those are held out to
    stop training (and to choose a temperature), the others fit the whitening and the
    target. Shared by :func:`estimate` and :func:`~astrobayes.evidence.bridge_estimate`.

    Raises:
        ValueError: On fewer training draws than ``dim + 2`` or a bad
            ``max_training_samples``.
    """
    max_training_samples = check_positive_int(
        max_training_samples, "max_training_samples", minimum=10
    )
    num_train = int(
        min(max(round(training_fraction * chains.num_chains), 1), chains.num_chains - 1)
    )
    train = chains.select(range(num_train))
    infer = chains.select(range(num_train, chains.num_chains))
    theta_train, lp_train, w_train = _thin(train, max_training_samples)
    dim = chains.dim
    if theta_train.shape[0] < dim + 2:
        raise ValueError(
            f"the training chains hold {theta_train.shape[0]} draws for dim = {dim}; need at "
            "least dim + 2 (fewer samples than dimensions cannot define a target)"
        )
    # The third key is left to the caller (estimate's support check).
    fit_key, split_key, _ = jax.random.split(key, 3)
    order = np.asarray(jax.random.permutation(split_key, theta_train.shape[0]))
    num_valid = max(int(0.2 * theta_train.shape[0]), 1)
    valid_idx, fit_idx = order[:num_valid], order[num_valid:]
    whitening = target.make_whitening(theta_train[fit_idx], w_train[fit_idx])
    z_all = np.asarray(_whiten(whitening, jnp.asarray(theta_train)))
    bijection, losses = target.fit(
        fit_key, z_all[fit_idx], w_train[fit_idx], z_all[valid_idx], w_train[valid_idx], progress_fn
    )
    return TargetFit(
        fitted=FittedTarget(whitening, bijection, target.name),
        infer=infer,
        losses=np.asarray(losses),
        num_train=num_train,
        num_training_draws=int(theta_train.shape[0]),
        theta_valid=theta_train[valid_idx],
        lp_valid=lp_train[valid_idx],
        w_valid=w_train[valid_idx],
    )


#: Importance weights below this fraction of the largest are set to zero (see
#: :func:`without_negligible_weights`).
NEGLIGIBLE_WEIGHT = 1e-12


def without_negligible_weights(chains: Chains) -> Chains:
    """``chains`` with importance weights below ``NEGLIGIBLE_WEIGHT`` of the largest zeroed.

    A nested sampler's output (fractional weights) keeps its first dead points, with
    weights down to ~1e-300 of the largest. Together they hold less than ``n * 1e-12``
    of the weight, below the rounding of any sum over the draws, but their ratios
    ``phi / p`` are astronomically large (their ``p`` is): they dominated the tail
    diagnostics and the float range of the sums (UltraNest on the Pantheon likelihood:
    ln z 74.1747 +/- 0.0184 and a failure with them, 74.1970 +/- 0.0081 and ok without
    them; quadrature 74.204). MCMC multiplicities (integer weights) are left as they
    are. Shared by :func:`estimate` and :func:`~astrobayes.evidence.bridge_estimate`.
    """
    weights = chains.weights
    if diagnostics.are_multiplicities(weights):
        return chains
    kept = np.where(weights >= NEGLIGIBLE_WEIGHT * weights.max(), weights, 0.0)
    if np.array_equal(kept, weights) or np.any(kept.sum(axis=1) <= 0):
        return chains
    return Chains(chains.samples, chains.log_posterior, kept, chains.names)


def _functions_of_the_others(theta: np.ndarray, names: tuple[str, ...]) -> list[str]:
    """Columns that a regression on the other columns reproduces to 1e-6 of their variance.

    Linear in the others, and quadratic too up to 12 dimensions (derived parameters such
    as ``1 - omega_m`` or ``S_8 = sigma_8 sqrt(omega_m / 0.3)`` over a posterior's range:
    the quadratic leaves 7e-8 of S_8's variance for omega_m = 0.30 +/- 0.01, sigma_8 =
    0.80 +/- 0.02). On at most 5000 draws. A real parameter is not that predictable: a
    correlation of 0.9999 with another leaves 2e-4 of its variance.
    """
    dim = theta.shape[1]
    if dim < 2:
        return []
    draws = theta[:: max(1, theta.shape[0] // 5000)]
    z = (draws - draws.mean(axis=0)) / draws.std(axis=0)
    found = []
    for j in range(dim):
        others = np.delete(z, j, axis=1)
        features = [np.ones((len(z), 1)), others]
        if dim <= 12:
            rows, cols = np.triu_indices(dim - 1)
            features.append(others[:, rows] * others[:, cols])
        design = np.concatenate(features, axis=1)
        if design.shape[1] >= len(z):
            continue
        fit = np.linalg.lstsq(design, z[:, j], rcond=None)[0]
        if np.mean((z[:, j] - design @ fit) ** 2) < 1e-6:
            found.append(names[j])
    return found


def check_chains_and_target(key, chains, target, training_fraction):
    """Validate what every estimator fitting a target takes; return target and fraction.

    Shared by :func:`estimate` and :func:`~astrobayes.evidence.bridge_estimate`.
    """
    check_key(key)
    if not isinstance(chains, Chains):
        raise TypeError(f"chains must be astrobayes.Chains; got {type(chains).__name__}")
    if chains.num_chains < 2:
        raise ValueError(
            "chains must hold at least 2 chains (some fit the target, the others evaluate "
            f"it); got {chains.num_chains}. Cut a long chain with chains.split_chains(4)"
        )
    theta = chains.flat()[0]
    constant = [chains.names[i] for i in np.flatnonzero(np.ptp(theta, axis=0) == 0)]
    if constant:
        raise ValueError(
            f"parameter(s) {constant} take one value in every draw: a fixed or derived "
            "parameter has no posterior density to integrate. Leave them out "
            "(read_chains(parameters=[...]), --parameters)"
        )
    derived = _functions_of_the_others(theta, chains.names)
    if derived:
        raise ValueError(
            f"parameter(s) {derived} are, to 1e-6 of their variance, functions of the other "
            "parameters in every draw: the draws lie on a surface, which has no density to "
            "integrate. A derived parameter among them? Leave it out "
            "(read_chains(parameters=[...]), --parameters)"
        )
    for c in range(chains.num_chains):
        used = chains.weights[c] > 0
        if is_nested_sampling_order(chains.log_posterior[c][used], chains.weights[c][used]):
            raise ValueError(
                f"chain {c} is a nested sampler's weighted draws in likelihood order (its "
                "log posterior never decreases; its weights are fractional): they are "
                "independent draws, and chains cut from them in this order are different "
                "likelihood shells. Shuffle the rows first (rows = np.random.default_rng(0)"
                ".permutation(n)); read_chains does it for files"
            )
    training_fraction = check_fraction(training_fraction, "training_fraction")
    target = RQSplineFlow() if target is None else target
    if not isinstance(target, TargetFamily):
        raise TypeError(
            "target must be a TargetFamily (RQSplineFlow(), RealNVPFlow() or GaussianTarget()); "
            f"got {type(target).__name__}"
        )
    return target, training_fraction


def _check_inputs(key, chains, target, temperature, temperatures, training_fraction):
    """Validate :func:`estimate`'s arguments; return target, temperatures, fraction."""
    target, training_fraction = check_chains_and_target(key, chains, target, training_fraction)
    if temperature is not None:
        return target, (check_fraction(temperature, "temperature"),), training_fraction
    candidates = tuple(check_fraction(t, "temperatures[]") for t in temperatures)
    if not candidates:
        raise ValueError("temperatures must hold at least one value in (0, 1); got none")
    return target, candidates, training_fraction


class _Context(NamedTuple):
    """What every evaluation at one temperature shares."""

    fitted: FittedTarget
    infer: Chains
    infer_terms: list
    messages: tuple
    scores: dict
    losses: np.ndarray
    num_train: int


def _evaluate_or_retreat(context: _Context, chosen: float, candidates) -> EvidenceResult:
    """Evaluate at ``chosen``; on infinite-variance ratios, retreat to lower temperatures.

    The held-out draws may miss a heavy tail that the inference draws show: lower
    temperatures (more concentrated targets) are tried before declaring a failure.
    """
    result = _evaluate(context, chosen)
    if len(candidates) > 1 and EvidenceStatus.TARGET_TOO_WIDE in result.messages:
        for lower in sorted((t for t in candidates if t < chosen), reverse=True):
            retry = _evaluate(context, lower)
            if EvidenceStatus.TARGET_TOO_WIDE not in retry.messages:
                return retry
    return result


def _thin(chains: Chains, max_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta, lp, w = chains.flat()
    step = int(np.ceil(theta.shape[0] / max_samples))
    return theta[::step], lp[::step], w[::step]


def _log_phi(terms: tuple[np.ndarray, np.ndarray], temperature: float, dim: int) -> np.ndarray:
    return log_density_from_terms(terms[0], terms[1], temperature, dim)


def _tail_terms(log_r: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What the Pareto tail index is fitted to: the log of each draw's term in the sum.

    MCMC multiplicities (integer weights) repeat a draw; its ratio is the term. Importance
    weights (fractional: a nested sampler's draws) scale it, and a draw with a negligible
    weight contributes a negligible term whatever its ratio: the tail that decides the
    variance is that of ``w r`` (UltraNest's weighted draws on the Pantheon likelihood
    failed the tail check on the ratios alone, through draws whose weights were below
    1e-12 of the largest).
    """
    if diagnostics.are_multiplicities(weights):
        return log_r
    return log_r + np.log(weights)


def _choose_temperature(terms, log_posterior, weights, candidates, dim):
    """Pick the temperature with the smallest relative variance of the ratios."""
    scores: dict[float, float] = {}
    best, best_score = None, np.inf
    for t in candidates:
        log_r = _log_phi(terms, t, dim) - log_posterior
        if not np.all(np.isfinite(log_r)):
            scores[t] = float("inf")
            continue
        scaled = np.exp(log_r - log_r.max())
        w = weights / weights.sum()
        mean = np.sum(w * scaled)
        relative_variance = np.sum(w * (scaled - mean) ** 2) / mean**2
        k = diagnostics.pareto_tail_index(_tail_terms(log_r, weights))
        scores[t] = float(relative_variance)
        if (np.isnan(k) or k <= 0.5) and relative_variance < best_score:
            best, best_score = t, relative_variance
    if best is None:
        best = min(candidates)
    return float(best), scores


def _evaluate(context: _Context, temperature: float) -> EvidenceResult:
    """The estimate, its error and its diagnostics at one temperature."""
    infer = context.infer
    log_r_chains, w_chains = [], []
    for c in range(infer.num_chains):
        used = infer.weights[c] > 0
        log_r = (
            _log_phi(context.infer_terms[c], temperature, infer.dim) - infer.log_posterior[c][used]
        )
        log_r_chains.append(log_r)
        w_chains.append(infer.weights[c][used])
    all_log_r = np.concatenate(log_r_chains)
    all_w = np.concatenate(w_chains)
    if not np.all(np.isfinite(all_log_r)):
        return _result(
            context,
            temperature,
            [EvidenceStatus.NON_FINITE, *context.messages],
            per_chain_log_evidence=np.full(infer.num_chains, np.nan),
            num_inference_samples=all_log_r.size,
            effective_sample_size=0.0,
        )
    shift = float(all_log_r.max())
    scaled = [np.exp(lr - shift) for lr in log_r_chains]
    batch_lengths, taus = batch_lengths_of(scaled)
    batches = diagnostics.weighted_batch_means(scaled, w_chains, batch_lengths)
    rho, rho_std = batches.mean, batches.std
    per_chain = np.array([np.sum(w * s) / np.sum(w) for s, w in zip(scaled, w_chains, strict=True)])
    messages = list(context.messages)
    between_std, disagree = _between_chains(scaled, w_chains, batch_lengths, per_chain, rho)
    if disagree:
        messages.append(EvidenceStatus.CHAINS_DISAGREE)
        rho_std = max(rho_std, between_std * rho)
    log_evidence_std = rho_std / rho
    ess = diagnostics.kish_effective_sample_size(all_w * np.concatenate(scaled))
    k = diagnostics.pareto_tail_index(_tail_terms(all_log_r, all_w))
    all_scaled = np.concatenate(scaled)
    if diagnostics.are_multiplicities(all_w):  # each draw counted w times
        kurt = diagnostics.standardised_kurtosis(all_scaled, all_w)
    else:  # importance weights: the estimate's influence terms w (r - rho)
        kurt = diagnostics.standardised_kurtosis(all_w * (all_scaled - rho), np.ones_like(all_w))
    num_batches = batches.batch_means.size
    var_of_var = (
        float(np.sqrt(max(kurt - 1.0 + 2.0 / max(num_batches - 1, 1), 0.0) / all_log_r.size))
        if np.isfinite(kurt)
        else np.nan
    )
    messages += _ratio_messages(k, num_batches, log_evidence_std, ess, all_log_r.size, var_of_var)
    return _result(
        context,
        temperature,
        messages,
        log_evidence=-(np.log(rho) + shift),
        log_evidence_std=log_evidence_std,
        per_chain_log_evidence=-(np.log(per_chain) + shift),
        num_inference_samples=all_log_r.size,
        effective_sample_size=ess,
        autocorrelation_time=max(taus),
        pareto_k=k,
        kurtosis=kurt,
        variance_of_variance=var_of_var,
        log_evidence_std_between_chains=between_std,
    )


def _between_chains(scaled, w_chains, batch_lengths, per_chain, rho) -> tuple[float, bool]:
    """Error of ``ln z`` implied by the per-chain spread, and whether the chains disagree.

    The larger of the relative spread of the per-chain ``rho`` (the delta method) and the
    spread of their logarithms: where one chain dominates the first is exactly 1 whatever
    the others say (chains at ln z -70.0 and -57.9 gave -69.3 +- 1.000 until 2026-12-06;
    their log spread about the estimate says +- 8.1). Per-chain means are compared with
    their batch-means errors by a chi-square test (``p < 1e-3`` means disagreement);
    ``nan`` and ``False`` with one inference chain.
    """
    if len(per_chain) < 2:
        return float("nan"), False
    chain_w = np.array([w.sum() for w in w_chains])
    frac = chain_w / chain_w.sum()
    n_over = len(per_chain) / (len(per_chain) - 1)
    between_var = np.sum(frac**2 * (per_chain - rho) ** 2) * n_over
    with np.errstate(divide="ignore"):  # a chain whose rho underflowed: an infinite spread
        log_spread = np.sqrt(np.sum(frac**2 * (np.log(per_chain) - np.log(rho)) ** 2) * n_over)
    between_std = max(float(np.sqrt(between_var)) / rho, float(log_spread))
    chain_stds = np.asarray(
        [
            diagnostics.weighted_batch_means([s], [w], [b]).std
            for s, w, b in zip(scaled, w_chains, batch_lengths, strict=True)
        ]
    )
    if not (np.all(np.isfinite(chain_stds)) and np.all(chain_stds > 0)):
        return between_std, False
    chi2 = np.sum(((per_chain - rho) / chain_stds) ** 2)
    return between_std, bool(stats.chi2.sf(chi2, len(per_chain) - 1) < 1e-3)


def batch_lengths_of(series: list[np.ndarray]) -> tuple[list[int], list[float]]:
    """Per chain: batch length for batch means (``>= sqrt(n)`` and ``>= 10 tau``), and ``tau``.

    ``tau`` is the integrated autocorrelation time of the chain's terms; shared by the
    harmonic mean and the bridge.
    """
    taus = [diagnostics.integrated_autocorrelation_time(s) for s in series]
    lengths = [
        int(max(np.ceil(np.sqrt(s.size)), np.ceil(10.0 * tau)))
        for s, tau in zip(series, taus, strict=True)
    ]
    return lengths, taus


def batch_count_messages(num_batches: int, log_evidence_std: float) -> list[EvidenceStatus]:
    """No error bar below 2 batches (or a non-finite one), an unstable one below 10."""
    if num_batches < 2 or not np.isfinite(log_evidence_std):
        return [EvidenceStatus.ERROR_UNDEFINED]
    if num_batches < 10:
        return [EvidenceStatus.UNSTABLE_ERROR]
    return []


def _ratio_messages(k, num_batches, log_evidence_std, ess, num_samples, var_of_var):
    """Statuses from the tail, batch count, effective sample size and variance of variance."""
    messages = []
    if np.isfinite(k) and k > 0.7:
        messages.append(EvidenceStatus.TARGET_TOO_WIDE)
    elif np.isfinite(k) and k > 0.5:
        messages.append(EvidenceStatus.HEAVY_TAILED_RATIOS)
    messages += batch_count_messages(num_batches, log_evidence_std)
    if ess < 0.01 * num_samples:
        messages.append(EvidenceStatus.LOW_EFFECTIVE_SAMPLE_SIZE)
    if np.isfinite(var_of_var) and var_of_var > 0.5:
        messages.append(EvidenceStatus.UNSTABLE_ERROR)
    return messages


def _result(
    context: _Context,
    temperature: float,
    messages,
    *,
    per_chain_log_evidence: np.ndarray,
    num_inference_samples: int,
    effective_sample_size: float,
    log_evidence: float = np.nan,
    log_evidence_std: float = np.nan,
    autocorrelation_time: float = np.nan,
    pareto_k: float = np.nan,
    kurtosis: float = np.nan,
    variance_of_variance: float = np.nan,
    log_evidence_std_between_chains: float = np.nan,
    **method_fields,
) -> EvidenceResult:
    """The :class:`EvidenceResult` of one evaluation.

    ``method_fields`` are passed on (the bridge's ``method`` and ``num_proposal_samples``).
    """
    ordered = order_messages(messages)
    return EvidenceResult(
        log_evidence=float(log_evidence),
        log_evidence_std=float(log_evidence_std),
        status=status_of(ordered),
        messages=ordered,
        temperature=float(temperature),
        target=context.fitted.kind,
        per_chain_log_evidence=np.asarray(per_chain_log_evidence),
        num_training_chains=int(context.num_train),
        num_inference_chains=int(context.infer.num_chains),
        num_inference_samples=int(num_inference_samples),
        effective_sample_size=float(effective_sample_size),
        autocorrelation_time=float(autocorrelation_time),
        pareto_k=float(pareto_k),
        kurtosis=float(kurtosis),
        variance_of_variance=float(variance_of_variance),
        log_evidence_std_between_chains=float(log_evidence_std_between_chains),
        temperature_scores=dict(context.scores),
        training_losses=np.asarray(context.losses),
        **method_fields,
    )


@eqx.filter_jit
def _whiten(whitening, theta):
    """``whitening(theta)`` as one compiled program per shape (eagerly: four)."""
    return whitening(theta)
