"""``astrobayes evidence FILE...``: ln z +/- sigma from posterior chains on disk."""

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
    """Register the ``evidence`` subcommand."""
    parser = subparsers.add_parser(
        "evidence",
        help="evidence from posterior chains (learned harmonic mean)",
        description="Estimate ln z from posterior chains (several files = several chains).",
    )
    parser.add_argument("files", nargs="+", help="chain files or GetDist/Cobaya roots")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_evidence_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; exit code 1 on a failure status."""
    chains, notes, loaded = load_chains(args.files, args)
    if not args.json:
        print(notes)
    result = estimate_with_progress(jax.random.key(args.seed), chains, args, "evidence", loaded)
    if args.json:
        out = result.to_dict()
        out["input"] = notes
        print(to_json(out))
    else:
        print(format_result(result))
    if result.status.is_failure:
        print(f"astrobayes evidence: {result.status.value}", file=sys.stderr)
        return 1
    return 0
