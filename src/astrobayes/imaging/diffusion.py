"""Diffusion priors (a noise-conditional score over a VE noise schedule) and posterior samplers.

The prior is the data distribution ``p`` seen through the *variance-exploding* (VE) noise
process of Song et al. (2021, arXiv:2011.13456): ``x_sigma = x + sigma n``, ``n ~ N(0, I)``,
for ``sigma`` on a geometric schedule from ``sigma_max`` down to ``sigma_min``
(:class:`NoiseSchedule`; the NCSN schedule of Song & Ermon 2019 and of Adam et al. 2022,
arXiv:2211.03812, who use it for radio-interferometric imaging). What is learned is the
*noise-conditional* score ``s(x, sigma) = grad log p_sigma(x)``, ``p_sigma = p * N(0, sigma^2
I)``. By Tweedie's formula a noise-conditional denoiser is such a score,
``s(x, sigma) = (D_sigma(x) - x) / sigma^2``, so the network is the one of
:mod:`astrobayes.imaging.denoisers` (``noise_input=True``: the noise level is an input
channel) trained by denoising score matching with ``sigma`` log-uniform over the schedule's
range and the weighting ``lambda(sigma) = sigma^2`` (Song & Ermon 2019; Song et al. 2021),
through the shared training loop (:func:`train_diffusion_prior`); :func:`diffusion_score`
turns it into ``s(x, sigma)``. Any callable ``(image, sigma) -> score`` works (an analytic
one, e.g. :meth:`~astrobayes.imaging.prior_calibration.StationaryGaussianPrior.noisy_score`).

Two posterior samplers for ``y = Phi x + noise`` (:func:`diffusion_posterior`; several data
sets at once: :func:`diffusion_posterior_batch`):

* ``method="langevin"``: annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with
  the likelihood gradient (Jalal et al. 2021, arXiv:2108.01368): at each level ``sigma_t``,
  ``steps_per_level`` steps of
  ``x' = x + delta_t [-Phi^H (Phi x - y) / (s_y^2 + c sigma_t^2) + s(x, sigma_t)] +
  sqrt(2 delta_t) z``; ``c`` (``likelihood_inflation``, default 1) widens the likelihood
  by the level's noise (the data constrain the clean image, the chain holds a noisy one).
  The step is Laumont et al.'s rule ``delta_t = step_fraction / (3 Lip_t)`` with
  ``Lip_t = ||Phi||^2 / (s_y^2 + c sigma_t^2) + L / sigma_t^2`` (``1 / sigma^2`` bounds the
  curvature of ``-log p_sigma`` for any log-concave ``p``; ``L = score_lipschitz``). After
  the last level the chains continue at ``sigma_min`` (``num_warmup`` discarded, then
  ``num_samples`` draws every ``thinning`` steps): there the chain is PnP-ULA with
  ``eps = sigma_min^2`` (:mod:`astrobayes.imaging.pnp`), warm-started by the annealing, and
  its R-hat and ESS are measured. With ``num_samples < 4`` each chain is one independent
  run of the annealed sampler (as it is used in practice).
* ``method="dps"``: diffusion posterior sampling (Chung et al. 2023, arXiv:2209.14687), VE
  form: the reverse-diffusion predictor ``x' = x + (sigma_t^2 - sigma_{t+1}^2) s(x, sigma_t)
  + sqrt(sigma_t^2 - sigma_{t+1}^2) z`` (Song et al. 2021) and the guidance
  ``- zeta grad_x ||y - Phi x0(x)||^2 / ||y - Phi x0(x)||`` through the Tweedie estimate
  ``x0(x) = x + sigma_t^2 s(x, sigma_t)`` (Chung et al.'s normalised step, ``zeta =
  guidance``), one step per level and a final step to ``sigma = 0``. One draw per chain.

Chains start at ``initial_image + sigma_max z`` (``z ~ N(0, I)``), i.e. from ``p_sigma_max``
when ``sigma_max`` dwarfs the image scale. Chains and data sets are vectorised (``vmap``;
``lax.map`` for operators without ``vmap``); the steps are looped in Python, one compiled
call per step (convolutional scores run far faster so on a CPU than inside a ``lax.scan``,
see :mod:`astrobayes.imaging.pnp`), which also makes runs resumable: ``checkpoint_fn``
receives a :class:`DiffusionState` every ``checkpoint_every`` steps and ``state=`` resumes
from it with the same random numbers. The status (:class:`DiffusionStatus`) is a failure
for a non-finite score, non-finite or diverging chains and a step beyond ``2 / Lip_t``;
runs stop early on those.

References:
    Song & Ermon 2019, "Generative modeling by estimating gradients of the data
    distribution" (arXiv:1907.05600): noise-conditional score networks, annealed Langevin.
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, ICLR, "Score-based generative
    modeling through stochastic differential equations" (arXiv:2011.13456): VE/VP SDEs.
    Adam, Coogan, Malkin, Legin, Perreault-Levasseur, Hezaveh & Bengio 2022, "Posterior
    samples of source galaxies in strong gravitational lenses with score-based priors"
    (arXiv:2211.03812).
    Jalal, Arvinte, Daras, Price, Dimakis & Tamir 2021, "Robust compressed sensing MRI
    with deep generative priors" (arXiv:2108.01368): annealed Langevin for inverse problems.
    Chung, Kim, McCann, Klasky & Ye 2023, ICLR, "Diffusion posterior sampling for general
    noisy inverse problems" (arXiv:2209.14687).
    Laumont et al. 2022, SIAM J. Imaging Sci. 15, 701 (arXiv:2103.04715): the step rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingConfig, TrainingInfo
from astrobayes._types import ProgressFn
from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.imaging.denoisers import (
    DEFAULT_TRAINING,
    Denoiser,
    DenoiserSettings,
    init_denoiser,
    train_denoiser,
)
from astrobayes.imaging.operators import MeasurementOperator
from astrobayes.imaging.pnp import checked_visibilities

__all__ = [
    "METHODS",
    "DenoiserScore",
    "DiffusionResult",
    "DiffusionState",
    "DiffusionStatus",
    "NoiseSchedule",
    "diffusion_posterior",
    "diffusion_posterior_batch",
    "diffusion_score",
    "train_diffusion_prior",
]

METHODS = ("langevin", "dps")

NoiseScoreFn = Callable[[Float[Array, "height width"], Float[Array, ""]], Array]


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """A variance-exploding noise schedule: ``num_levels`` geometric levels.

    ``sigma_t = sigma_max (sigma_min / sigma_max)^(t / (num_levels - 1))``, ``t = 0 ..
    num_levels - 1`` (Song & Ermon 2019; Song et al. 2021's VE SDE), in image units.

    Attributes:
        sigma_min: Smallest noise standard deviation (the last level).
        sigma_max: Largest (the first level; chains start from ``N(0, sigma_max^2 I)``).
        num_levels: Number of levels (``>= 2``).

    Example:
        >>> NoiseSchedule(0.1, 10.0, 3).sigmas().round(3).tolist()
        [10.0, 1.0, 0.1]

    """

    sigma_min: float = 0.01
    sigma_max: float = 10.0
    num_levels: int = 20

    def __post_init__(self) -> None:
        _positive(self.sigma_min, "sigma_min")
        _positive(self.sigma_max, "sigma_max")
        check_positive_int(self.num_levels, "num_levels", minimum=2)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"sigma_min must be < sigma_max; got {self.sigma_min} and {self.sigma_max}"
            )

    def sigmas(self) -> np.ndarray:
        """The levels, decreasing, float64, shape ``(num_levels,)``."""
        return np.geomspace(self.sigma_max, self.sigma_min, self.num_levels)


class DenoiserScore(eqx.Module):
    """``(image, sigma) -> (D_sigma(image) - image) / sigma^2``: a noise-conditional score.

    Built by :func:`diffusion_score`. An equinox Module, so it passes through ``jit`` as
    data (a sampler compiled for one network reuses its compilation for other weights).

    Attributes:
        denoiser: A noise-conditional :class:`~astrobayes.imaging.denoisers.Denoiser`.
    """

    denoiser: Denoiser

    def __call__(
        self, image: Float[Array, "*batch height width"], sigma: float | Float[Array, ""]
    ) -> Float[Array, "*batch height width"]:
        """``grad log p_sigma(image)`` by Tweedie's formula."""
        sigma = jnp.asarray(sigma, jnp.result_type(float))
        return (self.denoiser(image, sigma) - image) / sigma**2


def diffusion_score(denoiser: Denoiser) -> DenoiserScore:
    """The noise-conditional score ``s(x, sigma) = (D_sigma(x) - x) / sigma^2`` of a denoiser.

    Args:
        denoiser: A denoiser with ``settings.noise_input=True`` (trained over the noise
            schedule's range, e.g. by :func:`train_diffusion_prior`).

    Returns:
        The :class:`DenoiserScore`.

    Raises:
        TypeError: If ``denoiser`` is not a ``Denoiser``.
        ValueError: If the denoiser is blind (``noise_input=False``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> diffusion_score(d)(jnp.zeros((8, 8)), 0.5).shape
        (8, 8)

    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser; got {type(denoiser).__name__}")
    if not denoiser.settings.noise_input:
        raise ValueError(
            "denoiser must be noise-conditional (settings.noise_input=True) to be a "
            "diffusion prior; got a blind denoiser"
        )
    return DenoiserScore(denoiser=denoiser)


def train_diffusion_prior(
    key: PRNGKeyArray,
    train_images: Float[Array, "num height width"],
    validation_images: Float[Array, "num_validation height width"],
    schedule: NoiseSchedule,
    *,
    settings: DenoiserSettings | None = None,
    denoiser: Denoiser | None = None,
    config: TrainingConfig = DEFAULT_TRAINING,
    progress_fn: ProgressFn | None = None,
) -> tuple[Denoiser, TrainingInfo]:
    """Train a noise-conditional score network over ``schedule`` by denoising score matching.

    The network is a noise-conditional :class:`~astrobayes.imaging.denoisers.Denoiser`
    whose training range is the schedule's ``[sigma_min, sigma_max]``; training is
    :func:`~astrobayes.imaging.denoisers.train_denoiser` (``sigma`` log-uniform, loss
    ``||D_sigma(x + sigma n) - x||^2 / sigma^2``, through ``_training.fit``).

    Args:
        key: JAX PRNG key (initial weights, shuffling, noise).
        train_images: Clean training images ``(N, H, W)``.
        validation_images: Clean held-out images for early stopping.
        schedule: The :class:`NoiseSchedule` the prior will be sampled over.
        settings: Architecture (its ``sigma_min`` / ``sigma_max`` are replaced by the
            schedule's; ``noise_input`` must be true); default a U-Net with widths
            ``(16, 32)``.
        denoiser: A denoiser to continue training instead (its range must cover the
            schedule).
        config: :class:`~astrobayes._training.TrainingConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)``.

    Returns:
        ``(denoiser, info)``; pass the denoiser to :func:`diffusion_score`.

    Raises:
        TypeError: If ``schedule`` or ``settings`` has the wrong type.
        ValueError: If the network is blind or its range does not cover the schedule.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes._training import TrainingConfig
        >>> x = jax.random.normal(jax.random.key(0), (8, 8, 8))
        >>> d, info = train_diffusion_prior(
        ...     jax.random.key(1), x[:6], x[6:], NoiseSchedule(0.1, 2.0, 5),
        ...     settings=DenoiserSettings("dncnn", width=4, depth=2),
        ...     config=TrainingConfig(batch_size=3, max_epochs=1))
        >>> d.settings.sigma_max, info.num_epochs
        (2.0, 1)

    """
    check_key(key)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule; got {type(schedule).__name__}")
    init_key, train_key = jax.random.split(key)
    if denoiser is None:
        settings = DenoiserSettings(widths=(16, 32)) if settings is None else settings
        if not isinstance(settings, DenoiserSettings):
            raise TypeError(f"settings must be a DenoiserSettings; got {type(settings).__name__}")
        if not settings.noise_input:
            raise ValueError("settings.noise_input must be True for a diffusion prior")
        settings = dataclasses.replace(
            settings, sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max
        )
        denoiser = init_denoiser(init_key, settings)
    else:
        diffusion_score(denoiser)  # type and noise_input checks
        s = denoiser.settings
        if s.sigma_min > schedule.sigma_min or s.sigma_max < schedule.sigma_max:
            raise ValueError(
                f"denoiser's training range [{s.sigma_min}, {s.sigma_max}] must cover the "
                f"schedule's [{schedule.sigma_min}, {schedule.sigma_max}]"
            )
    return train_denoiser(
        train_key,
        denoiser,
        train_images,
        validation_images,
        config=config,
        progress_fn=progress_fn,
    )


class DiffusionStatus(Status):
    """Verdict of :func:`diffusion_posterior`; values are the messages."""

    CONVERGED = (
        Severity.OK,
        "max split R-hat < 1.01 and min ESS >= 100 over the draws at sigma_min",
    )
    INDEPENDENT_DRAWS = (
        Severity.OK,
        "fewer than 4 draws per chain: each chain is one independent run of the sampler "
        "(no R-hat; ESS counts the draws)",
    )
    NOT_CONVERGED = (
        Severity.WARNING,
        "R-hat >= 1.01 or ESS < 100 on some summary: run longer at sigma_min or thin more",
    )
    STEP_ABOVE_BOUND = (
        Severity.WARNING,
        "step_fraction > 1: the step exceeds Laumont et al.'s bound Lip^-1 / 3 on some level",
    )
    NON_FINITE_SCORE = (
        Severity.FAILURE,
        "failure: the score is non-finite at the initial chains; nothing was run",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "failure: the chains became non-finite (a non-finite score or a diverging chain); "
        "the run was stopped",
    )
    DIVERGED = (
        Severity.FAILURE,
        "failure: a chain diverged (|x| beyond divergence_bound); the run was stopped",
    )
    STEP_TOO_LARGE = (
        Severity.FAILURE,
        "failure: the step exceeds 2 / Lip_t on some level, where the Langevin recursion is "
        "unstable; nothing was run",
    )


class DiffusionState(NamedTuple):
    """Where a run stands (for ``checkpoint_fn`` and ``state=``); arrays per data set.

    Attributes:
        step: Number of steps done.
        chains: Current chains, ``(num_datasets, num_chains, height, width)``.
        mean: Running per-chain mean of the kept draws (same shape).
        m2: Running sum of squared deviations of the kept draws (same shape).
        count: Number of kept draws so far.
        largest: Largest ``|x|`` each chain reached, ``(num_datasets, num_chains)``.
        summaries: Kept summaries so far, ``(num_datasets, num_chains, count, dim)``.
    """

    step: int
    chains: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    count: int
    largest: np.ndarray
    summaries: np.ndarray


class DiffusionResult(NamedTuple):
    """Output of :func:`diffusion_posterior`.

    Attributes:
        summaries: ``(num_chains, num_samples, dim)`` recorded ``summary_fn`` values (the
            flattened image by default); padded with ``nan`` when a run was stopped.
        mean: Per-pixel posterior mean (all chains and draws).
        variance: Per-pixel posterior variance.
        rhat: Split R-hat of each summary dimension (``nan`` with < 4 draws per chain).
        ess: Effective sample size of each summary dimension (the number of draws with
            < 4 draws per chain).
        sigmas: The noise levels, decreasing.
        step_sizes: Langevin step of each level during the annealing (``nan`` for DPS).
        max_abs: Largest ``|x|`` each chain reached.
        num_score_evaluations: Score evaluations per chain.
        num_steps: Steps run (fewer than planned when the run was stopped).
        status: :class:`DiffusionStatus`.
        final_step_size: Langevin step of the chain continued at ``sigma_min`` after the
            annealing (``nan`` for DPS).
        final_noise_variance: Likelihood variance ``s_y^2 + c_final sigma_min^2`` of
            that chain (``nan`` for DPS).
    """

    summaries: Float[Array, "num_chains num_samples dim"]
    mean: Float[Array, "height width"]
    variance: Float[Array, "height width"]
    rhat: np.ndarray
    ess: np.ndarray
    sigmas: np.ndarray
    step_sizes: np.ndarray
    max_abs: np.ndarray
    num_score_evaluations: int
    num_steps: int
    status: DiffusionStatus
    final_step_size: float = float("nan")
    final_noise_variance: float = float("nan")


def _flatten(x):
    return x.reshape(-1)


def _normal(key, shape, dtype):
    """``N(0, I)`` draws from an RBG generator seeded by ``key`` (a threefry key).

    XLA's RngBitGenerator compiles in a fraction of threefry's time on a CPU (measured:
    0.7 vs 2.1 CPU-s for one small program), and a step program is compiled once per
    shape of the chains; the stream is still a pure function of ``key``.
    """
    data = jax.random.key_data(key)
    rbg = jax.random.wrap_key_data(
        jnp.concatenate([data, data ^ jnp.uint32(0x9E3779B9)]), impl="rbg"
    )
    return jax.random.normal(rbg, shape, dtype)


def _map(fn, vmap_ok, *args):
    if vmap_ok:
        return jax.vmap(fn)(*args)
    return jax.lax.map(lambda a: fn(*a), args)


@eqx.filter_jit
def _step(
    keys, xs, largest, index, operator, data, sigma_t, sigma_next, delta, noise_var, guidance,
    score_fn, method, vmap_ok,
):  # fmt: skip
    """One step of every chain of every data set (``xs``: ``(D, C, H, W)``)."""

    def langevin(z, x, y):
        drift = -operator.adjoint(operator(x) - y) / noise_var + score_fn(x, sigma_t)
        return x + delta * drift + jnp.sqrt(2 * delta) * z

    def dps(z, x, y):
        def misfit(x):
            score = score_fn(x, sigma_t)
            residual = operator(x + sigma_t**2 * score) - y
            return jnp.sum(jnp.real(residual) ** 2 + jnp.imag(residual) ** 2), score

        (value, score), gradient = jax.value_and_grad(misfit, has_aux=True)(x)
        variance = sigma_t**2 - sigma_next**2
        noise = jnp.where(sigma_next > 0, jnp.sqrt(variance), 0.0) * z
        return x + variance * score + noise - guidance * gradient / jnp.sqrt(value + 1e-30)

    kernel = langevin if method == "langevin" else dps

    def dataset(noise, chains, y):
        return _map(lambda z, x: kernel(z, x, y), vmap_ok, noise, chains)

    # one draw per data set for all its chains, outside vmap (RBG streams are not
    # vmap-invariant; this keeps a batch's data set i equal to a single run)
    noise = jax.lax.map(
        lambda k: _normal(jax.random.fold_in(k, index), xs.shape[1:], xs.dtype), keys
    )
    new = _map(dataset, vmap_ok, noise, xs, data)
    largest = jnp.maximum(largest, jnp.max(jnp.abs(new), axis=(2, 3)))
    return new, largest


@eqx.filter_jit
def _record(xs, mean, m2, count, summary_fn):
    count = count + 1
    delta = xs - mean
    mean = mean + delta / count
    m2 = m2 + delta * (xs - mean)
    summaries = jax.vmap(jax.vmap(summary_fn))(xs)
    return mean, m2, summaries


@eqx.filter_jit
def _initial(keys, x0, sigma_max, num_chains):
    def one(key):
        z = _normal(key, (num_chains, *x0.shape), x0.dtype)
        return x0 + sigma_max * z

    return jax.lax.map(one, keys)


def _plan(method, sigmas, steps_per_level, num_warmup, num_samples, thinning):
    """Per step: level sigma, next sigma (DPS), level index, and whether it is kept."""
    if method == "dps":
        sigma = sigmas
        following = np.append(sigmas[1:], 0.0)
        level = np.arange(sigmas.size)
        keep = np.zeros(sigmas.size, bool)
        keep[-1] = True
        return sigma, following, level, keep
    annealing = np.repeat(np.arange(sigmas.size), steps_per_level)
    final = np.full(num_warmup + num_samples * thinning, sigmas.size - 1)
    level = np.concatenate([annealing, final])
    keep = np.zeros(level.size, bool)
    keep[annealing.size + num_warmup + thinning - 1 :: thinning] = True
    return sigmas[level], sigmas[level], level, keep


def diffusion_posterior(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    score_fn: NoiseScoreFn,
    schedule: NoiseSchedule,
    *,
    method: str = "langevin",
    num_chains: int = 4,
    steps_per_level: int = 20,
    num_warmup: int = 0,
    num_samples: int | None = None,
    thinning: int = 10,
    step_fraction: float = 1.0,
    score_lipschitz: float = 1.0,
    likelihood_inflation: float = 1.0,
    final_likelihood_inflation: float | None = None,
    guidance: float = 1.0,
    initial_image: Float[Array, "height width"] | None = None,
    divergence_bound: float | None = None,
    summary_fn: Callable[[Float[Array, "height width"]], Float[Array, " dim"]] | None = None,
    checkpoint_fn: Callable[[DiffusionState], None] | None = None,
    checkpoint_every: int = 1000,
    state: DiffusionState | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> DiffusionResult:
    """Sample ``p(x | y)`` under a diffusion prior: annealed Langevin or DPS, several chains.

    Args:
        key: JAX PRNG key.
        operator: The measurement operator ``Phi`` (masked FFT, NUFFT, ...).
        visibilities: Data ``y``, shape ``(operator.num_visibilities,)``.
        sigma: Noise standard deviation ``s_y`` of each of the real and imaginary parts.
        score_fn: ``(image, sigma) -> grad log p_sigma(image)`` on one image and one noise
            level (e.g. :func:`diffusion_score` of a trained network).
        schedule: The :class:`NoiseSchedule`.
        method: ``"langevin"`` (annealed Langevin) or ``"dps"``.
        num_chains: Chains (independent runs) per data set.
        steps_per_level: Langevin steps per level (``"langevin"`` only).
        num_warmup: Langevin steps at ``sigma_min`` after the annealing, discarded.
        num_samples: Draws kept per chain at ``sigma_min`` (``"langevin"``; default 100);
            ``"dps"`` gives one draw per chain (only ``None`` or 1 accepted).
        thinning: Langevin steps per kept draw.
        step_fraction: Fraction of the step bound ``1 / (3 Lip_t)``.
        score_lipschitz: ``L`` in the score's Lipschitz bound ``L / sigma^2``.
        likelihood_inflation: ``c`` in the likelihood variance ``s_y^2 + c sigma_t^2``
            during the annealing (``"langevin"``; 0 for the plain likelihood).
        final_likelihood_inflation: ``c`` for the chain continued at ``sigma_min`` after
            the annealing (``num_warmup`` and the kept draws); default
            ``likelihood_inflation``. With 0 that chain is PnP-ULA with
            ``eps = sigma_min^2`` and the plain likelihood (Laumont et al. 2022), warm-started
            by the annealing; with ``c > 0`` it targets the posterior with the likelihood
            widened to ``s_y^2 + c sigma_min^2``.
        guidance: DPS's ``zeta`` (``"dps"``).
        initial_image: Mean of the initial chains (default zeros).
        divergence_bound: ``|x|`` beyond which a chain counts as diverged; default
            ``10^3 (1 + sigma_max + max|x_0| + max|Phi^H y| / ||Phi||^2)``.
        summary_fn: ``x -> vector`` recorded at each kept draw; default the flattened image.
        checkpoint_fn: Called with a :class:`DiffusionState` every ``checkpoint_every``
            steps (e.g. to save it through :mod:`astrobayes.io`).
        checkpoint_every: Steps between checkpoints.
        state: A :class:`DiffusionState` to resume from (same arguments and key).
        progress_fn: ``progress_fn("diffusion", step, total)`` at the end of each level.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        :class:`DiffusionResult`.

    Raises:
        ValueError: On bad shapes or settings (naming the argument).
        TypeError: On arguments of the wrong type.
        UnreliableResultError: With ``throw=True`` on a failure status.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.ones((4, 4), dtype=bool))
        >>> result = diffusion_posterior(
        ...     jax.random.key(0), op, op(np.zeros((4, 4))), 1.0,
        ...     lambda x, s: -x / (1.0 + s**2), NoiseSchedule(0.1, 3.0, 4),
        ...     steps_per_level=5, num_samples=8, thinning=2)
        >>> result.summaries.shape, result.status.severity.name
        ((4, 8, 16), 'WARNING')

    """
    return _diffusion(
        key, operator, visibilities, sigma, score_fn, schedule, method=method,
        num_chains=num_chains, steps_per_level=steps_per_level, num_warmup=num_warmup,
        num_samples=num_samples, thinning=thinning, step_fraction=step_fraction,
        score_lipschitz=score_lipschitz, likelihood_inflation=likelihood_inflation,
        final_likelihood_inflation=final_likelihood_inflation, guidance=guidance,
        initial_image=initial_image, divergence_bound=divergence_bound,
        summary_fn=summary_fn, checkpoint_fn=checkpoint_fn, checkpoint_every=checkpoint_every,
        state=state, progress_fn=progress_fn, throw=throw, batch=False,
    )  # fmt: skip


def diffusion_posterior_batch(
    key: jax.Array,
    operator: MeasurementOperator,
    visibilities: Complex[Array, "num_datasets num_visibilities"],
    sigma: float,
    score_fn: NoiseScoreFn,
    schedule: NoiseSchedule,
    **kwargs: Any,
) -> tuple[DiffusionResult, ...]:
    """:func:`diffusion_posterior` on several data sets at once (one compiled step for all).

    Arguments are those of :func:`diffusion_posterior` except ``visibilities``, of shape
    ``(num_datasets, num_visibilities)``; data set ``i`` uses the key ``fold_in(key, i)``,
    so its chains are those of ``diffusion_posterior(fold_in(key, i), ...)``. The
    divergence bound defaults to the first data set's. A :class:`DiffusionState` holds
    all data sets.

    Returns:
        One :class:`DiffusionResult` per data set.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.ones((4, 4), dtype=bool))
        >>> y = np.stack([op(np.zeros((4, 4)))] * 3)
        >>> results = diffusion_posterior_batch(
        ...     jax.random.key(0), op, y, 1.0, lambda x, s: -x / (1.0 + s**2),
        ...     NoiseSchedule(0.1, 3.0, 8), method="dps", num_chains=5)
        >>> len(results), results[0].summaries.shape, results[0].status.name
        (3, (5, 1, 16), 'INDEPENDENT_DRAWS')

    """
    return _diffusion(key, operator, visibilities, sigma, score_fn, schedule, batch=True, **kwargs)


def _diffusion(
    key, operator, visibilities, sigma, score_fn, schedule, *, method="langevin", num_chains=4,
    steps_per_level=20, num_warmup=0, num_samples=None, thinning=10, step_fraction=1.0,
    score_lipschitz=1.0, likelihood_inflation=1.0, final_likelihood_inflation=None,
    guidance=1.0, initial_image=None,
    divergence_bound=None, summary_fn=None, checkpoint_fn=None, checkpoint_every=1000,
    state=None, progress_fn=None, throw=False, batch=False,
):  # fmt: skip
    check_key(key)
    if not isinstance(operator, MeasurementOperator):
        raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable; got {type(score_fn).__name__}")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule; got {type(schedule).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    num_chains = check_positive_int(num_chains, "num_chains")
    steps_per_level = check_positive_int(steps_per_level, "steps_per_level")
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=0)
    thinning = check_positive_int(thinning, "thinning")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if method == "dps":
        if num_samples not in (None, 1):
            raise ValueError(f"num_samples must be 1 (or None) for method='dps'; got {num_samples}")
        num_samples = 1
    else:
        num_samples = check_positive_int(100 if num_samples is None else num_samples, "num_samples")
    sigma = _positive(sigma, "sigma")
    step_fraction = _positive(step_fraction, "step_fraction")
    score_lipschitz = _positive(score_lipschitz, "score_lipschitz")
    guidance = _positive(guidance, "guidance")
    if isinstance(likelihood_inflation, bool) or not (
        isinstance(likelihood_inflation, int | float) and math.isfinite(likelihood_inflation)
    ):
        raise TypeError(f"likelihood_inflation must be a number; got {likelihood_inflation!r}")
    if likelihood_inflation < 0:
        raise ValueError(f"likelihood_inflation must be >= 0; got {likelihood_inflation}")
    if final_likelihood_inflation is None:
        final_likelihood_inflation = likelihood_inflation
    if isinstance(final_likelihood_inflation, bool) or not (
        isinstance(final_likelihood_inflation, int | float)
        and math.isfinite(final_likelihood_inflation)
    ):
        raise TypeError(
            f"final_likelihood_inflation must be a number; got {final_likelihood_inflation!r}"
        )
    if final_likelihood_inflation < 0:
        raise ValueError(
            f"final_likelihood_inflation must be >= 0; got {final_likelihood_inflation}"
        )
    dtype = jnp.zeros(()).dtype
    shape = tuple(operator.image_shape)
    x0 = jnp.zeros(shape, dtype) if initial_image is None else jnp.asarray(initial_image, dtype)
    if x0.shape != shape:
        raise ValueError(f"initial_image must have shape {shape}; got {x0.shape}")
    if not bool(jnp.all(jnp.isfinite(x0))):
        raise ValueError("initial_image must be finite")
    data = checked_visibilities(operator, visibilities, batch=batch, dtype=dtype)
    if not batch:
        data = data[None]
    num_datasets = data.shape[0]
    summary_fn = summary_fn or _flatten
    summary_dim = int(np.size(summary_fn(x0)))

    sigmas = schedule.sigmas()
    norm = operator.norm_upper_bound()
    noise_vars = sigma**2 + likelihood_inflation * sigmas**2
    lipschitz = norm**2 / noise_vars + score_lipschitz / sigmas**2
    if method == "langevin":
        step_sizes = step_fraction / (3 * lipschitz)
    else:
        step_sizes = np.full(sigmas.size, np.nan)
    level_sigma, next_sigma, level, keep = _plan(
        method, sigmas, steps_per_level, num_warmup, num_samples, thinning
    )
    total = level.size
    # the chain continued at sigma_min after the annealing: its own likelihood variance
    final = np.arange(total) >= (sigmas.size * steps_per_level if method == "langevin" else total)
    final_var = sigma**2 + final_likelihood_inflation * sigmas[-1] ** 2
    final_lipschitz = norm**2 / final_var + score_lipschitz / sigmas[-1] ** 2
    if method == "langevin":
        final_step = step_fraction / (3 * final_lipschitz)
    else:
        final_step = final_var = float("nan")
    if divergence_bound is None:
        dirty = float(jnp.max(jnp.abs(operator.adjoint(data[0])))) / norm**2
        divergence_bound = 1e3 * (1 + schedule.sigma_max + float(jnp.max(jnp.abs(x0))) + dirty)
    divergence_bound = _positive(divergence_bound, "divergence_bound")
    if batch:
        dataset_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_datasets))
    else:
        dataset_keys = key[None]
    init_keys, keys = (
        jax.vmap(lambda k, j=j: jax.random.fold_in(k, j))(dataset_keys) for j in (0, 1)
    )

    if state is None:
        xs = _initial(init_keys, x0, jnp.asarray(schedule.sigma_max, dtype), num_chains)
        zeros = jnp.zeros_like(xs)
        mean, m2, count, start = zeros, zeros, 0, 0
        largest = jnp.max(jnp.abs(xs), axis=(2, 3))
        recorded = []
    else:
        if not isinstance(state, DiffusionState):
            raise TypeError(f"state must be a DiffusionState; got {type(state).__name__}")
        want = (num_datasets, num_chains, *shape)
        if (
            tuple(np.shape(state.chains)) != want
            or not 0 <= state.step <= total
            or state.count != int(np.sum(keep[: state.step]))
            or tuple(np.shape(state.summaries)) != (*want[:2], state.count, summary_dim)
        ):
            raise ValueError(
                f"state does not belong to this run: chains {np.shape(state.chains)} "
                f"(expected {want}), step {state.step} of {total}, count {state.count}"
            )
        xs = jnp.asarray(state.chains, dtype)
        mean, m2 = jnp.asarray(state.mean, dtype), jnp.asarray(state.m2, dtype)
        count, start = state.count, state.step
        largest = jnp.asarray(state.largest, dtype)
        recorded = [jnp.asarray(s) for s in np.moveaxis(np.asarray(state.summaries), 2, 0)]

    def make_results(status, xs_final):
        kept = (
            np.stack([np.asarray(s) for s in recorded], axis=2)
            if recorded
            else np.zeros((num_datasets, num_chains, 0, summary_dim))
        )
        if kept.shape[2] < num_samples:  # a stopped run: pad with nan
            pad = np.full(
                (num_datasets, num_chains, num_samples - kept.shape[2], summary_dim), np.nan
            )
            kept = np.concatenate([kept, pad], axis=2)
        chain_mean, chain_m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
        results = []
        for d in range(num_datasets):
            draws = kept[d]
            n = max(count, 1)
            pooled = chain_mean[d].mean(axis=0) if count else np.full(shape, np.nan)
            spread = (chain_m2[d].sum(axis=0) + n * ((chain_mean[d] - pooled) ** 2).sum(axis=0)) / (
                max(num_chains * n - 1, 1)
            )
            if count < num_samples:
                pooled, spread = np.full(shape, np.nan), np.full(shape, np.nan)
            finite = bool(np.all(np.isfinite(draws)))
            if finite and num_samples >= 4:
                rhat, ess = split_rhat(draws), effective_sample_size(draws)
            elif finite:
                rhat = np.full(summary_dim, np.nan)
                ess = np.full(summary_dim, float(num_chains * num_samples))
            else:
                rhat = ess = np.full(summary_dim, np.nan)
            dataset_status = status
            if dataset_status is None:
                if num_samples < 4:
                    dataset_status = DiffusionStatus.INDEPENDENT_DRAWS
                elif step_fraction > 1:
                    dataset_status = DiffusionStatus.STEP_ABOVE_BOUND
                elif np.all(rhat < 1.01) and np.all(ess >= 100):
                    dataset_status = DiffusionStatus.CONVERGED
                else:
                    dataset_status = DiffusionStatus.NOT_CONVERGED
            result = DiffusionResult(
                summaries=jnp.asarray(draws, dtype),
                mean=jnp.asarray(pooled, dtype),
                variance=jnp.asarray(spread, dtype),
                rhat=rhat,
                ess=ess,
                sigmas=sigmas,
                step_sizes=step_sizes,
                max_abs=np.asarray(largest[d], np.float64),
                num_score_evaluations=int(step_done),
                num_steps=int(step_done),
                status=dataset_status,
                final_step_size=float(final_step),
                final_noise_variance=float(final_var),
            )
            results.append(check(result, throw))
        return tuple(results) if batch else results[0]

    step_done = start
    if method == "langevin" and (
        np.any(step_sizes > 2 / lipschitz) or final_step > 2 / final_lipschitz
    ):
        return make_results(DiffusionStatus.STEP_TOO_LARGE, xs)
    for probe in (schedule.sigma_max, schedule.sigma_min):
        value = score_fn(xs[0, 0], jnp.asarray(probe, dtype))
        if not bool(jnp.all(jnp.isfinite(value))):
            return make_results(DiffusionStatus.NON_FINITE_SCORE, xs)

    vmap_ok = bool(operator.supports_vmap)
    # host (NumPy) scalars: traced by the compiled step without a device gather per step
    np_dtype = np.dtype(dtype)
    sigma_arr = level_sigma.astype(np_dtype)
    next_arr = next_sigma.astype(np_dtype)
    delta_arr = np.where(
        final, final_step, step_sizes[level] if method == "langevin" else np.zeros(total)
    ).astype(np_dtype)
    var_arr = np.where(final, final_var, noise_vars[level]).astype(np_dtype)
    guidance_arr = np_dtype.type(guidance)
    level_end = np.append(level[1:] != level[:-1], True)
    stopped = None
    for t in range(start, total):
        xs, largest = _step(
            keys, xs, largest, np.int32(t), operator, data, sigma_arr[t], next_arr[t], delta_arr[t],
            var_arr[t], guidance_arr, score_fn, method, vmap_ok,
        )  # fmt: skip
        step_done = t + 1
        if keep[t]:
            mean, m2, summaries = _record(xs, mean, m2, np_dtype.type(count), summary_fn)
            count += 1
            recorded.append(summaries)
        if level_end[t] or t % 100 == 99 or t == total - 1:
            worst_abs = float(jnp.max(largest))
            if not math.isfinite(worst_abs):
                stopped = DiffusionStatus.NOT_FINITE
            elif worst_abs > divergence_bound:
                stopped = DiffusionStatus.DIVERGED
            if progress_fn is not None and level_end[t]:
                progress_fn("diffusion", step_done, total)
        if checkpoint_fn is not None and (step_done % checkpoint_every == 0 or stopped):
            checkpoint_fn(
                DiffusionState(
                    step=step_done,
                    chains=np.asarray(xs),
                    mean=np.asarray(mean),
                    m2=np.asarray(m2),
                    count=count,
                    largest=np.asarray(largest),
                    summaries=(
                        np.stack([np.asarray(s) for s in recorded], axis=2)
                        if recorded
                        else np.zeros((num_datasets, num_chains, 0, summary_dim))
                    ),
                )
            )
        if stopped is not None:
            break
    return make_results(stopped, xs)
