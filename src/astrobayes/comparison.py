"""Accelerated model comparison: NUTS on each model, then the learned harmonic mean.

``compare(key, models)`` samples each :class:`~astrobayes.models.Model` (with NUTS, or
with flow-enhanced MCMC when ``sampling`` is a
:class:`~astrobayes.sampling.FlowMCMCConfig`: for multimodal posteriors) on its
unconstrained space (log density with the Jacobian, so the evidence is the original
model's), estimates each evidence from the chains, and returns ``ln z +/- sigma`` per model,
``ln B +/- sigma`` against a reference model, posterior summaries and diagnostics.

With an :class:`~astrobayes.sampling.SMCConfig` each model is sampled by preconditioned,
tempered SMC (:func:`~astrobayes.sampling.run_smc`) from prior draws; the model's ``ln z``
is then SMC's own (the tempering path sets the weights of separated modes), and the
learned harmonic mean on the final particles is an independent cross-check: a
disagreement beyond three combined standard errors is a warning
(:class:`EvidenceCrossCheck`).

The comparison's ``status`` is the worst of its models' evidence and sampling statuses
(:func:`astrobayes._status.worst`); each :class:`ModelReport` keeps both of its own.

References:
    Piras, Polanska, Spurio Mancini, Price & McEwen (2024), arXiv:2405.12965;
    McEwen et al. (2021), arXiv:2111.12720.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes._checks import check_key
from astrobayes._status import Severity, Status, check, worst
from astrobayes._types import ProgressFn
from astrobayes.chains import Chains
from astrobayes.evidence import (
    BayesFactor,
    EvidenceResult,
    TargetFamily,
    bridge_estimate,
    estimate,
    log_bayes_factor,
)
from astrobayes.models.model import (
    Model,
    check_model,
    constrained_samples,
    unconstrained_density,
    unconstrained_prior,
)
from astrobayes.sampling import (
    Checkpoint,
    FlowMCMCConfig,
    FlowMCMCResult,
    NUTSConfig,
    SamplingResult,
    SMCConfig,
    SMCResult,
    SMCStatus,
    batched_logdensity,
    run_flow_mcmc,
    run_nuts,
    run_smc,
)

__all__ = [
    "ComparisonResult",
    "EvidenceCrossCheck",
    "ModelReport",
    "SMCSampling",
    "compare",
    "cross_check_evidence",
    "sampler_name",
]

#: Particles per pseudo-chain when SMC particles are handed to the learned harmonic mean.
SMC_PARTICLES_PER_CHAIN = 100


class EvidenceCrossCheck(Status):
    """Agreement of a sampler's own evidence with the learned harmonic mean on its draws."""

    OK = (Severity.OK, "the SMC evidence agrees with the learned harmonic mean on its particles")
    DISAGREE = (
        Severity.WARNING,
        "warning: the SMC evidence and the learned harmonic mean on its particles differ by "
        "more than 3 combined standard errors; at least one error bar is too small",
    )
    UNCHECKED = (
        Severity.WARNING,
        "warning: the learned harmonic mean on the SMC particles failed, so the SMC evidence "
        "is not cross-checked",
    )
    # SMC's error bar assumes the moves left independent particles at every temperature;
    # where they did not (its MAX_STEPS), a check that fails or disagrees leaves nothing
    # behind its ln z. Measured (2026-12-06, one-planet radial velocities, periods 2-100
    # d, 5 parameters): SMC 0.28-1.33 below the quadrature with +-0.06 in five runs, all
    # MAX_STEPS with a disagreeing or failed check; the harmonic mean on the same particles
    # within 0.27 of it. The reverse also happens: on the centred eight schools SMC was
    # right (+0.5 sigma) and the harmonic mean on its funnel-shaped particles was not
    DISAGREE_UNMIXED = (
        Severity.FAILURE,
        "failure: SMC's moves did not decorrelate at some temperature (max_mcmc_steps) and "
        "its evidence differs from the learned harmonic mean on its particles by more than 3 "
        "combined standard errors: one of the two is wrong, and SMC's error bar, which "
        "assumes independent particles, does not hold (measured: SMC was the wrong one on a "
        "radial-velocity posterior with separated modes, the harmonic mean on the centred "
        "eight schools); the harmonic mean's ln z is in report.evidence; raise "
        "num_particles and max_mcmc_steps, or compare with NUTS and bridge sampling",
    )
    UNCHECKED_UNMIXED = (
        Severity.FAILURE,
        "failure: SMC's moves did not decorrelate at some temperature (max_mcmc_steps) and "
        "the learned harmonic mean on its particles failed, so nothing checks SMC's ln z, "
        "whose error bar assumes independent particles; raise num_particles and "
        "max_mcmc_steps, or use NUTS",
    )


