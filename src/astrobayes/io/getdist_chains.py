"""Write posterior chains as GetDist files: ``root_1.txt ...``, ``root.paramnames``, ``root.ranges``.

The files are what GetDist (Lewis 2019, arXiv:1910.13970) loads with
``getdist.loadMCSamples(root)`` and what :func:`astrobayes.io.read_chains` reads back:

* ``root_<k>.txt``, one per chain: columns ``weight``, ``-ln L`` (see below), then the
  parameters, in full double precision; two ``#`` comment lines at the top state the
  convention (GetDist and our reader skip them). Draws of zero weight (the padding of
  unequal chains) are not written.
* ``root.paramnames``: ``name  LaTeX label`` per line (the label without ``$``).
* ``root.ranges``: ``name  low  high`` with ``N`` for an open side: the hard prior edges
  GetDist uses to correct its kernel density estimate at a boundary.

The second column follows the CosmoMC convention: minus the log likelihood for flat
priors, i.e. ``-ln L = -(ln L + ln pi) - ln V`` where ``V`` is the volume of the box
in ``root.ranges``; :func:`~astrobayes.io.read_chains` subtracts ``ln V`` again, so a
:class:`~astrobayes.chains.Chains` written without ``loglikes`` reads back with the same
``log_posterior``. When a range is open the column holds ``-(ln L + ln pi)`` and the
header says so. Given ``loglikes`` (``-ln L`` per draw, GetDist's name) are written as
they are.
"""

from __future__ import annotations

import io as _stdio
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from astrobayes._checks import check_parameter_names
from astrobayes.chains import Chains
from astrobayes.io.writers import write_atomic

__all__ = ["write_getdist_chains"]


#: Header line of a GetDist chain whose prior is not flat over its ``.ranges``; the rest
#: of the line names the file that carries the prior per draw.
PRIOR_NOT_FLAT_MARKER = "# Prior: not flat over .ranges; ln pi per draw is in"


