"""Chain readers and atomic writers: fixtures written by the real libraries."""

from __future__ import annotations

import importlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from astrobayes.chains import Chains, chains_from_list
from astrobayes.evidence import EvidenceStatus
from astrobayes.io import (
    ChainsFile,
    detect_format,
    read_chains,
    to_jsonable,
    write_chains_npz,
    write_json_atomic,
)

# --------------------------------------------------------------------------------------
# helpers


def _optional(name: str):
    """Import an optional writer library at collection time (its import is slow)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arviz announces its refactor on import
            return importlib.import_module(name)
    except ImportError:
        return None


getdist_mcsamples = _optional("getdist.mcsamples")
emcee = _optional("emcee")
h5py = _optional("h5py")
arviz_module = _optional("arviz")
cobaya_model = _optional("cobaya.model")


def _need(module, name: str):
    if module is None:
        pytest.skip(f"{name} is not installed")
    return module


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    lines = [",".join(header)] + [",".join(repr(float(v)) for v in row) for row in rows]
    return _write(path, "\n".join(lines) + "\n")


def _getdist_chains(tmp_path: Path, *, ranges: dict | None, num_chains: int = 2) -> tuple:
    """Write CosmoMC-style chains with GetDist: a, b sampled, c derived."""
    mcsamples = _need(getdist_mcsamples, "getdist")
    rng = _rng(1)
    samples, loglikes, weights = [], [], []
    for i in range(num_chains):
        n = 20 + 5 * i
        ab = np.column_stack([rng.uniform(-4, 4, n), rng.uniform(0.5, 2.5, n)])
        samples.append(np.column_stack([ab, ab.sum(axis=1)]))
        loglikes.append(0.5 * (ab**2).sum(axis=1))  # GetDist stores -log L
        weights.append(rng.integers(1, 4, n).astype(float))
    mc = mcsamples.MCSamples(
        samples=samples,
        loglikes=loglikes,
        weights=weights,
        names=["a", "b", "c"],
        labels=["a", "b", "c"],
        ranges=ranges,
        ignore_rows=0,
    )
    mc.paramNames.parWithName("c").isDerived = True
    root = tmp_path / "cosmomc" / "run"
    mc.saveChainsAsText(str(root), make_dirs=True)
    return root, samples, loglikes, weights


def _emcee_file(tmp_path: Path, log_prob_fn, initial: np.ndarray, num_steps: int = 10) -> Path:
    _need(emcee, "emcee")
    _need(h5py, "h5py")
    path = tmp_path / "emcee.h5"
    num_walkers, dim = initial.shape
    backend = emcee.backends.HDFBackend(str(path))
    backend.reset(num_walkers, dim)
    sampler = emcee.EnsembleSampler(num_walkers, dim, log_prob_fn, backend=backend)
    state = emcee.State(initial, random_state=np.random.RandomState(3).get_state())
    with np.errstate(invalid="ignore"):  # emcee subtracts -inf from -inf for walkers outside
        sampler.run_mcmc(state, num_steps)
    return path


def _gaussian_log_prob(x):
    return -0.5 * float(np.sum(x**2))


# --------------------------------------------------------------------------------------
# npz


def test_npz_round_trip_unequal_lengths(tmp_path):
    rng = _rng(0)
    samples = [rng.normal(size=(30, 2)), rng.normal(size=(20, 2))]
    log_posterior = [-0.5 * (s**2).sum(1) for s in samples]
    weights = [rng.uniform(0.5, 2, 30), rng.uniform(0.5, 2, 20)]
    chains = chains_from_list(samples, log_posterior, weights, names=["alpha", "beta"])
    path = write_chains_npz(tmp_path / "chains.npz", chains, convention="my run")
    result = read_chains(path)
    assert isinstance(result, ChainsFile)
    assert result.format == "npz"
    assert result.paths == (path,)
    assert result.chains.names == ("alpha", "beta")
    assert "my run" in result.convention
    np.testing.assert_allclose(result.chains.samples, chains.samples)
    np.testing.assert_allclose(result.chains.log_posterior, chains.log_posterior)
    np.testing.assert_allclose(result.chains.weights, chains.weights)
    np.testing.assert_array_equal(result.chains.lengths, [30, 20])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left


def test_npz_plain_numpy_is_taken_as_given_and_said(tmp_path):
    rng = _rng(1)
    x = rng.normal(size=(3, 15, 2))
    path = tmp_path / "plain.npz"
    np.savez(path, samples=x, log_posterior=-0.5 * (x**2).sum(-1), names=np.array(["a", "b"]))
    result = read_chains(path)
    assert "pass log_prior_volume" in result.convention
    assert "normalised, as given" in result.convention
    np.testing.assert_allclose(result.chains.samples, x)
    shifted = read_chains(path, log_prior_volume=2.5)
    np.testing.assert_allclose(shifted.chains.log_posterior, result.chains.log_posterior - 2.5)
    assert "log prior volume 2.5 subtracted" in shifted.convention


class _Exploit:
    """Unpickling this would create a file: proof that the reader never unpickles."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_npz_pickled_object_array_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    names = np.empty(2, dtype=object)
    names[0], names[1] = _Exploit(marker), "b"
    path = tmp_path / "evil.npz"
    np.savez(path, samples=np.zeros((1, 4, 2)), log_posterior=np.zeros((1, 4)), names=names)
    with pytest.raises(
        ValueError, match=r"evil\.npz: array 'names' holds Python objects; refusing"
    ):
        read_chains(path)
    assert not marker.exists()


