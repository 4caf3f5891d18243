from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.io.simulations import SimulationStore
from astrobayes.sbi import (
    Prior,
    PythonSimulator,
    SimulationStatus,
    run_simulations,
    simulate_for_prior,
)
from campaign_simulators import noisy


def jax_simulate(key, theta):
    x = theta + 0.1 * jax.random.normal(key, theta.shape)
    return jnp.where(theta[0] > 0.8, jnp.nan, x)


def python_simulate(seed, theta):
    if theta[0] < -0.8:
        raise RuntimeError("solver diverged")
    return np.asarray(theta) + np.random.default_rng(seed).normal(size=theta.shape)


def test_jax_simulator_excludes_nan_and_streams_chunks(key, tmp_path):
    prior = Prior.uniform([-1.0, -1.0], [1.0, 1.0])
    store = SimulationStore(tmp_path)
    result = simulate_for_prior(key, prior, jax_simulate, 250, chunk_size=100, sink=store)
    assert result.status is SimulationStatus.SOME_FAILED
    assert result.num_non_finite == int(
        (np.asarray(prior.sample(jax.random.split(key)[0], 250))[:, 0] > 0.8).sum()
    )
    assert result.theta.shape[0] == 250 - result.num_failed
    assert np.all(np.isfinite(result.x))
    stored = store.load()
    assert stored.num_chunks == 3
    np.testing.assert_array_equal(stored.theta, result.theta)
    np.testing.assert_array_equal(stored.x, result.x)
    assert stored.failed_theta.shape == (result.num_failed, 2)
    assert all(r == "non-finite output" for r in stored.failure_reasons)


def test_progress_is_reported_after_every_chunk_and_changes_nothing(key):
    prior = Prior.uniform([-1.0, -1.0], [1.0, 1.0])
    calls = []
    result = simulate_for_prior(
        key, prior, jax_simulate, 250, chunk_size=100, progress_fn=lambda *a: calls.append(a)
    )
    assert calls == [
        ("simulations", 100, 250),
        ("simulations", 200, 250),
        ("simulations", 250, 250),
    ]
    quiet = simulate_for_prior(key, prior, jax_simulate, 250, chunk_size=100)
    np.testing.assert_array_equal(result.x, quiet.x)


def test_a_broken_jax_simulator_is_named_at_its_first_trace():
    from astrobayes.sbi import JaxSimulator

    def python_if(key, theta):
        return theta if theta[0] > 0 else -theta

    with pytest.raises(
        ValueError, match="simulator 'f': its code raised TracerBoolConversionError"
    ):
        JaxSimulator(python_if).output_shape(2, "simulator 'f'")
    with pytest.raises(ValueError, match="must return one real array"):
        JaxSimulator(lambda key, theta: {"x": theta}).output_shape(2)
    assert JaxSimulator(jax_simulate).output_shape(3) == (3,)  # the negative control


class _Kill(Exception):
    """Stands in for a SIGKILL after a chunk was written."""


def test_a_killed_simulation_run_resumes_with_the_same_arrays(key, tmp_path):
    prior = Prior.uniform([-1.0, -1.0], [1.0, 1.0])
    whole = simulate_for_prior(key, prior, jax_simulate, 250, chunk_size=100)
    store = SimulationStore(tmp_path / "sims")
    append = store.append

    def append_then_kill(*args, **kwargs):
        path = append(*args, **kwargs)
        if kwargs.get("chunk") == 1:
            raise _Kill
        return path

    store.append = append_then_kill
    with pytest.raises(_Kill):
        simulate_for_prior(key, prior, jax_simulate, 250, chunk_size=100, sink=store)
    resumed = simulate_for_prior(
        key, prior, jax_simulate, 250, chunk_size=100, sink=SimulationStore(tmp_path / "sims")
    )
    assert resumed.num_resumed == 200  # chunks 0 and 1 read back, chunk 2 simulated
    for name in ("theta", "x", "failed_theta"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))
    assert resumed.num_non_finite == whole.num_non_finite > 0
    assert resumed.failure_examples == whole.failure_examples
    assert SimulationStore(tmp_path / "sims").load().num_chunks == 3  # nothing twice
    # negative controls: another key is refused, not mixed in; so is another identity
    with pytest.raises(ValueError, match="holds other simulations than this run's round 0"):
        simulate_for_prior(
            jax.random.key(99),
            prior,
            jax_simulate,
            250,
            chunk_size=100,
            sink=SimulationStore(tmp_path / "sims"),
        )
    SimulationStore(tmp_path / "named", identity="run-a")
    SimulationStore(tmp_path / "named", identity="run-a")  # the same run: fine
    with pytest.raises(ValueError, match="holds the simulations of another run"):
        SimulationStore(tmp_path / "named", identity="run-b")


def test_same_key_same_simulations(key):
    prior = Prior.uniform([-1.0], [1.0])
    a = simulate_for_prior(key, prior, jax_simulate, 20)
    b = simulate_for_prior(key, prior, jax_simulate, 20)
    np.testing.assert_array_equal(a.x, b.x)