def cross_check_evidence(
    log_evidence: float,
    log_evidence_std: float,
    check_result: EvidenceResult,
    *,
    decorrelated: bool = True,
) -> EvidenceCrossCheck:
    """Compare an evidence with an independent estimate: within 3 combined errors or not.

    Args:
        log_evidence: The sampler's ``ln z``.
        log_evidence_std: Its standard error.
        check_result: The learned harmonic mean's :class:`~astrobayes.evidence.EvidenceResult`
            on the same run's draws.
        decorrelated: Whether the sampler's own error bar holds (SMC: its moves reached
            the decorrelation criterion at every temperature, no ``MAX_STEPS``).

    Returns:
        ``OK``, ``DISAGREE`` (a warning), or ``UNCHECKED`` when the check itself failed or
        either error is not finite; with ``decorrelated=False`` the last two are the
        failures ``DISAGREE_UNMIXED`` and ``UNCHECKED_UNMIXED``.

    Example:
        >>> from types import SimpleNamespace as R
        >>> from astrobayes.evidence import EvidenceStatus
        >>> lhm = R(log_evidence=-10.0, log_evidence_std=0.05, status=EvidenceStatus.OK)
        >>> cross_check_evidence(-10.1, 0.05, lhm).name, cross_check_evidence(-10.5, 0.05, lhm).name
        ('OK', 'DISAGREE')

    """
    combined = float(np.hypot(log_evidence_std, check_result.log_evidence_std))
    if check_result.status.is_failure or not np.isfinite(combined):
        return (
            EvidenceCrossCheck.UNCHECKED if decorrelated else EvidenceCrossCheck.UNCHECKED_UNMIXED
        )
    if abs(float(log_evidence) - float(check_result.log_evidence)) > 3.0 * combined:
        return EvidenceCrossCheck.DISAGREE if decorrelated else EvidenceCrossCheck.DISAGREE_UNMIXED
    return EvidenceCrossCheck.OK


def _gradient_evaluations(sampling) -> int | None:
    """NUTS' density-and-gradient evaluations over all chains, or ``None`` where not counted."""
    count = getattr(sampling, "num_gradient_evaluations", None)
    return None if count is None else int(np.sum(count))


class SMCSampling(NamedTuple):
    """An SMC run seen as chains: the particles split into pseudo-chains.

    Attributes:
        result: The :class:`~astrobayes.sampling.SMCResult` (particles, ``ln z``, tempering).
        samples: Unconstrained particles as ``(num_chains, num_per_chain, dim)``, consecutive
            groups of the (randomly permuted) final particles.
        log_density: Their log posterior (prior normalised), ``(num_chains, num_per_chain)``.
        rhat: NaN per parameter: R-hat is not defined for SMC particles.
        ess: NaN per parameter (see ``result.num_ancestors`` and the tempering ESS).
        num_divergent: Zeros (no Hamiltonian steps).
        resumed_from: Tempering steps found in the checkpoint the run resumed from (0 when
            it started afresh).
        cross_check: :class:`EvidenceCrossCheck` of SMC's ``ln z`` against the learned
            harmonic mean on the particles.
        status: The worse of ``result.status`` and ``cross_check``.

    """

    result: SMCResult
    samples: np.ndarray
    log_density: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray
    num_divergent: np.ndarray
    resumed_from: int
    cross_check: Status
    status: Status

    def to_chains(self) -> Chains:
        """The pseudo-chains as :class:`~astrobayes.chains.Chains`."""
        return Chains(self.samples, self.log_density, names=self.result.names)


