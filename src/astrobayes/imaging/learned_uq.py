"""Calibrated uncertainty for any learned (or classical) reconstruction: split conformal.

A reconstruction ``reconstruct_fn(backprojection, normal) -> image`` (an unrolled
network, a denoiser, a Wiener filter; optionally an ensemble ``(E, H, W)``) has no
error bars of its own. Split conformal prediction (Lei et al. 2018; for imaging
Angelopoulos et al. 2022) gives them from simulations: on a held-out *calibration* set of
simulated skies, the scores ``|x - x_hat| / s`` (pixels, or means over ``b x b``
super-pixels) are pooled and their ``ceil((n + 1) level)``-th smallest value ``q`` is
taken (:func:`~astrobayes.validation.intervals.conformal_quantile`); the interval is
``x_hat +- q s``. ``s`` is 1 (plain residual quantiles) or, for an ensemble, the
members' spread at that resolution (normalised scores: narrower intervals where the
members agree). Coverage is then *measured* on a second held-out *test* set with
:func:`~astrobayes.validation.intervals.interval_coverage` (cluster-robust error over
test images, since the pixels of one image are correlated) and judged with
:func:`~astrobayes.validation.intervals.coverage_verdict`.

The guarantee is marginal: over random skies from the simulation distribution and
random pixels, not for every pixel of one image, and only for skies, coverages and
noise levels like the calibration set's.

References:
    Lei, G'Sell, Rinaldo, Tibshirani & Wasserman 2018, "Distribution-free predictive
    inference for regression" (arXiv:1604.04173).
    Angelopoulos, Kohli, Bates, Jordan, Malik, Alshaabi, Upadhyayula & Romano 2022,
    "Image-to-image regression with distribution-free uncertainty quantification and
    applications in imaging" (arXiv:2202.05265).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._status import check, worst
from astrobayes.imaging.posterior import ImagingPosterior
from astrobayes.imaging.toeplitz import NormalOperator
from astrobayes.imaging.uq import (
    HypothesisTestResult,
    hpd_threshold,
    hypothesis_test,
    inpaint_region,
)
from astrobayes.imaging.uv_coverage import TrainingSet
from astrobayes.validation.coverage import CalibrationStatus
from astrobayes.validation.intervals import (
    IntervalCoverage,
    conformal_quantile,
    coverage_verdict,
    interval_coverage,
)

__all__ = [
    "ConformalCalibrator",
    "LearnedUncertaintyResult",
    "ResolutionCoverage",
    "calibrate_conformal",
    "evaluate_intervals",
    "learned_hypothesis_test",
    "learned_uncertainty",
    "reconstruct_set",
    "superpixel_means",
    "tikhonov_reconstruction",
]


def superpixel_means(
    images: Float[Array, "... height width"], size: int
) -> Float[Array, "... rows cols"]:
    """Means over non-overlapping ``size x size`` super-pixels (edges that do not fill one dropped).

    Args:
        images: Images with the two last axes ``(height, width)``.
        size: Super-pixel side (1: the images themselves).

    Returns:
        ``(..., height // size, width // size)`` block means.

    Raises:
        ValueError: If ``size`` is not a positive integer or exceeds the image.

    Example:
        >>> import numpy as np
        >>> superpixel_means(np.arange(16.0).reshape(4, 4), 2)
        array([[ 2.5,  4.5],
               [10.5, 12.5]])

    """
    array = np.asarray(images)
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer; got {size!r}")
    size = int(size)
    height, width = array.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"size {size} exceeds the image shape {(height, width)}")
    rows, cols = height // size, width // size
    cropped = array[..., : rows * size, : cols * size]
    blocks = cropped.reshape(*array.shape[:-2], rows, size, cols, size)
    return blocks.mean(axis=(-3, -1))


def _split_estimates(estimates: np.ndarray, num_images: int, name: str):
    """``(N, H, W)`` -> (mean, None); ``(N, E, H, W)`` -> (member mean, members)."""
    array = np.asarray(estimates, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == num_images:
        return array, None
    if array.ndim == 4 and array.shape[0] == num_images:
        if array.shape[1] < 2:
            raise ValueError(f"{name}: an ensemble needs at least 2 members; got {array.shape[1]}")
        return array.mean(axis=1), array
    raise ValueError(
        f"{name} must have shape (N, H, W) or (N, E, H, W) with N = {num_images}; got {array.shape}"
    )


def _scores_and_scale(truth, estimate, members, size, floor):
    """Residual and scale at one resolution (scale 1 without an ensemble)."""
    residual = superpixel_means(truth, size) - superpixel_means(estimate, size)
    if members is None:
        return residual, np.ones_like(residual)
    spread = superpixel_means(members, size).std(axis=1, ddof=1)
    return residual, np.maximum(spread, floor)


class ConformalCalibrator(eqx.Module):
    """Split-conformal quantiles of a reconstruction's scores, per resolution and level.

    Build it with :func:`calibrate_conformal`.

    Attributes:
        levels: Interval probabilities, e.g. ``(0.68, 0.9)``.
        superpixel_sizes: Resolutions (1: per pixel; ``b``: means over ``b x b``).
        quantiles: ``(len(superpixel_sizes), len(levels))`` conformal quantiles ``q``.
        scale_floors: ``(len(superpixel_sizes),)`` lower bound on the ensemble spread
            (normalised mode), so a zero spread does not give a zero-width interval.
        normalised: Whether scores were normalised by an ensemble spread.
        num_calibration: Calibration images used.

    """

    levels: tuple[float, ...] = eqx.field(static=True)
    superpixel_sizes: tuple[int, ...] = eqx.field(static=True)
    quantiles: Float[np.ndarray, "num_sizes num_levels"]
    scale_floors: Float[np.ndarray, " num_sizes"]
    normalised: bool = eqx.field(static=True)
    num_calibration: int = eqx.field(static=True)

    def intervals(
        self, estimates: Float[Array, "... height width"], size: int, level: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper interval ends at super-pixel ``size`` and ``level``.

        Args:
            estimates: ``(N, H, W)`` reconstructions, or ``(N, E, H, W)`` ensembles
                (required when the calibrator is normalised), or one ``(H, W)`` /
                ``(E, H, W)``.
            size: One of ``superpixel_sizes``.
            level: One of ``levels``.

        Returns:
            ``(lower, upper)`` arrays of super-pixel means, shape
            ``(N, H // size, W // size)`` (no leading axis for one image).

        Raises:
            ValueError: For a size or level the calibrator does not hold, or an
                estimate without ensemble axis for a normalised calibrator.
        """
        array = np.asarray(estimates, dtype=np.float64)
        if self.normalised and array.ndim < 3:
            raise ValueError(
                "this calibrator is normalised by an ensemble: pass (E, H, W) or (N, E, H, W); "
                f"got shape {array.shape}"
            )
        single = array.ndim == (3 if self.normalised else 2)
        if single:
            array = array[None]
        mean, members = _split_estimates(array, array.shape[0], "estimates")
        if self.normalised and members is None:
            raise ValueError("this calibrator is normalised by an ensemble: pass (N, E, H, W)")
        if not self.normalised and members is not None:
            raise ValueError("this calibrator was calibrated without an ensemble: pass (N, H, W)")
        i, j = self._index(size, level)
        centre = superpixel_means(mean, size)
        if self.normalised:
            spread = superpixel_means(members, size).std(axis=1, ddof=1)
            scale = np.maximum(spread, self.scale_floors[i])
        else:
            scale = np.ones_like(centre)
        half = self.quantiles[i, j] * scale
        lower, upper = centre - half, centre + half
        return (lower[0], upper[0]) if single else (lower, upper)

    def _index(self, size, level) -> tuple[int, int]:
        if size not in self.superpixel_sizes:
            raise ValueError(f"size must be one of {self.superpixel_sizes}; got {size!r}")
        matches = [j for j, lev in enumerate(self.levels) if abs(lev - level) < 1e-12]
        if not matches:
            raise ValueError(f"level must be one of {self.levels}; got {level!r}")
        return self.superpixel_sizes.index(size), matches[0]


def _check_levels_sizes(levels, superpixel_sizes):
    levels = tuple(float(v) for v in levels)
    if not levels or any(not 0 < v < 1 for v in levels):
        raise ValueError(f"levels must be a non-empty sequence in (0, 1); got {levels!r}")
    sizes = tuple(superpixel_sizes)
    if not sizes or any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"superpixel_sizes must be positive integers; got {sizes!r}")
    return levels, tuple(int(s) for s in sizes)