def test_python_simulator_counts_raised(key):
    theta = np.array([[-0.9, 0.0], [0.0, 0.0], [0.5, 0.5]])
    with ThreadPoolExecutor(2) as pool:
        result = run_simulations(key, PythonSimulator(python_simulate, executor=pool), theta)
    assert result.num_raised == 1
    assert result.theta.shape == (2, 2)
    assert "RuntimeError: solver diverged" in result.failure_examples[0]


def test_a_chunk_whose_every_simulation_raised_is_dropped_cleanly(key):
    # the first chunk's simulations all raise, so its empty output has no data shape;
    # until 2026-12-06 concatenating it with the next chunk's outputs raised
    theta = np.array([[-0.9, 0.0], [-0.95, 0.0], [0.0, 0.0], [0.5, 0.5]])
    with ThreadPoolExecutor(2) as pool:
        result = run_simulations(
            key, PythonSimulator(python_simulate, executor=pool), theta, chunk_size=2
        )
    assert result.x.shape == (2, 2)
    assert result.num_raised == 2
    np.testing.assert_array_equal(result.theta, theta[2:])


def test_python_simulator_process_pool(key):
    # a simulator from a NumPy-only module: the spawned workers import it, not JAX
    theta = np.array([[0.0, 0.0], [1.0, 2.0], [11.0, 0.0], [-1.0, 0.5]])
    result = run_simulations(key, PythonSimulator(noisy, max_workers=2), theta)
    assert result.x.shape == (3, 2)
    assert result.num_raised == 1
    assert "outside the simulator's range" in result.failure_examples[0]
    assert result.status is SimulationStatus.SOME_FAILED
    # the same seeds in one thread give the same outputs
    with ThreadPoolExecutor(1) as pool:
        again = run_simulations(key, PythonSimulator(noisy, executor=pool), theta)
    np.testing.assert_array_equal(result.x, again.x)


def test_all_failed_status(key):
    result = run_simulations(key, lambda k, t: t * jnp.nan, np.zeros((3, 1)))
    assert result.status is SimulationStatus.ALL_FAILED
    assert result.status.is_failure
    assert SimulationStatus.SOME_FAILED.is_warning


def test_all_failed_throws_with_the_result(key):
    with pytest.raises(UnreliableResultError, match="every simulation failed") as error:
        run_simulations(key, lambda k, t: t * jnp.nan, np.zeros((3, 1)), throw=True)
    assert error.value.result.num_non_finite == 3
    prior = Prior.uniform([-1.0], [1.0])
    with pytest.raises(UnreliableResultError, match="ALL_FAILED"):
        simulate_for_prior(key, prior, lambda k, t: t * jnp.nan, 4, throw=True)


def test_simulation_validation(key, tmp_path):
    with pytest.raises(TypeError, match="simulator must be"):
        run_simulations(key, 3, np.zeros((2, 1)))
    with pytest.raises(ValueError, match="theta must have 2 dimensions"):
        run_simulations(key, jax_simulate, np.zeros(3))
    with pytest.raises(ValueError, match="theta must be finite"):
        run_simulations(key, jax_simulate, np.full((2, 1), np.nan))
    with pytest.raises(FileNotFoundError, match="no simulation chunks"):
        SimulationStore(tmp_path).load()
    with pytest.raises(ValueError, match="one message per failed draw"):
        SimulationStore(tmp_path).append(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), [])


def test_failure_share_threshold_and_locations(key):
    from astrobayes.sbi import failure_locations
    from astrobayes.sbi.simulators import FAILURE_WARNING_FRACTION

    theta = np.linspace(-1, 1, 1000)[:, None] * np.ones((1, 2))
    theta[:, 1] = np.random.default_rng(0).uniform(-1, 1, 1000)

    def fail_above(limit):
        return lambda k, t: jnp.where(t[0] > limit, jnp.nan, t)

    few = run_simulations(key, fail_above(0.985), theta)  # 7 of 1000 fail: <= 1%
    assert 0 < few.num_failed <= FAILURE_WARNING_FRACTION * 1000
    assert few.status is SimulationStatus.FEW_FAILED
    assert few.status.is_ok
    many = run_simulations(key, fail_above(0.0), theta)  # half the prior fails
    assert many.status is SimulationStatus.SOME_FAILED
    assert many.status.is_warning
    assert "conditional on the simulator succeeding" in many.status.value
    np.testing.assert_array_equal(many.failed_theta, theta[theta[:, 0] > 0.0])
    where = failure_locations(many.theta, many.failed_theta, names=("a", "b"))
    assert where.parameter == 0
    assert where.summary.startswith("failures concentrate in a in [0")
    np.testing.assert_allclose(where.failed_fraction[0], [0] * 5 + [1] * 5)
    assert where.failed_fraction_total == 0.5
    # negative control: failures at random places are not pinned to a region
    rng = np.random.default_rng(1)
    scattered = rng.random(1000) < 0.3
    spread = failure_locations(theta[~scattered], theta[scattered])
    assert "spread over the prior" in spread.summary
    assert np.nanmax(spread.failed_fraction) < 0.5
    with pytest.raises(ValueError, match="same dim"):
        failure_locations(np.zeros((3, 2)), np.zeros((2, 3)))
