"""Posterior samples from any sampler, as the evidence estimator consumes them.

A :class:`Chains` holds ``num_chains`` chains of ``num_samples`` draws in ``dim``
dimensions, the unnormalised log posterior ``log L + log pi`` of each draw (the prior
*normalised*: the evidence depends on it), optional non-negative weights (MCMC
multiplicities or importance weights) and optional parameter names. Chains of unequal
length are stored padded, with zero weight on the padding (see :func:`chains_from_list`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float

from astrobayes._checks import as_float_array, check_finite, check_positive_int
from astrobayes.diagnostics import are_multiplicities

__all__ = ["Chains", "chains_from_list", "is_nested_sampling_order", "prior_edges"]


def prior_edges(low: float | None, high: float | None) -> tuple[float | None, float | None]:
    """A prior range's edges as floats, ``None`` for an open side (``None``, nan or inf).

    The one reading of ``(lo, hi)`` pairs shared by :meth:`Chains.unbounded`, the
    bridge's mapped density and :func:`astrobayes.io.read_chains`'s ``bounds``.

    Example:
        >>> prior_edges(0, float("inf")), prior_edges(None, float("nan"))
        ((0.0, None), (None, None))

    """

    def edge(value):
        return None if value is None or not np.isfinite(value) else float(value)

    return edge(low), edge(high)


@dataclass(frozen=True, eq=False)
class Chains:
    """Posterior draws, their log posterior values, weights and parameter names.

    Attributes:
        samples: Draws, shape ``(num_chains, num_samples, dim)``.
        log_posterior: ``log L(theta) + log pi(theta)`` of each draw with the prior
            normalised, shape ``(num_chains, num_samples)``. Natural log, +log density.
        weights: Non-negative weights, shape ``(num_chains, num_samples)``; ones when
            not given. Zero weights mark padding of shorter chains.
        names: Parameter names, ``dim`` strings; ``("p0", "p1", ...)`` when not given.

    Raises:
        ValueError: On wrong shapes, non-finite samples or log posteriors (where the
            weight is positive), negative or all-zero weights, or a wrong number of names.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(4, 100, 2))
        >>> chains = Chains(x, -0.5 * (x**2).sum(-1))
        >>> chains.num_chains, chains.num_samples, chains.dim
        (4, 100, 2)

    """

    samples: Float[np.ndarray, "num_chains num_samples dim"]
    log_posterior: Float[np.ndarray, "num_chains num_samples"]
    weights: Float[np.ndarray, "num_chains num_samples"] | None = None
    names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        samples = as_float_array(self.samples, "samples", ndim=3)
        log_posterior = as_float_array(self.log_posterior, "log_posterior", ndim=2)
        if log_posterior.shape != samples.shape[:2]:
            raise ValueError(
                "log_posterior must have shape (num_chains, num_samples) = "
                f"{samples.shape[:2]} to match samples {samples.shape}; got {log_posterior.shape}"
            )
        if samples.shape[0] < 1 or samples.shape[1] < 1 or samples.shape[2] < 1:
            raise ValueError(f"samples must be non-empty in every axis; got shape {samples.shape}")
        if self.weights is None:
            weights = np.ones(samples.shape[:2])
        else:
            weights = as_float_array(self.weights, "weights", ndim=2)
            if weights.shape != samples.shape[:2]:
                raise ValueError(
                    f"weights must have shape {samples.shape[:2]} to match samples; got {weights.shape}"
                )
            check_finite(weights, "weights")
            if (weights < 0).any():
                raise ValueError(f"weights must be non-negative; got minimum {weights.min()}")
            empty = np.flatnonzero(weights.sum(axis=1) <= 0)
            if empty.size:
                raise ValueError(
                    f"weights of chain {int(empty[0])} are all zero; every chain needs a positive weight"
                )
        used = weights > 0
        check_finite(np.where(used[..., None], samples, 0.0), "samples")
        lp = np.where(used, log_posterior, 0.0)
        if np.isnan(lp).any() or np.isinf(lp).any():
            bad = np.argwhere(~np.isfinite(lp))[0]
            raise ValueError(
                "log_posterior must be finite for every draw with positive weight; "
                f"{int((~np.isfinite(lp)).sum())} are not (first at chain {bad[0]}, draw {bad[1]}: "
                f"{log_posterior[tuple(bad)]!r}). Draws outside the prior support cannot be "
                "posterior samples: remove them"
            )
        dim = samples.shape[2]
        if self.names is None:
            names = tuple(f"p{i}" for i in range(dim))
        else:
            names = tuple(str(n) for n in self.names)
            if len(names) != dim:
                raise ValueError(
                    f"names must hold dim = {dim} parameter names; got {len(names)}: {names}"
                )
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "log_posterior", np.where(used, log_posterior, 0.0))
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "names", names)

    @property
    def num_chains(self) -> int:
        """Number of chains."""
        return self.samples.shape[0]

    @property
    def num_samples(self) -> int:
        """Number of draws per chain (the longest chain when lengths differ)."""
        return self.samples.shape[1]

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return self.samples.shape[2]

    @property
    def lengths(self) -> np.ndarray:
        """Number of draws with positive weight in each chain."""
        return (self.weights > 0).sum(axis=1)

    def select(self, indices: Sequence[int] | np.ndarray) -> Chains:
        """Return the chains at ``indices`` (a new :class:`Chains`)."""
        idx = np.asarray(indices, dtype=int)
        return Chains(self.samples[idx], self.log_posterior[idx], self.weights[idx], self.names)

    def flat(
        self,
    ) -> tuple[Float[np.ndarray, "n dim"], Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
        """All draws with positive weight as ``(samples (n, dim), log_posterior (n,), weights (n,))``."""
        used = self.weights > 0
        return self.samples[used], self.log_posterior[used], self.weights[used]

    def unbounded(
        self, bounds: Mapping[str, tuple[float | None, float | None]]
    ) -> tuple[Chains, tuple[str, ...]]:
        """The same posterior on coordinates without edges, with its Jacobian.

        A parameter with two finite bounds becomes ``u = logit((x - lo) / (hi - lo))``,
        one with a lower (upper) bound alone ``u = ln(x - lo)`` (``ln(hi - x)``), and
        ``ln |dx/du|`` is added to each draw's log posterior, so the evidence is the same
        integral. An evidence estimator's target then has no hard edge to put mass
        beyond, which biases ``z`` high where the posterior presses against one
        (measured 2026-12-06: a radial-velocity model whose jitter posterior peaks at its
        prior's lower edge, re-estimated from its draws in ``x``, gave ln z 0.028 (2.5
        sigma) above the truth over four seeds, status ok).

        Args:
            bounds: ``{name: (lo, hi)}``; ``None`` or a non-finite value for an open
                side. Names the chains do not have are an error; a parameter with a
                draw on (or beyond) one of its bounds is left as it is.

        Returns:
            ``(chains, mapped)``: the chains on the new coordinates (same names) and the
            names of the parameters that were mapped.

        Raises:
            ValueError: If ``bounds`` names a parameter the chains do not have, or has
                ``lo >= hi``.

        Example:
            >>> import numpy as np
            >>> x = np.random.default_rng(0).uniform(0.0, 2.0, size=(2, 100, 1))
            >>> c = Chains(x, np.full((2, 100), -np.log(2.0)), names=("a",))
            >>> u, mapped = c.unbounded({"a": (0.0, 2.0)})
            >>> mapped, bool(np.all(np.isfinite(u.samples)))
            (('a',), True)

        """
        unknown = sorted(set(bounds) - set(self.names))
        if unknown:
            raise ValueError(
                f"bounds names parameters the chains do not have: {unknown}; "
                f"they have {list(self.names)}"
            )
        samples = self.samples.copy()
        log_posterior = self.log_posterior.copy()
        used = self.weights > 0
        mapped = []
        for name, edges in bounds.items():
            low, high = prior_edges(*edges)
            low = -np.inf if low is None else low
            high = np.inf if high is None else high
            if not low < high:
                raise ValueError(f"bounds of {name!r} must have lo < hi; got ({low}, {high})")
            i = self.names.index(name)
            x = self.samples[..., i]
            inside = (x > low) & (x < high)
            if not np.all(inside[used]) or (low == -np.inf and high == np.inf):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                if np.isfinite(low) and np.isfinite(high):
                    u = np.log(x - low) - np.log(high - x)
                    log_jacobian = np.log(x - low) + np.log(high - x) - np.log(high - low)
                elif np.isfinite(low):
                    u = log_jacobian = np.log(x - low)
                else:
                    u = log_jacobian = np.log(high - x)
            samples[..., i] = np.where(used, u, 0.0)
            log_posterior = log_posterior + np.where(used, log_jacobian, 0.0)
            mapped.append(name)
        chains = Chains(samples, log_posterior, self.weights, self.names)
        return chains, tuple(mapped)

    def split_chains(self, num_pieces: int) -> Chains:
        """Cut every chain into ``num_pieces`` contiguous sub-chains of equal length.

        Useful when a sampler wrote a single long chain: the evidence estimator needs
        several chains (some to fit its target, the others to evaluate it).

        Args:
            num_pieces: Sub-chains per chain (``>= 1``).

        Returns:
            Chains with ``num_chains * num_pieces`` chains.

        Raises:
            ValueError: If a chain is shorter than ``num_pieces`` draws.

        """
        num_pieces = check_positive_int(num_pieces, "num_pieces")
        samples, logp, weights = [], [], []
        for c in range(self.num_chains):
            used = self.weights[c] > 0
            s, lp, w = self.samples[c][used], self.log_posterior[c][used], self.weights[c][used]
            if len(s) < num_pieces:
                raise ValueError(
                    f"chain {c} has {len(s)} draws; cannot cut it into num_pieces = {num_pieces}"
                )
            bounds = np.linspace(0, len(s), num_pieces + 1).astype(int)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                samples.append(s[a:b])
                logp.append(lp[a:b])
                weights.append(w[a:b])
        return chains_from_list(samples, logp, weights, names=self.names)


def chains_from_list(
    samples: Sequence[Float[np.ndarray, "num_samples_c dim"]],
    log_posterior: Sequence[Float[np.ndarray, " num_samples_c"]],
    weights: Sequence[Float[np.ndarray, " num_samples_c"]] | None = None,
    names: Sequence[str] | None = None,
) -> Chains:
    """Build :class:`Chains` from chains of possibly unequal lengths.

    Shorter chains are padded to the longest with copies of their first draw carrying
    zero weight, so that no draw is misassigned and padding never enters an estimate.

    Args:
        samples: One ``(num_samples_c, dim)`` array per chain.
        log_posterior: One ``(num_samples_c,)`` array per chain.
        weights: Optional, one ``(num_samples_c,)`` array per chain.
        names: Optional parameter names.

    Returns:
        The padded :class:`Chains`.

    Raises:
        ValueError: If the lists have different lengths or the arrays disagree in shape.

    Example:
        >>> import numpy as np
        >>> chains = chains_from_list([np.zeros((3, 2)), np.ones((5, 2))], [np.zeros(3), np.zeros(5)])
        >>> chains.samples.shape, chains.lengths.tolist()
        ((2, 5, 2), [3, 5])

    """
    if len(samples) == 0:
        raise ValueError("samples must hold at least one chain; got an empty list")
    if len(log_posterior) != len(samples):
        raise ValueError(
            f"log_posterior must hold one array per chain ({len(samples)}); got {len(log_posterior)}"
        )
    if weights is not None and len(weights) != len(samples):
        raise ValueError(
            f"weights must hold one array per chain ({len(samples)}); got {len(weights)}"
        )
    arrays = [as_float_array(s, f"samples[{i}]", ndim=(1, 2)) for i, s in enumerate(samples)]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise ValueError(f"every chain must have the same dim; got dims {sorted(dims)}")
    length = max(a.shape[0] for a in arrays)
    out_s = np.empty((len(arrays), length, arrays[0].shape[1]))
    out_lp = np.zeros((len(arrays), length))
    out_w = np.zeros((len(arrays), length))
    for i, a in enumerate(arrays):
        n = a.shape[0]
        if n == 0:
            raise ValueError(f"chain {i} is empty")
        lp = as_float_array(log_posterior[i], f"log_posterior[{i}]", ndim=1)
        if lp.shape[0] != n:
            raise ValueError(
                f"log_posterior[{i}] must have {n} entries to match samples[{i}]; got {lp.shape[0]}"
            )
        w = np.ones(n) if weights is None else as_float_array(weights[i], f"weights[{i}]", ndim=1)
        if w.shape[0] != n:
            raise ValueError(
                f"weights[{i}] must have {n} entries to match samples[{i}]; got {w.shape[0]}"
            )
        out_s[i, :n], out_s[i, n:] = a, a[0]
        out_lp[i, :n] = lp
        out_w[i, :n] = w
    return Chains(out_s, out_lp, out_w, None if names is None else tuple(names))


def is_nested_sampling_order(log_likelihood: np.ndarray, weights: np.ndarray | None) -> bool:
    """Whether a chain's rows are a nested sampler's dead points, not a Markov chain.

    Nested samplers (PolyChord's and MultiNest's ``root.txt``, dynesty's results written
    out) list their weighted draws by increasing likelihood. Cut into contiguous pieces,
    such a "chain" gives pieces from different likelihood shells; its rows are
    independent draws and can be reordered. Detected as at least 20 rows with a
    non-decreasing likelihood and some non-integer weights (an MCMC chain's weights are
    multiplicities).
    """
    if weights is None or len(log_likelihood) < 20:
        return False
    fractional = not are_multiplicities(weights)
    return fractional and bool(np.all(np.diff(np.asarray(log_likelihood)) >= 0))