def test_npz_missing_array_and_bad_shapes(tmp_path):
    path = tmp_path / "missing.npz"
    np.savez(path, samples=np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match=r"missing\.npz: .*missing \['log_posterior'\]"):
        read_chains(path)
    path = tmp_path / "shape.npz"
    np.savez(path, samples=np.zeros((2, 4, 2)), log_posterior=np.zeros((2, 5)))
    with pytest.raises(
        ValueError, match=r"shape\.npz: array 'log_posterior' must have shape \(2, 4\)"
    ):
        read_chains(path)
    path = tmp_path / "names.npz"
    np.savez(
        path, samples=np.zeros((2, 4, 2)), log_posterior=np.zeros((2, 4)), names=np.array(["a"])
    )
    with pytest.raises(ValueError, match=r"names\.npz: array 'names' must hold dim = 2 strings"):
        read_chains(path)


def test_npz_nan_log_posterior_names_file_and_row(tmp_path):
    lp = np.zeros((2, 5))
    lp[1, 3] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, samples=np.zeros((2, 5, 1)), log_posterior=lp)
    with pytest.raises(ValueError, match=r"nan\.npz, chain 1, draw 3: the log posterior is nan"):
        read_chains(path)


def test_single_npy_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=r"x\.npy: a single \.npy array"):
        read_chains(path)


# --------------------------------------------------------------------------------------
# CSV


def test_csv_round_trip_with_chain_and_weight_columns(tmp_path):
    rng = _rng(2)
    chain = np.array([0] * 12 + [1] * 8, dtype=float)
    x = rng.normal(size=(20, 2))
    lp = -0.5 * (x**2).sum(1)
    w = rng.integers(1, 3, 20).astype(float)
    path = _csv(
        tmp_path / "c.csv",
        ["chain", "x", "lp", "weight", "y"],
        np.column_stack([chain, x[:, 0], lp, w, x[:, 1]]),
    )
    result = read_chains(path)
    assert result.format == "csv"
    assert result.chains.names == ("x", "y")
    assert result.chains.num_chains == 2
    np.testing.assert_array_equal(result.chains.lengths, [12, 8])
    np.testing.assert_allclose(result.chains.samples[1, :8], x[12:])
    np.testing.assert_allclose(result.chains.log_posterior[0, :12], lp[:12])
    np.testing.assert_allclose(result.chains.weights[1, :8], w[12:])
    assert "CSV column 'lp'" in result.convention
    assert "pass log_prior_volume" in result.convention


def test_several_csv_files_of_unequal_length(tmp_path):
    rng = _rng(3)
    paths = []
    for i, n in enumerate((10, 7)):
        x = rng.normal(size=(n, 1))
        paths.append(
            _csv(
                tmp_path / f"c{i}.csv",
                ["a", "log_posterior"],
                np.column_stack([x, -(x[:, 0] ** 2)]),
            )
        )
    result = read_chains(paths)
    np.testing.assert_array_equal(result.chains.lengths, [10, 7])
    assert result.paths == tuple(paths)


def test_csv_with_log_likelihood_and_log_prior_columns_sums_them(tmp_path):
    # bilby's result.posterior.to_csv(): a pandas index, parameters, ln L and ln pi
    text = ",a,b,log_likelihood,log_prior\n0,0.1,0.2,-3.0,-1.0\n1,0.3,0.4,-2.5,-1.5\n"
    result = read_chains(_write(tmp_path / "bilby.csv", text))
    assert result.chains.names == ("a", "b")
    np.testing.assert_allclose(result.chains.log_posterior[0], [-4.0, -4.0])
    assert "'log_likelihood' + 'log_prior', summed" in result.convention
    # a flat prior given by the user replaces ln pi: ln L minus the log volume
    bounded = read_chains(tmp_path / "bilby.csv", prior_bounds={"a": (0, 1), "b": (0, 2)})
    np.testing.assert_allclose(
        bounded.chains.log_posterior[0], [-3.0 - np.log(2), -2.5 - np.log(2)]
    )
    # beside a log_posterior column they are still not parameters
    text = "a,log_posterior,log_likelihood,log_prior\n0.1,-4.0,-3.0,-1.0\n0.2,-4.5,-3.0,-1.5\n"
    both = read_chains(_write(tmp_path / "both.csv", text))
    assert both.chains.names == ("a",)
    np.testing.assert_allclose(both.chains.log_posterior[0], [-4.0, -4.5])


def test_stan_csv_needs_a_normalised_log_posterior_and_its_sampler_columns_are_dropped(tmp_path):
    header = "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,a,b"
    rows = "\n".join(f"-1.{i},0.9,0.5,2,3,0,1.2,0.{i},1.{i}" for i in range(5))
    stan = _write(tmp_path / "stan-1.csv", f"# model = line\n{header}\n{rows}\n# Elapsed\n")
    with pytest.raises(ValueError, match=r"stan-1\.csv: a Stan CSV file\. Its lp__ cannot give"):
        read_chains(stan)
    with_gq = _write(
        tmp_path / "stan-2.csv",
        f"{header},log_posterior\n" + "\n".join(f"{r},-2.{i}" for i, r in enumerate(rows.split())),
    )
    result = read_chains(with_gq)
    assert result.chains.names == ("a", "b")
    np.testing.assert_allclose(result.chains.log_posterior[0], [-2.0, -2.1, -2.2, -2.3, -2.4])
    assert "Stan's sampler columns (lp__, accept_stat__" in result.convention


