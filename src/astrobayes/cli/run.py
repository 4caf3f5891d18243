"""``astrobayes run CONFIG.toml [--out DIR]``: your models, sampled and compared.

The TOML names one or more models (a JAX log-likelihood ``module:function`` taking
``{name: value}``, a NumPyro model, or a function returning an astrobayes ``Model``),
their parameters and priors, optional data files, the NUTS settings and the reference
model (schema: ``docs/run.md``). Each model is sampled with NUTS or flow-enhanced MCMC
and its evidence estimated with the learned harmonic mean, or by preconditioned SMC
(``sampler_kind = "smc"``: SMC's own evidence, cross-checked by the learned harmonic
mean), checkpointed (a killed run started again resumes bit for bit), and ``DIR`` receives ``results.json``, ``report.md``, figures, and per model the
chains as GetDist text files (``chains/NAME_*.txt``, ``.paramnames``, ``.ranges``),
``chains/NAME.npz`` and ArviZ netCDF ``chains/NAME.nc``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def add_parser(subparsers) -> None:
    """Register the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="sample and compare your own models from a TOML config",
        description=__doc__,
    )
    parser.add_argument("config", help="TOML file naming the models (see docs/run.md)")
    parser.add_argument(
        "--out", default=None, help="output directory (default: <config name>-run beside it)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plots", action="store_true", help="write no figures")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config, the data and every model's code (one abstract trace each), "
        "print what would run, and stop: nothing is sampled or written",
    )
    add_compile_cache_option(parser)
    parser.set_defaults(func=run)


def add_compile_cache_option(parser: argparse.ArgumentParser) -> None:
    """``--no-compile-cache`` on a subcommand (read by ``astrobayes.cli.main``)."""
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        default=argparse.SUPPRESS,
        help="do not use the persistent JAX compilation cache (see docs/run.md)",
    )


