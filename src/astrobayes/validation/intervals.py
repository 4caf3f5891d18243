"""Coverage of prediction and credible intervals, and split-conformal quantiles.

One implementation of "how often does the interval hold the truth", with an honest
error, shared by every component that reports interval coverage (surrogates, PINN
ensembles, Bayesian neural networks, imaging samplers and learned reconstructions):

* :func:`interval_coverage`: the fraction of truths inside ``[lower, upper]`` with its
  standard error. Pixels of one image (or points of one solution) are correlated, so a
  binomial error over all of them is too small; pass ``axis`` (the axis of independent
  replicates, e.g. the truths) and the error comes from the spread of the per-replicate
  fractions instead (a cluster-robust standard error).
* :func:`coverage_verdict`: is a measured coverage consistent with its nominal level?
  The shared :class:`~astrobayes.validation.coverage.CalibrationStatus`.
* :func:`conformal_quantile`: the split-conformal quantile of calibration scores,
  the ``ceil((n + 1) level)``-th smallest (Lei et al. 2018), which gives coverage
  ``>= level`` on exchangeable new scores.

References:
    Lei, G'Sell, Rinaldo, Tibshirani & Wasserman 2018, "Distribution-free predictive
    inference for regression" (arXiv:1604.04173).
    Cameron & Miller 2015, "A practitioner's guide to cluster-robust inference",
    J. Human Resources 50(2) (the per-cluster standard error).

Examples:
    >>> import numpy as np
    >>> from astrobayes.validation.intervals import interval_coverage, conformal_quantile
    >>> truth = np.random.default_rng(0).normal(size=10_000)
    >>> result = interval_coverage(truth, -1.645, 1.645)
    >>> bool(abs(result.fraction - 0.90) < 3 * result.error)
    True
    >>> conformal_quantile(np.arange(1.0, 10.0), 0.5)
    5.0
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike

from astrobayes._checks import check_fraction
from astrobayes.validation.coverage import CalibrationStatus

__all__ = [
    "IntervalCoverage",
    "conformal_quantile",
    "coverage_verdict",
    "interval_coverage",
]


class IntervalCoverage(NamedTuple):
    """Measured coverage of intervals.

    Attributes:
        fraction: Share of the counted truths inside their interval.
        error: Standard error of ``fraction``: binomial over ``count`` points, or, with
            ``axis``, the standard error of the mean of the per-replicate fractions.
        count: Number of (truth, interval) pairs counted.
        groups: Number of independent units behind ``error`` (``count`` for the
            binomial error, the number of replicates with ``axis``).
    """

    fraction: float
    error: float
    count: int
    groups: int


def _as_array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__}") from err
    return array


def interval_coverage(
    truth: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    axis: int | None = None,
    where: ArrayLike | None = None,
) -> IntervalCoverage:
    """Share of ``truth`` inside ``[lower, upper]``, with a standard error.

    Args:
        truth: True values, any shape.
        lower: Lower interval ends, broadcastable to ``truth``.
        upper: Upper interval ends, broadcastable to ``truth``.
        axis: Axis of ``truth`` that indexes independent replicates (e.g. truths drawn
            from the prior). The error is then ``std(f_r) / sqrt(R)`` over the
            per-replicate fractions ``f_r``, which stays honest when the points within
            a replicate (pixels of one image) are correlated. ``None``: binomial error
            ``sqrt(p (1 - p) / n)``, for independent points.
        where: Optional boolean mask (broadcastable to ``truth``) of the points to count.

    Returns:
        :class:`IntervalCoverage`.

    Raises:
        TypeError: If an input is not numeric.
        ValueError: On shapes that do not broadcast, non-finite values, ``lower >
            upper``, an invalid ``axis``, nothing to count, or fewer than 2 replicates.

    Example:
        >>> import numpy as np
        >>> truth = np.random.default_rng(1).normal(size=(200, 16))
        >>> result = interval_coverage(truth, -1.0, 1.0, axis=0)
        >>> result.groups, bool(abs(result.fraction - 0.6827) < 3 * result.error)
        (200, True)
    """
    truth = _as_array(truth, "truth")
    lower = _as_array(lower, "lower")
    upper = _as_array(upper, "upper")
    try:
        truth, lower, upper = np.broadcast_arrays(truth, lower, upper)
    except ValueError as err:
        raise ValueError(
            f"truth, lower and upper must broadcast to one shape; got {truth.shape}, "
            f"{lower.shape}, {upper.shape}"
        ) from err
    mask = np.ones(truth.shape, bool)
    if where is not None:
        try:
            mask = np.broadcast_to(np.asarray(where, dtype=bool), truth.shape)
        except ValueError as err:
            raise ValueError(
                f"where must broadcast to {truth.shape}; got {np.shape(where)}"
            ) from err
    for name, array in (("truth", truth), ("lower", lower), ("upper", upper)):
        if not np.all(np.isfinite(array[mask])):
            raise ValueError(f"{name} must be finite where counted; it has NaN or inf values")
    if np.any(lower[mask] > upper[mask]):
        raise ValueError("every lower end must be <= its upper end; some are not")
    inside = (truth >= lower) & (truth <= upper)
    count = int(mask.sum())
    if count == 0:
        raise ValueError("nothing to count: truth is empty or where masks every point")
    if axis is None:
        p = float(inside[mask].mean())
        return IntervalCoverage(
            fraction=p, error=math.sqrt(p * (1.0 - p) / count), count=count, groups=count
        )
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"axis must be an integer or None; got {type(axis).__name__}")
    if not -truth.ndim <= axis < truth.ndim:
        raise ValueError(f"axis must index one of the {truth.ndim} axes of truth; got {axis}")
    inside = np.moveaxis(inside, axis, 0).reshape(truth.shape[axis], -1)
    mask = np.moveaxis(mask, axis, 0).reshape(truth.shape[axis], -1)
    per_replicate = mask.sum(axis=1)
    used = per_replicate > 0
    if used.sum() < 2:
        raise ValueError(
            f"axis={axis} needs at least 2 replicates with counted points; got {int(used.sum())}"
        )
    fractions = (inside & mask).sum(axis=1)[used] / per_replicate[used]
    weights = per_replicate[used] / per_replicate[used].sum()
    p = float(np.sum(weights * fractions))
    groups = int(used.sum())
    # Ratio-estimator standard error of a weighted mean of cluster fractions.
    spread = np.sum(weights**2 * (fractions - p) ** 2) * groups / (groups - 1)
    return IntervalCoverage(fraction=p, error=float(math.sqrt(spread)), count=count, groups=groups)


def coverage_verdict(
    coverage: IntervalCoverage,
    level: float,
    *,
    sigmas: float = 3.0,
    tolerance: float = 0.0,
) -> CalibrationStatus:
    """Whether a measured coverage is consistent with its nominal ``level``.

    The coverage fails when it is further than ``tolerance + sigmas * error`` from
    ``level``, where ``error`` is the larger of the measured standard error and the
    binomial error at the nominal level over ``coverage.groups`` units (so a run that
    happens to cover everything is not judged with a zero error).

    Args:
        coverage: From :func:`interval_coverage`.
        level: Nominal probability of the intervals, in (0, 1).
        sigmas: How many standard errors count as consistent.
        tolerance: An extra allowed deviation (e.g. the 0.03 of "90% ± 3%").

    Returns:
        ``CalibrationStatus.CALIBRATED``, ``OVERCONFIDENT`` (too low: a failure) or
        ``UNDERCONFIDENT`` (too high: a warning).

    Example:
        >>> verdict = coverage_verdict(IntervalCoverage(0.80, 0.01, 1000, 1000), 0.9)
        >>> verdict.name
        'OVERCONFIDENT'
    """
    if not isinstance(coverage, IntervalCoverage):
        raise TypeError(f"coverage must be an IntervalCoverage; got {type(coverage).__name__}")
    check_fraction(level, "level")
    if not (np.isfinite(sigmas) and sigmas > 0):
        raise ValueError(f"sigmas must be a positive number; got {sigmas!r}")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a non-negative number; got {tolerance!r}")
    nominal_error = math.sqrt(level * (1.0 - level) / coverage.groups)
    allowed = tolerance + sigmas * max(coverage.error, nominal_error)
    if coverage.fraction < level - allowed:
        return CalibrationStatus.OVERCONFIDENT
    if coverage.fraction > level + allowed:
        return CalibrationStatus.UNDERCONFIDENT
    return CalibrationStatus.CALIBRATED


def conformal_quantile(scores: ArrayLike, level: float) -> float:
    """Split-conformal quantile: the ``ceil((n + 1) level)``-th smallest of ``scores``.

    With ``n`` calibration scores exchangeable with a new one, the new score is
    ``<=`` this value with probability at least ``level`` (Lei et al. 2018).

    Args:
        scores: Calibration scores (e.g. ``|truth - estimate| / scale``), any shape;
            flattened.
        level: Target coverage, in (0, 1).

    Returns:
        The quantile.

    Raises:
        ValueError: On non-finite scores, or too few scores for the level
            (``ceil((n + 1) level) > n``).

    Example:
        >>> conformal_quantile([3.0, 1.0, 2.0, 4.0], 0.5)
        3.0
    """
    check_fraction(level, "level")
    values = np.sort(np.ravel(_as_array(scores, "scores")))
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite; they have NaN or inf values")
    # The tiny offset keeps e.g. (74 + 1) * 0.68 = 51.00000000000001 at rank 51.
    rank = math.ceil((values.size + 1) * level - 1e-9)
    if rank > values.size:
        raise ValueError(
            f"need at least {rank} calibration scores for level {level}; got {values.size}"
        )
    return float(values[rank - 1])
