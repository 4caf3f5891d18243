"""Evidence of imaging priors by proximal nested sampling, to rank priors on the same data.

For a prior ``p(x) = exp(-R(x)) / Z_R`` and the Gaussian likelihood of the imaging
posterior (complex noise, each part of standard deviation ``sigma``, ``M`` visibilities)

    ln L(x) = -||y - Phi x||^2 / (2 sigma^2) - M ln(2 pi sigma^2),

the evidence ``z = int L(x) p(x) dx`` is estimated by nested sampling (Skilling 2006)
with Metropolis-corrected proximal moves (:func:`~astrobayes.imaging.nested.proximal_nested_sampling`).

**Normalising constants.** Nested sampling never evaluates ``Z_R``: it needs draws from
the *normalised* prior (the initial live points) and moves that leave the prior,
restricted to ``{L > L_i}``, invariant (Metropolis ratios, in which ``Z_R`` cancels).
So the estimate is ``int L dp`` for the normalised prior whenever the prior is proper
and the initial live points are prior draws. The draws come from
:mod:`~astrobayes.imaging.prior_sampling` (exact for wavelets, MALA chains for the CRR,
whose image mean gets a Gaussian ``N(0, mean_scale^2)``: when the zero frequency is not
measured, as :func:`compare_priors` requires for the CRR, the evidence does not depend
on ``mean_scale``); the constraint projection from
:meth:`~astrobayes.imaging.operators.MeasurementOperator.likelihood_constraint`
(:mod:`~astrobayes.imaging.constraints`: exact for the masked FFT, whose moves are split
into a block on the measured Fourier modes and a block on the rest).

References:
    Skilling 2006, Bayesian Analysis 1, 833, "Nested sampling for general Bayesian
    computation".
    Cai, McEwen & Pereyra 2022, Statistics and Computing 32, 87, "Proximal nested
    sampling for high-dimensional Bayesian model selection" (arXiv:2106.03646).
    Goujon, Neumayer, Bohra & Unser 2022, "A neural-network-based convex regularizer
    for inverse problems" (arXiv:2211.12461).
    Roberts & Tweedie 1996, Bernoulli 2, 341 (Metropolis-adjusted Langevin algorithm).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from astrobayes._checks import check_key, check_positive_int, check_positive_number
from astrobayes._status import Severity, Status, check, worst
from astrobayes.imaging.constraints import gaussian_log_likelihood_constant
from astrobayes.imaging.nested import (
    NestedResult,
    check_live_points,
    nested_loop_program,
    run_nested_program,
)
from astrobayes.imaging.nested_kernel import build_nested_step, check_nested_settings
from astrobayes.imaging.operators import MeasurementOperator
from astrobayes.imaging.posterior import ImagingPosterior
from astrobayes.imaging.prior_sampling import (
    PriorSamples,
    evidence_prior_potential,
    sample_prior,
)

__all__ = [
    "PriorComparison",
    "PriorEvidenceResult",
    "PriorEvidenceStatus",
    "compare_priors",
    "prior_log_evidence",
    "score_prior_log_evidence",
]


class PriorEvidenceStatus(Status):
    """Verdict on one evidence estimate; values are the messages."""

    OK = (Severity.OK, "nested sampling converged and the prior draws look independent")
    NESTED_NOT_CONVERGED = (
        Severity.WARNING,
        "nested sampling did not converge (see nested.status)",
    )
    PRIOR_DRAWS_CORRELATED = (
        Severity.WARNING,
        "the MCMC prior draws have R-hat > 1.05: increase num_prior_steps",
    )
    NESTED_FAILED = (
        Severity.FAILURE,
        "failure: nested sampling failed (see nested.status)",
    )


class PriorEvidenceResult(NamedTuple):
    """Output of :func:`prior_log_evidence`.

    Attributes:
        log_evidence: ``ln z`` of the normalised prior and likelihood.
        log_evidence_error: Reported one-sigma error of ``ln z``.
        nested: The :class:`~astrobayes.imaging.nested.NestedResult`.
        prior_samples: The initial live points' provenance (:class:`PriorSamples`).
        status: :class:`PriorEvidenceStatus`.
    """

    log_evidence: float
    log_evidence_error: float
    nested: NestedResult
    prior_samples: PriorSamples
    status: PriorEvidenceStatus


def prior_log_evidence(
    key: jax.Array,
    posterior: ImagingPosterior,
    *,
    num_live: int = 100,
    num_mcmc_steps: int = 60,
    mean_scale: float = 1.0,
    num_prior_steps: int = 2000,
    initial_step: float | None = None,
    max_iterations: int = 500_000,
    remainder_fraction: float = 1e-4,
    num_delete: int = 1,
    throw: bool = False,
) -> PriorEvidenceResult:
    """``ln z = ln int L(x) p(x) dx`` for the posterior's prior, by proximal nested sampling.

    Args:
        key: JAX PRNG key.
        posterior: An imaging posterior with a masked-FFT operator, a wavelet or CRR
            prior and no positivity constraint (its normalising constant over the
            positive orthant is not handled).
        num_live: Live points.
        num_mcmc_steps: Constrained moves per replacement (each a pair of block
            updates: measured and unmeasured Fourier modes).
        mean_scale: CRR only: standard deviation of the prior on ``sum(x)/sqrt(N)``.
        num_prior_steps: CRR only: Langevin steps per initial live point.
        initial_step: Initial Langevin step (default: ``sigma^2``).
        max_iterations: Maximum dead points.
        remainder_fraction: Stopping rule of :func:`proximal_nested_sampling`.
        num_delete: Live points deleted and replaced in parallel per iteration
            (``<= num_live // 2``; see :mod:`~astrobayes.imaging.nested`).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure.

    Returns:
        :class:`PriorEvidenceResult`.

    Raises:
        TypeError: For an operator without an exact constraint projection (see
            :meth:`~astrobayes.imaging.operators.MeasurementOperator.likelihood_constraint`),
            or an unsupported prior.
        ValueError: With positivity, or bad settings.
        UnreliableResultError: With ``throw=True`` on a failure status.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> from astrobayes.imaging.posterior import imaging_posterior
        >>> from astrobayes.imaging.priors import WaveletSparsityPrior
        >>> from astrobayes.imaging.wavelets import WaveletTransform
        >>> mask = np.zeros((8, 8), bool); mask[1:3, 1:4] = True
        >>> op = fourier_mask_operator(mask)
        >>> post = imaging_posterior(op, op(np.ones((8, 8))), 0.1,
        ...                          WaveletSparsityPrior(2.0, WaveletTransform(1, 3)))
        >>> result = prior_log_evidence(
        ...     jax.random.key(0), post, num_live=10, num_mcmc_steps=2, num_delete=5)
        >>> bool(np.isfinite(result.log_evidence))
        True
    """
    check_key(key)
    if not isinstance(posterior, ImagingPosterior):
        raise TypeError(f"posterior must be an ImagingPosterior; got {type(posterior).__name__}")
    if posterior.positivity:
        raise ValueError(
            "posterior.positivity must be False: the prior's normalising constant over the "
            "positive orthant is not handled"
        )
    # every setting is checked before the (for the CRR, costly) prior draws
    settings = check_nested_settings(
        num_live,
        num_mcmc_steps=num_mcmc_steps,
        initial_step=posterior.sigma**2 if initial_step is None else initial_step,
        max_iterations=max_iterations,
        remainder_fraction=remainder_fraction,
        num_delete=num_delete,
    )
    num_live = settings.num_live
    constraint = posterior.operator.likelihood_constraint(posterior.visibilities, posterior.sigma)
    prior_potential, prior_value_and_grad = evidence_prior_potential(posterior.prior, mean_scale)
    shape = posterior.image_shape
    key_prior, key_run = jax.random.split(key)
    samples = sample_prior(
        key_prior,
        posterior.prior,
        shape,
        num_live,
        mean_scale=mean_scale,
        num_steps=num_prior_steps,
    )
    nested = _run_nested(
        key_run,
        posterior.operator,
        constraint,
        posterior.sigma,
        prior_potential,
        lambda image: prior_value_and_grad(image)[1],
        samples.images,
        settings,
        program_owner=posterior,
        program_key=(float(mean_scale), settings),
    )
    status = _evidence_status(nested, samples)
    result = PriorEvidenceResult(
        log_evidence=nested.log_evidence,
        log_evidence_error=nested.log_evidence_error,
        nested=nested,
        prior_samples=samples,
        status=status,
    )
    return check(result, throw)


#: Compiled nested-sampling loops of :func:`prior_log_evidence`, by ``(id(posterior),
#: mean_scale, settings)``; an entry goes when its posterior does (``weakref.finalize``).
#: The loop's functions close over the posterior's operator, data and prior only, and an
#: :class:`ImagingPosterior` is immutable, so a later call on the same posterior with the
#: same settings runs the same program: ``compare_priors(num_repeats=R)`` compiles once per
#: prior instead of ``R`` times.
_LOOP_PROGRAMS: dict[tuple, Callable] = {}


def _loop_program(owner, key: tuple, build: Callable[[], Callable]) -> Callable:
    full_key = (id(owner), *key)
    program = _LOOP_PROGRAMS.get(full_key)
    if program is None:
        program = _LOOP_PROGRAMS[full_key] = build()
        weakref.finalize(owner, _LOOP_PROGRAMS.pop, full_key, None)
    return program


def _run_nested(
    key,
    operator,
    constraint,
    sigma,
    prior_potential,
    prior_gradient,
    live_images,
    settings,
    *,
    program_owner=None,
    program_key: tuple = (),
) -> NestedResult:
    """Proximal nested sampling of the Gaussian likelihood of ``operator`` on images.

    ``prior_potential`` (``image -> -ln p``, or ``None`` for a score-only prior) and
    ``prior_gradient`` (``image -> grad(-ln p)``) act on ``(H, W)`` images; the sampler
    works on flattened vectors. With ``program_owner`` (an immutable object that
    determines every function passed here, with ``program_key`` the rest), the compiled
    loop is kept for later calls (:data:`_LOOP_PROGRAMS`).
    """
    live_images = np.asarray(live_images)
    shape = live_images.shape[1:]
    live = check_live_points(live_images.reshape(live_images.shape[0], -1))

    def unflatten(fn):
        return None if fn is None else (lambda v: fn(v.reshape(shape)))

    def flat_projection(v, level):
        return constraint.projection_fn(v.reshape(shape), level).reshape(v.shape)

    def flat_measured(v):
        return constraint.measured_projection_fn(v.reshape(shape)).reshape(v.shape)

    flat_log_likelihood = unflatten(constraint.log_likelihood_fn)

    def build():
        step = build_nested_step(
            flat_log_likelihood,
            unflatten(prior_potential),
            flat_projection,
            settings,
            prior_gradient_fn=lambda v: prior_gradient(v.reshape(shape)).reshape(v.shape),
            subspace_projection_fn=flat_measured
            if constraint.num_measured < math.prod(shape)
            else None,
        )
        return nested_loop_program(step, settings)

    program = (
        build()
        if program_owner is None
        else _loop_program(program_owner, (*program_key, shape), build)
    )
    return run_nested_program(
        key,
        live,
        flat_log_likelihood,
        settings,
        program,
        log_likelihood_offset=gaussian_log_likelihood_constant(operator.num_visibilities, sigma),
        throw=False,
    )


def score_prior_log_evidence(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[ArrayLike, " num_visibilities"],
    sigma: float,
    score_fn: Callable[[Float[Array, "height width"]], Float[Array, "height width"]],
    prior_draws: Float[ArrayLike, "num_live height width"],
    *,
    num_mcmc_steps: int = 60,
    initial_step: float | None = None,
    max_iterations: int = 500_000,
    remainder_fraction: float = 1e-4,
    num_delete: int = 1,
    throw: bool = False,
) -> PriorEvidenceResult:
    r"""``ln z`` for a prior known only through its score, e.g. a learned denoiser's.

    Nested sampling needs draws from the normalised prior (``prior_draws``, one per live
    point) and moves that leave the constrained prior invariant, never the prior's
    normalising constant. For a denoiser :math:`D_\sigma` the prior is the data
    distribution smoothed by :math:`N(0, \sigma^2 I)`, whose score Tweedie's formula
    gives (:func:`astrobayes.imaging.denoisers.score_function`) and whose exact draws
    are held-out images plus :math:`\sigma` noise. The constrained moves are the
    Metropolis-adjusted proximal Langevin moves of
    :func:`~astrobayes.imaging.nested.proximal_nested_sampling` with the potential
    difference taken by the trapezoid rule along each move (exact for a Gaussian prior;
    third-order in the step otherwise; with a learned score that is not exactly a
    gradient, the moves are approximate and the evidence is that of the score's
    nearest conservative field). So the ranking of priors by ``ln z`` needs no ground
    truth (McEwen et al. 2023).

    Args:
        key: JAX PRNG key.
        operator: A measurement operator with an exact constraint projection
            (:class:`~astrobayes.imaging.operators.FourierMaskOperator`).
        visibilities: Data ``y``.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        score_fn: ``image (H, W) -> grad ln p(image)``, pure and ``jit``-able.
        prior_draws: ``(num_live, H, W)`` independent draws from the prior whose score
            ``score_fn`` is.
        num_mcmc_steps: Constrained moves per replacement.
        initial_step: Initial Langevin step (default ``sigma^2``).
        max_iterations: Maximum dead points.
        remainder_fraction: Stopping rule of
            :func:`~astrobayes.imaging.nested.proximal_nested_sampling`.
        num_delete: Live points deleted and replaced in parallel per iteration.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` on a failure.

    Returns:
        :class:`PriorEvidenceResult` (``prior_samples.is_exact`` is ``True``: the draws
        are the caller's).

    Raises:
        TypeError: If ``score_fn`` is not callable or the operator has no exact
            constraint projection.
        ValueError: If ``prior_draws`` is not a finite ``(N >= 2, H, W)`` array, the
            score is not finite at the draws, or a setting is out of range.

    References:
        McEwen, Liaudat, Price, Cai & Pereyra 2023, "Proximal nested sampling with
        data-driven priors for physical scientists" (arXiv:2307.00056).

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> mask = np.zeros((4, 4), bool); mask[0, 1:3] = True
        >>> op = fourier_mask_operator(mask)
        >>> draws = jax.random.normal(jax.random.key(1), (10, 4, 4))
        >>> result = score_prior_log_evidence(
        ...     jax.random.key(0), op, op(draws[0]), 0.5, lambda x: -x, draws,
        ...     num_mcmc_steps=3, num_delete=5)
        >>> bool(np.isfinite(result.log_evidence))
        True
    """
    check_key(key)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable; got {type(score_fn).__name__}")
    if not isinstance(operator, MeasurementOperator):
        raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")
    check_positive_number(sigma, "sigma")
    draws = np.asarray(prior_draws, dtype=float)
    if draws.ndim != 3 or draws.shape[0] < 2:
        raise ValueError(
            f"prior_draws must have shape (num_live >= 2, height, width); got {draws.shape}"
        )
    if not np.all(np.isfinite(draws)):
        raise ValueError("prior_draws must be finite; they have NaN or inf values")
    settings = check_nested_settings(
        draws.shape[0],
        num_mcmc_steps=num_mcmc_steps,
        initial_step=float(sigma) ** 2 if initial_step is None else initial_step,
        max_iterations=max_iterations,
        remainder_fraction=remainder_fraction,
        num_delete=num_delete,
    )
    constraint = operator.likelihood_constraint(visibilities, float(sigma))
    dtype = jnp.zeros(()).dtype
    if not bool(jnp.all(jnp.isfinite(jax.vmap(score_fn)(jnp.asarray(draws[:2], dtype))))):
        raise ValueError("score_fn is not finite at the prior draws")
    nested = _run_nested(
        key,
        operator,
        constraint,
        float(sigma),
        None,
        lambda image: -score_fn(image),
        draws,
        settings,
    )
    samples = PriorSamples(
        images=jnp.asarray(draws, dtype),
        is_exact=True,
        acceptance_rate=float("nan"),
        rhat=float("nan"),
        num_steps=0,
    )
    return check(
        PriorEvidenceResult(
            log_evidence=nested.log_evidence,
            log_evidence_error=nested.log_evidence_error,
            nested=nested,
            prior_samples=samples,
            status=_evidence_status(nested, samples),
        ),
        throw,
    )


def _evidence_status(nested: NestedResult, samples: PriorSamples) -> PriorEvidenceStatus:
    if nested.status.is_failure:
        return PriorEvidenceStatus.NESTED_FAILED
    if not nested.status.is_ok:
        return PriorEvidenceStatus.NESTED_NOT_CONVERGED
    if not samples.is_exact and not (samples.rhat < 1.05):
        return PriorEvidenceStatus.PRIOR_DRAWS_CORRELATED
    return PriorEvidenceStatus.OK


class PriorComparison(NamedTuple):
    """Output of :func:`compare_priors`.

    Attributes:
        names: Prior names, in the order given.
        log_evidence: ``(num_priors, num_repeats)`` estimates of ``ln z``.
        log_evidence_error: ``(num_priors, num_repeats)`` reported errors.
        mean_log_evidence: ``(num_priors,)`` mean over repeats.
        mean_log_evidence_error: ``(num_priors,)`` error of that mean: the larger of the
            reported error over ``sqrt(num_repeats)`` and the standard error of the
            repeats.
        log_bayes_factor: ``(num_priors,)`` ``ln z_i - ln z_0`` (the first prior is the
            reference).
        log_bayes_factor_error: Its error (the two means' errors in quadrature).
        best: Name of the prior with the largest mean ``ln z``.
        results: ``(num_priors, num_repeats)`` nested tuple of
            :class:`PriorEvidenceResult`.
        status: The worst :class:`PriorEvidenceStatus` of the runs (a comparison is as
            good as its worst estimate).
    """

    names: tuple[str, ...]
    log_evidence: Float[np.ndarray, "num_priors num_repeats"]
    log_evidence_error: Float[np.ndarray, "num_priors num_repeats"]
    mean_log_evidence: Float[np.ndarray, " num_priors"]
    mean_log_evidence_error: Float[np.ndarray, " num_priors"]
    log_bayes_factor: Float[np.ndarray, " num_priors"]
    log_bayes_factor_error: Float[np.ndarray, " num_priors"]
    best: str
    results: tuple
    status: PriorEvidenceStatus


def compare_priors(
    key: jax.Array,
    posteriors: Mapping[str, ImagingPosterior],
    *,
    num_repeats: int = 3,
    on_result: Callable[[str, int, PriorEvidenceResult], None] | None = None,
    throw: bool = False,
    **evidence_options,
) -> PriorComparison:
    """Rank priors on the same data by their evidence ``ln z`` (repeated runs).

    Args:
        key: JAX PRNG key (each prior and repeat gets its own subkey).
        posteriors: ``{name: posterior}``, all with the same operator, data and noise.
        num_repeats: Independent nested-sampling runs per prior (their spread checks
            the reported error).
        on_result: Optional ``(name, repeat, result) -> None`` called after each run
            (e.g. to show progress of a long comparison); its return value is ignored.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            comparison) when the worst run failed.
        **evidence_options: Passed to :func:`prior_log_evidence`.

    Returns:
        :class:`PriorComparison`.

    Raises:
        ValueError: With fewer than two priors, posteriors on different data, or a
            CRR prior when the zero frequency is measured.
        UnreliableResultError: With ``throw=True`` when a run failed.
    """
    check_key(key)
    if len(posteriors) < 2:
        raise ValueError(f"posteriors must hold at least two priors; got {len(posteriors)}")
    num_repeats = check_positive_int(num_repeats, "num_repeats")
    names = tuple(posteriors)
    first = posteriors[names[0]]
    for name in names[1:]:
        other = posteriors[name]
        same = (
            other.image_shape == first.image_shape
            and other.sigma == first.sigma
            and other.operator.num_visibilities == first.operator.num_visibilities
            and np.array_equal(np.asarray(other.visibilities), np.asarray(first.visibilities))
        )
        if not same:
            raise ValueError(f"posteriors[{name!r}] does not hold the same data as {names[0]!r}")
    from astrobayes.imaging.crr import ConvexRidgePrior

    for name, posterior in posteriors.items():
        if (
            isinstance(posterior.prior, ConvexRidgePrior)
            and posterior.operator.measures_zero_frequency()
        ):
            raise ValueError(
                f"posteriors[{name!r}]: the zero frequency is measured, so the CRR's "
                "arbitrary prior on the image mean would enter the evidence; drop it "
                "from the mask"
            )
    log_z = np.zeros((len(names), num_repeats))
    errors = np.zeros_like(log_z)
    results = []
    for index, name in enumerate(names):
        row = []
        for repeat in range(num_repeats):
            result = prior_log_evidence(
                jax.random.fold_in(jax.random.fold_in(key, index), repeat),
                posteriors[name],
                **evidence_options,
            )
            log_z[index, repeat] = result.log_evidence
            errors[index, repeat] = result.log_evidence_error
            row.append(result)
            if on_result is not None:
                on_result(name, repeat, result)
        results.append(tuple(row))
    with np.errstate(invalid="ignore"):  # a failed run (non-finite ln z) is in .status
        mean = log_z.mean(axis=1)
        reported = np.sqrt(np.mean(errors**2, axis=1) / num_repeats)
        spread = (
            log_z.std(axis=1, ddof=1) / math.sqrt(num_repeats)
            if num_repeats > 1
            else np.zeros_like(mean)
        )
        mean_error = np.maximum(reported, spread)
        log_b = mean - mean[0]
        log_b_error = np.sqrt(mean_error**2 + mean_error[0] ** 2)
        log_b_error[0] = 0.0
    comparison = PriorComparison(
        names=names,
        log_evidence=log_z,
        log_evidence_error=errors,
        mean_log_evidence=mean,
        mean_log_evidence_error=mean_error,
        log_bayes_factor=log_b,
        log_bayes_factor_error=log_b_error,
        best=names[int(np.argmax(mean))],
        results=tuple(results),
        status=worst(result.status for row in results for result in row),
    )
    return check(comparison, throw)