def calibrate_conformal(
    truth: Float[Array, "num_images height width"],
    estimates: Float[Array, "num_images height width"]
    | Float[Array, "num_images members height width"],
    *,
    levels: Sequence[float] = (0.68, 0.9),
    superpixel_sizes: Sequence[int] = (1, 4, 8),
    relative_scale_floor: float = 1e-3,
) -> ConformalCalibrator:
    """Calibrate split-conformal intervals on held-out simulated skies.

    Scores at each resolution are ``|mean_b(x) - mean_b(x_hat)| / s_b`` pooled over all
    super-pixels of all calibration images; ``s_b = 1``, or the ensemble members' standard
    deviation of the super-pixel means when ``estimates`` has a member axis (floored at
    ``relative_scale_floor`` times its median).

    Args:
        truth: ``(N, H, W)`` true skies of the calibration set (never trained on).
        estimates: ``(N, H, W)`` reconstructions or ``(N, E, H, W)`` ensembles.
        levels: Interval probabilities.
        superpixel_sizes: Resolutions (1 = per pixel).
        relative_scale_floor: Floor of the spread, relative to its median.

    Returns:
        A :class:`ConformalCalibrator`.

    Raises:
        ValueError: On shape mismatches, non-finite inputs, bad levels or sizes, or too
            few calibration scores for a level.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> truth = rng.normal(size=(50, 8, 8)); estimate = truth + 0.1 * rng.normal(size=truth.shape)
        >>> cal = calibrate_conformal(truth, estimate, levels=(0.9,), superpixel_sizes=(1,))
        >>> bool(0.15 < float(cal.quantiles[0, 0]) < 0.18)   # 1.645 * 0.1
        True

    """
    levels, sizes = _check_levels_sizes(levels, superpixel_sizes)
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3 or truth.shape[0] < 1:
        raise ValueError(f"truth must have shape (N, H, W); got {truth.shape}")
    mean, members = _split_estimates(estimates, truth.shape[0], "estimates")
    if mean.shape != truth.shape:
        raise ValueError(f"estimates' images {mean.shape} differ from truth {truth.shape}")
    for name, array in (("truth", truth), ("estimates", mean)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite")
    if not (np.isfinite(relative_scale_floor) and relative_scale_floor > 0):
        raise ValueError(f"relative_scale_floor must be positive; got {relative_scale_floor!r}")
    quantiles = np.zeros((len(sizes), len(levels)))
    floors = np.zeros(len(sizes))
    for i, size in enumerate(sizes):
        floor = 0.0
        if members is not None:
            spread = superpixel_means(members, size).std(axis=1, ddof=1)
            floor = relative_scale_floor * max(float(np.median(spread)), 1e-300)
        residual, scale = _scores_and_scale(truth, mean, members, size, floor)
        scores = np.abs(residual) / scale
        floors[i] = floor
        for j, level in enumerate(levels):
            quantiles[i, j] = conformal_quantile(scores, level)
    return ConformalCalibrator(
        levels=levels,
        superpixel_sizes=sizes,
        quantiles=quantiles,
        scale_floors=floors,
        normalised=members is not None,
        num_calibration=int(truth.shape[0]),
    )


class ResolutionCoverage(NamedTuple):
    """Measured coverage of one level at one resolution on the test set.

    Attributes:
        superpixel_size: Super-pixel side (1 = per pixel).
        level: Nominal probability.
        quantile: The conformal quantile used.
        coverage: :class:`~astrobayes.validation.intervals.IntervalCoverage` (error
            cluster-robust over test images).
        mean_width: Mean interval width.
        status: :class:`~astrobayes.validation.coverage.CalibrationStatus` verdict.

    """

    superpixel_size: int
    level: float
    quantile: float
    coverage: IntervalCoverage
    mean_width: float
    status: CalibrationStatus


def evaluate_intervals(
    calibrator: ConformalCalibrator,
    truth: Float[Array, "num_images height width"],
    estimates: Float[Array, "num_images height width"]
    | Float[Array, "num_images members height width"],
    *,
    tolerance: float = 0.03,
    sigmas: float = 3.0,
) -> tuple[ResolutionCoverage, ...]:
    """Measure the calibrator's coverage on a held-out test set, per resolution and level.

    Args:
        calibrator: From :func:`calibrate_conformal`.
        truth: ``(N, H, W)`` true test skies (not used for calibration).
        estimates: Their reconstructions, as for :func:`calibrate_conformal`.
        tolerance: Allowed deviation from the level (the issue's ``90% +- 3%``).
        sigmas: Standard errors added to ``tolerance`` before a verdict fails.

    Returns:
        One :class:`ResolutionCoverage` per (size, level), sizes outer.

    Raises:
        ValueError: On shape mismatches or fewer than two test images.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> t = rng.normal(size=(80, 8, 8)); e = t + 0.1 * rng.normal(size=t.shape)
        >>> cal = calibrate_conformal(t[:40], e[:40], levels=(0.9,), superpixel_sizes=(1,))
        >>> evaluate_intervals(cal, t[40:], e[40:])[0].status.name
        'CALIBRATED'

    """
    if not isinstance(calibrator, ConformalCalibrator):
        raise TypeError(
            f"calibrator must be a ConformalCalibrator; got {type(calibrator).__name__}"
        )
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3 or truth.shape[0] < 2:
        raise ValueError(f"truth must have shape (N, H, W) with N >= 2; got {truth.shape}")
    rows = []
    for size in calibrator.superpixel_sizes:
        target = superpixel_means(truth, size)
        for level in calibrator.levels:
            lower, upper = calibrator.intervals(estimates, size, level)
            if lower.shape != target.shape:
                raise ValueError(f"estimates do not match truth: {lower.shape} vs {target.shape}")
            coverage = interval_coverage(target, lower, upper, axis=0)
            i, j = calibrator._index(size, level)
            rows.append(
                ResolutionCoverage(
                    superpixel_size=size,
                    level=level,
                    quantile=float(calibrator.quantiles[i, j]),
                    coverage=coverage,
                    mean_width=float(np.mean(upper - lower)),
                    status=coverage_verdict(coverage, level, sigmas=sigmas, tolerance=tolerance),
                )
            )
    return tuple(rows)


class LearnedUncertaintyResult(NamedTuple):
    """Conformal uncertainty of a reconstruction, calibrated and tested on simulations.

    Attributes:
        calibrator: The :class:`ConformalCalibrator` (apply it to new reconstructions).
        coverages: Test-set :class:`ResolutionCoverage` per (size, level).
        test_snr_db: ``(N_test,)`` SNR ``20 log10(||x|| / ||x - x_hat||)`` of each test
            reconstruction.
        status: The worst :class:`~astrobayes.validation.coverage.CalibrationStatus`.

    """

    calibrator: ConformalCalibrator
    coverages: tuple[ResolutionCoverage, ...]
    test_snr_db: Float[np.ndarray, " num_test"]
    status: CalibrationStatus


def reconstruct_set(
    reconstruct_fn: Callable[[Float[Array, "height width"], NormalOperator], Array],
    data: TrainingSet,
    *,
    batch_size: int | None = None,
) -> np.ndarray:
    """Apply ``reconstruct_fn(backprojection, normal)`` to every pair of a data set.

    Args:
        reconstruct_fn: Maps one ``(H, W)`` back-projection ``Phi^H y`` and its
            :class:`~astrobayes.imaging.toeplitz.NormalOperator` to an ``(H, W)`` image
            or an ``(E, H, W)`` ensemble (jit it for speed).
        data: A :class:`~astrobayes.imaging.uv_coverage.TrainingSet`.
        batch_size: ``None``: one pair per call. Otherwise ``reconstruct_fn`` must be
            pure JAX: it runs as ``jax.jit(jax.vmap(reconstruct_fn))`` over batches of
            this many pairs (each with its own operator; the last batch padded), which
            is much faster for a network.

    Returns:
        ``(N, H, W)`` or ``(N, E, H, W)`` reconstructions (NumPy).

    Raises:
        TypeError: If ``data`` is not a ``TrainingSet``.
        ValueError: If the outputs' shapes differ or are not finite.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
    if not isinstance(data, TrainingSet):
        raise TypeError(f"data must be a TrainingSet; got {type(data).__name__}")
    num = data.truth.shape[0]
    if batch_size is not None:
        batched = jax.jit(jax.vmap(reconstruct_fn))
        chunks = []
        for start in range(0, num, int(batch_size)):
            index = np.arange(start, start + int(batch_size)) % num  # pad the last batch
            normals = jax.tree.map(lambda leaf, i=index: leaf[data.coverage_index[i]], data.normal)
            out = np.asarray(batched(data.backprojection[index], normals))
            chunks.append(out[: min(int(batch_size), num - start)])
        stacked = np.concatenate(chunks)
        if not np.all(np.isfinite(stacked)):
            raise ValueError("reconstruct_fn returned non-finite values")
        return stacked
    outputs = []
    for i in range(num):
        c = int(data.coverage_index[i])
        normal = jax.tree.map(lambda leaf, c=c: leaf[c], data.normal)
        outputs.append(np.asarray(reconstruct_fn(data.backprojection[i], normal)))
    shapes = {o.shape for o in outputs}
    if len(shapes) != 1:
        raise ValueError(f"reconstruct_fn returned differently shaped outputs: {sorted(shapes)}")
    stacked = np.stack(outputs)
    if not np.all(np.isfinite(stacked)):
        raise ValueError("reconstruct_fn returned non-finite values")
    return stacked


def learned_uncertainty(
    reconstruct_fn: Callable[[Float[Array, "height width"], NormalOperator], Array],
    calibration: TrainingSet,
    test: TrainingSet,
    *,
    levels: Sequence[float] = (0.68, 0.9),
    superpixel_sizes: Sequence[int] = (1, 4, 8),
    tolerance: float = 0.03,
    batch_size: int | None = None,
    throw: bool = False,
) -> LearnedUncertaintyResult:
    """Calibrate conformal intervals of ``reconstruct_fn`` and measure their coverage.

    Runs the reconstruction on both held-out sets (:func:`reconstruct_set`),
    calibrates on ``calibration`` (:func:`calibrate_conformal`; normalised by the
    ensemble spread when ``reconstruct_fn`` returns ``(E, H, W)``) and measures coverage
    on ``test`` (:func:`evaluate_intervals`). The two sets must be disjoint from each
    other and from any training data (simulate them with other keys).

    Args:
        reconstruct_fn: ``(backprojection, normal) -> (H, W)`` or ``(E, H, W)``.
        calibration: Calibration pairs (:func:`~astrobayes.imaging.uv_coverage.simulate_training_set`).
        test: Test pairs.
        levels: Interval probabilities.
        superpixel_sizes: Resolutions (1 = per pixel).
        tolerance: Allowed coverage deviation (see :func:`evaluate_intervals`).
        batch_size: Run ``reconstruct_fn`` vmapped over batches (see
            :func:`reconstruct_set`).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when a coverage is too low (overconfident intervals).

    Returns:
        :class:`LearnedUncertaintyResult`.

    Raises:
        UnreliableResultError: With ``throw=True`` on an overconfident verdict.
        TypeError, ValueError: On bad inputs (see the functions above).
    """
    cal_estimates = reconstruct_set(reconstruct_fn, calibration, batch_size=batch_size)
    test_estimates = reconstruct_set(reconstruct_fn, test, batch_size=batch_size)
    calibrator = calibrate_conformal(
        np.asarray(calibration.truth),
        cal_estimates,
        levels=levels,
        superpixel_sizes=superpixel_sizes,
    )
    test_truth = np.asarray(test.truth, dtype=np.float64)
    coverages = evaluate_intervals(calibrator, test_truth, test_estimates, tolerance=tolerance)
    test_mean, _ = _split_estimates(test_estimates, test_truth.shape[0], "estimates")
    errors = np.linalg.norm((test_truth - test_mean).reshape(len(test_truth), -1), axis=1)
    norms = np.linalg.norm(test_truth.reshape(len(test_truth), -1), axis=1)
    snr = 20.0 * np.log10(norms / np.maximum(errors, 1e-300))
    result = LearnedUncertaintyResult(
        calibrator=calibrator,
        coverages=coverages,
        test_snr_db=snr,
        status=worst(row.status for row in coverages),
    )
    return check(result, throw)


def tikhonov_reconstruction(
    backprojection: Float[Array, "height width"],
    normal: NormalOperator,
    strength: float,
    *,
    num_iterations: int = 50,
) -> Float[Array, "height width"]:
    """``argmin ||y - Phi x||^2 / 2 + strength ||x||^2 / 2`` by conjugate gradients.

    Solves ``(Phi^H Phi + strength I) x = Phi^H y`` with the normal operator: a Wiener
    filter with a white prior, the simplest non-learned reconstruction to test the
    uncertainty machinery with.

    Args:
        backprojection: ``Phi^H y``.
        normal: The :class:`~astrobayes.imaging.toeplitz.NormalOperator`.
        strength: Positive regularisation strength.
        num_iterations: CG iterations (fixed, so it runs under ``jit``/``vmap``).

    Returns:
        The reconstruction.

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> from astrobayes.imaging.toeplitz import mask_normal_operator
        >>> normal = mask_normal_operator(fourier_mask_operator(np.ones((4, 4), bool)))
        >>> x = tikhonov_reconstruction(jnp.ones((4, 4)), normal, 1.0)
        >>> round(float(x[0, 0]), 4)
        0.5

    """
    dtype = backprojection.dtype  # the normal operator answers in its spectrum's dtype
    solution, _ = jax.scipy.sparse.linalg.cg(
        lambda v: (normal(v) + strength * v).astype(dtype),
        backprojection,
        maxiter=num_iterations,
        tol=1e-10,
    )
    return solution


def learned_hypothesis_test(
    posterior: ImagingPosterior,
    reconstruction: Float[Array, "height width"],
    region: Float[Array, "height width"],
    *,
    alpha: float = 0.01,
    num_inpaint_iterations: int = 2000,
) -> HypothesisTestResult:
    """The MAP-based hypothesis test of a structure, evaluated at a learned reconstruction.

    Pereyra's (2017) bound ``gamma = U(x_MAP) + sqrt(N) tau_alpha + N`` needs ``U`` at the
    MAP; any other image ``x_hat`` has ``U(x_hat) >= U(x_MAP)``, so
    ``gamma' = U(x_hat) + sqrt(N) tau_alpha + N >= gamma`` bounds a superset of the HPD
    region: a rejection with ``gamma'`` is a rejection with ``gamma`` (valid,
    conservative), no MAP needed. The structure in ``region`` is removed from
    ``x_hat`` by harmonic inpainting
    (:func:`~astrobayes.imaging.uq.inpaint_region`) and "the structure is an artefact"
    is rejected when ``U(surrogate) > gamma'``
    (:func:`~astrobayes.imaging.uq.hypothesis_test`; Cai, Pereyra & McEwen 2018). Use
    the posterior of the learned convex prior (CRR) or any other
    :class:`~astrobayes.imaging.posterior.ImagingPosterior`.

    Args:
        posterior: The posterior whose potential ``U`` defines the credible region.
        reconstruction: The learned reconstruction ``x_hat`` (inside the posterior's
            support: non-negative when it has positivity).
        region: Boolean mask of the structure to test.
        alpha: ``1 - alpha`` credibility.
        num_inpaint_iterations: Jacobi iterations of the inpainting.

    Returns:
        :class:`~astrobayes.imaging.uq.HypothesisTestResult` (its ``potential_map`` is
        ``U(x_hat)``).

    Raises:
        ValueError: If ``U(x_hat)`` is not finite (e.g. negative pixels with
            positivity: project with ``jnp.maximum(x_hat, 0)``), or on bad shapes.

    References:
        Pereyra 2017, arXiv:1602.03022; Cai, Pereyra & McEwen 2018, arXiv:1711.04819.
    """
    x = jnp.asarray(reconstruction, jnp.zeros(()).dtype)
    if x.shape != posterior.image_shape:
        raise ValueError(f"reconstruction must have shape {posterior.image_shape}; got {x.shape}")
    potential = float(posterior.potential(x))
    if not np.isfinite(potential):
        raise ValueError(
            "U(reconstruction) is not finite: the reconstruction is outside the posterior's "
            "support (with positivity, project it first: jnp.maximum(x, 0))"
        )
    hpd = hpd_threshold(potential, posterior.dimension, alpha)
    surrogate = inpaint_region(x, region, num_iterations=num_inpaint_iterations)
    return hypothesis_test(posterior, surrogate, hpd)
