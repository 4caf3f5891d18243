"""What an evidence estimate returns: :class:`EvidenceResult` and its :class:`EvidenceStatus`.

The status follows the package's one protocol (:mod:`astrobayes._status`): each member is
``(Severity, message)``, so the severity is data and ``status.value`` is the message shown
to the user. :class:`EvidenceUnreliableError` is the :class:`UnreliableResultError` that
:func:`astrobayes.evidence.estimate` raises with ``throw=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from astrobayes._status import Severity, Status, UnreliableResultError, by_severity
from astrobayes.diagnostics import Stationarity

__all__ = ["EvidenceResult", "EvidenceStatus", "EvidenceUnreliableError"]


class EvidenceStatus(Status):
    """Outcome of an evidence estimate; each value is the message shown to the user."""

    OK = (Severity.OK, "ok")
    HEAVY_TAILED_RATIOS = (
        Severity.WARNING,
        "warning: importance ratios are heavy-tailed (Pareto k in (0.5, 0.7]); the target "
        "may have fatter tails than the posterior and the error bar may be too small: "
        "lower the temperature or use more samples",
    )
    LOW_EFFECTIVE_SAMPLE_SIZE = (
        Severity.WARNING,
        "warning: fewer than 1% of the draws carry the estimate (low effective sample "
        "size); the target is a poor match to the posterior",
    )
    UNSTABLE_ERROR = (
        Severity.WARNING,
        "warning: the variance estimate is itself unstable (large variance of the "
        "variance); treat the error bar as approximate",
    )
    CHAINS_DISAGREE = (
        Severity.WARNING,
        "warning: per-chain estimates disagree more than their within-chain errors allow "
        "(chains not mixed?); the error was inflated to the between-chain spread",
    )
    FEW_TRAINING_SAMPLES = (
        Severity.WARNING,
        "warning: fewer than 20 * dim training draws; the learned target may be poor",
    )
    TARGET_TOO_WIDE = (
        Severity.FAILURE,
        "failure: importance ratios have infinite variance (Pareto k > 0.7): the target "
        "has fatter tails than the posterior, so the estimate cannot be trusted; where the "
        "log density can be evaluated, bridge sampling (bridge_estimate, or "
        'evidence_method = "bridge_sampling") keeps a finite variance',
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: the target returned non-finite densities or training diverged",
    )
    ERROR_UNDEFINED = (
        Severity.FAILURE,
        "failure: the inference chains are too short for their autocorrelation time (fewer "
        "than 2 independent batches), so no error bar can be computed: run longer chains",
    )
    TARGET_OUTSIDE_SUPPORT = (
        Severity.FAILURE,
        "failure: the target puts more of its mass outside the range of the posterior draws "
        "than the error bar allows; if the posterior has a bounded support (hard prior "
        "edges), the estimate is biased high: sample on an unconstrained space",
    )
    TARGET_NOT_INVERTIBLE = (
        Severity.FAILURE,
        "failure: the fitted flow is not numerically invertible (its inverse misses the "
        "base points of more than 1% of its own draws), so it is not a normalised density "
        "and the estimate is biased by an unknown amount: refit with another seed or a "
        "Gaussian target",
    )
    LOW_OVERLAP = (
        Severity.WARNING,
        "warning: fewer than 1% of the proposal draws carry the importance weight (the "
        "fitted target overlaps the posterior poorly); the bridge's error bar accounts for "
        "it, but a better target or more draws would shrink it",
    )
    BRIDGE_NOT_CONVERGED = (
        Severity.WARNING,
        "warning: the bridge fixed-point iteration reached max_iterations before its "
        "tolerance; ln z is the last iterate",
    )
    NOT_STATIONARY = (
        Severity.WARNING,
        "warning: the chains are not stationary (pieces of one chain disagree: a burn-in "
        "left in, a trend, or a change of mode), and the estimate assumes draws from the "
        "posterior; drop the burn-in that `stationarity.burn_in` names (read_chains("
        "burn_in=...), --burn-in) or run longer chains",
    )
    CHAINS_STUCK = (
        Severity.WARNING,
        "warning: some chains moved in fewer than 1% of their steps (stuck walkers or a "
        "frozen sampler: `stuck_chains` names them); their draws are not posterior draws: "
        "leave them out",
    )
    TARGET_MASS_OUTSIDE = (
        Severity.WARNING,
        "warning: the target puts some mass outside the range of the posterior draws; if the "
        "posterior has a bounded support, ln z may be biased high by up to target_mass_outside",
    )


class EvidenceResult(NamedTuple):
    """Result of :func:`~astrobayes.evidence.estimate`.

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
        target_mass_outside: Share of the target's draws outside the bounding box of
            the posterior draws (``nan`` when not measured).
        method: ``"harmonic"`` (:func:`~astrobayes.evidence.estimate`) or ``"bridge"``
            (:func:`~astrobayes.evidence.bridge_estimate`).
        num_proposal_samples: Draws of the target at which the bridge evaluated the
            density (0 for the harmonic mean).
        stationarity: :func:`~astrobayes.diagnostics.stationarity` of the input chains
            (their contiguous pieces compared; the burn-in that makes them agree), or
            ``None`` where not measured.
        stuck_chains: Input chains that moved in fewer than 1% of their steps
            (:func:`~astrobayes.diagnostics.move_fractions`).
        unbounded: Parameters estimated on coordinates without edges because their
            prior bounds were given (:meth:`~astrobayes.chains.Chains.unbounded`).

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
    method: str = "harmonic"
    num_proposal_samples: int = 0
    stationarity: Stationarity | None = None
    stuck_chains: tuple[int, ...] = ()
    unbounded: tuple[str, ...] = ()

    @property
    def evidence_summary(self) -> str:
        """``ln z = a +/- b`` as text."""
        return f"ln z = {self.log_evidence:.4f} +/- {self.log_evidence_std:.4f}"

    def summary(self) -> str:
        """The result as a few lines of text (what ``astrobayes evidence`` prints).

        ``print(result)`` prints the same.
        """
        lines = [
            f"ln z = {self.log_evidence:.4f} ± {self.log_evidence_std:.4f}",
            f"status: {self.status.value}",
        ]
        lines += [f"  also: {m.value}" for m in self.messages[1:]]
        lines += [
            f"target: {self.target}, temperature T = {self.temperature} (base variance scale)",
            f"chains: {self.num_training_chains} training, {self.num_inference_chains} "
            f"inference ({self.num_inference_samples} draws)",
            f"effective sample size: {self.effective_sample_size:.0f}; autocorrelation time "
            f"{self.autocorrelation_time:.1f}; Pareto k {self.pareto_k:.2f}; kurtosis "
            f"{self.kurtosis:.2f}; variance of variance {self.variance_of_variance:.3g}",
            f"between-chain error: {self.log_evidence_std_between_chains:.4f}",
        ]
        if self.stationarity is not None and not self.stationarity.stationary:
            lines.append(f"stationarity: {self.stationarity.summary()}")
        if self.stuck_chains:
            lines.append(
                f"stuck chains: {list(self.stuck_chains)} (moved in fewer than 1% of their steps)"
            )
        if self.unbounded:
            lines.append(
                f"estimated without edges (logit or log of the prior range): {', '.join(self.unbounded)}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def with_messages(self, messages: Iterable[EvidenceStatus]) -> EvidenceResult:
        """A copy with ``messages`` added (ordered by severity) and the status updated."""
        ordered = order_messages([*self.messages, *messages])
        return self._replace(messages=ordered, status=status_of(ordered))

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
                "method": self.method,
                "num_proposal_samples": int(self.num_proposal_samples),
                "stuck_chains": [int(c) for c in self.stuck_chains],
                "unbounded": list(self.unbounded),
                "stationarity": None
                if self.stationarity is None
                else {**self.stationarity._asdict(), "summary": self.stationarity.summary()},
            }
        )


def order_messages(messages: Iterable[EvidenceStatus]) -> tuple[EvidenceStatus, ...]:
    """Distinct messages, most severe first (see :func:`astrobayes._status.by_severity`)."""
    return by_severity(messages)


def status_of(ordered: tuple[EvidenceStatus, ...]) -> EvidenceStatus:
    """The status of a result whose messages are ``ordered`` (OK when there are none)."""
    return ordered[0] if ordered else EvidenceStatus.OK


def _finite_or_none(value):
    """Replace NaN and infinities by ``None`` recursively (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class EvidenceUnreliableError(UnreliableResultError):
    """Raised by ``estimate(..., throw=True)`` on a failure status; carries ``result``.

    The message reads ``ln z = a +/- b: <status message>``.
    """

    def __init__(self, result: EvidenceResult, message: str | None = None):
        super().__init__(result, result.evidence_summary if message is None else message)
