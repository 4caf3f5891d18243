import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes._training import TrainingInfo, TrainingStatus
from astrobayes.emulators import (
    Emulator,
    design,
    train_emulator,
    validate_emulator,
)


def _tiny(key, **kwargs):
    x = design(jax.random.key(5), [[0.0, 3.0]], 128)
    y = np.sin(x) + 2.0
    options = dict(hidden=(32, 32), num_epochs=150, batch_size=32, patience=150)
    options.update(kwargs)
    return train_emulator(key, x, y, **options), x, y


def test_design_shapes_bounds_and_determinism(key):
    bounds = [[0.1, 0.5], [60.0, 140.0], [-3.0, 1.0]]
    for method in ("sobol", "lhs"):
        points = design(key, bounds, 100, method=method)
        assert points.shape == (100, 3)
        assert np.all(points >= np.array(bounds)[:, 0])
        assert np.all(points <= np.array(bounds)[:, 1])
        np.testing.assert_array_equal(points, design(key, bounds, 100, method=method))
        assert not np.array_equal(
            points, design(jax.random.split(key)[0], bounds, 100, method=method)
        )
    # Latin hypercube: one point per stratum in every dimension.
    points = design(key, [[0.0, 1.0]] * 2, 10, method="lhs")
    for column in points.T:
        assert sorted(np.floor(column * 10).astype(int)) == list(range(10))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([[1.0, 0.0]], 4), ValueError, "low < high"),
        (([1.0, 2.0], 4), ValueError, "must have 2 dimensions"),
        (([[0.0, 1.0, 2.0]], 4), ValueError, r"shape \(dim, 2\)"),
        (([[0.0, 1.0]], 0), ValueError, "num must be >= 1"),
        (([[0.0, np.nan]], 4), ValueError, "finite"),
    ],
)
def test_design_validation(key, args, error, match):
    with pytest.raises(error, match=match):
        design(key, *args)


def test_design_validation_method_and_key(key):
    with pytest.raises(ValueError, match="method must be"):
        design(key, [[0.0, 1.0]], 4, method="grid")
    with pytest.raises(TypeError, match="PRNG key"):
        design(0, [[0.0, 1.0]], 4)


def test_shapes_and_batching(key):
    x = design(key, [[0.0, 1.0], [0.0, 1.0]], 64)
    y = np.stack([x[:, 0] + x[:, 1], x[:, 0] * x[:, 1], np.exp(x[:, 0])], 1)
    emulator, history = train_emulator(key, x, y, hidden=(8,), num_epochs=3)
    assert isinstance(emulator, Emulator)
    assert (emulator.num_parameters, emulator.num_outputs, emulator.num_components) == (2, 3, None)
    assert emulator(jnp.zeros(2)).shape == (3,)
    assert emulator(jnp.zeros((4, 5, 2))).shape == (4, 5, 3)
    np.testing.assert_allclose(
        emulator(x[:5]), jnp.stack([emulator(xi) for xi in x[:5]]), rtol=1e-6
    )
    np.testing.assert_allclose(
        eqx.filter_jit(lambda e, p: e(p))(emulator, x[:5]), emulator(x[:5]), rtol=1e-6
    )
    assert history.num_train + history.num_validation == 64
    assert jax.grad(lambda p: emulator(p).sum())(jnp.array([0.5, 0.5])).shape == (2,)
    with pytest.raises(ValueError, match="last axis 2"):
        emulator(jnp.zeros(3))
    pca_emulator, _ = train_emulator(key, x, y, pca_components=2, hidden=(8,), num_epochs=2)
    assert pca_emulator.num_components == 2
    assert pca_emulator(x[:3]).shape == (3, 3)


def test_training_loss_decreases_and_same_key_same_result(key):
    (emulator, history), x, _ = _tiny(
        key, num_epochs=30, hidden=(16,), batch_size=8, learning_rate=1e-2
    )
    assert history.train_losses[-1] < 0.3 * history.train_losses[0]
    assert history.validation_losses[history.best_epoch] == history.validation_losses.min()
    (again, _), _, _ = _tiny(key, num_epochs=30, hidden=(16,), batch_size=8, learning_rate=1e-2)
    np.testing.assert_array_equal(emulator(x), again(x))


