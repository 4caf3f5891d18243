"""Saliency: exact gradients, IG completeness, permutation importance, randomisation check."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig, fit, split_validation
from astrobayes.interpret import (
    RandomisationStatus,
    integrated_gradients,
    permutation_importance,
    randomisation_check,
    vanilla_gradients,
)


def _law(x):
    return jnp.sin(x[0]) + 0.5 * x[1] ** 2


def test_vanilla_gradients_match_the_analytic_jacobian():
    x = jax.random.normal(jax.random.key(0), (5, 4))
    g = np.asarray(vanilla_gradients(_law, x))
    expected = np.zeros((5, 4))
    expected[:, 0] = np.cos(np.asarray(x[:, 0]))
    expected[:, 1] = np.asarray(x[:, 1])
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_are_complete_and_vanish_on_unused_features():
    x = jax.random.normal(jax.random.key(1), (6, 4))
    baseline = jnp.full(4, 0.3)
    ig, error = integrated_gradients(_law, x, baseline, num_steps=200)
    np.testing.assert_allclose(np.asarray(error), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(ig[:, 2:]), 0.0, atol=1e-7)
    # the quadratic feature's attribution is exact: 0.5 (x1^2 - b1^2)
    np.testing.assert_allclose(
        np.asarray(ig[:, 1]), 0.5 * (np.asarray(x[:, 1]) ** 2 - 0.09), rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(_law, x, jnp.zeros(3))


def test_permutation_importance_ranks_the_used_features():
    x = jax.random.normal(jax.random.key(2), (200, 4))
    y = jax.vmap(_law)(x)
    mse = lambda p, t: jnp.mean((p - t) ** 2)  # noqa: E731
    r = permutation_importance(jax.random.key(3), _law, x, y, mse, num_repeats=5)
    assert r.baseline_loss == 0.0
    assert r.importance[0] > 5 * r.error[0] > 0
    assert r.importance[1] > 5 * r.error[1] > 0
    np.testing.assert_allclose(r.importance[2:], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="rows"):
        permutation_importance(jax.random.key(3), _law, x, y[:10], mse)


@pytest.mark.slow
def test_randomisation_check_passes_for_a_trained_network_and_fails_for_a_constant_map():
    x = jax.random.normal(jax.random.key(4), (2000, 4))
    y = jax.vmap(_law)(x)[:, None]
    model = eqx.nn.MLP(4, 1, 32, 2, activation=jax.nn.tanh, key=jax.random.key(5))
    train, valid = split_validation(jax.random.key(6), (x, y), 0.2)

    def loss(m, batch, key):
        xb, yb = batch
        return jnp.mean((jax.vmap(m)(xb) - yb) ** 2)

    config = TrainingConfig(learning_rate=3e-3, batch_size=128, max_epochs=150, patience=20)
    trained, info = fit(jax.random.key(7), model, loss, train, valid, config=config)
    assert info.status.severity <= 1
    probe = x[:64]
    result = randomisation_check(jax.random.key(8), trained, probe)
    assert result.status is RandomisationStatus.PASSED
    # negative control: a "saliency" that ignores the model (the input itself) survives
    # randomisation, and the check must flag it
    control = randomisation_check(
        jax.random.key(8), trained, probe, saliency_fn=lambda fn, inputs: inputs
    )
    assert control.status is RandomisationStatus.FAILED
    assert control.rank_correlation > 0.99
