"""Tests of the ``astrobayes evidence``, ``compare`` and ``demo`` subcommands (in-process)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from astrobayes.cli.main import main
from astrobayes.models.problems import gaussian_gaussian_prior, normal_gamma

PULL = 4.5


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name} in a command's output")


def strict_loads(text: str):
    """``json.loads`` that refuses NaN and infinities (as strict parsers do)."""
    return json.loads(text, parse_constant=_reject_constant)


def test_strict_loads_rejects_nan():
    with pytest.raises(ValueError, match="non-standard JSON constant NaN"):
        strict_loads('{"a": NaN}')


def _write_npz(path, chains):
    np.savez(path, samples=chains.samples, log_posterior=chains.log_posterior)
    return str(path)


@pytest.fixture
def gaussian_file(tmp_path, key):
    problem = gaussian_gaussian_prior(2)
    chains = problem.sample_chains(key, 4, 2000)
    return _write_npz(tmp_path / "gauss.npz", chains), problem.log_evidence


@pytest.fixture
def light_tailed_file(tmp_path):
    # posterior prop. to exp(-x1^4 - x2^4): a Gaussian target at T = 0.9 is too wide
    rng = np.random.default_rng(13)
    g = rng.gamma(0.25, 1.0, (4, 2000, 2))
    x = g**0.25 * rng.choice([-1.0, 1.0], size=g.shape)
    path = tmp_path / "quartic.npz"
    np.savez(path, samples=x, log_posterior=-np.sum(x**4, axis=-1))
    return str(path)


def test_evidence_json(gaussian_file, capsys):
    path, truth = gaussian_file
    code = main(["evidence", path, "--json", "--target", "gaussian", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = strict_loads(captured.out)
    assert out["status"] == "ok"
    assert out["status_message"] == "ok"
    assert 0 < out["log_evidence_std"] < 0.05
    assert abs(out["log_evidence"] - truth) <= PULL * out["log_evidence_std"]
    assert out["target"] == "GaussianTarget"
    assert "format: npz" in out["input"]


def test_evidence_text_and_same_seed_same_result(gaussian_file, capsys):
    path, _ = gaussian_file
    args = ["evidence", path, "--target", "gaussian", "--no-progress", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "ln z =" in first
    assert "status: ok" in first
    assert "format: npz" in first
    assert main(args) == 0
    assert capsys.readouterr().out == first


def test_evidence_of_a_single_chain_is_split(tmp_path, key, capsys):
    problem = gaussian_gaussian_prior(2)
    path = _write_npz(tmp_path / "one.npz", problem.sample_chains(key, 1, 4000))
    code = main(["evidence", path, "--json", "--target", "gaussian", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["num_training_chains"] + out["num_inference_chains"] == 4
    assert "cut into 4 contiguous sub-chains" in out["input"]
    assert abs(out["log_evidence"] - problem.log_evidence) <= PULL * out["log_evidence_std"]


def test_evidence_failure_status_exits_1(light_tailed_file, capsys):
    code = main(
        [
            "evidence",
            light_tailed_file,
            "--json",
            "--target",
            "gaussian",
            "--temperature",
            "0.9",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["status"] == "target_too_wide"
    assert "astrobayes evidence: failure" in captured.err


def test_unknown_file_exits_2(tmp_path, capsys):
    prose = tmp_path / "notes.txt"
    prose.write_text("These are my notes about the run.\nNothing numeric here.\n")
    assert main(["evidence", str(prose), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "astrobayes evidence: error:" in err
    assert "notes.txt" in err
    assert "not a recognised chain format" in err


def test_missing_file_and_bad_options_exit_2(gaussian_file, tmp_path, capsys):
    path, _ = gaussian_file
    assert main(["evidence", str(tmp_path / "missing.npz"), "--no-progress"]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert main(["evidence", path, "--target", "gaussian", "--temperature", "1.5"]) == 2
    assert "temperature must lie strictly between 0.0 and 1.0; got 1.5" in capsys.readouterr().err
    assert main(["evidence", path, "--prior-bounds", "p0=1"]) == 2
    assert "--prior-bounds expects NAME=LO,HI" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: astrobayes" in capsys.readouterr().out


def test_compare_prints_bayes_factor(gaussian_file, tmp_path, key, capsys):
    path_a, truth_a = gaussian_file
    problem_b = normal_gamma()
    path_b = _write_npz(tmp_path / "ng.npz", problem_b.sample_chains(key, 4, 2000))
    assert main(["compare", path_a, path_b, "--target", "gaussian", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "ln B(A/B) =" in text
    assert "strong evidence for A" in text
    assert "== model A:" in text
    assert "== model B:" in text

    argv = ["compare", path_a, path_b, "--json", "--target", "gaussian", "--no-progress"]
    assert main(argv) == 0
    out = strict_loads(capsys.readouterr().out)
    truth = truth_a - problem_b.log_evidence
    assert out["jeffreys"] == "strong evidence for A"
    assert abs(out["log_bayes_factor"] - truth) <= PULL * out["log_bayes_factor_std"]
    assert out["A"]["status"] != "target_too_wide"


def test_compare_with_a_failed_evidence_exits_1(gaussian_file, light_tailed_file, capsys):
    path, _ = gaussian_file
    argv = ["compare", path, light_tailed_file, "--target", "gaussian", "--temperature", "0.9"]
    assert main([*argv, "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "ln B(A/B) =" in captured.out
    assert "evidence of model(s) B failed" in captured.err


def test_json_of_a_failed_evidence_is_strict(gaussian_file, light_tailed_file, capsys):
    # A failed estimate carries NaN diagnostics: they must come out as null, not NaN.
    path, _ = gaussian_file
    argv = ["--target", "gaussian", "--temperature", "0.9", "--no-progress", "--json"]
    assert main(["evidence", light_tailed_file, *argv]) == 1
    out = strict_loads(capsys.readouterr().out)
    assert out["status"] == "target_too_wide"
    assert "Pareto k > 0.7" in out["status_message"]
    assert main(["compare", path, light_tailed_file, *argv]) == 1
    out = strict_loads(capsys.readouterr().out)
    assert out["B"]["status"] == "target_too_wide"


@pytest.mark.slow
def test_demo_writes_results(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--no-progress", "--skip-checks"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    results = strict_loads((out / "results.json").read_text())
    assert results["status"] in ("ok", "divergences", "high_rhat", "low_effective_sample_size")
    assert "status_message" in results
    for name in ("lcdm", "wcdm", "w0wacdm"):
        entry = results["models"][name]
        assert np.isfinite(entry["log_evidence"])
        assert entry["log_evidence_std"] > 0
    assert results["reference"] == "lcdm"
    assert (out / "report.md").is_file()
    assert (out / "triangle_lcdm.png").is_file()
    assert (out / "comparison.png").is_file()
    assert (out / "demo.toml").is_file()
    assert (out / "chains" / "w0wacdm.nc").is_file()
    assert "ln B vs lcdm" in captured.out


def test_module_entry_point_is_importable():
    from astrobayes.cli import main as module

    assert callable(module.main)
    assert jax.__version__  # the CLI runs on jax; keep the import used


def test_demo_config_gives_each_model_its_settings_and_its_toml_reads_back():
    # The demo's models run with demo_sampling(): the TOML written to DIR/demo.toml reads
    # back to the same config (so `astrobayes run DIR/demo.toml` reproduces the demo).
    import tomllib

    from astrobayes.cli.demo import DEMO_SAMPLING, _toml, demo_config, demo_sampling
    from astrobayes.runconfig import run_config_from_mapping

    table = demo_config(3)
    config = run_config_from_mapping(table)
    assert {n: config.sampling(n) for n in config.models} == demo_sampling()
    assert config.sampling("w0wacdm") == DEMO_SAMPLING
    assert config.sampling("lcdm") != DEMO_SAMPLING  # its own dense metric
    assert run_config_from_mapping(tomllib.loads(_toml(table))) == config


def test_a_burn_in_is_named_as_a_fraction_of_the_chain_in_the_file(tmp_path, key, capsys):
    # One chain (cut into 4 sub-chains by the CLI) whose first 5% relax from far out:
    # the suggested --burn-in is a fraction of the file's chain (0.05), not of a
    # sub-chain (which says 0.1 here), and dropping it clears the warning.
    problem = gaussian_gaussian_prior(2)
    chains = problem.sample_chains(key, 1, 8000)
    samples = chains.samples.copy()
    samples[:, :400] += 10.0 * np.exp(-np.arange(400) / 100.0)[None, :, None]
    log_posterior = np.asarray(jax.vmap(jax.vmap(problem.logdensity_fn))(samples))
    path = str(tmp_path / "burned.npz")
    np.savez(path, samples=samples, log_posterior=log_posterior)
    args = ["evidence", path, "--json", "--target", "gaussian", "--no-progress"]
    assert main(args) == 0
    out = strict_loads(capsys.readouterr().out)
    assert out["status"] == "not_stationary", out["messages"]
    assert out["stationarity"]["burn_in"] == 0.05
    assert main([*args, "--burn-in", "0.05"]) == 0
    out = strict_loads(capsys.readouterr().out)
    assert out["status"] == "ok", out["messages"]
    assert out["stationarity"]["stationary"] is True


def test_a_stuck_stretch_of_a_single_chain_is_named_among_its_sub_chains(tmp_path, key, capsys):
    # the CLI cuts one chain into 4; the second quarter is frozen. The chain as a whole
    # moved in most of its steps, so the sub-chains' finding must survive the CLI's
    # second stationarity test on the chain as read.
    problem = gaussian_gaussian_prior(2)
    samples = np.array(problem.sample_chains(key, 1, 8000).samples)
    samples[0, 2000:4000] = samples[0, 2000]
    log_posterior = np.asarray(jax.vmap(jax.vmap(problem.logdensity_fn))(samples))
    path = str(tmp_path / "frozen.npz")
    np.savez(path, samples=samples, log_posterior=log_posterior)
    main(["evidence", path, "--json", "--target", "gaussian", "--no-progress"])
    out = strict_loads(capsys.readouterr().out)
    assert out["stuck_chains"] == [1]
    assert any("moved in fewer than 1%" in m for m in out["messages"])


def test_a_getdist_chain_pressed_against_its_prior_edge_is_estimated_without_edges(
    tmp_path, capsys
):
    # A half-normal posterior on a flat prior [0, 5] written as a GetDist chain with its
    # .ranges: the CLI passes the ranges to the estimate, which maps x to ln(x) - ln(5 - x)
    # (biased high by the target's mass below 0 otherwise: +7 to +15 sigma, measured)
    from astrobayes.io import write_getdist_chains

    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((8, 2000, 1)))
    root = tmp_path / "half"
    write_getdist_chains(root, x, ["x"], ranges={"x": (0.0, 5.0)}, loglikes=0.5 * x[..., 0] ** 2)
    # -ln L = x^2 / 2 with L unnormalised by 1/sqrt(2 pi): z = 0.5 sqrt(2 pi) / 5
    truth = np.log(0.5 * np.sqrt(2 * np.pi) / 5.0)
    code = main(["evidence", str(root), "--json", "--target", "gaussian", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["unbounded"] == ["x"]
    assert "prior edges known for x" in out["input"]
    assert abs(out["log_evidence"] - truth) <= PULL * out["log_evidence_std"]
