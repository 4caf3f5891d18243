"""The ``astrobayes`` console script.

Each subcommand lives in its own module ``astrobayes.cli.<name>`` that defines
``add_parser(subparsers)`` (registering its parser, with ``func`` set to its runner).
The runner returns the process exit code. Every name in :data:`COMMANDS` must have its
module: a missing one is an installation error and fails loudly, never skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = ("evidence", "compare", "run", "demo", "sbi", "image", "texture", "symbolic")
"""The subcommands, each a module ``astrobayes.cli.<name>`` with ``add_parser``."""


def build_parser(commands: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand of ``commands``.

    Args:
        commands: Subcommand names (default :data:`COMMANDS`).

    Returns:
        The parser.

    Raises:
        ImportError: If a subcommand's module ``astrobayes.cli.<name>`` does not exist or
            defines no ``add_parser`` (an incomplete installation, never skipped).

    """
    parser = argparse.ArgumentParser(
        prog="astrobayes",
        description="Fast, trustworthy Bayesian inference for astrophysics.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions of astrobayes and its numerical stack, and exit",
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent JAX compilation cache (~/.cache/astrobayes/jax)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        module_name = f"astrobayes.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                raise ImportError(
                    f"subcommand {name!r} is listed but its module {module_name} does not "
                    "exist; the installation is incomplete"
                ) from error
            raise
        add_parser = getattr(module, "add_parser", None)
        if not callable(add_parser):
            raise ImportError(f"subcommand module {module_name} defines no add_parser(subparsers)")
        add_parser(subparsers)
    return parser


class _VersionAction(argparse.Action):
    """``--version``: astrobayes, its source commit and the numerical stack (asked lazily)."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None
    ):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from astrobayes.io import software_provenance

        record = software_provenance()
        source = record["source"]
        where = (
            f"commit {source['commit'][:12]}{' (modified)' if source['modified'] else ''}"
            if source and source.get("commit")
            else "installed package"
        )
        packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items() if v)
        print(
            f"astrobayes {record['astrobayes']} ({where})\n"
            f"Python {record['python']} on {record['platform']}; JAX backend "
            f"{record['jax_backend']}\n{packages}"
        )
        parser.exit()


def _enable_compilation_cache(args: argparse.Namespace) -> None:
    """Keep JAX compilations on disk so repeated commands skip them.

    On by default for every command: ``$ASTROBAYES_JAX_CACHE`` (or
    ``~/.cache/astrobayes/jax``); ``--no-compile-cache`` or an empty
    ``ASTROBAYES_JAX_CACHE`` turns it off. Library users call
    :func:`astrobayes.compilation.enable_compilation_cache` themselves.
    """
    from astrobayes.compilation import default_cache_directory, enable_compilation_cache

    folder = default_cache_directory()
    if getattr(args, "no_compile_cache", False) or folder is None:
        return
    enable_compilation_cache(folder)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _enable_compilation_cache(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"astrobayes {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback through JAX's threads
        print(
            f"astrobayes {args.command}: interrupted. Files are written atomically; "
            "run, demo and sbi started again with the same --out resume from what they "
            "saved (checkpoints, simulation chunks).",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
