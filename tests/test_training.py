"""Tests of the one training loop (astrobayes._training)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import Severity
from astrobayes._training import TrainingConfig, TrainingStatus, fit, split_validation

# no strict dtype promotion here: optax itself mixes its int32 step count with floats


class _Line(eqx.Module):
    slope: jax.Array
    offset: jax.Array
    frozen: jax.Array

    def __call__(self, x):
        return self.slope * x + self.offset + self.frozen


def _data(key, num=200, noise=0.1):
    kx, kn = jax.random.split(key)
    x = jax.random.uniform(kx, (num,), minval=-1, maxval=1)
    return x, 2.0 * x - 0.5 + noise * jax.random.normal(kn, (num,))


def _mse(model, batch, key):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _line():
    return _Line(jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))


def test_recovers_least_squares_and_stops_early(key):
    x, y = _data(key)
    train, valid = split_validation(jax.random.fold_in(key, 1), (x, y), 0.2)
    config = TrainingConfig(learning_rate=0.05, batch_size=32, max_epochs=400, patience=15)
    model, info = fit(jax.random.fold_in(key, 2), _line(), _mse, train, valid, config=config)
    design = np.stack([np.asarray(train[0]), np.ones(train[0].shape[0])], axis=1)
    exact = np.linalg.lstsq(design, np.asarray(train[1]), rcond=None)[0]
    # the optimum is reached up to the minibatch noise of Adam (slope error ~ 0.1/sqrt(160))
    fitted = [float(model.slope), float(model.offset + model.frozen)]  # both offsets train
    np.testing.assert_allclose(fitted, exact, atol=0.03)
    assert info.status is TrainingStatus.CONVERGED
    assert info.stopped_early
    assert info.num_epochs < 400
    assert info.num_epochs == info.validation_losses.size
    assert info.validation_losses[info.best_epoch] == info.validation_losses.min()
    assert (info.num_train, info.num_validation) == (160, 40)


def test_negative_control_too_few_epochs_is_a_warning(key):
    x, y = _data(key)
    train, valid = split_validation(key, (x, y), 0.2)
    config = TrainingConfig(learning_rate=1e-4, batch_size=32, max_epochs=3, patience=2)
    model, info = fit(key, _line(), _mse, train, valid, config=config)
    assert info.status is TrainingStatus.MAX_EPOCHS
    assert info.status.severity is Severity.WARNING
    assert not info.stopped_early
    assert abs(float(model.slope) - 2.0) > 1.0  # not trained: a wrong answer is detectable


def test_same_key_same_model_and_filter_spec_freezes(key):
    x, y = _data(key)
    train, valid = split_validation(key, (x, y), 0.25)
    config = TrainingConfig(learning_rate=0.05, batch_size=50, max_epochs=20, patience=5)
    spec = _Line(True, True, False)
    first, _ = fit(key, _line(), _mse, train, valid, config=config, filter_spec=spec)
    second, _ = fit(key, _line(), _mse, train, valid, config=config, filter_spec=spec)
    assert float(first.slope) == float(second.slope)
    assert float(first.frozen) == 0.0  # not trained
    other, _ = fit(jax.random.fold_in(key, 9), _line(), _mse, train, valid, config=config)
    assert float(other.slope) != float(first.slope)


def test_non_finite_loss_is_a_failure_and_keeps_the_best_finite_epoch(key):
    x, y = _data(key)
    train, valid = split_validation(key, (x, y), 0.25)

    def explode(model, batch, k):  # finite while the slope is small, then NaN
        loss = _mse(model, batch, k)
        return jnp.where(model.slope > 1.0, jnp.nan, loss)

    config = TrainingConfig(learning_rate=0.05, batch_size=50, max_epochs=200)
    model, info = fit(key, _line(), explode, train, valid, config=config)
    assert info.status is TrainingStatus.NON_FINITE
    assert info.status.is_failure
    assert np.isnan(info.validation_losses[-1])
    assert 0.0 < float(model.slope) <= 1.0


@pytest.mark.parametrize("epoch_loop", ["scan", "python"])
def test_non_finite_parameters_behind_a_finite_loss_are_a_failure(key, epoch_loop):
    """A loss that maps NaN parameters to a finite value (a ``jnp.where`` guard, as in the
    GP's Matern kernel) must not pass them off as trained: NaN slope -> NON_FINITE."""
    x, y = _data(key)
    train, valid = split_validation(key, (x, y), 0.25)

    def guarded(model, batch, k):  # an infinite gradient once the slope passes 1
        loss = _mse(model, batch, k) + jnp.sqrt(jnp.maximum(model.slope - 1.0, 0.0))
        return jnp.where(jnp.isnan(model.slope), 0.0, loss)

    config = TrainingConfig(
        learning_rate=0.05, batch_size=50, max_epochs=200, epoch_loop=epoch_loop
    )
    model, info = fit(key, _line(), guarded, train, valid, config=config)
    assert info.status is TrainingStatus.NON_FINITE, info.status
    assert np.all(np.isfinite(info.validation_losses[:-1]))
    assert np.isfinite(float(model.slope))  # the last finite parameters were kept


def test_stochastic_losses_get_fresh_keys_per_step_and_fixed_validation_draws(key):
    x, y = _data(key, num=40)
    keys = []

    def record(model, batch, k):
        keys.append(tuple(np.asarray(jax.random.key_data(k)).tolist()))
        return _mse(model, batch, k)

    # eager: each epoch calls the loss for its 3 steps, then once for validation
    config = TrainingConfig(batch_size=10, max_epochs=2, patience=5)
    train, valid = split_validation(key, (x, y), 0.25)
    with jax.disable_jit():
        fit(key, _line(), record, train, valid, config=config)
    assert len(keys) == 8
    steps, validation = keys[0:3] + keys[4:7], {keys[3], keys[7]}
    assert len(set(steps)) == 6  # fresh draws for every step of every epoch
    # one validation key for the whole fit (common random numbers across epochs), not
    # one of the steps' keys
    assert len(validation) == 1
    assert not validation & set(steps)


def test_python_epoch_loop_matches_the_scanned_epoch(key):
    # Same keys, same batches, same steps: the two loops give the same model (up to the
    # floating-point reassociation of separately compiled programs).
    x, y = _data(key)
    train, valid = split_validation(key, (x, y), 0.25)
    scan = TrainingConfig(learning_rate=0.05, batch_size=50, max_epochs=6, patience=6)
    python = TrainingConfig(
        learning_rate=0.05, batch_size=50, max_epochs=6, patience=6, epoch_loop="python"
    )
    # The scanned epoch compiled by XLA's elemental CPU emitter, and with LLVM's level 1
    # on top (the tiny evidence flows' options): the same program again.
    elemental = dataclasses.replace(scan, cpu_emitter="elemental")
    level_1 = dataclasses.replace(elemental, cpu_optimization_level=1)
    a, info_a = fit(key, _line(), _mse, train, valid, config=scan)
    for other in (python, elemental, level_1):
        b, info_b = fit(key, _line(), _mse, train, valid, config=other)
        np.testing.assert_allclose(float(a.slope), float(b.slope), rtol=1e-5)
        np.testing.assert_allclose(info_a.validation_losses, info_b.validation_losses, rtol=1e-5)
        np.testing.assert_allclose(info_a.train_losses, info_b.train_losses, rtol=1e-5)
    # Negative control: another key gives another model.
    c, _ = fit(jax.random.fold_in(key, 3), _line(), _mse, train, valid, config=python)
    assert abs(float(c.slope) - float(b.slope)) > 1e-4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epoch_loop": "while"}, "epoch_loop must be 'scan' or 'python'; got 'while'"),
        ({"cpu_emitter": "llvm"}, "cpu_emitter must be 'fusion' or 'elemental'; got 'llvm'"),
        ({"cpu_optimization_level": 4}, "cpu_optimization_level must be None or an int from 0"),
        ({"cpu_optimization_level": True}, "cpu_optimization_level must be None or an int"),
        ({"learning_rate": 0}, "learning_rate must be a positive number; got 0"),
        ({"batch_size": 0}, "batch_size"),
        ({"patience": -1}, "patience"),
        ({"clip_max_norm": 0}, "clip_max_norm must be > 0 or None"),
        ({"schedule": "linear"}, "schedule must be 'constant' or 'cosine'; got 'linear'"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**kwargs)


def test_fit_and_split_validation_check_their_input(key):
    x = jnp.zeros(10)
    with pytest.raises(TypeError, match="train must be a non-empty tuple of arrays; got list"):
        fit(key, _line(), _mse, [x, x], (x, x))
    with pytest.raises(ValueError, match="must share their leading axis"):
        fit(key, _line(), _mse, (x, jnp.zeros(9)), (x, x))
    with pytest.raises(ValueError, match="same arrays; got 2 and 1"):
        fit(key, _line(), _mse, (x, x), (x,))
    with pytest.raises(TypeError, match="config must be a TrainingConfig"):
        fit(key, _line(), _mse, (x, x), (x, x), config={"learning_rate": 1})
    with pytest.raises(ValueError, match="need at least 2 training points"):
        split_validation(key, (jnp.zeros(2),), 0.5)
    train, valid = split_validation(key, (jnp.arange(10.0),), 0.3)
    assert train[0].shape == (7,)
    assert valid[0].shape == (3,)
    assert sorted(np.concatenate([train[0], valid[0]]).tolist()) == list(range(10))
