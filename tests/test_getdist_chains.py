"""GetDist chain files: what GetDist loads and what astrobayes.io.read_chains reads back."""

from __future__ import annotations

import numpy as np
import pytest

from astrobayes.chains import Chains, chains_from_list
from astrobayes.io import read_chains, write_getdist_chains

LABELS = {"omega_m": r"\Omega_{\rm m}", "wa": "w_a"}
RANGES = {"omega_m": (0.01, 0.99), "wa": (-3.0, 2.0)}


@pytest.fixture
def chains():
    rng = np.random.default_rng(3)
    x = np.stack(
        [0.3 + 0.02 * rng.normal(size=(3, 200)), -3 + np.abs(rng.normal(size=(3, 200)))], -1
    )
    return Chains(x, -0.5 * ((x - [0.3, -3]) ** 2).sum(-1), names=("omega_m", "wa"))


def test_files_names_labels_ranges_and_header(tmp_path, chains):
    paths = write_getdist_chains(tmp_path / "run", chains, None, LABELS, {"wa": (-3.0, None)})
    assert [p.name for p in paths] == [
        "run_1.txt",
        "run_2.txt",
        "run_3.txt",
        "run.paramnames",
        "run.ranges",
    ]
    assert (tmp_path / "run.paramnames").read_text().splitlines() == [
        "omega_m\t\\Omega_{\\rm m}",
        "wa\tw_a",
    ]
    assert (tmp_path / "run.ranges").read_text().splitlines() == ["omega_m\tN\tN", "wa\t-3.0\tN"]
    head = (tmp_path / "run_1.txt").read_text().splitlines()[:2]
    assert head[0].startswith("# astrobayes GetDist chain")
    assert "open" in head[1]
    table = np.loadtxt(tmp_path / "run_2.txt")
    np.testing.assert_array_equal(table[:, 2:], chains.samples[1])  # full precision
    np.testing.assert_array_equal(table[:, 1], -chains.log_posterior[1])


def test_read_chains_gets_the_log_posterior_back(tmp_path, chains):
    # With a closed box, column 2 is -ln L for a flat prior; read_chains subtracts ln V again.
    write_getdist_chains(tmp_path / "run", chains, None, LABELS, RANGES)
    back = read_chains(tmp_path / "run")
    np.testing.assert_array_equal(back.chains.samples, chains.samples)
    np.testing.assert_allclose(back.chains.log_posterior, chains.log_posterior, atol=1e-12)
    # negative control: the column itself is not the log posterior
    column = -np.loadtxt(tmp_path / "run_1.txt")[:, 1]
    assert np.abs(column - chains.log_posterior[0]).min() > 1.0


def test_padding_is_not_written_and_stale_chains_are_removed(tmp_path):
    padded = chains_from_list([np.zeros((3, 1)), np.ones((5, 1))], [np.zeros(3), np.zeros(5)])
    write_getdist_chains(tmp_path / "r", np.zeros((4, 2, 1)), ["x"])
    assert (tmp_path / "r_4.txt").is_file()
    write_getdist_chains(tmp_path / "r", padded)
    assert not (tmp_path / "r_3.txt").exists()
    assert not (tmp_path / "r_4.txt").exists()
    assert np.loadtxt(tmp_path / "r_1.txt", ndmin=2).shape == (3, 3)
    assert np.loadtxt(tmp_path / "r_2.txt", ndmin=2).shape == (5, 3)


def test_mapping_input_as_in_a_model_report(tmp_path):
    posterior = {"a": np.arange(6.0).reshape(2, 3), "b": np.ones((2, 3))}
    write_getdist_chains(tmp_path / "m", posterior, ["b", "a"])
    assert (tmp_path / "m.paramnames").read_text().split() == ["b", "b", "a", "a"]
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "m_2.txt")[:, 3], [3.0, 4.0, 5.0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chains": np.zeros((2, 3, 1))}, ValueError, "names must be given"),
        ({"chains": np.zeros((2, 3, 1)), "names": ["a b"]}, ValueError, "GetDist parameter names"),
        ({"chains": np.zeros((2, 3, 2)), "names": ["a"]}, ValueError, "dim = 2"),
        ({"chains": "x"}, TypeError, "must be an astrobayes Chains"),
        (
            {"chains": np.zeros((1, 3, 1)), "names": ["a"], "ranges": {"a": (1.0, 0.0)}},
            ValueError,
            "low < high",
        ),
        (
            {"chains": np.zeros((1, 3, 1)), "names": ["a"], "weights": np.zeros((1, 3))},
            ValueError,
            "all zero",
        ),
        ({"chains": np.full((1, 3, 1), np.nan), "names": ["a"]}, ValueError, "finite"),
        (
            {"chains": np.zeros((1, 3, 1)), "names": ["a"], "derived": ["b"]},
            ValueError,
            "derived must name columns",
        ),
    ],
)
def test_bad_input_is_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_getdist_chains(tmp_path / "bad", **kwargs)


def test_derived_columns_are_marked_for_getdist(tmp_path):
    from getdist import loadMCSamples

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 100, 1))
    draws = np.concatenate([x, 2 * x], axis=-1)
    root = tmp_path / "run"
    write_getdist_chains(root, draws, ["x", "y"], derived=["y"])
    assert (tmp_path / "run.paramnames").read_text().splitlines() == ["x\tx", "y*\ty"]
    samples = loadMCSamples(str(root), settings={"ignore_rows": 0})
    assert not samples.paramNames.parWithName("x").isDerived
    assert samples.paramNames.parWithName("y").isDerived
    # negative control: without the flag GetDist treats y as sampled
    write_getdist_chains(root, draws, ["x", "y"])
    assert (
        not loadMCSamples(str(root), settings={"ignore_rows": 0})
        .paramNames.parWithName("y")
        .isDerived
    )
