r"""Rate coefficients of the primordial network recovered inside NUTS, with coverage.

A reduced, fast sub-network of :mod:`astrobayes.physics.chemistry` at fixed temperature
and density: hydrogen only (H, H⁺, H⁻, H₂, e⁻), the four reactions that make H₂ through
the H⁻ channel in a recombining gas, with the rate coefficients of
:func:`~astrobayes.physics.chemistry.rate_coefficients`:

====  ======================  =================================
 #    reaction                role
====  ======================  =================================
 2    H⁺ + e → H + γ          recombination (multiplier :math:`f_2`)
 7    H + e → H⁻ + γ          H⁻ formation (multiplier :math:`f_7`)
 8    H⁻ + H → H₂ + e         associative detachment
 14   H⁻ + H⁺ → 2H            mutual neutralisation
====  ======================  =================================

H⁻ is destroyed on a time scale :math:`1/(k_8 n_H) \sim 10^7` s, four to six orders of
magnitude faster than everything else, so it is put in chemical equilibrium,
:math:`x_{H^-} = k_7 x_H x_e / (k_8 x_H + k_{14} x_{H^+})` (the reduction of Abel et al.
1997, §2, who set H⁻ and H₂⁺ to equilibrium), which removes the stiffness: the remaining
ODE in :math:`(x_{H^+}, x_{H_2})`, with :math:`x_e = x_{H^+} - x_{H^-}` and
:math:`x_H = 1 - x_{H^+} - x_{H^-} - 2x_{H_2}`, is solved with ``diffrax.Tsit5`` and
differentiated through the solver (``RecursiveCheckpointAdjoint``, reverse mode of the
discretised solve). The full stiff sub-network (H⁻ as a species, ``diffrax.Kvaerno5``)
is :func:`solve_stiff_subnetwork`; the reduction changes :math:`\log_{10} x` by
< 1e-4 dex at the default conditions (tests/test_physics_rates.py).

Parameters: :math:`\theta = (\log_{10} f_7, \log_{10} f_2)`, Gaussian priors of width
``prior_std_dex``. Data: :math:`\log_{10} x_e` and :math:`\log_{10} x_{H_2}` at
``num_times`` log-spaced times, with Gaussian noise of ``noise_dex``.

References:
    Abel, Anninos, Zhang & Norman 1997 (arXiv:astro-ph/9608040); Galli & Palla 1998
    (arXiv:astro-ph/9803315); Talts et al. 2018, "Validating Bayesian inference algorithms
    with simulation-based calibration" (arXiv:1804.06788) for coverage under the prior;
    Kidger 2021 (arXiv:2202.02435) for diffrax.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes.diagnostics import split_rhat
from astrobayes.models import Model
from astrobayes.physics.chemistry import STOICHIOMETRY, rate_coefficients
from astrobayes.sampling import NUTSDraws, sample_nuts

__all__ = [
    "RateDrawsCheck",
    "RateDrawsStatus",
    "check_rate_draws",
    "RATE_PARAMETERS",
    "RateNetworkConfig",
    "RateProblem",
    "posterior_interval_coverage",
    "rate_logdensity",
    "rate_models",
    "sample_rate_posteriors",
    "simulate_rate_data",
    "solve_rate_network",
    "solve_stiff_subnetwork",
]

RATE_PARAMETERS = ("log10_f7", "log10_f2")
"""Parameter names: log10 multipliers of k7 (H⁻ formation) and k2 (recombination)."""

# Zero-based reaction indices of chemistry.REACTIONS: k2, k7, k8, k14.
_REACTIONS = np.array([1, 6, 7, 13])
# Species of the stiff sub-network, indices into chemistry.SPECIES: H, H+, H-, H2, e-.
_SPECIES = np.array([0, 1, 2, 3, 8])


@dataclass(frozen=True)
class RateNetworkConfig:
    """Conditions, observations and priors of the rate-recovery problem.

    Attributes:
        temperature: Gas temperature in K (held fixed).
        density: Hydrogen-nuclei density in cm⁻³.
        ionised_fraction: Initial H⁺ (= e⁻) abundance; H₂ and H⁻ start at zero.
        log10_times: ``(first, last)`` log10 of the observation times in s.
        num_times: Number of log-spaced observation times.
        noise_dex: Standard deviation of the Gaussian noise on each log10 abundance.
        prior_std_dex: Standard deviation of the Gaussian priors on the log10 multipliers.
        rtol: Relative tolerance of the ODE solver (absolute 1e-14).

    """

    temperature: float = 3000.0
    density: float = 100.0
    ionised_fraction: float = 0.1
    log10_times: tuple[float, float] = (9.0, 13.0)
    num_times: int = 6
    noise_dex: float = 0.05
    prior_std_dex: float = 0.3
    rtol: float = 1e-8

    def __post_init__(self) -> None:
        for name in ("temperature", "density", "noise_dex", "prior_std_dex", "rtol"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite positive number; got {value!r}")
        if not 0.0 < self.ionised_fraction < 1.0:
            raise ValueError(f"ionised_fraction must lie in (0, 1); got {self.ionised_fraction}")
        first, last = self.log10_times
        if not (np.isfinite(first) and np.isfinite(last) and first < last):
            raise ValueError(
                f"log10_times must be a finite (first, last) with first < last; got "
                f"{self.log10_times!r}"
            )
        check_positive_int(self.num_times, "num_times")

    @property
    def times(self) -> np.ndarray:
        """Observation times in s, ``(num_times,)``."""
        return np.logspace(*self.log10_times, self.num_times)


def _coefficients(log10_multipliers, temperature):
    """k2, k7, k8, k14 at ``temperature`` with k7 and k2 scaled by 10**theta."""
    k = rate_coefficients(jnp.asarray(temperature, log10_multipliers.dtype))[_REACTIONS]
    scale = 10.0 ** jnp.stack([log10_multipliers[1], log10_multipliers[0]])
    return k.at[:2].multiply(scale)


def _h_minus(k, x_h, x_hp, x_e):
    """Equilibrium H⁻ abundance: formation k7 x_H x_e = destruction (k8 x_H + k14 x_H+)."""
    return k[1] * x_h * x_e / (k[2] * x_h + k[3] * x_hp)


def _reduced_field(t, y, args):
    """(x_H+, x_H2) -> time derivative, H⁻ in equilibrium (charge: x_e = x_H+ - x_H-)."""
    del t
    k, density = args
    x_hp, x_h2 = y[0], y[1]
    # x_H- << x_H+, so x_e = x_H+ - x_H- and x_H = 1 - x_H+ - x_H- - 2 x_H2 are solved by
    # two fixed-point steps from x_H- = 0 (the correction is ~1e-9 relative).
    x_hm = jnp.zeros_like(x_hp)
    for _ in range(2):
        x_e = x_hp - x_hm
        x_h = 1.0 - x_hp - x_hm - 2.0 * x_h2
        x_hm = _h_minus(k, x_h, x_hp, x_e)
    x_e = x_hp - x_hm
    x_h = 1.0 - x_hp - x_hm - 2.0 * x_h2
    recombination = k[0] * x_hp * x_e
    neutralisation = k[3] * x_hm * x_hp
    detachment = k[2] * x_hm * x_h
    return density * jnp.stack([-recombination - neutralisation, detachment])


def solve_rate_network(
    log10_multipliers: Float[ArrayLike, " 2"], config: RateNetworkConfig
) -> Float[Array, "num_times 2"]:
    r""":math:`\log_{10}(x_e, x_{H_2})` at the observation times (reduced network, Tsit5).

    Pure JAX (jit, vmap and grad through the solver). A failed solve gives NaN.

    Args:
        log10_multipliers: :math:`(\log_{10} f_7, \log_{10} f_2)`.
        config: :class:`RateNetworkConfig`.

    Returns:
        ``(num_times, 2)`` log10 abundances per H nucleus of e⁻ and H₂.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     out = solve_rate_network(jax.numpy.zeros(2), RateNetworkConfig(num_times=3))
        >>> [round(float(v), 2) for v in out[-1]]
        [-3.09, -2.19]

    """
    theta = jnp.asarray(log10_multipliers)
    theta = theta.astype(jnp.result_type(theta.dtype, jnp.float32))
    dtype = theta.dtype
    k = _coefficients(theta, config.temperature)
    times = jnp.asarray(config.times, dtype)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_reduced_field),
        diffrax.Tsit5(),
        t0=jnp.zeros((), dtype),
        t1=times[-1],
        dt0=times[0] * 1e-3,
        y0=jnp.asarray([config.ionised_fraction, 0.0], dtype),
        args=(k, jnp.asarray(config.density, dtype)),
        saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=config.rtol, atol=1e-14),
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
        max_steps=1024,
        throw=False,
    )
    x_hp, x_h2 = solution.ys[:, 0], solution.ys[:, 1]
    x_h = 1.0 - x_hp - 2.0 * x_h2
    x_e = x_hp - _h_minus(k, x_h, x_hp, x_hp)
    out = jnp.log10(jnp.stack([x_e, x_h2], axis=-1))
    is_successful = solution.result == diffrax.RESULTS.successful
    return jnp.where(is_successful, out, jnp.nan)


def _stiff_field(t, x, args):
    del t
    k, density = args
    first = np.array([1, 0, 2, 2])  # k2: H+ e; k7: H e; k8: H- H; k14: H- H+
    second = np.array([4, 4, 0, 1])
    stoichiometry = jnp.asarray(STOICHIOMETRY[np.ix_(_SPECIES, _REACTIONS)], x.dtype)
    return stoichiometry @ (k * x[first] * x[second] * density)


def solve_stiff_subnetwork(
    log10_multipliers: Float[ArrayLike, " 2"], config: RateNetworkConfig
) -> Float[Array, "num_times 2"]:
    r"""The same sub-network with H⁻ as a species, by ``diffrax.Kvaerno5`` (float64).

    The check of the equilibrium-H⁻ reduction of :func:`solve_rate_network` (the rows of
    :data:`~astrobayes.physics.chemistry.STOICHIOMETRY` for H, H⁺, H⁻, H₂, e⁻ and the
    columns of reactions 2, 7, 8, 14).

    Args:
        log10_multipliers: :math:`(\log_{10} f_7, \log_{10} f_2)`.
        config: :class:`RateNetworkConfig`.

    Returns:
        ``(num_times, 2)`` log10 abundances of e⁻ and H₂ (NaN if the solve failed).

    Raises:
        ValueError: Without float64.

    """
    if not jax.config.jax_enable_x64:
        raise ValueError("solve_stiff_subnetwork needs float64 (jax_enable_x64); got float32 mode")
    theta = jnp.asarray(log10_multipliers, jnp.float64)
    k = _coefficients(theta, config.temperature)
    times = jnp.asarray(config.times)
    x0 = jnp.array([1.0 - config.ionised_fraction, config.ionised_fraction, 0.0, 0.0, 0.0])
    x0 = x0.at[4].set(config.ionised_fraction)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_stiff_field),
        diffrax.Kvaerno5(root_finder=optx.Newton(rtol=1e-10, atol=1e-16)),
        t0=0.0,
        t1=times[-1],
        dt0=1.0,
        y0=x0,
        args=(k, jnp.asarray(config.density, jnp.float64)),
        saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-20),
        max_steps=20_000,
        throw=False,
    )
    out = jnp.log10(solution.ys[:, jnp.array([4, 3])])
    return jnp.where(solution.result == diffrax.RESULTS.successful, out, jnp.nan)


def simulate_rate_data(
    key: PRNGKeyArray, log10_multipliers: Float[ArrayLike, " 2"], config: RateNetworkConfig
) -> Float[Array, "num_times 2"]:
    """Noisy log10 abundances (e⁻, H₂): the solve plus Gaussian noise of ``noise_dex``.

    Args:
        key: JAX PRNG key.
        log10_multipliers: True parameters.
        config: :class:`RateNetworkConfig`.

    Returns:
        ``(num_times, 2)`` observations.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     y = simulate_rate_data(jax.random.key(0), jax.numpy.zeros(2),
        ...                            RateNetworkConfig(num_times=3))
        >>> y.shape
        (3, 2)

    """
    check_key(key)
    clean = solve_rate_network(log10_multipliers, config)
    return clean + config.noise_dex * jax.random.normal(key, clean.shape, clean.dtype)


class RateProblem(eqx.Module):
    """One data set and the noise level the likelihood assumes (the ``params`` of NUTS).

    Attributes:
        observations: ``(num_times, 2)`` log10 abundances (e⁻, H₂).
        assumed_noise_dex: Noise standard deviation in the likelihood (the true one for a
            calibrated posterior; smaller for the under-coverage control).
        config: :class:`RateNetworkConfig` (static).

    """

    observations: Float[Array, "num_times 2"]
    assumed_noise_dex: Float[Array, ""]
    config: RateNetworkConfig = eqx.field(static=True)


def rate_logdensity(problem: RateProblem, theta: Float[Array, " 2"]) -> Float[Array, ""]:
    r"""Log posterior (up to the evidence) of :math:`\theta = (\log_{10} f_7, \log_{10} f_2)`.

    Gaussian priors :math:`N(0, \mathrm{prior\_std\_dex}^2)` and a Gaussian likelihood of
    the log10 abundances (normalised); a failed solve gives :math:`-\infty`.

    Args:
        problem: :class:`RateProblem`.
        theta: ``(2,)`` log10 multipliers.

    Returns:
        Scalar +log density.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> config = RateNetworkConfig(num_times=3)
        >>> with jax.enable_x64(True):
        ...     data = simulate_rate_data(jax.random.key(1), jnp.zeros(2), config)
        ...     problem = RateProblem(data, jnp.asarray(0.05), config)
        ...     good = rate_logdensity(problem, jnp.zeros(2))
        ...     bad = rate_logdensity(problem, jnp.array([0.5, 0.0]))
        >>> bool(good > bad)
        True

    """
    config = problem.config
    prior = dist.Normal(0.0, config.prior_std_dex).log_prob(theta).sum()
    model = solve_rate_network(theta, config)
    log_likelihood = (
        dist.Normal(model, problem.assumed_noise_dex).log_prob(problem.observations).sum()
    )
    value = prior + log_likelihood
    return jnp.where(jnp.isfinite(value), value, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("num_warmup", "num_samples"))
def _sample_batch(keys, problems, initial_positions, num_warmup, num_samples):
    def one(key, problem, positions):
        return sample_nuts(
            key,
            rate_logdensity,
            problem,
            positions,
            num_warmup=num_warmup,
            num_samples=num_samples,
        )

    return jax.vmap(one)(keys, problems, initial_positions)


def sample_rate_posteriors(
    key: PRNGKeyArray,
    observations: Float[ArrayLike, "num_datasets num_times 2"],
    config: RateNetworkConfig,
    *,
    assumed_noise_dex: float | None = None,
    num_chains: int = 4,
    num_warmup: int = 300,
    num_samples: int = 500,
) -> NUTSDraws:
    """NUTS on many data sets at once: ``vmap`` of :func:`~astrobayes.sampling.sample_nuts`.

    One compiled program for the whole batch (the data sets are arguments, not
    constants); chains start at prior draws. Data set ``i`` uses ``fold_in(key, i)``.

    Args:
        key: JAX PRNG key.
        observations: ``(num_datasets, num_times, 2)`` from :func:`simulate_rate_data`.
        config: :class:`RateNetworkConfig`.
        assumed_noise_dex: Noise in the likelihood (default ``config.noise_dex``).
        num_chains: Chains per data set.
        num_warmup: Warm-up steps per chain.
        num_samples: Draws per chain.

    Returns:
        :class:`~astrobayes.sampling.NUTSDraws` with a leading ``num_datasets`` axis.

    Raises:
        ValueError: On a wrong observation shape or a non-positive noise.

    """
    check_key(key)
    observations = jnp.asarray(observations)
    expected = (config.num_times, 2)
    if observations.ndim != 3 or observations.shape[1:] != expected:
        raise ValueError(
            f"observations must have shape (num_datasets, {expected[0]}, 2); got "
            f"{observations.shape}"
        )
    noise = config.noise_dex if assumed_noise_dex is None else float(assumed_noise_dex)
    if not noise > 0:
        raise ValueError(f"assumed_noise_dex must be positive; got {assumed_noise_dex}")
    num_datasets = observations.shape[0]
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_datasets))
    start_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1_000_003))(keys)
    starts = config.prior_std_dex * jax.vmap(
        lambda k: jax.random.normal(k, (num_chains, 2), observations.dtype)
    )(start_keys)
    problems = RateProblem(
        observations, jnp.full((num_datasets,), noise, observations.dtype), config
    )
    return _sample_batch(
        keys,
        problems,
        starts,
        check_positive_int(num_warmup, "num_warmup", minimum=10),
        check_positive_int(num_samples, "num_samples"),
    )


class RateDrawsStatus(Status):
    """Convergence of the NUTS runs of :func:`sample_rate_posteriors`."""

    OK = (Severity.OK, "every data set: split R-hat within the threshold, no divergences")
    RHAT_HIGH = (
        Severity.WARNING,
        "warning: split R-hat above the threshold on at least one data set (run it longer)",
    )
    DIVERGENT = (Severity.WARNING, "warning: divergent transitions on at least one data set")


class RateDrawsCheck(NamedTuple):
    """Per-data-set convergence diagnostics of a batch of NUTS runs.

    Attributes:
        rhat: Largest split R-hat over the parameters, ``(num_datasets,)``.
        num_divergent: Divergent transitions per data set, ``(num_datasets,)``.
        above: Indices of the data sets whose R-hat exceeds the threshold.
        status: :class:`RateDrawsStatus` (R-hat is reported before divergences).

    """

    rhat: np.ndarray
    num_divergent: np.ndarray
    above: np.ndarray
    status: RateDrawsStatus


def check_rate_draws(
    samples: Float[ArrayLike, "num_datasets num_chains num_samples dim"],
    is_divergent: Bool[ArrayLike, "num_datasets num_chains num_samples"],
    *,
    rhat_threshold: float = 1.01,
    throw: bool = False,
) -> RateDrawsCheck:
    """Split R-hat and divergences of every data set; a WARNING names what failed.

    Args:
        samples: Draws of :func:`sample_rate_posteriors` (``NUTSDraws.samples``).
        is_divergent: ``NUTSDraws.is_divergent`` of the same runs.
        rhat_threshold: Largest acceptable split R-hat (Vehtari et al. 2021,
            arXiv:1903.08008, recommend 1.01).
        throw: Raise on a failure status (never raised here: both findings are warnings).

    Returns:
        :class:`RateDrawsCheck`.

    Raises:
        ValueError: On shapes that disagree or a threshold not above 1.

    Example:
        >>> import numpy as np
        >>> draws = np.random.default_rng(0).normal(size=(2, 4, 1000, 2))
        >>> draws[1, 0] += 1.0  # one chain of data set 1 elsewhere
        >>> result = check_rate_draws(draws, np.zeros((2, 4, 1000), bool))
        >>> result.above.tolist(), result.status.name
        ([1], 'RHAT_HIGH')

    """
    samples = np.asarray(samples, np.float64)
    is_divergent = np.asarray(is_divergent, bool)
    if samples.ndim != 4 or is_divergent.shape != samples.shape[:3]:
        raise ValueError(
            "samples must be (num_datasets, num_chains, num_samples, dim) and is_divergent "
            f"(num_datasets, num_chains, num_samples); got {samples.shape} and "
            f"{is_divergent.shape}"
        )
    if not (np.isfinite(rhat_threshold) and rhat_threshold > 1.0):
        raise ValueError(f"rhat_threshold must be a finite number > 1; got {rhat_threshold}")
    rhat = np.array([np.max(split_rhat(s)) for s in samples])
    num_divergent = is_divergent.sum(axis=(1, 2))
    above = np.flatnonzero(~(rhat <= rhat_threshold))
    if above.size:
        status = RateDrawsStatus.RHAT_HIGH
    elif num_divergent.any():
        status = RateDrawsStatus.DIVERGENT
    else:
        status = RateDrawsStatus.OK
    return check(RateDrawsCheck(rhat, num_divergent, above, status), throw)


def posterior_interval_coverage(
    samples: Float[ArrayLike, "num_datasets num_draws dim"],
    truths: Float[ArrayLike, "num_datasets dim"],
    level: float,
) -> Bool[Array, "num_datasets dim"]:
    """Whether each truth lies in the central ``level`` interval of its posterior draws.

    Args:
        samples: Posterior draws per data set (chains flattened into ``num_draws``).
        truths: The parameters that generated each data set.
        level: Interval probability in (0, 1), e.g. 0.68.

    Returns:
        ``(num_datasets, dim)`` booleans; their mean is the coverage.

    Raises:
        ValueError: On a level outside (0, 1) or disagreeing shapes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> draws = jax.random.normal(jax.random.key(0), (1, 4000, 1))
        >>> posterior_interval_coverage(draws, jnp.array([[0.5]]), 0.68).tolist()
        [[True]]

    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    samples = jnp.asarray(samples)
    truths = jnp.asarray(truths)
    if samples.ndim != 3 or truths.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(
            "samples must be (num_datasets, num_draws, dim) and truths (num_datasets, dim); "
            f"got {samples.shape} and {truths.shape}"
        )
    low = jnp.quantile(samples, 0.5 - level / 2, axis=1)
    high = jnp.quantile(samples, 0.5 + level / 2, axis=1)
    return (truths >= low) & (truths <= high)