def test_csv_errors_name_file_line_and_column(tmp_path):
    bad_cell = _write(tmp_path / "cell.csv", "a,log_posterior\n1.0,-1.0\n2.0,oops\n")
    with pytest.raises(
        ValueError,
        match=r"cell\.csv, line 3, column 2 \('log_posterior'\): expected a number, got 'oops'",
    ):
        read_chains(bad_cell)
    ragged = _write(tmp_path / "ragged.csv", "a,log_posterior\n1.0,-1.0\n2.0,-1.0,3.0\n")
    with pytest.raises(ValueError, match=r"ragged\.csv, line 3: expected 2 columns, got 3"):
        read_chains(ragged)
    no_logp = _write(tmp_path / "nologp.csv", "a,b\n1.0,2.0\n")
    with pytest.raises(
        ValueError,
        match=r"nologp\.csv: no log posterior column; expected one named log_posterior or logp",
    ):
        read_chains(no_logp)
    nan = _write(tmp_path / "nan.csv", "# a comment\na,logp\n1.0,-1.0\n\n2.0,nan\n")
    with pytest.raises(ValueError, match=r"nan\.csv, line 5: the log posterior is nan"):
        read_chains(nan)
    bad_chain = _write(tmp_path / "chain.csv", "chain,a,logp\n0,1.0,-1.0\n0.5,2.0,-1.0\n")
    with pytest.raises(
        ValueError,
        match=r"chain\.csv, line 3, column 1 \('chain'\): expected an integer chain label",
    ):
        read_chains(bad_chain)
    nan_parameter = _write(tmp_path / "par.csv", "a,logp,b\n1.0,-1.0,2.0\n2.0,-1.0,inf\n")
    with pytest.raises(
        ValueError, match=r"par\.csv, line 3: parameter 'b' is inf; every draw must be finite"
    ):
        read_chains(nan_parameter, parameters=["b", "a"])
    empty = _write(tmp_path / "empty.csv", "a,logp\n")
    with pytest.raises(ValueError, match=r"empty\.csv: holds no data rows"):
        read_chains(empty)


# --------------------------------------------------------------------------------------
# GetDist / CosmoMC


def test_cosmomc_prior_volume_from_ranges_file(tmp_path):
    root, samples, loglikes, weights = _getdist_chains(tmp_path, ranges={"a": (-5, 5), "b": (0, 3)})
    result = read_chains(root)  # a root expands to run_1.txt, run_2.txt
    assert result.format == "getdist"
    assert [p.name for p in result.paths] == ["run_1.txt", "run_2.txt"]
    assert result.chains.names == ("a", "b")  # c* is derived
    log_volume = math.log(10.0) + math.log(3.0)
    for c in range(2):
        n = len(samples[c])
        np.testing.assert_allclose(result.chains.samples[c, :n], samples[c][:, :2], rtol=1e-6)
        np.testing.assert_allclose(
            result.chains.log_posterior[c, :n], -loglikes[c] - log_volume, rtol=1e-6
        )
        np.testing.assert_allclose(result.chains.weights[c, :n], weights[c])
    assert "run.ranges" in result.convention
    assert f"log prior volume {log_volume:.6g} subtracted" in result.convention
    # a single chain file finds the same .paramnames/.ranges
    single = read_chains(root.with_name("run_2.txt"))
    np.testing.assert_allclose(
        single.chains.log_posterior[0], result.chains.log_posterior[1, : len(samples[1])]
    )


def test_cosmomc_missing_or_infinite_range_is_an_error(tmp_path):
    root, *_ = _getdist_chains(tmp_path, ranges={"a": (-5, 5), "b": (None, 3)})
    with pytest.raises(
        ValueError, match=r"prior range of sampled parameter 'b' in .*run\.ranges is \(nan, 3\.0\)"
    ):
        read_chains(root)
    # user bounds override the file
    result = read_chains(root, prior_bounds={"a": (-5, 5), "b": (0, 3)})
    assert "user-given prior_bounds" in result.convention


def test_cosmomc_without_ranges_file_needs_a_volume(tmp_path):
    root, _, loglikes, _ = _getdist_chains(tmp_path, ranges=None)
    root.with_name("run.ranges").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"run_1\.txt: a CosmoMC-style chain .* no \.ranges file"):
        read_chains(root)
    result = read_chains(root, log_prior_volume=0.0)
    np.testing.assert_allclose(
        result.chains.log_posterior[0, : len(loglikes[0])], -loglikes[0], rtol=1e-6
    )
    assert "user-given log prior volume 0 subtracted" in result.convention


def test_cosmomc_range_missing_for_a_parameter(tmp_path):
    root, *_ = _getdist_chains(tmp_path, ranges={"a": (-5, 5)})
    with pytest.raises(
        ValueError, match=r"run\.ranges: no prior range for sampled parameters \['b'\]"
    ):
        read_chains(root)


def test_prior_bounds_override_and_checks(tmp_path):
    root, samples, loglikes, _ = _getdist_chains(tmp_path, ranges=None)
    result = read_chains(root, prior_bounds={"a": (-4, 4), "b": (0, 5)})
    np.testing.assert_allclose(
        result.chains.log_posterior[0, : len(loglikes[0])],
        -loglikes[0] - math.log(8 * 5),
        rtol=1e-6,
    )
    with pytest.raises(
        ValueError,
        match=r"run_1\.txt, line \d+: parameter 'a' = .* outside its prior bounds \(-1\.0, 1\.0\)",
    ):
        read_chains(root, prior_bounds={"a": (-1, 1), "b": (0, 5)})
    with pytest.raises(
        ValueError,
        match=r"prior_bounds must give \(lo, hi\) for exactly .* missing \['b'\], unknown \['z'\]",
    ):
        read_chains(root, prior_bounds={"a": (-4, 4), "z": (0, 1)})
    with pytest.raises(ValueError, match=r"prior_bounds\['a'\] must be finite with hi > lo"):
        read_chains(root, prior_bounds={"a": (4, -4), "b": (0, 5)})
    with pytest.raises(ValueError, match="give log_prior_volume or prior_bounds, not both"):
        read_chains(root, prior_bounds={"a": (-4, 4), "b": (0, 5)}, log_prior_volume=1.0)


