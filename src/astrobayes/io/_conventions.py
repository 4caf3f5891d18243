"""From a chain file's contents to ``log L + log pi`` with the prior normalised.

The checks and conventions behind :func:`astrobayes.io.read_chains`: burn-in, finite
values, parameter selection, flat-prior volumes (from ``.ranges`` files or the user's
``prior_bounds``), and the sentence that says which convention applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from astrobayes.io._common import FLAT_UNNORMALISED, LIKELIHOOD_ONLY, NORMALISED, FileChains

__all__ = [
    "BOUNDS_TOLERANCE",
    "apply_burn_in",
    "check_values",
    "normalise",
    "select",
]

#: Relative slack (of ``hi - lo``) allowed when checking draws against prior bounds, for
#: the rounding of text chains.
BOUNDS_TOLERANCE = 1e-6

_AS_GIVEN_SENTENCE = (
    "taken as log L + log prior, normalised, as given; pass log_prior_volume if the prior "
    "was left unnormalised"
)


#: What ``read_chains`` says when it shuffles a nested sampler's rows.
NESTED_SAMPLING_NOTE = (
    "rows sorted by increasing likelihood with fractional weights: nested-sampling output "
    "(PolyChord, MultiNest, dynesty), i.e. weighted independent draws, not a Markov chain; "
    "their order was shuffled (fixed seed) so that the chains cut from them are alike"
)


def nested_weight_slope(weights: np.ndarray, log_likelihood: np.ndarray) -> float:
    """How a nested sampler's weights grow with the file's log-likelihood column.

    A nested sampler's weight is ``L dX``; its final live points (the last rows, with
    the rows sorted by ``ell``) share one ``dX``, so over them ``ln w = a ell + c`` exactly, with ``a = 1`` when the column
    is ``ln L`` (``-ln L`` in the file, CosmoMC's convention) and ``a = 1/2`` when it is
    ``2 ln L`` (``-2 ln L``: PolyChord's and MultiNest's ``root.txt``). The fit takes the
    last ``min(50, n // 4)`` rows (fewer than the live points of any usual run). On
    dynesty runs (500 live points, the Pantheon likelihood) it gave 0.9975 and 0.5013,
    over a range of ``ell`` of only 0.04 to 0.06; taking 1000 rows (dead points too)
    gave 0.02, which the residual check refuses.

    Returns:
        The slope ``a``, or ``nan`` when it cannot be told: fewer than 10 rows with a
        weight, or residuals above a tenth of the gap between the two slopes' predictions
        over the rows' span of ``ell`` (not a constant ``dX``, or a span lost in rounding).
    """
    count = min(50, len(weights) // 4)
    w, ell = np.asarray(weights[-count:], float), np.asarray(log_likelihood[-count:], float)
    keep = w > 0
    if count < 10 or keep.sum() < 10:
        return float("nan")
    ell = ell[keep] - ell[keep].mean()
    log_w = np.log(w[keep]) - np.log(w[keep]).mean()
    spread = float(np.sum(ell**2))
    if spread <= 0:
        return float("nan")
    slope = float(np.sum(ell * log_w) / spread)
    residual = np.sqrt(np.mean((log_w - slope * ell) ** 2))
    if residual > 0.1 * 0.5 * np.ptp(ell):
        return float("nan")
    return slope


def apply_burn_in(data: FileChains, burn_in: float) -> list[int]:
    offsets = []
    for c in range(len(data.samples)):
        start = int(math.floor(burn_in * len(data.samples[c])))
        if start >= len(data.samples[c]):
            raise ValueError(
                f"{data.path}: burn_in = {burn_in} leaves no draws in chain {c} of {len(data.samples[c])}"
            )
        offsets.append(start)
        data.samples[c] = data.samples[c][start:]
        data.log_posterior[c] = data.log_posterior[c][start:]
        if data.weights is not None:
            data.weights[c] = data.weights[c][start:]
        if data.log_likelihood is not None:
            data.log_likelihood[c] = data.log_likelihood[c][start:]
    return offsets


def check_values(data: FileChains, offsets: list[int]) -> None:
    for c in range(len(data.samples)):
        used = np.ones(len(data.samples[c]), bool)
        if data.weights is not None:
            weights = data.weights[c]
            bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
            if bad.size:
                raise ValueError(
                    f"{data.path}, {data.locate(c, offsets[c] + bad[0])}: weights must be finite and "
                    f"non-negative; got {float(weights[bad[0]])!r}"
                )
            if not (weights > 0).any():
                raise ValueError(f"{data.path}: every weight of chain {c} is zero")
            used = weights > 0
        log_posterior = data.log_posterior[c]
        bad = np.flatnonzero(used & ~np.isfinite(log_posterior))
        if bad.size:
            hint = (
                " (an emcee walker started outside the prior support? pass burn_in to drop early steps)"
                if data.format == "emcee"
                else ""
            )
            raise ValueError(
                f"{data.path}, {data.locate(c, offsets[c] + bad[0])}: the log posterior is "
                f"{float(log_posterior[bad[0]])!r}; every draw needs a finite log posterior "
                f"({bad.size} draws are not){hint}"
            )
        samples = data.samples[c]
        bad_rows, bad_columns = np.nonzero(used[:, None] & ~np.isfinite(samples))
        if bad_rows.size:
            row, column = bad_rows[0], bad_columns[0]
            raise ValueError(
                f"{data.path}, {data.locate(c, offsets[c] + row)}: parameter {data.names[column]!r} "
                f"is {float(samples[row, column])!r}; every draw must be finite"
            )


def select(data: FileChains, parameters: Sequence[str] | None) -> list[int]:
    if parameters is None:
        keep = [i for i, d in enumerate(data.derived) if not d]
        if not keep:
            raise ValueError(
                f"{data.path}: every parameter is marked derived; none is left to sample"
            )
        return keep
    if isinstance(parameters, str) or not all(isinstance(p, str) for p in parameters):
        raise TypeError(f"parameters must be a list of parameter names; got {parameters!r}")
    if len(parameters) == 0 or len(set(parameters)) != len(parameters):
        raise ValueError(
            f"parameters must be a non-empty list of distinct names; got {list(parameters)}"
        )
    keep = []
    for name in parameters:
        if name not in data.names:
            raise ValueError(
                f"{data.path}: parameter {name!r} (from parameters) is not in the file; "
                f"it holds {list(data.names)}"
            )
        index = data.names.index(name)
        if data.derived[index]:
            raise ValueError(
                f"{data.path}: parameter {name!r} is derived; the evidence needs the sampled "
                "parameters only"
            )
        keep.append(index)
    if data.all_sampled_known:
        dropped = [
            n
            for n, d in zip(data.names, data.derived, strict=True)
            if not d and n not in parameters
        ]
        if dropped:
            raise ValueError(
                f"{data.path}: parameters leaves out sampled parameters {dropped}; the log "
                "posterior is a density over all of them, so the evidence would be wrong"
            )
    return keep


def _check_inside(
    data: FileChains,
    names: Sequence[str],
    bounds: Mapping[str, tuple[float, float]],
    offsets: list[int],
    source: str,
) -> None:
    for j, name in enumerate(names):
        lo, hi = bounds[name]
        slack = BOUNDS_TOLERANCE * (hi - lo)
        for c, samples in enumerate(data.samples):
            used = np.ones(len(samples), bool) if data.weights is None else data.weights[c] > 0
            outside = np.flatnonzero(
                used & ((samples[:, j] < lo - slack) | (samples[:, j] > hi + slack))
            )
            if outside.size:
                row = outside[0]
                raise ValueError(
                    f"{data.path}, {data.locate(c, offsets[c] + row)}: parameter {name!r} = "
                    f"{float(samples[row, j])!r} lies outside its prior bounds ({lo}, {hi}) from {source} "
                    f"({outside.size} draws do)"
                )


def _log_volume(
    names: Sequence[str], bounds: Mapping[str, tuple[float, float]], source: str
) -> float:
    total = 0.0
    for name in names:
        lo, hi = bounds[name]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(
                f"the prior range of sampled parameter {name!r} in {source} is ({lo}, {hi}); a flat "
                "prior needs finite bounds. Pass prior_bounds={name: (lo, hi), ...} or "
                "log_prior_volume (command line: --prior-bounds NAME=LO,HI or "
                "--log-prior-volume). A prior that is not flat cannot be given this way: read "
                "a file that carries ln prior per draw instead, such as the .npz or ArviZ .nc "
                "that astrobayes run writes beside its GetDist chains"
            )
        if not hi > lo:
            raise ValueError(
                f"the prior range of {name!r} in {source} must have hi > lo; got ({lo}, {hi})"
            )
        total += math.log(hi - lo)
    return total


def _check_prior_bounds(prior_bounds: Mapping[str, Sequence[float]], names: Sequence[str]) -> dict:
    if not isinstance(prior_bounds, Mapping):
        raise TypeError(
            f"prior_bounds must be a dict name -> (lo, hi); got {type(prior_bounds).__name__}"
        )
    bounds = {}
    for name, pair in prior_bounds.items():
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(
                f"prior_bounds[{name!r}] must be a pair (lo, hi) of numbers; got {pair!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(
                f"prior_bounds[{name!r}] must be finite with hi > lo; got ({lo}, {hi})"
            )
        bounds[name] = (lo, hi)
    missing = [n for n in names if n not in bounds]
    unknown = [n for n in bounds if n not in names]
    if missing or unknown:
        unnamed = list(names) == [f"p{i}" for i in range(len(names))]
        raise ValueError(
            f"prior_bounds must give (lo, hi) for exactly the sampled parameters {list(names)}; "
            f"missing {missing}, unknown {unknown}"
            + (
                " (the file names no parameters: they are p0, p1, ... in column order)"
                if unnamed and unknown
                else ""
            )
        )
    return bounds


def normalise(
    data: FileChains,
    names: Sequence[str],
    offsets: list[int],
    log_prior_volume: float | None,
    prior_bounds: Mapping[str, tuple[float, float]] | None,
) -> tuple[list[np.ndarray], float, str]:
    """The log densities to use, the log prior volume to subtract, and the sentence.

    Args:
        data: One file's chains, already restricted to ``names``.
        names: The sampled parameters kept.
        offsets: Rows dropped from the start of each chain (for error messages).
        log_prior_volume: The user's log prior volume, or ``None``.
        prior_bounds: The user's flat-prior bounds, or ``None``.

    Returns:
        ``(base, log_volume, sentence)``: per-chain ``log L`` or log posterior from the
        file, the natural log of the prior volume to subtract from it, and the convention.

    Raises:
        ValueError: On a missing ``.ranges`` file or range, infinite bounds, or draws
            outside the bounds.

    """
    if log_prior_volume is not None or prior_bounds is not None:
        if data.log_likelihood is not None:
            base, source = data.log_likelihood, "log L from the file"
        else:
            base = data.log_posterior
            source = f"{data.description}, taken as log L + a constant prior"
        if prior_bounds is None:
            log_volume = float(log_prior_volume)
            return (
                base,
                log_volume,
                f"{source}; user-given log prior volume {log_volume:.6g} subtracted",
            )
        bounds = _check_prior_bounds(prior_bounds, names)
        _check_inside(data, names, bounds, offsets, "prior_bounds")
        log_volume = _log_volume(names, bounds, "prior_bounds")
        return (
            base,
            log_volume,
            (
                f"{source}; flat prior from the user-given prior_bounds over {', '.join(names)}, "
                f"log prior volume {log_volume:.6g} subtracted"
            ),
        )
    if data.kind == FLAT_UNNORMALISED:
        if data.ranges is None:
            raise ValueError(
                f"{data.path}: a CosmoMC-style chain holds -log L with flat priors left "
                "unnormalised, and no .ranges file sits beside it to normalise them. Pass "
                "prior_bounds={name: (lo, hi), ...} or log_prior_volume (0.0 to take the "
                "values as they are)"
            )
        missing = [n for n in names if n not in data.ranges]
        if missing:
            raise ValueError(
                f"{data.ranges_path}: no prior range for sampled parameters {missing}; pass "
                "prior_bounds={name: (lo, hi), ...} or log_prior_volume"
            )
        log_volume = _log_volume(names, data.ranges, str(data.ranges_path))
        _check_inside(data, names, data.ranges, offsets, str(data.ranges_path))
        return (
            data.log_posterior,
            log_volume,
            (
                f"{data.description}; flat priors from {data.ranges_path.name}, "
                f"log prior volume {log_volume:.6g} subtracted"
            ),
        )
    if data.kind == LIKELIHOOD_ONLY:
        raise ValueError(
            f"{data.path}: the file holds ln L and no prior ({data.description}), and the "
            "evidence needs the normalised prior. Flat priors: pass prior_bounds={name: "
            "(lo, hi), ...} (--prior-bounds NAME=LO,HI) or log_prior_volume. Other priors: "
            "compute ln L + ln pi of the draws with your model (for a NumPyro model, "
            "astrobayes.runconfig.posterior_table(Model(name, model, args), "
            "mcmc.get_samples(group_by_chain=True)).chains()), or read a file that holds "
            "them"
        )
    if data.kind == NORMALISED:
        return data.log_posterior, 0.0, data.description
    return data.log_posterior, 0.0, f"{data.description}, {_AS_GIVEN_SENTENCE}"
