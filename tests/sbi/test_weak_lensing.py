import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sbi_weak_lensing.py"


def _load():
    spec = importlib.util.spec_from_file_location("sbi_weak_lensing", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulator_shapes_and_dependence(key):
    module = _load()
    low = module.simulate(key, jnp.array([0.3, 0.6]))
    high = module.simulate(key, jnp.array([0.3, 1.0]))
    assert low.shape == (64, 64)
    assert bool(jnp.all(jnp.isfinite(low)))
    assert float(jnp.std(high)) > float(jnp.std(low))


@pytest.mark.slow
def test_weak_lensing_npe_coverage():
    module = _load()
    _, report, posterior = module.main(num_simulations=4000, num_tests=200, seed=0)
    assert report.coverage.max_deviation < 0.1
    assert np.all(posterior.samples.std(0) < np.array([0.4, 0.6]) / np.sqrt(12))
