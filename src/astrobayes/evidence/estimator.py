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

import enum
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from astrobayes._checks import check_fraction, check_key, check_positive_int
from astrobayes.chains import Chains
from astrobayes import diagnostics
from astrobayes.evidence.targets import (
    FittedTarget,
    ProgressFn,
    RQSplineFlow,
    TargetFamily,
    fit_whitening,
    log_density_from_terms,
)

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


class EvidenceStatus(enum.Enum):
    """Outcome of an evidence estimate; each value is the message shown to the user."""

    OK = "ok"
    HEAVY_TAILED_RATIOS = (
        "warning: importance ratios are heavy-tailed (Pareto k in (0.5, 0.7]); the target "
        "may have fatter tails than the posterior and the error bar may be too small: "
        "lower the temperature or use more samples"
    )
    LOW_EFFECTIVE_SAMPLE_SIZE = (
        "warning: fewer than 1% of the draws carry the estimate (low effective sample "
        "size); the target is a poor match to the posterior"
    )
    UNSTABLE_ERROR = (
        "warning: the variance estimate is itself unstable (large variance of the "
        "variance); treat the error bar as approximate"
    )
    CHAINS_DISAGREE = (
        "warning: per-chain estimates disagree more than their within-chain errors allow "
        "(chains not mixed?); the error was inflated to the between-chain spread"
    )
    FEW_TRAINING_SAMPLES = (
        "warning: fewer than 20 * dim training draws; the learned target may be poor"
    )
    TARGET_TOO_WIDE = (
        "failure: importance ratios have infinite variance (Pareto k > 0.7): the target "
        "has fatter tails than the posterior, so the estimate cannot be trusted"
    )
    NON_FINITE = "failure: the target returned non-finite densities or training diverged"
    ERROR_UNDEFINED = (
        "failure: the inference chains are too short for their autocorrelation time (fewer "
        "than 2 independent batches), so no error bar can be computed: run longer chains"
    )
    TARGET_OUTSIDE_SUPPORT = (
        "failure: the target puts more of its mass outside the range of the posterior draws "
        "than the error bar allows; if the posterior has a bounded support (hard prior "
        "edges), the estimate is biased high: sample on an unconstrained space"
    )
    TARGET_MASS_OUTSIDE = (
        "warning: the target puts some mass outside the range of the posterior draws; if the "
        "posterior has a bounded support, ln z may be biased high by up to target_mass_outside"
    )

    @property
    def is_failure(self) -> bool:
        """Whether the estimate must not be used."""
        return self.value.startswith("failure")

    @property
    def is_warning(self) -> bool:
        """Whether the estimate is usable with care."""
        return self.value.startswith("warning")


