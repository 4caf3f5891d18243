"""Sampling diagnostics, one implementation each: R-hat, ESS, Kish ESS, autocorrelation.

The ground floor of the package: every sampler (NUTS, SMC, proximal MCMC, nested
sampling) and every estimator (learned harmonic mean, SBI posteriors) reports its
diagnostics through these functions, so a number called "R-hat" or "ESS" means the same
thing everywhere. All functions are NumPy in float64 (Kish's ESS also accepts JAX arrays,
for use inside ``jit``); importance-ratio functions work on *log* ratios so that nothing
overflows.

| function | what |
|---|---|
| :func:`split_rhat` | split R-hat per dimension (BDA3 eq. 11.4) |
| :func:`effective_sample_size` | multi-chain ESS, Geyer's initial monotone sequence |
| :func:`integrated_autocorrelation_time` | 1-d IAT with Sokal's adaptive window |
| :func:`kish_effective_sample_size` | ``(sum w)^2 / sum w^2`` of importance weights |
| :func:`are_multiplicities` | integer weights (MCMC repeats) or importance weights |
| :func:`move_fractions` | how often each chain moved (a stuck walker moves never) |
| :func:`pareto_tail_index` | PSIS tail shape ``k`` of importance ratios |
| :func:`weighted_batch_means` | ratio estimator with a batch-means error |
| :func:`standardised_kurtosis` | weighted kurtosis |
| :func:`stationarity` | are the chains stationary (each chain's pieces agree), and which burn-in makes them so |
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BatchMeans",
    "are_multiplicities",
    "effective_sample_size",
    "integrated_autocorrelation_time",
    "kish_effective_sample_size",
    "move_fractions",
    "pareto_tail_index",
    "prior_edge_density",
    "split_rhat",
    "standardised_kurtosis",
    "stationarity",
    "Stationarity",
    "BURN_IN_FRACTIONS",
    "weighted_batch_means",
]


def pareto_tail_index(log_ratios: np.ndarray) -> float:
    """Generalised-Pareto shape ``k`` of the upper tail of ``exp(log_ratios)``.

    ``k > 0.5`` means the ratios have infinite variance (the importance target has
    fatter tails than the posterior), ``k > 0.7`` that even the mean is unreliable with
    practical sample sizes. The tail is the largest ``M = min(n / 5, 3 sqrt(n))`` values
    above the next one; the shape is estimated by the empirical-Bayes method of Zhang &
    Stephens (2009) with the weakly informative shrinkage towards 0.5 recommended by
    Vehtari et al.

    Args:
        log_ratios: Natural logs of the ratios, shape ``(n,)``; non-finite entries are
            not allowed.

    Returns:
        The estimated shape ``k`` (``nan`` when fewer than 20 values are given).

    References:
        Zhang & Stephens (2009), Technometrics 51, 316. Vehtari, Simpson, Gelman, Yao &
        Gabry, "Pareto smoothed importance sampling", arXiv:1507.02646.

    """
    values = np.sort(np.asarray(log_ratios, dtype=np.float64))
    n = values.size
    if n < 20:
        return float("nan")
    tail_size = int(min(n / 5.0, 3.0 * np.sqrt(n)))
    if tail_size < 5:
        return float("nan")
    top = values[-1]
    tail = np.exp(values[-tail_size:] - top)
    threshold = np.exp(values[-tail_size - 1] - top)
    exceed = tail - threshold
    if not np.any(exceed > 0):
        return 0.0
    exceed = np.sort(exceed)
    m = exceed.size
    num_grid = 30 + int(np.sqrt(m))
    quartile = exceed[max(int(m / 4.0 + 0.5) - 1, 0)]
    if quartile <= 0:
        positive = exceed[exceed > 0]
        quartile = positive[0]
    theta = 1.0 / exceed[-1] + (1.0 - np.sqrt(num_grid / (np.arange(1, num_grid + 1) - 0.5))) / (
        3.0 * quartile
    )
    k_grid = np.array([np.mean(np.log1p(-t * exceed)) for t in theta])
    profile = m * (np.log(-theta / k_grid) - k_grid - 1.0)
    weights = np.exp(profile - profile.max())
    weights /= weights.sum()
    theta_hat = float(np.sum(theta * weights))
    k_hat = float(np.mean(np.log1p(-theta_hat * exceed)))
    # Shrink towards 0.5 with a prior worth 10 observations (Vehtari et al.).
    k_hat = (m * k_hat + 10 * 0.5) / (m + 10)
    return float(k_hat)


def integrated_autocorrelation_time(series: np.ndarray, *, window_factor: float = 5.0) -> float:
    """Integrated autocorrelation time of a 1-d series with Sokal's adaptive window.

    Args:
        series: Shape ``(n,)``.
        window_factor: Window chosen as the smallest ``M >= window_factor * tau(M)``.

    Returns:
        ``tau >= 1`` (1 for independent draws).

    References:
        Sokal (1997), "Monte Carlo methods in statistical mechanics"; Goodman & Weare
        (2010).

    """
    x = np.asarray(series, dtype=np.float64)
    n = x.size
    if n < 4:
        return 1.0
    x = x - x.mean()
    variance = np.dot(x, x) / n
    if variance <= 0:
        return 1.0
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, n=size)
    acf = np.fft.irfft(spectrum * np.conjugate(spectrum))[:n] / (n * variance)
    taus = 2.0 * np.cumsum(acf) - 1.0
    window = np.arange(n) >= window_factor * taus
    index = int(np.argmax(window)) if window.any() else n - 1
    return float(max(taus[index], 1.0))


class BatchMeans(NamedTuple):
    """Ratio-estimator mean and its standard error from batch means."""

    mean: float
    std: float
    batch_means: np.ndarray
    batch_weights: np.ndarray
    batch_length: np.ndarray


def weighted_batch_means(
    scaled_ratios: list[np.ndarray], weights: list[np.ndarray], batch_lengths: list[int]
) -> BatchMeans:
    """Mean of ``sum(w r) / sum(w)`` over all chains with a batch-means standard error.

    Each chain is cut into ``n_c // length`` contiguous batches of nearly equal length (the
    remainder is spread over them); batches are treated as independent draws of a ratio estimator and
    the variance is linearised (delta method): ``var = sum_b (W_b / W)^2 (rho_b -
    rho)^2 * B / (B - 1)`` with ``W = sum_b W_b`` and ``B`` batches.

    Args:
        scaled_ratios: Per chain, ratios ``r`` scaled by a common constant, shape ``(n_c,)``.
        weights: Per chain, non-negative weights, shape ``(n_c,)``.
        batch_lengths: Per chain, batch length in draws.

    Returns:
        :class:`BatchMeans`.

    References:
        Flegal & Jones (2010), Ann. Statist. 38, 1034 (batch means in MCMC).

    """
    sums, wsums, lengths = [], [], []
    for r, w, b in zip(scaled_ratios, weights, batch_lengths, strict=True):
        n = r.size
        num_batches = max(n // b, 1)
        edges = np.linspace(0, n, num_batches + 1).astype(int)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sums.append(np.sum(w[lo:hi] * r[lo:hi]))
            wsums.append(np.sum(w[lo:hi]))
            lengths.append(hi - lo)
    sums_a, wsums_a = np.asarray(sums), np.asarray(wsums)
    keep = wsums_a > 0
    sums_a, wsums_a = sums_a[keep], wsums_a[keep]
    total_w = wsums_a.sum()
    mean = sums_a.sum() / total_w
    means = sums_a / wsums_a
    num = means.size
    if num < 2:
        return BatchMeans(
            mean=float(mean),
            std=float("nan"),
            batch_means=means,
            batch_weights=wsums_a,
            batch_length=np.asarray(lengths)[keep],
        )
    variance = np.sum((wsums_a / total_w) ** 2 * (means - mean) ** 2) * num / (num - 1)
    return BatchMeans(
        mean=float(mean),
        std=float(np.sqrt(variance)),
        batch_means=means,
        batch_weights=wsums_a,
        batch_length=np.asarray(lengths)[keep],
    )


def are_multiplicities(weights: np.ndarray) -> bool:
    """Whether weights are MCMC multiplicities (all integers), not importance weights.

    A Metropolis chain written as Cobaya or GetDist write it repeats a row ``w`` times;
    a nested sampler's or an importance sampler's weights are fractional. The
    diagnostics of the evidence estimators, the stationarity test and the chain
    readers treat the two differently.

    Example:
        >>> are_multiplicities(np.array([1.0, 3.0, 2.0])), are_multiplicities(np.array([0.5, 1.0]))
        (True, False)
    """
    weights = np.asarray(weights)
    return bool(np.all(weights == np.round(weights)))


def move_fractions(samples: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Fraction of each chain's steps at which it moved to a new point.

    A stuck chain (an emcee walker that accepts nothing, a sampler frozen at one point)
    repeats one draw: its draws are not posterior draws, and neither R-hat within it nor
    :func:`stationarity` sees it. Rows repeated with multiplicity weights (Cobaya's
    format) count as their steps; zero-weight rows (padding) are skipped; fractional
    weights count one step per row.

    Args:
        samples: ``(num_chains, num_samples, dim)``.
        weights: ``(num_chains, num_samples)`` or ``None``.

    Returns:
        ``(num_chains,)`` fractions in ``[0, 1]`` (1 for a chain of one step).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(2, 100, 2))
        >>> x[1] = 0.5  # frozen
        >>> move_fractions(x).round(2).tolist()
        [1.0, 0.0]
    """
    samples = np.asarray(samples)
    weights = np.ones(samples.shape[:2]) if weights is None else np.asarray(weights, float)
    out = []
    for x, w in zip(samples, weights, strict=True):
        x, w = x[w > 0], w[w > 0]
        steps = w.sum() if are_multiplicities(w) else float(len(w))
        moved = np.any(x[1:] != x[:-1], axis=1).sum()
        out.append(1.0 if steps <= 1 else float(moved / (steps - 1)))
    return np.asarray(out)


