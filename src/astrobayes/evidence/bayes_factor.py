"""Bayes factors from two evidence estimates, with their error and Jeffreys reading."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "BayesFactor",
    "jeffreys_reading",
    "log_bayes_factor",
]


class BayesFactor(NamedTuple):
    """``ln B = ln z_a - ln z_b`` with its standard error and a reading on Jeffreys' scale.

    Attributes:
        log_bayes_factor: ``ln z_a - ln z_b``.
        log_bayes_factor_std: ``sqrt(sigma_a^2 + sigma_b^2)`` (independent estimates).
        reading: Strength of evidence (see :func:`jeffreys_reading`), or, where either
            estimate's status is a failure, ``"not read: ..."`` naming the model (its
            number is kept, but a reading would claim what was not checked).

    """

    log_bayes_factor: float
    log_bayes_factor_std: float
    reading: str


def jeffreys_reading(log_bayes_factor: float, name_a: str = "A", name_b: str = "B") -> str:
    """Describe ``ln B`` on the Jeffreys scale as revised by Trotta (2008).

    ``|ln B| < 1``: inconclusive; ``< 2.5``: weak; ``< 5``: moderate; else strong.

    References:
        Jeffreys (1961); Trotta (2008), arXiv:0803.4089, Table 1.

    """
    value = float(log_bayes_factor)
    if not np.isfinite(value):
        return "undefined"
    size = abs(value)
    favoured = name_a if value > 0 else name_b
    if size < 1.0:
        return "inconclusive"
    if size < 2.5:
        return f"weak evidence for {favoured}"
    if size < 5.0:
        return f"moderate evidence for {favoured}"
    return f"strong evidence for {favoured}"


def log_bayes_factor(result_a, result_b, name_a: str = "A", name_b: str = "B") -> BayesFactor:
    """Bayes factor of model A over model B from two evidence results.

    Args:
        result_a: Anything with ``log_evidence`` and ``log_evidence_std`` (model A).
        result_b: The same for model B.
        name_a: Name of A in the reading.
        name_b: Name of B in the reading.

    Returns:
        :class:`BayesFactor`. Where a result has a ``status`` that is a failure (an
        evidence from chains that did not converge, say), ``reading`` says so instead of
        reading the number on Jeffreys' scale.

    Example:
        >>> from types import SimpleNamespace as R
        >>> log_bayes_factor(R(log_evidence=-10.0, log_evidence_std=0.1),
        ...                  R(log_evidence=-13.0, log_evidence_std=0.2)).reading
        'moderate evidence for A'
        >>> from astrobayes.evidence import EvidenceStatus
        >>> log_bayes_factor(R(log_evidence=-10.0, log_evidence_std=1.0,
        ...                    status=EvidenceStatus.NON_FINITE),
        ...                  R(log_evidence=-13.0, log_evidence_std=0.2), "planet", "flat").reading
        'not read: the evidence of planet failed (non_finite)'

    """
    value = float(result_a.log_evidence) - float(result_b.log_evidence)
    if result_a is result_b:  # a model against itself: exactly 0, no error
        return BayesFactor(
            log_bayes_factor=0.0,
            log_bayes_factor_std=0.0,
            reading=jeffreys_reading(0.0, name_a, name_b),
        )
    std = float(np.hypot(result_a.log_evidence_std, result_b.log_evidence_std))
    failed = [
        f"{name} failed ({result.status.name.lower()})"
        for result, name in ((result_a, name_a), (result_b, name_b))
        if getattr(getattr(result, "status", None), "is_failure", False)
    ]
    # until 2026-12-06 a ln B of 6.2 +- 1.0 from chains with split R-hat 1.79 was read
    # "strong evidence for planet", in the table and in results.json
    reading = (
        "not read: the evidence of " + " and ".join(failed)
        if failed
        else jeffreys_reading(value, name_a, name_b)
    )
    return BayesFactor(log_bayes_factor=value, log_bayes_factor_std=std, reading=reading)
