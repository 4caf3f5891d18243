"""Proximal MCMC for imaging posteriors: MYULA and SK-ROCK, several chains, ESS, R-hat.

Both target the Moreau-Yosida approximation ``pi_lam(x) ∝ exp(-f(x) - g_lam(x))`` of the
posterior ``exp(-f - g)``: ``f`` the smooth part (data term, smooth prior), ``g`` the
non-smooth part (prior used through its prox, positivity), ``g_lam`` its Moreau envelope
with gradient ``(x - prox_{lam g}(x)) / lam``.

* MYULA (Durmus, Moulines & Pereyra 2018): ``x' = x - h grad U_lam(x) + sqrt(2h) z``.
* SK-ROCK (Pereyra, Vargas-Mieles & Zygalakis 2020): a stabilised ``s``-stage
  Runge-Kutta-Chebyshev step, allowing a step ``h`` about ``s^2`` times larger for one
  step costing ``s`` gradients.

Chains are run with ``vmap`` over chains (``lax.map`` when the operator says it does
not support ``vmap``, :attr:`~astrobayes.imaging.operators.MeasurementOperator.supports_vmap`:
jax-finufft's batching rule is broken on jax 0.10) and ``lax.scan`` over iterations; a
``summary_fn`` (e.g. super-pixel means) is recorded at every kept sample, and per-pixel
mean and variance are accumulated online. R-hat and ESS are those of
:mod:`astrobayes.diagnostics`.

References:
    Durmus, Moulines & Pereyra 2018, SIAM J. Imaging Sci. 11, 473, "Efficient Bayesian
    computation by proximal MCMC: when Langevin meets Moreau" (arXiv:1612.07471).
    Pereyra, Vargas-Mieles & Zygalakis 2020, SIAM J. Imaging Sci. 13, 905,
    "Accelerating proximal Markov chain Monte Carlo by using an explicit stabilised
    method" (arXiv:1908.08845).
    Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, Bayesian Analysis 16, 667,
    "Rank-normalization, folding, and localization: an improved R-hat" (arXiv:1903.08008).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.imaging.posterior import ImagingPosterior

__all__ = [
    "McmcResult",
    "McmcStatus",
    "moreau_yosida_drift",
    "proximal_mcmc",
    "skrock_step_size",
]


def moreau_yosida_drift(
    posterior: ImagingPosterior, smoothing: float
) -> Callable[[Float[Array, "height width"]], Float[Array, "height width"]]:
    """Return ``x -> -grad U_lam(x) = -grad f(x) - (x - prox_{lam g}(x)) / lam``.

    Args:
        posterior: The posterior.
        smoothing: Moreau-Yosida parameter ``lam > 0``.

    Returns:
        The drift function.
    """

    def drift(x):
        return -posterior.smooth_gradient(x) - (x - posterior.prox(x, smoothing)) / smoothing

    return drift


def skrock_step_size(lipschitz: float, num_stages: int, eta: float = 0.05) -> float:
    """Largest stable SK-ROCK step ``l_s / L`` with ``l_s = (s - 1/2)^2 (2 - 4 eta / 3) - 3/2``.

    Args:
        lipschitz: Lipschitz constant of ``grad U_lam``.
        num_stages: ``s``.
        eta: Damping parameter.

    Returns:
        The step size.
    """
    length = (num_stages - 0.5) ** 2 * (2 - 4 * eta / 3) - 1.5
    return length / lipschitz


def _chebyshev(order: int, x: float) -> float:
    t_prev, t = 1.0, x
    if order == 0:
        return 1.0
    for _ in range(order - 1):
        t_prev, t = t, 2 * x * t - t_prev
    return t


def _skrock_coefficients(num_stages: int, eta: float):
    s = num_stages
    w0 = 1 + eta / s**2
    t = [_chebyshev(j, w0) for j in range(s + 1)]
    # T_s'(w0) = s U_{s-1}(w0)
    u_prev, u = 1.0, 2 * w0
    for _ in range(s - 2):
        u_prev, u = u, 2 * w0 * u - u_prev
    u_s_minus_1 = 1.0 if s == 1 else u
    w1 = t[s] / (s * u_s_minus_1)
    mu1 = w1 / w0
    nu1 = s * w1 / 2
    kappa1 = s * w1 / w0
    mus = [2 * w1 * t[j - 1] / t[j] for j in range(2, s + 1)]
    nus = [2 * w0 * t[j - 1] / t[j] for j in range(2, s + 1)]
    kappas = [-t[j - 2] / t[j] for j in range(2, s + 1)]
    return mu1, nu1, kappa1, np.array(mus), np.array(nus), np.array(kappas)


def _myula_kernel(drift, step):
    def kernel(key, x):
        noise = jax.random.normal(key, x.shape, x.dtype)
        return x + step * drift(x) + jnp.sqrt(2 * step) * noise

    return kernel


def _skrock_kernel(drift, step, num_stages, eta):
    mu1, nu1, kappa1, mus, nus, kappas = _skrock_coefficients(num_stages, eta)

    def kernel(key, x):
        noise = jnp.sqrt(2 * step) * jax.random.normal(key, x.shape, x.dtype)
        k_prev = x
        k = x + mu1 * step * drift(x + nu1 * noise) + kappa1 * noise

        def stage(carry, coefficients):
            k_prev, k = carry
            mu, nu, kappa = coefficients
            k_next = mu * step * drift(k) + nu * k + kappa * k_prev
            return (k, k_next), None

        if num_stages > 1:
            (_, k), _ = jax.lax.scan(stage, (k_prev, k), (mus, nus, kappas))
        return k

    return kernel


class McmcStatus(Status):
    """Convergence verdict; values are the messages."""

    CONVERGED = (
        Severity.OK,
        "max split R-hat < 1.01 and min ESS >= 100 on the recorded summaries",
    )
    NOT_CONVERGED = (
        Severity.WARNING,
        "R-hat >= 1.01 or ESS < 100 on some summary: run longer or thin more",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "failure: the chains produced non-finite values; lower step_fraction",
    )


class McmcResult(NamedTuple):
    """Output of :func:`proximal_mcmc`.

    Attributes:
        summaries: ``(num_chains, num_samples, dim)`` recorded ``summary_fn`` values.
        mean: Per-pixel posterior mean (all chains).
        variance: Per-pixel posterior variance.
        rhat: Split R-hat of each summary dimension.
        ess: Effective sample size of each summary dimension (all chains).
        step_size: Step ``h``.
        smoothing: Moreau-Yosida ``lam``.
        num_gradient_evaluations: Gradient evaluations per chain.
        status: :class:`McmcStatus`.
    """

    summaries: Float[Array, "num_chains num_samples dim"]
    mean: Float[Array, "height width"]
    variance: Float[Array, "height width"]
    rhat: Float[np.ndarray, " dim"]
    ess: Float[np.ndarray, " dim"]
    step_size: float
    smoothing: float
    num_gradient_evaluations: int
    status: McmcStatus


def proximal_mcmc(
    key: jax.Array,
    posterior: ImagingPosterior,
    initial_image: Float[Array, "height width"],
    *,
    method: str = "skrock",
    num_chains: int = 4,
    num_samples: int = 500,
    num_warmup: int = 100,
    thinning: int = 10,
    num_stages: int = 10,
    eta: float = 0.05,
    step_fraction: float = 0.98,
    smoothing: float | None = None,
    summary_fn: Callable[[Float[Array, "height width"]], Float[Array, " dim"]] | None = None,
    throw: bool = False,
) -> McmcResult:
    """Sample an imaging posterior with MYULA or SK-ROCK, several chains in parallel.

    Args:
        key: JAX PRNG key.
        posterior: The posterior.
        initial_image: Starting image (e.g. the MAP); every chain starts there.
        method: ``"skrock"`` or ``"myula"``.
        num_chains: Number of chains.
        num_samples: Kept samples per chain (after thinning).
        num_warmup: Discarded iterations per chain.
        thinning: Iterations per kept sample.
        num_stages: SK-ROCK stages ``s``.
        eta: SK-ROCK damping.
        step_fraction: Fraction of the largest stable step.
        smoothing: Moreau-Yosida ``lam``; default ``1 / L_f`` (the usual choice).
        summary_fn: ``x -> vector`` recorded at each kept sample; default the image
            flattened.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure (non-finite chains).

    Returns:
        :class:`McmcResult`.

    Raises:
        ValueError: On an unknown method or bad settings.
        UnreliableResultError: With ``throw=True`` on a failure status.
    """
    check_key(key)
    if method not in ("skrock", "myula"):
        raise ValueError(f"method must be 'skrock' or 'myula'; got {method!r}")
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples", minimum=4)
    thinning = check_positive_int(thinning, "thinning")
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=0)
    x0 = jnp.asarray(initial_image, jnp.zeros(()).dtype)
    if x0.shape != posterior.image_shape:
        raise ValueError(f"initial_image must have shape {posterior.image_shape}; got {x0.shape}")
    lipschitz_f = posterior.smooth_lipschitz
    smoothing = 1.0 / lipschitz_f if smoothing is None else float(smoothing)
    lipschitz = lipschitz_f + 1.0 / smoothing
    if method == "skrock":
        step = step_fraction * skrock_step_size(lipschitz, num_stages, eta)
        gradients_per_step = num_stages
    else:
        step = step_fraction / lipschitz
        gradients_per_step = 1
    keys = jax.random.split(key, num_chains)
    summaries, means, variances = _run_chains(
        keys,
        x0,
        posterior,
        jnp.asarray(step, x0.dtype),
        jnp.asarray(smoothing, x0.dtype),
        method=method,
        num_stages=num_stages,
        eta=float(eta),
        num_warmup=num_warmup,
        thinning=thinning,
        num_samples=num_samples,
        summary_fn=summary_fn,
    )
    mean = jnp.mean(means, axis=0)
    variance = jnp.mean(variances, axis=0) + jnp.var(means, axis=0)
    array = np.asarray(summaries, np.float64)
    finite = bool(np.all(np.isfinite(array)) and jnp.all(jnp.isfinite(mean)))
    if finite:
        rhat = split_rhat(array)
        ess = effective_sample_size(array)
    else:  # diagnostics of non-finite draws mean nothing (and NumPy would warn)
        rhat = ess = np.full(array.shape[2], np.nan)
    converged = bool(np.all(rhat < 1.01) and np.all(ess >= 100))
    if not finite:
        status = McmcStatus.NOT_FINITE
    elif converged:
        status = McmcStatus.CONVERGED
    else:
        status = McmcStatus.NOT_CONVERGED
    result = McmcResult(
        summaries=summaries,
        mean=mean,
        variance=variance,
        rhat=rhat,
        ess=ess,
        step_size=float(step),
        smoothing=float(smoothing),
        num_gradient_evaluations=gradients_per_step * (num_warmup + thinning * num_samples),
        status=status,
    )
    return check(result, throw)


def _flatten(x):
    return x.reshape(-1)


@functools.partial(
    jax.jit,
    static_argnames=(
        "method",
        "num_stages",
        "eta",
        "num_warmup",
        "thinning",
        "num_samples",
        "summary_fn",
    ),
)
def _run_chains(
    keys,
    x0,
    posterior,
    step,
    smoothing,
    *,
    method,
    num_stages,
    eta,
    num_warmup,
    thinning,
    num_samples,
    summary_fn,
):
    drift = moreau_yosida_drift(posterior, smoothing)
    if method == "skrock":
        kernel = _skrock_kernel(drift, step, num_stages, eta)
    else:
        kernel = _myula_kernel(drift, step)
    summary_fn = summary_fn or _flatten

    def run_chain(chain_key, x):
        warm_key, sample_key = jax.random.split(chain_key)

        def one(x, k):
            return kernel(k, x), None

        if num_warmup > 0:
            x, _ = jax.lax.scan(one, x, jax.random.split(warm_key, num_warmup))

        def block(carry, k):
            x, mean, m2, count = carry
            x, _ = jax.lax.scan(one, x, jax.random.split(k, thinning))
            count = count + 1
            delta = x - mean
            mean = mean + delta / count
            m2 = m2 + delta * (x - mean)
            return (x, mean, m2, count), summary_fn(x)

        zeros = jnp.zeros_like(x)
        (x, mean, m2, count), summaries = jax.lax.scan(
            block,
            (x, zeros, zeros, jnp.asarray(0.0, x.dtype)),
            jax.random.split(sample_key, num_samples),
        )
        return summaries, mean, m2 / (count - 1)

    if not posterior.operator.supports_vmap:
        # chains one after another (e.g. jax-finufft's batching rule fails on jax 0.10)
        return jax.lax.map(lambda k: run_chain(k, x0), keys)
    return jax.vmap(run_chain, in_axes=(0, None))(keys, x0)