class EvidenceResult(NamedTuple):
    """Result of :func:`estimate`.

    Attributes:
        log_evidence: Estimate of ``ln z`` (natural log).
        log_evidence_std: Its standard error.
        status: The most severe :class:`EvidenceStatus`.
        messages: Every status raised (most severe first).
        temperature: Temperature used (variance scale of the target's base).
        target: Name of the target family.
        per_chain_log_evidence: ``ln z`` from each inference chain alone.
        num_training_chains: Chains used to fit the target.
        num_inference_chains: Chains used to evaluate the estimator.
        num_inference_samples: Draws (with positive weight) in the estimator.
        effective_sample_size: Kish effective sample size of the importance terms.
        autocorrelation_time: Largest integrated autocorrelation time of the ratios.
        pareto_k: Generalised-Pareto tail shape of the ratios (> 0.5: infinite variance).
        kurtosis: Kurtosis of the ratios (3 for Gaussian terms).
        variance_of_variance: Relative standard deviation of the variance estimate,
            ``std(var) / var`` (harmonic's "error on the error").
        log_evidence_std_between_chains: Error implied by the spread of per-chain
            estimates (``nan`` with fewer than two inference chains).
        temperature_scores: ``{T: relative variance on validation draws}`` when the
            temperature was chosen automatically.
        training_losses: Validation loss per epoch of the flow (empty for Gaussian).

    """

    log_evidence: float
    log_evidence_std: float
    status: EvidenceStatus
    messages: tuple[EvidenceStatus, ...]
    temperature: float
    target: str
    per_chain_log_evidence: np.ndarray
    num_training_chains: int
    num_inference_chains: int
    num_inference_samples: int
    effective_sample_size: float
    autocorrelation_time: float
    pareto_k: float
    kurtosis: float
    variance_of_variance: float
    log_evidence_std_between_chains: float
    temperature_scores: dict
    training_losses: np.ndarray
    target_mass_outside: float = float("nan")

    @property
    def evidence_summary(self) -> str:
        """``ln z = a +/- b`` as text."""
        return f"ln z = {self.log_evidence:.4f} +/- {self.log_evidence_std:.4f}"

    def to_dict(self) -> dict:
        """JSON-friendly dictionary of the result (non-finite numbers become ``None``)."""
        return _finite_or_none(
            {
                "log_evidence": float(self.log_evidence),
                "log_evidence_std": float(self.log_evidence_std),
                "status": self.status.name.lower(),
                "status_message": self.status.value,
                "messages": [m.value for m in self.messages],
                "temperature": float(self.temperature),
                "target": self.target,
                "per_chain_log_evidence": [float(v) for v in self.per_chain_log_evidence],
                "num_training_chains": int(self.num_training_chains),
                "num_inference_chains": int(self.num_inference_chains),
                "num_inference_samples": int(self.num_inference_samples),
                "effective_sample_size": float(self.effective_sample_size),
                "autocorrelation_time": float(self.autocorrelation_time),
                "pareto_k": float(self.pareto_k),
                "kurtosis": float(self.kurtosis),
                "variance_of_variance": float(self.variance_of_variance),
                "log_evidence_std_between_chains": float(self.log_evidence_std_between_chains),
                "temperature_scores": {
                    str(k): float(v) for k, v in self.temperature_scores.items()
                },
                "target_mass_outside": float(self.target_mass_outside),
            }
        )


