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

COMMANDS = ("evidence", "compare", "demo", "sbi", "image")
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


def _enable_compilation_cache() -> None:
    """Keep JAX compilations on disk so repeated commands skip them.

    Set ``ASTROBAYES_JAX_CACHE`` to a folder to move the cache, or to an empty string to
    switch it off. Only the command line does this; the library leaves JAX's settings alone.
    """
    import os

    folder = os.environ.get(
        "ASTROBAYES_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "astrobayes", "jax")
    )
    if not folder:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    _enable_compilation_cache()
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
