"""Python (non-JAX) log-likelihoods: the wrapper, SMC on them, executors, ``astrobayes run``."""

from __future__ import annotations

import json
import math
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from astrobayes._workers import ModuleFunction
from astrobayes.cli.main import main
from astrobayes.comparison import compare
from astrobayes.models import Model, PythonLikelihood, PythonLikelihoodStatus
from astrobayes.runconfig import run_config_from_mapping
from astrobayes.sampling import NUTSConfig, SMCConfig
from astrobayes.sbi.executors import ExecutorConfig

# y = a + b x + N(0, 0.3^2) at 12 points; a, b ~ N(0, 2^2): ln z in closed form
X = np.linspace(-1.0, 1.0, 12)
Y = 0.4 + 1.1 * X + 0.3 * np.random.default_rng(7).standard_normal(12)
SIGMA, PRIOR_SCALE = 0.3, 2.0


def _line(params, data=None):
    """Plain NumPy: JAX could not trace the ``float()`` calls."""
    x, y = (X, Y) if data is None else (data["points"][:, 0], data["points"][:, 1])
    residual = (y - float(params["a"]) - float(params["b"]) * x) / SIGMA
    return float(-0.5 * residual @ residual - x.size * math.log(math.sqrt(2 * math.pi) * SIGMA))


def _analytic_log_evidence(x=X, y=Y) -> float:
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = SIGMA**2 * np.eye(x.size) + PRIOR_SCALE**2 * design @ design.T
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    return float(-0.5 * y @ np.linalg.solve(cov, y) - 0.5 * logdet)


PRIORS = {"a": dist.Normal(0.0, PRIOR_SCALE), "b": dist.Normal(0.0, PRIOR_SCALE)}


def test_values_inside_jax_equal_direct_calls_and_are_counted():
    likelihood = PythonLikelihood(_line, name="line")
    points = jnp.array([[0.1, 1.0], [0.5, -0.3], [2.0, 0.0]])
    values = jax.jit(jax.vmap(lambda p: likelihood({"a": p[0], "b": p[1]})))(points)
    direct = [_line({"a": float(a), "b": float(b)}) for a, b in np.asarray(points, np.float64)]
    np.testing.assert_allclose(np.asarray(values), direct, rtol=1e-6)
    assert likelihood.evaluations == 3
    assert likelihood.failures == 0
    assert likelihood.status is PythonLikelihoodStatus.OK


def test_failed_calls_are_zero_likelihood_counted_and_a_warning():
    def fragile(params):
        if params["x"] > 1.0:
            raise RuntimeError("the Boltzmann code did not converge")
        return -0.5 * params["x"] ** 2

    likelihood = PythonLikelihood(fragile, name="m")
    values = jax.vmap(lambda x: likelihood({"x": x}))(jnp.array([0.0, 2.0, 3.0]))
    assert float(values[0]) == 0.0
    assert np.all(np.isneginf(np.asarray(values[1:])))
    assert likelihood.failures == 2
    assert likelihood.evaluations == 3
    assert likelihood.status is PythonLikelihoodStatus.FAILED_CALLS
    ((message, point),) = likelihood.errors.items()  # one distinct message, its first point
    assert "did not converge" in message
    assert point == {"x": 2.0}
    with pytest.raises(ValueError, match=r"model 'm': the Python log-likelihood at \{'x': 2.0\}"):
        likelihood.check({"x": 2.0})


def test_gradient_samplers_refuse_it_by_name(key):
    model = Model.from_priors("line", PythonLikelihood(_line, name="line"), PRIORS)
    with pytest.raises(TypeError, match="model 'line' has a Python log-likelihood"):
        compare(key, [model], sampling=NUTSConfig(num_chains=2, num_warmup=10, num_samples=10))
    with pytest.raises(ValueError, match=r"models \['line'\] have a python_likelihood"):
        run_config_from_mapping(
            {
                "models": {
                    "line": {
                        "python_likelihood": "m:f",
                        "parameters": {"a": {"prior": "normal", "loc": 0, "scale": 1}},
                    }
                }
            }
        )


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_smc_on_a_python_likelihood_gives_the_analytic_evidence(key, shift):
    """Within 4 combined sigma of the closed form; a likelihood off by +1 must fail."""
    likelihood = PythonLikelihood(lambda p: _line(p) + shift, name="line")
    model = Model.from_priors("line", likelihood, PRIORS)
    config = SMCConfig(num_particles=400, preconditioner="diagonal")
    report = compare(key, [model], sampling=config).models["line"]
    truth = _analytic_log_evidence()
    pull = (report.log_evidence - truth) / report.log_evidence_std
    assert report.log_evidence_std < 0.2
    if shift == 0.0:
        assert abs(pull) < 4.0, (report.log_evidence, truth, report.log_evidence_std)
        assert likelihood.evaluations >= report.sampling.result.num_logdensity_evaluations
    else:  # negative control: the wrong normalisation is seen
        assert pull > 4.0


