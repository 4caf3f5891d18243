"""Tests of astrobayes.comparison.compare on models with analytic evidences."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from flowjax.bijections import Affine
from jax.scipy.stats import norm

from astrobayes._status import UnreliableResultError, worst
from astrobayes.comparison import (
    EvidenceCrossCheck,
    SMCSampling,
    compare,
    cross_check_evidence,
)
from astrobayes.evidence import EvidenceStatus, GaussianTarget, TargetFamily
from astrobayes.io import to_json
from astrobayes.io.checkpoint import NpzCheckpoint
from astrobayes.models import Model
from astrobayes.sampling import (
    FlowMCMCConfig,
    FlowMCMCResult,
    NUTSConfig,
    SamplingStatus,
    SMCConfig,
)

Y = 1.0  # one datum, y ~ N(x, 1)


def _model(name: str, prior_mean: float) -> Model:
    return Model.from_priors(
        name, lambda p: norm.logpdf(Y, p["x"], 1.0), {"x": dist.Normal(prior_mean, 1.0)}
    )


def _log_evidence(prior_mean: float) -> float:
    # y ~ N(prior_mean, 1 + 1)
    return float(-0.25 * (Y - prior_mean) ** 2 - 0.5 * np.log(4 * np.pi))


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


@dataclass(frozen=True)
class _WideTarget(TargetFamily):
    """A deliberately wrong target, 4 sqrt(T) times wider than the posterior."""

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):
        dim = z_train.shape[1]
        return Affine(jnp.zeros(dim), 4.0 * jnp.ones(dim)), np.zeros(0)


def test_compare_throw_on_a_failed_evidence(key):
    # A target much wider than the posterior: an evidence failure (heavy-tailed ratios or
    # target mass far outside the draws), which is the comparison's status.
    config = NUTSConfig(num_chains=2, num_warmup=20, num_samples=200, checkpoint_every=200)
    with pytest.raises(UnreliableResultError, match=r"EvidenceStatus\.\w+: failure") as info:
        compare(key, [_model("a", 0.0)], sampling=config, target=_WideTarget(), throw=True)
    result = info.value.result
    evidence_status = result.models["a"].evidence.status
    assert isinstance(evidence_status, EvidenceStatus)
    assert evidence_status.is_failure
    assert result.status is evidence_status
    assert result.models["a"].status is evidence_status
    assert not result.models["a"].sampling.status.is_failure


def test_compare_validation(key):
    a = _model("a", 0.0)
    with pytest.raises(ValueError, match="at least one Model"):
        compare(key, [])
    with pytest.raises(ValueError, match="model names must be distinct"):
        compare(key, [a, _model("a", 1.0)])
    with pytest.raises(ValueError, match=r"reference must be one of \['a'\]; got 'b'"):
        compare(key, [a], reference="b")
    with pytest.raises(TypeError, match="must be astrobayes Model objects; got function"):
        compare(key, [a, lambda: None])
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        compare(3, [a])
    with pytest.raises(ValueError, match="num_workers must be a positive integer or None; got 0"):
        compare(key, [a], num_workers=0)
    with pytest.raises(
        TypeError, match="sampling must be a NUTSConfig, a FlowMCMCConfig, an SMCConfig or a"
    ):
        compare(key, [a], sampling=[NUTSConfig()])
    with pytest.raises(TypeError, match=r"sampling\['num_chains'\] must be a NUTSConfig"):
        compare(key, [a], sampling={"num_chains": 4})
    with pytest.raises(
        ValueError, match=r"one entry per model: expected keys \['a'\]; got \['b'\]"
    ):
        compare(key, [a], sampling={"b": NUTSConfig()})
    with pytest.raises(ValueError, match="needs NUTS or flow-MCMC chains"):
        compare(key, [a], sampling={"a": SMCConfig()}, evidence_method="bridge_sampling")


def test_compare_takes_settings_per_model(key):
    # Each model runs with its own entry of the mapping: bit for bit what it gets when
    # those settings are given to all models (model i keeps fold_in(key, i)). Control:
    # the other model's settings give other draws.
    models = [_model("a", 0.0), _model("b", 1.0)]
    small = NUTSConfig(num_chains=2, num_warmup=30, num_samples=60, checkpoint_every=60)
    dense = NUTSConfig(
        num_chains=2, num_warmup=40, num_samples=80, checkpoint_every=80, dense_mass=True
    )
    mixed = compare(
        key, models, sampling={"b": dense, "a": small}, target=GaussianTarget(), num_workers=1
    )
    assert mixed.models["a"].sampling.samples.shape[:2] == (2, 60)
    assert mixed.models["b"].sampling.samples.shape[:2] == (2, 80)
    alone = compare(key, models, sampling=dense, target=GaussianTarget(), num_workers=1)
    np.testing.assert_array_equal(
        mixed.models["b"].sampling.samples, alone.models["b"].sampling.samples
    )
    assert mixed.models["b"].log_evidence == alone.models["b"].log_evidence
    assert alone.models["a"].sampling.samples.shape[:2] == (2, 80)  # control: not a's own
    # print(result): the table astrobayes run prints, one row per model
    text = str(mixed)
    assert text == mixed.summary()
    assert text.splitlines()[0].split()[:4] == ["model", "ln", "z", "ln"]
    row = next(line for line in text.splitlines() if line.startswith("b "))
    assert f"{mixed.models['b'].log_evidence:.3f} ± {mixed.models['b'].log_evidence_std:.3f}" in row
    names = sorted(mixed.models["b"].posterior_mean)
    assert f"{names[0]} = " in row
    assert f"... ({len(names)} more)" in mixed.summary(max_parameters=0)
    # every status a sampler raised is printed, with the divergences counted (not only
    # the worst: R-hat alone hid the divergences until 2026-12-06)
    from astrobayes.sampling import SamplingStatus

    report = mixed.models["b"]
    troubled = report.sampling._replace(
        status=SamplingStatus.HIGH_RHAT,
        messages=(SamplingStatus.HIGH_RHAT, SamplingStatus.DIVERGENCES),
        num_divergent=np.array([30, 40]),
    )
    shown = mixed._replace(models={**mixed.models, "b": report._replace(sampling=troubled)})
    lines = shown.summary().splitlines()
    assert f"          NUTS: {SamplingStatus.HIGH_RHAT.value}" in lines
    assert f"          NUTS: {SamplingStatus.DIVERGENCES.value} (70 in 160 draws)" in lines
    assert shown.to_dict()["models"]["b"]["sampling_messages"] == [
        SamplingStatus.HIGH_RHAT.value,
        SamplingStatus.DIVERGENCES.value,
    ]
    assert "(70 in 160 draws)" not in text  # control: the count is the sampler's
    evidence = mixed.models["b"].evidence
    assert str(evidence) == evidence.summary()
    assert str(evidence).startswith(
        f"ln z = {evidence.log_evidence:.4f} ± {evidence.log_evidence_std:.4f}\nstatus: "
    )


def test_compare_with_bridge_sampling_finds_the_analytic_evidence(key):
    # Same chains, two estimators: both within 4 sigma of the exact ln z; the report says
    # which one it used. Negative control: a 0.3-nat shift of the truth is rejected.
    config = NUTSConfig(num_chains=4, num_warmup=100, num_samples=500, checkpoint_every=500)
    model = _model("far", 4.0)
    bridge = compare(
        key, [model], sampling=config, target=GaussianTarget(), evidence_method="bridge_sampling"
    ).models["far"]
    assert bridge.evidence_method == "bridge_sampling"
    assert bridge.evidence.method == "bridge"
    assert not bridge.status.is_failure
    truth = _log_evidence(4.0)
    assert 0 < bridge.log_evidence_std < 0.05
    assert abs(bridge.log_evidence - truth) < 4 * bridge.log_evidence_std
    assert abs(bridge.log_evidence - (truth + 0.3)) > 4 * bridge.log_evidence_std
    harmonic = compare(key, [model], sampling=config, target=GaussianTarget()).models["far"]
    assert harmonic.evidence_method == "learned_harmonic_mean"
    np.testing.assert_array_equal(harmonic.sampling.samples, bridge.sampling.samples)


def test_compare_rejects_unknown_evidence_methods(key):
    a = _model("a", 0.0)
    with pytest.raises(ValueError, match="evidence_method must be one of"):
        compare(key, [a], evidence_method="nested")
    with pytest.raises(ValueError, match="needs NUTS or flow-MCMC chains"):
        compare(key, [a], sampling=SMCConfig(), evidence_method="bridge_sampling")


@pytest.mark.slow
def test_threads_do_not_change_the_result(key):
    # Models in threads (NumPyro tracing serialised) give bitwise the sequential answer.
    models = [_model("near", 0.0), _model("far", 4.0)]
    config = NUTSConfig(num_chains=2, num_warmup=50, num_samples=200, checkpoint_every=100)
    one = compare(key, models, sampling=config, target=GaussianTarget(), num_workers=1)
    two = compare(key, models, sampling=config, target=GaussianTarget(), num_workers=2)
    for name in ("near", "far"):
        np.testing.assert_array_equal(
            one.models[name].sampling.samples, two.models[name].sampling.samples
        )
        assert one.models[name].log_evidence == two.models[name].log_evidence


@pytest.mark.slow
def test_compare_two_models_with_analytic_evidence(key, tmp_path):
    models = [_model("near", 0.0), _model("far", 4.0)]
    config = NUTSConfig(num_chains=4, num_warmup=200, num_samples=1000, checkpoint_every=500)
    stages = set()
    result = compare(
        key,
        models,
        sampling=config,
        target=GaussianTarget(),
        checkpoint_fn=lambda name: NpzCheckpoint(tmp_path / f"{name}.npz"),
        progress_fn_for=lambda model: lambda stage, done, total: stages.add((model, stage)),
    )
    assert result.reference == "near"
    assert list(result.models) == ["near", "far"]
    for name, prior_mean in (("near", 0.0), ("far", 4.0)):
        report = result.models[name]
        assert 0 < report.log_evidence_std < 0.05
        pull = (report.log_evidence - _log_evidence(prior_mean)) / report.log_evidence_std
        assert abs(pull) <= 4.5, (name, report.log_evidence, report.log_evidence_std)
        assert report.rhat_max < 1.05
        assert report.posterior["x"].shape == (4, 1000)
        # posterior of x: N((prior_mean + y) / 2, 1/2)
        assert abs(report.posterior_mean["x"] - 0.5 * (prior_mean + Y)) < 0.1
    bf = result.bayes_factors["far"]
    truth = _log_evidence(4.0) - _log_evidence(0.0)  # = -2
    assert bf.log_bayes_factor < 0
    assert abs(bf.log_bayes_factor - truth) <= 4.5 * bf.log_bayes_factor_std
    assert bf.reading == "weak evidence for near"
    assert result.bayes_factors["near"].log_bayes_factor == 0.0
    assert {("near", "warmup"), ("far", "sampling")} <= stages
    assert not result.status.is_failure
    for report in result.models.values():
        assert report.status is worst([report.evidence.status, report.sampling.status])
    assert result.status is worst(r.status for r in result.models.values())
    payload = json.loads(to_json(result.to_dict()), parse_constant=_reject_constant)
    assert payload["models"]["far"]["jeffreys"] == "weak evidence for near"
    assert payload["status"] == result.status.name.lower()
    assert payload["models"]["far"]["sampling_status_message"] == (
        result.models["far"].sampling.status.value
    )
    # NUTS' cost in density-and-gradient evaluations: one or more per transition
    gradients = payload["models"]["far"]["num_gradient_evaluations"]
    assert gradients == int(result.models["far"].sampling.num_gradient_evaluations.sum())
    assert gradients >= 4 * (200 + 1000)
    computed = payload["models"]["far"]["num_computed_evaluations"]
    assert computed == result.models["far"].sampling.num_computed_evaluations >= gradients

    # Run again: every model resumes from its finished checkpoint, same numbers.
    again = compare(
        key,
        models,
        sampling=config,
        target=GaussianTarget(),
        checkpoint_fn=lambda name: NpzCheckpoint(tmp_path / f"{name}.npz"),
    )
    for name in ("near", "far"):
        assert again.models[name].sampling.resumed_from == 1000
        assert again.models[name].log_evidence == result.models[name].log_evidence


#: Two separated modes in x (weights 0.75 at -3, 0.25 at +3, unit width) under a
#: Uniform(-8, 8) prior on (x, y) with y ~ N(0, 1) in the likelihood: ln z = -ln 256 to
#: within the prior truncation (< 1e-6).
def _bimodal_model(name: str) -> Model:
    def loglike(p):
        modes = jnp.stack(
            [
                jnp.log(0.75) + norm.logpdf(p["x"], -3.0, 1.0),
                jnp.log(0.25) + norm.logpdf(p["x"], 3.0, 1.0),
            ]
        )
        return jax.scipy.special.logsumexp(modes) + norm.logpdf(p["y"], 0.0, 1.0)

    return Model.from_priors(
        name, loglike, {"x": dist.Uniform(-8.0, 8.0), "y": dist.Uniform(-8.0, 8.0)}
    )


@pytest.mark.slow
def test_compare_with_flow_mcmc_recovers_mode_weights_and_evidence(key):
    """Flow MCMC inside compare: weights and ln z against truth; NUTS alone fails (status)."""
    model = _bimodal_model("bimodal")
    flow = FlowMCMCConfig(
        num_chains=16,
        num_loops_training=3,
        num_loops_production=20,
        num_epochs=10,
        flow_layers=2,
        nn_width=16,
        max_flow_samples=4000,
    )
    out = compare(key, [model], sampling=flow, num_workers=1)
    report = out.models["bimodal"]
    assert isinstance(report.sampling, FlowMCMCResult)
    share = np.mean(report.posterior["x"] < 0, axis=1)  # per chain
    share_error = share.std(ddof=1) / np.sqrt(share.size)
    assert abs(share.mean() - 0.75) < 4 * share_error + 0.02, (share.mean(), share_error)
    truth = -np.log(256.0)
    assert abs(report.log_evidence - truth) < 4 * report.log_evidence_std + 0.02, (
        report.log_evidence,
        report.log_evidence_std,
    )
    assert report.rhat_max < 1.05
    assert out.to_dict()["models"]["bimodal"]["num_divergent"] == 0

    # Negative control: NUTS alone, same chains and starts, keeps each chain in its basin.
    nuts = compare(key, [model], sampling=NUTSConfig(16, 200, 300), num_workers=1)
    assert nuts.models["bimodal"].sampling.status is SamplingStatus.NOT_CONVERGED
    assert not nuts.status.is_ok


# ------------------------------------------------------------------------- preconditioned SMC


def test_compare_with_smc_reports_its_evidence_and_the_cross_check(key):
    """SMC inside compare on an analytic model: its own ln z within 4 errors of the
    truth, the learned harmonic mean on the particles as the cross-check, files' fields."""
    config = SMCConfig(num_particles=400, preconditioner="diagonal")
    out = compare(key, [_model("b", 2.0)], sampling=config, target=GaussianTarget(), num_workers=1)
    for name, prior_mean in (("b", 2.0),):
        report = out.models[name]
        assert isinstance(report.sampling, SMCSampling)
        assert report.evidence_method == "smc"
        assert report.log_evidence == report.sampling.result.log_evidence
        truth = _log_evidence(prior_mean)
        assert abs(report.log_evidence - truth) < 4 * report.log_evidence_std, (
            report.log_evidence,
            report.log_evidence_std,
            truth,
        )
        assert report.sampling.samples.shape == (4, 100, 1)
        assert report.posterior["x"].shape == (4, 100)
        summary = out.to_dict()["models"][name]
        assert summary["evidence_method"] == "smc"
        assert summary["smc"]["cross_check"] in ("ok", "disagree", "unchecked")
        assert summary["smc"]["num_logdensity_evaluations"] > 400
        assert summary["num_gradient_evaluations"] is None  # SMC counts its own way
    json.loads(to_json(out.to_dict()))
    # an unchecked SMC evidence is printed as such (SMC's own status stays ok), and the
    # harmonic mean's own message is labelled as the cross-check it is
    report = out.models["b"]
    unchecked = report.sampling._replace(cross_check=EvidenceCrossCheck.UNCHECKED)
    shown = out._replace(models={"b": report._replace(sampling=unchecked)})
    assert f"SMC: {EvidenceCrossCheck.UNCHECKED.value}" in shown.summary()
    assert shown.to_dict()["models"]["b"]["sampling_messages"][-1] == (
        EvidenceCrossCheck.UNCHECKED.value
    )
    assert EvidenceCrossCheck.UNCHECKED.value not in out.summary() or (
        report.sampling.cross_check is EvidenceCrossCheck.UNCHECKED
    )