class Progress:
    """One tqdm bar per model (models run side by side in threads), relabelled per stage.

    ``for_model(name)`` is the model's :data:`~astrobayes._types.ProgressFn`.
    """

    _LABELS = {
        "pathfinder": "Pathfinder start (compiling)",
        "warmup": "NUTS warm-up (compiling)",
        "sampling": "NUTS sampling",
        "training": "training flow",
        "tempering": "SMC tempering (beta x 1000)",
    }

    def __init__(self, disable: bool):
        self.disable = disable
        self.bars: dict[str, tuple[str, tqdm]] = {}
        self.lock = threading.Lock()

    def __call__(self, model: str, stage: str, done: int, total: int) -> None:
        """Move the bar of ``model`` to ``done`` of ``total`` in ``stage``."""
        with self.lock:
            current = self.bars.get(model)
            if current is None or current[0] != stage:
                if current is not None:
                    current[1].close()
                bar = tqdm(
                    total=total,
                    desc=f"{model}: {self._LABELS.get(stage, stage)}",
                    unit="epoch" if stage == "training" else "draw",
                    file=sys.stderr,
                    disable=self.disable,
                    leave=False,
                    position=list(self.bars).index(model) if model in self.bars else len(self.bars),
                )
                self.bars[model] = (stage, bar)
            bar = self.bars[model][1]
            bar.n = done
            bar.refresh()

    def for_model(self, model: str):
        """The progress callback ``(stage, done, total)`` of one model."""

        def progress_fn(stage: str, done: int, total: int) -> None:
            self(model, stage, done, total)

        return progress_fn

    def close(self) -> None:
        """Close every bar."""
        with self.lock:
            for _, bar in self.bars.values():
                bar.close()
            self.bars.clear()


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; exit code 1 when an evidence or a NUTS run failed."""
    from astrobayes.runconfig import run_config_from_mapping

    config_path = Path(args.config)
    if not config_path.is_file():
        raise FileNotFoundError(f"config file {config_path} does not exist")
    with config_path.open("rb") as handle:
        try:
            table = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{config_path}: not valid TOML: {error}") from None
    config = run_config_from_mapping(table)
    if getattr(args, "check", False):
        return check_config(config, base=config_path.parent, title=str(config_path))
    out = Path(args.out) if args.out else config_path.parent / f"{config_path.stem}-run"
    return execute(
        config,
        out,
        base=config_path.parent,
        title=f"astrobayes run {config_path}",
        no_progress=args.no_progress,
        figure_options={"reference": {}, "no_plots": args.no_plots},
    )


def check_config(config, *, base: Path, title: str) -> int:
    """``--check``: resolve and trace every model as a run would, print it, sample nothing.

    The same checks a run makes before its first model samples (imports, data files,
    derived parameters, :func:`astrobayes.models.check_model`), so a config that passes
    here does not fail on its code or data once sampling starts (a job submitted to a
    cluster, say). Returns 0; a failed check raises, as in a run (exit code 2).
    """
    import jax

    if config.x64:
        jax.config.update("jax_enable_x64", True)
    executor = _python_executor(config)  # its workers must import the likelihood too
    try:
        _check_models(config, base, title, executor)
    finally:
        if executor is not None:
            executor.shutdown()
    print("config OK: nothing was sampled or written")
    return 0


def _check_models(config, base: Path, title: str, executor) -> None:
    import jax

    from astrobayes.models import check_model, prior_ranges
    from astrobayes.models.model import unconstrained_density

    models, derived_fns, digests, _ = resolve_models(config, base, executor=executor)
    print(
        f"astrobayes run --check {title}: {len(models)} model(s), {_sampler_summary(config, executor)}; "
        f"evidence: {_evidence_summary(config)}; {'float64' if config.x64 else 'float32'}"
    )
    for name, model in models.items():
        check_model(model)
        density = unconstrained_density(jax.random.key(config.seed), model, 1)
        edges = prior_ranges(model)
        parameters = ", ".join(
            n
            + (f" in [{edges[n][0]}, {edges[n][1]}]" if n in edges and None not in edges[n] else "")
            for n in density.names
        )
        derived = ", ".join(derived_fns[name]) or "none"
        spec = config.models[name]
        data = ", ".join(f"{k} = {v}" for k, v in spec.data.items()) or "none"
        print(
            f"  {name}: {len(density.names)} sampled parameter(s): {parameters}; derived: "
            f"{derived}; data: {data}; ln density finite at a prior draw; checkpoint "
            f"{name}-seed{config.seed}-{_model_fingerprint(config, name, digests[name])}"
        )


def execute(
    config,
    out: Path,
    *,
    base: Path,
    title: str,
    no_progress: bool = False,
    extra_settings: dict | None = None,
    figure_options: dict | None = None,
    after_comparison=None,
) -> int:
    """Sample, compare and write every output of a :class:`~astrobayes.runconfig.RunConfig`.

    Shared by ``run`` and ``demo`` (a built-in config). ``after_comparison(payload)`` may
    add entries to ``results.json`` before it is written; ``figure_options`` go to
    :func:`~astrobayes.cli._figures.write_comparison_figures` (default: no reference
    marker lines). Models with a ``python_likelihood`` run it on the config's
    ``[executor]`` (started here, released at the end). Returns the exit code.
    """
    executor = _python_executor(config)
    try:
        return _execute(
            config,
            out,
            base=base,
            title=title,
            no_progress=no_progress,
            extra_settings=extra_settings,
            figure_options=figure_options,
            after_comparison=after_comparison,
            executor=executor,
        )
    finally:
        if executor is not None:
            executor.shutdown()


def _python_executor(config):
    """The executor of the config's ``python_likelihood`` models (``None`` without any)."""
    if not config.python_models:
        return None
    from astrobayes.sbi.executors import ExecutorConfig

    return (config.executor or ExecutorConfig()).make()


