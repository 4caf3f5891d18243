"""``astrobayes sbi CONFIG.toml [--out DIR]``: simulation-based inference for one observation.

Reads the TOML configuration (schema in ``docs/sbi.md``) onto
:class:`astrobayes.sbi.SBIConfig`, runs simulations (stored as ``.npz`` chunks under
``DIR/simulations`` as they arrive), trains the estimator, samples the posterior of
``x_obs``, checks calibration on fresh simulations and writes ``DIR/posterior.npz``
(``samples``, ``names``), ``DIR/diagnostics.json`` (strict JSON: statuses as lower-case
names with their messages, non-finite numbers as ``null``) and plots.

The simulator ``"module:function"`` is looked up as ``module.py`` (dots as folders) next
to the configuration file, then in the working directory, and loaded from that file
without touching ``sys.path``; otherwise ``module`` must be importable. Exit code 1 when
the run or the calibration check has a failure status.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FileFunction", "add_parser", "load_simulator_function", "run"]


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
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (simulations, training)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config, x_obs and the simulator (one abstract trace of a JAX "
        "simulator, one simulation of a Python one), print what would run, and stop",
    )
    parser.set_defaults(func=run)


class FileFunction:
    """A function of a Python file, loaded by path; pickles as ``(path, name)``.

    Worker processes (a :class:`~astrobayes.sbi.PythonSimulator` spawns them) cannot
    import a module that is not on their ``sys.path``; this object carries the path and
    loads the file again on first call in each process.

    Args:
        path: The ``.py`` file.
        attribute: Name of the function in it.

    Raises:
        ValueError: If the file cannot be loaded or has no callable ``attribute``.

    """

    def __init__(self, path: str | Path, attribute: str):
        self.path = str(path)
        self.attribute = attribute
        self._function: Callable | None = None
        self.function  # noqa: B018 - load now, so that errors surface in the parent

    @property
    def function(self) -> Callable:
        """The loaded function."""
        if self._function is None:
            spec = importlib.util.spec_from_file_location(
                f"astrobayes_user_{Path(self.path).stem}", self.path
            )
            if spec is None or spec.loader is None:
                raise ValueError(f"cannot load simulator module from {self.path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            function = getattr(module, self.attribute, None)
            if not callable(function):
                raise ValueError(f"{self.path} has no callable {self.attribute!r}")
            self._function = function
        return self._function

    def __call__(self, *args: Any) -> Any:
        """Call the function."""
        return self.function(*args)

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path, "attribute": self.attribute}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.path = state["path"]
        self.attribute = state["attribute"]
        self._function = None


def load_simulator_function(spec: str, search_dirs: tuple[Path, ...]) -> Callable:
    """Resolve ``"module:function"``: a file in ``search_dirs`` first, else an import.

    Args:
        spec: ``"package.module:function"``.
        search_dirs: Folders searched, in order, for ``package/module.py``.

    Returns:
        A :class:`FileFunction` when the module is a file in ``search_dirs``, otherwise
        the imported function.

    Raises:
        ValueError: If ``spec`` is malformed, or the module or function is missing.

    """
    from astrobayes.sbi import load_simulator

    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"simulator must be 'package.module:function'; got {spec!r}")
    module_name, attribute = spec.split(":")
    relative = Path(*module_name.split(".")).with_suffix(".py")
    for folder in search_dirs:
        candidate = folder / relative
        if candidate.is_file():
            return FileFunction(candidate, attribute)
    return load_simulator(spec)


#: Top-level TOML keys that choose where a Python simulator runs (not SBIConfig fields):
#: ``executor`` ("serial", "process" (default) or "dask"), ``scheduler`` (a Dask address,
#: default: a LocalCluster on loopback) and ``num_workers`` (default: ``max_workers``).
EXECUTOR_KEYS = ("executor", "scheduler", "num_workers")


def _read_config(path: Path):
    """``(SBIConfig, {executor key: value})`` from the TOML file."""
    from astrobayes.sbi import config_from_dict

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with path.open("rb") as handle:
        try:
            values = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from error
    executor = {key: values.pop(key) for key in EXECUTOR_KEYS if key in values}
    config = config_from_dict(values)
    if executor and config.simulator_kind != "python":
        raise ValueError(
            f"{sorted(executor)} choose where a Python simulator runs; set "
            f'simulator_kind = "python" (got {config.simulator_kind!r})'
        )
    return config, executor


def _executor(config, settings: dict):
    """The executor of a Python simulator (``None`` for a JAX one)."""
    from astrobayes.sbi.executors import make_executor

    if config.simulator_kind != "python":
        return None
    num_workers = settings.get("num_workers", config.max_workers)
    return make_executor(
        settings.get("executor", "process"),
        scheduler=settings.get("scheduler"),
        num_workers=num_workers,
    )


def _observation(config, base: Path) -> np.ndarray:
    if isinstance(config.x_obs, str):
        path = Path(config.x_obs)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise FileNotFoundError(f"x_obs file {path} does not exist")
        return np.load(path)
    return np.asarray(config.x_obs, dtype=float)


def _diagnostics(config, result) -> dict:
    posterior = result.posterior
    return {
        "method": config.method,
        "status": result.status,
        "posterior_status": posterior.status,
        "posterior_sampler": posterior.method,
        "posterior_diagnostics": posterior.diagnostics,
        "num_failed_simulations": result.num_failed,
        "failure_examples": list(result.failure_examples),
        "failure_locations": result.failure_locations,
        "rounds": [r._asdict() for r in result.rounds],
        "posterior_mean": posterior.samples.mean(axis=0),
        "posterior_std": posterior.samples.std(axis=0),
        "names": list(posterior.names),
        "likelihood_check": (
            None if result.likelihood_check is None else result.likelihood_check._asdict()
        ),
    }


def _calibration(keys, config, result, simulator, progress_fn=None):
    """Calibration draws and report on fresh simulations from the last proposal."""
    from astrobayes.sbi import calibration_draws, simulate_for_prior
    from astrobayes.validation import calibration_report, report_to_dict

    key_test, key_draws, key_report = keys
    test = simulate_for_prior(
        key_test,
        result.proposal,
        simulator,
        config.num_validation,
        progress_fn=None
        if progress_fn is None
        else lambda stage, done, total: progress_fn(f"calibration {stage}", done, total),
    )
    draws = calibration_draws(key_draws, result.estimator, test.theta, test.x)
    report = calibration_report(
        key_report, draws.theta_true, draws.samples, draws.log_prob_true, draws.log_prob_samples
    )
    summary = report_to_dict(report)
    summary["num_tests"] = int(test.theta.shape[0])
    summary["draws_status"] = draws.status
    return report, draws, summary


def run(args: argparse.Namespace) -> int:
    """Run the ``sbi`` subcommand; return the exit code (1 on a failure status)."""
    config_path = Path(args.config).resolve()
    config, executor_settings = _read_config(config_path)
    function = load_simulator_function(config.simulator, (config_path.parent, Path.cwd()))
    if config.simulator_kind != "python" and isinstance(function, FileFunction):
        function = function.function  # the picklable wrapper is only for worker processes
    if getattr(args, "check", False):
        return _check(config, config_path, function)
    executor = _executor(config, executor_settings)
    try:
        return _run(args, config, config_path, function, executor)
    finally:
        if executor is not None:
            executor.shutdown()


def _check(config, config_path: Path, function) -> int:
    """``--check``: the config, ``x_obs`` and the simulator's output, without a campaign.

    A JAX simulator is traced once abstractly (nothing is simulated); a Python one is run
    once, at the prior's centre, in this process (the check of its output shape needs
    one output). Returns 0; a failed check raises (exit code 2).
    """
    from astrobayes.sbi import JaxSimulator
    from astrobayes.sbi.pipeline import check_observation_size

    x_obs = _observation(config, config_path.parent)
    prior = config.build_prior()
    name = f"simulator {config.simulator!r}"
    if config.simulator_kind == "python":
        centre = np.where(
            np.asarray(prior.is_bounded),
            (np.asarray(prior.low) + np.asarray(prior.high)) / 2,
            np.asarray(prior.low),
        )
        try:
            output = np.asarray(function(0, centre), dtype=float)
        except Exception as error:  # the user's code: say whose
            raise ValueError(
                f"{name} raised {type(error).__name__} at the prior's centre "
                f"{centre.tolist()}: {error}"
            ) from error
        shape, how = output.shape, "one simulation at the prior's centre"
        if not np.all(np.isfinite(output)):
            print(f"warning: {name} returned non-finite values at the prior's centre")
    else:
        shape = JaxSimulator(function).output_shape(prior.dim, name)
        how = "one abstract trace"
    check_observation_size(x_obs, shape, name)
    bounds = ", ".join(
        f"{n} ~ {'U' if b else 'N'}({lo:g}, {hi:g})" for n, lo, hi, b in _prior_rows(prior)
    )
    print(
        f"astrobayes sbi --check {config_path}: {config.method.upper()}, "
        f"{config.num_rounds} round(s) x {config.num_simulations} simulations "
        f"({config.simulator_kind} simulator), {config.num_validation} calibration tests\n"
        f"  prior: {bounds}\n"
        f"  {name}: output shape {shape} ({how}); x_obs: {x_obs.size} values\n"
        "config OK: nothing was simulated into a campaign or written"
    )
    return 0


def _prior_rows(prior):
    """``(name, low or mean, high or std, is_bounded)`` of each parameter of an SBI prior."""
    return [
        (name, float(lo), float(hi), bool(bounded))
        for name, lo, hi, bounded in zip(
            prior.names,
            np.asarray(prior.low),
            np.asarray(prior.high),
            prior.is_bounded,
            strict=True,
        )
    ]


def _run_identity(config, x_obs, function) -> str:
    """SHA-256 (16 hex digits) of what the run's simulations depend on.

    The configuration (but not where simulations run: ``max_workers``), the observation
    (later rounds simulate near it) and the simulator's source file: a killed run
    resumes its own simulations only.
    """
    import dataclasses
    import hashlib
    import json

    from astrobayes.cli._common import file_digest, source_file

    settings = dataclasses.asdict(config)
    settings.pop("max_workers", None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(x_obs, np.float64).tobytes())
    path = source_file(function)  # a FileFunction's path, or inspect's
    if path is not None:
        digest.update(file_digest(path).encode())
    return digest.hexdigest()[:16]


def _run(args, config, config_path: Path, function, executor) -> int:
    import jax

    from astrobayes._status import by_severity, worst
    from astrobayes.cli._common import ProgressBar
    from astrobayes.io import (
        software_provenance,
        write_getdist_chains,
        write_json_atomic,
        write_npz_atomic,
    )
    from astrobayes.io.simulations import SimulationStore
    from astrobayes.sbi import PythonSimulator, build_simulator, run_sbi

    if executor is None:
        simulator = build_simulator(config, function)
    else:
        simulator = PythonSimulator(function, executor=executor)
    x_obs = _observation(config, config_path.parent)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = SimulationStore(out / "simulations", identity=_run_identity(config, x_obs, function))
    stored = sorted((out / "simulations").glob("chunk_r*_c*.npz"))
    if stored:
        print(
            f"astrobayes sbi: resuming: {len(stored)} chunk(s) of simulations already in "
            f"{out / 'simulations'} are read back, not simulated again"
        )
    key_run, *keys = jax.random.split(jax.random.key(config.seed), 4)
    with ProgressBar(
        "sbi",
        disable=args.no_progress,
        labels={"training": f"training {config.method.upper()}"},
        units={
            "training": "epoch",
            "simulations": "simulation",
            "calibration simulations": "simulation",
        },
    ) as bar:
        result = run_sbi(key_run, config, x_obs, simulator=simulator, sink=store, progress_fn=bar)
        if config.num_validation > 0:
            calibration = _calibration(keys, config, result, simulator, bar)
    posterior = result.posterior
    write_npz_atomic(
        out / "posterior.npz", samples=posterior.samples, names=np.asarray(posterior.names)
    )
    diagnostics = _diagnostics(config, result)
    statuses = [result.status] + [
        s
        for r in result.rounds
        for s in (r.simulation_status, r.training_status, r.posterior_status)
    ]
    report = None
    if config.num_validation > 0:
        report, draws, diagnostics["calibration"] = calibration
        statuses += [report.status, draws.status]
    diagnostics["provenance"] = software_provenance()
    write_json_atomic(out / "diagnostics.json", diagnostics)
    from astrobayes.cli._figures import write_sbi_figures

    # GetDist chains of the posterior (one chain, unit weights), with the prior's edges
    prior = config.build_prior()
    ranges = {name: (lo, hi) for name, lo, hi, bounded in _prior_rows(prior) if bounded}
    draws = np.asarray(posterior.samples, np.float64)
    if np.all(np.isfinite(draws)):  # a failed sampler's non-finite draws: npz only
        (out / "chains").mkdir(exist_ok=True)
        write_getdist_chains(
            out / "chains" / "posterior", draws[None], list(posterior.names), ranges=ranges
        )
    write_sbi_figures(
        out,
        report,
        posterior.names,
        samples=posterior.samples,
        ranges=ranges,
        no_plots=args.no_plots,
    )
    if report is None:
        verdict = "not checked (num_validation = 0)"
    elif report.is_calibrated:
        verdict = "calibrated"
    else:
        verdict = "FLAGGED: " + "; ".join(report.flags)
    print(
        f"astrobayes sbi: {posterior.samples.shape[0]} posterior samples of {list(posterior.names)} "
        f"written to {out / 'posterior.npz'} and {out / 'chains'} (GetDist); status "
        f"{result.status.name.lower()}; "
        f"calibration {verdict}"
    )
    for status in by_severity(statuses):
        if not status.is_ok:
            print(f"astrobayes sbi: {status.value}", file=sys.stderr)
    for message in posterior.diagnostics.get("sampler_messages", ()):
        print(f"astrobayes sbi: sampler: {message}", file=sys.stderr)
    if result.failure_locations is not None:
        print(
            f"astrobayes sbi: {result.num_failed} simulations failed "
            f"({result.failure_locations.failed_fraction_total:.1%}); "
            f"{result.failure_locations.summary}",
            file=sys.stderr,
        )
    if result.likelihood_check is not None:
        check = result.likelihood_check
        print(
            f"astrobayes sbi: likelihood check {check.status.name.lower()}: {check.summary}",
            file=sys.stdout if check.status.is_ok else sys.stderr,
        )
    return 1 if worst(statuses).is_failure else 0