def test_evidence_cross_check_flags_disagreement_and_a_failed_check():
    class _Result:
        def __init__(self, value, std, status=EvidenceStatus.OK):
            self.log_evidence, self.log_evidence_std, self.status = value, std, status

    lhm = _Result(-10.0, 0.03)
    assert cross_check_evidence(-10.1, 0.04, lhm) is EvidenceCrossCheck.OK  # 2 combined errors
    assert cross_check_evidence(-10.2, 0.04, lhm) is EvidenceCrossCheck.DISAGREE  # 4 errors
    failed = _Result(-10.0, 0.03, next(s for s in EvidenceStatus if s.is_failure))
    assert cross_check_evidence(-10.0, 0.04, failed) is EvidenceCrossCheck.UNCHECKED
    assert cross_check_evidence(-10.0, float("nan"), lhm) is EvidenceCrossCheck.UNCHECKED
    assert EvidenceCrossCheck.DISAGREE.is_warning
    # where SMC's moves did not decorrelate (MAX_STEPS) its own error bar does not hold:
    # a disagreeing or failed check is then a failure, an agreeing one stays ok
    unmixed = {"decorrelated": False}
    assert cross_check_evidence(-10.1, 0.04, lhm, **unmixed) is EvidenceCrossCheck.OK
    assert cross_check_evidence(-10.2, 0.04, lhm, **unmixed) is EvidenceCrossCheck.DISAGREE_UNMIXED
    assert (
        cross_check_evidence(-10.0, 0.04, failed, **unmixed) is EvidenceCrossCheck.UNCHECKED_UNMIXED
    )
    assert EvidenceCrossCheck.DISAGREE_UNMIXED.is_failure
    assert EvidenceCrossCheck.UNCHECKED_UNMIXED.is_failure


