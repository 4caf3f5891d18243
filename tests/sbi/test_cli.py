import json
import pickle
import re
import sys

import jax
import numpy as np
import pytest

from astrobayes._training import TrainingConfig
from astrobayes.cli.main import main
from astrobayes.cli.sbi import FileFunction, load_simulator_function
from astrobayes.sbi import config_from_dict

BASE = {
    "simulator": "sbi_example_simulator:simulate",
    "prior": {"a": {"uniform": [-1.0, 1.0]}, "b": {"normal": [0.0, 1.0]}},
    "x_obs": [0.2, 0.3, 0.5, 0.6, 0.8],
}


def test_config_maps_onto_dataclass():
    config = config_from_dict({**BASE, "method": "nre", "training": {"max_epochs": 3}})
    assert config.method == "nre"
    assert config.training.max_epochs == 3
    assert config.build_prior().names == ("a", "b")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"method": "abc"}, "method must be one of"),
        ({"posterior_method": "gibbs"}, "posterior_method must be one of"),
        ({"simulator": "no_colon"}, "package.module:function"),
        ({"bogus": 1}, "unknown key 'bogus' in the top-level table"),
        ({"training": {"epochs": 3}}, r"unknown key 'epochs' in \[training\]"),
        ({"training": {"stop_after_epochs": 3}}, r"allowed: .*patience"),
        ({"num_simulations": 5}, "num_simulations must be >= 10"),
        ({"embedding": "cnn2d", "method": "nle"}, "not available with method 'nle'"),
        ({"prior": {"a": {"beta": [1, 2]}}}, "unknown distribution"),
        ({"embedding_downsample": "avg"}, "embedding_downsample must be 'max' or 'stride'"),
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({**BASE, **change})


def test_config_cnn_options_reach_the_embedding():
    import jax

    from astrobayes.sbi.pipeline import _embedding

    config = config_from_dict(
        {
            **BASE,
            "embedding": "cnn2d",
            "embedding_downsample": "stride",
            "embedding_global_pool": True,
        }
    )
    embedding = _embedding(jax.random.key(0), config, (16, 16))
    assert (embedding.downsample, embedding.global_pool) == ("stride", True)
    with pytest.raises(TypeError, match="embedding_global_pool must be true or false"):
        config_from_dict({**BASE, "embedding_global_pool": "yes"})


def test_config_missing_keys():
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['prior', 'x_obs'\]"):
        config_from_dict({"simulator": "a:b"})


def test_training_table_uses_the_shared_vocabulary():
    config = config_from_dict({**BASE, "training": {"patience": 7, "weight_decay": 0.01}})
    assert isinstance(config.training, TrainingConfig)
    assert (config.training.patience, config.training.weight_decay) == (7, 0.01)
    assert (config.training.learning_rate, config.training.batch_size) == (5e-4, 200)


SIMULATOR_FILE = """
import jax

def simulate(key, theta):
    return theta + 0.1 * jax.random.normal(key, theta.shape)

def python_simulate(seed, theta):
    return theta + 1.0
"""


def test_simulator_loaded_by_path_without_touching_sys_path(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "my_sim.py").write_text(SIMULATOR_FILE)
    before = list(sys.path)
    function = load_simulator_function("pkg.my_sim:python_simulate", (tmp_path,))
    assert sys.path == before
    assert "pkg.my_sim" not in sys.modules
    assert isinstance(function, FileFunction)
    np.testing.assert_array_equal(function(0, np.zeros(2)), np.ones(2))
    # Pickles as (path, name) so that spawned simulator workers can load it again.
    again = pickle.loads(pickle.dumps(function))
    np.testing.assert_array_equal(again(0, np.zeros(2)), np.ones(2))
    with pytest.raises(ValueError, match="has no callable 'missing'"):
        load_simulator_function("pkg.my_sim:missing", (tmp_path,))
    with pytest.raises(ValueError, match="cannot import simulator module"):
        load_simulator_function("not_a_module_anywhere:f", (tmp_path,))
    # Importable modules still work by name.
    assert load_simulator_function("json:dumps", (tmp_path,)) is json.dumps