def kish_effective_sample_size(weights, axis: int = -1):
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of non-negative importance weights.

    Args:
        weights: Linear (not log) non-negative weights along ``axis``; a NumPy array
            gives a Python float (0 when all weights vanish), a JAX array (also inside
            ``jit``/``vmap``) a JAX array. For log weights pass
            ``exp(log_w - max(log_w))``.
        axis: Axis summed over (JAX arrays only; NumPy input is flattened).

    Returns:
        The effective number of draws, between 1 and the number of weights.

    References:
        Kish (1965), "Survey Sampling"; Owen (2013), "Monte Carlo theory", ch. 9.

    Example:
        >>> kish_effective_sample_size(np.ones(10))
        10.0

    """
    if isinstance(weights, jax.Array):
        return jnp.sum(weights, axis=axis) ** 2 / jnp.sum(weights**2, axis=axis)
    terms = np.asarray(weights, np.float64)
    denominator = np.sum(terms**2)
    if denominator <= 0:
        return 0.0
    return float(np.sum(terms) ** 2 / denominator)


#: Elements per block of dimensions in :func:`split_rhat` and :func:`effective_sample_size`
#: (~128 MB of complex128 in the FFT): memory stays bounded for an image's pixels.
_ESS_BLOCK_ELEMENTS = 2**23


def split_rhat(samples: np.ndarray) -> np.ndarray:
    """Split R-hat (Gelman et al. 2013, BDA3 eq. 11.4) of each dimension.

    Each chain is cut in two halves; the halves are compared as separate chains.

    Args:
        samples: ``(num_chains, num_samples, dim)``.

    Returns:
        R-hat per dimension, shape ``(dim,)`` (1 at convergence; ``nan`` with fewer than
        4 draws per chain).

    References:
        Gelman et al. (2013), "Bayesian Data Analysis" 3rd ed.; Vehtari et al. (2021),
        arXiv:1903.08008.

    Example:
        >>> draws = np.random.default_rng(0).normal(size=(4, 1000, 2))
        >>> bool(np.all(np.abs(split_rhat(draws) - 1) < 0.01))
        True

    """
    samples = np.asarray(samples)  # to float64 block by block (an image's draws are large)
    if samples.ndim != 3:
        raise ValueError(
            f"samples must have shape (num_chains, num_samples, dim); got {samples.shape}"
        )
    half = samples.shape[1] // 2
    if half < 2:
        return np.full(samples.shape[2], np.nan)
    return _by_column_blocks(lambda block: _rhat_columns(block, half), samples, 2 * half)


def _rhat_columns(samples: np.ndarray, half: int) -> np.ndarray:
    """:func:`split_rhat` of a block of dimensions (``half`` draws per split chain)."""
    samples = _power_of_two_scaled(np.asarray(samples, np.float64))
    chains = np.concatenate([samples[:, :half], samples[:, half : 2 * half]], axis=0)
    n = chains.shape[1]
    chain_means = chains.mean(axis=1)
    within = chains.var(axis=1, ddof=1).mean(axis=0)
    between = n * chain_means.var(axis=0, ddof=1)
    variance = (n - 1) / n * within + between / n
    return np.sqrt(variance / np.maximum(within, 1e-300))


def effective_sample_size(samples: np.ndarray) -> np.ndarray:
    """Multi-chain ESS with Geyer's initial monotone sequence (as in Stan).

    Args:
        samples: ``(num_chains, num_samples, dim)``.

    Returns:
        ESS per dimension, shape ``(dim,)``.

    References:
        Geyer (1992), Statistical Science 7, 473; Vehtari et al. (2021), arXiv:1903.08008.

    Example:
        >>> draws = np.random.default_rng(0).normal(size=(4, 500, 1))
        >>> bool(1500 < effective_sample_size(draws)[0] < 2500)
        True

    """
    samples = np.asarray(samples)  # to float64 block by block (an image's draws are large)
    if samples.ndim != 3:
        raise ValueError(
            f"samples must have shape (num_chains, num_samples, dim); got {samples.shape}"
        )
    # The FFT's working set is ~5 arrays of (num_chains, size, columns) per block
    size = 2 ** math.ceil(math.log2(2 * samples.shape[1]))
    return _by_column_blocks(lambda block: _ess_columns(block, size), samples, size)


def _power_of_two_scaled(samples: np.ndarray) -> np.ndarray:
    """Each column of ``(chains, draws, columns)`` divided by a power of two near its peak.

    R-hat and ESS do not depend on a column's scale, and a power-of-two scaling is exact in
    floating point, so they come out bit for bit the same; but finite draws of ~1e200 (a
    chain blowing up in float64) no longer overflow their variances (which gave NumPy
    overflow warnings and ``nan``). Columns whose peak is 0 or not finite are left as
    they are.
    """
    peak = np.max(np.abs(samples), axis=(0, 1)) if samples.size else np.ones(samples.shape[2])
    usable = np.isfinite(peak) & (peak > 0)
    _, exponent = np.frexp(np.where(usable, peak, 1.0))
    return np.ldexp(samples, np.where(usable, -exponent, 0))


def _by_column_blocks(fn, samples: np.ndarray, rows: int) -> np.ndarray:
    """``fn`` on blocks of dimensions of ``samples``, concatenated: ``(dim,)``.

    A block holds ``num_chains * rows * columns`` ~ :data:`_ESS_BLOCK_ELEMENTS` elements,
    so the working memory stays bounded whatever ``dim`` is (an image's pixels).
    """
    dim = samples.shape[2]
    if dim == 0:
        return np.empty(0)
    block = max(1, _ESS_BLOCK_ELEMENTS // (samples.shape[0] * rows))
    return np.concatenate([fn(samples[:, :, lo : lo + block]) for lo in range(0, dim, block)])


def _ess_columns(samples: np.ndarray, size: int) -> np.ndarray:
    """:func:`effective_sample_size` of a block of dimensions (FFT length ``size``)."""
    samples = _power_of_two_scaled(np.asarray(samples, np.float64))
    num_chains, n, dim = samples.shape
    centred = samples - samples.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    autocov = np.fft.irfft(np.abs(spectrum) ** 2, n=size, axis=1)[:, :n] / n
    chain_var = autocov[:, 0] * n / (n - 1)
    within = chain_var.mean(axis=0)
    chain_means = samples.mean(axis=1)
    between = n * chain_means.var(axis=0, ddof=1) if num_chains > 1 else np.zeros(dim)
    var_plus = (n - 1) / n * within + between / n
    rho = 1 - (within - autocov.mean(axis=0)) / np.maximum(var_plus, 1e-300)
    rho[0] = 1.0
    # Geyer's initial monotone sequence, every column at once: sums of adjacent pairs up
    # to (not including) the first non-positive one, made non-increasing
    pairs = rho[: (n // 2) * 2].reshape(n // 2, 2, dim).sum(axis=1)
    non_positive = pairs <= 0
    first = np.where(non_positive.any(axis=0), non_positive.argmax(axis=0), n // 2)
    kept = np.arange(n // 2)[:, None] < first[None, :]
    monotone = np.minimum.accumulate(pairs, axis=0)
    tau = -1 + 2 * np.sum(np.where(kept, monotone, 0.0), axis=0)
    return num_chains * n / np.maximum(tau, 1.0 / np.log10(max(num_chains * n, 10)))


def standardised_kurtosis(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted kurtosis ``E[(x - mu)^4] / var^2`` (3 for a Gaussian)."""
    w = np.asarray(weights) / np.sum(weights)
    mu = np.sum(w * values)
    centred = values - mu
    var = np.sum(w * centred**2)
    if var <= 0:
        return float("nan")
    return float(np.sum(w * centred**4) / var**2)


def prior_edge_density(
    draws: np.ndarray, low: float | None, high: float | None, *, num_bins: int = 20
) -> tuple[float, float]:
    """How far a posterior reaches a hard prior edge: its density there over its peak.

    For each finite edge, the draws between the edge and the farthest draw are binned
    into ``num_bins`` equal bins; the result is the count of the bin touching the edge
    over the largest count. About 1: the posterior is cut by the prior there (its
    density is highest at the edge: ln z and ln B depend on where the edge is put, and
    the marginal is the prior's shape, not the data's); about 0: the posterior falls off
    well inside. Bins follow the draws' own span, so a narrow posterior near, but not
    at, the edge reads about 0. The Monte Carlo error of a ratio ``r`` from a bin of
    ``n`` draws is about ``r / sqrt(n)``.

    Args:
        draws: Draws of one parameter, any shape (flattened).
        low: Lower prior edge, or ``None`` / ``-inf`` for an open side.
        high: Upper prior edge, or ``None`` / ``inf`` for an open side.
        num_bins: Bins between an edge and the farthest draw.

    Returns:
        ``(at_low, at_high)``; ``nan`` for an open side.

    Raises:
        ValueError: If ``draws`` is empty or not finite, ``num_bins < 2``, or a draw lies
            outside the edges.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> at_low, at_high = prior_edge_density(np.abs(rng.normal(size=20000)), 0.0, 10.0)
        >>> bool(at_low > 0.8), bool(at_high < 0.01)
        (True, True)

    """
    values = np.asarray(draws, np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("draws must be a non-empty array of finite numbers")
    if int(num_bins) != num_bins or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2; got {num_bins!r}")
    out = []
    for edge, side in ((low, "low"), (high, "high")):
        if edge is None or not np.isfinite(edge):
            out.append(float("nan"))
            continue
        distance = values - edge if side == "low" else edge - values
        if distance.min() < 0:
            raise ValueError(
                f"draws lie outside the prior's {side} edge {edge}: {int((distance < 0).sum())} do"
            )
        span = distance.max()
        if span == 0:  # every draw on the edge
            out.append(1.0)
            continue
        counts, _ = np.histogram(distance, bins=int(num_bins), range=(0.0, span))
        out.append(float(counts[0] / counts.max()))
    return out[0], out[1]


#: Burn-in fractions that :func:`stationarity` tries, in order, when chains fail its test.
BURN_IN_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)


class Stationarity(NamedTuple):
    """Whether chains look stationary: the pieces of each chain agree (:func:`stationarity`).

    Attributes:
        stationary: ``True`` when no column's pieces disagree at the significance level.
        p_value: Smallest p-value over the columns, times the number of columns
            (Bonferroni), at most 1.
        rhat: R-hat of the worst column with its pieces as chains (split R-hat when
            ``pieces_per_chain = 2``), the within-chain variance taken from the chains'
            second halves, where a burn-in does not inflate it.
        column: That column: a parameter's name, ``|name - median|`` (a spread, the folded
            column), ``log posterior`` or ``|log posterior - median|``.
        burn_in: Without a burn-in the chains pass: ``0.0``. Otherwise the smallest
            fraction of :data:`BURN_IN_FRACTIONS` whose removal from the start of every
            chain (by rows, as ``read_chains(burn_in=)`` does) makes them pass, or ``nan``
            when none does (run longer chains).
        num_pieces: Contiguous pieces compared (over all chains).
    """

    stationary: bool
    p_value: float
    rhat: float
    column: str
    burn_in: float
    num_pieces: int

    def summary(self) -> str:
        """One sentence for a user: the verdict and, when it fails, the remedy."""
        if self.stationary:
            return (
                f"the pieces of each chain agree ({self.num_pieces} pieces; largest R-hat "
                f"over them {self.rhat:.3f}, for {self.column})"
            )
        remedy = (
            "no burn-in up to half the chains passes: run longer chains"
            if not np.isfinite(self.burn_in)
            else f"without the first {self.burn_in:.0%} of every chain they agree "
            f"(burn_in={self.burn_in:g})"
        )
        return (
            f"the chains are not stationary: the pieces of a chain ({self.num_pieces} in "
            f"all) disagree on {self.column} (R-hat over the pieces {self.rhat:.3f}, "
            f"p = {self.p_value:.1e}); " + remedy
        )


def stationarity(
    samples: np.ndarray,
    log_posterior: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    names: list[str] | tuple[str, ...] | None = None,
    pieces_per_chain: int = 2,
    significance: float = 1e-4,
) -> Stationarity:
    """Test whether MCMC chains are stationary, and find the burn-in that makes them so.

    Every chain is cut into ``pieces_per_chain`` contiguous pieces of equal length (by
    rows), as split R-hat does. For each column (every parameter, the log posterior, and
    the distance of each from its median, which shows a change of spread, as the folded
    R-hat of Vehtari et al. 2021 does), the pieces of each chain are compared with that
    chain's mean by Cochran's test ``Q = sum_j n_j (m_j - m_c)^2 / W``: ``n_j`` is a
    piece's draws over the column's autocorrelation time and ``W`` the within-chain
    variance, both from the second halves of the chains (a burn-in does not reach
    them, so it cannot inflate them and hide itself; the autocorrelation time from the
    multi-chain effective sample size). For stationary chains ``Q / dof`` follows an F
    distribution with ``num_chains (pieces_per_chain - 1)`` and ``ESS - 1`` degrees of
    freedom. The chains fail when the smallest p-value times the number of columns
    (Bonferroni) is below ``significance``; on stationary AR(1) and Metropolis chains
    of 200 to 5000 draws the false-alarm rate measured at or below it. A burn-in left
    in, a trend, or a change of spread fails it. Chains that differ from each other but
    are each stationary pass, and so, mostly, does a jump late in the chains, which
    inflates the second halves' variance (R-hat, :func:`split_rhat`, and the evidence
    estimators' between-chain checks see those). Integer weights are multiplicities (a
    Cobaya or GetDist row stands for ``w`` steps); other weights are importance weights
    (Kish's effective size).

    Args:
        samples: ``(num_chains, num_samples, dim)``.
        log_posterior: ``(num_chains, num_samples)``, or ``None``.
        weights: ``(num_chains, num_samples)`` non-negative; zeros (padding) are dropped.
        names: Parameter names for the report (``p0, p1, ...`` when omitted).
        pieces_per_chain: Contiguous pieces per chain (``>= 2``).
        significance: False-alarm probability of the test for stationary chains.

    Returns:
        :class:`Stationarity`; the burn-in is searched only when the chains fail.

    Raises:
        ValueError: On inconsistent shapes, ``pieces_per_chain < 2`` or a significance
            outside ``(0, 1)``.

    References:
        Gelman et al. (2013), BDA3 §11.4 (split R-hat); Vehtari et al. (2021),
        arXiv:1903.08008 (folded R-hat); Cochran (1954), Biometrics 10, 101.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> draws = rng.normal(size=(4, 1000, 2))
        >>> stationarity(draws).stationary
        True
        >>> draws[:, :100] += 3.0  # a burn-in
        >>> result = stationarity(draws)
        >>> result.stationary, result.burn_in
        (False, 0.1)

    """
    samples = np.asarray(samples, np.float64)
    if samples.ndim != 3:
        raise ValueError(
            f"samples must have shape (num_chains, num_samples, dim); got {samples.shape}"
        )
    num_chains, num_samples, dim = samples.shape
    for value, label in ((log_posterior, "log_posterior"), (weights, "weights")):
        if value is not None and np.shape(value) != (num_chains, num_samples):
            raise ValueError(
                f"{label} must have shape {(num_chains, num_samples)}; got {np.shape(value)}"
            )
    if int(pieces_per_chain) != pieces_per_chain or pieces_per_chain < 2:
        raise ValueError(f"pieces_per_chain must be an integer >= 2; got {pieces_per_chain!r}")
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1); got {significance!r}")
    labels = [str(n) for n in names] if names is not None else [f"p{i}" for i in range(dim)]
    if len(labels) != dim:
        raise ValueError(f"names must hold {dim} names; got {len(labels)}")
    columns = samples
    if log_posterior is not None:
        columns = np.concatenate([samples, np.asarray(log_posterior, np.float64)[..., None]], -1)
        labels = [*labels, "log posterior"]
    w = np.ones((num_chains, num_samples)) if weights is None else np.asarray(weights, np.float64)
    rows = [(columns[c][w[c] > 0], w[c][w[c] > 0]) for c in range(num_chains)]
    folded_labels = [*labels, *(f"|{label} - median|" for label in labels)]
    test = _stationarity_test(rows, int(pieces_per_chain), folded_labels, significance)
    if test.stationary:
        return test
    for fraction in BURN_IN_FRACTIONS:
        kept = [(x[int(fraction * len(x)) :], v[int(fraction * len(x)) :]) for x, v in rows]
        if _stationarity_test(kept, int(pieces_per_chain), folded_labels, significance).stationary:
            return test._replace(burn_in=fraction)
    return test._replace(burn_in=float("nan"))


