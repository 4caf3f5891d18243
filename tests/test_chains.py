"""Tests of astrobayes.chains: validation, padding of unequal chains, splitting."""

from __future__ import annotations

import numpy as np
import pytest

from astrobayes.chains import Chains, chains_from_list


def _draws(num_chains=3, num_samples=50, dim=2, seed=0):
    x = np.random.default_rng(seed).normal(size=(num_chains, num_samples, dim))
    return x, -0.5 * (x**2).sum(-1)


def test_defaults_and_properties():
    x, lp = _draws()
    chains = Chains(x, lp)
    assert (chains.num_chains, chains.num_samples, chains.dim) == (3, 50, 2)
    assert chains.names == ("p0", "p1")
    np.testing.assert_array_equal(chains.weights, np.ones((3, 50)))
    np.testing.assert_array_equal(chains.lengths, [50, 50, 50])
    assert chains.samples.dtype == np.float64
    theta, logp, w = chains.flat()
    assert theta.shape == (150, 2)
    assert logp.shape == (150,)
    assert w.shape == (150,)
    np.testing.assert_array_equal(theta, x.reshape(-1, 2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_log_posterior_is_refused(bad):
    x, lp = _draws()
    lp[1, 7] = bad
    with pytest.raises(ValueError, match=r"log_posterior must be finite.*chain 1, draw 7"):
        Chains(x, lp)


def test_non_finite_log_posterior_allowed_where_weight_is_zero():
    x, lp = _draws()
    w = np.ones_like(lp)
    lp[0, 3], w[0, 3] = -np.inf, 0.0
    chains = Chains(x, lp, w)
    assert np.all(np.isfinite(chains.log_posterior))
    assert chains.flat()[0].shape[0] == 149


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_refused(bad):
    x, lp = _draws()
    x[2, 4, 1] = bad
    with pytest.raises(ValueError, match=r"samples must be finite.*\(2, 4, 1\)"):
        Chains(x, lp)


def test_mismatched_shapes_are_refused():
    x, lp = _draws()
    with pytest.raises(
        ValueError, match=r"log_posterior must have shape \(num_chains, num_samples\)"
    ):
        Chains(x, lp[:, :-1])
    with pytest.raises(ValueError, match="samples must have 3 dimensions"):
        Chains(x[0], lp[0])
    with pytest.raises(ValueError, match="log_posterior must have 2 dimensions"):
        Chains(x, lp.ravel())
    with pytest.raises(ValueError, match="weights must have shape"):
        Chains(x, lp, np.ones((3, 49)))
    with pytest.raises(ValueError, match="non-empty in every axis"):
        Chains(np.zeros((2, 0, 2)), np.zeros((2, 0)))


def test_non_numeric_input_is_a_type_error():
    x, lp = _draws()
    with pytest.raises(TypeError, match="samples must be an array of numbers"):
        Chains(np.full(x.shape, "a"), lp)
    with pytest.raises(TypeError, match="log_posterior must be real"):
        Chains(x, lp + 1j)


def test_negative_weights_are_refused():
    x, lp = _draws()
    w = np.ones_like(lp)
    w[1, 2] = -0.5
    with pytest.raises(ValueError, match="weights must be non-negative; got minimum -0.5"):
        Chains(x, lp, w)


def test_non_finite_weights_are_refused():
    x, lp = _draws()
    w = np.ones_like(lp)
    w[0, 0] = np.nan
    with pytest.raises(ValueError, match="weights must be finite"):
        Chains(x, lp, w)


def test_all_zero_chain_weights_are_refused():
    x, lp = _draws()
    w = np.ones_like(lp)
    w[2] = 0.0
    with pytest.raises(ValueError, match="weights of chain 2 are all zero"):
        Chains(x, lp, w)


def test_wrong_number_of_names_is_refused():
    x, lp = _draws()
    with pytest.raises(ValueError, match=r"names must hold dim = 2 parameter names; got 3"):
        Chains(x, lp, names=("a", "b", "c"))
    assert Chains(x, lp, names=["a", "b"]).names == ("a", "b")


def test_chains_from_list_pads_with_zero_weight():
    rng = np.random.default_rng(1)
    lengths = (30, 50, 12)
    samples = [rng.normal(size=(n, 2)) for n in lengths]
    logp = [-0.5 * (s**2).sum(-1) for s in samples]
    weights = [rng.uniform(0.5, 2.0, n) for n in lengths]
    chains = chains_from_list(samples, logp, weights, names=("a", "b"))
    assert chains.samples.shape == (3, 50, 2)
    np.testing.assert_array_equal(chains.lengths, lengths)
    for c, n in enumerate(lengths):
        np.testing.assert_array_equal(chains.samples[c, :n], samples[c])
        np.testing.assert_array_equal(chains.weights[c, :n], weights[c])
        np.testing.assert_array_equal(chains.weights[c, n:], 0.0)
    theta, lp_flat, w_flat = chains.flat()
    np.testing.assert_array_equal(theta, np.concatenate(samples))
    np.testing.assert_array_equal(lp_flat, np.concatenate(logp))
    np.testing.assert_array_equal(w_flat, np.concatenate(weights))


def test_chains_from_list_one_dimensional_chains():
    chains = chains_from_list([np.arange(4.0), np.arange(3.0)], [np.zeros(4), np.zeros(3)])
    assert chains.samples.shape == (2, 4, 1)
    np.testing.assert_array_equal(chains.lengths, [4, 3])


def test_chains_from_list_validation():
    s = [np.zeros((5, 2)), np.zeros((4, 2))]
    lp = [np.zeros(5), np.zeros(4)]
    with pytest.raises(ValueError, match="at least one chain"):
        chains_from_list([], [])
    with pytest.raises(
        ValueError, match=r"log_posterior must hold one array per chain \(2\); got 1"
    ):
        chains_from_list(s, lp[:1])
    with pytest.raises(ValueError, match=r"weights must hold one array per chain \(2\); got 1"):
        chains_from_list(s, lp, [np.ones(5)])
    with pytest.raises(ValueError, match="same dim"):
        chains_from_list([np.zeros((5, 2)), np.zeros((4, 3))], lp)
    with pytest.raises(ValueError, match=r"log_posterior\[1\] must have 4 entries"):
        chains_from_list(s, [np.zeros(5), np.zeros(5)])
    with pytest.raises(ValueError, match=r"weights\[0\] must have 5 entries"):
        chains_from_list(s, lp, [np.ones(4), np.ones(4)])
    with pytest.raises(ValueError, match="chain 1 is empty"):
        chains_from_list([np.zeros((5, 2)), np.zeros((0, 2))], [np.zeros(5), np.zeros(0)])


def test_select_keeps_weights_and_names():
    x, lp = _draws()
    w = np.random.default_rng(2).uniform(size=lp.shape)
    chains = Chains(x, lp, w, names=("a", "b"))
    sub = chains.select([2, 0])
    np.testing.assert_array_equal(sub.samples, x[[2, 0]])
    np.testing.assert_array_equal(sub.weights, w[[2, 0]])
    assert sub.names == ("a", "b")


def test_split_chains_contiguous_pieces():
    x, lp = _draws(num_chains=2, num_samples=40)
    chains = Chains(x, lp, names=("a", "b"))
    pieces = chains.split_chains(4)
    assert pieces.num_chains == 8
    assert pieces.num_samples == 10
    assert pieces.names == ("a", "b")
    np.testing.assert_array_equal(pieces.samples.reshape(2, 40, 2), x)
    np.testing.assert_array_equal(pieces.log_posterior.reshape(2, 40), lp)
    np.testing.assert_array_equal(chains.split_chains(1).samples, x)


def test_split_chains_of_unequal_chains_drops_padding():
    rng = np.random.default_rng(3)
    samples = [rng.normal(size=(n, 1)) for n in (9, 6)]
    chains = chains_from_list(samples, [np.zeros(9), np.zeros(6)])
    pieces = chains.split_chains(3)
    assert pieces.num_chains == 6
    np.testing.assert_array_equal(pieces.lengths, [3, 3, 3, 2, 2, 2])
    np.testing.assert_array_equal(pieces.flat()[0], np.concatenate(samples))


def test_split_chains_validation():
    x, lp = _draws(num_samples=3)
    chains = Chains(x, lp)
    with pytest.raises(ValueError, match="chain 0 has 3 draws; cannot cut it into num_pieces = 4"):
        chains.split_chains(4)
    with pytest.raises(ValueError, match="num_pieces must be >= 1"):
        chains.split_chains(0)
    with pytest.raises(TypeError, match="num_pieces must be an integer"):
        chains.split_chains(2.0)
