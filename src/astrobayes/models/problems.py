"""Inference problems with a known evidence, for tests, demos and benchmarks.

Each :class:`EvidenceProblem` carries the exact log evidence, an unnormalised log
posterior (``log L + log pi`` with the prior normalised; NumPy float64 or JAX through
``xp``) and an exact posterior sampler, so estimators can be checked against the truth
without any MCMC error. The data of the one data-driven problem (radiata pine) are read by
:func:`astrobayes.io.read_radiata_pine`.

The module (~525 lines) is the catalogue of the seven families, each a self-contained
function of about 50 lines sharing :class:`EvidenceProblem` and two helpers; it is kept
whole so the catalogue reads in one place.

References:
    McEwen et al. (2021), arXiv:2111.12720, section 6 (the same families of problems);
    Friel & Pettitt (2008), J. R. Stat. Soc. B 70, 589 (radiata pine);
    Williams (1959), "Regression analysis".

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jaxtyping import ArrayLike, Float
from scipy import integrate, special, stats

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes.chains import Chains

__all__ = [
    "EvidenceProblem",
    "bimodal_gaussian",
    "gaussian_gaussian_prior",
    "gaussian_uniform_prior",
    "normal_gamma",
    "radiata_pine",
    "rosenbrock",
    "skewed_gumbel",
]


class EvidenceProblem(NamedTuple):
    """A posterior with a known evidence.

    Attributes:
        name: Short name.
        dim: Number of parameters.
        log_evidence: Exact ``ln z`` (or a quadrature value accurate to < 1e-6).
        log_posterior_fn: ``f(theta, xp=numpy) -> log L + log pi`` on ``(..., dim)``.
        sampler: ``sampler(key, num) -> (num, dim)`` exact posterior draws (NumPy).
        names: Parameter names.
        bounds: ``(dim, 2)`` prior support (``inf`` where unbounded).

    """

    name: str
    dim: int
    log_evidence: float
    log_posterior_fn: Callable[..., Any]
    sampler: Callable[[jax.Array, int], np.ndarray]
    names: tuple[str, ...]
    bounds: np.ndarray

    def sample_chains(self, key: jax.Array, num_chains: int, num_samples: int) -> Chains:
        """Exact independent posterior draws as :class:`Chains`.

        Args:
            key: JAX PRNG key.
            num_chains: Number of chains.
            num_samples: Draws per chain.

        Returns:
            Chains with float64 log posteriors.

        """
        check_key(key)
        num_chains = check_positive_int(num_chains, "num_chains")
        num_samples = check_positive_int(num_samples, "num_samples")
        draws = self.sampler(key, num_chains * num_samples).reshape(
            num_chains, num_samples, self.dim
        )
        return Chains(draws, self.log_posterior_fn(draws), names=self.names)

    def logdensity_fn(self, theta):
        """JAX +log density (for gradient-based samplers)."""
        import jax.numpy as jnp

        return self.log_posterior_fn(theta, xp=jnp)


def _rng(key: jax.Array) -> np.random.Generator:
    """NumPy generator seeded from a JAX key (explicit randomness, reproducible)."""
    data = np.asarray(jax.random.key_data(key)).ravel().astype(np.uint64)
    return np.random.default_rng(data.tolist())


def _log_gauss(x, mean, inv_cov, log_det, xp):
    r = x - mean
    quad = xp.einsum("...i,ij,...j->...", r, inv_cov, r)
    return -0.5 * quad - 0.5 * log_det - 0.5 * mean.shape[-1] * np.log(2 * np.pi)


def gaussian_gaussian_prior(
    dim: int, *, prior_std: float = 3.0, correlation: float = 0.5, seed: int = 0
) -> EvidenceProblem:
    """Gaussian likelihood (correlated, unit-ish scale) with a Gaussian prior.

    ``y ~ N(theta, Sigma_L)``, ``theta ~ N(0, prior_std^2 I)``; evidence
    ``z = N(y; 0, Sigma_L + prior_std^2 I)``.

    Args:
        dim: Number of parameters (>= 1).
        prior_std: Prior standard deviation.
        correlation: Correlation between neighbouring likelihood components.
        seed: Seed of the fixed data vector ``y`` and covariance.

    Returns:
        :class:`EvidenceProblem`.

    """
    dim = check_positive_int(dim, "dim")
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 1.5, dim)
    corr = np.eye(dim) + correlation * (np.eye(dim, k=1) + np.eye(dim, k=-1))
    corr = corr / np.max(np.abs(np.linalg.eigvalsh(corr))) * 0.999 + 1e-3 * np.eye(dim)
    corr = corr / np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    cov_l = corr * np.outer(scales, scales)
    y = rng.normal(0, prior_std, dim)
    cov_p = prior_std**2 * np.eye(dim)
    inv_l, inv_p = np.linalg.inv(cov_l), np.linalg.inv(cov_p)
    logdet_l, logdet_p = np.linalg.slogdet(cov_l)[1], np.linalg.slogdet(cov_p)[1]
    post_cov = np.linalg.inv(inv_l + inv_p)
    post_mean = post_cov @ inv_l @ y
    chol = np.linalg.cholesky(post_cov)
    cov_z = cov_l + cov_p
    log_z = float(stats.multivariate_normal(np.zeros(dim), cov_z).logpdf(y))
    zeros = np.zeros(dim)

    def log_posterior_fn(theta, xp=np):
        return _log_gauss(theta, y, inv_l, logdet_l, xp) + _log_gauss(
            theta, zeros, inv_p, logdet_p, xp
        )

    def sampler(key, num):
        return post_mean + _rng(key).standard_normal((num, dim)) @ chol.T

    bounds = np.tile([-np.inf, np.inf], (dim, 1))
    names = tuple(f"theta_{i}" for i in range(dim))
    return EvidenceProblem(
        name=f"gaussian_gaussian_d{dim}",
        dim=dim,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=names,
        bounds=bounds,
    )


def gaussian_uniform_prior(dim: int, *, half_width: float = 10.0, seed: int = 0) -> EvidenceProblem:
    """Gaussian likelihood (diagonal) with a uniform prior box ``[-half_width, half_width]^d``.

    ``z = (2 half_width)^-d prod_i [Phi((a - y_i)/s_i) - Phi((-a - y_i)/s_i)]``; the
    posterior is a truncated Gaussian, sampled exactly.

    Args:
        dim: Number of parameters.
        half_width: Half width of the prior box.
        seed: Seed of the data vector and scales.

    Returns:
        :class:`EvidenceProblem`.

    """
    dim = check_positive_int(dim, "dim")
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 1.5, dim)
    y = rng.uniform(-0.5 * half_width, 0.5 * half_width, dim)
    lo, hi = (-half_width - y) / scales, (half_width - y) / scales
    log_mass = np.log(special.ndtr(hi) - special.ndtr(lo))
    log_z = float(np.sum(log_mass) - dim * np.log(2 * half_width))

    def log_posterior_fn(theta, xp=np):
        r = (theta - y) / scales
        log_like = (
            -0.5 * xp.sum(r**2, axis=-1) - np.sum(np.log(scales)) - 0.5 * dim * np.log(2 * np.pi)
        )
        inside = xp.all(xp.abs(theta) <= half_width, axis=-1)
        return xp.where(inside, log_like - dim * np.log(2 * half_width), -xp.inf)

    def sampler(key, num):
        draws = stats.truncnorm.rvs(lo, hi, size=(num, dim), random_state=_rng(key))
        return y + scales * draws

    bounds = np.tile([-half_width, half_width], (dim, 1))
    names = tuple(f"theta_{i}" for i in range(dim))
    return EvidenceProblem(
        name=f"gaussian_uniform_d{dim}",
        dim=dim,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=names,
        bounds=bounds,
    )


def rosenbrock(
    *, a: float = 1.0, b: float = 10.0, x_range=(-5.0, 5.0), y_range=(-5.0, 30.0)
) -> EvidenceProblem:
    """2-d Rosenbrock likelihood ``exp(-(a - x)^2 - b (y - x^2)^2)`` with a uniform prior box.

    The evidence is computed by adaptive quadrature (the inner integral over ``y`` in
    closed form with normal CDFs); exact draws: ``x`` by inverse CDF of its exact
    marginal on a fine grid, then ``y | x`` from a truncated normal.

    Args:
        a: Location of the valley.
        b: Curvature strength.
        x_range: Prior range of ``x``.
        y_range: Prior range of ``y``.

    Returns:
        :class:`EvidenceProblem`.

    """
    (x0, x1), (y0, y1) = x_range, y_range
    log_volume = np.log((x1 - x0) * (y1 - y0))
    s = 1.0 / np.sqrt(2.0 * b)

    def inner(x):
        return np.sqrt(np.pi / b) * (special.ndtr((y1 - x**2) / s) - special.ndtr((y0 - x**2) / s))

    def marginal(x):
        return np.exp(-((a - x) ** 2)) * inner(x)

    mass, _ = integrate.quad(marginal, x0, x1, epsabs=0, epsrel=1e-12, limit=500, points=[a])
    log_z = float(np.log(mass) - log_volume)
    grid = np.linspace(x0, x1, 200_001)
    pdf = marginal(grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]

    def log_posterior_fn(theta, xp=np):
        x, y = theta[..., 0], theta[..., 1]
        log_like = -((a - x) ** 2) - b * (y - x**2) ** 2
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return xp.where(inside, log_like - log_volume, -xp.inf)

    def sampler(key, num):
        rng = _rng(key)
        x = np.interp(rng.uniform(size=num), cdf, grid)
        y = x**2 + s * stats.truncnorm.rvs((y0 - x**2) / s, (y1 - x**2) / s, random_state=rng)
        return np.stack([x, y], axis=-1)

    bounds = np.array([x_range, y_range], dtype=float)
    return EvidenceProblem(
        name="rosenbrock",
        dim=2,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=("x", "y"),
        bounds=bounds,
    )


def normal_gamma(
    *,
    num_data: int = 100,
    mu0: float = 0.0,
    lambda0: float = 1.0,
    a0: float = 2.0,
    b0: float = 2.0,
    seed: int = 0,
) -> EvidenceProblem:
    """Normal data with unknown mean and precision under the conjugate Normal-Gamma prior.

    ``y_i ~ N(mu, 1/tau)``, ``tau ~ Gamma(a0, rate=b0)``, ``mu | tau ~ N(mu0, 1/(lambda0 tau))``.
    Parameters ``(mu, log tau)``; the density includes the Jacobian ``tau`` of the log
    transform, so the evidence is that of the original model:
    ``z = Gamma(a_n) b0^a0 sqrt(lambda0 / lambda_n) / (Gamma(a0) b_n^a_n (2 pi)^(n/2))``.

    Returns:
        :class:`EvidenceProblem`.

    References:
        Bernardo & Smith (1994), "Bayesian Theory"; McEwen et al. (2021), arXiv:2111.12720.

    """
    rng = np.random.default_rng(seed)
    data = rng.normal(1.0, 2.0, num_data)
    n, mean = num_data, data.mean()
    lambda_n = lambda0 + n
    mu_n = (lambda0 * mu0 + n * mean) / lambda_n
    a_n = a0 + 0.5 * n
    b_n = b0 + 0.5 * np.sum((data - mean) ** 2) + lambda0 * n * (mean - mu0) ** 2 / (2 * lambda_n)
    log_z = float(
        special.gammaln(a_n)
        - special.gammaln(a0)
        + a0 * np.log(b0)
        - a_n * np.log(b_n)
        + 0.5 * np.log(lambda0 / lambda_n)
        - 0.5 * n * np.log(2 * np.pi)
    )
    sum_y, sum_y2 = data.sum(), np.sum(data**2)

    def log_posterior_fn(theta, xp=np):
        mu, log_tau = theta[..., 0], theta[..., 1]
        tau = xp.exp(log_tau)
        sq = sum_y2 - 2 * mu * sum_y + n * mu**2
        log_like = 0.5 * n * log_tau - 0.5 * tau * sq - 0.5 * n * np.log(2 * np.pi)
        log_prior_tau = a0 * np.log(b0) - special.gammaln(a0) + (a0 - 1) * log_tau - b0 * tau
        log_prior_mu = (
            0.5 * (np.log(lambda0) + log_tau - np.log(2 * np.pi))
            - 0.5 * lambda0 * tau * (mu - mu0) ** 2
        )
        return log_like + log_prior_tau + log_prior_mu + log_tau

    def sampler(key, num):
        rng = _rng(key)
        tau = rng.gamma(a_n, 1.0 / b_n, num)
        mu = rng.normal(mu_n, 1.0 / np.sqrt(lambda_n * tau))
        return np.stack([mu, np.log(tau)], axis=-1)

    bounds = np.tile([-np.inf, np.inf], (2, 1))
    return EvidenceProblem(
        name="normal_gamma",
        dim=2,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=("mu", "log_tau"),
        bounds=bounds,
    )


def bimodal_gaussian(
    dim: int = 2, *, separation: float = 4.0, prior_std: float = 5.0
) -> EvidenceProblem:
    """Likelihood ``0.5 N(theta; m, I) + 0.5 N(theta; -m, I)`` with prior ``N(0, prior_std^2 I)``.

    ``m = separation / 2 (1, ..., 1) / sqrt(d)``: two well separated, equally weighted modes;
    ``z = N(m; 0, (1 + prior_std^2) I)``.

    Returns:
        :class:`EvidenceProblem`.

    """
    dim = check_positive_int(dim, "dim")
    m = np.full(dim, 0.5 * separation / np.sqrt(dim))
    s2 = prior_std**2
    log_z = float(stats.multivariate_normal(np.zeros(dim), (1 + s2) * np.eye(dim)).logpdf(m))
    post_var = s2 / (1 + s2)
    post_mean = m * s2 / (1 + s2)

    def log_posterior_fn(theta, xp=np):
        def log_n(x, mean, var):
            return -0.5 * xp.sum((x - mean) ** 2, axis=-1) / var - 0.5 * dim * np.log(
                2 * np.pi * var
            )

        log_like = xp.logaddexp(log_n(theta, m, 1.0), log_n(theta, -m, 1.0)) - np.log(2.0)
        return log_like + log_n(theta, 0.0, s2)

    def sampler(key, num):
        rng = _rng(key)
        sign = np.where(rng.uniform(size=(num, 1)) < 0.5, 1.0, -1.0)
        return sign * post_mean + np.sqrt(post_var) * rng.standard_normal((num, dim))

    bounds = np.tile([-np.inf, np.inf], (dim, 1))
    names = tuple(f"theta_{i}" for i in range(dim))
    return EvidenceProblem(
        name=f"bimodal_d{dim}",
        dim=dim,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=names,
        bounds=bounds,
    )


def skewed_gumbel(dim: int, *, log_evidence: float = 5.0, seed: int = 0) -> EvidenceProblem:
    """A skewed, correlated posterior with a known evidence: mixed Gumbel variables.

    ``theta = A u`` with ``u_i ~ Gumbel(0, 1)`` independent (skewness 1.14, excess
    kurtosis 2.4) and ``A`` a random rotation times scales in ``[e^-1, e]``, times the
    constant ``z = exp(log_evidence)``: ``log p~(theta) = log z - log|det A| + sum_i
    (-u_i - exp(-u_i))`` with ``u = A^-1 theta``. In 30 dimensions its one-sided
    directions (like those of the cosmic-shear posterior, docs/cosmic_shear.md) defeat
    targets fitted on a few thousand draws, which makes it the check of evidence
    estimators at that size.

    Args:
        dim: Number of parameters.
        log_evidence: The exact ``ln z`` (a constant factor of the density).
        seed: Seed of ``A``.

    Returns:
        :class:`EvidenceProblem` (unbounded support).

    Example:
        >>> import jax
        >>> problem = skewed_gumbel(3)
        >>> chains = problem.sample_chains(jax.random.key(0), 2, 100)
        >>> chains.samples.shape, problem.log_evidence
        ((2, 100, 3), 5.0)

    """
    dim = check_positive_int(dim, "dim")
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    mixing = rotation @ np.diag(np.exp(rng.uniform(-1.0, 1.0, dim)))
    inverse = np.linalg.inv(mixing)
    log_det = float(np.linalg.slogdet(mixing)[1])
    log_evidence = float(log_evidence)

    def log_posterior_fn(theta, xp=np):
        u = theta @ xp.asarray(inverse.T, dtype=theta.dtype)
        return log_evidence - log_det + xp.sum(-u - xp.exp(-u), axis=-1)

    def sampler(key, num):
        return _rng(key).gumbel(size=(num, dim)) @ mixing.T

    return EvidenceProblem(
        name=f"skewed_gumbel_d{dim}",
        dim=dim,
        log_evidence=log_evidence,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=tuple(f"theta_{i}" for i in range(dim)),
        bounds=np.tile([-np.inf, np.inf], (dim, 1)),
    )


def radiata_pine(
    table: Float[ArrayLike, "num_specimens 4"],
    covariate: str = "x",
    *,
    a0: float = 3.0,
    b0: float = 2 * 300.0**2,
    r0: float = 0.06,
    s0: float = 6.0,
) -> EvidenceProblem:
    """Bayesian linear regression of radiata pine strength on density (x) or adjusted density (z).

    ``y_i = alpha + beta (c_i - mean c) + e_i``, ``e_i ~ N(0, 1/tau)``, ``tau ~ Gamma(a0, rate=b0)``,
    ``alpha | tau ~ N(3000, 1/(r0 tau))``, ``beta | tau ~ N(185, 1/(s0 tau))``. Parameters
    ``(alpha, beta, log tau)`` with the Jacobian included. Conjugate: evidence analytic
    (multivariate Student-t marginal); reference ln z = -310.1283 (x), -301.7046 (z).

    Args:
        table: The data, columns ``id y x z`` (e.g. from
            :func:`astrobayes.io.read_radiata_pine`).
        covariate: ``"x"`` or ``"z"``.
        a0: Shape of the Gamma prior on the precision.
        b0: Rate of the Gamma prior on the precision.
        r0: Prior precision factor of the intercept.
        s0: Prior precision factor of the slope.

    Returns:
        :class:`EvidenceProblem`.

    Raises:
        ValueError: If ``covariate`` is not ``"x"`` or ``"z"``, or ``table`` is not a finite
            ``(n, >= 4)`` array.

    References:
        Williams (1959); Friel & Pettitt (2008); McEwen et al. (2021), arXiv:2111.12720.

    Example:
        >>> import numpy as np
        >>> table = np.array([[1, 3040, 29.2, 25.4], [2, 2470, 24.7, 22.2], [3, 3610, 32.3, 32.2]])
        >>> radiata_pine(table, "x").names
        ('alpha', 'beta', 'log_tau')

    """
    if covariate not in ("x", "z"):
        raise ValueError(f"covariate must be 'x' or 'z'; got {covariate!r}")
    table = as_float_array(table, "table", ndim=2)
    if table.shape[1] < 4:
        raise ValueError(f"table must have 4 columns (id y x z); got shape {table.shape}")
    check_finite(table, "table")
    y = table[:, 1]
    c = table[:, 2] if covariate == "x" else table[:, 3]
    c = c - c.mean()
    n = y.size
    design = np.stack([np.ones(n), c], axis=1)
    mu0 = np.array([3000.0, 185.0])
    prior_prec = np.diag([r0, s0])
    # Marginal y ~ t_{2 a0}(X mu0, (b0/a0)(I + X Q0^-1 X^T)).
    scale = (b0 / a0) * (np.eye(n) + design @ np.linalg.inv(prior_prec) @ design.T)
    log_z = float(stats.multivariate_t(design @ mu0, scale, df=2 * a0).logpdf(y))
    post_prec = prior_prec + design.T @ design
    post_cov_unit = np.linalg.inv(post_prec)
    post_mean = post_cov_unit @ (prior_prec @ mu0 + design.T @ y)
    a_n = a0 + 0.5 * n
    b_n = b0 + 0.5 * (y @ y + mu0 @ prior_prec @ mu0 - post_mean @ post_prec @ post_mean)
    chol = np.linalg.cholesky(post_cov_unit)
    logdet_prior = np.linalg.slogdet(prior_prec)[1]

    def log_posterior_fn(theta, xp=np):
        beta, log_tau = theta[..., :2], theta[..., 2]
        tau = xp.exp(log_tau)
        resid = y - xp.einsum("ij,...j->...i", design, beta)
        log_like = 0.5 * n * (log_tau - np.log(2 * np.pi)) - 0.5 * tau * xp.sum(resid**2, axis=-1)
        d = beta - mu0
        quad = xp.einsum("...i,ij,...j->...", d, prior_prec, d)
        log_prior_beta = (
            0.5 * (logdet_prior + 2 * log_tau - 2 * np.log(2 * np.pi)) - 0.5 * tau * quad
        )
        log_prior_tau = a0 * np.log(b0) - special.gammaln(a0) + (a0 - 1) * log_tau - b0 * tau
        return log_like + log_prior_beta + log_prior_tau + log_tau

    def sampler(key, num):
        rng = _rng(key)
        tau = rng.gamma(a_n, 1.0 / b_n, num)
        beta = post_mean + (rng.standard_normal((num, 2)) @ chol.T) / np.sqrt(tau)[:, None]
        return np.concatenate([beta, np.log(tau)[:, None]], axis=1)

    bounds = np.tile([-np.inf, np.inf], (3, 1))
    return EvidenceProblem(
        name=f"radiata_pine_{covariate}",
        dim=3,
        log_evidence=log_z,
        log_posterior_fn=log_posterior_fn,
        sampler=sampler,
        names=("alpha", "beta", "log_tau"),
        bounds=bounds,
    )