def _refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")


def test_cli_small_run_writes_strict_json(tmp_path, capsys):
    """A tiny NPE run (2 epochs): strict JSON and the training warning in the statuses."""
    (tmp_path / "my_sim.py").write_text(SIMULATOR_FILE)
    (tmp_path / "config.toml").write_text(
        'simulator = "my_sim:simulate"\nnum_simulations = 60\nx_obs = [0.1, -0.2]\n'
        "num_posterior_samples = 20\nnum_validation = 10\nposterior_method = 'direct'\n"
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
        "[training]\nmax_epochs = 2\nbatch_size = 20\n"
        "[flow]\nflow_layers = 1\nnn_width = 8\nnn_depth = 1\nknots = 0\n"
    )
    before = list(sys.path)
    out = tmp_path / "out"
    assert main(["sbi", str(tmp_path / "config.toml"), "--out", str(out), "--no-plots"]) in (0, 1)
    assert sys.path == before
    text = (out / "diagnostics.json").read_text()
    diagnostics = json.loads(text, parse_constant=_refuse)
    assert diagnostics["rounds"][0]["training_status"] == "max_epochs"
    assert "max_epochs" in diagnostics["rounds"][0]["training_status_message"]
    assert diagnostics["status"] == "max_epochs"
    assert diagnostics["posterior_status"] == "success"
    assert diagnostics["calibration"]["num_tests"] == 10
    assert "training reached max_epochs" in capsys.readouterr().err
    # the posterior as GetDist chains with the prior's edges, read back by GetDist
    from getdist import loadMCSamples

    with np.load(out / "posterior.npz") as archive:
        samples, names = archive["samples"], list(archive["names"])
    assert (out / "chains" / "posterior.ranges").read_text().splitlines() == [
        "a\t-1.0\t1.0",
        "b\t-1.0\t1.0",
    ]
    loaded = loadMCSamples(str(out / "chains" / "posterior"))
    assert [p.name for p in loaded.paramNames.names] == names
    np.testing.assert_allclose(
        loaded.getMeans()[:2], samples.astype(np.float64).mean(axis=0), rtol=1e-12
    )


BROKEN_SIMULATORS = """
import jax.numpy as jnp

def python_if(key, theta):
    if theta[0] > 0:
        return theta
    return -theta

def four_values(key, theta):
    return jnp.zeros(4) + theta[0]
"""


