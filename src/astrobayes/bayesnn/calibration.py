"""The calibration harness: NLL, CRPS, quantile calibration error, coverage, recalibration.

Every metric is computed from a :class:`~astrobayes.bayesnn.PredictiveMixture` and the
true targets, so every BNN method is scored the same way:

* ``nll``: mean negative log predictive density;
* ``crps``: mean continuous ranked probability score, in closed form for a Gaussian
  mixture (Grimit et al. 2006, QJRMS 132, 2925; Gneiting & Raftery 2007):
  ``CRPS = mean_i A(y - mu_i, s_i) - 1/2 mean_ij A(mu_i - mu_j, sqrt(s_i^2 + s_j^2))``
  with ``A(m, s) = m (2 Phi(m/s) - 1) + 2 s phi(m/s)``;
* ``ece``: the expected quantile-calibration error of a regression (Kuleshov, Fenner &
  Ermon 2018, arXiv:1807.00263): with PIT values ``p_t = F_t(y_t)``, the mean over the
  levels ``q = 0.01, ..., 0.99`` of ``|#{p_t <= q} / T - q|`` (0 when calibrated, up
  to the binomial noise ``~ sqrt(q (1 - q) / T)``);
* ``coverage_68``, ``coverage_90``: share of targets inside the central 68% / 90%
  predictive intervals (PIT within ``[(1-c)/2, (1+c)/2]``).

Post-hoc recalibration (Kuleshov et al. 2018): a monotone map ``R`` of the PIT fitted on
a calibration split so that ``R(F(y))`` is uniform; the recalibrated CDF is ``R o F``.
Kuleshov's isotonic regression targets ``P(p) = #{p_t <= p} / T`` are already monotone
in ``p``, so their isotonic fit is the empirical CDF of the calibration PITs itself; it
is used here piecewise linear through its quantiles at ``num_knots + 1`` equally spaced
levels, so that ``R`` is strictly increasing and its density ``R'`` finite (which the
recalibrated NLL needs). The recalibrated CRPS is computed from the recalibrated
quantiles ``F^-1(R^-1(tau))`` with the quantile-score integral
``CRPS = 2 int_0^1 rho_tau(y - G^-1(tau)) d tau`` on a midpoint grid.

Example:
    >>> import jax, jax.numpy as jnp
    >>> y = jax.random.normal(jax.random.key(0), (1000,))
    >>> calibrated = PredictiveMixture(jnp.zeros((1000, 1)), jnp.ones((1000, 1)))
    >>> m = evaluate(calibrated, y)
    >>> bool(abs(m.coverage_90 - 0.9) < 0.04), bool(m.ece < 0.04)
    (True, True)

"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import ArrayLike, Float

from astrobayes._checks import as_float_array, check_finite, check_positive_int
from astrobayes.bayesnn.predictive import PredictiveMixture
from astrobayes.validation import intervals as validation_intervals

__all__ = [
    "CalibrationMetrics",
    "IsotonicRecalibration",
    "evaluate",
    "fit_recalibration",
    "gaussian_crps",
    "interval_coverage",
    "mixture_crps",
    "quantile_calibration_error",
]

_LEVELS = np.arange(1, 100) / 100.0


class CalibrationMetrics(NamedTuple):
    """Scores of a predictive on one set of points (see the module docstring).

    Attributes:
        nll: Mean negative log predictive density (target units).
        crps: Mean CRPS (target units).
        ece: Expected quantile-calibration error.
        coverage_68: Share inside the central 68% interval.
        coverage_90: Share inside the central 90% interval.
        num_points: Points scored.

    """

    nll: float
    crps: float
    ece: float
    coverage_68: float
    coverage_90: float
    num_points: int


def _check_targets(mixture: PredictiveMixture, targets: ArrayLike) -> np.ndarray:
    if not isinstance(mixture, PredictiveMixture):
        raise TypeError(f"mixture must be a PredictiveMixture; got {type(mixture).__name__}")
    y = as_float_array(targets, "targets", ndim=1)
    if y.shape[0] != mixture.means.shape[0]:
        raise ValueError(
            f"targets must have one value per predictive point ({mixture.means.shape[0]}); "
            f"got {y.shape[0]}"
        )
    check_finite(y, "targets")
    return y


def _a(m, s):
    z = m / s
    return m * (2.0 * norm.cdf(z) - 1.0) + 2.0 * s * norm.pdf(z)


def gaussian_crps(
    mean: Float[ArrayLike, " num"],
    scale: Float[ArrayLike, " num"],
    targets: Float[ArrayLike, " num"],
) -> Float[np.ndarray, " num"]:
    """CRPS of ``N(mean, scale**2)`` at ``targets`` (Gneiting & Raftery 2007, eq. 21).

    Example:
        >>> round(float(gaussian_crps(0.0, 1.0, 0.0)), 4)  # (sqrt(2) - 1) / sqrt(pi)
        0.2337

    """
    mean, scale, y = (jnp.asarray(a, dtype=float) for a in (mean, scale, targets))
    return np.asarray(_a(y - mean, scale) - scale / jnp.sqrt(jnp.pi))


@jax.jit
def _mixture_crps(means, scales, y):
    def one(args):
        mu, s, yi = args
        first = jnp.mean(_a(yi - mu, s))
        pair = _a(mu[:, None] - mu[None, :], jnp.sqrt(s[:, None] ** 2 + s[None, :] ** 2))
        return first - 0.5 * jnp.mean(pair)

    return jax.lax.map(one, (means, scales, y), batch_size=32)


def mixture_crps(mixture: PredictiveMixture, targets: Float[ArrayLike, " num"]) -> np.ndarray:
    """Closed-form CRPS of each point's Gaussian mixture (Grimit et al. 2006).

    Example:
        >>> import jax.numpy as jnp
        >>> mix = PredictiveMixture(jnp.zeros((1, 3)), jnp.ones((1, 3)))
        >>> round(float(mixture_crps(mix, jnp.zeros(1))[0]), 4)
        0.2337

    """
    y = _check_targets(mixture, targets)
    return np.asarray(
        _mixture_crps(mixture.means, mixture.scales, jnp.asarray(y, mixture.means.dtype))
    )


def quantile_calibration_error(pit: Float[ArrayLike, " num"]) -> float:
    """Mean over ``q = 0.01..0.99`` of ``|share of PIT <= q - q|`` (Kuleshov et al. 2018).

    Example:
        >>> quantile_calibration_error(np.linspace(0.0005, 0.9995, 1000)) < 0.001
        True

    """
    p = as_float_array(pit, "pit", ndim=1)
    if p.size == 0:
        raise ValueError("pit must not be empty")
    empirical = np.searchsorted(np.sort(p), _LEVELS, side="right") / p.size
    return float(np.mean(np.abs(empirical - _LEVELS)))


def interval_coverage(pit: Float[ArrayLike, " num"], level: float) -> float:
    """Share of PIT values in ``[(1 - level) / 2, (1 + level) / 2]``: the central interval.

    Example:
        >>> interval_coverage(np.array([0.01, 0.5, 0.99, 0.2]), 0.68)
        0.5

    """
    p = as_float_array(pit, "pit", ndim=1)
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    half = 0.5 * (1.0 - float(level))
    return validation_intervals.interval_coverage(p, half, 1.0 - half).fraction


class IsotonicRecalibration(NamedTuple):
    """Monotone PIT map ``R`` (piecewise linear through the knots).

    Attributes:
        pit_knots: Increasing PIT values, from 0 to 1.
        level_knots: ``R`` at the knots, from 0 to 1.

    """

    pit_knots: np.ndarray
    level_knots: np.ndarray

    def __call__(self, pit: ArrayLike) -> np.ndarray:
        """``R(pit)``: the recalibrated CDF value."""
        return np.interp(np.asarray(pit), self.pit_knots, self.level_knots)

    def inverse(self, level: ArrayLike) -> np.ndarray:
        """``R^-1(level)``: the original-PIT level of a recalibrated quantile."""
        return np.interp(np.asarray(level), self.level_knots, self.pit_knots)

    def density(self, pit: ArrayLike) -> np.ndarray:
        """``R'(pit)``, the slope of the segment holding ``pit``."""
        slopes = np.diff(self.level_knots) / np.diff(self.pit_knots)
        index = np.clip(
            np.searchsorted(self.pit_knots, np.asarray(pit), side="right") - 1, 0, slopes.size - 1
        )
        return slopes[index]


