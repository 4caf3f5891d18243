import json

import numpy as np
import pytest

from astrobayes.cli.main import main
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
        ({"bogus": 1}, "unknown config keys"),
        ({"training": {"epochs": 3}}, r"unknown keys \['epochs'\] in \[training\]"),
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
    with pytest.raises(ValueError, match="missing required keys"):
        config_from_dict({"simulator": "a:b"})


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
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert len(diagnostics["rounds"]) == 2
    assert 0 < diagnostics["rounds"][1]["acceptance_rate"] <= 1
    assert "expected_coverage" in diagnostics["calibration"]
    assert (out / "coverage.png").exists()
    assert len(list((out / "simulations").glob("chunk_*.npz"))) == 2
