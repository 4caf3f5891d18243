"""``astrobayes compare A B``: ln B = ln z_A - ln z_B with its error and Jeffreys reading."""

from __future__ import annotations

import argparse
import sys

import jax

from astrobayes.cli._common import (
    add_evidence_options,
    estimate_with_progress,
    format_result,
    load_chains,
)
from astrobayes.io import to_json


def add_parser(subparsers) -> None:
    """Register the ``compare`` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="Bayes factor of two models from their chains",
        description="ln B = ln z_A - ln z_B from the posterior chains of two models.",
    )
    parser.add_argument("a", help="chains of model A (file or GetDist/Cobaya root)")
    parser.add_argument("b", help="chains of model B (file or GetDist/Cobaya root)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_evidence_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; exit code 1 when either evidence failed."""
    from astrobayes.evidence import log_bayes_factor

    key = jax.random.key(args.seed)
    results = {}
    for index, (label, path) in enumerate((("A", args.a), ("B", args.b))):
        chains, notes, loaded = load_chains([path], args)
        results[label] = estimate_with_progress(
            jax.random.fold_in(key, index), chains, args, f"model {label}", loaded
        )
        if not args.json:
            print(f"== model {label}: {path}\n{notes}\n{format_result(results[label])}\n")
    factor = log_bayes_factor(results["A"], results["B"], "A", "B")
    if args.json:
        payload = {
            "log_bayes_factor": factor.log_bayes_factor,
            "log_bayes_factor_std": factor.log_bayes_factor_std,
            "jeffreys": factor.reading,
            "A": results["A"].to_dict(),
            "B": results["B"].to_dict(),
        }
        print(to_json(payload))
    else:
        print(
            f"ln B(A/B) = {factor.log_bayes_factor:.4f} ± {factor.log_bayes_factor_std:.4f}: {factor.reading}"
        )
    failed = [label for label, r in results.items() if r.status.is_failure]
    if failed:
        print(
            f"astrobayes compare: evidence of model(s) {', '.join(failed)} failed", file=sys.stderr
        )
        return 1
    return 0