def _user_module(folder, body: str, name: str = "userlik") -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


LINE_MODULE = """
    import math
    import numpy as np

    def line(params, data):
        x, y = data["points"][:, 0], data["points"][:, 1]
        r = (y - params["a"] - params["b"] * x) / 0.3
        return float(-0.5 * r @ r - x.size * math.log(math.sqrt(2 * math.pi) * 0.3))

    def y_at_one(params):
        return params["a"] + params["b"]
"""


def test_executors_give_the_serial_values_bit_for_bit(tmp_path):
    """A function of a module beside a config (not on sys.path) runs on spawned workers."""
    _user_module(tmp_path, LINE_MODULE)
    function = ModuleFunction("userlik", "line", str(tmp_path))
    data = {"points": np.stack([X, Y], axis=1)}
    rows = np.random.default_rng(0).normal(size=(37, 2))
    serial = PythonLikelihood(function, data=data).evaluate(("a", "b"), rows)[0]
    with ThreadPoolExecutor(3) as threads:
        threaded = PythonLikelihood(function, data=data, executor=threads)
        np.testing.assert_array_equal(threaded.evaluate(("a", "b"), rows)[0], serial)
    with ExecutorConfig("process", num_workers=2).make() as pool:
        spawned = PythonLikelihood(function, data=data, executor=pool)
        assert spawned.check({"a": 0.1, "b": 0.2}) == serial_value(function, data)
        np.testing.assert_array_equal(spawned.evaluate(("a", "b"), rows)[0], serial)
        assert spawned.evaluations == 37
        missing = PythonLikelihood(ModuleFunction("no_such_module", "line", str(tmp_path)))
        missing.executor = pool
        with pytest.raises(ValueError, match="No module named 'no_such_module'"):
            missing.check({"a": 0.1, "b": 0.2})


def serial_value(function, data) -> float:
    return function({"a": 0.1, "b": 0.2}, data)


