"""A comparison described by settings: models from a user's likelihood and priors.

``astrobayes run CONFIG.toml`` and the Python API share these frozen dataclasses. A
:class:`RunConfig` names one or more models (:class:`ModelSpec`): each is a JAX
log-likelihood ``f({name: value}) -> ln L`` (or a NumPyro model) written by the user,
with one prior per parameter (:class:`ParameterSpec`: uniform, normal, log-uniform,
truncated normal, fixed or derived), optional data arrays passed to the function, the
NUTS settings, the evidence target and the reference model. :func:`run_config_from_mapping`
builds it from a parsed TOML document (unknown keys and bad priors rejected by name);
:func:`build_model` turns a spec plus the user's functions into a
:class:`~astrobayes.models.Model`; :func:`run_comparison` samples and compares them with
:func:`astrobayes.comparison.compare` (the same numbers as calling ``compare`` from
Python); :func:`posterior_table` gives each model's draws in the original space with
``ln L``, ``ln pi`` and the derived parameters, ready for the chain writers of
:mod:`astrobayes.io`. Resolving ``module:function`` names and reading data files is the
shell's job (:mod:`astrobayes.cli.run`); this module never touches a file.

References:
    McEwen et al. (2021), arXiv:2111.12720 (learned harmonic mean); Hoffman & Gelman
    (2014), arXiv:1111.4246 (NUTS); Lewis (2019), arXiv:1910.13970 (GetDist conventions).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import PRNGKeyArray
from numpyro import handlers

from astrobayes._checks import (
    check_key,
    check_parameter_names,
    scalar_output,
    user_code_error,
)
from astrobayes._config import from_mapping
from astrobayes._types import ProgressFn
from astrobayes.chains import Chains
from astrobayes.comparison import EVIDENCE_METHODS, ComparisonResult, compare
from astrobayes.evidence import GaussianTarget, RealNVPFlow, RQSplineFlow, TargetFamily
from astrobayes.models import Model, PythonLikelihood, prior_ranges
from astrobayes.models.python_likelihood import map_rows
from astrobayes.sampling import Checkpoint, FlowMCMCConfig, NUTSConfig, SMCConfig
from astrobayes.sbi.executors import ExecutorConfig

__all__ = [
    "EVIDENCE_TARGETS",
    "PRIOR_KINDS",
    "ModelSpec",
    "ParameterSpec",
    "PosteriorTable",
    "SAMPLER_KINDS",
    "RunConfig",
    "build_model",
    "check_derived_functions",
    "check_python_model",
    "posterior_table",
    "python_likelihood",
    "run_comparison",
    "run_config_from_mapping",
]

#: Prior kinds and the keys each one needs (``label`` is always optional).
PRIOR_KINDS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "normal": ("loc", "scale"),
    "log-uniform": ("low", "high"),
    "truncated-normal": ("loc", "scale", "low", "high"),
    "fixed": ("value",),
    "derived": ("function",),
}

#: Evidence targets by their TOML name.
EVIDENCE_TARGETS: dict[str, type[TargetFamily]] = {
    "rqspline": RQSplineFlow,
    "realnvp": RealNVPFlow,
    "gaussian": GaussianTarget,
}

#: Samplers by their TOML name (``sampler_kind``).
SAMPLER_KINDS = ("nuts", "flow_mcmc", "smc")

_PRIOR_FIELDS = ("low", "high", "loc", "scale", "value", "function")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a model and its prior.

    Attributes:
        prior: ``"uniform"`` (``low``, ``high``), ``"normal"`` (``loc``, ``scale``),
            ``"log-uniform"`` (``0 < low < high``: uniform in ``ln x``),
            ``"truncated-normal"`` (``loc``, ``scale``, ``low``, ``high``), ``"fixed"``
            (``value``: not sampled, passed to the likelihood) or ``"derived"``
            (``function = "module:function"`` of the other parameters, computed on the
            posterior draws and written with the chains).
        low: Lower bound.
        high: Upper bound.
        loc: Mean of a (truncated) normal.
        scale: Standard deviation of a (truncated) normal.
        value: Value of a fixed parameter.
        function: ``"module:function"`` of a derived parameter.
        label: LaTeX label for the chain files and plots (default: the name).

    Example:
        >>> ParameterSpec("uniform", low=0.0, high=1.0).prior
        'uniform'
        >>> ParameterSpec("normal", loc=0.0)
        Traceback (most recent call last):
        ...
        ValueError: prior 'normal' needs key(s) ['scale']; got loc

    """

    prior: str
    low: float | None = None
    high: float | None = None
    loc: float | None = None
    scale: float | None = None
    value: float | None = None
    function: str | None = None
    label: str | None = None

    def __post_init__(self):
        if self.prior not in PRIOR_KINDS:
            raise ValueError(f"prior must be one of {sorted(PRIOR_KINDS)}; got {self.prior!r}")
        needed = PRIOR_KINDS[self.prior]
        given = [name for name in _PRIOR_FIELDS if getattr(self, name) is not None]
        missing = [name for name in needed if name not in given]
        if missing:
            raise ValueError(
                f"prior {self.prior!r} needs key(s) {missing}; got {', '.join(given) or 'none'}"
            )
        extra = [name for name in given if name not in needed]
        if extra:
            raise ValueError(
                f"prior {self.prior!r} takes only {list(needed)} (and label); got also {extra}"
            )
        if self.label is not None and not isinstance(self.label, str):
            raise TypeError(f"label must be a string; got {type(self.label).__name__}")
        if self.prior == "derived":
            _check_reference(self.function, "function")
            return
        for name in needed:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number; got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite; got {value}")
        if "high" in needed and not self.low < self.high:
            raise ValueError(f"low must be below high; got low = {self.low}, high = {self.high}")
        if self.prior == "log-uniform" and self.low <= 0:
            raise ValueError(f"log-uniform needs low > 0; got low = {self.low}")
        if "scale" in needed and self.scale <= 0:
            raise ValueError(f"scale must be positive; got {self.scale}")

    def distribution(self) -> dist.Distribution:
        """The NumPyro prior of a sampled parameter (proper and normalised).

        Raises:
            ValueError: For a ``fixed`` or ``derived`` parameter (not sampled).
        """
        if self.prior == "uniform":
            return dist.Uniform(self.low, self.high)
        if self.prior == "normal":
            return dist.Normal(self.loc, self.scale)
        if self.prior == "log-uniform":
            return dist.LogUniform(self.low, self.high)
        if self.prior == "truncated-normal":
            return dist.TruncatedNormal(self.loc, self.scale, low=self.low, high=self.high)
        raise ValueError(f"a {self.prior!r} parameter is not sampled and has no distribution")

    @property
    def is_sampled(self) -> bool:
        """Whether NUTS samples this parameter (not fixed, not derived)."""
        return self.prior not in ("fixed", "derived")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a run.

    Attributes:
        likelihood: ``"module:function"``: a JAX function ``f(params)`` (or
            ``f(params, data)`` when ``data`` is given) returning ``ln L``, with
            ``params = {name: value}`` holding the sampled and fixed parameters.
        numpyro_model: ``"module:function"``: a NumPyro model instead (its own priors;
            called as ``f()`` or ``f(data)``).
        model: ``"module:function"`` returning an astrobayes
            :class:`~astrobayes.models.Model` (called as ``f()`` or ``f(data)``; renamed
            to the table's name).
        python_likelihood: ``"module:function"``: a plain Python function ``f(params)``
            (or ``f(params, data)``) returning ``ln L`` as one number, with ``params =
            {name: float}``: NumPy, SciPy, CAMB or CLASS code that JAX cannot trace. It
            runs outside JAX (:class:`~astrobayes.models.PythonLikelihood`), on the run's
            ``[executor]``, and has no gradients, so only ``sampler_kind = "smc"`` can
            sample it; its derived parameters' functions are plain Python too. Exactly
            one of ``likelihood``, ``numpyro_model``, ``model`` and ``python_likelihood``.
        parameters: ``{name: ParameterSpec}`` in sampling order (required with
            ``likelihood`` and ``python_likelihood``, not allowed otherwise).
        data: ``{name: path}`` of data arrays (``.npy``, ``.npz``, or text read with
            ``numpy.loadtxt``), relative to the config file; passed to the function as
            ``data = {name: array}``.
        sampler: This model's own NUTS settings (``None``: the run's ``[sampler]``). In
            TOML a ``[models.NAME.sampler]`` table holds only the keys that differ from
            the run's ``[sampler]`` table, e.g. ``dense_mass = true`` for a model with
            correlated parameters; NUTS runs only.

    """

    likelihood: str | None = None
    numpyro_model: str | None = None
    model: str | None = None
    python_likelihood: str | None = None
    parameters: Mapping[str, ParameterSpec] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    sampler: NUTSConfig | None = None

    def __post_init__(self):
        given = {
            key: getattr(self, key)
            for key in ("likelihood", "numpyro_model", "model", "python_likelihood")
            if getattr(self, key) is not None
        }
        if len(given) != 1:
            raise ValueError(
                "a model needs exactly one of likelihood, numpyro_model, model or "
                f"python_likelihood = 'module:function'; got {given or 'none'}"
            )
        (kind, reference), *_ = given.items()
        _check_reference(reference, kind)
        if kind in ("likelihood", "python_likelihood"):
            if not any(p.is_sampled for p in self.parameters.values()):
                raise ValueError(
                    f"a {kind} model needs at least one sampled parameter in its "
                    "parameters table (uniform, normal, log-uniform or truncated-normal)"
                )
        elif self.parameters:
            raise ValueError(
                f"{kind} defines its own priors: remove the parameters table "
                f"(got {sorted(self.parameters)})"
            )
        if self.parameters:
            check_parameter_names(list(self.parameters), "parameter names")
        for name, spec in self.parameters.items():
            if not isinstance(spec, ParameterSpec):
                raise TypeError(f"parameters[{name!r}] must be a ParameterSpec; got {spec!r}")
        if not isinstance(self.data, Mapping) or not all(
            isinstance(v, str) for v in self.data.values()
        ):
            raise TypeError(f"data must be a table of name = 'path'; got {self.data!r}")
        if self.sampler is not None and not isinstance(self.sampler, NUTSConfig):
            raise TypeError(
                f"sampler must be a NUTSConfig (or None for the run's); got "
                f"{type(self.sampler).__name__}"
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything ``astrobayes run`` needs besides the user's code and data.

    Attributes:
        models: ``{name: ModelSpec}`` in order (at least one).
        sampler: NUTS settings (:class:`~astrobayes.sampling.NUTSConfig`).
        sampler_kind: ``"nuts"`` (default), ``"smc"`` or ``"flow_mcmc"``: flow-enhanced MCMC (MALA
            plus global proposals from a flow trained on the fly) for posteriors with
            separated modes, whose weights NUTS cannot set.
        flow_mcmc: Flow-MCMC settings (:class:`~astrobayes.sampling.FlowMCMCConfig`;
            defaults when ``None``), only with ``sampler_kind = "flow_mcmc"``.
        smc: Preconditioned-SMC settings (:class:`~astrobayes.sampling.SMCConfig`;
            defaults when ``None``), only with ``sampler_kind = "smc"``: tempered SMC
            from prior draws, whose own ``ln z`` is reported and cross-checked by the
            learned harmonic mean on its particles (checkpointed per temperature).
        reference: Model the Bayes factors are taken against (default: the first).
        seed: PRNG seed; model ``i`` uses ``fold_in(key(seed), i)``.
        evidence_target: ``"rqspline"`` (default), ``"realnvp"`` or ``"gaussian"``.
        evidence_method: ``"learned_harmonic_mean"`` (default; from the chains alone) or
            ``"bridge_sampling"`` (the same learned target as a bridge-sampling proposal,
            with the model evaluated at its draws: finite variance where the harmonic
            mean's ratios are heavy-tailed, e.g. in 30 dimensions). NUTS and flow MCMC only.
        x64: Run in float64 (``jax_enable_x64``): for likelihoods with ``|ln L|``
            of order 1e4 and more, where float32 keeps only ~3 decimals of ``ln L``.
        num_workers: Models run side by side in threads (default: one per model, at
            most the CPU count); the numbers do not depend on it.
        executor: Where the models' ``python_likelihood`` functions run
            (:class:`~astrobayes.sbi.executors.ExecutorConfig`; default: a local process
            pool, one worker per CPU); only with such a model. The numbers do not depend
            on it.

    """

    models: Mapping[str, ModelSpec]
    sampler: NUTSConfig = field(default_factory=NUTSConfig)
    sampler_kind: str = "nuts"
    flow_mcmc: FlowMCMCConfig | None = None
    smc: SMCConfig | None = None
    reference: str | None = None
    seed: int = 0
    evidence_target: str = "rqspline"
    evidence_method: str = "learned_harmonic_mean"
    x64: bool = False
    num_workers: int | None = None
    executor: ExecutorConfig | None = None

    def __post_init__(self):
        if not isinstance(self.models, Mapping) or not self.models:
            raise ValueError("models must name at least one model ([models.NAME] tables)")
        for name, spec in self.models.items():
            if not isinstance(spec, ModelSpec):
                raise TypeError(f"models[{name!r}] must be a ModelSpec; got {spec!r}")
        if self.reference is not None and self.reference not in self.models:
            raise ValueError(
                f"reference must be one of {list(self.models)}; got {self.reference!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}")
        if self.sampler_kind not in SAMPLER_KINDS:
            raise ValueError(
                f"sampler_kind must be one of {list(SAMPLER_KINDS)}; got {self.sampler_kind!r}"
            )
        own = [name for name, spec in self.models.items() if spec.sampler is not None]
        if own and self.sampler_kind != "nuts":
            raise ValueError(
                f"per-model [models.NAME.sampler] tables are NUTS settings; got them for "
                f"{own} with sampler_kind = {self.sampler_kind!r}"
            )
        for kind in ("flow_mcmc", "smc"):
            if getattr(self, kind) is not None and self.sampler_kind != kind:
                raise ValueError(
                    f'a [{kind}] table is used only with sampler_kind = "{kind}"; got '
                    f"sampler_kind = {self.sampler_kind!r}"
                )
        python = self.python_models
        if python and self.sampler_kind != "smc":
            raise ValueError(
                f"models {python} have a python_likelihood, which has no gradients: set "
                f'sampler_kind = "smc" (gradient-free moves); got sampler_kind = '
                f"{self.sampler_kind!r}, which needs gradients"
            )
        if self.executor is not None:
            if not isinstance(self.executor, ExecutorConfig):
                raise TypeError(
                    f"executor must be an ExecutorConfig; got {type(self.executor).__name__}"
                )
            if not python:
                raise ValueError(
                    "an [executor] table sets where python_likelihood functions run; no "
                    "model has one"
                )
        if self.evidence_target not in EVIDENCE_TARGETS:
            raise ValueError(
                f"evidence_target must be one of {sorted(EVIDENCE_TARGETS)}; got "
                f"{self.evidence_target!r}"
            )
        if self.evidence_method not in EVIDENCE_METHODS:
            raise ValueError(
                f"evidence_method must be one of {list(EVIDENCE_METHODS)}; got "
                f"{self.evidence_method!r}"
            )
        if self.evidence_method == "bridge_sampling" and self.sampler_kind == "smc":
            raise ValueError(
                'evidence_method = "bridge_sampling" needs sampler_kind "nuts" or "flow_mcmc"; '
                "SMC reports its own ln z"
            )
        if not isinstance(self.x64, bool):
            raise TypeError(f"x64 must be true or false; got {self.x64!r}")
        if self.num_workers is not None and (
            isinstance(self.num_workers, bool)
            or not isinstance(self.num_workers, int)
            or self.num_workers < 1
        ):
            raise ValueError(f"num_workers must be a positive integer; got {self.num_workers!r}")

    @property
    def python_models(self) -> list[str]:
        """Names of the models with a ``python_likelihood``."""
        return [n for n, spec in self.models.items() if spec.python_likelihood is not None]

    def target(self) -> TargetFamily:
        """The evidence target family named by ``evidence_target``."""
        return EVIDENCE_TARGETS[self.evidence_target]()

    def sampling(self, model: str | None = None) -> NUTSConfig | FlowMCMCConfig | SMCConfig:
        """The settings of the sampler named by ``sampler_kind`` (what ``compare`` gets).

        Args:
            model: A model's name: its own ``sampler`` when it has one.

        """
        if model is not None and model not in self.models:
            raise ValueError(f"model must be one of {list(self.models)}; got {model!r}")
        if model is not None and self.models[model].sampler is not None:
            return self.models[model].sampler
        if self.sampler_kind == "flow_mcmc":
            return FlowMCMCConfig() if self.flow_mcmc is None else self.flow_mcmc
        if self.sampler_kind == "smc":
            return SMCConfig() if self.smc is None else self.smc
        return self.sampler