def fit_recalibration(
    mixture: PredictiveMixture, targets: Float[ArrayLike, " num"], *, num_knots: int | None = None
) -> IsotonicRecalibration:
    """Fit the recalibration map on a calibration split (never the test points).

    Args:
        mixture: The predictive at the calibration inputs.
        targets: The calibration targets.
        num_knots: Segments of the piecewise-linear map (default
            ``clip(num // 20, 10, 50)``).

    Returns:
        :class:`IsotonicRecalibration`.

    Raises:
        ValueError: If the targets do not match or fewer than 20 points are given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = jax.random.normal(jax.random.key(0), (2000,))
        >>> wide = PredictiveMixture(jnp.zeros((2000, 1)), 3 * jnp.ones((2000, 1)))
        >>> r = fit_recalibration(wide, y)
        >>> bool(abs(float(r(0.5 + 0.5 * 0.68 / 3)) - 0.84) < 0.03)
        True

    """
    y = _check_targets(mixture, targets)
    if y.size < 20:
        raise ValueError(f"targets must hold at least 20 calibration points; got {y.size}")
    if num_knots is None:
        num_knots = int(np.clip(y.size // 20, 10, 50))
    num_knots = check_positive_int(num_knots, "num_knots", minimum=2)
    pit = np.asarray(mixture.cdf(jnp.asarray(y, mixture.means.dtype)), dtype=float)
    levels = np.linspace(0.0, 1.0, num_knots + 1)
    knots = np.quantile(pit, levels)
    knots[0], knots[-1] = 0.0, 1.0
    # strictly increasing (ties from saturated PITs would give infinite slopes)
    knots = np.maximum.accumulate(knots + np.arange(knots.size) * 1e-9)
    knots = knots / knots[-1]
    return IsotonicRecalibration(pit_knots=knots, level_knots=levels)


def evaluate(
    mixture: PredictiveMixture,
    targets: Float[ArrayLike, " num"],
    *,
    recalibration: IsotonicRecalibration | None = None,
    num_levels: int = 50,
) -> CalibrationMetrics:
    """Score a predictive against the true targets (optionally recalibrated).

    Args:
        mixture: The predictive at the test inputs.
        targets: The true targets.
        recalibration: A map from :func:`fit_recalibration` (fitted on other points);
            ``None`` scores the raw predictive.
        num_levels: Midpoint levels of the quantile-score CRPS of a recalibrated
            predictive.

    Returns:
        :class:`CalibrationMetrics`.

    Raises:
        TypeError: If ``mixture`` or ``recalibration`` has the wrong type.
        ValueError: If ``targets`` does not match the predictive or is not finite.

    """
    y = _check_targets(mixture, targets)
    if recalibration is not None and not isinstance(recalibration, IsotonicRecalibration):
        raise TypeError(
            f"recalibration must be an IsotonicRecalibration or None; got "
            f"{type(recalibration).__name__}"
        )
    yj = jnp.asarray(y, mixture.means.dtype)
    pit = np.asarray(mixture.cdf(yj), dtype=float)
    nll = -np.asarray(mixture.log_prob(yj), dtype=float)
    if recalibration is None:
        crps = mixture_crps(mixture, y)
    else:
        nll = nll - np.log(recalibration.density(pit))
        pit = recalibration(pit)
        num_levels = check_positive_int(num_levels, "num_levels", minimum=2)
        taus = (np.arange(num_levels) + 0.5) / num_levels
        base = np.clip(recalibration.inverse(taus), 1e-6, 1 - 1e-6)
        q = np.asarray(mixture.quantile(jnp.asarray(base, mixture.means.dtype)), dtype=float)
        u = y[:, None] - q
        crps = 2.0 * np.mean(u * (taus[None, :] - (u < 0)), axis=1)
    return CalibrationMetrics(
        nll=float(np.mean(nll)),
        crps=float(np.mean(crps)),
        ece=quantile_calibration_error(pit),
        coverage_68=interval_coverage(pit, 0.68),
        coverage_90=interval_coverage(pit, 0.90),
        num_points=int(y.size),
    )
