"""Plug-and-play Langevin posterior sampling with a score prior (PnP-ULA, PnP-MALA).

A learned (or any) Gaussian denoiser ``D_eps`` defines, through Tweedie's formula, the
score of the prior smoothed by ``N(0, eps I)``::

    E[x | z] = z + eps grad log p_eps(z)   =>   s_eps(x) = grad log p_eps(x) = (D_eps(x) - x) / eps

PnP-ULA (Laumont et al. 2022, Algorithm 1) is the unadjusted Langevin algorithm on the
posterior ``p(y | x) p_eps(x)^alpha``, with a Moreau-Yosida pull towards a convex set
``C`` (positivity or a box)::

    x' = x + delta grad log p(y | x) + alpha delta s_eps(x) + (delta / lam) (Pi_C(x) - x)
           + sqrt(2 delta) z,      z ~ N(0, I)

Here ``s_eps`` is any callable ``x -> score`` (a learned denoiser's Tweedie score, an
analytic one, ...), ``grad log p(y | x) = -Phi^H (Phi x - y) / sigma^2`` with any
:class:`~astrobayes.imaging.operators.MeasurementOperator` (masked FFT, NUFFT), and the
step follows Laumont et al.'s rule ``delta < Lip^-1 / 3`` with
``Lip = ||Phi||^2 / sigma^2 + alpha L_eps + 1 / lam`` (``L_eps`` the Lipschitz constant of
the score, ``1 / lam`` only when a set ``C`` is given). When the prior potential is known
(``score = -grad potential``), ``method="mala"`` adds the Metropolis-Hastings correction,
so the chain targets ``p(y | x) p_eps(x)^alpha exp(-d(x, C)^2 / (2 lam))`` without the
discretisation bias of ULA.

Chains are vectorised (``vmap``, or ``lax.map`` when the operator does not support
``vmap``), iterations are a ``lax.scan``; thinning, burn-in, online per-pixel moments and
the recorded ``summary_fn`` follow :func:`~astrobayes.imaging.mcmc.proximal_mcmc`, and
R-hat / ESS are :mod:`astrobayes.diagnostics`' ones.

References:
    Laumont, De Bortoli, Almansa, Delon, Durmus & Pereyra 2022, SIAM J. Imaging Sci. 15,
    701, "Bayesian imaging using Plug & Play priors: when Langevin meets Tweedie"
    (arXiv:2103.04715).
    Efron 2011, JASA 106, 1602, "Tweedie's formula and selection bias".
    Roberts & Tweedie 1996, Bernoulli 2, 341 (MALA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._types import ProgressFn
from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.imaging.operator_norm import operator_norm
from astrobayes.imaging.operators import MeasurementOperator

__all__ = [
    "PnPResult",
    "PnPStatus",
    "pnp_step_size",
    "pnp_ula",
    "pnp_ula_batch",
    "score_lipschitz_estimate",
]

ScoreFn = Callable[[Float[Array, "height width"]], Float[Array, "height width"]]


def score_lipschitz_estimate(
    score_fn: ScoreFn,
    images: Float[Array, "num_images height width"],
    *,
    num_iterations: int = 100,
) -> float:
    """Largest local Lipschitz constant ``max ||J_s(x)||_2`` of a score over some images.

    The spectral norm of the Jacobian at each image is found by power iteration on
    ``J^T J`` (:func:`~astrobayes.imaging.operator_norm.operator_norm`, ``J`` by
    ``jax.linearize``). This is a *local* estimate: a learned score can be steeper
    elsewhere, so use images typical of the chain (e.g. prior draws, noisy data).

    Args:
        score_fn: The score.
        images: Images at which to evaluate the Jacobian, ``(num_images, height, width)``.
        num_iterations: Power iterations per image.

    Returns:
        The largest norm found.

    Raises:
        ValueError: If ``images`` is not 3-d or a norm is not finite.

    Example:
        >>> import jax.numpy as jnp
        >>> round(score_lipschitz_estimate(lambda x: -3.0 * x, jnp.ones((1, 4, 4))), 4)
        3.0

    """
    images = jnp.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (num_images, height, width); got {images.shape}")
    shape = images.shape[1:]
    largest = 0.0
    for image in images:
        _, jvp = jax.linearize(score_fn, image)
        transpose = jax.linear_transpose(jvp, image)

        def normal(v, jvp=jvp, transpose=transpose, dtype=image.dtype):
            # operator_norm iterates in JAX's default float (float64 under x64); the
            # linearisation takes tangents in the image's dtype
            return transpose(jvp(v.astype(dtype)))[0].astype(v.dtype)

        norm = operator_norm(normal, shape, num_iterations=num_iterations, tolerance=1e-5).norm
        if not np.isfinite(norm):
            raise ValueError("the score's Jacobian has a non-finite norm at one of the images")
        largest = max(largest, norm)
    return float(largest)


def pnp_step_size(
    likelihood_lipschitz: float,
    score_lipschitz: float,
    *,
    alpha: float = 1.0,
    smoothing: float | None = None,
) -> float:
    """Laumont et al.'s step bound ``delta = Lip^-1 / 3``, ``Lip = L_y + alpha L_eps + 1 / lam``.

    Args:
        likelihood_lipschitz: ``L_y = ||Phi||^2 / sigma^2``.
        score_lipschitz: ``L_eps``, the Lipschitz constant of the score.
        alpha: Prior weight.
        smoothing: ``lam`` of the projection term (``None``: no set ``C``).

    Returns:
        The bound on the step.

    Example:
        >>> pnp_step_size(2.0, 1.0)
        0.1111111111111111

    """
    lipschitz = likelihood_lipschitz + alpha * score_lipschitz
    if smoothing is not None:
        lipschitz += 1.0 / smoothing
    return 1.0 / (3.0 * lipschitz)


class PnPStatus(Status):
    """Verdict of :func:`pnp_ula`; values are the messages."""

    CONVERGED = (
        Severity.OK,
        "max split R-hat < 1.01 and min ESS >= 100 on the recorded summaries",
    )
    NOT_CONVERGED = (
        Severity.WARNING,
        "R-hat >= 1.01 or ESS < 100 on some summary: run longer or thin more",
    )
    STEP_ABOVE_BOUND = (
        Severity.WARNING,
        "the step exceeds Laumont et al.'s bound Lip^-1 / 3: ULA's bias is not controlled",
    )
    LOW_ACCEPTANCE = (
        Severity.WARNING,
        "MALA accepted fewer than 10% of the proposals: lower step_fraction",
    )
    NON_FINITE_SCORE = (
        Severity.FAILURE,
        "failure: the score is non-finite at the initial image; nothing was run",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "failure: the chains produced non-finite values (a non-finite score or a diverging "
        "chain); lower step_fraction or check the score",
    )
    DIVERGED = (
        Severity.FAILURE,
        "failure: a chain diverged (|x| beyond divergence_bound); lower step_fraction",
    )
    STEP_TOO_LARGE = (
        Severity.FAILURE,
        "failure: the step exceeds 2 / Lip, where the Langevin recursion is unstable "
        "on the quadratic part of the potential",
    )


class PnPResult(NamedTuple):
    """Output of :func:`pnp_ula`.

    Attributes:
        summaries: ``(num_chains, num_samples, dim)`` recorded ``summary_fn`` values.
        mean: Per-pixel posterior mean (all chains).
        variance: Per-pixel posterior variance.
        rhat: Split R-hat of each summary dimension.
        ess: Effective sample size of each summary dimension (all chains).
        step_size: Step ``delta``.
        smoothing: ``lam`` of the projection term (``nan`` without a set ``C``).
        likelihood_lipschitz: ``L_y = ||Phi||^2 / sigma^2``.
        score_lipschitz: ``L_eps`` used for the step.
        acceptance_rate: MALA's mean acceptance rate (``nan`` for ULA).
        max_abs: Largest ``|x|`` each chain reached at its recorded samples.
        num_score_evaluations: Score evaluations per chain.
        status: :class:`PnPStatus`.
    """

    summaries: Float[Array, "num_chains num_samples dim"]
    mean: Float[Array, "height width"]
    variance: Float[Array, "height width"]
    rhat: Float[np.ndarray, " dim"]
    ess: Float[np.ndarray, " dim"]
    step_size: float
    smoothing: float
    likelihood_lipschitz: float
    score_lipschitz: float
    acceptance_rate: float
    max_abs: Float[np.ndarray, " num_chains"]
    num_score_evaluations: int
    status: PnPStatus


def _check_box(box):
    if box is None:
        return None
    if not isinstance(box, tuple | list) or len(box) != 2:
        raise ValueError(f"box must be a pair (low, high) with None for no bound; got {box!r}")
    low = -np.inf if box[0] is None else float(box[0])
    high = np.inf if box[1] is None else float(box[1])
    if np.isnan(low) or np.isnan(high) or not low < high:
        raise ValueError(f"box must satisfy low < high; got {box!r}")
    return (low, high)


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


def checked_visibilities(operator, visibilities, *, batch: bool, dtype) -> Array:
    """``visibilities`` as a complex array of the operator's size, or a clear ``ValueError``.

    Args:
        operator: the measurement operator (``num_visibilities``).
        visibilities: ``(num_visibilities,)``, or ``(num_datasets, num_visibilities)``
            with ``batch=True``.
        batch: whether a leading data-set axis is expected.
        dtype: the real dtype of the run; the result is its complex counterpart.

    Returns:
        The finite visibilities, cast to ``result_type(dtype, complex64)``.
    """
    data = jnp.asarray(visibilities)
    expected = (operator.num_visibilities,)
    if (batch and (data.ndim != 2 or data.shape[1:] != expected)) or (
        not batch and data.shape != expected
    ):
        wanted = f"(num_datasets, {expected[0]})" if batch else f"({expected[0]},)"
        raise ValueError(f"visibilities must have shape {wanted}; got {data.shape}")
    if not bool(jnp.all(jnp.isfinite(data))):
        raise ValueError("visibilities must be finite")
    return data.astype(jnp.result_type(dtype, jnp.complex64))


def pnp_ula(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    score_fn: ScoreFn,
    initial_image: Float[Array, "height width"],
    *,
    score_lipschitz: float,
    alpha: float = 1.0,
    box: tuple[float | None, float | None] | None = None,
    smoothing: float | None = None,
    method: str = "ula",
    potential_fn: Callable[[Float[Array, "height width"]], Float[Array, ""]] | None = None,
    num_chains: int = 4,
    num_samples: int = 500,
    num_warmup: int = 1000,
    thinning: int = 10,
    step_fraction: float = 1.0,
    step_size: float | None = None,
    divergence_bound: float | None = None,
    summary_fn: Callable[[Float[Array, "height width"]], Float[Array, " dim"]] | None = None,
    loop: str = "scan",
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> PnPResult:
    """Sample ``p(x | y) ∝ p(y | x) p_eps(x)^alpha`` with PnP-ULA (or PnP-MALA), several chains.

    Args:
        key: JAX PRNG key.
        operator: The measurement operator ``Phi``.
        visibilities: Data ``y``, shape ``(operator.num_visibilities,)``.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        score_fn: ``x -> grad log p_eps(x)`` on one image (e.g. the Tweedie score of
            a denoiser: :func:`astrobayes.imaging.denoisers.score_function`); an equinox
            Module is passed through ``jit`` as a PyTree.
        initial_image: Starting image of every chain.
        score_lipschitz: ``L_eps``, a Lipschitz constant of ``score_fn`` (for a denoiser
            whose residual ``x - D_eps(x)`` is ``L``-Lipschitz, ``L / eps``; see
            :func:`score_lipschitz_estimate`).
        alpha: Prior weight (1 for the Bayesian model ``p_eps``).
        box: ``(low, high)`` bounds of the set ``C`` (``None`` for an open side), e.g.
            ``(0, None)`` for positivity; ``None``: no set.
        smoothing: ``lam`` of the projection term; default ``1 / (L_y + alpha L_eps)``.
        method: ``"ula"`` (PnP-ULA) or ``"mala"`` (Metropolis-adjusted; needs
            ``potential_fn``).
        potential_fn: ``x -> -log p_eps(x)`` up to a constant, with ``score_fn`` its
            negative gradient (only for ``"mala"``).
        num_chains: Number of chains.
        num_samples: Kept samples per chain (after thinning).
        num_warmup: Discarded iterations per chain (burn-in), rounded up to a multiple
            of ``thinning``.
        thinning: Iterations per kept sample.
        step_fraction: Fraction of the step bound :func:`pnp_step_size`.
        step_size: An explicit step instead (checked against the bounds).
        divergence_bound: ``|x|`` beyond which a chain counts as diverged; default
            ``10^3 (1 + max|x_0| + max|Phi^H y| / ||Phi||^2)``.
        summary_fn: ``x -> vector`` recorded at each kept sample; default the image
            flattened.
        loop: ``"scan"`` (default): all iterations in one compiled ``lax.scan``;
            ``"python"``: one compiled step per iteration, looped in Python -- the same
            chains (same random numbers), much faster on a CPU for a convolutional
            score (a learned denoiser), where XLA runs convolutions in a ``scan`` body
            slowly.
        progress_fn: Called as ``progress_fn("sampling", done, total)`` in iterations
            of all chains: after every ``thinning`` iterations with ``loop="python"``,
            once at the end with ``"scan"`` (one compiled program).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        :class:`PnPResult`.

    Raises:
        ValueError: On bad shapes or settings.
        TypeError: If ``operator`` is not a ``MeasurementOperator`` or a count is not an
            integer.
        UnreliableResultError: With ``throw=True`` on a failure status.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.ones((4, 4), dtype=bool))
        >>> result = pnp_ula(jax.random.key(0), op, op(np.zeros((4, 4))), 1.0,
        ...                  lambda x: -x, np.zeros((4, 4)), score_lipschitz=1.0,
        ...                  num_samples=50, num_warmup=50, thinning=2)
        >>> result.summaries.shape, round(result.step_size, 4)
        ((4, 50, 16), 0.1667)

    """
    return _pnp(
        key,
        operator,
        visibilities,
        sigma,
        score_fn,
        initial_image,
        score_lipschitz=score_lipschitz,
        alpha=alpha,
        box=box,
        smoothing=smoothing,
        method=method,
        potential_fn=potential_fn,
        num_chains=num_chains,
        num_samples=num_samples,
        num_warmup=num_warmup,
        thinning=thinning,
        step_fraction=step_fraction,
        step_size=step_size,
        divergence_bound=divergence_bound,
        summary_fn=summary_fn,
        loop=loop,
        progress_fn=progress_fn,
        throw=throw,
        batch=False,
    )


def pnp_ula_batch(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[Array, "num_datasets num_visibilities"],
    sigma: float,
    score_fn: ScoreFn,
    initial_image: Float[Array, "height width"],
    *,
    score_lipschitz: float,
    alpha: float = 1.0,
    box: tuple[float | None, float | None] | None = None,
    smoothing: float | None = None,
    method: str = "ula",
    potential_fn: Callable[[Float[Array, "height width"]], Float[Array, ""]] | None = None,
    num_chains: int = 4,
    num_samples: int = 500,
    num_warmup: int = 1000,
    thinning: int = 10,
    step_fraction: float = 1.0,
    step_size: float | None = None,
    divergence_bound: float | None = None,
    summary_fn: Callable[[Float[Array, "height width"]], Float[Array, " dim"]] | None = None,
    loop: str = "scan",
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> tuple[PnPResult, ...]:
    """:func:`pnp_ula` on several data sets at once (one compiled program, ``vmap`` over them).

    Useful for calibration studies (many truths, one operator and prior). Arguments are
    those of :func:`pnp_ula` except ``visibilities``, of shape
    ``(num_datasets, num_visibilities)``; data set ``i`` uses the key
    ``fold_in(key, i)``. ``divergence_bound`` defaults to the bound of the first data set.

    Returns:
        One :class:`PnPResult` per data set.

    Raises:
        ValueError: On bad shapes or settings.
        UnreliableResultError: With ``throw=True`` on a failure status of any data set.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.ones((4, 4), dtype=bool))
        >>> data = np.zeros((3, 16), complex)
        >>> results = pnp_ula_batch(jax.random.key(0), op, data, 1.0, lambda x: -x,
        ...                         np.zeros((4, 4)), score_lipschitz=1.0,
        ...                         num_samples=20, num_warmup=20, thinning=2)
        >>> len(results), results[0].summaries.shape
        (3, (4, 20, 16))

    """
    return _pnp(
        key,
        operator,
        visibilities,
        sigma,
        score_fn,
        initial_image,
        score_lipschitz=score_lipschitz,
        alpha=alpha,
        box=box,
        smoothing=smoothing,
        method=method,
        potential_fn=potential_fn,
        num_chains=num_chains,
        num_samples=num_samples,
        num_warmup=num_warmup,
        thinning=thinning,
        step_fraction=step_fraction,
        step_size=step_size,
        divergence_bound=divergence_bound,
        summary_fn=summary_fn,
        loop=loop,
        progress_fn=progress_fn,
        throw=throw,
        batch=True,
    )


def _pnp(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    score_fn: ScoreFn,
    initial_image: Float[Array, "height width"],
    *,
    score_lipschitz: float,
    alpha: float = 1.0,
    box: tuple[float | None, float | None] | None = None,
    smoothing: float | None = None,
    method: str = "ula",
    potential_fn: Callable[[Float[Array, "height width"]], Float[Array, ""]] | None = None,
    num_chains: int = 4,
    num_samples: int = 500,
    num_warmup: int = 1000,
    thinning: int = 10,
    step_fraction: float = 1.0,
    step_size: float | None = None,
    divergence_bound: float | None = None,
    summary_fn: Callable[[Float[Array, "height width"]], Float[Array, " dim"]] | None = None,
    loop: str = "scan",
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
    batch: bool = False,
):
    check_key(key)
    if not isinstance(operator, MeasurementOperator):
        raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable; got {type(score_fn).__name__}")
    if method not in ("ula", "mala"):
        raise ValueError(f"method must be 'ula' or 'mala'; got {method!r}")
    if loop not in ("scan", "python"):
        raise ValueError(f"loop must be 'scan' or 'python'; got {loop!r}")
    if method == "mala" and potential_fn is None:
        raise ValueError("method='mala' needs potential_fn (the prior potential -log p_eps)")
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples", minimum=4)
    thinning = check_positive_int(thinning, "thinning")
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=0)
    sigma = _number(sigma, "sigma")
    score_lipschitz = _number(score_lipschitz, "score_lipschitz")
    alpha = _number(alpha, "alpha")
    step_fraction = _number(step_fraction, "step_fraction")
    box = _check_box(box)
    dtype = jnp.zeros(()).dtype
    x0 = jnp.asarray(initial_image, dtype)
    if x0.shape != operator.image_shape:
        raise ValueError(f"initial_image must have shape {operator.image_shape}; got {x0.shape}")
    data = checked_visibilities(operator, visibilities, batch=batch, dtype=dtype)

    norm = operator.norm_upper_bound()
    likelihood_lipschitz = norm**2 / sigma**2
    if box is not None:
        smoothing = (
            1.0 / (likelihood_lipschitz + alpha * score_lipschitz)
            if smoothing is None
            else _number(smoothing, "smoothing")
        )
    else:
        smoothing = None
    bound = pnp_step_size(likelihood_lipschitz, score_lipschitz, alpha=alpha, smoothing=smoothing)
    step = step_fraction * bound if step_size is None else _number(step_size, "step_size")
    if divergence_bound is None:
        dirty = (
            float(
                jnp.max(jnp.abs(operator.adjoint(data.reshape(-1, operator.num_visibilities)[0])))
            )
            / norm**2
        )
        divergence_bound = 1e3 * (1.0 + float(jnp.max(jnp.abs(x0))) + dirty)
    divergence_bound = _number(divergence_bound, "divergence_bound")

    score0 = score_fn(x0)
    if not bool(jnp.all(jnp.isfinite(score0))):
        summary_dim = int(np.size((summary_fn or _flatten)(x0)))
        nan = np.full(summary_dim, np.nan)
        result = PnPResult(
            summaries=jnp.full((num_chains, 0, summary_dim), jnp.nan, dtype),
            mean=jnp.full(x0.shape, jnp.nan, dtype),
            variance=jnp.full(x0.shape, jnp.nan, dtype),
            rhat=nan,
            ess=nan,
            step_size=float(step),
            smoothing=float("nan") if smoothing is None else float(smoothing),
            likelihood_lipschitz=float(likelihood_lipschitz),
            score_lipschitz=float(score_lipschitz),
            acceptance_rate=float("nan"),
            max_abs=np.full(num_chains, np.nan),
            num_score_evaluations=0,
            status=PnPStatus.NON_FINITE_SCORE,
        )
        if batch:
            return tuple(check(result, throw) for _ in range(data.shape[0]))
        return check(result, throw)

    settings = _Settings(
        alpha=jnp.asarray(alpha, dtype),
        low=jnp.asarray(-np.inf if box is None else box[0], dtype),
        high=jnp.asarray(np.inf if box is None else box[1], dtype),
        inverse_smoothing=jnp.asarray(0.0 if smoothing is None else 1.0 / smoothing, dtype),
        method=method,
        num_warmup=num_warmup,
        thinning=thinning,
        num_samples=num_samples,
        vmap_chains=operator.supports_vmap,
    )
    if batch:
        keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i), num_chains))(
            jnp.arange(data.shape[0])
        )
    else:
        keys, data = jax.random.split(key, num_chains)[None], data[None]
    arguments = (
        keys,
        x0,
        operator,
        data,
        jnp.asarray(sigma, dtype),
        jnp.asarray(step, dtype),
        score_fn,
        potential_fn,
        summary_fn,
        settings,
    )
    total = data.shape[0] * settings.thinning * (-(-num_warmup // thinning) + num_samples)
    if loop == "scan":
        outputs = _run_datasets(*arguments)
        if progress_fn is not None:
            jax.block_until_ready(outputs)
            progress_fn("sampling", total, total)
    else:
        outputs = _run_datasets_python(*arguments, progress_fn=progress_fn)
    results = []
    for index in range(data.shape[0]):
        summaries, means, variances, max_abs, accepted = (o[index] for o in outputs)
        mean = jnp.mean(means, axis=0)
        variance = jnp.mean(variances, axis=0) + jnp.var(means, axis=0)
        array = np.asarray(summaries, np.float64)
        max_abs = np.asarray(max_abs, np.float64)
        finite = bool(np.all(np.isfinite(array)) and np.all(np.isfinite(np.asarray(mean))))
        if finite:
            rhat = split_rhat(array)
            ess = effective_sample_size(array)
        else:  # diagnostics of non-finite draws mean nothing (and NumPy would warn)
            rhat = ess = np.full(array.shape[2], np.nan)
        converged = bool(np.all(rhat < 1.01) and np.all(ess >= 100))
        lipschitz = 1.0 / (3.0 * bound)
        acceptance = float(np.mean(np.asarray(accepted))) if method == "mala" else float("nan")
        if step > 2.0 / lipschitz:
            status = PnPStatus.STEP_TOO_LARGE
        elif not finite:
            status = PnPStatus.NOT_FINITE
        elif np.any(max_abs > divergence_bound):
            status = PnPStatus.DIVERGED
        elif method == "ula" and step > bound * (1 + 1e-9):
            status = PnPStatus.STEP_ABOVE_BOUND
        elif method == "mala" and acceptance < 0.1:
            status = PnPStatus.LOW_ACCEPTANCE
        elif not converged:
            status = PnPStatus.NOT_CONVERGED
        else:
            status = PnPStatus.CONVERGED
        result = PnPResult(
            summaries=summaries,
            mean=mean,
            variance=variance,
            rhat=rhat,
            ess=ess,
            step_size=float(step),
            smoothing=float("nan") if smoothing is None else float(smoothing),
            likelihood_lipschitz=float(likelihood_lipschitz),
            score_lipschitz=float(score_lipschitz),
            acceptance_rate=acceptance,
            max_abs=max_abs,
            num_score_evaluations=thinning * (-(-num_warmup // thinning) + num_samples),
            status=status,
        )
        results.append(check(result, throw))
    return tuple(results) if batch else results[0]


class _Settings(NamedTuple):
    # arrays are traced (one compiled program with or without a box); the rest is static
    alpha: Array
    low: Array
    high: Array
    inverse_smoothing: Array
    method: str
    num_warmup: int
    thinning: int
    num_samples: int
    vmap_chains: bool


def _flatten(x):
    return x.reshape(-1)


def _log_target(x, operator, data, sigma, potential_fn, settings):
    residual = operator(x) - data
    value = -jnp.sum(jnp.real(residual) ** 2 + jnp.imag(residual) ** 2) / (2 * sigma**2)
    value = value - settings.alpha * potential_fn(x)
    distance = x - jnp.clip(x, settings.low, settings.high)
    return value - jnp.sum(distance**2) * settings.inverse_smoothing / 2


def _drift(x, operator, data, sigma, score_fn, settings):
    drift = -operator.adjoint(operator(x) - data) / sigma**2 + settings.alpha * score_fn(x)
    projection = jnp.clip(x, settings.low, settings.high) - x
    return drift + projection * settings.inverse_smoothing


def _kernel(key, x, operator, data, sigma, step, score_fn, potential_fn, settings):
    """One PnP-ULA (or PnP-MALA) step of one chain: ``(new_x, accepted)``."""

    def drift(x):
        return _drift(x, operator, data, sigma, score_fn, settings)

    if settings.method != "mala":
        noise = jax.random.normal(key, x.shape, x.dtype)
        return x + step * drift(x) + jnp.sqrt(2 * step) * noise, jnp.asarray(1.0, x.dtype)
    noise_key, accept_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, x.shape, x.dtype)
    proposal = x + step * drift(x) + jnp.sqrt(2 * step) * noise
    forward = -jnp.sum(noise**2) / 2  # ||proposal - x - step drift(x)||^2 / (4 step)
    backward = -jnp.sum((x - proposal - step * drift(proposal)) ** 2) / (4 * step)
    log_ratio = (
        _log_target(proposal, operator, data, sigma, potential_fn, settings)
        - _log_target(x, operator, data, sigma, potential_fn, settings)
        + backward
        - forward
    )
    accept = jnp.log(jax.random.uniform(accept_key, (), x.dtype)) < log_ratio
    return jnp.where(accept, proposal, x), accept.astype(x.dtype)


def _run_chains(
    keys, x0, operator, data, sigma, step, score_fn, potential_fn, summary_fn, settings
):
    summary_fn = summary_fn or _flatten

    def kernel(key, x):
        return _kernel(key, x, operator, data, sigma, step, score_fn, potential_fn, settings)

    # one scan over blocks of ``thinning`` steps (the burn-in blocks first), so the kernel
    # is compiled once: nested or consecutive scans of it doubled the compile time
    num_warmup_blocks = -(-settings.num_warmup // settings.thinning)

    def run_chain(chain_key, x):
        def one(x, k):
            x, a = kernel(k, x)
            return x, a

        def block(carry, inputs):
            x, mean, m2, count, accepted, largest = carry
            index, k = inputs
            x, a = jax.lax.scan(one, x, jax.random.split(k, settings.thinning))
            keep = (index >= num_warmup_blocks).astype(x.dtype)
            count = count + keep
            delta = x - mean
            mean = mean + keep * delta / jnp.maximum(count, 1)
            m2 = m2 + keep * delta * (x - mean)
            accepted = accepted + keep * jnp.sum(a)
            largest = jnp.maximum(largest, keep * jnp.max(jnp.abs(x)))
            return (x, mean, m2, count, accepted, largest), summary_fn(x)

        zeros = jnp.zeros_like(x)
        zero = jnp.asarray(0.0, x.dtype)
        num_blocks = num_warmup_blocks + settings.num_samples
        (x, mean, m2, count, accepted, largest), summaries = jax.lax.scan(
            block,
            (x, zeros, zeros, zero, zero, zero),
            (jnp.arange(num_blocks), jax.random.split(chain_key, num_blocks)),
        )
        rate = accepted / (settings.thinning * settings.num_samples)
        return summaries[num_warmup_blocks:], mean, m2 / (count - 1), largest, rate

    if not settings.vmap_chains:
        return jax.lax.map(lambda k: run_chain(k, x0), keys)
    return jax.vmap(run_chain, in_axes=(0, None))(keys, x0)


@eqx.filter_jit
def _python_loop_step(keys, xs, operator, data, sigma, step, score_fn, potential_fn, settings):
    """One step of every chain (``keys``, ``xs`` stacked over chains), compiled once."""

    def one(key, x):
        return _kernel(key, x, operator, data, sigma, step, score_fn, potential_fn, settings)

    if not settings.vmap_chains:
        return jax.lax.map(lambda args: one(*args), (keys, xs))
    return jax.vmap(one)(keys, xs)


@eqx.filter_jit
def _python_loop_record(state, xs, accepted, keep, summary_fn):
    """Online moments and the recorded summaries after a block (``loop="python"``)."""
    mean, m2, count, total, largest = state
    keep = jnp.asarray(keep, xs.dtype)
    count = count + keep
    delta = xs - mean
    mean = mean + keep * delta / jnp.maximum(count, 1)
    m2 = m2 + keep * delta * (xs - mean)
    total = total + keep * accepted
    largest = jnp.maximum(largest, keep * jnp.max(jnp.abs(xs), axis=(1, 2)))
    return (mean, m2, count, total, largest), jax.vmap(summary_fn or _flatten)(xs)


def _run_datasets_python(
    keys,
    x0,
    operator,
    data,
    sigma,
    step,
    score_fn,
    potential_fn,
    summary_fn,
    settings,
    progress_fn=None,
):
    """:func:`_run_datasets` with one compiled call per step, looped in Python.

    Same random numbers and outputs as the ``lax.scan`` program (the keys are split the
    same way); convolutional scores run many times faster this way on a CPU, where XLA
    compiles convolutions inside a ``scan`` body poorly (as ``_training``'s
    ``epoch_loop="python"``).
    """
    num_warmup_blocks = -(-settings.num_warmup // settings.thinning)
    num_blocks = num_warmup_blocks + settings.num_samples
    total = len(data) * num_blocks * settings.thinning
    outputs = []
    for dataset, (chain_keys, y) in enumerate(zip(keys, data, strict=True)):
        num_chains = chain_keys.shape[0]
        xs = jnp.broadcast_to(x0, (num_chains, *x0.shape))
        zeros = jnp.zeros_like(xs)
        state = (
            zeros,
            zeros,
            jnp.zeros((), x0.dtype),
            jnp.zeros((num_chains,), x0.dtype),
            jnp.zeros((num_chains,), x0.dtype),
        )
        block_keys = jax.vmap(lambda k: jax.random.split(k, num_blocks))(chain_keys)
        summaries = []
        for block in range(num_blocks):
            step_keys = jax.vmap(lambda k: jax.random.split(k, settings.thinning))(
                block_keys[:, block]
            )
            accepted = jnp.zeros((num_chains,), x0.dtype)
            for t in range(settings.thinning):
                xs, a = _python_loop_step(
                    step_keys[:, t],
                    xs,
                    operator,
                    y,
                    sigma,
                    step,
                    score_fn,
                    potential_fn,
                    settings,
                )
                accepted = accepted + a
            keep = block >= num_warmup_blocks
            state, summary = _python_loop_record(state, xs, accepted, keep, summary_fn)
            if keep:
                summaries.append(summary)
            if progress_fn is not None:
                done = (dataset * num_blocks + block + 1) * settings.thinning
                progress_fn("sampling", done, total)
        mean, m2, count, total, largest = state
        rate = total / (settings.thinning * settings.num_samples)
        outputs.append((jnp.stack(summaries, axis=1), mean, m2 / (count - 1), largest, rate))
    return tuple(jnp.stack(parts) for parts in zip(*outputs, strict=True))


@eqx.filter_jit
def _run_datasets(
    keys, x0, operator, data, sigma, step, score_fn, potential_fn, summary_fn, settings
):
    def one(chain_keys, y):
        return _run_chains(
            chain_keys, x0, operator, y, sigma, step, score_fn, potential_fn, summary_fn, settings
        )

    if not settings.vmap_chains or data.shape[0] == 1:
        return jax.lax.map(lambda args: one(*args), (keys, data))
    return jax.vmap(one)(keys, data)
