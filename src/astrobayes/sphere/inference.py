r"""Simulation-based inference from sky maps: a lognormal field, two compressions, calibration.

The parameters of a field on the sphere are inferred by neural posterior estimation
(:func:`astrobayes.sbi.train_npe`) from simulated HEALPix maps, compressed in one of two
ways:

* **scattering covariances** (:class:`ScatteringCompression`): the designed, fixed
  summaries of :mod:`astrobayes.sphere.scattering` (mean, variance, S1..S4 of
  axisymmetric wavelets, so the isotropic reduction is the identity), normalised by the
  band powers of a reference set of maps, the strictly positive groups (variance, S1,
  S2) in logarithms; computed once per map, then NPE learns the posterior of the
  summary vector (optionally through a small MLP embedding trained with it,
  ``summary_embedding``);
* **a DISCO spherical CNN** (:class:`DiscoEmbedding`): an
  :class:`~astrobayes.sbi.AbstractEmbedding` around :class:`~astrobayes.sphere.DiscoCNN`,
  so it is a field of the NPE Module and trained jointly with the flow by the same loss
  (the ``embedding`` hook of :func:`~astrobayes.sbi.train_npe`; nothing new in ``sbi``).

:func:`run_sky_sbi` simulates training and held-out test maps, trains NPE, and checks the
posterior on the held-out maps with :func:`astrobayes.validation.calibration_report`
(expected coverage of HPD regions, TARP and SBC), beside a negative control: the same
posterior with every draw pulled towards its mean by ``shrink`` (an over-confident
density, :func:`overconfident_draws`), which the checks must flag.

The simulator (:class:`LognormalSimulator`) is the weak-lensing-like shifted lognormal
field (Hilbert, Hartlap & Schneider 2011, arXiv:1105.3980; Xavier et al. 2016,
arXiv:1602.08503): a Gaussian field ``g`` with :math:`C_\ell = A\,T_\ell`, ``T`` a fixed
template of unit variance, and

.. math:: \kappa = \lambda\,\left(e^{g - A/2} - 1\right) + \sigma_n\, n,

so :math:`\kappa \ge -\lambda` before noise, its variance is
:math:`\lambda^2 (e^{A} - 1)` and its skewness depends on ``A`` alone: the two parameters
``(amplitude A, shift lambda)`` are identifiable from the one-point statistics and the
spectrum together, not from the power spectrum alone.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingInfo
from astrobayes._types import ProgressFn
from astrobayes.sbi import (
    NPE,
    AbstractEmbedding,
    CalibrationDraws,
    FlowConfig,
    Prior,
    SBITrainingConfig,
    calibration_draws,
    simulate_for_prior,
    train_npe,
)
from astrobayes.sphere.disco import DiscoCNN
from astrobayes.sphere.scattering import (
    ScatteringCovariance,
    flatten_statistics,
    normalise,
    scattering_covariance,
)
from astrobayes.sphere.textures import gaussian_field
from astrobayes.sphere.transforms import SphereGrid
from astrobayes.sphere.wavelets import WaveletFilters, axisymmetric_filters
from astrobayes.validation import CalibrationReport, calibration_report

__all__ = [
    "DiscoEmbedding",
    "LognormalSimulator",
    "ScatteringCompression",
    "SkySBIResult",
    "SkySBIStatus",
    "ks_tolerance",
    "lognormal_prior",
    "overconfident_draws",
    "run_sky_sbi",
]


def _check_nside(nside) -> int:
    if isinstance(nside, bool) or not isinstance(nside, int | np.integer):
        raise TypeError(f"nside must be an int power of two, got {type(nside).__name__}")
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a power of two >= 1, got {nside}")
    return nside


@dataclasses.dataclass(frozen=True, eq=False, init=False)
class LognormalSimulator:
    r"""Shifted lognormal field on HEALPix with pixel noise and an optional mask.

    Call it as ``simulator(key, theta)`` with ``theta = (amplitude, shift)`` for one map
    (pure JAX, ``vmap``-able, the signature :func:`astrobayes.sbi.simulate_for_prior`
    expects). The template is :math:`T_\ell \propto (\ell + \ell_0)^{-n}` for
    ``1 <= ell < band_limit`` (no monopole), scaled so that the Gaussian field has unit
    variance; ``amplitude`` is then the variance of ``g``.

    A frozen object holding host (NumPy, read-only) constants, hashed by identity, so
    it can be closed over by ``jit`` or stored as a static field.

    Attributes:
        grid: HEALPix :class:`~astrobayes.sphere.SphereGrid` of the maps.
        template: ``(band_limit,)`` unit-variance :math:`T_\ell`.
        noise_std: standard deviation of the white pixel noise.
        mask: ``(12 nside^2,)`` weights (1 observed, 0 masked), or ``None``.

    References:
        Hilbert, Hartlap & Schneider 2011 (arXiv:1105.3980); Xavier et al. 2016
        (arXiv:1602.08503).

    Examples:
        >>> simulator = LognormalSimulator(4)
        >>> kappa = simulator(jax.random.key(0), jnp.array([0.3, 1.0]))
        >>> kappa.shape, bool(kappa.min() > -1.0 - 5 * simulator.noise_std)
        ((192,), True)
    """

    grid: SphereGrid
    template: np.ndarray
    noise_std: float
    mask: np.ndarray | None

    def __init__(
        self,
        nside: int,
        *,
        band_limit: int | None = None,
        tilt: float = 3.0,
        ell_pivot: float = 5.0,
        noise_std: float = 0.1,
        mask: np.ndarray | Array | None = None,
    ):
        r"""Build the template and the grid.

        Args:
            nside: HEALPix resolution (a power of two).
            band_limit: ``L`` of the Gaussian field (default ``2 nside``; at most
                ``3 nside``).
            tilt: ``n`` of the template :math:`(\ell + \ell_0)^{-n}`.
            ell_pivot: ``ell_0`` of the template (> 0).
            noise_std: pixel noise standard deviation (>= 0).
            mask: optional ``(12 nside^2,)`` array of 0/1 weights (finite, not all 0).

        Raises:
            TypeError: ``nside`` is not an int.
            ValueError: a bad ``nside``, ``band_limit``, ``tilt``, ``ell_pivot``,
                ``noise_std`` or ``mask``, naming the argument.
        """
        nside = _check_nside(nside)
        band_limit = 2 * nside if band_limit is None else band_limit
        if isinstance(band_limit, bool) or not isinstance(band_limit, int | np.integer):
            raise TypeError(f"band_limit must be an int, got {type(band_limit).__name__}")
        if not 2 <= band_limit <= 3 * nside:
            raise ValueError(f"band_limit must be in [2, 3 nside = {3 * nside}], got {band_limit}")
        for name, value, low in (("tilt", tilt, None), ("ell_pivot", ell_pivot, 0.0)):
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if low is not None and value <= low:
                raise ValueError(f"{name} must be > {low}, got {value!r}")
        if not isinstance(noise_std, int | float) or not (
            math.isfinite(noise_std) and noise_std >= 0
        ):
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        num_pixels = 12 * nside**2
        if mask is not None:
            mask = np.asarray(mask, dtype=float)
            if mask.shape != (num_pixels,):
                raise ValueError(
                    f"mask must have shape (12 nside^2,) = ({num_pixels},), got {mask.shape}"
                )
            if not np.all(np.isfinite(mask)) or not np.any(mask):
                raise ValueError("mask must be finite and not all zero")
            mask.setflags(write=False)
        ell = np.arange(band_limit, dtype=float)
        template = np.where(ell > 0, (ell + ell_pivot) ** (-float(tilt)), 0.0)
        template /= np.sum((2 * ell + 1) * template) / (4 * np.pi)  # unit variance of g
        template.setflags(write=False)
        object.__setattr__(self, "grid", SphereGrid(int(band_limit), "healpix", nside=nside))
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "noise_std", float(noise_std))
        object.__setattr__(self, "mask", mask)

    def __call__(self, key: PRNGKeyArray, theta: Float[Array, " 2"]) -> Float[Array, " num_pixels"]:
        """One noisy (masked) map for ``theta = (amplitude, shift)``.

        Raises:
            ValueError: ``theta`` does not have shape ``(2,)``.
        """
        theta = jnp.asarray(theta)
        if theta.shape != (2,):
            raise ValueError(f"theta must have shape (2,) = (amplitude, shift), got {theta.shape}")
        amplitude, shift = theta[0], theta[1]
        key_field, key_noise = jax.random.split(key)
        dtype = jnp.result_type(float)
        cl = (amplitude * jnp.asarray(self.template, dtype)).astype(dtype)
        g = gaussian_field(key_field, cl, self.grid, 1)[0]
        kappa = shift * jnp.expm1(g - 0.5 * amplitude)
        kappa = kappa + self.noise_std * jax.random.normal(key_noise, kappa.shape, kappa.dtype)
        return kappa if self.mask is None else kappa * jnp.asarray(self.mask, kappa.dtype)


def lognormal_prior(
    amplitude: tuple[float, float] = (0.1, 0.5), shift: tuple[float, float] = (0.5, 1.5)
) -> Prior:
    """Uniform prior on ``(amplitude, shift)`` of :class:`LognormalSimulator`.

    Args:
        amplitude: ``(low, high)`` of the variance of the Gaussian field (> 0).
        shift: ``(low, high)`` of the lognormal shift (> 0).

    Returns:
        A :class:`~astrobayes.sbi.Prior` with names ``("amplitude", "shift")``.

    Raises:
        ValueError: a bound that is not positive, or ``low >= high``.

    Examples:
        >>> lognormal_prior().names
        ('amplitude', 'shift')
    """
    for name, (low, high) in (("amplitude", amplitude), ("shift", shift)):
        if not (0 < low < high and math.isfinite(high)):
            raise ValueError(f"{name} must be (low, high) with 0 < low < high, got {(low, high)}")
    return Prior.uniform(
        [amplitude[0], shift[0]], [amplitude[1], shift[1]], names=("amplitude", "shift")
    )


class ScatteringCompression(eqx.Module):
    """Fixed scattering-covariance summaries of maps, normalised by a reference set.

    ``compression(maps)`` returns ``(num_maps, num_statistics)``: the groups of
    :func:`~astrobayes.sphere.scattering.flatten_statistics` (mean, variance, S1, S2,
    S3, S4) after :func:`~astrobayes.sphere.scattering.normalise` by the mean statistics
    of the reference maps, with ``log`` applied to the strictly positive variance, S1 and
    S2. Computed on the host in chunks of ``batch_size`` maps (not trained; call it once
    on the simulations, then train NPE on the vectors).

    Attributes:
        grid: the maps' grid, HEALPix analysis with ``analysis_iterations`` (static).
        filters: axisymmetric wavelet filters (static).
        reference: mean :class:`~astrobayes.sphere.ScatteringCovariance` of the
            reference maps.
        batch_size: maps per transform call (static).

    References:
        Mousset et al. 2024 (arXiv:2407.08687); Cheng et al. 2023 (arXiv:2306.17210).

    Examples:
        >>> simulator = LognormalSimulator(4)
        >>> keys = jax.random.split(jax.random.key(0), 3)
        >>> maps = jax.vmap(simulator, (0, None))(keys, jnp.array([0.3, 1.0]))
        >>> compression = ScatteringCompression(maps, simulator.grid)
        >>> compression(maps).shape  # 4 scales: 1 + 1 + 4 + 4 + 10 (S3) + 20 (S4)
        (3, 40)
    """

    grid: SphereGrid = eqx.field(static=True)
    filters: WaveletFilters = eqx.field(static=True)
    reference: ScatteringCovariance
    batch_size: int = eqx.field(static=True)

    def __init__(
        self,
        reference_maps: Float[Array, "num_maps num_pixels"] | np.ndarray,
        grid: SphereGrid,
        *,
        filters: WaveletFilters | None = None,
        analysis_iterations: int = 1,
        batch_size: int = 256,
    ):
        """Compute the reference statistics.

        Args:
            reference_maps: ``(num_maps, *grid.map_shape)`` maps whose mean statistics
                normalise every map (e.g. simulations at the centre of the prior, not the
                test set).
            grid: the maps' :class:`~astrobayes.sphere.SphereGrid`.
            filters: wavelet filters (default ``axisymmetric_filters(grid.band_limit)``).
            analysis_iterations: HEALPix refinement steps of the statistics' analyses
                (the same operator on every map; 1 is enough for summaries).
            batch_size: maps per transform call.

        Raises:
            TypeError: ``grid`` is not a SphereGrid.
            ValueError: reference maps of the wrong shape or with non-finite pixels.
        """
        if not isinstance(grid, SphereGrid):
            raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")
        if grid.sampling == "healpix":
            grid = dataclasses.replace(grid, iterations=analysis_iterations)
        self.grid = grid
        self.filters = axisymmetric_filters(grid.band_limit) if filters is None else filters
        self.batch_size = check_positive_int(batch_size, "batch_size")
        stats = self._statistics(reference_maps, "reference_maps")
        self.reference = jax.tree.map(lambda s: jnp.mean(s, axis=0), stats)

    def _statistics(self, maps, name: str) -> ScatteringCovariance:
        maps = np.asarray(maps)
        if maps.ndim != 1 + len(self.grid.map_shape) or maps.shape[1:] != self.grid.map_shape:
            raise ValueError(
                f"{name} must have shape (num_maps, *{self.grid.map_shape}), got {maps.shape}"
            )
        if not np.issubdtype(maps.dtype, np.floating) or not np.all(np.isfinite(maps)):
            raise ValueError(f"{name} must hold finite floating-point pixels")
        dtype = jnp.result_type(float)
        chunks = [
            scattering_covariance(
                jnp.asarray(maps[i : i + self.batch_size], dtype), self.grid, self.filters
            )
            for i in range(0, maps.shape[0], self.batch_size)
        ]
        return jax.tree.map(lambda *parts: jnp.concatenate(parts), *chunks)

    @property
    def num_statistics(self) -> int:
        """Length of one summary vector."""
        return int(flatten_statistics(self.reference).shape[-1])

    def __call__(
        self, maps: Float[Array, "num_maps num_pixels"] | np.ndarray
    ) -> Float[Array, "num_maps num_statistics"]:
        """Normalised summaries of ``maps`` (``(num_maps, *grid.map_shape)``).

        Raises:
            ValueError: maps of the wrong shape or with non-finite pixels.
        """
        stats = normalise(self._statistics(maps, "maps"), self.reference)
        stats = stats._replace(
            variance=jnp.log(stats.variance), s1=jnp.log(stats.s1), s2=jnp.log(stats.s2)
        )
        return flatten_statistics(stats)


class DiscoEmbedding(AbstractEmbedding):
    """A :class:`~astrobayes.sphere.DiscoCNN` as an SBI embedding, trained with the estimator.

    Pass it as ``train_npe(..., embedding=DiscoEmbedding(...))``: its weights are a field
    of the NPE Module, so the flow and the spherical CNN are fitted by the one NPE loss
    (Jeffrey, Alsing & Lanusse 2021, arXiv:2009.08459). Isotropic filters and pooling of
    every channel's mean and standard deviation make the summaries rotation invariant up
    to the layers' quadrature error.

    Attributes:
        cnn: the :class:`~astrobayes.sphere.DiscoCNN`.
        out_size: summaries per map (static).

    References:
        Ocampo, Price & McEwen 2023 (arXiv:2209.13603).

    Examples:
        >>> embedding = DiscoEmbedding(jax.random.key(0), 4, channels=(2,), embedding_size=3)
        >>> embedding(jnp.ones(192)).shape
        (3,)
    """

    cnn: DiscoCNN
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        nside: int,
        *,
        channels: Sequence[int] = (4, 8, 8),
        embedding_size: int = 8,
        num_radial: int = 3,
        radius_pixels: float = 4.5,
    ):
        """Build the CNN (every layer halves nside).

        Args:
            key: PRNG key of the weights.
            nside: HEALPix resolution of the input maps.
            channels: output channels of each DISCO layer.
            embedding_size: summaries per map.
            num_radial: radial hats per layer.
            radius_pixels: filter radius in pixel scales of each layer's input.

        Raises:
            ValueError: bad ``nside``, ``channels`` or ``embedding_size`` (from DiscoCNN).
        """
        check_key(key)
        self.cnn = DiscoCNN(
            nside,
            key=key,
            channels=channels,
            embedding_size=embedding_size,
            num_radial=num_radial,
            radius_pixels=radius_pixels,
        )
        self.out_size = self.cnn.embedding_size

    def __call__(self, x: Float[Array, " num_pixels"]) -> Float[Array, " out_size"]:
        """Summaries of one (standardised) map."""
        return self.cnn(x)


def ks_tolerance(num_tests: int, significance: float = 0.01) -> float:
    r"""Monte Carlo tolerance of a coverage curve from ``num_tests`` held-out simulations.

    The asymptotic Kolmogorov-Smirnov critical value :math:`\sqrt{-\ln(\alpha/2)/2} /
    \sqrt{n}`: a calibrated posterior's empirical coverage curve stays within it of the
    diagonal at every level with probability ``1 - significance``.

    Examples:
        >>> round(ks_tolerance(1000), 4)
        0.0515
    """
    num_tests = check_positive_int(num_tests, "num_tests")
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance!r}")
    return math.sqrt(-math.log(significance / 2) / 2) / math.sqrt(num_tests)


def overconfident_draws(
    estimator: NPE,
    draws: CalibrationDraws,
    x: Array | np.ndarray,
    shrink: float = 0.5,
) -> CalibrationDraws:
    """A deliberately over-confident posterior: the negative control of the calibration.

    Every draw is pulled towards its test's posterior mean ``mu``,
    ``theta' = mu + shrink (theta - mu)``, which is a draw of the density
    ``q'(theta') = q(mu + (theta' - mu) / shrink) / shrink^dim``; its log density is
    evaluated exactly at the draws and at the true parameters (``-inf`` outside the prior
    support), so expected coverage, TARP and SBC all see a posterior ``shrink`` times too
    narrow.

    Args:
        estimator: the trained NPE the draws came from.
        draws: its :class:`~astrobayes.sbi.CalibrationDraws` on the test set.
        x: the tests' estimator inputs (summaries or maps), ``(n, *data_shape)``.
        shrink: factor in ``(0, 1)``.

    Returns:
        :class:`~astrobayes.sbi.CalibrationDraws` of the over-confident posterior.

    Raises:
        TypeError: ``estimator`` is not an NPE or ``draws`` not CalibrationDraws.
        ValueError: ``shrink`` outside ``(0, 1)`` or ``x`` of the wrong length.
    """
    if not isinstance(estimator, NPE):
        raise TypeError(f"estimator must be an NPE, got {type(estimator).__name__}")
    if not isinstance(draws, CalibrationDraws):
        raise TypeError(f"draws must be CalibrationDraws, got {type(draws).__name__}")
    if not (isinstance(shrink, int | float) and 0 < shrink < 1):
        raise ValueError(f"shrink must be in (0, 1), got {shrink!r}")
    x = np.asarray(x)
    num_tests, _, dim = draws.samples.shape
    if x.shape[0] != num_tests:
        raise ValueError(f"x must have len(draws.theta_true) = {num_tests} rows, got {x.shape[0]}")
    mean = draws.samples.mean(axis=1, keepdims=True)
    samples = mean + shrink * (draws.samples - mean)
    log_jacobian = dim * math.log(shrink)
    stretched = mean[:, 0] + (draws.theta_true - mean[:, 0]) / shrink
    inside = np.asarray(estimator.prior.in_support(jnp.asarray(stretched)))
    safe = np.where(inside[:, None], stretched, mean[:, 0])
    x = jnp.asarray(x.reshape(num_tests, *estimator.x_shift.shape), jnp.float32)
    log_true = eqx.filter_jit(
        jax.vmap(lambda e, t, xi: e.log_posterior(t, xi), in_axes=(None, 0, 0))
    )(estimator, jnp.asarray(safe, jnp.float32), x)
    log_true = np.where(inside, np.asarray(log_true, dtype=float), -np.inf) - log_jacobian
    return draws._replace(
        samples=samples,
        log_prob_true=log_true,
        log_prob_samples=draws.log_prob_samples - log_jacobian,
    )


class SkySBIStatus(Status):
    """Verdict of :func:`run_sky_sbi`; the value is the message."""

    OK = (Severity.OK, "calibrated on the held-out maps, and the over-confident control flagged")
    TRAINING_NOT_CONVERGED = (
        Severity.WARNING,
        "calibrated, but training stopped at max_epochs while the validation loss improved",
    )
    UNDERCONFIDENT = (
        Severity.WARNING,
        "underconfident on the held-out maps: credible regions are conservative",
    )
    NOT_CALIBRATED = (
        Severity.FAILURE,
        "not calibrated on the held-out maps (over-confident, biased or miscalibrated)",
    )
    CONTROL_NOT_FLAGGED = (
        Severity.FAILURE,
        "the over-confident control was not flagged: too few test maps for the checks "
        "to mean anything",
    )
    NON_FINITE = (Severity.FAILURE, "non-finite posterior draws on the held-out maps")


class SkySBIResult(NamedTuple):
    """What :func:`run_sky_sbi` measured.

    Attributes:
        estimator: the trained :class:`~astrobayes.sbi.NPE` (with the DISCO embedding
            inside it, or on scattering summaries).
        training: :class:`~astrobayes._training.TrainingInfo`.
        report: :class:`~astrobayes.validation.CalibrationReport` on the held-out maps.
        control: the same report for :func:`overconfident_draws` (must be flagged).
        coverage_deviation: largest ``|coverage - level|`` of the HPD expected coverage.
        control_deviation: the same for the control.
        tolerance: the tolerance the checks used (:func:`ks_tolerance` by default).
        posterior_std: mean over the tests of each parameter's posterior standard
            deviation, ``(dim,)``.
        prior_std: each parameter's prior standard deviation, ``(dim,)``.
        num_simulations: training simulations (validation split included).
        num_tests: held-out test simulations.
        simulation_cpu_s: process CPU seconds of the simulations (and the summaries).
        training_cpu_s: process CPU seconds of training, compilation included.
        status: :class:`SkySBIStatus`.
    """

    estimator: NPE
    training: TrainingInfo
    report: CalibrationReport
    control: CalibrationReport
    coverage_deviation: float
    control_deviation: float
    tolerance: float
    posterior_std: np.ndarray
    prior_std: np.ndarray
    num_simulations: int
    num_tests: int
    simulation_cpu_s: float
    training_cpu_s: float
    status: SkySBIStatus


def _prior_std(prior: Prior) -> np.ndarray:
    low, high = np.asarray(prior.low, dtype=float), np.asarray(prior.high, dtype=float)
    bounded = np.asarray(prior.is_bounded, dtype=bool)
    return np.where(bounded, (high - low) / math.sqrt(12.0), high)


def run_sky_sbi(
    key: PRNGKeyArray,
    simulator: LognormalSimulator,
    prior: Prior,
    compression: ScatteringCompression | AbstractEmbedding,
    *,
    num_simulations: int,
    summary_embedding: AbstractEmbedding | None = None,
    num_tests: int = 1000,
    num_posterior_samples: int = 500,
    flow_config: FlowConfig | None = None,
    training_config: SBITrainingConfig | None = None,
    shrink: float = 0.5,
    significance: float = 0.01,
    tolerance: float | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SkySBIResult:
    """Train NPE on simulated sky maps with one compression and check its calibration.

    Simulates ``num_simulations`` training maps and ``num_tests`` held-out maps (never
    trained on) from ``prior``; with a :class:`ScatteringCompression` the maps become
    summary vectors first, with an embedding (e.g. :class:`DiscoEmbedding`) the maps go
    to :func:`~astrobayes.sbi.train_npe` and the embedding trains jointly. Then draws
    ``num_posterior_samples`` per test map and runs
    :func:`~astrobayes.validation.calibration_report` on the posterior and on the
    over-confident control (:func:`overconfident_draws`).

    Args:
        key: PRNG key (split into simulation, training, test and check keys).
        simulator: a :class:`LognormalSimulator` (or any ``simulator(key, theta)`` map
            simulator on ``compression``'s grid).
        prior: the :class:`~astrobayes.sbi.Prior` of ``theta``.
        compression: :class:`ScatteringCompression` or an
            :class:`~astrobayes.sbi.AbstractEmbedding` taking one map.
        num_simulations: training simulations (``validation_fraction`` of them held out
            for early stopping).
        summary_embedding: with a :class:`ScatteringCompression` only, an optional
            embedding of the summary vector trained jointly with NPE (e.g.
            ``MLPEmbedding(key, compression.num_statistics, 8)``: a learned compression
            of the fixed statistics; at nside 16 with 3 000 simulations it reduced the
            over-confidence of NPE on the raw 91 statistics without removing it, and
            with 20 000 both were within tolerance; see docs/sphere.md).
        num_tests: held-out test simulations for the checks (>= 2).
        num_posterior_samples: draws per test map.
        flow_config: NPE flow (default :class:`~astrobayes.sbi.FlowConfig`).
        training_config: optimiser (default :class:`~astrobayes.sbi.SBITrainingConfig`).
        shrink: scale factor of the over-confident control, in ``(0, 1)``.
        significance: KS-test level of the checks.
        tolerance: largest accepted ``|coverage - level|`` (default
            :func:`ks_tolerance` of ``num_tests``: the Monte Carlo error).
        progress_fn: passed to training, ``progress_fn("training", epoch, max_epochs)``.
        throw: raise :class:`~astrobayes._status.UnreliableResultError` on a failure.

    Returns:
        :class:`SkySBIResult`.

    Raises:
        TypeError: a ``compression`` that is neither, or a ``prior`` that is no Prior.
        ValueError: bad counts, ``shrink`` or ``tolerance``, naming the argument.

    References:
        Papamakarios & Murray 2016 (arXiv:1605.06376); Hermans et al. 2022
        (arXiv:2110.06581); Lemos et al. 2023 (arXiv:2302.03026).

    Examples:
        >>> simulator = LognormalSimulator(4)
        >>> prior = lognormal_prior()
        >>> maps = jax.vmap(simulator, (0, None))(
        ...     jax.random.split(jax.random.key(0), 4), jnp.array([0.3, 1.0]))
        >>> result = run_sky_sbi(jax.random.key(1), simulator, prior,
        ...     ScatteringCompression(maps, simulator.grid), num_simulations=64,
        ...     num_tests=20, num_posterior_samples=50,
        ...     flow_config=FlowConfig(flow_layers=1, nn_width=8, knots=0),
        ...     training_config=SBITrainingConfig(max_epochs=2))
        >>> result.posterior_std.shape, result.report.coverage.coverage.shape
        ((2,), (50,))
    """
    check_key(key)
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be an astrobayes.sbi.Prior, got {type(prior).__name__}")
    if not isinstance(compression, ScatteringCompression | AbstractEmbedding):
        raise TypeError(
            "compression must be a ScatteringCompression or an sbi AbstractEmbedding "
            f"(e.g. DiscoEmbedding), got {type(compression).__name__}"
        )
    if summary_embedding is not None and not (
        isinstance(summary_embedding, AbstractEmbedding)
        and isinstance(compression, ScatteringCompression)
    ):
        raise TypeError(
            "summary_embedding must be an sbi AbstractEmbedding, and is used only with a "
            f"ScatteringCompression; got {type(summary_embedding).__name__} with "
            f"{type(compression).__name__}"
        )
    num_simulations = check_positive_int(num_simulations, "num_simulations")
    num_tests = check_positive_int(num_tests, "num_tests")
    num_posterior_samples = check_positive_int(num_posterior_samples, "num_posterior_samples")
    if num_tests < 2:
        raise ValueError(f"num_tests must be >= 2, got {num_tests}")
    if not (isinstance(shrink, int | float) and 0 < shrink < 1):
        raise ValueError(f"shrink must be in (0, 1), got {shrink!r}")
    if tolerance is None:
        tolerance = ks_tolerance(num_tests, significance)
    elif not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    key_sim, key_test, key_train, key_draw, key_check = jax.random.split(key, 5)

    start = time.process_time()
    train = simulate_for_prior(key_sim, prior, simulator, num_simulations, throw=True)
    test = simulate_for_prior(key_test, prior, simulator, num_tests, throw=True)
    x_train, x_test = train.x, test.x
    if isinstance(compression, ScatteringCompression):
        x_train, x_test = np.asarray(compression(x_train)), np.asarray(compression(x_test))
        embedding = summary_embedding
    else:
        embedding = compression
    simulation_cpu_s = time.process_time() - start

    start = time.process_time()
    npe, info = train_npe(
        key_train,
        prior,
        train.theta,
        x_train,
        embedding=embedding,
        flow_config=flow_config,
        training_config=training_config,
        progress_fn=progress_fn,
    )
    training_cpu_s = time.process_time() - start

    draws = calibration_draws(key_draw, npe, test.theta, x_test, num_posterior_samples)
    control_draws = overconfident_draws(npe, draws, x_test, shrink)
    key_report, key_control = jax.random.split(key_check)
    options = {"significance": significance, "tolerance": tolerance}
    if draws.status.severity is Severity.FAILURE:
        report = control = None
    else:
        report = calibration_report(
            key_report,
            draws.theta_true,
            draws.samples,
            draws.log_prob_true,
            draws.log_prob_samples,
            **options,
        )
        control = calibration_report(
            key_control,
            control_draws.theta_true,
            control_draws.samples,
            control_draws.log_prob_true,
            control_draws.log_prob_samples,
            **options,
        )
    if report is None:
        status = SkySBIStatus.NON_FINITE
    elif report.status.severity is Severity.FAILURE:
        status = SkySBIStatus.NOT_CALIBRATED
    elif control.is_calibrated:
        status = SkySBIStatus.CONTROL_NOT_FLAGGED
    elif report.status.severity is Severity.WARNING:
        status = SkySBIStatus.UNDERCONFIDENT
    elif info.status.severity is not Severity.OK:
        status = SkySBIStatus.TRAINING_NOT_CONVERGED
    else:
        status = SkySBIStatus.OK
    result = SkySBIResult(
        estimator=npe,
        training=info,
        report=report,
        control=control,
        coverage_deviation=float(report.coverage.max_deviation) if report else float("nan"),
        control_deviation=float(control.coverage.max_deviation) if control else float("nan"),
        tolerance=float(tolerance),
        posterior_std=draws.samples.std(axis=1).mean(axis=0),
        prior_std=_prior_std(prior),
        num_simulations=int(train.theta.shape[0]),
        num_tests=int(test.theta.shape[0]),
        simulation_cpu_s=simulation_cpu_s,
        training_cpu_s=training_cpu_s,
        status=status,
    )
    return check(result, throw)
