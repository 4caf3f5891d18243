"""Evidence from posterior samples: the learned harmonic mean estimator.

Entry points: :func:`estimate` (from chains alone) and :func:`bridge_estimate` (bridge
sampling with the same learned target, when the log density can be evaluated). Targets: :class:`RQSplineFlow` (default),
:class:`RealNVPFlow`, :class:`GaussianMixtureTarget` (multimodal posteriors),
:class:`GaussianTarget`. Results: :class:`EvidenceResult` with an
:class:`EvidenceStatus`; Bayes factors: :func:`log_bayes_factor`.
"""

from astrobayes.evidence.bayes_factor import BayesFactor, jeffreys_reading, log_bayes_factor
from astrobayes.evidence.bridge import bridge_estimate
from astrobayes.evidence.estimator import DEFAULT_TEMPERATURES, estimate
from astrobayes.evidence.result import EvidenceResult, EvidenceStatus, EvidenceUnreliableError
from astrobayes.evidence.targets import (
    GaussianMixtureTarget,
    GaussianTarget,
    PretrainedFlowTarget,
    RealNVPFlow,
    RQSplineFlow,
    TargetFamily,
)

__all__ = [
    "DEFAULT_TEMPERATURES",
    "BayesFactor",
    "EvidenceResult",
    "EvidenceStatus",
    "EvidenceUnreliableError",
    "GaussianMixtureTarget",
    "GaussianTarget",
    "PretrainedFlowTarget",
    "RQSplineFlow",
    "RealNVPFlow",
    "TargetFamily",
    "bridge_estimate",
    "estimate",
    "jeffreys_reading",
    "log_bayes_factor",
]
