"""Tests of astrobayes.sampling.run_nuts and astrobayes.io.checkpoint.NpzCheckpoint.

Every NUTS run compiles the window adaptation (tens of seconds on 2 busy cores), so the
runs are ``slow``; input validation (which happens before any compilation) is fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.io.checkpoint import NpzCheckpoint
from astrobayes.sampling import NUTSConfig, run_nuts

MEAN = np.array([1.0, -2.0])
STD = np.array([1.0, 3.0])


def _logdensity(x):
    return -0.5 * jnp.sum(((x - MEAN) / STD) ** 2)


class _InterruptedCheckpoint(NpzCheckpoint):
    """Writes like NpzCheckpoint, then 'is killed' right after its ``after``-th save."""

    def __init__(self, path, after):
        super().__init__(path)
        self.after = after
        self.num_saves = 0

    def save(self, arrays):
        super().save(arrays)
        self.num_saves += 1
        if self.num_saves == self.after:
            raise KeyboardInterrupt


# --------------------------------------------------------------------- validation


def test_config_validation():
    with pytest.raises(ValueError, match="num_warmup must be >= 10"):
        NUTSConfig(num_warmup=5)
    with pytest.raises(ValueError, match="num_chains must be >= 1"):
        NUTSConfig(num_chains=0)
    with pytest.raises(TypeError, match="num_samples must be an integer"):
        NUTSConfig(num_samples=10.0)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        NUTSConfig(checkpoint_every=0)
    with pytest.raises(ValueError, match=r"target_acceptance_rate must lie in \(0, 1\)"):
        NUTSConfig(target_acceptance_rate=1.0)


def test_non_finite_initial_position_is_refused(key):
    config = NUTSConfig(num_chains=2, num_warmup=10, num_samples=10)

    def logdensity(x):
        return jnp.where(x[0] > 0, -0.5 * jnp.sum(x**2), -jnp.inf)

    positions = jnp.array([[0.5, 0.0], [-1.0, 0.0]])
    with pytest.raises(ValueError, match=r"not finite at initial_positions\[1\]"):
        run_nuts(key, logdensity, positions, config=config)
    with pytest.raises(ValueError, match="initial_positions must be finite|not finite"):
        run_nuts(key, _logdensity, jnp.array([[0.0, 0.0], [jnp.nan, 0.0]]), config=config)


def test_bad_arguments_are_refused(key):
    config = NUTSConfig(num_chains=2, num_warmup=10, num_samples=10)
    with pytest.raises(
        ValueError, match=r"initial_positions must have shape \(num_chains=2, dim\)"
    ):
        run_nuts(key, _logdensity, jnp.zeros((3, 2)), config=config)
    with pytest.raises(ValueError, match="initial_positions must have 2 dimensions"):
        run_nuts(key, _logdensity, jnp.zeros(2), config=config)
    with pytest.raises(ValueError, match="names must hold dim = 2 names; got 1"):
        run_nuts(key, _logdensity, jnp.zeros((2, 2)), config=config, names=("a",))
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        run_nuts(0, _logdensity, jnp.zeros((2, 2)), config=config)


def test_checkpoint_of_another_run_is_refused(key, tmp_path):
    # The fingerprint is checked before any warm-up.
    checkpoint = NpzCheckpoint(tmp_path / "run.npz")
    checkpoint.save({"fingerprint": np.asarray("0" * 32)})
    config = NUTSConfig(num_chains=2, num_warmup=10, num_samples=10)
    with pytest.raises(ValueError, match="checkpoint belongs to a different run"):
        run_nuts(key, _logdensity, jnp.zeros((2, 2)), config=config, checkpoint=checkpoint)


def test_npz_checkpoint_roundtrip_and_errors(tmp_path):
    checkpoint = NpzCheckpoint(tmp_path / "sub" / "run.npz")
    assert checkpoint.load() is None
    arrays = {"a": np.arange(6.0).reshape(2, 3), "fingerprint": np.asarray("abc")}
    checkpoint.save(arrays)
    loaded = checkpoint.load()
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert str(loaded["fingerprint"]) == "abc"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["run.npz"]  # no temp files
    checkpoint.remove()
    assert checkpoint.load() is None
    checkpoint.remove()  # removing twice is fine
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="broken.npz is unreadable"):
        NpzCheckpoint(broken).load()
    # object arrays would need pickle: refused on load
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="unreadable"):
        NpzCheckpoint(pickled).load()


# ------------------------------------------------------------------------ runs


@pytest.mark.slow
def test_run_nuts_on_a_gaussian(key):
    config = NUTSConfig(num_chains=4, num_warmup=200, num_samples=500, checkpoint_every=250)
    calls = []
    result = run_nuts(
        key,
        _logdensity,
        jnp.zeros((4, 2)),
        config=config,
        names=("a", "b"),
        progress_fn=lambda *args: calls.append(args),
    )
    assert result.samples.shape == (4, 500, 2)
    assert result.logdensity.shape == (4, 500)
    assert result.names == ("a", "b")
    assert result.resumed_from == 0
    assert result.rhat.shape == (2,)
    assert np.all(np.abs(result.rhat - 1.0) < 0.05)
    assert np.all(result.ess > 200)
    assert np.all(result.acceptance_rate > 0.5)
    assert result.status.is_ok or result.status.is_warning, result.messages
    assert result.step_size.shape == (4,)
    np.testing.assert_allclose(
        result.logdensity, np.asarray(jax.vmap(jax.vmap(_logdensity))(result.samples)), atol=1e-4
    )
    # posterior mean within 4.5 Monte Carlo errors (from the ESS)
    error = STD / np.sqrt(result.ess)
    assert np.all(np.abs(result.samples.mean((0, 1)) - MEAN) < 4.5 * error)
    np.testing.assert_allclose(result.samples.std((0, 1)), STD, rtol=0.15)
    assert calls[0] == ("warmup", 0, 200)
    assert calls[-1] == ("sampling", 500, 500)
    chains = result.to_chains()
    assert chains.names == ("a", "b")
    np.testing.assert_array_equal(chains.samples, result.samples)


@pytest.mark.slow
def test_checkpoint_resume_is_bitwise_identical(key, tmp_path):
    config = NUTSConfig(num_chains=2, num_warmup=50, num_samples=150, checkpoint_every=50)
    start = jnp.zeros((2, 2))
    uninterrupted = run_nuts(key, _logdensity, start, config=config)

    path = tmp_path / "run.npz"
    killed = _InterruptedCheckpoint(path, after=3)  # warm-up, 50 and 100 draws
    with pytest.raises(KeyboardInterrupt):
        run_nuts(key, _logdensity, start, config=config, checkpoint=killed)
    assert NpzCheckpoint(path).load()["draws"].shape == (2, 100, 2)

    resumed = run_nuts(key, _logdensity, start, config=config, checkpoint=NpzCheckpoint(path))
    assert resumed.resumed_from == 100
    np.testing.assert_array_equal(resumed.samples, uninterrupted.samples)
    np.testing.assert_array_equal(resumed.logdensity, uninterrupted.logdensity)
    np.testing.assert_array_equal(resumed.step_size, uninterrupted.step_size)
    np.testing.assert_array_equal(resumed.num_divergent, uninterrupted.num_divergent)
    np.testing.assert_allclose(resumed.acceptance_rate, uninterrupted.acceptance_rate, rtol=1e-12)
    np.testing.assert_array_equal(
        resumed.num_gradient_evaluations, uninterrupted.num_gradient_evaluations
    )
    assert resumed.num_computed_evaluations == uninterrupted.num_computed_evaluations

    # A finished checkpoint is returned as it is (nothing is sampled again) ...
    again = run_nuts(key, _logdensity, start, config=config, checkpoint=NpzCheckpoint(path))
    assert again.resumed_from == 150
    np.testing.assert_array_equal(again.samples, uninterrupted.samples)
    # ... and one from a different seed (or other settings) is refused.
    with pytest.raises(ValueError, match="different run"):
        run_nuts(
            jax.random.key(1), _logdensity, start, config=config, checkpoint=NpzCheckpoint(path)
        )
    other = NUTSConfig(num_chains=2, num_warmup=50, num_samples=200, checkpoint_every=50)
    with pytest.raises(ValueError, match="different run"):
        run_nuts(key, _logdensity, start, config=other, checkpoint=NpzCheckpoint(path))


def test_gradient_evaluations_match_an_independent_count(key):
    """The reported count equals the density calls seen by a callback (less the start's)."""
    calls = []

    def counted(x):
        jax.debug.callback(lambda: calls.append(1))
        return _logdensity(x)

    counts = {}
    for num_samples in (100, 200):
        calls.clear()
        config = NUTSConfig(
            num_chains=1, num_warmup=100, num_samples=num_samples, chain_method="sequential"
        )
        result = run_nuts(key, counted, jnp.zeros((1, 2)), config=config)
        reported = int(result.num_gradient_evaluations.sum())
        counts[num_samples] = (len(calls), reported)
        assert result.num_gradient_evaluations.shape == (1,)
        # every leapfrog step evaluates the density once; the start adds a few calls
        assert 0 <= len(calls) - reported <= 4
        assert reported >= 100 + num_samples  # at least one step per transition
    # the extra 100 draws: the same warm-up and first 100 draws, so the counts differ by
    # exactly the extra steps (a count that left out the draws' steps would fail here)
    assert counts[200][0] - counts[100][0] == counts[200][1] - counts[100][1] > 0


def test_computed_evaluations_count_every_lane_of_the_vectorized_program(key):
    """Vectorized chains: the computed count is the batched density calls that a callback
    sees (one per lane per batched leapfrog step) to within 10%: a lower bound, as the
    batched loop runs each doubling to the longest chain's end; it exceeds the per-chain
    sum when trajectories differ. Sequential chains: the per-chain sum, as counted."""
    calls = []
    scales = jnp.array([0.05, 3.0])

    def counted(x):
        jax.debug.callback(lambda: calls.append(1))
        return -0.5 * jnp.sum((x / scales) ** 2)

    for method in ("vectorized", "sequential"):
        calls.clear()
        config = NUTSConfig(num_chains=3, num_warmup=60, num_samples=60, chain_method=method)
        result = run_nuts(key, counted, jnp.zeros((3, 2)), config=config)
        per_chain = int(result.num_gradient_evaluations.sum())
        computed = result.num_computed_evaluations
        if method == "vectorized":
            # a batched call is one callback; every chain's lane computes it
            assert computed <= 3 * len(calls) <= 1.1 * computed
            assert computed > per_chain  # the chains' trajectories differ in length
        else:
            assert computed == per_chain
            assert 0 <= len(calls) - computed <= 4 * 3  # the start adds a few calls per chain


@pytest.mark.slow
def test_same_key_same_draws(key):
    config = NUTSConfig(num_chains=2, num_warmup=30, num_samples=40, checkpoint_every=40)
    a = run_nuts(key, _logdensity, jnp.zeros((2, 2)), config=config)
    b = run_nuts(key, _logdensity, jnp.zeros((2, 2)), config=config)
    np.testing.assert_array_equal(a.samples, b.samples)
    c = run_nuts(jax.random.fold_in(key, 1), _logdensity, jnp.zeros((2, 2)), config=config)
    assert not np.array_equal(a.samples, c.samples)


def test_batched_logdensity_is_built_once_and_dropped_with_its_density():
    """One compiled ``jit(vmap)`` per live density (model set-up and the start check share
    it); it does not keep the density, and what the density holds, alive."""
    import gc
    import weakref

    from astrobayes.sampling.nuts import _BATCHED, batched_logdensity

    data = jnp.array([1.0, 2.0])

    def density(x):
        return -0.5 * jnp.sum((x - data) ** 2)

    batched = batched_logdensity(density)
    assert batched is batched_logdensity(density)
    np.testing.assert_allclose(np.asarray(batched(jnp.zeros((3, 2)))), -2.5)
    assert batched_logdensity(lambda x: -jnp.sum(x)) is not batched  # control: another density
    alive = weakref.ref(density)
    count = len(_BATCHED)
    del density, batched
    gc.collect()
    assert alive() is None
    assert len(_BATCHED) < count