def _execute(
    config,
    out: Path,
    *,
    base: Path,
    title: str,
    no_progress: bool,
    extra_settings: dict | None,
    figure_options: dict | None,
    after_comparison,
    executor,
) -> int:
    import jax

    if config.x64:
        # Asked for by the user (x64 = true): float64 for the whole process.
        jax.config.update("jax_enable_x64", True)
    from astrobayes.cli._figures import figures_markdown, write_comparison_figures
    from astrobayes.io import (
        NpzCheckpoint,
        software_provenance,
        write_json_atomic,
        write_text_atomic,
    )
    from astrobayes.runconfig import run_comparison

    models, derived_fns, digests, likelihoods = resolve_models(config, base, executor=executor)
    out.mkdir(parents=True, exist_ok=True)
    print(title)
    print(
        f"models: {', '.join(models)}; {_sampler_summary(config, executor)}; "
        f"evidence: {_evidence_summary(config)}; "
        f"{'float64' if config.x64 else 'float32'}\n"
    )
    fingerprints = {name: _model_fingerprint(config, name, digests[name]) for name in models}
    start = time.perf_counter()
    progress = Progress(no_progress)
    try:
        result = run_comparison(
            jax.random.key(config.seed),
            config,
            list(models.values()),
            checkpoint_fn=lambda name: NpzCheckpoint(
                out / "checkpoints" / f"{name}-seed{config.seed}-{fingerprints[name]}.npz"
            ),
            progress_fn_for=progress.for_model,
        )
    finally:
        progress.close()
    elapsed = time.perf_counter() - start
    result = _with_likelihood_statuses(result, likelihoods)

    table = result.summary()
    print(table)
    print(f"\n(time: {elapsed:.0f} s)")
    resumed = [n for n, r in result.models.items() if r.sampling.resumed_from]
    if resumed:
        print(f"resumed from checkpoints in {out / 'checkpoints'}: {', '.join(resumed)}")
    for name, likelihood in likelihoods.items():
        print(_python_likelihood_line(name, likelihood, resumed=name in resumed))

    chain_files, edges = write_chain_files(
        out / "chains", config, models, result, derived_fns, executor
    )
    for name, parameter, side, ratio in _cut_by_prior_edges(edges):
        print(
            f"note: {name}: the posterior of {parameter} is cut by its prior's {side} edge "
            f"(density there {ratio:.2f} of its peak): ln z depends on where that edge is "
            "(report.md)"
        )
    payload = result.to_dict()
    for name, likelihood in likelihoods.items():
        # counted after the chain files, whose ln L column calls it once more per draw
        payload["models"][name]["python_likelihood"] = likelihood.to_dict()
    payload["prior_edges"] = edges
    payload["settings"] = {
        "config": _config_dict(config),
        "seed": config.seed,
        "float64": config.x64,
        "wall_time_s": elapsed,
        **(extra_settings or {}),
    }
    payload["files"] = {
        name: [str(p.relative_to(out)) for p in paths] for name, paths in chain_files.items()
    }
    figures = write_comparison_figures(
        out, result, models=list(models.values()), **(figure_options or {"reference": {}})
    )
    if after_comparison is not None:
        after_comparison(payload)
    payload["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", payload)
    report = format_report(title, result, table, payload) + figures_markdown(figures, out)
    write_text_atomic(out / "report.md", report)
    print(
        f"\nwrote {out / 'results.json'}, {out / 'report.md'}, chains in {out / 'chains'} "
        "(GetDist .txt/.paramnames/.ranges, .npz, ArviZ .nc)" + (", figures" if figures else "")
    )
    failed = [n for n, r in result.models.items() if r.status.is_failure]
    if failed:
        print(f"astrobayes: evidence or sampling failed for {failed}", file=sys.stderr)
        return 1
    return 0