def _finite_or_none(value):
    """Replace NaN and infinities by ``None`` recursively (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class EvidenceUnreliableError(RuntimeError):
    """Raised by :func:`estimate` with ``throw=True`` on a failure status; carries ``result``."""

    def __init__(self, result: EvidenceResult):
        super().__init__(f"{result.evidence_summary}: {result.status.value}")
        self.result = result


def estimate(
    key: jax.Array,
    chains: Chains,
    *,
    target: TargetFamily | None = None,
    temperature: float | None = None,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    training_fraction: float = 0.5,
    max_training_samples: int = 20_000,
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
    is never selected.

    Args:
        key: JAX PRNG key (flow initialisation and training).
        chains: Posterior chains; ``log_posterior`` must include the *normalised* log
            prior. At least two chains.
        target: Target family: :class:`RQSplineFlow` (default), :class:`RealNVPFlow`
            or :class:`GaussianTarget`.
        temperature: Variance scale ``T`` of the base distribution, in ``(0, 1)``; chosen
            automatically when ``None``.
        temperatures: Candidates for the automatic choice, each in ``(0, 1)``.
        training_fraction: Fraction of chains used to fit the target, in ``(0, 1)``.
        max_training_samples: Training draws are thinned to at most this many.
        throw: Raise :class:`EvidenceUnreliableError` (carrying the result) on a
            failure status instead of returning it.
        progress_fn: Called as ``progress_fn(epoch, max_epochs, validation_loss)``
            during flow training (the CLI draws a progress bar with it).

    Returns:
        :class:`EvidenceResult` with ``log_evidence``, ``log_evidence_std``, per-chain
        estimates, diagnostics and ``status``.

    Raises:
        TypeError: If ``key`` is not a PRNG key or ``chains`` not :class:`Chains`.
        ValueError: On a single chain, fewer training draws than ``dim + 2``, or a
            temperature outside ``(0, 1)``.
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
        >>> abs(result.log_evidence - np.log(2 * np.pi)) < 5 * result.log_evidence_std
        True

    """
    check_key(key)
    if not isinstance(chains, Chains):
        raise TypeError(f"chains must be astrobayes.Chains; got {type(chains).__name__}")
    if chains.num_chains < 2:
        raise ValueError(
            "chains must hold at least 2 chains (some fit the target, the others evaluate "
            f"it); got {chains.num_chains}. Cut a long chain with chains.split_chains(4)"
        )
    training_fraction = check_fraction(training_fraction, "training_fraction")
    max_training_samples = check_positive_int(
        max_training_samples, "max_training_samples", minimum=10
    )
    target = RQSplineFlow() if target is None else target
    if not isinstance(target, TargetFamily):
        raise TypeError(
            "target must be a TargetFamily (RQSplineFlow(), RealNVPFlow() or GaussianTarget()); "
            f"got {type(target).__name__}"
        )
    if temperature is not None:
        temperature = check_fraction(temperature, "temperature")
        candidates = (temperature,)
    else:
        candidates = tuple(check_fraction(t, "temperatures[]") for t in temperatures)
        if not candidates:
            raise ValueError("temperatures must hold at least one value in (0, 1); got none")

    num_train = int(
        min(max(round(training_fraction * chains.num_chains), 1), chains.num_chains - 1)
    )
    train, infer = (
        chains.select(range(num_train)),
        chains.select(range(num_train, chains.num_chains)),
    )
    theta_train, lp_train, w_train = _thin(train, max_training_samples)
    dim = chains.dim
    if theta_train.shape[0] < dim + 2:
        raise ValueError(
            f"the training chains hold {theta_train.shape[0]} draws for dim = {dim}; need at "
            "least dim + 2 (fewer samples than dimensions cannot define a target)"
        )

    fit_key, split_key, support_key = jax.random.split(key, 3)
    # Hold out draws of the training chains to choose the temperature and stop training.
    order = np.asarray(jax.random.permutation(split_key, theta_train.shape[0]))
    num_valid = max(int(0.2 * theta_train.shape[0]), 1)
    valid_idx, fit_idx = order[:num_valid], order[num_valid:]
    whitening = fit_whitening(theta_train[fit_idx], w_train[fit_idx])
    z_all = np.asarray(whitening(jnp.asarray(theta_train)))
    bijection, losses = target.fit(
        fit_key, z_all[fit_idx], w_train[fit_idx], z_all[valid_idx], w_train[valid_idx], progress_fn
    )
    fitted = FittedTarget(whitening, bijection, target.name)

    messages: list[EvidenceStatus] = []
    if losses.size and not np.all(np.isfinite(losses)):
        messages.append(EvidenceStatus.NON_FINITE)

    scores: dict[float, float] = {}
    if len(candidates) == 1:
        chosen = candidates[0]
    else:
        valid_lp = lp_train[valid_idx]
        valid_terms = _target_terms(fitted, theta_train[valid_idx])
        chosen, scores = _choose_temperature(
            valid_terms, valid_lp, w_train[valid_idx], candidates, dim
        )

    # The flow is evaluated once per draw; every temperature reuses the base-space terms.
    infer_terms = [
        _target_terms(fitted, infer.samples[c][infer.weights[c] > 0])
        for c in range(infer.num_chains)
    ]
    result = _evaluate(
        fitted, infer, infer_terms, chosen, list(messages), scores, losses, num_train
    )
    if len(candidates) > 1 and EvidenceStatus.TARGET_TOO_WIDE in result.messages:
        # The held-out draws missed a heavy tail that the inference draws show: retreat to
        # lower temperatures (more concentrated targets) before declaring a failure.
        for lower in sorted((t for t in candidates if t < chosen), reverse=True):
            retry = _evaluate(
                fitted, infer, infer_terms, lower, list(messages), scores, losses, num_train
            )
            if EvidenceStatus.TARGET_TOO_WIDE not in retry.messages:
                result = retry
                break
    result = _check_support(support_key, fitted, chains, result)
    if (
        theta_train.shape[0] < 20 * dim
        and EvidenceStatus.FEW_TRAINING_SAMPLES not in result.messages
    ):
        result = _with_message(result, EvidenceStatus.FEW_TRAINING_SAMPLES)
    if throw and result.status.is_failure:
        raise EvidenceUnreliableError(result)
    return result


