"""``astrobayes symbolic DATA.csv --x COL --y COL --out DIR``: equations ranked by evidence.

Writes ``DIR/equations.json`` (a list ranked by the Laplace log evidence times ESR's
structure prior, i.e. the log posterior probability of each function; each entry has
``expression`` in sympy syntax with parameters ``a0, a1, ...``, ``parameters``,
``complexity``, ``description_length``, ``log_evidence``, ``log_posterior``,
``log_likelihood``, ``chi2``; ``--rank-by`` changes the order),
``DIR/summary.json`` (settings, counts, status) and ``DIR/pareto.png``. The fits run in
float64 (enabled only for the duration of the command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from astrobayes.cli._common import ProgressBar
from astrobayes.interpret import DEFAULT_OPERATORS, SymbolicConfig, symbolic_regression
from astrobayes.io import save_figure_atomic, software_provenance, write_json_atomic
from astrobayes.io.tables import read_csv_columns

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the ``symbolic`` subcommand."""
    parser = subparsers.add_parser(
        "symbolic",
        help="exhaustive symbolic regression ranked by Bayesian evidence",
        description=(
            "Enumerate every expression up to --max-complexity nodes, fit its parameters, "
            "and rank by Laplace log evidence (uniform parameter priors of half-width "
            "--parameter-bound) plus ESR's structure prior (the log posterior of each "
            "function); the ESR description length is reported too."
        ),
    )
    parser.add_argument("data", help="CSV file with a header row")
    parser.add_argument("--x", required=True, help="column of the input variable")
    parser.add_argument("--y", required=True, help="column of the output variable")
    parser.add_argument(
        "--sigma", default=None, help="column of per-point standard deviations of y (optional)"
    )
    parser.add_argument("--max-complexity", type=int, default=5, help="largest tree size")
    parser.add_argument(
        "--operators",
        default=",".join(DEFAULT_OPERATORS),
        help="comma-separated operators (default %(default)s; also sqrt,square,inv,sin,cos)",
    )
    parser.add_argument("--max-parameters", type=int, default=3, help="most free parameters")
    parser.add_argument(
        "--parameter-bound", type=float, default=1000.0, help="uniform prior half-width"
    )
    parser.add_argument(
        "--rank-by",
        choices=("log_evidence", "log_posterior", "description_length"),
        default="log_posterior",
        help="ranking: log evidence + ESR structure prior (default, docs/interpret.md), "
        "Laplace log evidence alone, or ESR description length",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; exit code 1 on a failure status."""
    import jax

    names = [args.x, args.y] + ([args.sigma] if args.sigma else [])
    columns = read_csv_columns(args.data, names)
    operators = tuple(name.strip() for name in args.operators.split(",") if name.strip())
    config = SymbolicConfig(
        max_complexity=args.max_complexity,
        operators=operators,
        max_parameters=args.max_parameters,
        parameter_bound=args.parameter_bound,
        rank_by=args.rank_by,
    )
    with ProgressBar("symbolic", disable=args.no_progress) as bar, jax.enable_x64(True):
        result = symbolic_regression(
            jax.random.key(args.seed),
            columns[args.x],
            columns[args.y],
            columns[args.sigma] if args.sigma else None,
            config=config,
            progress_fn=bar,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ("expression", "parameters", "complexity", "description_length", "log_evidence",
              "log_posterior", "log_likelihood", "chi2")  # fmt: skip
    equations = [{name: getattr(e, name) for name in fields} for e in result.equations]
    write_json_atomic(out / "equations.json", equations)
    write_json_atomic(
        out / "summary.json",
        {
            "data": str(args.data),
            "x": args.x,
            "y": args.y,
            "sigma": args.sigma if args.sigma else "profiled (one common sigma)",
            "config": config,
            "parameter_prior": f"uniform(-{config.parameter_bound}, {config.parameter_bound})",
            "num_enumerated": result.num_enumerated,
            "num_unique": result.num_unique,
            "num_valid": len(result.equations),
            "num_basis": result.num_basis,
            "status": result.status,
            "provenance": software_provenance(),
        },
    )
    if result.equations:
        from astrobayes.plots.interpret import plot_pareto_front

        save_figure_atomic(out / "pareto.png", plot_pareto_front(result))
    print(f"{result.num_unique} unique expressions fitted, {len(result.equations)} valid")
    for rank, e in enumerate(result.equations[:5], start=1):
        print(
            f"{rank}. {e.expression}  params={[round(v, 6) for v in e.parameters]}  "
            f"ln Z={e.log_evidence:.2f}  DL={e.description_length:.2f}"
        )
    print(f"wrote {out / 'equations.json'}")
    if not result.status.is_ok:
        print(f"astrobayes symbolic: {result.status.value}", file=sys.stderr)
    return 1 if result.status.is_failure else 0