def resolve_models(config, base: Path, *, executor=None):
    """Import the user's functions and read the data.

    A ``python_likelihood`` model is called once at a prior draw here (with its derived
    parameters' functions), since JAX cannot trace it, and then runs on ``executor``
    (``None``: in this process).

    Returns:
        ``({name: Model}, {name: {derived: fn}}, {name: digest}, {name:
        PythonLikelihood})``: the digest is a SHA-256 of the source files of the model's
        functions and of its data arrays (part of its checkpoint name, so that an edited
        likelihood module or data file starts afresh instead of resuming chains of the
        old one); the last holds the ``python_likelihood`` models' wrappers (call counts).

    """
    import jax

    from astrobayes.io.run_files import read_data_arrays
    from astrobayes.runconfig import (
        build_model,
        check_derived_functions,
        check_python_model,
        python_likelihood,
    )

    models, derived_fns, digests, likelihoods = {}, {}, {}, {}
    for name, spec in config.models.items():
        data = read_data_arrays(spec.data, base) if spec.data else None
        for key, array in (data or {}).items():
            bad = ~np.isfinite(array)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                print(
                    f"warning: models.{name}.data {key!r} ({spec.data[key]}) holds "
                    f"{int(bad.sum())} non-finite value(s) (the first at index {first}); a "
                    "likelihood that does not mask them is NaN everywhere",
                    file=sys.stderr,
                )
        functions = []
        if spec.model is not None:
            factory = import_function(spec.model, base, f"models.{name}.model")
            functions.append(factory)
            model = factory(data) if data is not None else factory()
            models[name] = build_model(name, spec, model=model)
        elif spec.python_likelihood is not None:
            function = import_function(
                spec.python_likelihood, base, f"models.{name}.python_likelihood"
            )
            functions.append(function)
            shipped = _shipped(spec.python_likelihood, base, function)
            likelihoods[name] = python_likelihood(name, spec, shipped, data=data, executor=executor)
            models[name] = build_model(name, spec, log_likelihood_fn=likelihoods[name])
        else:
            likelihood = (
                None
                if spec.likelihood is None
                else import_function(spec.likelihood, base, f"models.{name}.likelihood")
            )
            numpyro_model = (
                None
                if spec.numpyro_model is None
                else import_function(spec.numpyro_model, base, f"models.{name}.numpyro_model")
            )
            functions += [f for f in (likelihood, numpyro_model) if f is not None]
            models[name] = build_model(
                name, spec, log_likelihood_fn=likelihood, numpyro_model=numpyro_model, data=data
            )
        derived_fns[name] = {
            parameter: import_function(p.function, base, f"models.{name}.parameters.{parameter}")
            for parameter, p in spec.parameters.items()
            if p.prior == "derived"
        }
        if name in likelihoods:  # plain Python, computed on the executor's workers
            derived_fns[name] = {
                parameter: _shipped(spec.parameters[parameter].function, base, function)
                for parameter, function in derived_fns[name].items()
            }
        check_derived_functions(name, spec, derived_fns[name])
        if name in likelihoods:
            check_python_model(
                jax.random.key(config.seed), name, spec, likelihoods[name], derived_fns[name]
            )
        digests[name] = _code_and_data_digest(functions + list(derived_fns[name].values()), data)
    return models, derived_fns, digests, likelihoods


def _shipped(reference: str, base: Path, function):
    """``function`` (imported from ``module:function``) as workers import it: by name."""
    from astrobayes._workers import ModuleFunction

    module_name, function_name = (part.strip() for part in reference.split(":"))
    return ModuleFunction(module_name, function_name, str(Path(base).resolve()), function)