class ModelReport(NamedTuple):
    """One model's result inside :class:`ComparisonResult`.

    Attributes:
        name: Model name.
        log_evidence: ``ln z`` (the learned harmonic mean's; SMC's own with SMC).
        log_evidence_std: Its standard error.
        evidence: The learned harmonic mean's :class:`~astrobayes.evidence.EvidenceResult`
            (with SMC: the cross-check on the particles).
        sampling: The :class:`~astrobayes.sampling.SamplingResult` of NUTS, the
            :class:`~astrobayes.sampling.FlowMCMCResult` of flow-enhanced MCMC, or the
            :class:`SMCSampling` of preconditioned SMC (unconstrained draws).
        posterior: ``{parameter: (num_chains, num_samples)}`` draws in the original space.
        posterior_mean: ``{parameter: mean}``.
        posterior_std: ``{parameter: standard deviation}``.
        rhat_max: Largest R-hat over parameters.
        ess_min: Smallest effective sample size over parameters.
        status: The worse of ``evidence.status`` and ``sampling.status`` (with SMC: of
            the SMC status and the evidence cross-check).
        evidence_method: ``"learned_harmonic_mean"``, ``"bridge_sampling"`` or ``"smc"``:
            where ``log_evidence`` comes from.
    """

    name: str
    log_evidence: float
    log_evidence_std: float
    evidence: EvidenceResult
    sampling: SamplingResult | FlowMCMCResult | SMCSampling
    posterior: dict[str, np.ndarray]
    posterior_mean: dict[str, float]
    posterior_std: dict[str, float]
    rhat_max: float
    ess_min: float
    status: Status
    evidence_method: str = "learned_harmonic_mean"


def sampler_name(report: ModelReport) -> str:
    """``"NUTS"``, ``"flow MCMC"`` or ``"SMC"``: the sampler of a model's report."""
    if isinstance(report.sampling, SMCSampling):
        return "SMC"
    return "flow MCMC" if isinstance(report.sampling, FlowMCMCResult) else "NUTS"


def _messages(result) -> tuple:
    """The statuses of a result that are not ok, most severe first.

    A result that keeps no ``messages`` gives its ``status`` alone; SMC gives its own
    messages and its evidence cross-check.
    """
    if isinstance(result, SMCSampling):
        messages = (*result.result.messages, result.cross_check)
    else:
        messages = getattr(result, "messages", None) or (result.status,)
    return tuple(m for m in messages if not m.is_ok)