def test_smooth_function_is_emulated_accurately(key):
    (emulator, history), _, _ = _tiny(key)
    held_out = design(jax.random.key(99), [[0.0, 3.0]], 200, method="lhs")
    report = validate_emulator(emulator, held_out, np.sin(held_out) + 2.0)
    assert report.num_points == 200
    assert report.max_relative_error < 2e-2, report
    assert report.percentile_99_relative_error <= report.max_relative_error
    # Negative control: a different function is not emulated.
    wrong = validate_emulator(emulator, held_out, np.cos(held_out) + 2.0)
    assert wrong.max_relative_error > 0.3


def test_early_stopping(key):
    (_, history), _, _ = _tiny(key, num_epochs=400, patience=3, learning_rate=0.3)
    assert isinstance(history, TrainingInfo)
    assert history.stopped_early
    assert history.status is TrainingStatus.CONVERGED
    assert history.num_epochs == len(history.train_losses) < 400


def test_max_epochs_is_a_warning_and_progress_is_reported(key):
    calls = []
    (_, info), _, _ = _tiny(key, num_epochs=3, hidden=(4,), progress_fn=lambda *a: calls.append(a))
    assert info.status is TrainingStatus.MAX_EPOCHS
    assert info.status.is_warning
    assert not info.stopped_early
    assert calls == [("training", 1, 3), ("training", 2, 3), ("training", 3, 3)]


def test_diverged_training_is_a_failure_and_throw_raises(key):
    x = design(jax.random.key(5), [[0.0, 3.0]], 64)
    # a step that overflows the session's float type (in float64, 1e30 left the losses
    # finite, ~1e121; in float32 a 1e200 constant breaks JAX's lowering)
    rate = 1e30 if jnp.result_type(float) == jnp.float32 else 1e200
    options = dict(hidden=(16,), num_epochs=5, batch_size=8, learning_rate=rate)
    _, info = train_emulator(key, x, np.sin(x), **options)
    assert info.status is TrainingStatus.NON_FINITE
    with pytest.raises(UnreliableResultError, match="NON_FINITE") as caught:
        train_emulator(key, x, np.sin(x), throw=True, **options)
    assert caught.value.result.status is TrainingStatus.NON_FINITE
    assert caught.value.result.num_train == info.num_train


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(outputs=np.ones(7)), ValueError, "same number of rows"),
        (dict(outputs=-np.ones(8), log_outputs=True), ValueError, "strictly positive"),
        (dict(pca_components=5), ValueError, "pca_components must be <="),
        (dict(activation="relu6"), ValueError, "activation must be one of"),
        (dict(parameters=np.full((8, 1), np.nan)), ValueError, "parameters must be finite"),
        (dict(validation_fraction=1.5), ValueError, "validation_fraction"),
        (dict(num_epochs=0), ValueError, "num_epochs must be >= 1"),
        (
            dict(parameters=np.ones((2, 1)), outputs=np.ones(2)),
            ValueError,
            "at least 2 training points",
        ),
    ],
)
def test_training_validation(key, kwargs, error, match):
    arguments = dict(parameters=np.linspace(0, 1, 8)[:, None], outputs=np.ones(8))
    arguments.update(kwargs)
    parameters, outputs = arguments.pop("parameters"), arguments.pop("outputs")
    with pytest.raises(error, match=match):
        train_emulator(key, parameters, outputs, **arguments)


def test_validate_emulator_shape_errors(key):
    x = design(key, [[0.0, 1.0]], 32)
    emulator, _ = train_emulator(key, x, x, hidden=(4,), num_epochs=1)
    with pytest.raises(ValueError, match="parameters must have 1 columns"):
        validate_emulator(emulator, np.ones((4, 2)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="outputs must have 1 columns"):
        validate_emulator(emulator, np.ones((4, 1)), np.ones((4, 2)))