def rate_models(
    observations: Float[ArrayLike, "num_times 2"], config: RateNetworkConfig
) -> list[Model]:
    r"""Two models of one data set for :func:`astrobayes.comparison.compare`.

    ``rates_free``: both log10 multipliers free; ``recombination_fixed``: :math:`f_2 = 1`
    (only :math:`\log_{10} f_7` free). Same priors and likelihood as
    :func:`rate_logdensity`.

    Args:
        observations: ``(num_times, 2)`` log10 abundances.
        config: :class:`RateNetworkConfig`.

    Returns:
        ``[rates_free, recombination_fixed]``.

    Example:
        >>> import jax.numpy as jnp
        >>> [m.name for m in rate_models(jnp.zeros((6, 2)), RateNetworkConfig())]
        ['rates_free', 'recombination_fixed']

    """
    observations = jnp.asarray(observations)
    if observations.shape != (config.num_times, 2):
        raise ValueError(
            f"observations must have shape ({config.num_times}, 2); got {observations.shape}"
        )

    def log_likelihood(theta):
        model = solve_rate_network(theta, config)
        value = dist.Normal(model, config.noise_dex).log_prob(observations).sum()
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    prior = dist.Normal(0.0, config.prior_std_dex)
    free = Model.from_priors(
        "rates_free",
        lambda p: log_likelihood(jnp.stack([p["log10_f7"], p["log10_f2"]])),
        {"log10_f7": prior, "log10_f2": prior},
    )
    fixed = Model.from_priors(
        "recombination_fixed",
        lambda p: log_likelihood(jnp.stack([p["log10_f7"], jnp.zeros_like(p["log10_f7"])])),
        {"log10_f7": prior},
    )
    return [free, fixed]
