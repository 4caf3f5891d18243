"""Accelerated model comparison: NUTS on each model, then the learned harmonic mean.

``compare(key, models)`` samples each :class:`~astrobayes.models.Model` on its
unconstrained space (log density with the Jacobian, so the evidence is the original
model's), estimates each evidence from the chains, and returns ``ln z +/- sigma`` per model,
``ln B +/- sigma`` against a reference model, posterior summaries and diagnostics.

References:
    Piras, Polanska, Spurio Mancini, Price & McEwen (2024), arXiv:2405.12965;
    McEwen et al. (2021), arXiv:2111.12720.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from astrobayes._checks import check_key
from astrobayes.evidence import BayesFactor, EvidenceResult, estimate, log_bayes_factor
from astrobayes.evidence.targets import TargetFamily
from astrobayes.models.model import Model, constrained_samples, unconstrained_density
from astrobayes.sampling import Checkpoint, NUTSConfig, SamplingResult, run_nuts


class ModelReport(NamedTuple):
    """One model's result inside :class:`ComparisonResult`.

    Attributes:
        name: Model name.
        log_evidence: ``ln z``.
        log_evidence_std: Its standard error.
        evidence: The full :class:`~astrobayes.evidence.EvidenceResult`.
        sampling: The :class:`~astrobayes.sampling.SamplingResult` (unconstrained draws).
        posterior: ``{parameter: (num_chains, num_samples)}`` draws in the original space.
        posterior_mean: ``{parameter: mean}``.
        posterior_std: ``{parameter: standard deviation}``.
        rhat_max: Largest R-hat over parameters.
        ess_min: Smallest effective sample size over parameters.
    """

    name: str
    log_evidence: float
    log_evidence_std: float
    evidence: EvidenceResult
    sampling: SamplingResult
    posterior: dict[str, np.ndarray]
    posterior_mean: dict[str, float]
    posterior_std: dict[str, float]
    rhat_max: float
    ess_min: float


class ComparisonResult(NamedTuple):
    """Result of :func:`compare`.

    Attributes:
        models: ``{name: ModelReport}`` in input order.
        reference: Name of the reference model.
        bayes_factors: ``{name: BayesFactor}`` of each model against the reference.
    """

    models: dict[str, ModelReport]
    reference: str
    bayes_factors: dict[str, BayesFactor]

    def to_dict(self) -> dict:
        """JSON-friendly summary (``models.<name>.log_evidence`` etc.)."""
        out = {"reference": self.reference, "models": {}}
        for name, report in self.models.items():
            bf = self.bayes_factors[name]
            out["models"][name] = {
                "log_evidence": report.log_evidence,
                "log_evidence_std": report.log_evidence_std,
                "log_bayes_factor_vs_reference": bf.log_bayes_factor,
                "log_bayes_factor_std": bf.log_bayes_factor_std,
                "jeffreys": bf.reading,
                "posterior_mean": report.posterior_mean,
                "posterior_std": report.posterior_std,
                "rhat_max": report.rhat_max,
                "ess_min": report.ess_min,
                "num_divergent": int(report.sampling.num_divergent.sum()),
                "evidence": report.evidence.to_dict(),
            }
        return out


def compare(
    key: jax.Array,
    models: Sequence[Model],
    *,
    reference: str | None = None,
    sampling: NUTSConfig | None = None,
    target: TargetFamily | None = None,
    checkpoint_fn: Callable[[str], Checkpoint] | None = None,
    progress_fn: Callable[[str, str, int, int], None] | None = None,
    num_workers: int | None = None,
) -> ComparisonResult:
    """Sample each model with NUTS, estimate its evidence and compare to a reference.

    Args:
        key: JAX PRNG key; model ``i`` uses ``fold_in(key, i)``.
        models: Models with distinct names.
        reference: Name of the reference model (default: the first).
        sampling: NUTS settings (defaults when ``None``).
        target: Importance target family for the evidence (default RQ-spline flow).
        checkpoint_fn: ``name -> Checkpoint`` for resumable sampling.
        progress_fn: ``progress_fn(model, stage, done, total)`` with stage ``"warmup"``,
            ``"sampling"`` or ``"evidence"``; with several workers it is called from
            their threads, models interleaved.
        num_workers: Models processed side by side in threads (compilation and XLA
            execution release the GIL); default ``min(len(models), os.cpu_count())``.
            Results do not depend on it: model ``i`` always uses ``fold_in(key, i)``.

    Returns:
        :class:`ComparisonResult`.

    Raises:
        ValueError: On an empty model list, duplicate names, an unknown reference or a
            bad ``num_workers``.

    Example:
        >>> import jax, numpyro.distributions as dist
        >>> from astrobayes.models import Model
        >>> a = Model.from_priors("a", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Normal(0, 1)})
        >>> b = Model.from_priors("b", lambda p: -0.5 * (p["x"] - 2) ** 2, {"x": dist.Normal(0, 1)})
        >>> out = compare(jax.random.key(0), [a, b], sampling=NUTSConfig(4, 200, 500))
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
    sampling = NUTSConfig() if sampling is None else sampling

    num_workers = _check_workers(num_workers, len(models))

    def run_model(index: int, model: Model) -> ModelReport:
        return _run_model(
            jax.random.fold_in(key, index), model, sampling, target, checkpoint_fn, progress_fn
        )

    if num_workers == 1:
        outcomes = [run_model(i, m) for i, m in enumerate(models)]
    else:
        outcomes = _run_in_threads(run_model, list(enumerate(models)), num_workers)
    reports = {report.name: report for report in outcomes}
    ref = reports[reference]
    factors = {name: log_bayes_factor(rep, ref, name, reference) for name, rep in reports.items()}
    return ComparisonResult(reports, reference, factors)


def _run_model(key, model: Model, sampling, target, checkpoint_fn, progress_fn) -> ModelReport:
    init_key, nuts_key, evidence_key = jax.random.split(key, 3)
    density = unconstrained_density(init_key, model, sampling.num_chains)
    ckpt = checkpoint_fn(model.name) if checkpoint_fn is not None else None

    def nuts_progress(stage, done, total):
        if progress_fn is not None:
            progress_fn(model.name, stage, done, total)

    run = run_nuts(
        nuts_key,
        density.logdensity_fn,
        density.initial_positions,
        config=sampling,
        names=density.names,
        checkpoint=ckpt,
        progress_fn=nuts_progress,
    )

    def evidence_progress(epoch, total, _loss):
        if progress_fn is not None:
            progress_fn(model.name, "evidence", epoch, total)

    result = estimate(evidence_key, run.to_chains(), target=target, progress_fn=evidence_progress)
    posterior = constrained_samples(density, run.samples)
    posterior = {k: v for k, v in posterior.items() if v.ndim == 2}
    return ModelReport(
        name=model.name,
        log_evidence=result.log_evidence,
        log_evidence_std=result.log_evidence_std,
        evidence=result,
        sampling=run,
        posterior=posterior,
        posterior_mean={k: float(v.mean()) for k, v in posterior.items()},
        posterior_std={k: float(v.std()) for k, v in posterior.items()},
        rhat_max=float(np.nanmax(run.rhat)),
        ess_min=float(np.nanmin(run.ess)),
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