def test_parameters_selection(tmp_path):
    root, samples, *_ = _getdist_chains(tmp_path, ranges={"a": (-5, 5), "b": (0, 3)})
    result = read_chains(root, parameters=["b", "a"])
    assert result.chains.names == ("b", "a")
    np.testing.assert_allclose(
        result.chains.samples[0, : len(samples[0]), 0], samples[0][:, 1], rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"leaves out sampled parameters \['b'\]"):
        read_chains(root, parameters=["a"])
    with pytest.raises(ValueError, match=r"parameter 'c' is derived"):
        read_chains(root, parameters=["a", "b", "c"])
    with pytest.raises(
        ValueError,
        match=r"parameter 'zz' \(from parameters\) is not in the file; it holds \['a', 'b', 'c'\]",
    ):
        read_chains(root, parameters=["a", "zz"])


def test_getdist_malformed_rows_and_mismatched_files(tmp_path):
    root, *_ = _getdist_chains(tmp_path, ranges={"a": (-5, 5), "b": (0, 3)})
    chain = root.with_name("run_1.txt")
    lines = chain.read_text().splitlines()
    lines[3] = lines[3] + " 1.0"
    chain.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"run_1\.txt, line 4: expected 5 columns, got 6 .*run\.paramnames"
    ):
        read_chains(root)
    lines[3] = " ".join(lines[3].split()[:3] + ["x1.0", "2.0"])
    chain.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"run_1\.txt, line 4, column 4 \('b'\): expected a number, got 'x1\.0'"
    ):
        read_chains(root)
    other = _write(tmp_path / "other.txt", "1 0.5 0.1 0.2\n1 0.4 0.3 0.1\n")
    with pytest.raises(
        ValueError, match=r"other\.txt: parameters \['p0', 'p1'\] differ from those of .*run_2\.txt"
    ):
        read_chains([root.with_name("run_2.txt"), other], log_prior_volume=0.0)


def test_getdist_without_paramnames_is_taken_as_given(tmp_path):
    path = _write(tmp_path / "bare.txt", "2 0.5 0.1 0.2\n1 0.4 0.3 0.1\n")
    result = read_chains(path)
    assert result.chains.names == ("p0", "p1")
    np.testing.assert_allclose(result.chains.log_posterior[0], [-0.5, -0.4])
    np.testing.assert_allclose(result.chains.weights[0], [2, 1])
    assert "no .paramnames" in result.convention
    assert "as given" in result.convention


# --------------------------------------------------------------------------------------
# Cobaya

COBAYA_HEADER = (
    "#        weight    minuslogpost               a               b               c"
    "   minuslogprior minuslogprior__0            chi2     chi2__gauss\n"
)


def test_cobaya_written_by_cobaya(tmp_path):
    _need(cobaya_model, "cobaya")
    from cobaya.collection import SampleCollection
    from cobaya.model import get_model
    from cobaya.output import get_output

    def likelihood(a, b):
        return -0.5 * (a**2 + b**2), {"c": a + b}

    info = {
        "params": {
            "a": {"prior": {"min": -5, "max": 5}},
            "b": {"prior": {"min": 0, "max": 2}},
            "c": {"derived": True},
        },
        "likelihood": {"gauss": {"external": likelihood, "output_params": ["c"]}},
    }
    model = get_model(info)
    output = get_output(prefix=str(tmp_path / "chains" / "run"), resume=False, force=True)
    output.check_and_dump_info(info, model.info())
    rng = _rng(4)
    points = []
    for k in (1, 2):
        collection = SampleCollection(model, output, name=str(k))
        for _ in range(4 + k):
            x = [rng.uniform(-1, 1), rng.uniform(0.1, 1.9)]
            collection.add(x, logpost=model.logposterior(x), weight=int(rng.integers(1, 3)))
            points.append((k, x))
        collection.out_update()
    result = read_chains(tmp_path / "chains" / "run")
    assert result.format == "cobaya"
    assert result.convention.startswith("Cobaya minuslogpost (includes the normalised log prior)")
    assert "derived parameters (c) excluded" in result.convention
    assert result.chains.names == ("a", "b")
    log_prior = -math.log(10) - math.log(2)
    first = np.array([x for k, x in points if k == 1])
    np.testing.assert_allclose(result.chains.samples[0, :5], first, rtol=1e-6)
    expected = -0.5 * (first**2).sum(1) + log_prior
    np.testing.assert_allclose(result.chains.log_posterior[0, :5], expected, rtol=1e-6)
    # the priors' edges from run.updated.yaml, for an estimate without them
    assert result.bounds == {"a": (-5.0, 5.0), "b": (0.0, 2.0)}
    # an override replaces Cobaya's prior by the user's, on top of log L
    override = read_chains(tmp_path / "chains" / "run", log_prior_volume=1.0)
    np.testing.assert_allclose(
        override.chains.log_posterior[0, :5], -0.5 * (first**2).sum(1) - 1.0, rtol=1e-6
    )
    assert "log L from the file" in override.convention


