"""``astrobayes sbi CONFIG.toml [--out DIR]``: simulation-based inference for one observation.

Reads the TOML configuration (schema in ``docs/sbi.md``) onto
:class:`astrobayes.sbi.SBIConfig`, runs simulations (stored as ``.npz`` chunks under
``DIR/simulations`` as they arrive), trains the estimator, samples the posterior of
``x_obs``, checks calibration on fresh simulations and writes ``DIR/posterior.npz``
(``samples``, ``names``), ``DIR/diagnostics.json`` and plots.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    """Register the ``sbi`` subcommand."""
    parser = subparsers.add_parser(
        "sbi",
        help="simulation-based inference (NPE / NLE / NRE) with calibration checks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML configuration file")
    parser.add_argument("--out", default="sbi_out", help="output directory (default: sbi_out)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.set_defaults(func=run)


def _read_config(path: Path):
    from astrobayes.sbi import config_from_dict

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with path.open("rb") as handle:
        try:
            values = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from error
    return config_from_dict(values)


def _observation(config, base: Path) -> np.ndarray:
    if isinstance(config.x_obs, str):
        path = Path(config.x_obs)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise FileNotFoundError(f"x_obs file {path} does not exist")
        return np.load(path)
    return np.asarray(config.x_obs, dtype=float)


def run(args: argparse.Namespace) -> int:
    """Run the ``sbi`` subcommand; return the exit code."""
    import jax

    from astrobayes.io import save_figure_atomic, write_json_atomic, write_npz_atomic
    from astrobayes.io.simulations import SimulationStore
    from astrobayes.sbi import calibration_draws, run_sbi, simulate_for_prior
    from astrobayes.validation import calibration_report, report_to_dict

    config_path = Path(args.config).resolve()
    for entry in (str(config_path.parent), str(Path.cwd())):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    config = _read_config(config_path)
    x_obs = _observation(config, config_path.parent)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = SimulationStore(out / "simulations")
    key_run, key_test, key_draws, key_report = jax.random.split(jax.random.key(config.seed), 4)
    result = run_sbi(key_run, config, x_obs, sink=store)
    posterior = result.posterior
    write_npz_atomic(
        out / "posterior.npz", samples=posterior.samples, names=np.asarray(posterior.names)
    )
    diagnostics = {
        "method": config.method,
        "posterior_status": posterior.status.value,
        "posterior_sampler": posterior.method,
        "posterior_diagnostics": posterior.diagnostics,
        "num_failed_simulations": result.num_failed,
        "failure_examples": list(result.failure_examples),
        "rounds": [r._asdict() for r in result.rounds],
        "posterior_mean": posterior.samples.mean(axis=0).tolist(),
        "posterior_std": posterior.samples.std(axis=0).tolist(),
        "names": list(posterior.names),
    }
    report = None
    if config.num_validation > 0:
        test = simulate_for_prior(
            key_test, result.proposal, _simulator(config), config.num_validation
        )
        draws = calibration_draws(key_draws, result.estimator, test.theta, test.x)
        report = calibration_report(
            key_report, draws.theta_true, draws.samples, draws.log_prob_true, draws.log_prob_samples
        )
        diagnostics["calibration"] = report_to_dict(report)
        diagnostics["calibration"]["num_tests"] = int(test.theta.shape[0])
    write_json_atomic(out / "diagnostics.json", diagnostics)
    if not args.no_plots and report is not None:
        import matplotlib

        matplotlib.use("Agg")
        from astrobayes.plots.validation import plot_coverage, plot_rank_histograms

        save_figure_atomic(out / "coverage.png", plot_coverage(report))
        save_figure_atomic(out / "sbc_ranks.png", plot_rank_histograms(report.sbc, posterior.names))
    verdict = (
        "calibrated"
        if report is None or report.is_calibrated
        else "FLAGGED: " + "; ".join(report.flags)
    )
    print(
        f"astrobayes sbi: {posterior.samples.shape[0]} posterior samples of {list(posterior.names)} "
        f"written to {out / 'posterior.npz'}; calibration {verdict}"
    )
    return 0


def _simulator(config):
    from astrobayes.sbi import JaxSimulator, PythonSimulator, load_simulator

    function = load_simulator(config.simulator)
    if config.simulator_kind == "python":
        return PythonSimulator(function, max_workers=config.max_workers)
    return JaxSimulator(function)
