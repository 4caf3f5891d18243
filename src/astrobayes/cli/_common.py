"""Shared pieces of the subcommands: evidence options, chain loading, progress bars."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import sys
from pathlib import Path

from tqdm.auto import tqdm

from astrobayes.evidence import GaussianTarget, RealNVPFlow, RQSplineFlow

TARGETS = {"rqspline": RQSplineFlow, "realnvp": RealNVPFlow, "gaussian": GaussianTarget}


def add_evidence_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evidence`` and ``compare``."""
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default="rqspline",
        help="importance target (default: rqspline flow)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="base-variance scale T in (0, 1); chosen automatically when omitted",
    )
    parser.add_argument(
        "--format",
        default=None,
        help="force the chain format (npz, getdist, cobaya, emcee, arviz, csv, ultranest, cosmosis)",
    )
    parser.add_argument(
        "--log-prior-volume",
        type=float,
        default=None,
        help="log of the flat prior volume to subtract from the file's log posterior",
    )
    parser.add_argument(
        "--prior-bounds",
        action="append",
        default=None,
        metavar="NAME=LO,HI",
        help="flat prior range of a parameter (repeatable); their volume is subtracted",
    )
    parser.add_argument("--parameters", default=None, help="comma-separated parameters to use")
    parser.add_argument(
        "--split",
        type=int,
        default=None,
        help="cut each chain into N sub-chains (default: 4 when there is a single chain)",
    )
    parser.add_argument(
        "--burn-in", type=float, default=0.0, help="fraction of each chain to discard"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_prior_bounds(items: list[str] | None) -> dict[str, tuple[float, float]] | None:
    """Parse ``NAME=LO,HI`` items."""
    if not items:
        return None
    bounds = {}
    for item in items:
        try:
            name, rest = item.split("=", 1)
            lo, hi = (float(v) for v in rest.split(","))
        except ValueError:
            raise ValueError(
                f"--prior-bounds expects NAME=LO,HI (e.g. omega_m=0.01,0.99); got {item!r}"
            ) from None
        bounds[name.strip()] = (lo, hi)
    return bounds


def load_chains(paths, args) -> tuple[object, str, object]:
    """Read chains with the CLI options.

    Returns:
        ``(chains, description of conventions, what read_chains returned)``: the first
        are cut into sub-chains where asked (``--split``, or 4 for a single chain); the
        last (:class:`~astrobayes.io.readers.ChainsFile`) holds the chains as read and
        their prior ``bounds``.
    """
    from astrobayes.io import read_chains

    parameters = (
        None if args.parameters is None else [p.strip() for p in args.parameters.split(",")]
    )
    loaded = read_chains(
        paths,
        format=args.format,
        log_prior_volume=args.log_prior_volume,
        prior_bounds=parse_prior_bounds(args.prior_bounds),
        parameters=parameters,
        burn_in=args.burn_in,
    )
    chains = loaded.chains
    notes = [f"format: {loaded.format}", f"convention: {loaded.convention}"]
    split = args.split
    if split is None and chains.num_chains == 1:
        split = 4
        notes.append("one chain in the input: cut into 4 contiguous sub-chains (--split to change)")
    if split is not None and split > 1:
        chains = chains.split_chains(split)
    if loaded.bounds:
        notes.append(
            "prior edges known for "
            + ", ".join(loaded.bounds)
            + ": the evidence is estimated on coordinates without edges (logit or log)"
        )
    return chains, "\n".join(notes), loaded


def make_target(args):
    """Target family from ``--target``."""
    return TARGETS[args.target]()


class ProgressBar:
    """A tqdm bar driven by a :data:`~astrobayes._types.ProgressFn` ``(stage, done, total)``.

    One bar per stage: a new stage closes the previous bar and opens its own.
    """

    def __init__(
        self,
        label: str,
        disable: bool = False,
        labels: dict[str, str] | None = None,
        units: dict[str, str] | None = None,
    ):
        self.label = label
        self.disable = disable
        self.labels = {"training": "training flow"} if labels is None else labels
        self.units = {"training": "epoch"} if units is None else units
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or stage != self.stage:
            self.close()
            self.stage = stage
            name = self.labels.get(stage, stage)
            # `initial`: the rate counts only the work done after the bar opened (the
            # first report can come after a compilation, with work already done)
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=self.label if name == self.label else f"{self.label}: {name}",
                unit=self.units.get(stage, "step"),
                file=sys.stderr,
                disable=self.disable,
                leave=False,
            )
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def estimate_with_progress(key, chains, args, label: str, loaded=None):
    """Run :func:`astrobayes.evidence.estimate` with the CLI options and a progress bar.

    ``loaded`` is what :func:`load_chains` read: its prior ``bounds`` go to the
    estimate, and where ``chains`` are sub-chains of its chains (``--split``), their
    stationarity is tested again on the chains as read, so that the burn-in it suggests
    is a fraction of the chains in the files (what ``--burn-in`` drops).
    """
    from astrobayes.evidence import estimate
    from astrobayes.evidence.estimator import with_stationarity

    bounds = None if loaded is None else loaded.bounds
    as_read = None if loaded is None else loaded.chains
    with ProgressBar(label, disable=args.no_progress) as bar:
        result = estimate(
            key,
            chains,
            target=make_target(args),
            temperature=args.temperature,
            bounds=bounds,
            progress_fn=bar,
        )
    if as_read is not None and as_read.num_chains != chains.num_chains:
        cuts = chains.num_chains // as_read.num_chains
        result = with_stationarity(result, as_read, pieces_per_chain=2 * cuts, stuck=False)
    return result


def format_result(result) -> str:
    """Human-readable block for an evidence result (:meth:`EvidenceResult.summary`)."""
    return result.summary()


def source_file(function) -> Path | None:
    """The file a user's function comes from, or ``None`` (a builtin, a callable object).

    A ``FileFunction``'s ``path``, else :func:`inspect.getsourcefile`.
    """
    path = getattr(function, "path", None)
    if path is None:
        try:
            path = inspect.getsourcefile(function)
        except TypeError:  # a builtin, a C function or a callable object
            return None
    return Path(path) if path is not None and Path(path).is_file() else None


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex): what resumable runs compare users' code by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