class ComparisonResult(NamedTuple):
    """Result of :func:`compare`.

    Attributes:
        models: ``{name: ModelReport}`` in input order.
        reference: Name of the reference model.
        bayes_factors: ``{name: BayesFactor}`` of each model against the reference.
        status: The worst evidence or sampling status over all models.
    """

    models: dict[str, ModelReport]
    reference: str
    bayes_factors: dict[str, BayesFactor]
    status: Status

    def summary(self, max_parameters: int = 6) -> str:
        """The comparison as a text table (what ``astrobayes run`` prints).

        One row per model: ln z ± σ, ln B ± σ against the reference, the Jeffreys
        reading (Trotta 2008, arXiv:0803.4089) and posterior mean ± std of up to
        ``max_parameters`` parameters; then any status that is not ``ok``.
        ``print(result)`` prints the same.

        Args:
            max_parameters: Parameters shown per model (the rest are counted).

        Returns:
            The table.

        """
        reference = self.reference
        rows = [
            f"{'model':<9} {'ln z':>17} {'ln B vs ' + reference:>17}  "
            f"{'Jeffreys (Trotta 2008)':<32} posterior mean ± std"
        ]
        for name, report in self.models.items():
            bf = self.bayes_factors[name]
            names = sorted(report.posterior_mean)
            params = ", ".join(
                f"{k} = {report.posterior_mean[k]:.3f} ± {report.posterior_std[k]:.3f}"
                for k in names[:max_parameters]
            )
            if len(names) > max_parameters:
                params += f", ... ({len(names) - max_parameters} more)"
            rows.append(
                f"{name:<9} {report.log_evidence:>8.3f} ± {report.log_evidence_std:<6.3f} "
                f"{bf.log_bayes_factor:>8.3f} ± {bf.log_bayes_factor_std:<6.3f}  "
                f"{bf.reading:<32} {params}"
            )
            # every status raised, not only the worst: until 2026-12-06 the centred eight
            # schools printed its R-hat warning and hid 150 divergent transitions
            label = "harmonic-mean cross-check" if report.evidence_method == "smc" else "status"
            for message in _messages(report.evidence):
                rows.append(f"{'':<9} {label}: {message.value}")
            for message in _messages(report.sampling):
                text = message.value
                if message.name == "DIVERGENCES":
                    divergent = int(np.sum(report.sampling.num_divergent))
                    draws = int(np.prod(np.shape(report.sampling.samples)[:2]))
                    text = f"{text} ({divergent} in {draws} draws)"
                rows.append(f"{'':<9} {sampler_name(report)}: {text}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Summary of plain values (``models.<name>.log_evidence`` etc.).

        Statuses appear as lower-case names with a ``*_message`` beside them; non-finite
        numbers stay floats (``astrobayes.io.to_json`` writes them as ``null``).
        """
        out = {
            "reference": self.reference,
            "status": self.status.name.lower(),
            "status_message": self.status.value,
            "models": {},
        }
        for name, report in self.models.items():
            bf = self.bayes_factors[name]
            out["models"][name] = {
                "status": report.status.name.lower(),
                "status_message": report.status.value,
                "sampling_status": report.sampling.status.name.lower(),
                "sampling_status_message": report.sampling.status.value,
                "sampling_messages": [m.value for m in _messages(report.sampling)],
                "log_evidence": report.log_evidence,
                "log_evidence_std": report.log_evidence_std,
                "evidence_method": report.evidence_method,
                "log_bayes_factor_vs_reference": bf.log_bayes_factor,
                "log_bayes_factor_std": bf.log_bayes_factor_std,
                "jeffreys": bf.reading,
                "posterior_mean": report.posterior_mean,
                "posterior_std": report.posterior_std,
                "rhat_max": report.rhat_max,
                "ess_min": report.ess_min,
                "num_divergent": int(report.sampling.num_divergent.sum()),
                "num_gradient_evaluations": _gradient_evaluations(report.sampling),
                "num_computed_evaluations": getattr(
                    report.sampling, "num_computed_evaluations", None
                ),
                "evidence": report.evidence.to_dict(),
            }
            if isinstance(report.sampling, SMCSampling):
                smc = report.sampling.result
                out["models"][name]["smc"] = {
                    "status": smc.status.name.lower(),
                    "status_message": smc.status.value,
                    "cross_check": report.sampling.cross_check.name.lower(),
                    "cross_check_message": report.sampling.cross_check.value,
                    "num_temperatures": int(smc.temperatures.size - 1),
                    "num_ancestors": smc.num_ancestors,
                    "num_logdensity_evaluations": smc.num_logdensity_evaluations,
                    "acceptance": [float(a) for a in smc.acceptance],
                }
        return out


def compare(
    key: PRNGKeyArray,
    models: Sequence[Model],
    *,
    reference: str | None = None,
    sampling: NUTSConfig
    | FlowMCMCConfig
    | SMCConfig
    | Mapping[str, NUTSConfig | FlowMCMCConfig | SMCConfig]
    | None = None,
    target: TargetFamily | None = None,
    checkpoint_fn: Callable[[str], Checkpoint] | None = None,
    progress_fn_for: Callable[[str], ProgressFn] | None = None,
    num_workers: int | None = None,
    evidence_method: str = "learned_harmonic_mean",
    throw: bool = False,
) -> ComparisonResult:
    """Sample each model with NUTS, estimate its evidence and compare to a reference.

    Args:
        key: JAX PRNG key; model ``i`` uses ``fold_in(key, i)``.
        models: Models with distinct names.
        reference: Name of the reference model (default: the first).
        sampling: NUTS settings (defaults when ``None``), or a
            :class:`~astrobayes.sampling.FlowMCMCConfig` to sample every model with
            flow-enhanced MCMC (MALA plus global flow proposals; for posteriors with
            separated modes, whose weights NUTS cannot set). Chains start uniformly in
            ``(-2, 2)`` on the unconstrained space, as NUTS's do. Or an
            :class:`~astrobayes.sampling.SMCConfig`: preconditioned tempered SMC from
            prior draws, whose own ``ln z`` is reported and cross-checked by the learned
            harmonic mean on the particles (split into pseudo-chains of
            ``SMC_PARTICLES_PER_CHAIN``); checkpointed after every temperature. Or a
            mapping ``{name: settings}`` with one entry per model, for models that need
            different settings (a 2-parameter model and a 30-parameter one rarely want
            the same warm-up or metric).
        target: Importance target family for the evidence (default RQ-spline flow).
        checkpoint_fn: ``name -> Checkpoint`` for resumable sampling.
        progress_fn_for: ``name -> progress_fn``: the progress callback of one model,
            called as ``progress_fn(stage, done, total)`` with stage ``"warmup"``,
            ``"sampling"`` or ``"training"`` (the evidence flow); with several workers
            the callbacks are called from their threads, models interleaved.
        num_workers: Models processed side by side in threads (compilation and XLA
            execution release the GIL); default ``min(len(models), os.cpu_count())``.
            Results do not depend on it: model ``i`` always uses ``fold_in(key, i)``.
        evidence_method: ``"learned_harmonic_mean"`` (default: from the chains alone)
            or ``"bridge_sampling"``: bridge sampling between the chains and the same
            learned target (:func:`~astrobayes.evidence.bridge_estimate`), which also
            evaluates the model at draws of the target; its terms are bounded, so it
            keeps a finite variance where the harmonic mean's ratios are heavy-tailed (in
            30 dimensions, docs/evidence.md). Not with SMC, which reports its own ``ln z``.
        throw: Raise :class:`~astrobayes.UnreliableResultError` (carrying the result)
            when the worst status of a model is a failure.

    Returns:
        :class:`ComparisonResult` with its ``status``.

    Raises:
        ValueError: On an empty model list, duplicate names, an unknown reference or a
            bad ``num_workers``.
        UnreliableResultError: With ``throw=True`` and a failure status.

    Example:
        >>> import jax, numpyro.distributions as dist
        >>> from astrobayes.models import Model
        >>> a = Model.from_priors("a", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Normal(0, 1)})
        >>> b = Model.from_priors("b", lambda p: -0.5 * (p["x"] - 2) ** 2, {"x": dist.Normal(0, 1)})
        >>> from astrobayes.evidence import GaussianTarget
        >>> out = compare(jax.random.key(0), [a, b], sampling=NUTSConfig(2, 100, 300),
        ...               target=GaussianTarget(), num_workers=1)
        >>> bool(out.bayes_factors["b"].log_bayes_factor < 0)
        True
    """
    check_key(key)
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one Model; got none")
    for model in models:
        if not isinstance(model, Model):
            raise TypeError(f"models must be astrobayes Model objects; got {type(model).__name__}")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be distinct; got {names}")
    reference = names[0] if reference is None else reference
    if reference not in names:
        raise ValueError(f"reference must be one of {names}; got {reference!r}")
    settings = _settings_per_model(sampling, names)

    num_workers = _check_workers(num_workers, len(models))
    if evidence_method not in EVIDENCE_METHODS:
        raise ValueError(
            f"evidence_method must be one of {list(EVIDENCE_METHODS)}; got {evidence_method!r}"
        )
    if evidence_method == "bridge_sampling" and any(
        isinstance(s, SMCConfig) for s in settings.values()
    ):
        raise ValueError(
            'evidence_method = "bridge_sampling" needs NUTS or flow-MCMC chains; SMC reports its own '
            "ln z (cross-checked by the harmonic mean)"
        )

    for model in models:  # every model's code, traced before any is sampled
        check_model(model)

    def run_model(index: int, model: Model) -> ModelReport:
        return _run_model(
            jax.random.fold_in(key, index),
            model,
            settings[model.name],
            target,
            checkpoint_fn,
            progress_fn_for,
            evidence_method,
        )

    if num_workers == 1:
        outcomes = [run_model(i, m) for i, m in enumerate(models)]
    else:
        outcomes = _run_in_threads(run_model, list(enumerate(models)), num_workers)
    reports = {report.name: report for report in outcomes}
    ref = reports[reference]
    factors = {name: log_bayes_factor(rep, ref, name, reference) for name, rep in reports.items()}
    result = ComparisonResult(
        models=reports,
        reference=reference,
        bayes_factors=factors,
        status=worst(report.status for report in reports.values()),
    )
    return check(result, throw)


def _settings_per_model(sampling, names: list[str]) -> dict:
    """``{name: settings}`` from one setting for all models or a mapping with one per model."""
    kinds = NUTSConfig | FlowMCMCConfig | SMCConfig
    if sampling is None or isinstance(sampling, kinds):
        return dict.fromkeys(names, NUTSConfig() if sampling is None else sampling)
    if not isinstance(sampling, Mapping):
        raise TypeError(
            "sampling must be a NUTSConfig, a FlowMCMCConfig, an SMCConfig or a mapping "
            f"{{model name: one of those}}; got {type(sampling).__name__}"
        )
    for name, setting in sampling.items():
        if not isinstance(setting, kinds):
            raise TypeError(
                f"sampling[{name!r}] must be a NUTSConfig, a FlowMCMCConfig or an SMCConfig; "
                f"got {type(setting).__name__}"
            )
    if set(sampling) != set(names):
        raise ValueError(
            f"sampling as a mapping needs one entry per model: expected keys {names}; got "
            f"{list(sampling)}"
        )
    return {name: sampling[name] for name in names}


def _harmonic(key, chains, density, target, progress_fn) -> EvidenceResult:
    del density
    return estimate(key, chains, target=target, progress_fn=progress_fn)


def _bridge(key, chains, density, target, progress_fn) -> EvidenceResult:
    return bridge_estimate(
        key, chains, density.logdensity_fn, target=target, progress_fn=progress_fn
    )


#: ``compare(evidence_method=...)`` -> ``(key, chains, density, target, progress_fn)``.
_ESTIMATORS = {"learned_harmonic_mean": _harmonic, "bridge_sampling": _bridge}
#: Evidence estimators for NUTS and flow-MCMC chains (``compare(evidence_method=...)``).
EVIDENCE_METHODS = tuple(_ESTIMATORS)


def _run_model(
    key,
    model: Model,
    sampling,
    target,
    checkpoint_fn,
    progress_fn_for,
    evidence_method="learned_harmonic_mean",
) -> ModelReport:
    if isinstance(sampling, SMCConfig):
        return _run_model_smc(key, model, sampling, target, checkpoint_fn, progress_fn_for)
    init_key, nuts_key, evidence_key = jax.random.split(key, 3)
    density = unconstrained_density(init_key, model, sampling.num_chains)
    ckpt = checkpoint_fn(model.name) if checkpoint_fn is not None else None
    progress_fn = progress_fn_for(model.name) if progress_fn_for is not None else None
    sampler = run_flow_mcmc if isinstance(sampling, FlowMCMCConfig) else run_nuts
    run = sampler(
        nuts_key,
        density.logdensity_fn,
        density.initial_positions,
        config=sampling,
        names=density.names,
        checkpoint=ckpt,
        progress_fn=progress_fn,
    )
    estimator = _ESTIMATORS[evidence_method]
    result = estimator(evidence_key, run.to_chains(), density, target, progress_fn)
    return _report(
        model.name,
        density,
        run,
        result,
        method=evidence_method,
        log_evidence=(result.log_evidence, result.log_evidence_std),
        rhat_max=float(np.nanmax(run.rhat)),
        ess_min=float(np.nanmin(run.ess)),
        status=worst([result.status, run.status]),
    )


def _scalar_columns(posterior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{name: (num_chains, num_samples)}``: a vector site ``x`` becomes ``x[0]``, ``x[1]``...

    The elements in C order, named as :attr:`UnconstrainedDensity.names` names them (until
    2026-12-06 vector sites were dropped: a NumPyro model with a vector parameter had no
    posterior summary and no chain files).
    """
    columns = {}
    for name, draws in posterior.items():
        draws = np.asarray(draws)
        if draws.ndim == 2:
            columns[name] = draws
            continue
        flat = draws.reshape(*draws.shape[:2], -1)
        for i in range(flat.shape[-1]):
            columns[f"{name}[{i}]"] = flat[..., i]
    return columns


