"""``astrobayes run``: config schema, the worked example against ``compare`` in Python,
chain files read by GetDist / ArviZ / ``read_chains``, resume after an interruption, x64."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import astrobayes
from astrobayes.chains import Chains
from astrobayes.cli.main import main
from astrobayes.runconfig import (
    ModelSpec,
    ParameterSpec,
    RunConfig,
    build_model,
    posterior_table,
    run_comparison,
    run_config_from_mapping,
)
from astrobayes.sampling import NUTSConfig, SMCConfig

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_example"
SMALL_SAMPLER = {"num_chains": 2, "num_warmup": 100, "num_samples": 200, "checkpoint_every": 100}


def _write_config(folder: Path, sampler: dict, target: str = "gaussian") -> Path:
    """The worked example copied to ``folder`` with a smaller sampler and another target."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("likelihoods.py", "data.txt"):
        shutil.copy(EXAMPLE / name, folder / name)
    text = (EXAMPLE / "config.toml").read_text()
    block = "[sampler]\n" + "".join(f"{k} = {v}\n" for k, v in sampler.items())
    text = re.sub(r"\[sampler\][^\[]*", block + "\n", text, count=1)
    text = text.replace('evidence_target = "rqspline"', f'evidence_target = "{target}"')
    path = folder / "config.toml"
    path.write_text(text)
    return path


def _analytic_log_evidence(columns: int) -> float:
    """ln z of the example's linear-Gaussian models (priors N(0, 2^2), sigma = 0.3)."""
    data = np.loadtxt(EXAMPLE / "data.txt")
    x, y = data[:, 0], data[:, 1]
    design = np.column_stack([x**k for k in range(columns)])
    covariance = 0.3**2 * np.eye(len(y)) + 2.0**2 * design @ design.T
    _, log_det = np.linalg.slogdet(covariance)
    return float(
        -0.5 * y @ np.linalg.solve(covariance, y) - 0.5 * log_det - 0.5 * len(y) * np.log(2 * np.pi)
    )


# ------------------------------------------------------------------------- config schema


def _mapping(**parameter):
    return {"models": {"m": {"likelihood": "mod:f", "parameters": {"a": parameter}}}}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"models": {}}, r"at least one \[models.NAME\]"),
        (
            {"models": {"m": {"likelihood": "mod:f"}}, "sede": 1},
            "unknown key 'sede' in the top-level",
        ),
        (
            {"models": {"m": {"likelihood": "mod:f", "prior": {}}}},
            r"unknown key 'prior' in \[models.m\]",
        ),
        (_mapping(prior="uniform", low=0, hi=1), r"unknown key 'hi' in \[models.m.parameters.a\]"),
        (_mapping(prior="gamma", low=0), r"\[models.m.parameters.a\]: prior must be one of"),
        (_mapping(prior="uniform", low=2, high=1), r"\[models.m.parameters.a\]: low must be below"),
        (_mapping(prior="normal", loc=0), r"prior 'normal' needs key\(s\) \['scale'\]"),
        (_mapping(prior="normal", loc=0, scale=-1), "scale must be positive"),
        (_mapping(prior="log-uniform", low=0, high=1), "log-uniform needs low > 0"),
        (_mapping(prior="fixed", value=1, low=0), r"takes only \['value'\]"),
        (_mapping(prior="derived", function="nocolon"), "function must be 'module:function'"),
        (_mapping(prior="fixed", value=1.0), "at least one sampled parameter"),
        (
            {"models": {"m": {"parameters": {}}}},
            "exactly one of likelihood, numpyro_model, model or python_likelihood",
        ),
        (
            {
                "models": {
                    "m": {
                        "numpyro_model": "a:b",
                        "parameters": {"x": {"prior": "fixed", "value": 1}},
                    }
                }
            },
            "defines its own priors",
        ),
        (
            {
                "models": {
                    "m": {
                        "likelihood": "a:b",
                        "parameters": {"x": {"prior": "normal", "loc": 0, "scale": 1}},
                    }
                },
                "reference": "n",
            },
            "reference must be one of",
        ),
        (
            {
                "models": {
                    "m": {
                        "likelihood": "a:b",
                        "parameters": {"sigma 8": {"prior": "normal", "loc": 0, "scale": 1}},
                    }
                }
            },
            r"\[models.m\]: parameter names must be GetDist parameter names .*got \['sigma 8'\]",
        ),
        (
            {**_mapping(prior="normal", loc=0, scale=1), "sampler": {"num_chain": 2}},
            r"unknown key 'num_chain' in \[sampler\]",
        ),
        (
            {**_mapping(prior="normal", loc=0, scale=1), "evidence_target": "maf"},
            "evidence_target must be one of",
        ),
        (
            {**_mapping(prior="normal", loc=0, scale=1), "evidence_method": "bridge"},
            r"evidence_method must be one of \['learned_harmonic_mean', 'bridge_sampling'\]",
        ),
        (
            {
                **_mapping(prior="normal", loc=0, scale=1),
                "evidence_method": "bridge_sampling",
                "sampler_kind": "smc",
            },
            'evidence_method = "bridge_sampling" needs sampler_kind',
        ),
    ],
)
def test_config_rejects_unknown_keys_and_bad_priors_by_name(table, message):
    with pytest.raises((ValueError, TypeError), match=message):
        run_config_from_mapping(table)