def test_cobaya_header_without_yaml(tmp_path):
    # Written as Cobaya writes it (header from SampleCollection._dump_slice__txt, numbers
    # with numpy.savetxt), with no run.updated.yaml beside it.
    rows = np.array(
        [
            [
                1,
                4.6355728,
                0.023643249,
                1.8108347,
                1.8344779,
                2.9957323,
                2.9957323,
                3.2796811,
                3.2796811,
            ],
            [
                2,
                3.6169615,
                0.89729889,
                0.66129661,
                1.5585955,
                2.9957323,
                2.9957323,
                1.2424585,
                1.2424585,
            ],
        ]
    )
    path = tmp_path / "run.1.txt"
    with path.open("w") as handle:
        handle.write(COBAYA_HEADER)
        np.savetxt(handle, rows, fmt="%15.8g")
    assert detect_format(path) == "cobaya"
    result = read_chains(path)
    assert result.chains.names == ("a", "b", "c")
    assert "derived parameters cannot be told apart" in result.convention
    np.testing.assert_allclose(result.chains.log_posterior[0], -rows[:, 1])
    chosen = read_chains(path, parameters=["a", "b"])
    assert chosen.chains.names == ("a", "b")


def test_cobaya_bad_header(tmp_path):
    path = _write(tmp_path / "bad.txt", "# weight logpost a\n1 0.2 0.3\n")
    with pytest.raises(
        ValueError,
        match=r"bad\.txt, line 1: a Cobaya header must start with '# weight minuslogpost'",
    ):
        read_chains(path)


# --------------------------------------------------------------------------------------
# emcee


def test_emcee_walkers_become_chains(tmp_path):
    initial = _rng(5).normal(size=(6, 2))
    path = _emcee_file(tmp_path, _gaussian_log_prob, initial)
    backend = emcee.backends.HDFBackend(str(path), read_only=True)
    result = read_chains(path)
    assert result.format == "emcee"
    assert result.chains.samples.shape == (6, 10, 2)
    np.testing.assert_allclose(result.chains.samples, backend.get_chain().transpose(1, 0, 2))
    np.testing.assert_allclose(result.chains.log_posterior, backend.get_log_prob().T)
    assert "emcee log_prob" in result.convention
    assert "pass log_prior_volume" in result.convention
    burnt = read_chains(path, burn_in=0.3)
    np.testing.assert_allclose(
        burnt.chains.samples, backend.get_chain(discard=3).transpose(1, 0, 2)
    )
    assert "burn-in" in burnt.convention
    with pytest.raises(ValueError, match=r"the file names no parameters: they are p0, p1"):
        read_chains(path, prior_bounds={"omega_m": (0, 1), "M": (42, 45)})


def _outside_prior(x):
    return -np.inf if x[0] > 10 else -0.5 * float(np.sum(x**2))


def test_emcee_infinite_log_prob_names_walker_and_step(tmp_path):
    initial = _rng(6).normal(size=(6, 2))
    initial[4, 0] = 20.0  # walker 4 starts outside the prior
    path = _emcee_file(tmp_path, _outside_prior, initial, num_steps=3)
    with pytest.raises(
        ValueError, match=r"emcee\.h5, walker 4, step 0: the log posterior is -inf.*burn_in"
    ):
        read_chains(path)


def test_hdf5_that_is_neither_emcee_nor_arviz(tmp_path):
    _need(h5py, "h5py")
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("stuff").create_dataset("x", data=np.zeros(3))
    with pytest.raises(
        ValueError, match=r"other\.h5: an HDF5 file that is neither an emcee backend .* \['stuff'\]"
    ):
        read_chains(path)


# --------------------------------------------------------------------------------------
# ArviZ


@pytest.fixture
def arviz():
    return _need(arviz_module, "arviz")


def test_arviz_log_likelihood_plus_log_prior(tmp_path, arviz):
    pytest.importorskip("h5netcdf")
    rng = _rng(7)
    mu, x = rng.normal(size=(2, 6)), rng.normal(size=(2, 6, 3))
    log_likelihood = rng.normal(size=(2, 6, 4))
    log_prior_mu, log_prior_x = rng.normal(size=(2, 6)), rng.normal(size=(2, 6, 3))
    idata = arviz.from_dict(
        posterior={"mu": mu, "x": x, "twice_mu": 2 * mu}, log_likelihood={"y": log_likelihood}
    )
    idata.add_groups(log_prior={"mu": log_prior_mu, "x": log_prior_x})
    path = tmp_path / "idata.nc"
    idata.to_netcdf(str(path))
    result = read_chains(path)
    assert result.format == "arviz"
    assert result.chains.names == ("mu", "x[0]", "x[1]", "x[2]")
    np.testing.assert_allclose(result.chains.samples[..., 0], mu)
    np.testing.assert_allclose(result.chains.samples[..., 1:], x)
    expected = log_likelihood.sum(-1) + log_prior_mu + log_prior_x.sum(-1)
    np.testing.assert_allclose(result.chains.log_posterior, expected)
    assert "log_likelihood + log_prior" in result.convention
    assert "(twice_mu) excluded as deterministic" in result.convention


def test_arviz_sample_stats_lp(tmp_path, arviz):
    rng = _rng(8)
    theta, lp = rng.normal(size=(3, 5, 2, 2)), rng.normal(size=(3, 5))
    path = tmp_path / "lp.nc"
    arviz.from_dict(posterior={"theta": theta}, sample_stats={"lp": lp}).to_netcdf(str(path))
    result = read_chains(path)
    assert result.chains.names == ("theta[0,0]", "theta[0,1]", "theta[1,0]", "theta[1,1]")
    np.testing.assert_allclose(result.chains.samples, theta.reshape(3, 5, 4))
    np.testing.assert_allclose(result.chains.log_posterior, lp)
    assert "sample_stats.lp" in result.convention
    assert "Jacobian" in result.convention


def test_arviz_without_log_posterior(tmp_path, arviz):
    path = tmp_path / "nolp.nc"
    arviz.from_dict(posterior={"theta": _rng(9).normal(size=(2, 5))}).to_netcdf(str(path))
    with pytest.raises(
        ValueError,
        match=r"nolp\.nc: no log posterior: expected groups 'log_likelihood' and 'log_prior'",
    ):
        read_chains(path)