def _thin(chains: Chains, max_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta, lp, w = chains.flat()
    step = int(np.ceil(theta.shape[0] / max_samples))
    return theta[::step], lp[::step], w[::step]


_CHUNK = 8192


def _target_terms(fitted: FittedTarget, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|u|^2, log det)`` at ``theta`` in float64, in fixed-size chunks (one compilation)."""
    num = theta.shape[0]
    if num == 0:
        return np.zeros(0), np.zeros(0)
    padded = np.concatenate([theta, np.repeat(theta[:1], (-num) % _CHUNK, axis=0)])
    squared, log_det = [], []
    for lo in range(0, padded.shape[0], _CHUNK):
        sq, ld = _jitted_terms(fitted, jnp.asarray(padded[lo : lo + _CHUNK], jnp.float32))
        squared.append(np.asarray(sq, np.float64))
        log_det.append(np.asarray(ld, np.float64))
    return np.concatenate(squared)[:num], np.concatenate(log_det)[:num]


@eqx.filter_jit
def _jitted_terms(fitted, theta):
    return fitted.base_terms(theta)


def _log_phi(terms: tuple[np.ndarray, np.ndarray], temperature: float, dim: int) -> np.ndarray:
    return log_density_from_terms(terms[0], terms[1], temperature, dim)


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
        k = diagnostics.pareto_tail_index(log_r)
        scores[t] = float(relative_variance)
        if (np.isnan(k) or k <= 0.5) and relative_variance < best_score:
            best, best_score = t, relative_variance
    if best is None:
        best = min(candidates)
    return float(best), scores


def _evaluate(fitted, infer: Chains, infer_terms, temperature, messages, scores, losses, num_train):
    log_r_chains, w_chains = [], []
    for c in range(infer.num_chains):
        used = infer.weights[c] > 0
        log_r = _log_phi(infer_terms[c], temperature, infer.dim) - infer.log_posterior[c][used]
        log_r_chains.append(log_r)
        w_chains.append(infer.weights[c][used])
    all_log_r = np.concatenate(log_r_chains)
    all_w = np.concatenate(w_chains)
    nan = float("nan")
    if not np.all(np.isfinite(all_log_r)):
        messages = [EvidenceStatus.NON_FINITE, *messages]
        return _result(
            nan,
            nan,
            messages,
            temperature,
            fitted,
            np.full(infer.num_chains, nan),
            num_train,
            infer.num_chains,
            all_log_r.size,
            0.0,
            nan,
            nan,
            nan,
            nan,
            nan,
            scores,
            losses,
        )
    shift = float(all_log_r.max())
    scaled = [np.exp(lr - shift) for lr in log_r_chains]
    taus = [diagnostics.integrated_autocorrelation_time(s) for s in scaled]
    batch_lengths = [
        int(max(np.ceil(np.sqrt(s.size)), np.ceil(10.0 * tau)))
        for s, tau in zip(scaled, taus, strict=True)
    ]
    batches = diagnostics.weighted_batch_means(scaled, w_chains, batch_lengths)
    rho, rho_std = batches.mean, batches.std
    per_chain = np.array([np.sum(w * s) / np.sum(w) for s, w in zip(scaled, w_chains, strict=True)])
    per_chain_log = -(np.log(per_chain) + shift)

    # Between-chain consistency: per-chain means vs their batch-means errors.
    between_std = nan
    if infer.num_chains >= 2:
        chain_w = np.array([w.sum() for w in w_chains])
        frac = chain_w / chain_w.sum()
        between_var = (
            np.sum(frac**2 * (per_chain - rho) ** 2) * len(per_chain) / (len(per_chain) - 1)
        )
        between_std = float(np.sqrt(between_var)) / rho
        chain_stds = []
        for s, w, b in zip(scaled, w_chains, batch_lengths, strict=True):
            chain_stds.append(diagnostics.weighted_batch_means([s], [w], [b]).std)
        chain_stds = np.asarray(chain_stds)
        if np.all(np.isfinite(chain_stds)) and np.all(chain_stds > 0):
            chi2 = np.sum(((per_chain - rho) / chain_stds) ** 2)
            p_value = stats.chi2.sf(chi2, len(per_chain) - 1)
            if p_value < 1e-3:
                messages.append(EvidenceStatus.CHAINS_DISAGREE)
                rho_std = max(rho_std, between_std * rho)

    log_evidence = -(np.log(rho) + shift)
    log_evidence_std = rho_std / rho
    ess = diagnostics.kish_effective_sample_size(all_w * np.concatenate(scaled))
    k = diagnostics.pareto_tail_index(all_log_r)
    kurt = diagnostics.standardised_kurtosis(np.concatenate(scaled), all_w)
    n_batches = batches.batch_means.size
    var_of_var = (
        float(np.sqrt(max(kurt - 1.0 + 2.0 / max(n_batches - 1, 1), 0.0) / all_log_r.size))
        if np.isfinite(kurt)
        else nan
    )

    if np.isfinite(k) and k > 0.7:
        messages.append(EvidenceStatus.TARGET_TOO_WIDE)
    elif np.isfinite(k) and k > 0.5:
        messages.append(EvidenceStatus.HEAVY_TAILED_RATIOS)
    if n_batches < 2 or not np.isfinite(log_evidence_std):
        messages.append(EvidenceStatus.ERROR_UNDEFINED)
    elif n_batches < 10:
        messages.append(EvidenceStatus.UNSTABLE_ERROR)
    if ess < 0.01 * all_log_r.size:
        messages.append(EvidenceStatus.LOW_EFFECTIVE_SAMPLE_SIZE)
    if np.isfinite(var_of_var) and var_of_var > 0.5:
        messages.append(EvidenceStatus.UNSTABLE_ERROR)
    return _result(
        log_evidence,
        log_evidence_std,
        messages,
        temperature,
        fitted,
        per_chain_log,
        num_train,
        infer.num_chains,
        all_log_r.size,
        ess,
        max(taus),
        k,
        kurt,
        var_of_var,
        between_std,
        scores,
        losses,
    )


_SEVERITY = {"failure": 2, "warning": 1, "ok": 0}


def _ordered(messages) -> tuple[EvidenceStatus, ...]:
    unique = list(dict.fromkeys(messages))
    return tuple(sorted(unique, key=lambda m: -_SEVERITY[m.value.split(":")[0]]))


def _result(
    log_evidence,
    std,
    messages,
    temperature,
    fitted,
    per_chain,
    num_train,
    num_infer,
    num_samples,
    ess,
    tau,
    k,
    kurt,
    var_of_var,
    between_std,
    scores,
    losses,
):
    ordered = _ordered(messages)
    status = ordered[0] if ordered else EvidenceStatus.OK
    return EvidenceResult(
        log_evidence=float(log_evidence),
        log_evidence_std=float(std),
        status=status,
        messages=ordered,
        temperature=float(temperature),
        target=fitted.kind,
        per_chain_log_evidence=np.asarray(per_chain),
        num_training_chains=int(num_train),
        num_inference_chains=int(num_infer),
        num_inference_samples=int(num_samples),
        effective_sample_size=float(ess),
        autocorrelation_time=float(tau),
        pareto_k=float(k),
        kurtosis=float(kurt),
        variance_of_variance=float(var_of_var),
        log_evidence_std_between_chains=float(between_std),
        temperature_scores=dict(scores),
        training_losses=np.asarray(losses),
    )


_NUM_SUPPORT_DRAWS = 4096


def _check_support(
    key, fitted: FittedTarget, chains: Chains, result: EvidenceResult
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
        return _with_message(result, EvidenceStatus.TARGET_OUTSIDE_SUPPORT)
    return _with_message(result, EvidenceStatus.TARGET_MASS_OUTSIDE)


@eqx.filter_jit
def _jitted_sample(fitted, key, temperature, num):
    return fitted.sample(key, temperature, num)


def _with_message(result: EvidenceResult, message: EvidenceStatus) -> EvidenceResult:
    ordered = _ordered([*result.messages, message])
    return result._replace(messages=ordered, status=ordered[0])