def test_priors_map_to_normalised_numpyro_distributions():
    assert isinstance(ParameterSpec("uniform", low=0.0, high=2.0).distribution(), dist.Uniform)
    log_uniform = ParameterSpec("log-uniform", low=1.0, high=100.0).distribution()
    # uniform in ln x: density 1 / (x ln 100)
    np.testing.assert_allclose(
        float(log_uniform.log_prob(10.0)), -np.log(10.0 * np.log(100.0)), rtol=1e-6
    )
    truncated = ParameterSpec(
        "truncated-normal", loc=0.0, scale=1.0, low=0.0, high=10.0
    ).distribution()
    np.testing.assert_allclose(
        float(truncated.log_prob(0.5)),
        np.log(2.0) + float(dist.Normal(0, 1).log_prob(0.5)),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="not sampled"):
        ParameterSpec("fixed", value=1.0).distribution()


def test_unknown_function_and_missing_data_are_named(tmp_path, capsys):
    path = _write_config(tmp_path, SMALL_SAMPLER)
    text = path.read_text()
    path.write_text(text.replace("likelihoods:parabola", "likelihoods:parabol"))
    assert main(["run", str(path), "--no-progress", "--no-compile-cache"]) == 2
    assert "models.parabola.likelihood = 'likelihoods:parabol'" in capsys.readouterr().err
    path.write_text(text)
    (tmp_path / "data.txt").unlink()
    assert main(["run", str(path), "--no-progress", "--no-compile-cache"]) == 2
    assert "data file 'points'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a derived parameter's function that reads a name the model lacks
        (
            ('return params["a"] + params["b"] + params.get("c", 0.0)', 'return params["d"]'),
            r"\[models.line.parameters.y1\]: its code raised KeyError when JAX traced it: "
            r"'d' \(params holds \['a', 'b', 'sigma'\]",
        ),
        # ... or returns a vector
        (
            (
                'return params["a"] + params["b"] + params.get("c", 0.0)',
                'return jnp.stack([params["a"], params["b"]])',
            ),
            r"\[models.line.parameters.y1\] \(function 'likelihoods:y_at_one'\) must return one number; got an array of shape \(2,\)",
        ),
        # the second model's likelihood returning a vector: refused before the first
        # model is sampled (compare traces every model first; no checkpoint is written)
        (
            (
                'params["c"] * x**2, params["sigma"])',
                'params["c"] * x**2, params["sigma"]) * jnp.ones(2)',
            ),
            r"the log-likelihood of model 'parabola' must return one number; got an array of "
            r"shape \(2,\)",
        ),
    ],
)
def test_users_code_errors_are_named_before_any_sampling(tmp_path, capsys, edit, message):
    path = _write_config(tmp_path, SMALL_SAMPLER)
    module = tmp_path / "likelihoods.py"
    text = module.read_text()
    assert text.count(edit[0]) == 1
    module.write_text(text.replace(*edit))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-compile-cache"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (out / "checkpoints").exists()  # refused before any model was sampled


def test_edited_data_or_likelihood_module_starts_afresh_instead_of_resuming(tmp_path, capsys):
    # The checkpoint name carries a digest of the model's source files and data arrays:
    # a rerun of the same files resumes (the negative control), an edited data file or
    # likelihood module does not resume the old chains.
    sampler = {"num_chains": 2, "num_warmup": 20, "num_samples": 20, "checkpoint_every": 20}
    path = _write_config(tmp_path, sampler)
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"]

    def run_and_checkpoints():
        # 1: too few draws for an error bar (a failure status); the chains are written
        assert main(argv + ["--no-compile-cache"]) in (0, 1)
        printed = capsys.readouterr().out
        names = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("*.npz"))
        return "resumed from checkpoints" in printed, names

    resumed, first = run_and_checkpoints()
    assert not resumed
    assert len(first) == 2
    resumed, again = run_and_checkpoints()
    assert resumed
    assert again == first
    data = tmp_path / "data.txt"
    data.write_text(data.read_text().replace("-0.761242", "-0.761243", 1))
    resumed, after_data = run_and_checkpoints()
    assert not resumed
    assert len(set(after_data) - set(first)) == 2
    module = tmp_path / "likelihoods.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    resumed, after_code = run_and_checkpoints()
    assert not resumed
    assert len(set(after_code) - set(after_data)) == 2