def _stationarity_test(rows, pieces_per_chain, labels, significance) -> Stationarity:
    """:func:`stationarity`'s test on ``[(columns (n_c, k), weights (n_c,)), ...]``.

    The variance and autocorrelation time that scale the test come from the second half
    of every chain (where a burn-in does not reach), so an early transient does not
    inflate them and hide itself.
    """
    from scipy.stats import f as f_distribution

    rows = [_steps(x, w) for x, w in rows]
    rows = [(x, w) for x, w in rows if len(x) >= 4 * pieces_per_chain]
    if not rows:
        return Stationarity(True, 1.0, float("nan"), "", 0.0, 0)
    median = np.median(np.concatenate([x for x, _ in rows]), axis=0)
    rows = [(np.concatenate([x, np.abs(x - median)], axis=1), w) for x, w in rows]
    # The second half of every chain (as steps), cut to a common length: its within-chain
    # variance and (Geyer's multi-chain) effective size scale the test.
    halves = [(x[len(x) // 2 :], w[len(x) // 2 :]) for x, w in rows]
    variance = np.mean([_piece_moments(x, w)[1] for x, w in halves], axis=0)
    length = min(len(x) for x, _ in halves)
    reference = np.stack([x[:length] for x, _ in halves])
    ess = effective_sample_size(reference) if length >= 4 else np.full(variance.shape, 1.0)
    tau = np.maximum(reference.shape[0] * length / np.maximum(ess, 1e-300), 1.0)
    means, sizes = [], []  # per chain: (pieces, columns), (pieces,)
    for x, w in rows:
        edges = np.linspace(0, len(x), pieces_per_chain + 1).astype(int)
        moments = [
            _piece_moments(x[lo:hi], w[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        means.append(np.array([m[0] for m in moments]))
        sizes.append(np.array([m[2] for m in moments])[:, None] / tau)
    num_pieces = len(rows) * pieces_per_chain
    varying = variance > 0
    if not varying.any():
        return Stationarity(True, 1.0, float("nan"), "", 0.0, num_pieces)
    # Each chain's pieces against that chain's own mean: chains that differ from each
    # other (which R-hat and the estimators' between-chain checks report) add nothing.
    q = (
        sum(
            np.sum(n * (m - np.sum(n * m, axis=0) / np.sum(n, axis=0)) ** 2, axis=0)
            for m, n in zip(means, sizes, strict=True)
        )[varying]
        / variance[varying]
    )
    dof = len(rows) * (pieces_per_chain - 1)
    # F, not chi-square: the scale (variance over effective size) is itself estimated
    # from about `ess` independent draws, which fattens the statistic's tail.
    p = f_distribution.sf(q / dof, dof, np.maximum(ess[varying] - 1, 1))
    means = np.concatenate(means)
    # R-hat of the pieces as chains, against the second halves' variance (a burn-in
    # inflates the pieces' own variances, which would hide it)
    n = float(np.mean([len(x) for x, _ in rows])) / pieces_per_chain
    rhat = np.sqrt((n - 1) / n + means.var(axis=0, ddof=1)[varying] / variance[varying])
    worst = int(np.argmin(p))
    p_value = float(min(1.0, p[worst] * p.size))
    return Stationarity(
        stationary=bool(p_value >= significance),
        p_value=p_value,
        rhat=float(rhat[worst]),
        column=str(np.asarray(labels)[varying][worst]),
        burn_in=0.0,
        num_pieces=num_pieces,
    )


#: Steps per chain that :func:`stationarity` keeps (thinned evenly beyond): its memory
#: and time stay bounded (a Cobaya chain of 250,000 rows x 30 parameters with weights 1
#: to 5 took 15.8 CPU-s and 3.3 GB before).
MAX_STEPS_PER_CHAIN = 20_000


def _steps(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A chain's rows as steps, thinned evenly to at most :data:`MAX_STEPS_PER_CHAIN`.

    Integer weights repeat a row; fractional weights keep their rows (thinned alike).
    """
    if are_multiplicities(weights):
        index = np.repeat(np.arange(len(x)), weights.astype(int))
        index = index[:: max(1, -(-index.size // MAX_STEPS_PER_CHAIN))]
        return x[index], np.ones(index.size)
    stride = max(1, -(-len(x) // MAX_STEPS_PER_CHAIN))
    return x[::stride], weights[::stride]


def _piece_moments(piece: np.ndarray, weights: np.ndarray):
    """Weighted mean and variance of each column of a piece, and Kish's size."""
    total = weights.sum()
    mean = weights @ piece / total
    variance = weights @ (piece - mean) ** 2 / total
    return mean, variance, total**2 / np.sum(weights**2)