def write_getdist_chains(
    root: str | os.PathLike[str],
    chains: Chains | np.ndarray | Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    weights: np.ndarray | None = None,
    loglikes: np.ndarray | None = None,
    derived: Sequence[str] = (),
    prior_not_flat: str | None = None,
) -> tuple[Path, ...]:
    r"""Write chains as GetDist text files under ``root`` (every file atomically).

    Args:
        root: File root, e.g. ``out/chains/lcdm`` writes ``out/chains/lcdm_1.txt``, ...;
            its directory must exist. Chain files ``root_<k>.txt`` left from an earlier
            write with more chains are removed, so GetDist never mixes two runs.
        chains: A :class:`~astrobayes.chains.Chains`; or draws ``(num_chains, num_samples,
            dim)`` (or ``(num_samples, dim)``: one chain); or ``{name: (num_chains,
            num_samples)}`` (or ``(num_samples,)``) as in
            :attr:`astrobayes.comparison.ModelReport.posterior`.
        names: Parameter names, in column order. Required for a plain array; for
            ``Chains`` and mappings, a subset/order of their names (default: all).
        labels: ``{name: LaTeX}`` without ``$`` (e.g. ``r"\Omega_{\rm m}"``); a missing
            name is its own label.
        ranges: ``{name: (low, high)}`` hard prior edges; ``None`` or ``nan`` for an open
            side; a missing name is open on both sides.
        weights: ``(num_chains, num_samples)`` non-negative weights (default: those of
            ``Chains``, else ones).
        loglikes: ``(num_chains, num_samples)`` values of ``-ln L`` (default: from the
            ``log_posterior`` of ``Chains`` as the module docstring says; else zeros, and
            the header says that no likelihood was written).
        derived: Names of derived columns (functions of the sampled parameters); they are
            marked with GetDist's trailing ``*`` in ``root.paramnames``.
        prior_not_flat: Where the prior is not flat over ``ranges`` (a log-uniform or
            normal prior), the file that carries ``ln pi`` per draw (say ``root.npz``):
            the header then says so (:data:`PRIOR_NOT_FLAT_MARKER`), and
            :func:`astrobayes.io.read_chains` refuses these chains for an evidence
            instead of assuming flat priors from ``root.ranges``.

    Returns:
        The paths written: the chain files, then ``root.paramnames`` and ``root.ranges``.

    Raises:
        TypeError: If ``chains`` is none of the accepted types.
        ValueError: On shapes that disagree, unknown or invalid names, non-finite draws,
            negative weights, a chain with no positive weight, or ``low >= high``.
        FileNotFoundError: If the directory of ``root`` does not exist.

    Example:
        >>> import numpy as np, tempfile, os
        >>> root = os.path.join(tempfile.mkdtemp(), "run")
        >>> draws = np.random.default_rng(0).normal(size=(2, 50, 2))
        >>> paths = write_getdist_chains(root, draws, ["x", "y"], {"x": r"\alpha"},
        ...                              {"x": (-10.0, 10.0)})
        >>> [p.name for p in paths]
        ['run_1.txt', 'run_2.txt', 'run.paramnames', 'run.ranges']
        >>> Path(root + ".paramnames").read_text().splitlines()
        ['x\t\\alpha', 'y\ty']

    """
    root = Path(root)
    if not root.parent.is_dir():
        raise FileNotFoundError(
            f"{root.parent}: the directory for GetDist root {root.name} does not exist"
        )
    draws, chain_names, default_weights, log_posterior = _draws(chains, names)
    num_chains, num_samples, dim = draws.shape
    labels = _labels(labels, chain_names)
    bounds = _ranges(ranges, chain_names)
    unknown = sorted(set(derived) - set(chain_names))
    if isinstance(derived, str) or unknown:
        raise ValueError(f"derived must name columns among {list(chain_names)}; got {derived!r}")
    weights = _per_draw(weights, "weights", (num_chains, num_samples), default_weights)
    if (weights < 0).any():
        raise ValueError(f"weights must be non-negative; got minimum {weights.min()}")
    empty = np.flatnonzero(weights.sum(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"weights of chain {int(empty[0])} are all zero; nothing to write")
    column, sentence = _second_column(loglikes, log_posterior, bounds, (num_chains, num_samples))
    header = (
        "# astrobayes GetDist chain. Columns: weight, -ln L, then the parameters of "
        f"{root.name}.paramnames.\n# Second column: {sentence}.\n"
    )
    if prior_not_flat is not None:
        header += f"{PRIOR_NOT_FLAT_MARKER} {prior_not_flat}\n"
    paths = []
    for c in range(num_chains):
        used = weights[c] > 0
        table = np.column_stack([weights[c][used], column[c][used], draws[c][used]])
        buffer = _stdio.StringIO()
        np.savetxt(buffer, table, fmt="%.17g", delimiter=" ")
        text = header + buffer.getvalue()
        paths.append(
            write_atomic(
                root.with_name(f"{root.name}_{c + 1}.txt"),
                lambda handle, text=text: handle.write(text.encode("utf-8")),
            )
        )
    _remove_stale(root, num_chains)
    paramnames = "".join(f"{n}{'*' if n in derived else ''}\t{labels[n]}\n" for n in chain_names)
    paths.append(
        write_atomic(
            root.with_name(root.name + ".paramnames"),
            lambda handle: handle.write(paramnames.encode("utf-8")),
        )
    )
    lines = []
    for n in chain_names:
        low, high = bounds[n]
        lines.append(f"{n}\t{_bound_text(low)}\t{_bound_text(high)}\n")
    ranges_text = "".join(lines)
    paths.append(
        write_atomic(
            root.with_name(root.name + ".ranges"),
            lambda handle: handle.write(ranges_text.encode("utf-8")),
        )
    )
    return tuple(paths)


def _draws(chains, names):
    """``(draws (c, n, d), names, weights or None, log_posterior or None)``."""
    if isinstance(chains, Chains):
        all_names = tuple(chains.names)
        chosen = _choose(names, all_names)
        index = [all_names.index(n) for n in chosen]
        return chains.samples[:, :, index], chosen, chains.weights, chains.log_posterior
    if isinstance(chains, Mapping):
        if not chains:
            raise ValueError("chains must hold at least one parameter; got an empty mapping")
        chosen = _choose(names, tuple(str(k) for k in chains))
        arrays = [np.asarray(chains[n], dtype=np.float64) for n in chosen]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                f"every parameter of chains must have one shape; got {dict(zip(chosen, [a.shape for a in arrays], strict=True))}"
            )
        shape = arrays[0].shape
        if len(shape) not in (1, 2):
            raise ValueError(
                f"chains[name] must have shape (num_chains, num_samples) or (num_samples,); got {shape}"
            )
        draws = np.stack(arrays, axis=-1)
        draws = draws[None] if draws.ndim == 2 else draws
        _check_draws(draws)
        return draws, chosen, None, None
    if isinstance(chains, np.ndarray | list | tuple):
        draws = np.asarray(chains, dtype=np.float64)
        if draws.ndim == 2:
            draws = draws[None]
        if draws.ndim != 3:
            raise ValueError(
                f"chains must have shape (num_chains, num_samples, dim) or (num_samples, dim); got {draws.shape}"
            )
        if names is None:
            raise ValueError("names must be given for chains passed as an array")
        chosen = tuple(str(n) for n in names)
        if len(chosen) != draws.shape[2]:
            raise ValueError(
                f"names must hold dim = {draws.shape[2]} names; got {len(chosen)}: {chosen}"
            )
        _check_names(chosen)
        _check_draws(draws)
        return draws, chosen, None, None
    raise TypeError(
        "chains must be an astrobayes Chains, an array (num_chains, num_samples, dim) or a "
        f"mapping name -> draws; got {type(chains).__name__}"
    )