def run_config_from_mapping(table: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from a parsed TOML document.

    Args:
        table: The document: top-level keys of :class:`RunConfig`, a ``[sampler]`` table,
            and ``[models.NAME]`` tables with ``[models.NAME.parameters]`` holding one
            inline table per parameter.

    Returns:
        The validated :class:`RunConfig`.

    Raises:
        ValueError: On an unknown or missing key (the table and key named) or a bad
            value (the parameter or model named).
        TypeError: If a table is not a table.

    Example:
        >>> config = run_config_from_mapping({
        ...     "models": {"line": {"likelihood": "mymod:loglike",
        ...                          "parameters": {"a": {"prior": "uniform", "low": 0, "high": 1}}}},
        ...     "sampler": {"num_chains": 4}})
        >>> config.models["line"].parameters["a"].high, config.sampler.num_chains
        (1, 4)
        >>> run_config_from_mapping({"models": {"m": {"likelihood": "a:b", "parameters": {
        ...     "a": {"prior": "uniform", "low": 1, "hgh": 2}}}}})
        Traceback (most recent call last):
        ...
        ValueError: unknown key 'hgh' in [models.m.parameters.a]; allowed: function, high, label, loc, low, prior, scale, value

    """
    if not isinstance(table, Mapping):
        raise TypeError(f"the run config must be a table; got {type(table).__name__}")
    allowed = sorted(f.name for f in dataclasses.fields(RunConfig))
    for key in table:  # top-level mistakes first, before the models are read
        if key not in allowed:
            raise ValueError(
                f"unknown key {key!r} in the top-level table; allowed: {', '.join(allowed)}"
            )
    models_table = table.get("models")
    if not isinstance(models_table, Mapping) or not models_table:
        raise ValueError("the run config needs at least one [models.NAME] table")
    models = {}
    for name, model_table in models_table.items():
        where = f"models.{name}"
        if not isinstance(model_table, Mapping):
            raise TypeError(f"[{where}] must be a table; got {type(model_table).__name__}")
        parameters_table = model_table.get("parameters", {})
        if not isinstance(parameters_table, Mapping):
            raise TypeError(f"[{where}.parameters] must be a table of parameter tables")
        parameters = {}
        for parameter, spec in parameters_table.items():
            inner = f"{where}.parameters.{parameter}"
            parameters[parameter] = _named(
                inner, lambda s=spec, t=inner: from_mapping(ParameterSpec, s, table=t)
            )
        rest = dict(model_table)
        rest["parameters"] = parameters
        if "sampler" in model_table:  # only the keys that differ from the run's [sampler]
            own = model_table["sampler"]
            if not isinstance(own, Mapping):
                raise TypeError(f"[{where}.sampler] must be a table; got {type(own).__name__}")
            run_table = table.get("sampler", {})
            merged = {**(run_table if isinstance(run_table, Mapping) else {}), **own}
            rest["sampler"] = _named(
                f"{where}.sampler",
                lambda m=merged, w=f"{where}.sampler": from_mapping(NUTSConfig, m, table=w),
            )
        models[name] = _named(where, lambda r=rest, w=where: from_mapping(ModelSpec, r, table=w))
    rest = dict(table)
    rest["models"] = models
    return _named("", lambda: from_mapping(RunConfig, rest))


def _named(where: str, build: Callable[[], Any]) -> Any:
    """``build()``, with a value error raised by a ``__post_init__`` prefixed by its table."""
    try:
        return build()
    except (ValueError, TypeError) as error:
        message = str(error)
        if not where or message.startswith(("unknown key", "[")) or " in [" in message:
            raise
        raise type(error)(f"[{where}]: {message}") from None


def _check_reference(reference: Any, name: str) -> None:
    if (
        not isinstance(reference, str)
        or reference.count(":") != 1
        or not all(part.strip() for part in reference.split(":"))
    ):
        raise ValueError(f"{name} must be 'module:function'; got {reference!r}")


def build_model(
    name: str,
    spec: ModelSpec,
    *,
    log_likelihood_fn: Callable[..., jax.Array] | None = None,
    numpyro_model: Callable[..., Any] | None = None,
    model: Model | None = None,
    data: Mapping[str, Any] | None = None,
    executor: Any = None,
) -> Model:
    """Turn a :class:`ModelSpec` and the user's function into a :class:`~astrobayes.models.Model`.

    A likelihood model is exactly ``Model.from_priors(name, f, {name: prior})`` over the
    sampled parameters, with the fixed values added to ``params`` (and ``data`` passed
    as the second argument when given), so ``compare`` on it gives the numbers of the
    same model built by hand.

    Args:
        name: Model name.
        spec: The model's spec.
        log_likelihood_fn: The function ``spec.likelihood`` names.
        numpyro_model: The function ``spec.numpyro_model`` names.
        model: The :class:`~astrobayes.models.Model` that ``spec.model``'s function
            returned (renamed to ``name``).
        data: ``{name: array}`` read from ``spec.data`` (``None`` when it has none).
        executor: Where a ``python_likelihood`` runs (see :func:`python_likelihood`);
            ignored otherwise. ``log_likelihood_fn`` may also be the
            :class:`~astrobayes.models.PythonLikelihood` itself (then used as it is).

    Returns:
        The :class:`~astrobayes.models.Model`.

    Raises:
        ValueError: If the function given does not match the spec.

    Example:
        >>> spec = ModelSpec(likelihood="m:f", parameters={
        ...     "a": ParameterSpec("uniform", low=-1.0, high=1.0),
        ...     "b": ParameterSpec("fixed", value=2.0)})
        >>> model = build_model("m", spec, log_likelihood_fn=lambda p: -0.5 * (p["a"] - p["b"]) ** 2)
        >>> model.name
        'm'

    """
    if spec.likelihood is not None or spec.python_likelihood is not None:
        kind = "likelihood" if spec.likelihood is not None else "python_likelihood"
        if log_likelihood_fn is None or not callable(log_likelihood_fn):
            raise ValueError(f"model {name!r} names a {kind}: pass log_likelihood_fn")
        priors = {k: p.distribution() for k, p in spec.parameters.items() if p.is_sampled}
        labels = {k: p.label for k, p in spec.parameters.items() if p.label is not None}
        if spec.python_likelihood is not None:  # fixed values and data go in the wrapper
            function = (
                log_likelihood_fn
                if isinstance(log_likelihood_fn, PythonLikelihood)
                else python_likelihood(name, spec, log_likelihood_fn, data=data, executor=executor)
            )
            return Model.from_priors(name, function, priors, labels=labels)
        fixed = {k: jnp.asarray(p.value) for k, p in spec.parameters.items() if p.prior == "fixed"}
        if data is None:

            def log_likelihood(params):
                return log_likelihood_fn({**params, **fixed})

        else:
            arrays = {k: jnp.asarray(v) for k, v in data.items()}

            def log_likelihood(params):
                return log_likelihood_fn({**params, **fixed}, arrays)

        function = log_likelihood if (fixed or data is not None) else log_likelihood_fn
        return Model.from_priors(name, function, priors, labels=labels)
    if spec.model is not None:
        if not isinstance(model, Model):
            raise ValueError(
                f"model {name!r}: the function {spec.model!r} must return an astrobayes Model; "
                f"got {type(model).__name__}"
            )
        return dataclasses.replace(model, name=name)
    if numpyro_model is None or not callable(numpyro_model):
        raise ValueError(f"model {name!r} names a numpyro_model: pass numpyro_model")
    if data is None:
        return Model(name, numpyro_model)
    return Model(name, numpyro_model, model_args=({k: jnp.asarray(v) for k, v in data.items()},))


def python_likelihood(
    name: str,
    spec: ModelSpec,
    log_likelihood_fn: Callable[..., float],
    *,
    data: Mapping[str, Any] | None = None,
    executor: Any = None,
) -> PythonLikelihood:
    """The :class:`~astrobayes.models.PythonLikelihood` of a ``python_likelihood`` model.

    The spec's fixed parameters are added to every call's ``params``, and ``data`` (when
    given) is passed as the second argument, as for a JAX likelihood.

    Args:
        name: Model name (in errors).
        spec: The model's spec.
        log_likelihood_fn: The plain Python function ``spec.python_likelihood`` names.
        data: ``{name: array}`` read from ``spec.data``.
        executor: ``None`` (this process) or an executor whose workers share every batch
            of points (:meth:`astrobayes.sbi.executors.ExecutorConfig.make`).

    Returns:
        The wrapper (its ``evaluations``, ``failures`` and ``status`` count the calls).

    Example:
        >>> spec = ModelSpec(python_likelihood="m:f", parameters={
        ...     "a": ParameterSpec("uniform", low=-1.0, high=1.0),
        ...     "s": ParameterSpec("fixed", value=2.0)})
        >>> likelihood = python_likelihood("m", spec, lambda p: -0.5 * (p["a"] / p["s"]) ** 2)
        >>> likelihood.check({"a": 1.0})
        -0.125

    """
    if spec.python_likelihood is None:
        raise ValueError(f"model {name!r} has no python_likelihood")
    fixed = {k: p.value for k, p in spec.parameters.items() if p.prior == "fixed"}
    return PythonLikelihood(
        log_likelihood_fn, data=data, constants=fixed, executor=executor, name=name
    )


#: Prior draws :func:`check_python_model` tries before it calls a likelihood broken.
CHECK_DRAWS = 10


def check_python_model(
    key: PRNGKeyArray,
    name: str,
    spec: ModelSpec,
    likelihood: PythonLikelihood,
    derived_fns: Mapping[str, Callable[[dict[str, float]], float]] | None = None,
) -> dict[str, float]:
    """Call a ``python_likelihood`` model's code at a prior draw, before any sampling.

    JAX cannot trace plain Python code, so the check of a JAX model (one abstract trace)
    becomes real calls: the likelihood at up to :data:`CHECK_DRAWS` prior draws until one
    succeeds (a likelihood may fail in part of the prior, and those points are counted
    during the run, not refused here), then at that draw once more on a worker of its
    executor, and each derived parameter's function there.

    Args:
        key: JAX PRNG key (the prior draws).
        name: Model name (in errors).
        spec: Its spec.
        likelihood: Its :func:`python_likelihood`.
        derived_fns: ``{name: f(params)}`` for the spec's derived parameters.

    Returns:
        The prior draw ``{name: value}`` (sampled parameters) that was checked.

    Raises:
        ValueError: If the likelihood fails (raises, or returns anything but one real
            number: NaN and ``+inf`` included; ``ln L = -inf`` is allowed) at every draw
            tried, gives another value on a worker, or a derived function fails at the
            draw where the likelihood worked.

    Example:
        >>> import jax
        >>> spec = ModelSpec(python_likelihood="m:f", parameters={
        ...     "a": ParameterSpec("uniform", low=-1.0, high=1.0)})
        >>> likelihood = python_likelihood("m", spec, lambda p: [p["a"], p["a"]])
        >>> try:
        ...     check_python_model(jax.random.key(0), "m", spec, likelihood)
        ... except ValueError as error:
        ...     print(str(error).split(": ", 4)[-1])
        the log-likelihood must return one number; got an array of shape (2,) (sum per-point terms yourself) (and at every one of the 10 prior draws tried)

    """
    check_key(key)
    failures = []
    for attempt in range(CHECK_DRAWS):
        draw_key = jax.random.fold_in(key, attempt)
        point = {
            parameter: float(p.distribution().sample(jax.random.fold_in(draw_key, i)))
            for i, (parameter, p) in enumerate(spec.parameters.items())
            if p.is_sampled
        }
        try:
            likelihood.check(point, on_workers=False)
        except ValueError as error:
            failures.append(error)
            continue
        break
    else:
        raise ValueError(
            f"{failures[0]} (and at every one of the {CHECK_DRAWS} prior draws tried)"
        ) from failures[0]
    likelihood.check(point)  # here and on a worker
    fixed = {k: p.value for k, p in spec.parameters.items() if p.prior == "fixed"}
    for parameter, fn in (derived_fns or {}).items():
        where = f"[models.{name}.parameters.{parameter}]"
        try:
            value = float(np.asarray(fn({**point, **fixed}), np.float64).reshape(()))
        except Exception as error:  # the user's code: say whose, and where
            raise ValueError(
                f"{where}: its function raised {type(error).__name__} at the prior draw "
                f"{point}: {error}"
            ) from error
        if not np.isfinite(value):
            raise ValueError(f"{where}: its function returned {value} at the prior draw {point}")
    return point


def run_comparison(
    key: PRNGKeyArray,
    config: RunConfig,
    models: Sequence[Model],
    *,
    checkpoint_fn: Callable[[str], Checkpoint] | None = None,
    progress_fn_for: Callable[[str], ProgressFn] | None = None,
    throw: bool = False,
) -> ComparisonResult:
    """Sample and compare ``models`` with the settings of ``config``.

    Exactly :func:`astrobayes.comparison.compare` with ``reference``, ``sampling``,
    ``target`` and ``num_workers`` taken from ``config``.

    Args:
        key: JAX PRNG key (the CLI uses ``key(config.seed)``).
        config: The run settings.
        models: The models, in the order of ``config.models`` (built by
            :func:`build_model`, or any :class:`~astrobayes.models.Model`).
        checkpoint_fn: ``name -> Checkpoint`` for a resumable run.
        progress_fn_for: ``name -> progress_fn``.
        throw: Raise on a failure status (see :func:`~astrobayes.comparison.compare`).

    Returns:
        The :class:`~astrobayes.comparison.ComparisonResult`.

    Raises:
        ValueError: If ``config.x64`` is set but JAX runs in float32 (enable it first:
            ``jax.config.update("jax_enable_x64", True)``; the library never flips it).

    """
    check_key(key)
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig; got {type(config).__name__}")
    if config.x64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "config.x64 is true but JAX runs in float32: call "
            'jax.config.update("jax_enable_x64", True) before building the models '
            "(astrobayes run does this for x64 = true)"
        )
    models = list(models)
    sampling = config.sampling()
    if any(spec.sampler is not None for spec in config.models.values()):
        if len(models) != len(config.models):
            raise ValueError(
                f"models must hold one Model per entry of config.models "
                f"({len(config.models)}, in order) when a model has its own sampler; got "
                f"{len(models)}"
            )
        sampling = {m.name: config.sampling(n) for m, n in zip(models, config.models, strict=True)}
    return compare(
        key,
        models,
        reference=config.reference,
        sampling=sampling,
        target=config.target(),
        evidence_method=config.evidence_method,
        checkpoint_fn=checkpoint_fn,
        progress_fn_for=progress_fn_for,
        num_workers=config.num_workers,
        throw=throw,
    )


class PosteriorTable(NamedTuple):
    """One model's posterior in the original space, ready for chain files.

    Attributes:
        names: Column names: sampled parameters (and deterministic sites), then derived.
        labels: LaTeX labels, one per column.
        samples: ``(num_chains, num_samples, num_columns)`` draws (unit weights).
        is_derived: One flag per column (derived and deterministic columns are ``True``).
        log_likelihood: ``ln L`` per draw, ``(num_chains, num_samples)``.
        log_prior: Normalised ``ln pi`` per draw (over the sampled parameters).
        ranges: ``{name: (low, high)}`` of the sampled parameters with hard bounds
            (``None`` for an open side).

    """

    names: tuple[str, ...]
    labels: tuple[str, ...]
    samples: np.ndarray
    is_derived: tuple[bool, ...]
    log_likelihood: np.ndarray
    log_prior: np.ndarray
    ranges: dict[str, tuple[float | None, float | None]]

    @property
    def log_posterior(self) -> np.ndarray:
        """``ln L + ln pi`` per draw (the prior normalised)."""
        return self.log_likelihood + self.log_prior

    def chains(self) -> Chains:
        """The sampled columns and ``ln L + ln pi`` as :class:`~astrobayes.Chains`.

        What :func:`astrobayes.evidence.estimate` takes: the draws of any sampler of a
        NumPyro model (NumPyro's own MCMC included) with their normalised log posterior.

        Example:
            >>> import numpy as np, numpyro.distributions as dist
            >>> model = Model.from_priors("m", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-2, 2)})
            >>> chains = posterior_table(model, {"x": np.zeros((2, 3))}).chains()
            >>> chains.samples.shape, chains.names
            ((2, 3, 1), ('x',))
        """
        sampled = [i for i, derived in enumerate(self.is_derived) if not derived]
        return Chains(
            self.samples[..., sampled],
            self.log_posterior,
            names=tuple(self.names[i] for i in sampled),
        )


def check_derived_functions(
    model_name: str,
    spec: ModelSpec,
    derived_fns: Mapping[str, Callable[[dict[str, jax.Array]], jax.Array]],
) -> None:
    """Trace each derived parameter's function once, abstractly, before any sampling.

    Each function gets ``params`` as the likelihood does (the sampled and fixed values
    by name, as abstract scalars: nothing is evaluated) and must return one real number.
    A ``python_likelihood`` model's functions are plain Python, which JAX cannot trace:
    only their presence is checked here (:func:`check_python_model` calls them).

    Args:
        model_name: The model's name (for errors).
        spec: Its spec (the derived parameters and fixed values).
        derived_fns: ``{name: f(params)}`` for the spec's derived parameters.

    Raises:
        ValueError: If a derived parameter has no function, a function raises while
            traced (named, with the exception), or returns anything but one real number.

    Example:
        >>> spec = ModelSpec(likelihood="m:f", parameters={
        ...     "a": ParameterSpec("normal", loc=0.0, scale=1.0),
        ...     "y": ParameterSpec("derived", function="m:g")})
        >>> check_derived_functions("m", spec, {"y": lambda p: 2 * p["a"]})
        >>> try:
        ...     check_derived_functions("m", spec, {"y": lambda p: p["b"]})
        ... except ValueError as error:
        ...     print(error)
        [models.m.parameters.y]: its code raised KeyError when JAX traced it: 'b' (params holds ['a']: does the code read another name?)

    """
    float_type = jnp.result_type(float)
    params = {
        k: jax.ShapeDtypeStruct((), float_type)
        for k, p in spec.parameters.items()
        if p.is_sampled or p.prior == "fixed"
    }
    for name, p in spec.parameters.items():
        if p.prior != "derived":
            continue
        if name not in derived_fns:
            raise ValueError(f"derived parameter {name!r} needs its function in derived_fns")
        if spec.python_likelihood is not None:
            continue  # plain Python, called by check_python_model instead of traced
        where = f"[models.{model_name}.parameters.{name}]"

        def value(params, fn=derived_fns[name], where=where, reference=p.function):
            try:
                out = fn(dict(params))
            except Exception as error:  # the user's code: say whose
                raise user_code_error(where, error, list(params)) from error
            return scalar_output(out, f"{where} (function {reference!r})")

        jax.eval_shape(value, params)


def posterior_table(
    model: Model,
    posterior: Mapping[str, np.ndarray],
    *,
    spec: ModelSpec | None = None,
    derived_fns: Mapping[str, Callable[[dict[str, jax.Array]], jax.Array]] | None = None,
    executor: Any = None,
) -> PosteriorTable:
    """Draws of one model with ``ln L``, ``ln pi`` and derived parameters per draw.

    ``ln L`` is the sum of the model's observed sites and its factors; ``ln pi`` the sum
    of the latent sites' log densities and ``Model.from_priors``' prior correction,
    evaluated on the draws in the original space. The draws may come from any sampler:
    ``posterior_table(Model("m", numpyro_model, (x, y)),
    mcmc.get_samples(group_by_chain=True)).chains()`` gives NumPyro's MCMC draws with
    their normalised log posterior, for :func:`astrobayes.evidence.estimate`.

    Args:
        model: The model the draws came from.
        posterior: ``{site: (num_chains, num_samples)}`` (``ModelReport.posterior``);
            a vector site as ``(num_chains, num_samples, *shape)`` or as its columns
            ``name[0]``, ``name[1]``, ... (C order).
        spec: Its spec, for labels, fixed values and derived parameters.
        derived_fns: ``{name: f(params)}`` for the spec's derived parameters.
        executor: Where a ``python_likelihood`` model's (plain Python) derived parameters
            are computed, draws split over its workers (``None``: in this process); its
            ``ln L`` column runs on the executor of the model's own
            :class:`~astrobayes.models.PythonLikelihood`.

    Returns:
        :class:`PosteriorTable`.

    Raises:
        ValueError: If a derived parameter has no function, or a draw misses a site.

    Example:
        >>> import numpy as np, numpyro.distributions as dist
        >>> model = Model.from_priors("m", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-2, 2)})
        >>> table = posterior_table(model, {"x": np.zeros((1, 3))})
        >>> bool(np.isclose(table.log_prior[0, 0], np.log(0.25)))
        True

    """
    spec_parameters = spec.parameters if spec is not None else {}
    derived_fns = dict(derived_fns or {})
    posterior = _element_columns(posterior)
    names = [k for k, v in posterior.items() if np.ndim(v) == 2]
    if not names:
        raise ValueError("posterior holds no (num_chains, num_samples) site")
    shape = np.shape(posterior[names[0]])
    flat = {k: jnp.asarray(np.reshape(posterior[k], -1)) for k in names}
    log_likelihood, log_prior, ranges = _log_terms(model, flat)
    fixed = {k: p.value for k, p in spec_parameters.items() if p.prior == "fixed"}
    derived_names = [k for k, p in spec_parameters.items() if p.prior == "derived"]
    columns = {k: np.asarray(posterior[k], np.float64) for k in names}
    if spec is not None:
        check_derived_functions(model.name, spec, derived_fns)
    for name in derived_names:
        fn = derived_fns[name]
        if spec is not None and spec.python_likelihood is not None:
            names_in_order = tuple(flat)
            rows = np.stack([np.asarray(flat[k], np.float64) for k in names_in_order], axis=1)
            values, _ = map_rows(
                fn,
                names_in_order,
                rows,
                constants=fixed,
                executor=executor,
                what=f"derived parameter {name!r}",
            )  # NaN in the chain files where it raised
        else:
            values = jax.jit(jax.vmap(lambda p, fn=fn: fn({**p, **fixed})))(flat)
        columns[name] = np.asarray(values, np.float64).reshape(shape)
    sampled = set(ranges)
    ordered = [k for k in names if k in sampled] + [k for k in names if k not in sampled]
    ordered += derived_names
    return PosteriorTable(
        names=tuple(ordered),
        labels=tuple(
            (spec_parameters[k].label if k in spec_parameters else None) or model.label(k)
            for k in ordered
        ),
        samples=np.stack([columns[k] for k in ordered], axis=-1),
        is_derived=tuple(k not in sampled for k in ordered),
        log_likelihood=np.asarray(log_likelihood, np.float64).reshape(shape),
        log_prior=np.asarray(log_prior, np.float64).reshape(shape),
        ranges={k: ranges[k] for k in ordered if k in ranges},
    )


def _element_columns(posterior: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Vector sites as columns ``name[0]``, ``name[1]``, ... (C order).

    A vector site comes as ``(num_chains, num_samples, *shape)``, as NumPyro's
    ``get_samples(group_by_chain=True)`` gives it; scalar sites stay as they are.
    """
    columns: dict[str, np.ndarray] = {}
    for name, values in posterior.items():
        values = np.asarray(values)
        if values.ndim <= 2:
            columns[name] = values
            continue
        for i, index in enumerate(np.ndindex(*values.shape[2:])):
            columns[f"{name}[{i}]"] = values[(..., *index)]
    return columns