def test_arviz_with_a_likelihood_and_no_prior_needs_the_prior_from_the_user(tmp_path, arviz):
    # what az.from_numpyro writes: log_likelihood, no log_prior, no sample_stats.lp
    rng = _rng(10)
    theta = rng.uniform(-1.0, 1.0, size=(2, 5, 2))
    log_likelihood = rng.normal(size=(2, 5, 3))
    path = tmp_path / "numpyro.nc"
    arviz.from_dict(posterior={"theta": theta}, log_likelihood={"y": log_likelihood}).to_netcdf(
        str(path)
    )
    with pytest.raises(ValueError, match=r"numpyro\.nc: the file holds ln L and no prior") as error:
        read_chains(path)
    assert "prior_bounds" in str(error.value)
    assert "posterior_table" in str(error.value)
    bounds = {"theta[0]": (-1.0, 1.0), "theta[1]": (-2.0, 2.0)}
    result = read_chains(path, prior_bounds=bounds)
    np.testing.assert_allclose(result.chains.log_posterior, log_likelihood.sum(-1) - np.log(8.0))
    assert "flat prior from the user-given prior_bounds" in result.convention


# --------------------------------------------------------------------------------------
# nested-sampling output


def _nested_sampling_root(tmp_path: Path, *, integer_weights: bool = False) -> Path:
    """A PolyChord-style GetDist root: weighted independent draws, by increasing ln L.

    Posterior N(0, 0.5^2 I) in d = 2 under a flat prior on [-5, 5]^2, so ln z = -ln 100;
    the draws come from N(0, I) with weights p / q (fractional, as a nested sampler's).
    """
    rng = _rng(21)
    theta = rng.normal(size=(20_000, 2))
    log_l = (-0.5 * (theta / 0.5) ** 2 - np.log(0.5 * np.sqrt(2 * np.pi))).sum(-1)
    log_q = (-0.5 * theta**2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    weights = np.exp(log_l - log_q)
    if integer_weights:
        weights = np.ceil(3 * weights)
    order = np.argsort(log_l)
    rows = np.column_stack([weights, -log_l, theta])[order]
    np.savetxt(tmp_path / "ns.txt", rows)
    _write(tmp_path / "ns.paramnames", "x1 x_1\nx2 x_2\n")
    _write(tmp_path / "ns.ranges", "x1 -5 5\nx2 -5 5\n")
    return tmp_path / "ns"


def test_nested_sampling_rows_are_shuffled_and_give_the_evidence(tmp_path):
    import jax

    from astrobayes.evidence import GaussianTarget, estimate

    root = _nested_sampling_root(tmp_path)
    result = read_chains(root)
    assert "nested-sampling output" in result.convention
    log_posterior = result.chains.log_posterior[0]
    assert not np.all(np.diff(log_posterior) >= 0)  # no longer sorted
    chains = result.chains.split_chains(4)
    estimate_ = estimate(jax.random.key(0), chains, target=GaussianTarget())
    assert estimate_.status is EvidenceStatus.OK, estimate_.messages
    assert abs(estimate_.log_evidence + np.log(100.0)) < 4.5 * estimate_.log_evidence_std
    # negative control: the same rows in the file's order, cut into contiguous pieces,
    # are pieces of different likelihood shells (the target fitted on the low shells and
    # evaluated on the high ones gave -4.41 +/- 0.27; shuffled -4.6042 +/- 0.0011): the
    # estimator now refuses them with the remedy
    table = np.loadtxt(str(root) + ".txt")
    in_file_order = Chains(
        table[None, :, 2:], -table[None, :, 1] - np.log(100.0), table[None, :, 0]
    ).split_chains(4)
    with pytest.raises(ValueError, match="Shuffle the rows first"):
        estimate(jax.random.key(0), in_file_order, target=GaussianTarget())


def _nested_run_root(tmp_path: Path, minus_two_log_l: bool) -> tuple[Path, float]:
    """A GetDist root laid out as a nested sampler writes it, and its ln z.

    A toy nested-sampling run on L = exp(-|t|^2 / (2 sigma^2)), sigma = 0.5, flat prior on
    [-5, 5]^2 (ln z = ln(2 pi sigma^2 / 100)), with 400 live points: the prior mass left
    shrinks as X_i = 0.7 exp(-i / 400); each dead point lies on its likelihood contour
    (radius sqrt(X_i 100 / pi)) with weight L_i (X_(i-1) - X_i); the final live points
    follow, with X uniform below the last and weight L X_end / 400. Column 2 holds -ln L
    (CosmoMC) or -2 ln L (PolyChord, MultiNest); weights scaled to a largest of 1.
    """
    rng = _rng(31)
    nlive, steps, sigma = 400, 3600, 0.5  # stops with ~1% of z left in the live points
    # from X = 0.7 on: the contours then stay inside the box (the mass above holds L < e^-44)
    x = 0.7 * np.exp(-np.arange(steps + 1) / nlive)
    x_live = np.sort(rng.uniform(0.0, x[-1], nlive))[::-1]
    mass = np.concatenate([x[1:], x_live])
    radius = np.sqrt(mass * 100.0 / np.pi)
    angle = rng.uniform(0.0, 2 * np.pi, radius.size)
    theta = radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    log_l = -0.5 * (radius / sigma) ** 2
    weights = np.exp(log_l) * np.concatenate([x[:-1] - x[1:], np.full(nlive, x[-1] / nlive)])
    column = -2.0 * log_l if minus_two_log_l else -log_l
    np.savetxt(tmp_path / "run.txt", np.column_stack([weights / weights.max(), column, theta]))
    _write(tmp_path / "run.paramnames", "x1 x_1\nx2 x_2\n")
    _write(tmp_path / "run.ranges", "x1 -5 5\nx2 -5 5\n")
    return tmp_path / "run", float(np.log(2 * np.pi * sigma**2 / 100.0))


@pytest.mark.parametrize("minus_two_log_l", [False, True])
def test_polychord_and_multinest_minus_two_log_l_is_recognised(
    tmp_path, minus_two_log_l, monkeypatch
):
    import jax

    import astrobayes.io._text as text
    from astrobayes.evidence import GaussianTarget, estimate

    root, truth = _nested_run_root(tmp_path, minus_two_log_l)
    result = read_chains(root)
    assert ("column 2 is -2 ln L" in result.convention) is minus_two_log_l
    # the same rows in another order (a file not sorted by likelihood) are read alike
    table = np.loadtxt(str(root) + ".txt")
    np.savetxt(str(root) + ".txt", table[_rng(5).permutation(len(table))])
    shuffled = read_chains(root)
    assert ("column 2 is -2 ln L" in shuffled.convention) is minus_two_log_l
    np.savetxt(str(root) + ".txt", table)
    chains = result.chains.split_chains(4)
    estimate_ = estimate(jax.random.key(0), chains, target=GaussianTarget())
    assert not estimate_.status.is_failure, estimate_.messages
    assert abs(estimate_.log_evidence - truth) < 4.5 * estimate_.log_evidence_std
    if minus_two_log_l:  # negative control: read as CosmoMC's -ln L, ln z is far off
        monkeypatch.setattr(text, "nested_weight_slope", lambda weights, ell: 1.0)
        wrong = estimate(
            jax.random.key(0), read_chains(root).chains.split_chains(4), target=GaussianTarget()
        )
        assert abs(wrong.log_evidence - truth) > 10 * wrong.log_evidence_std


@pytest.mark.parametrize("name", ["run_equal_weights.txt", "runpost_equal_weights.dat"])
def test_equal_weights_files_of_nested_samplers_are_refused(tmp_path, name):
    path = _write(tmp_path / name, "1.0 4.2 0.1 0.2\n1.0 3.9 0.3 0.1\n")
    with pytest.raises(ValueError, match="read the weighted root.txt beside it"):
        read_chains(path, format="getdist")


def _cosmosis_file(path: Path, prior_value: float, *, priors_ini: str = "", walkers: int = 4):
    """A CosmoSIS emcee output: 2 sampled parameters on flat priors (volume 1 x 3), one
    derived, walkers interleaved row by row; returns the samples (steps, walkers, 2)."""
    rng = _rng(41)
    steps = 30
    draws = rng.normal([0.3, 43.2], [0.02, 0.02], size=(steps, walkers, 2))
    like = -0.5 * (((draws - [0.3, 43.2]) / 0.02) ** 2).sum(-1)
    rows = np.column_stack(
        [
            draws.reshape(-1, 2),
            1 - draws.reshape(-1, 2)[:, 0],
            np.full(steps * walkers, prior_value),
            like.reshape(-1),
            like.reshape(-1) + prior_value,
        ]
    )
    header = [
        "#cosmological_parameters--omega_m\tsupernova_params--m\tCOSMOLOGICAL_PARAMETERS--OMEGA_LAMBDA\tprior\tlike\tpost",
        "#sampler=emcee",
        "#n_varied=2",
        "## START_OF_PARAMS_INI",
        "## [emcee]",
        f"## walkers = {walkers}",
        "## END_OF_PARAMS_INI",
        "## START_OF_VALUES_INI",
        "## [cosmological_parameters]",
        "## omega_m = 0.0 0.3 1.0",
        "## [supernova_params]",
        "## m = 42.0 43.2 45.0",
        "## END_OF_VALUES_INI",
        "## START_OF_PRIORS_INI",
        *([priors_ini] if priors_ini else []),
        "## END_OF_PRIORS_INI",
    ]
    with path.open("w") as handle:
        handle.write("\n".join(header) + "\n")
        np.savetxt(handle, rows, delimiter="\t", fmt="%.12g")
        handle.write("#complete=1\n")
    return draws, like


def test_cosmosis_chains(tmp_path):
    log_volume = np.log(3.0)
    draws, like = _cosmosis_file(tmp_path / "new.txt", -log_volume)
    assert detect_format(tmp_path / "new.txt") == "cosmosis"
    new = read_chains(tmp_path / "new.txt")
    assert new.chains.names == ("cosmological_parameters--omega_m", "supernova_params--m")
    assert new.chains.num_chains == 4  # the emcee walkers, de-interleaved
    np.testing.assert_allclose(new.chains.samples[1], draws[:, 1], rtol=1e-10)
    np.testing.assert_allclose(new.chains.log_posterior[1], like[:, 1] - log_volume, atol=1e-8)
    assert "the prior normalised" in new.convention
    # the values file's lower and upper edges of the varied parameters (not the derived)
    assert new.bounds == {
        "cosmological_parameters--omega_m": (0.0, 1.0),
        "supernova_params--m": (42.0, 45.0),
    }
    # a release before 2017 wrote prior = 0 for flat priors: normalised from the values file
    _cosmosis_file(tmp_path / "old.txt", 0.0)
    old = read_chains(tmp_path / "old.txt")
    np.testing.assert_allclose(old.chains.log_posterior, new.chains.log_posterior, atol=1e-8)
    assert "before 2017" in old.convention
    # a prior column that is neither needs the prior from the user
    _cosmosis_file(tmp_path / "odd.txt", -5.0)
    with pytest.raises(ValueError, match=r"odd\.txt: the file holds ln L and no prior"):
        read_chains(tmp_path / "odd.txt")
    bounds = {"cosmological_parameters--omega_m": (0, 1), "supernova_params--m": (42, 45)}
    bounded = read_chains(tmp_path / "odd.txt", prior_bounds=bounds)
    np.testing.assert_allclose(bounded.chains.log_posterior, new.chains.log_posterior, atol=1e-8)
    # another prior in the priors file: the post column as given, and said so
    gauss = "## [supernova_params]\n## m = gaussian 43.2 0.1"
    _cosmosis_file(tmp_path / "gauss.txt", -log_volume, priors_ini=gauss)
    assert "not checked" in read_chains(tmp_path / "gauss.txt").convention


def test_ultranest_weighted_posterior(tmp_path):
    root = _nested_sampling_root(tmp_path)  # the same draws, in UltraNest's layout
    table = np.loadtxt(str(root) + ".txt")
    folder = tmp_path / "chains"
    folder.mkdir()
    rows = np.column_stack([table[:, 0], -table[:, 1], table[:, 2:]])
    for name in ("weighted_post.txt", "weighted_post_untransformed.txt"):
        np.savetxt(folder / name, rows, header="weight logl x1 x2", comments="")
    assert detect_format(folder / "weighted_post.txt") == "ultranest"
    # ln L alone: the prior is the run's transform, so it must come from the user ...
    with pytest.raises(ValueError, match=r"weighted_post\.txt: the file holds ln L and no prior"):
        read_chains(folder / "weighted_post.txt")
    bounded = read_chains(folder / "weighted_post.txt", prior_bounds={"x1": (-5, 5), "x2": (-5, 5)})
    np.testing.assert_allclose(
        np.sort(bounded.chains.log_posterior[0]), np.sort(rows[:, 1]) - np.log(100)
    )
    assert "nested-sampling output" in bounded.convention
    # ... except on the unit cube, where it is uniform with volume 1
    cube = read_chains(folder / "weighted_post_untransformed.txt")
    assert cube.chains.names == ("x1", "x2")
    assert "ln pi = 0" in cube.convention
    _write(folder / "equal_weighted_post.txt", "x1 x2\n0.1 0.2\n")
    with pytest.raises(
        ValueError, match="UltraNest's equal-weighted posterior holds no likelihood"
    ):
        read_chains(folder / "equal_weighted_post.txt")


def test_mcmc_rows_are_never_shuffled(tmp_path):
    # integer weights are multiplicities of a Markov chain: the order is kept even when
    # ln L happens to rise along the rows
    result = read_chains(_nested_sampling_root(tmp_path, integer_weights=True))
    assert "nested-sampling output" not in result.convention
    assert np.all(np.diff(result.chains.log_posterior[0]) >= 0)


# --------------------------------------------------------------------------------------
# detection and arguments


def test_detect_format_and_unknown_files(tmp_path):
    assert detect_format(_write(tmp_path / "a.csv", "a,logp\n1,2\n")) == "csv"
    assert detect_format(_write(tmp_path / "a.txt", "1 2 3\n")) == "getdist"
    prose = _write(tmp_path / "notes.txt", "hello world\n")
    with pytest.raises(ValueError, match=r"notes\.txt: not a recognised chain format"):
        read_chains(prose)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(ValueError, match=r"blob\.bin: not a text file"):
        read_chains(binary)
    with pytest.raises(ValueError, match=r"is a directory"):
        read_chains(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz: no such chain file"):
        read_chains(tmp_path / "nowhere.npz")


def test_mixed_formats_and_bad_arguments(tmp_path):
    csv_path = _write(tmp_path / "a.csv", "a,logp\n1,2\n")
    txt_path = _write(tmp_path / "b.txt", "1 2 3\n")
    with pytest.raises(
        ValueError, match=r"all files must have one format; got a\.csv: csv, b\.txt: getdist"
    ):
        read_chains([csv_path, txt_path])
    with pytest.raises(ValueError, match=r"format must be one of"):
        read_chains(csv_path, format="fits")
    with pytest.raises(ValueError, match=r"burn_in must lie in \[0, 1\)"):
        read_chains(csv_path, burn_in=1.0)
    with pytest.raises(ValueError, match=r"log_prior_volume must be finite"):
        read_chains(csv_path, log_prior_volume=float("inf"))
    with pytest.raises(TypeError, match=r"paths must hold file paths"):
        read_chains([csv_path, 3])


def test_explicit_format_reads_unusual_extension(tmp_path):
    path = _write(tmp_path / "chain.dat", "a,logp\n1,-2\n3,-4\n")
    result = read_chains(path, format="csv")
    np.testing.assert_allclose(result.chains.log_posterior, [[-2, -4]])


# --------------------------------------------------------------------------------------
# writers


class _Result(NamedTuple):
    log_evidence: float
    draws: np.ndarray
    where: Path


def test_write_json_atomic(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, _Result(-3.5, np.arange(3), Path("x")))
    assert json.loads(path.read_text()) == {"log_evidence": -3.5, "draws": [0, 1, 2], "where": "x"}
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(TypeError, match="cannot write an object of type object as JSON"):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text())["log_evidence"] == -3.5  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_json_atomic(tmp_path / "no" / "r.json", {})
    assert to_jsonable({"a": (np.float32(1.5), None)}) == {"a": [1.5, None]}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_chains_npz_rejects_non_chains(tmp_path):
    with pytest.raises(TypeError, match="chains must be an astrobayes Chains"):
        write_chains_npz(tmp_path / "c.npz", np.zeros((1, 2, 1)))
    chains = Chains(np.zeros((1, 2, 1)), np.zeros((1, 2)))
    path = write_chains_npz(tmp_path / "c", chains)  # no .npz appended
    assert path.name == "c"
    assert read_chains(path).format == "npz"