def test_cli_names_a_python_simulator_whose_output_cannot_match_x_obs(tmp_path, capsys):
    (tmp_path / "broken.py").write_text(BROKEN_SIMULATORS)
    (tmp_path / "config.toml").write_text(
        'simulator = "broken:four_values"\nsimulator_kind = "python"\nexecutor = "serial"\n'
        "num_simulations = 20\nx_obs = [0.1, -0.2]\nnum_validation = 0\n"
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
    )
    argv = ["sbi", str(tmp_path / "config.toml"), "--out", str(tmp_path / "out"), "--no-plots"]
    assert main([*argv, "--no-progress"]) == 2
    # named by the config's reference (it was "simulator 'FileFunction'", the CLI's wrapper)
    assert "x_obs has 2 values but simulator 'broken:four_values' returns shape (4,)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            "python_if",
            "simulator 'broken:python_if': its code raised TracerBoolConversionError when JAX "
            "traced it: .* use jnp.where",
        ),
        (
            "four_values",
            r"x_obs has 2 values but simulator 'broken:four_values' returns shape \(4,\)",
        ),
    ],
)
def test_cli_names_a_broken_jax_simulator_before_simulating(tmp_path, capsys, function, message):
    (tmp_path / "broken.py").write_text(BROKEN_SIMULATORS)
    (tmp_path / "config.toml").write_text(
        f'simulator = "broken:{function}"\nnum_simulations = 60\nx_obs = [0.1, -0.2]\n'
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
    )
    out = tmp_path / "out"
    assert main(["sbi", str(tmp_path / "config.toml"), "--out", str(out), "--no-plots"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not list(out.glob("simulations/*.npz"))  # refused before any simulation


def test_cli_killed_mid_simulation_resumes_to_the_uninterrupted_posterior(
    tmp_path, capsys, monkeypatch
):
    from astrobayes.io.simulations import SimulationStore

    (tmp_path / "my_sim.py").write_text(SIMULATOR_FILE)
    config = tmp_path / "config.toml"
    config.write_text(
        'simulator = "my_sim:simulate"\nnum_simulations = 2500\nx_obs = [0.1, -0.2]\n'
        "num_posterior_samples = 50\nnum_validation = 0\n"
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
        "[training]\nmax_epochs = 2\n"
        "[flow]\nflow_layers = 1\nnn_width = 8\nnn_depth = 1\nknots = 0\n"
    )
    argv = ["sbi", str(config), "--no-plots", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) in (0, 1)
    append = SimulationStore.append

    def append_then_kill(self, *args, **kwargs):
        path = append(self, *args, **kwargs)
        if kwargs.get("chunk") == 1:  # killed after the second of three chunks
            raise _Killed
        return path

    out = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(SimulationStore, "append", append_then_kill)
        with pytest.raises(_Killed):
            main([*argv, "--out", str(out)])
    assert len(list((out / "simulations").glob("chunk_*.npz"))) == 2
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) in (0, 1)
    assert "resuming: 2 chunk(s) of simulations" in capsys.readouterr().out
    assert len(list((out / "simulations").glob("chunk_*.npz"))) == 3
    with (
        np.load(tmp_path / "whole" / "posterior.npz") as whole,
        np.load(out / "posterior.npz") as resumed,
    ):
        np.testing.assert_array_equal(resumed["samples"], whole["samples"])
    # another configuration in the same folder is refused, not mixed in
    config.write_text(config.read_text().replace("x_obs = [0.1, -0.2]", "x_obs = [0.2, -0.2]"))
    assert main([*argv, "--out", str(out)]) == 2
    assert "holds the simulations of another run" in capsys.readouterr().err


def test_cli_check_traces_or_runs_the_simulator_once_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "my_sim.py").write_text(SIMULATOR_FILE)
    (tmp_path / "broken.py").write_text(BROKEN_SIMULATORS)
    base = (
        "x_obs = [0.1, -0.2]\n[prior]\na = { uniform = [-1.0, 1.0] }\nb = { normal = [0.0, 2.0] }\n"
    )
    config = tmp_path / "config.toml"
    out = tmp_path / "out"
    config.write_text('simulator = "my_sim:simulate"\n' + base)
    assert main(["sbi", str(config), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "prior: a ~ U(-1, 1), b ~ N(0, 2)" in printed
    assert "output shape (2,) (one abstract trace); x_obs: 2 values" in printed
    config.write_text('simulator = "my_sim:python_simulate"\nsimulator_kind = "python"\n' + base)
    assert main(["sbi", str(config), "--out", str(out), "--check"]) == 0
    assert "output shape (2,) (one simulation at the prior's centre)" in capsys.readouterr().out
    assert not out.exists()
    config.write_text('simulator = "broken:four_values"\n' + base)  # the negative control
    assert main(["sbi", str(config), "--out", str(out), "--check"]) == 2
    assert "x_obs has 2 values but simulator 'broken:four_values' returns shape (4,)" in (
        capsys.readouterr().err
    )


class _Killed(Exception):
    """Stands in for a SIGKILL."""


def test_cli_reports_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(
        'simulator = "x:y"\nmethod = "abc"\nx_obs = [1]\n[prior]\na = {uniform = [0, 1]}\n'
    )
    assert main(["sbi", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "method must be one of" in capsys.readouterr().err
    assert main(["sbi", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    import shutil
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copy(examples / "sbi_example_simulator.py", tmp_path)
    np.save(tmp_path / "x_obs.npy", np.array([0.2, 0.3, 0.5, 0.6, 0.8]))
    (tmp_path / "config.toml").write_text(
        'simulator = "sbi_example_simulator:simulate"\nmethod = "npe"\nnum_simulations = 500\n'
        'num_rounds = 2\nx_obs = "x_obs.npy"\nnum_posterior_samples = 300\nnum_validation = 50\n'
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { normal = [0.0, 1.0] }\n"
        "[training]\nmax_epochs = 20\n"
    )
    out = tmp_path / "out"
    assert main(["sbi", str(tmp_path / "config.toml"), "--out", str(out)]) == 0
    with np.load(out / "posterior.npz") as posterior:
        assert posterior["samples"].shape == (300, 2)
        assert list(posterior["names"]) == ["a", "b"]
    diagnostics = json.loads((out / "diagnostics.json").read_text(), parse_constant=_refuse)
    assert len(diagnostics["rounds"]) == 2
    assert diagnostics["provenance"]["packages"]["jax"] == jax.__version__
    assert 0 < diagnostics["rounds"][1]["acceptance_rate"] <= 1
    assert "expected_coverage" in diagnostics["calibration"]
    assert (out / "coverage.png").exists()
    assert (out / "triangle.png").exists()
    # b is normal: an open range; a uniform on [-1, 1]
    assert (out / "chains" / "posterior.ranges").read_text().splitlines() == [
        "a\t-1.0\t1.0",
        "b\tN\tN",
    ]
    assert len(list((out / "simulations").glob("chunk_*.npz"))) == 2


FAILING_SIMULATOR_FILE = """
import jax.numpy as jnp
import jax


def simulate(key, theta):
    x = theta + 0.1 * jax.random.normal(key, theta.shape)
    return jnp.where(theta[0] > 0.0, jnp.nan, x)
"""


def test_cli_says_what_was_not_checked_and_where_simulations_failed(tmp_path, capsys):
    """num_validation = 0 is 'not checked', and failures on half the prior are a warning."""
    (tmp_path / "half_sim.py").write_text(FAILING_SIMULATOR_FILE)
    (tmp_path / "config.toml").write_text(
        'simulator = "half_sim:simulate"\nnum_simulations = 80\nx_obs = [-0.5, 0.2]\n'
        "num_posterior_samples = 20\nnum_validation = 0\nposterior_method = 'direct'\n"
        "[prior]\na = { uniform = [-1.0, 1.0] }\nb = { uniform = [-1.0, 1.0] }\n"
        "[training]\nmax_epochs = 2\nbatch_size = 20\n"
        "[flow]\nflow_layers = 1\nnn_width = 8\nnn_depth = 1\nknots = 0\n"
    )
    out = tmp_path / "out"
    assert main(["sbi", str(tmp_path / "config.toml"), "--out", str(out), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "calibration not checked (num_validation = 0)" in captured.out
    assert "calibrated" not in captured.out.replace("not checked", "")
    assert "posterior is conditional on the simulator succeeding" in captured.err
    assert "failures concentrate in a in [0" in captured.err
    diagnostics = json.loads((out / "diagnostics.json").read_text(), parse_constant=_refuse)
    assert diagnostics["rounds"][0]["simulation_status"] == "some_failed"
    locations = diagnostics["failure_locations"]
    assert locations["parameter"] == 0
    assert 0.3 < locations["failed_fraction_total"] < 0.7


def test_build_simulator_follows_simulator_kind():
    from dataclasses import replace

    from astrobayes.sbi import JaxSimulator, PythonSimulator, build_simulator, config_from_dict

    config = config_from_dict(
        {"simulator": "json:dumps", "x_obs": [0.0], "prior": {"a": {"uniform": [0.0, 1.0]}}}
    )
    assert isinstance(build_simulator(config, lambda k, t: t), JaxSimulator)
    python = build_simulator(replace(config, simulator_kind="python"), lambda s, t: t)
    assert isinstance(python, PythonSimulator)
    with pytest.raises(ValueError, match="cannot import simulator module 'no_such_module'"):
        build_simulator(replace(config, simulator="no_such_module:f"))