@pytest.mark.slow
def test_compare_with_smc_recovers_mode_weights_of_a_bimodal_model(key):
    """Flow-preconditioned SMC: the 0.75 / 0.25 mode weights (binomial error of the
    particles' ancestry-limited sample) and ln z = -ln 256 within 4 of its errors."""
    model = _bimodal_model("bimodal")
    config = SMCConfig(num_particles=1000, num_epochs=5, flow_layers=2, nn_width=16)
    report = compare(key, [model], sampling=config, num_workers=1).models["bimodal"]
    share = np.mean(report.posterior["x"] < 0, axis=1)  # per pseudo-chain of 100 particles
    share_error = share.std(ddof=1) / np.sqrt(share.size)
    assert abs(share.mean() - 0.75) < 4 * share_error + 0.02, (share.mean(), share_error)
    assert abs(share.mean() - 0.5) > 4 * share_error + 0.02  # a 50/50 split would fail
    truth = -np.log(256.0)
    assert abs(report.log_evidence - truth) < 4 * report.log_evidence_std, (
        report.log_evidence,
        report.log_evidence_std,
    )


def test_smc_that_hit_max_steps_has_its_cross_check_judged_unmixed(key, monkeypatch):
    # compare tells the cross-check whether SMC's own error bar holds: not where its moves
    # stopped at max_mcmc_steps (here one block, and a threshold no block reaches)
    import astrobayes.comparison as comparison
    from astrobayes.evidence import log_bayes_factor

    seen = []
    original = comparison.cross_check_evidence

    def spy(*args, **kwargs):
        seen.append(kwargs["decorrelated"])
        return original(*args, **kwargs)

    monkeypatch.setattr(comparison, "cross_check_evidence", spy)
    capped = SMCConfig(
        num_particles=400, preconditioner="diagonal", max_mcmc_steps=1, correlation_threshold=1e-9
    )
    out = compare(key, [_model("b", 2.0)], sampling=capped, target=GaussianTarget(), num_workers=1)
    assert "MAX_STEPS" in [m.name for m in out.models["b"].sampling.result.messages]
    assert seen == [False]
    # the failures' reading: a failed SMC evidence is not read on Jeffreys' scale
    failed = out.models["b"]._replace(status=EvidenceCrossCheck.DISAGREE_UNMIXED)
    other = out.models["b"]._replace(log_evidence=out.models["b"].log_evidence - 3.0)
    reading = log_bayes_factor(failed, other, "b", "c").reading
    assert reading == "not read: the evidence of b failed (disagree_unmixed)"