def _write_config(folder, *, sampler_kind="smc", extra="", likelihood="userlik:line"):
    np.savetxt(folder / "points.txt", np.stack([X, Y], axis=1))
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            sampler_kind = "{sampler_kind}"
            {extra}
            [models.line]
            python_likelihood = "{likelihood}"
            data = {{ points = "points.txt" }}
            [models.line.parameters]
            a = {{ prior = "normal", loc = 0.0, scale = 2.0 }}
            b = {{ prior = "normal", loc = 0.0, scale = 2.0 }}
            sigma = {{ prior = "fixed", value = 0.3 }}
            y1 = {{ prior = "derived", function = "userlik:y_at_one" }}
            """
        )
    )
    return path


def test_run_cli_samples_a_python_likelihood_with_smc(tmp_path, capsys):
    """On 2 spawned processes: the likelihood and the derived parameter shipped by name."""
    _user_module(tmp_path, LINE_MODULE)
    path = _write_config(
        tmp_path,
        extra='[smc]\nnum_particles = 400\npreconditioner = "diagonal"\n'
        '[executor]\nkind = "process"\nnum_workers = 2',
    )
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "Python likelihood of line on a process pool (2 workers)" in printed
    assert re.search(r"line: Python log-likelihood, \d+ calls, none failed", printed)
    results = json.loads((out / "results.json").read_text())
    model = results["models"]["line"]
    assert model["python_likelihood"]["failures"] == 0
    assert model["python_likelihood"]["evaluations"] > model["smc"]["num_logdensity_evaluations"]
    truth = _analytic_log_evidence()
    assert abs(model["log_evidence"] - truth) < 4 * model["log_evidence_std"]
    table = np.load(out / "chains" / "line.npz")
    assert [str(n) for n in table["names"]] == ["a", "b"]
    assert [str(n) for n in table["derived_names"]] == ["y1"]
    samples = table["samples"]
    np.testing.assert_allclose(table["derived"][..., 0], samples[..., 0] + samples[..., 1])
    assert "## Python likelihoods" in (out / "report.md").read_text()


def test_run_cli_refuses_what_cannot_run(tmp_path):
    _user_module(tmp_path, LINE_MODULE)
    with pytest.raises(ValueError, match='sampler_kind = "smc"'):
        run_config_from_mapping(
            {
                "models": {
                    "m": {
                        "python_likelihood": "userlik:line",
                        "parameters": {"a": {"prior": "normal", "loc": 0, "scale": 1}},
                    }
                }
            }
        )
    with pytest.raises(ValueError, match=r"an \[executor\] table sets where python_likelihood"):
        run_config_from_mapping(
            {
                "executor": {"kind": "serial"},
                "models": {
                    "m": {
                        "likelihood": "userlik:line",
                        "parameters": {"a": {"prior": "normal", "loc": 0, "scale": 1}},
                    }
                },
            }
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    _user_module(broken, LINE_MODULE.replace('data["points"][:, 0]', 'data["pts"][:, 0]'))
    path = _write_config(broken, extra='[executor]\nkind = "serial"')
    # the user's KeyError comes at the prior-draw check, before anything is sampled
    assert main(["run", str(path), "--check"]) == 2
    assert not (broken / "config-run").exists()


def test_the_documented_example_passes_its_check_on_two_worker_processes(capsys):
    """examples/run_python_likelihood: SciPy distances, checked here and on a worker."""
    config = (
        Path(__file__).resolve().parents[1] / "examples" / "run_python_likelihood" / "config.toml"
    )
    assert main(["run", str(config), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "Python likelihood of lcdm, wcdm on a process pool (2 workers)" in printed
    assert "derived: OL" in printed


def test_run_cli_reports_failed_calls_in_the_table_status_and_files(tmp_path, capsys):
    """A likelihood raising for a > 3 (7% of the prior): warned, counted, never 'ok'."""
    _user_module(
        tmp_path,
        LINE_MODULE.replace(
            "def line(params, data):\n",
            "def line(params, data):\n"
            "        if params['a'] > 3:\n"
            "            raise RuntimeError('no convergence')\n",
        ),
    )
    path = _write_config(
        tmp_path,
        extra='[smc]\nnum_particles = 400\npreconditioner = "diagonal"\n[executor]\nkind = "serial"',
    )
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"line: \d+ of \d+ calls failed and were given zero likelihood", printed)
    assert "RuntimeError: no convergence" in printed
    model = json.loads((out / "results.json").read_text())["models"]["line"]
    assert model["status"] == "failed_calls"
    assert model["python_likelihood"]["failures"] > 0
    assert model["python_likelihood"]["errors"][0]["at"]["a"] > 3
    # the posterior (a ~ 0.4 +- 0.1) lies where the code ran: ln z is still the closed form's
    assert abs(model["log_evidence"] - _analytic_log_evidence()) < 4 * model["log_evidence_std"]


def test_worker_imports_stay_light():
    """A spawned worker unpickling a chunk imports astrobayes._workers: no JAX with it."""
    import subprocess
    import sys

    code = "import sys, astrobayes._workers; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_settings_are_named():
    with pytest.raises(TypeError, match="log_likelihood_fn must be callable; got int"):
        PythonLikelihood(3)
    with pytest.raises(TypeError, match=r"executor must have submit\(fn, \*args\)"):
        PythonLikelihood(_line, executor="process")
    with pytest.raises(ValueError, match="chunks_per_worker must be >= 1; got 0"):
        PythonLikelihood(_line, chunks_per_worker=0)
    with pytest.raises(ValueError, match="executor must be one of"):
        ExecutorConfig("threads")
    with pytest.raises(ValueError, match="scheduler is for executor = 'dask'"):
        ExecutorConfig("process", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="a serial executor has one worker"):
        ExecutorConfig("serial", num_workers=2)
    with pytest.raises(ValueError, match="the cluster's own workers are used"):
        ExecutorConfig("dask", num_workers=2, scheduler="tcp://127.0.0.1:8786")


def test_the_pre_run_check_tries_other_prior_draws_before_calling_the_code_broken(key):
    """Failing in part of the prior is data for the run; failing everywhere is an error."""
    from astrobayes.runconfig import ModelSpec, ParameterSpec, check_python_model, python_likelihood

    spec = ModelSpec(
        python_likelihood="m:f", parameters={"a": ParameterSpec("uniform", low=0.0, high=1.0)}
    )

    def fails_mostly(params):
        if params["a"] < 0.6:
            raise RuntimeError("outside the code's range")
        return 0.0

    point = check_python_model(key, "m", spec, python_likelihood("m", spec, fails_mostly))
    assert point["a"] >= 0.6  # found after the draws below 0.6 (P(10 misses) = 0.6**10)

    def always_fails(params):
        raise RuntimeError("broken build")

    with pytest.raises(ValueError, match=r"broken build \(and at every one of the 10 prior"):
        check_python_model(key, "m", spec, python_likelihood("m", spec, always_fails))
