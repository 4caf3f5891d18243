"""Example simulators for ``astrobayes sbi`` (see docs/sbi.md).

``simulate``: a 2-parameter linear-Gaussian model observed at 5 points,
``x_i = a + b t_i + 0.1 * noise``. ``simulate_python``: the same in NumPy, with the
``simulate(seed, theta)`` signature used with ``simulator_kind = "python"``; it fails
(NaN) for a < -0.9 to show failure handling.
"""

import jax
import jax.numpy as jnp
import numpy as np

T = jnp.linspace(-1.0, 1.0, 5)


def simulate(key, theta):
    a, b = theta
    return a + b * T + 0.1 * jax.random.normal(key, T.shape)


def simulate_python(seed, theta):
    a, b = theta
    if a < -0.9:
        return np.full(5, np.nan)
    rng = np.random.default_rng(seed)
    return a + b * np.linspace(-1.0, 1.0, 5) + 0.1 * rng.normal(size=5)