def test_check_traces_every_model_and_writes_nothing(tmp_path, capsys):
    path = _write_config(tmp_path, SMALL_SAMPLER)
    assert main(["run", str(path), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "line: 2 sampled parameter(s): a, b; derived: y1; data: points = data.txt" in printed
    assert "parabola: 3 sampled parameter(s): a, b, c" in printed
    assert printed.rstrip().endswith("config OK: nothing was sampled or written")
    assert not (tmp_path / "config-run").exists()
    # the same refusal as a run (negative control): a likelihood returning a vector. The
    # module is edited in place after it was imported in this process (a notebook
    # re-running a config): it is imported afresh, the code the checkpoint names hash
    module = tmp_path / "likelihoods.py"
    module.write_text(
        module.read_text().replace("-0.5 * jnp.sum(residual**2)", "-0.5 * residual**2")
    )
    assert main(["run", str(path), "--check"]) == 2
    assert "must return one number; got an array of shape (20,)" in capsys.readouterr().err


def test_non_finite_data_is_named_before_the_likelihood_fails(tmp_path, capsys):
    path = _write_config(tmp_path, SMALL_SAMPLER)
    data = tmp_path / "data.txt"
    data.write_text(data.read_text().replace("-0.761242", "nan", 1))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "warning: models.line.data 'points' (data.txt) holds 1 non-finite value(s) (the first "
        "at index (0, 1))" in err
    )
    assert "cannot find a valid initial point" in err
    assert "common causes: NaN or inf in the data" in err


EDGE_MODULE = """
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

def toward_minus_one(params):
    return -0.5 * ((params["a"] + 1.0) / 0.5) ** 2

def log_normal(params):
    return -0.5 * jnp.log(params["v"]) ** 2

def half_normal():
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    numpyro.factor("like", -0.5 * ((s + 1.0) / 0.5) ** 2)
"""


def test_a_posterior_cut_by_its_prior_edge_is_reported(tmp_path, capsys):
    # Likelihood N(-1, 0.5^2) in a: under a ~ U(0, 1) the posterior is cut at a = 0
    # (density highest there); under a ~ U(-5, 5) it falls off inside (the control).
    (tmp_path / "edge.py").write_text(EDGE_MODULE)
    (tmp_path / "config.toml").write_text(
        "[sampler]\nnum_chains = 2\nnum_warmup = 200\nnum_samples = 500\n"
        '[models.cut]\nlikelihood = "edge:toward_minus_one"\n'
        '[models.cut.parameters]\na = { prior = "uniform", low = 0.0, high = 1.0 }\n'
        '[models.inside]\nlikelihood = "edge:toward_minus_one"\n'
        '[models.inside.parameters]\na = { prior = "uniform", low = -5.0, high = 5.0 }\n'
        # ln v ~ N(0, 1) inside [ln 1e-3, ln 1e3] = +-6.9: not cut; in v, the prior's 1/v
        # put the marginal's peak in the bin at the low edge (read 1.00 until 2026-12-06)
        '[models.logscale]\nlikelihood = "edge:log_normal"\n'
        '[models.logscale.parameters]\nv = { prior = "log-uniform", low = 1e-3, high = 1e3 }\n'
        # a half-normal's 0 is its support, no choice: recorded at ~1, never listed
        '[models.half]\nnumpyro_model = "edge:half_normal"\n'
    )
    out = tmp_path / "out"
    argv = ["run", str(tmp_path / "config.toml"), "--out", str(out), "--no-progress", "--no-plots"]
    assert main([*argv, "--no-compile-cache"]) in (0, 1)
    printed = capsys.readouterr().out
    edges = json.loads((out / "results.json").read_text())["prior_edges"]
    assert edges["cut"]["a"]["low"] > 0.8
    # exp(-8) of the peak's density at a = 1: a stray draw of ~65 per bin at most
    assert edges["cut"]["a"]["high"] < 0.1
    assert edges["inside"]["a"]["low"] < 0.1
    assert edges["inside"]["a"]["high"] < 0.1
    assert edges["logscale"]["v"]["low"] < 0.1
    assert edges["logscale"]["v"]["high"] < 0.1
    assert edges["half"]["s"]["low"] > 0.8
    assert edges["half"]["s"]["chosen"] is False
    assert edges["cut"]["a"]["chosen"] is True
    report = (out / "report.md").read_text()
    assert "## Posteriors cut by a prior edge" in report
    assert "| cut | a | low |" in report
    assert "| inside | a |" not in report.split("## Posteriors cut by a prior edge")[1]
    assert "note: cut: the posterior of a is cut by its prior's low edge" in printed
    assert "note: inside" not in printed
    assert "note: logscale" not in printed
    # GetDist chains hold -ln L: read with flat priors from .ranges where the prior is that
    # (uniform a), refused where it is not (log-uniform v: read 6.9 too low until 2026-12-06)
    from astrobayes.io import read_chains

    with np.load(out / "chains" / "cut.npz") as archive:
        expected = archive["log_posterior"]
    flat = read_chains(out / "chains" / "cut")
    np.testing.assert_allclose(flat.chains.log_posterior, expected, rtol=1e-6)
    # both files give the prior's edges, for an estimate without them
    assert flat.bounds == {"a": (0.0, 1.0)}
    for suffix in (".npz", ".nc"):
        assert read_chains(out / "chains" / f"logscale{suffix}").bounds == {"v": (1e-3, 1e3)}
        assert read_chains(out / "chains" / f"half{suffix}").bounds == {"s": (0.0, None)}
    with pytest.raises(ValueError, match=r"not flat over logscale\.ranges .*logscale\.npz"):
        read_chains(out / "chains" / "logscale")
    assert "note: half" not in printed
    assert "| half |" not in report.split("## Posteriors cut by a prior edge")[1]


# ------------------------------------------------------------------ the worked example


class _Stop(Exception):
    """Stands in for a kill after the first checkpoint of a model."""


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """The worked example interrupted after its first checkpoint, then run again."""
    import astrobayes.cli.run as run_module

    folder = tmp_path_factory.mktemp("run")
    config = _write_config(folder, SMALL_SAMPLER)
    out = folder / "out"
    original = run_module.Progress.__call__

    def interrupting(self, model, stage, done, total):
        if stage == "sampling" and done >= SMALL_SAMPLER["checkpoint_every"]:
            raise _Stop(model)
        original(self, model, stage, done, total)

    argv = [
        "run",
        str(config),
        "--out",
        str(out),
        "--no-progress",
        "--no-compile-cache",
        "--no-plots",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module.Progress, "__call__", interrupting)
        with pytest.raises(_Stop):
            main(argv)
    assert not (out / "results.json").exists()
    checkpoints = sorted((out / "checkpoints").glob("*.npz"))
    assert checkpoints
    assert main(argv) == 0
    return folder, out


def test_run_gives_the_numbers_of_compare_in_python_after_a_resume(resumed_run, capsys):
    from astrobayes.comparison import compare
    from astrobayes.evidence import GaussianTarget
    from astrobayes.models import Model

    folder, out = resumed_run
    # this run's own module, whatever other tests imported under the name "likelihoods"
    spec = importlib.util.spec_from_file_location("run_likelihoods", folder / "likelihoods.py")
    likelihoods = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(likelihoods)
    data = {"points": jnp.asarray(np.loadtxt(folder / "data.txt"))}
    prior = dist.Normal(0.0, 2.0)
    line = Model.from_priors(
        "line", lambda p: likelihoods.line({**p, "sigma": 0.3}, data), {"a": prior, "b": prior}
    )
    parabola = Model.from_priors(
        "parabola",
        lambda p: likelihoods.parabola({**p, "sigma": 0.3}, data),
        {"a": prior, "b": prior, "c": prior},
    )
    expected = compare(
        jax.random.key(0),
        [line, parabola],
        reference="line",
        sampling=NUTSConfig(**SMALL_SAMPLER),
        target=GaussianTarget(),
    )
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["astrobayes"] == astrobayes.__version__
    assert results["provenance"]["packages"]["jax"] == jax.__version__
    for name, report in expected.models.items():
        got = results["models"][name]
        # bitwise: the resumed CLI run and the uninterrupted Python call agree exactly
        assert got["log_evidence"] == report.log_evidence
        assert got["log_evidence_std"] == report.log_evidence_std
        with np.load(out / "chains" / f"{name}.npz") as archive:
            names = list(archive["names"])
            for i, parameter in enumerate(names):
                np.testing.assert_array_equal(
                    archive["samples"][..., i], report.posterior[parameter].astype(np.float64)
                )
        # and both agree with the analytic evidence within the Monte Carlo error
        truth = _analytic_log_evidence(2 if name == "line" else 3)
        other = _analytic_log_evidence(3 if name == "line" else 2)
        assert abs(report.log_evidence - truth) < 5 * report.log_evidence_std + 0.05
        # negative control: the other model's evidence is far outside the error
        assert abs(report.log_evidence - other) > 5 * report.log_evidence_std + 0.05


def test_chain_files_load_in_getdist_arviz_and_read_chains(resumed_run):
    import arviz as az
    from getdist import loadMCSamples

    from astrobayes.io import read_chains

    folder, out = resumed_run
    with np.load(out / "chains" / "parabola.npz") as archive:
        samples = archive["samples"]
        names = list(archive["names"])
        log_likelihood = archive["log_likelihood"]
        log_posterior = archive["log_posterior"]
        derived = archive["derived"][..., 0]
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose(
        derived, samples[..., 0] + samples[..., 1] + samples[..., 2], rtol=1e-5
    )
    # ln L per draw is the user's function at the draw (float64 recomputation)
    points = np.loadtxt(folder / "data.txt")
    x, y = points[:, 0], points[:, 1]
    a, b, c = (samples[0, :5, i][:, None] for i in range(3))
    residual = (y - (a + b * x + c * x**2)) / 0.3
    expected = -0.5 * (residual**2).sum(axis=1) - len(y) * np.log(np.sqrt(2 * np.pi) * 0.3)
    np.testing.assert_allclose(log_likelihood[0, :5], expected, rtol=1e-5)

    getdist_samples = loadMCSamples(str(out / "chains" / "parabola"))
    assert getdist_samples.getParamNames().list() == ["a", "b", "c", "y1"]
    assert getdist_samples.getParamNames().parWithName("y1").label == "y(1)"
    assert getdist_samples.getParamNames().parWithName("y1").isDerived
    assert not getdist_samples.getParamNames().parWithName("c").isDerived
    np.testing.assert_allclose(getdist_samples.mean("c"), samples[..., 2].mean(), rtol=1e-10)
    np.testing.assert_allclose(getdist_samples.loglikes, -log_likelihood.reshape(-1), rtol=1e-12)

    inference = az.from_netcdf(out / "chains" / "parabola.nc")
    assert {"posterior", "log_likelihood", "log_prior", "sample_stats"} <= set(inference.groups())
    np.testing.assert_array_equal(inference.posterior["c"].values, samples[..., 2])
    for path in (out / "chains" / "parabola.nc", out / "chains" / "parabola.npz"):
        loaded = read_chains(path)
        assert loaded.chains.names == ("a", "b", "c")
        np.testing.assert_allclose(loaded.chains.log_posterior, log_posterior, rtol=1e-12)
    # normal priors: the GetDist chain (-ln L only) is refused for an evidence, by name
    with pytest.raises(ValueError, match=r"prior is not flat .* read .*parabola\.npz instead"):
        read_chains(out / "chains" / "parabola")
    report = (out / "report.md").read_text()
    assert "## Diagnostics" in report
    assert "chains/parabola.nc" in report
    software = report.split("## Software", 1)[1]
    assert f"astrobayes {astrobayes.__version__} (" in software
    precision = "float64" if jax.config.jax_enable_x64 else "float32"
    assert f"JAX {jax.__version__} on cpu, {precision}" in software


def test_posterior_table_splits_likelihood_and_prior():
    spec = ModelSpec(
        likelihood="m:f",
        parameters={
            "x": ParameterSpec("uniform", low=-2.0, high=2.0, label=r"\xi"),
            "s": ParameterSpec("fixed", value=3.0),
            "twice": ParameterSpec("derived", function="m:g"),
        },
    )
    model = build_model("m", spec, log_likelihood_fn=lambda p: -0.5 * (p["x"] * p["s"]) ** 2)
    draws = {"x": np.array([[0.5, -1.0]])}
    table = posterior_table(
        model, draws, spec=spec, derived_fns={"twice": lambda p: 2 * p["x"] + p["s"]}
    )
    assert table.names == ("x", "twice")
    assert table.labels == (r"\xi", "twice")
    assert table.is_derived == (False, True)
    np.testing.assert_allclose(table.samples[0, :, 1], [4.0, 1.0])
    np.testing.assert_allclose(table.log_likelihood[0], [-0.5 * 1.5**2, -0.5 * 9.0], rtol=1e-6)
    np.testing.assert_allclose(table.log_prior, np.log(0.25), rtol=1e-6)
    assert table.ranges == {"x": (-2.0, 2.0)}
    with pytest.raises(ValueError, match="derived parameter 'twice' needs its function"):
        posterior_table(model, draws, spec=spec)


def test_numpyro_mcmc_draws_give_chains_whose_evidence_is_the_analytic_one(key):
    # A user's own NumPyro run: linear regression, Normal(0, 2) priors on a vector site,
    # known noise; the evidence is the Gaussian marginal likelihood of the data.
    import numpyro
    from numpyro.infer import MCMC, NUTS
    from scipy.stats import multivariate_normal

    from astrobayes.evidence import GaussianTarget, estimate
    from astrobayes.models import Model

    x = np.linspace(0.0, 1.0, 12)
    y = 0.5 + 1.5 * x + 0.2 * np.random.default_rng(3).normal(size=x.size)

    def line(x, y):
        coef = numpyro.sample("coef", dist.Normal(0.0, 2.0).expand([2]).to_event(1))
        numpyro.sample("y", dist.Normal(coef[0] + coef[1] * x, 0.2), obs=y)

    mcmc = MCMC(
        NUTS(line),
        num_warmup=300,
        num_samples=1500,
        num_chains=4,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(key, x, y)
    draws = mcmc.get_samples(group_by_chain=True)  # {"coef": (4, 1500, 2)}
    table = posterior_table(Model("line", line, (x, y)), draws)
    chains = table.chains()
    assert chains.names == ("coef[0]", "coef[1]")
    np.testing.assert_array_equal(chains.samples, np.asarray(draws["coef"], np.float64))
    # the same table from the columns the CLI's files hold
    columns = {f"coef[{i}]": draws["coef"][..., i] for i in range(2)}
    np.testing.assert_array_equal(
        posterior_table(Model("line", line, (x, y)), columns).log_posterior, table.log_posterior
    )
    design = np.stack([np.ones_like(x), x], -1)
    truth = multivariate_normal(
        np.zeros(x.size), 4.0 * design @ design.T + 0.04 * np.eye(x.size)
    ).logpdf(y)
    result = estimate(jax.random.fold_in(key, 1), chains, target=GaussianTarget())
    assert not result.status.is_failure, result.messages
    assert 0 < result.log_evidence_std < 0.05
    assert abs(result.log_evidence - truth) < 4.5 * result.log_evidence_std
    # negative control: the prior left out (ln L alone) is off by many error bars
    wrong = estimate(
        jax.random.fold_in(key, 1),
        Chains(chains.samples, table.log_likelihood),
        target=GaussianTarget(),
    )
    assert abs(wrong.log_evidence - truth) > 10 * wrong.log_evidence_std


# ---------------------------------------------------------------------------- float64

OFFSET = -1.0e4  # |ln L| ~ 1e4: float32 keeps ~3 decimals of it


def _big_likelihood(params):
    return OFFSET - 0.5 * ((params["x"] - 0.5) / 0.1) ** 2 - jnp.log(jnp.sqrt(2 * jnp.pi) * 0.1)


def _x64_config():
    spec = ModelSpec(
        likelihood="m:f", parameters={"x": ParameterSpec("normal", loc=0.0, scale=1.0)}
    )
    return RunConfig(
        models={"big": spec},
        sampler=NUTSConfig(num_chains=2, num_warmup=100, num_samples=300),
        evidence_target="gaussian",
        x64=True,
        num_workers=1,
    ), spec


def test_x64_needs_jax_in_float64():
    config, spec = _x64_config()
    # float32 even in a float64 session (JAX_ENABLE_X64=1); thread-local, restored after
    with jax.enable_x64(False):
        model = build_model("big", spec, log_likelihood_fn=_big_likelihood)
        with pytest.raises(ValueError, match="jax_enable_x64"):
            run_comparison(jax.random.key(0), config, [model])


@pytest.mark.slow
def test_x64_run_keeps_the_log_density_to_float64_precision(global_x64):
    config, spec = _x64_config()
    model = build_model("big", spec, log_likelihood_fn=_big_likelihood)
    result = run_comparison(jax.random.key(1), config, [model])
    report = result.models["big"]
    assert report.sampling.samples.dtype == np.float64
    x = report.posterior["x"].astype(np.float64)
    exact = (
        OFFSET
        - 0.5 * ((x - 0.5) / 0.1) ** 2
        - np.log(np.sqrt(2 * np.pi) * 0.1)
        - 0.5 * x**2
        - 0.5 * np.log(2 * np.pi)
    )
    # the sampled log density (unconstrained = constrained here: no Jacobian) is exact
    np.testing.assert_allclose(report.sampling.logdensity, exact, rtol=0, atol=1e-8)
    # negative control: the same values in float32 are off by ~1e-3
    assert np.max(np.abs(exact.astype(np.float32).astype(np.float64) - exact)) > 1e-4
    # ln z against the analytic value: N(0.5; 0, 1 + 0.1^2) + OFFSET
    truth = OFFSET - 0.5 * 0.5**2 / 1.01 - 0.5 * np.log(2 * np.pi * 1.01)
    assert abs(report.log_evidence - truth) < 5 * report.log_evidence_std + 1e-3
    assert abs(report.log_evidence - (truth + 0.05)) > 5 * report.log_evidence_std


# ---------------------------------------------------------------------- compile cache


def test_cli_compile_cache_on_by_default_and_off_with_the_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROBAYES_JAX_CACHE", str(tmp_path / "cache"))
    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert main(["run", str(tmp_path / "missing.toml"), "--no-compile-cache"]) == 2
        assert jax.config.jax_compilation_cache_dir is None
        assert main(["run", str(tmp_path / "missing.toml")]) == 2
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


# ----------------------------------------------------------------- kill and resume (slow)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    sampler = {"num_chains": 2, "num_warmup": 100, "num_samples": 2000, "checkpoint_every": 100}
    config = _write_config(tmp_path / "cfg", sampler)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ASTROBAYES_JAX_CACHE": ""}
    command = [sys.executable, "-m", "astrobayes.cli.main", "run", str(config), "--no-progress"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen([*command, "--out", str(killed)], env=env)
    try:
        while process.poll() is None:
            ready = [p for p in (killed / "checkpoints").glob("*.npz") if _draws_in(p) >= 200]
            if ready:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.2)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "results.json").exists()
    subprocess.run([*command, "--out", str(killed)], env=env, check=True)
    subprocess.run([*command, "--out", str(clean)], env=env, check=True)
    for name in ("line", "parabola"):
        with (
            np.load(killed / "chains" / f"{name}.npz") as a,
            np.load(clean / "chains" / f"{name}.npz") as b,
        ):
            for key in b.files:
                np.testing.assert_array_equal(a[key], b[key])
    first = json.loads((killed / "results.json").read_text())
    second = json.loads((clean / "results.json").read_text())
    for name in ("line", "parabola"):
        assert first["models"][name]["log_evidence"] == second["models"][name]["log_evidence"]


def _draws_in(path: Path) -> int:
    try:
        with np.load(path) as archive:
            return int(archive["draws"].shape[1])
    except (OSError, ValueError, KeyError):
        return 0


def test_numpyro_model_and_model_factory_specs():
    import numpyro

    from astrobayes.models import Model

    def numpyro_model(data):
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(x, 1.0), obs=data["y"])

    spec = ModelSpec(numpyro_model="m:f", data={"y": "y.txt"})
    model = build_model("n", spec, numpyro_model=numpyro_model, data={"y": np.array([0.5])})
    table = posterior_table(model, {"x": np.array([[0.0, 1.0]])}, spec=spec)
    expected = dist.Normal(np.array([0.0, 1.0]), 1.0).log_prob(0.5)
    np.testing.assert_allclose(table.log_likelihood[0], expected, rtol=1e-6)
    np.testing.assert_allclose(
        table.log_prior[0], dist.Normal(0, 1).log_prob(np.array([0.0, 1.0])), rtol=1e-6
    )

    made = Model.from_priors("anything", lambda p: -(p["z"] ** 2), {"z": dist.Uniform(0.0, 1.0)})
    renamed = build_model("mine", ModelSpec(model="m:g"), model=made)
    assert renamed.name == "mine"
    assert renamed.numpyro_model is made.numpyro_model
    with pytest.raises(ValueError, match="must return an astrobayes Model"):
        build_model("mine", ModelSpec(model="m:g"), model=object())