def _choose(names, available: tuple[str, ...]) -> tuple[str, ...]:
    if names is None:
        chosen = available
    else:
        if isinstance(names, str):
            raise TypeError(f"names must be a sequence of names; got the string {names!r}")
        chosen = tuple(str(n) for n in names)
        unknown = [n for n in chosen if n not in available]
        if unknown:
            raise ValueError(f"names {unknown} are not among the chains' names {list(available)}")
    _check_names(chosen)
    return chosen


def _check_names(names: tuple[str, ...]) -> None:
    check_parameter_names(names, "names")


def _check_draws(draws: np.ndarray) -> None:
    if min(draws.shape) < 1:
        raise ValueError(f"chains must be non-empty in every axis; got shape {draws.shape}")
    if not np.isfinite(draws).all():
        raise ValueError(
            f"chains must be finite; {int((~np.isfinite(draws)).sum())} values are not"
        )


def _labels(labels, names) -> dict[str, str]:
    labels = {} if labels is None else dict(labels)
    out = {}
    for n in names:
        label = str(labels.get(n, n)).strip()
        if "\n" in label or not label:
            raise ValueError(f"labels[{n!r}] must be one non-empty line of LaTeX; got {label!r}")
        out[n] = label.strip("$")
    return out


def _ranges(ranges, names) -> dict[str, tuple[float, float]]:
    ranges = {} if ranges is None else dict(ranges)
    out = {}
    for n in names:
        low, high = ranges.get(n, (None, None))
        low = math.nan if low is None else float(low)
        high = math.nan if high is None else float(high)
        if math.isinf(low) and low < 0:
            low = math.nan
        if math.isinf(high) and high > 0:
            high = math.nan
        if not math.isnan(low) and not math.isnan(high) and not low < high:
            raise ValueError(f"ranges[{n!r}] must have low < high; got ({low}, {high})")
        out[n] = (low, high)
    return out


def _per_draw(value, name, shape, default):
    if value is None:
        return np.ones(shape) if default is None else np.asarray(default, dtype=np.float64)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1 and shape[0] == 1:
        array = array[None]
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match chains; got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def _second_column(loglikes, log_posterior, bounds, shape):
    if loglikes is not None:
        return _per_draw(loglikes, "loglikes", shape, None), "-ln L as given (loglikes)"
    if log_posterior is None:
        return np.zeros(shape), "zeros: no likelihood was written (draws for plots only)"
    lows = np.array([b[0] for b in bounds.values()])
    highs = np.array([b[1] for b in bounds.values()])
    if np.isfinite(lows).all() and np.isfinite(highs).all():
        log_volume = float(np.sum(np.log(highs - lows)))
        return (
            -np.asarray(log_posterior) - log_volume,
            "-(ln L + ln prior) - ln V with ln V = "
            f"{log_volume!r} the log volume of the .ranges box (equals -ln L for a flat prior on "
            "that box); astrobayes.io.read_chains subtracts ln V again",
        )
    return (
        -np.asarray(log_posterior),
        "-(ln L + ln prior), prior normalised (a range is open, so no flat-prior volume applies)",
    )


def _bound_text(value: float) -> str:
    return "N" if math.isnan(value) else repr(float(value))


def _remove_stale(root: Path, num_chains: int) -> None:
    pattern = re.compile(rf"^{re.escape(root.name)}_(\d+)\.txt$")
    for path in root.parent.iterdir():
        match = pattern.match(path.name)
        if match and int(match.group(1)) > num_chains and path.is_file():
            path.unlink()