def _code_and_data_digest(functions, data) -> str:
    """SHA-256 of the functions' source files and of the data arrays (names, shapes, bytes).

    A file's bytes, not its functions' text: an edit anywhere in the module counts (not
    where the file is: a moved project still resumes). Modules it imports in turn are not
    read (documented in docs/run.md).
    """
    from astrobayes.cli._common import file_digest, source_file

    digest = hashlib.sha256()
    files = {file_digest(path) for path in map(source_file, functions) if path is not None}
    for file in sorted(files):
        digest.update(file.encode())
    for key in sorted(data or {}):
        array = np.ascontiguousarray(data[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode() + array.tobytes())
    return digest.hexdigest()


def import_function(reference: str, base: Path, where: str):
    """The function ``module:function``; the config's folder is searched first."""
    module_name, function_name = (part.strip() for part in reference.split(":"))
    folder = str(Path(base).resolve())
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)  # the config's folder first, even if already on the path
    _forget_module_of_another_folder(module_name, Path(folder))
    from astrobayes.cli._common import file_digest

    try:
        module = importlib.import_module(module_name)
        module_file = getattr(module, "__file__", None)
        if module_file is not None and str(Path(module_file).resolve()) not in _IMPORTED_DIGESTS:
            _IMPORTED_DIGESTS[str(Path(module_file).resolve())] = file_digest(Path(module_file))
    except ModuleNotFoundError as error:
        if error.name != module_name.split(".")[0] and error.name != module_name:
            raise
        raise ValueError(
            f"{where} = {reference!r}: no module {module_name!r} beside the config "
            f"({folder}) or on the Python path"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(
            f"{where} = {reference!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) "
            f"has no function {function_name!r}"
        )
    return function


def _forget_module_of_another_folder(module_name: str, folder: Path) -> None:
    """Drop ``module_name`` from ``sys.modules`` unless it is this folder's current file.

    Two configs in one process (a notebook, the tests), each beside its own
    ``likelihoods.py``, must each get their own module, not the first one imported; and
    a module edited since it was imported (a notebook re-running a config) is imported
    afresh, so that the code that runs is the code the checkpoint names hash.
    """
    from astrobayes.cli._common import file_digest

    top = module_name.split(".")[0]
    local = [
        path for path in (folder / f"{top}.py", folder / top / "__init__.py") if path.is_file()
    ]
    cached = sys.modules.get(top)
    if cached is None or not local:
        return
    cached_file = getattr(cached, "__file__", None)
    path = str(local[0].resolve())
    if (
        cached_file is not None
        and str(Path(cached_file).resolve()) == path
        and _IMPORTED_DIGESTS.get(path) == file_digest(local[0])
    ):
        return
    _IMPORTED_DIGESTS.pop(path, None)  # recorded again when imported afresh
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


#: SHA-256 of each user module's file when :func:`import_function` imported it
_IMPORTED_DIGESTS: dict[str, str] = {}


def write_chain_files(folder: Path, config, models, result, derived_fns, executor=None):
    """GetDist text chains, ``.npz`` and ArviZ netCDF of every model.

    Returns:
        ``({name: paths}, {name: {parameter: {"low": r, "high": r}}})``: the files, and
        for every sampled parameter with a hard prior edge the posterior's density at
        each edge over its peak (:func:`astrobayes.diagnostics.prior_edge_density`;
        ``None`` for an open side), read in ``ln x`` for a log-uniform prior (the
        coordinate in which it is flat).

    """
    from astrobayes.diagnostics import prior_edge_density
    from astrobayes.io import write_getdist_chains
    from astrobayes.io.run_files import write_arviz_netcdf, write_posterior_npz
    from astrobayes.models import prior_supports
    from astrobayes.runconfig import posterior_table

    folder.mkdir(parents=True, exist_ok=True)
    written, edges = {}, {}
    for name, report in result.models.items():
        table = posterior_table(
            models[name],
            report.posterior,
            spec=config.models.get(name),
            derived_fns=derived_fns.get(name),
            executor=executor,
        )
        paths = list(
            write_getdist_chains(
                folder / name,
                table.samples,
                names=table.names,
                labels=dict(zip(table.names, table.labels, strict=True)),
                ranges=table.ranges,
                loglikes=-table.log_likelihood,
                derived=[n for n, d in zip(table.names, table.is_derived, strict=True) if d],
                prior_not_flat=None if _flat_over_ranges(table) else f"{name}.npz",
            )
        )
        paths.append(write_posterior_npz(folder / f"{name}.npz", table))
        paths.append(write_arviz_netcdf(folder / f"{name}.nc", table))
        written[name] = paths
        edges[name] = {}
        supports = prior_supports(models[name])
        for parameter, (low, high) in table.ranges.items():
            column = table.samples[..., table.names.index(parameter)]
            support = supports.get(parameter)
            if support is not None and support.log_uniform:
                # in x, the prior's own 1/x makes any log-uniform marginal peak at a small
                # low edge: until 2026-12-06 an outlier variance constrained to ln V = 3.5
                # +- 1.6 on [0.1, 1000] read 1.00 there (0.29 in ln V) and was listed as cut
                column, low, high = np.log(column), np.log(low), np.log(high)
            at_low, at_high = prior_edge_density(column, low, high)
            edges[name][parameter] = {
                "low": None if np.isnan(at_low) else at_low,
                "high": None if np.isnan(at_high) else at_high,
                # a distribution's own support (a half-Cauchy's 0) is no choice: a
                # posterior piled there is data, and moving it is not an option
                "chosen": support is not None and support.chosen,
            }
    return written, edges


def _flat_over_ranges(table) -> bool:
    """Whether ``ln pi`` of every draw is ``-ln`` of the volume of the sampled ranges.

    GetDist chains hold ``-ln L`` only; a reader can recover the prior from ``.ranges``
    exactly when it is this flat one.
    """
    sampled = [n for n, d in zip(table.names, table.is_derived, strict=True) if not d]
    edges = [table.ranges.get(n, (None, None)) for n in sampled]
    if any(low is None or high is None for low, high in edges):
        return False
    log_volume = float(np.sum([np.log(high - low) for low, high in edges]))
    return bool(np.allclose(table.log_prior, -log_volume, rtol=0.0, atol=1e-4))


#: Density at a prior edge over the peak from which ``report.md`` lists a posterior as
#: cut by the prior (a marginal with half its peak density at the edge).
PRIOR_EDGE_THRESHOLD = 0.5


def _cut_by_prior_edges(edges: dict) -> list[tuple[str, str, str, float]]:
    """``(model, parameter, side, ratio)`` of every edge at or above the threshold."""
    return [
        (name, parameter, side, ratio)
        for name, parameters in edges.items()
        for parameter, sides in parameters.items()
        for side, ratio in ((s, sides[s]) for s in ("low", "high"))
        if sides.get("chosen", True) and ratio is not None and ratio >= PRIOR_EDGE_THRESHOLD
    ]


def format_report(title: str, result, table: str, payload: dict) -> str:
    """``report.md`` before its figures: the table, diagnostics per model, files."""
    lines = [
        f"# {title}",
        "",
        *_method_lines(result),
        "",
        "```",
        table,
        "```",
        "",
        f"ln B < 0 favours {result.reference}. The Jeffreys reading follows Trotta (2008,",
        "arXiv:0803.4089): |ln B| < 1 inconclusive, < 2.5 weak, < 5 moderate, otherwise strong.",
        "",
        "## Diagnostics",
        "",
        "| model | R-hat max | ESS min | divergences | sampler status | T | Pareto k | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, report in result.models.items():
        e = report.evidence
        lines.append(
            f"| {name} | {report.rhat_max:.3f} | {report.ess_min:.0f} | "
            f"{int(report.sampling.num_divergent.sum())} | "
            f"{report.sampling.status.name.lower()} | {e.temperature} | {e.pareto_k:.2f} | "
            f"{e.status.name.lower()} |"
        )
    python = {
        name: entry["python_likelihood"]
        for name, entry in payload.get("models", {}).items()
        if "python_likelihood" in entry
    }
    if python:
        lines += [
            "",
            "## Python likelihoods",
            "",
            "Calls of each `python_likelihood` (SMC, its checks and the chain files' ln L); a "
            "failed call (raised, NaN, +inf) was given zero likelihood.",
            "",
            "| model | calls | failed | status | first failures |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {e['evaluations']} | {e['failures']} | {e['status']} | "
            + "; ".join(f"`{x['message']}` at {x['at']}" for x in e["errors"]).replace("|", "/")
            + " |"
            for name, e in python.items()
        ]
    lines += ["", "## Files", ""]
    for name, paths in payload.get("files", {}).items():
        lines.append(f"- {name}: " + ", ".join(f"`{p}`" for p in paths))
    checks = payload.get("known_evidence_checks")
    if checks:
        lines += [
            "",
            "## Estimator check on problems with a known evidence",
            "",
            "| problem | estimate | error | truth | pull |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['problem']} | {c['log_evidence']:.4f} | {c['log_evidence_std']:.4f} | "
            f"{c['truth']:.4f} | {c['pull']:.2f} |"
            for c in checks
        ]
    cut = _cut_by_prior_edges(payload.get("prior_edges", {}))
    if cut:
        lines += [
            "",
            "## Posteriors cut by a prior edge",
            "",
            "Density at the edge over the marginal's peak "
            "(`astrobayes.diagnostics.prior_edge_density`; 1: highest at the edge; in ln x "
            "for a log-uniform prior, where that prior is flat). There the "
            "prior, not the data, shapes the marginal, and ln z (so ln B) depends on where the "
            "edge is put.",
            "",
            "| model | parameter | edge | density at edge / peak |",
            "|---|---|---|---|",
        ]
        lines += [f"| {n} | {p} | {side} | {r:.2f} |" for n, p, side, r in cut]
    record = payload.get("provenance")
    if record:
        source = record.get("source") or {}
        commit = source.get("commit")
        where = (
            f"commit {commit[:12]}{' with local modifications' if source.get('modified') else ''}"
            if commit
            else "an installed package"
        )
        packages = record.get("packages", {})
        lines += [
            "",
            "## Software",
            "",
            f"astrobayes {record.get('astrobayes')} ({where}); JAX {packages.get('jax')} on "
            f"{record.get('jax_backend')}, {'float64' if record.get('x64') else 'float32'}; "
            f"Python {record.get('python')}; {record.get('created_utc')} (everything in "
            '`results.json`, "provenance").',
        ]
    return "\n".join(lines) + "\n\n"


def _config_dict(config) -> dict:
    """The run config as plain values (for ``results.json`` and checkpoint names)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _method_lines(result) -> list[str]:
    """How the evidences were computed (the first lines of ``report.md``)."""
    from astrobayes.comparison import sampler_name

    samplers = sorted({sampler_name(r) for r in result.models.values()})
    if samplers == ["SMC"]:
        return [
            "Evidences from preconditioned, adaptively tempered SMC (Karamanis et al. 2022,",
            "arXiv:2207.05652) on the unconstrained space, each cross-checked by the learned",
            "harmonic mean (McEwen et al. 2021, arXiv:2111.12720) on its final particles",
            "(the table's T, Pareto k and status are the cross-check's).",
        ]
    if any(r.evidence_method == "bridge_sampling" for r in result.models.values()):
        return [
            "Evidences estimated by bridge sampling (Meng & Wong 1996; errors as in Gronau et",
            f"al. 2017, arXiv:1703.05984) between {' and '.join(samplers)} chains on the",
            "unconstrained space and a normalizing flow fitted to half of them (McEwen et al.",
            "2021, arXiv:2111.12720), with the model evaluated at the flow's draws (the",
            "table's T is the proposal's, its Pareto k that of the plain importance weights).",
        ]
    return [
        "Evidences estimated with the learned harmonic mean (McEwen et al. 2021,",
        f"arXiv:2111.12720) from {' and '.join(samplers)} chains sampled on the unconstrained",
        "space (log density with the Jacobian).",
    ]


def _evidence_summary(config) -> str:
    if config.sampler_kind == "smc":
        return f"SMC, cross-checked by the learned harmonic mean ({config.evidence_target})"
    if config.evidence_method == "bridge_sampling":
        return f"bridge sampling with a learned proposal ({config.evidence_target})"
    return f"learned harmonic mean ({config.evidence_target})"


def _sampler_summary(config, executor=None) -> str:
    """One line on the sampler (for the header printed before a run)."""
    sampling = config.sampling()
    if config.sampler_kind == "smc":
        python = config.python_models
        where = _executor_words(config, executor)
        return (
            f"preconditioned SMC: {sampling.num_particles} particles, "
            f"{sampling.preconditioner} preconditioner, ESS fraction {sampling.ess_fraction}"
            + (f"; Python likelihood of {', '.join(python)} on {where}" if python else "")
        )
    if config.sampler_kind == "flow_mcmc":
        return (
            f"flow MCMC: {sampling.num_chains} chains x ({sampling.num_loops_training} "
            f"training + {sampling.num_loops_production} production loops of "
            f"{sampling.num_local_steps} MALA + {sampling.num_global_steps} flow steps)"
        )
    own = [name for name, spec in config.models.items() if spec.sampler is not None]
    return (
        f"NUTS: {sampling.num_chains} chains x ({sampling.num_warmup} warm-up + "
        f"{sampling.num_samples} draws)" + (f" (own settings: {', '.join(own)})" if own else "")
    )


def _executor_words(config, executor=None) -> str:
    """Where python_likelihood calls run: the started ``executor``, else the config's."""
    from astrobayes.sbi.executors import ExecutorConfig

    settings = config.executor or ExecutorConfig()
    kind = {"serial": "this process", "process": "a process pool"}.get(
        settings.kind, "a Dask cluster" if settings.scheduler is None else settings.scheduler
    )
    workers = executor.num_workers if executor is not None else settings.num_workers
    if settings.kind == "serial":
        workers = 1
    if workers is None:
        return f"{kind} (default workers)"
    return f"{kind} ({workers} worker{'s' if workers != 1 else ''})"


def _with_likelihood_statuses(result, likelihoods):
    """The result with each Python likelihood's status folded into its model's status.

    A model whose calls failed (zero likelihood there) must not read ``ok`` in
    ``results.json``; the line printed under the table says why.
    """
    if not likelihoods:
        return result
    from astrobayes._status import worst

    models = {
        name: report._replace(status=worst([report.status, likelihoods[name].status]))
        if name in likelihoods
        else report
        for name, report in result.models.items()
    }
    return result._replace(
        models=models, status=worst([result.status, *(r.status for r in models.values())])
    )


def _python_likelihood_line(name: str, likelihood, *, resumed: bool) -> str:
    """What a ``python_likelihood`` model's calls did, in one line (printed after the table)."""
    count = f"{likelihood.evaluations} calls" + (" since the checkpoint" if resumed else "")
    if likelihood.status.is_ok:
        return f"{name}: Python log-likelihood, {count}, none failed"
    first = next(iter(likelihood.errors.items()), None)
    where = f" (first: {first[0]} at {first[1]})" if first else ""
    return (
        f"{name}: {likelihood.failures} of {count} failed and were given zero likelihood"
        f"{where}: {likelihood.status.value}"
    )


def _model_fingerprint(config, name: str, contents: str = "") -> str:
    """Short hash of one model's spec and the sampler settings (checkpoint file names).

    A changed prior, likelihood name, data path or sampler setting writes to a new
    checkpoint instead of resuming a different run; so does changed ``contents`` (the
    digest of the model's source files and data arrays from :func:`resolve_models`).
    """
    spec = dataclasses.asdict(config.models[name])
    own = spec.pop("sampler")  # a model's own settings replace the run's (same names otherwise)
    sampler = dataclasses.asdict(config.sampler) if own is None else own
    settings = {"model": spec, "sampler": sampler, "x64": config.x64}
    if contents:
        settings["contents"] = contents
    if config.sampler_kind != "nuts":  # NUTS runs keep the names they had before
        settings[config.sampler_kind] = dataclasses.asdict(config.sampling())
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]
