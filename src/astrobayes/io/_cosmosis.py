"""CosmoSIS text output: the chains of DES, KiDS and other CosmoSIS analyses.

A CosmoSIS text file starts with a header line ``#sec--a<TAB>sec--b ... prior<TAB>like<TAB>
post[<TAB>weight]``, then comment lines: ``#sampler=``, ``#n_varied=`` (the first
``n_varied`` columns are sampled, the others up to ``prior`` derived) and the run's ini
files between ``## START_OF_PARAMS_INI`` / ``## START_OF_VALUES_INI`` /
``## START_OF_PRIORS_INI`` and their ``END`` sentinels. The values file gives each
sampled parameter ``lower start upper`` (its flat prior); the priors file any other
prior. ``like`` is ln L, ``prior`` ln pi and ``post`` their sum.

``prior`` is normalised (``-ln(upper - lower)`` per flat prior) in CosmoSIS releases
since 2017 and was ``0`` for flat priors before: the reader checks it against the values
file where every prior is flat, and normalises it itself where it finds ``0``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from astrobayes.io._common import (
    AS_GIVEN,
    LIKELIHOOD_ONLY,
    NORMALISED,
    FileChains,
    load_table,
    sniff_text,
)
from astrobayes.io._text import first_content_line

__all__ = ["looks_like_cosmosis", "read_cosmosis"]

#: Columns that are never parameters.
SPECIAL_COLUMNS = ("prior", "like", "post", "weight", "log_weight", "old_weight", "old_post")


def looks_like_cosmosis(text: str) -> bool:
    """Whether the text starts with a CosmoSIS header line (``#... like post``)."""
    line = first_content_line(text)
    if line is None or not line.startswith("#"):
        return False
    tokens = line.lstrip("#").split()
    return "like" in tokens and "post" in tokens


def _header(path: Path) -> tuple[tuple[str, ...], list[str]]:
    """The column names and every comment line (without their leading ``#``)."""
    comments: list[str] = []
    columns: tuple[str, ...] = ()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            if not line.startswith("#"):
                if columns:
                    continue  # data; keep reading for the trailing comments
                break
            text = line.rstrip("\n")
            if not columns:
                columns = tuple(text.lstrip("#").split())
            else:
                comments.append(text.lstrip("#").strip())
    return columns, comments


def _section(comments: list[str], name: str) -> dict[str, str]:
    """``{"section--key": value}`` of one ini file copied into the header."""
    inside, section, entries = False, "", {}
    for line in comments:
        if line == f"START_OF_{name}_INI":
            inside = True
        elif line == f"END_OF_{name}_INI":
            break
        elif inside and line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif inside and "=" in line and not line.startswith(";"):
            key, value = (part.strip() for part in line.split("=", 1))
            entries[f"{section}--{key.lower()}"] = value
    return entries


def _metadata(comments: list[str], key: str) -> str | None:
    for line in comments:
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    return None


def read_cosmosis(path: Path) -> FileChains:
    """Read a CosmoSIS text chain (see the module docstring)."""
    sniff_text(path)
    columns, comments = _header(path)
    if "like" not in columns or "post" not in columns:
        raise ValueError(
            f"{path}, line 1: a CosmoSIS header names the columns 'like' and 'post'; got "
            f"{' '.join(columns)[:120]!r}"
        )
    table = load_table(path, len(columns), delimiter=None, skip_header=False, column_names=columns)
    lowered = [c.lower() for c in columns]
    parameter_columns = [i for i, c in enumerate(lowered) if c not in SPECIAL_COLUMNS]
    names = tuple(columns[i] for i in parameter_columns)
    n_varied = _metadata(comments, "n_varied")
    notes: list[str] = []
    if n_varied is not None and n_varied.isdigit() and int(n_varied) <= len(names):
        derived = tuple(i >= int(n_varied) for i in range(len(names)))
        known = True
    else:
        derived, known = tuple(False for _ in names), False
        notes.append("no #n_varied line: every column before 'prior' is taken as sampled")
    like = table[:, lowered.index("like")]
    post = table[:, lowered.index("post")]
    weights = None
    if "weight" in lowered:
        weights = table[:, lowered.index("weight")]
    elif "log_weight" in lowered:
        log_weight = table[:, lowered.index("log_weight")]
        weights = np.exp(log_weight - log_weight.max())
    ranges = _value_ranges(comments, names, derived)
    kind, description, log_posterior = _prior_convention(
        table, lowered, names, derived, ranges, comments, like, post, notes
    )
    sampler = _metadata(comments, "sampler")
    walkers = _section(comments, "PARAMS").get("emcee--walkers")
    rows_of_chain = [np.arange(table.shape[0])]
    if sampler == "emcee" and walkers and walkers.isdigit() and int(walkers) > 1:
        count = int(walkers)
        if table.shape[0] % count == 0:  # rows are steps x walkers, walker fastest
            rows_of_chain = [np.arange(w, table.shape[0], count) for w in range(count)]
            notes.append(f"emcee's {count} walkers (interleaved rows) as {count} chains")
    return FileChains(
        path=path,
        format="cosmosis",
        names=names,
        derived=derived,
        samples=[table[rows][:, parameter_columns] for rows in rows_of_chain],
        log_posterior=[log_posterior[rows] for rows in rows_of_chain],
        weights=None if weights is None else [weights[rows] for rows in rows_of_chain],
        log_likelihood=[like[rows] for rows in rows_of_chain],
        kind=kind,
        description=description,
        notes=notes,
        ranges=ranges,
        all_sampled_known=known,
    )


def _value_ranges(comments, names, derived) -> dict[str, tuple[float, float]]:
    """The hard edges ``lower`` and ``upper`` of each varied parameter in the values file.

    A CosmoSIS ``lower start upper`` line bounds the sampler whatever extra prior
    ``priors.ini`` puts on the parameter; the estimator maps them away
    (:meth:`astrobayes.chains.Chains.unbounded`).
    """
    values = _section(comments, "VALUES")
    ranges = {}
    for name, is_derived in zip(names, derived, strict=True):
        numbers = values.get(name.lower(), "").split()
        if is_derived or len(numbers) != 3:
            continue
        try:
            lower, upper = float(numbers[0]), float(numbers[-1])
        except ValueError:
            continue
        if upper > lower:
            ranges[name] = (lower, upper)
    return ranges


def _prior_convention(table, lowered, names, derived, ranges, comments, like, post, notes):
    """``(kind, description, log posterior)``: ``post``, or ``like`` + the normalised flat prior.

    Where every sampled parameter's prior is the flat range of the values file, the
    normalised log prior is ``-sum ln(upper - lower)``; the file's ``prior`` column must
    equal it (releases since 2017) or be 0 (earlier releases, normalised here).
    """
    priors = _section(comments, "PRIORS")
    sampled = [n for n, d in zip(names, derived, strict=True) if not d]
    if all(n in ranges and n.lower() not in priors for n in sampled):
        log_volume = sum(math.log(upper - lower) for lower, upper in map(ranges.get, sampled))
    else:
        log_volume = math.nan  # not (only) the values file's flat prior
    prior = table[:, lowered.index("prior")] if "prior" in lowered else post - like
    if math.isnan(log_volume):
        return (
            AS_GIVEN,
            "CosmoSIS post (like + prior; priors besides the values file's flat ranges, so "
            "the prior's normalisation is not checked: CosmoSIS normalises its priors since "
            "2017)",
            post,
        )
    if np.allclose(prior, -log_volume, rtol=0, atol=1e-6 * max(1.0, abs(log_volume))):
        return (
            NORMALISED,
            f"CosmoSIS post = like + prior, the prior normalised (it equals -ln of the values "
            f"file's flat prior volume, {-log_volume:.6g})",
            post,
        )
    if np.allclose(prior, 0.0, atol=1e-12):
        notes.append(
            f"its prior column is 0 (a CosmoSIS release before 2017): the log volume of the "
            f"values file's flat ranges, {log_volume:.6g}, was subtracted"
        )
        return (
            NORMALISED,
            "CosmoSIS like, with the values file's flat priors normalised",
            (like - log_volume),
        )
    return (
        LIKELIHOOD_ONLY,
        f"CosmoSIS like; its prior column ({float(prior.min()):.6g} to "
        f"{float(prior.max()):.6g}) is neither the normalised flat prior of the values file "
        f"({-log_volume:.6g}) nor 0",
        like,
    )
