"""A user's likelihood module for ``astrobayes run``: is the trend a line or a parabola?

Each function takes ``params = {name: value}`` (sampled and fixed parameters) and, because
the models in ``config.toml`` name a data file, ``data = {name: array}``; it returns the
natural log of a normalised likelihood, written in JAX so NUTS can differentiate it.
``data.txt`` holds 20 points ``x, y`` drawn from ``y = 0.5 + 1.2 x + 0.4 x**2`` with
Gaussian noise of standard deviation 0.3 (the ``sigma`` the config fixes).
"""

import jax.numpy as jnp


def _gaussian(y, mean, sigma):
    residual = (y - mean) / sigma
    return -0.5 * jnp.sum(residual**2) - y.shape[0] * jnp.log(jnp.sqrt(2 * jnp.pi) * sigma)


def line(params, data):
    """``ln L`` of ``y = a + b x``."""
    x, y = data["points"][:, 0], data["points"][:, 1]
    return _gaussian(y, params["a"] + params["b"] * x, params["sigma"])


def parabola(params, data):
    """``ln L`` of ``y = a + b x + c x^2``."""
    x, y = data["points"][:, 0], data["points"][:, 1]
    return _gaussian(y, params["a"] + params["b"] * x + params["c"] * x**2, params["sigma"])


def y_at_one(params):
    """Derived parameter: the line's (or parabola's) value at ``x = 1``."""
    return params["a"] + params["b"] + params.get("c", 0.0)
