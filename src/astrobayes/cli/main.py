"""The ``astrobayes`` console script.

Each subcommand lives in its own module ``astrobayes.cli.<name>`` that defines
``add_parser(subparsers)`` (registering its parser, with ``func`` set to its runner) .
The runner returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMANDS = ("evidence", "compare", "demo", "sample", "sbi", "image")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="astrobayes",
        description="Fast, trustworthy Bayesian inference for astrophysics.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"astrobayes.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"astrobayes.cli.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"astrobayes {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