def _report(
    name, density, run, evidence, *, log_evidence, rhat_max, ess_min, status, method=None
) -> ModelReport:
    """A model's report: its draws mapped back to the original space and summarised."""
    posterior = _scalar_columns(constrained_samples(density, run.samples))
    extra = {} if method is None else {"evidence_method": method}
    return ModelReport(
        name=name,
        log_evidence=log_evidence[0],
        log_evidence_std=log_evidence[1],
        evidence=evidence,
        sampling=run,
        posterior=posterior,
        posterior_mean={k: float(v.mean()) for k, v in posterior.items()},
        posterior_std={k: float(v.std()) for k, v in posterior.items()},
        rhat_max=rhat_max,
        ess_min=ess_min,
        status=status,
        **extra,
    )


def _run_model_smc(
    key, model: Model, config: SMCConfig, target, checkpoint_fn, progress_fn_for
) -> ModelReport:
    """Preconditioned SMC from prior draws; SMC's ``ln z``, cross-checked on the particles."""
    init_key, smc_key, evidence_key = jax.random.split(key, 3)
    density = unconstrained_density(init_key, model, 1)
    split = unconstrained_prior(
        jax.random.fold_in(init_key, 1), model, config.num_particles, density
    )
    progress_fn = progress_fn_for(model.name) if progress_fn_for is not None else None
    result = run_smc(
        smc_key,
        split.log_likelihood_fn,
        split.log_prior_fn,
        split.draws,
        config=config,
        names=density.names,
        checkpoint=checkpoint_fn(model.name) if checkpoint_fn is not None else None,
        progress_fn=progress_fn,
    )
    num_chains = max(2, result.samples.shape[0] // SMC_PARTICLES_PER_CHAIN)
    per_chain = result.samples.shape[0] // num_chains
    particles = result.samples[: num_chains * per_chain]
    # SMC's own ln L of its particles plus their ln prior: the likelihood is not called
    # again (one call per particle, which a slow Python likelihood pays in full)
    log_prior = batched_logdensity(split.log_prior_fn)(
        jax.numpy.asarray(particles, jax.numpy.result_type(float))
    )
    log_density = result.log_likelihood[: particles.shape[0]] + np.asarray(log_prior, np.float64)
    dim = particles.shape[1]
    chains = Chains(
        particles.reshape(num_chains, per_chain, dim),
        log_density.reshape(num_chains, per_chain),
        names=density.names,
    )
    lhm = estimate(evidence_key, chains, target=target, progress_fn=progress_fn)
    cross = cross_check_evidence(
        result.log_evidence,
        result.log_evidence_std,
        lhm,
        decorrelated=SMCStatus.MAX_STEPS not in result.messages,
    )
    run = SMCSampling(
        result=result,
        samples=chains.samples,
        log_density=chains.log_posterior,
        rhat=np.full(dim, np.nan),
        ess=np.full(dim, np.nan),
        num_divergent=np.zeros(num_chains, int),
        resumed_from=result.resumed_from,
        cross_check=cross,
        status=worst([result.status, cross]),
    )
    return _report(
        model.name,
        density,
        run,
        lhm,
        log_evidence=(result.log_evidence, result.log_evidence_std),
        rhat_max=float("nan"),
        ess_min=float("nan"),
        status=run.status,
        method="smc",
    )


def _check_workers(num_workers, num_models: int) -> int:
    if num_workers is None:
        return max(1, min(num_models, os.cpu_count() or 1))
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive integer or None; got {num_workers!r}")
    return min(num_workers, num_models)


def _run_in_threads(fn, items, num_workers: int) -> list:
    """``[fn(*item) for item in items]`` on ``num_workers`` daemon threads, in input order.

    XLA compilation and execution release the GIL, so models compile and sample side by
    side. Daemon threads (not a ``ThreadPoolExecutor``) let Ctrl-C end the process at once;
    checkpoints are written atomically, so nothing is lost. The first error is re-raised.
    """
    results: list = [None] * len(items)
    errors: list[BaseException] = []
    queue = list(enumerate(items))
    lock = threading.Lock()

    def worker():
        while not errors:
            with lock:
                if not queue:
                    return
                position, item = queue.pop(0)
            try:
                results[position] = fn(*item)
            except BaseException as error:  # re-raised in the calling thread
                errors.append(error)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(num_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)
    if errors:
        raise errors[0]
    return results