def _log_terms(model: Model, flat: dict[str, jax.Array]):
    """``(ln L, ln pi)`` per draw and ``{latent site: (low, high)}`` from a model trace."""

    def trace_of(values):
        substituted = handlers.substitute(handlers.seed(model.numpyro_model, 0), data=values)
        return handlers.trace(substituted).get_trace(*model.model_args, **dict(model.model_kwargs))

    first = {k: v[0] for k, v in flat.items()}
    latent: dict[str, tuple[int, ...]] = {}

    def latent_sites(values):
        latent.update(
            (name, tuple(jnp.shape(site["value"])))
            for name, site in trace_of(values).items()
            if site["type"] == "sample" and not site["is_observed"]
        )
        return jnp.zeros(())

    # the site names only: an abstract trace runs nothing (an eager one compiles and runs
    # every operation of the model once: measured 5.6 -> 1.9 CPU-s for posterior_table of
    # w0wacdm on 12,000 draws in a fresh process)
    jax.eval_shape(latent_sites, first)
    edges = prior_ranges(model)
    ranges: dict[str, tuple[float | None, float | None]] = {}
    flat = dict(flat)
    for site_name, shape in latent.items():
        if shape:  # a vector site, drawn as the columns name[0], name[1], ... (C order)
            elements = [f"{site_name}[{i}]" for i in range(int(np.prod(shape)))]
            if site_name not in flat and elements and all(e in flat for e in elements):
                flat[site_name] = jnp.stack([flat[e] for e in elements], -1).reshape(-1, *shape)
            ranges.update((e, (None, None)) for e in elements)  # per-element edges: not read
        else:
            ranges[site_name] = edges.get(site_name, (None, None))
        if site_name not in flat:
            raise ValueError(f"the draws miss the model's latent site {site_name!r}")

    def terms(values):
        log_likelihood = jnp.zeros(())
        log_prior = jnp.zeros(())
        for site_name, site in trace_of(values).items():
            if site["type"] != "sample":
                continue
            term = jnp.sum(site["fn"].log_prob(site["value"]))
            is_factor = isinstance(site["fn"], dist.distribution.Unit)
            # observed sites and factors are the likelihood, except the prior correction
            # of Model.from_priors (until 2026-12-06 every factor but one named
            # "log_likelihood" was counted as prior: a NumPyro model's own
            # numpyro.factor likelihood gave ln L = 0 in the chain files)
            if site["is_observed"] and not (is_factor and site_name == "log_prior_correction"):
                log_likelihood = log_likelihood + term
            else:
                log_prior = log_prior + term
        return log_likelihood, log_prior

    log_likelihood, log_prior = jax.jit(jax.vmap(terms))(flat)
    return log_likelihood, log_prior, ranges