def test_a_numpyro_model_with_a_vector_site_and_a_factor_likelihood(tmp_path):
    # Until 2026-12-06 a vector site was dropped from the report (no posterior summary)
    # and posterior_table refused the draws ("no (num_chains, num_samples) site"), so
    # `astrobayes run` failed after sampling; and a numpyro.factor likelihood not named
    # "log_likelihood" was counted as prior (ln L = 0 in the chain files).
    import numpyro

    from astrobayes.comparison import compare
    from astrobayes.models import Model

    def numpyro_model():
        x = numpyro.sample("x", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        numpyro.factor("lik", -0.5 * jnp.sum((x - 1.0) ** 2))

    model = Model("v", numpyro_model)
    result = compare(
        jax.random.key(0),
        [model],
        sampling=NUTSConfig(num_chains=2, num_warmup=100, num_samples=200),
    )
    report = result.models["v"]
    assert list(report.posterior) == ["x[0]", "x[1]", "x[2]"]
    for i in range(3):  # posterior N(1/2, 1/2) per element
        assert abs(report.posterior_mean[f"x[{i}]"] - 0.5) < 5 * np.sqrt(0.5 / report.ess_min)
    table = posterior_table(model, report.posterior, spec=ModelSpec(numpyro_model="m:f"))
    assert table.names == ("x[0]", "x[1]", "x[2]")
    assert not any(table.is_derived)
    x = table.samples
    np.testing.assert_allclose(
        table.log_likelihood, -0.5 * ((x - 1.0) ** 2).sum(-1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        table.log_prior, dist.Normal(0.0, 1.0).log_prob(x).sum(-1), rtol=1e-5, atol=1e-6
    )
    # the prior correction of Model.from_priors stays in the prior (negative control)
    corrected = Model.from_priors(
        "c",
        lambda p: -0.5 * p["a"] ** 2,
        {"a": dist.Uniform(-1.0, 1.0)},
        log_prior_correction_fn=lambda p: jnp.log(2.0),
    )
    split = posterior_table(corrected, {"a": np.array([[0.5]])})
    np.testing.assert_allclose(split.log_likelihood, [[-0.125]], rtol=1e-6)
    np.testing.assert_allclose(split.log_prior, [[np.log(0.5) + np.log(2.0)]], rtol=1e-6)


# ------------------------------------------------------------------------- flow MCMC


def test_sampler_kind_and_flow_mcmc_table_are_checked_by_name():
    base = _mapping(prior="uniform", low=0, high=1)
    config = run_config_from_mapping(
        {**base, "sampler_kind": "flow_mcmc", "flow_mcmc": {"num_chains": 8}}
    )
    assert config.sampling().num_chains == 8
    assert run_config_from_mapping(base).sampling() == NUTSConfig()
    with pytest.raises(
        ValueError, match=r"sampler_kind must be one of \['nuts', 'flow_mcmc', 'smc'\]"
    ):
        run_config_from_mapping({**base, "sampler_kind": "hmc"})
    with pytest.raises(ValueError, match=r"\[flow_mcmc\] table is used only with sampler_kind"):
        run_config_from_mapping({**base, "flow_mcmc": {"num_chains": 8}})
    with pytest.raises(ValueError, match=r"unknown key 'chains' in \[flow_mcmc\]"):
        run_config_from_mapping({**base, "sampler_kind": "flow_mcmc", "flow_mcmc": {"chains": 8}})


def test_a_model_sampler_table_overrides_only_its_keys(monkeypatch):
    # [models.NAME.sampler] holds the keys that differ from [sampler]; the rest are the
    # run's. run_comparison hands compare one setting per model; models without a table
    # keep their checkpoint names (fingerprints), a model with one gets a new name.
    import astrobayes.runconfig as runconfig
    from astrobayes.cli.run import _model_fingerprint

    two = {
        "a": _mapping(prior="uniform", low=0, high=1)["models"]["m"],
        "b": _mapping(prior="normal", loc=0, scale=1)["models"]["m"],
    }
    run_table = {"num_chains": 2, "num_warmup": 100}
    plain = run_config_from_mapping({"models": two, "sampler": run_table})
    own = {**two, "b": {**two["b"], "sampler": {"dense_mass": True, "num_warmup": 300}}}
    config = run_config_from_mapping({"models": own, "sampler": run_table})
    assert config.models["a"].sampler is None
    assert config.models["b"].sampler == NUTSConfig(num_chains=2, num_warmup=300, dense_mass=True)
    assert config.sampling("a") == config.sampling() == NUTSConfig(num_chains=2, num_warmup=100)
    assert config.sampling("b").dense_mass
    assert _model_fingerprint(config, "a") == _model_fingerprint(plain, "a")
    assert _model_fingerprint(config, "b") != _model_fingerprint(plain, "b")

    seen = {}
    monkeypatch.setattr(runconfig, "compare", lambda key, models, **kw: seen.update(kw))
    models = [
        build_model(n, config.models[n], log_likelihood_fn=lambda p: -0.5 * p["a"] ** 2)
        for n in ("a", "b")
    ]
    run_comparison(jax.random.key(0), config, models)
    assert seen["sampling"] == {"a": config.sampling(), "b": config.models["b"].sampler}
    run_comparison(jax.random.key(0), plain, models)
    assert seen["sampling"] == plain.sampling()  # control: one setting for all
    with pytest.raises(ValueError, match="one Model per entry of config.models"):
        run_comparison(jax.random.key(0), config, models[:1])

    with pytest.raises(ValueError, match=r"unknown key 'dense' in \[models.b.sampler\]"):
        run_config_from_mapping({"models": {**two, "b": {**two["b"], "sampler": {"dense": 1}}}})
    with pytest.raises(TypeError, match=r"\[models.b.sampler\] must be a table"):
        run_config_from_mapping({"models": {**two, "b": {**two["b"], "sampler": 3}}})
    with pytest.raises(
        ValueError,
        match=r"per-model \[models.NAME.sampler\] tables are NUTS settings; got them for \['b'\]",
    ):
        run_config_from_mapping({"models": own, "sampler_kind": "smc"})
    with pytest.raises(ValueError, match=r"model must be one of \['a', 'b'\]; got 'c'"):
        config.sampling("c")


def test_smc_table_is_checked_by_name():
    base = _mapping(prior="uniform", low=0, high=1)
    config = run_config_from_mapping({**base, "sampler_kind": "smc", "smc": {"num_particles": 400}})
    assert config.sampling() == SMCConfig(num_particles=400)
    assert run_config_from_mapping({**base, "sampler_kind": "smc"}).sampling() == SMCConfig()
    with pytest.raises(ValueError, match=r"\[smc\] table is used only with sampler_kind"):
        run_config_from_mapping({**base, "smc": {"num_particles": 400}})
    with pytest.raises(ValueError, match=r"unknown key 'particles' in \[smc\]"):
        run_config_from_mapping({**base, "sampler_kind": "smc", "smc": {"particles": 8}})


@pytest.mark.slow
def test_run_with_smc_matches_the_analytic_evidence(tmp_path):
    """The worked example by preconditioned SMC from the CLI: both ln z vs analytic; the
    report names SMC and the cross-check."""
    path = _write_config(tmp_path / "cfg", SMALL_SAMPLER)
    text = path.read_text().replace("x64 = false", 'x64 = false\nsampler_kind = "smc"')
    text += "\n[smc]\nnum_particles = 1000\nnum_epochs = 5\nnn_width = 16\n"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-compile-cache"]) == 0
    results = json.loads((out / "results.json").read_text())
    for name, columns in (("line", 2), ("parabola", 3)):
        model = results["models"][name]
        truth = _analytic_log_evidence(columns)
        assert model["evidence_method"] == "smc"
        assert abs(model["log_evidence"] - truth) < 4 * model["log_evidence_std"], (
            name,
            model["log_evidence"],
            model["log_evidence_std"],
            truth,
        )
        assert model["smc"]["cross_check"] == "ok"
    assert "preconditioned, adaptively tempered SMC" in (out / "report.md").read_text()


@pytest.mark.slow
def test_run_with_flow_mcmc_matches_the_analytic_evidence(tmp_path):
    """The worked example sampled by flow MCMC from the CLI: ln z of both models vs analytic."""
    path = _write_config(tmp_path / "cfg", SMALL_SAMPLER)
    flow = {
        "num_chains": 16,
        "num_burnin_steps": 100,
        "num_loops_training": 4,
        "num_loops_production": 20,
        "num_epochs": 20,
        "flow_layers": 2,
        "nn_width": 16,
        "max_flow_samples": 4000,
    }
    text = path.read_text().replace("x64 = false", 'x64 = false\nsampler_kind = "flow_mcmc"')
    text += "\n[flow_mcmc]\n" + "".join(f"{k} = {v}\n" for k, v in flow.items())
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-compile-cache"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["config"]["sampler_kind"] == "flow_mcmc"
    for name, columns in (("line", 2), ("parabola", 3)):
        model = results["models"][name]
        truth = _analytic_log_evidence(columns)
        assert abs(model["log_evidence"] - truth) < 4 * model["log_evidence_std"] + 0.05, (
            name,
            model["log_evidence"],
            model["log_evidence_std"],
            truth,
        )
        assert model["num_divergent"] == 0
    assert (out / "chains" / "line.txt").exists() or any((out / "chains").glob("line*.txt"))


# slow (~13 s): bridge sampling through compare() is checked against the analytic
# evidence in the fast suite (test_comparison); this is the same through a run config
@pytest.mark.slow
def test_run_with_bridge_sampling_matches_the_analytic_evidence(tmp_path):
    """``evidence_method = "bridge_sampling"`` from the CLI: ln z of both models vs analytic,
    the method recorded in results.json and named in report.md."""
    path = _write_config(tmp_path / "cfg", SMALL_SAMPLER)
    text = path.read_text().replace(
        "x64 = false", 'x64 = false\nevidence_method = "bridge_sampling"'
    )
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-compile-cache"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["config"]["evidence_method"] == "bridge_sampling"
    for name, columns in (("line", 2), ("parabola", 3)):
        model = results["models"][name]
        truth = _analytic_log_evidence(columns)
        assert model["evidence_method"] == "bridge_sampling"
        assert abs(model["log_evidence"] - truth) < 4 * model["log_evidence_std"], (
            name,
            model["log_evidence"],
            model["log_evidence_std"],
            truth,
        )
    assert "bridge sampling (Meng & Wong 1996" in (out / "report.md").read_text()


def test_documented_sampler_table_names_every_nuts_setting():
    """docs/run.md's ``[sampler]`` table lists exactly NUTSConfig's fields, and its
    values make a valid NUTSConfig (a new field must be documented there)."""
    import dataclasses
    import tomllib

    text = (Path(__file__).resolve().parents[1] / "docs" / "run.md").read_text()
    block = text.split("\n[sampler]", 1)[1].split("\n\n", 1)[0]
    table = tomllib.loads(block.split("\n", 1)[1])
    fields = {field.name for field in dataclasses.fields(NUTSConfig)}
    assert set(table) == fields, set(table) ^ fields
    assert NUTSConfig(**table) == NUTSConfig(**table)
    with pytest.raises(ValueError, match="max_tree_depth"):  # control: a bad value fails
        NUTSConfig(**{**table, "max_tree_depth": 0})
