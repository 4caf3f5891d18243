"""Chemistry surrogates: interface, data coordinates, errors, roll-out, calibration, accuracy.

Default tests use synthetic trajectories (no stiff solve) and tiny networks; the measured
surrogates of the real network are in docs/physics.md (scripts/physics_train_surrogates.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig
from astrobayes.io.surrogates import (
    load_shipped_chemistry_check,
    load_shipped_chemistry_surrogate,
    load_surrogate_ensemble,
    save_surrogate_ensemble,
)
from astrobayes.physics.chemistry import initial_state
from astrobayes.physics.surrogates import (
    DeepONetSurrogate,
    LatentODESurrogate,
    MLPSurrogate,
    Standardiser,
    SurrogateConfig,
    SurrogateData,
    build_surrogate_ensemble,
    fit_variance_scale,
    interval_coverage,
    rollout,
    state_features,
    surrogate_data,
    surrogate_errors,
    surrogate_predict,
    train_surrogate_ensemble,
)


def _standardiser():
    key = jax.random.key(5)
    return Standardiser.from_data(
        jax.random.normal(key, (8, 12)), jnp.linspace(8, 15, 8), jnp.ones((8, 10))
    )


def _synthetic(key, num, log_times):
    """Smooth, IC-dependent trajectories in dex (a stand-in for the network's)."""
    initial = jax.random.uniform(key, (num, 12), minval=-1.0, maxval=1.0)
    phase = (log_times[None, :] - 11.5) / 2.0 + initial[:, 10:11]
    weights = jnp.linspace(0.5, 1.5, 10)
    targets = initial[:, None, :10] + weights * jnp.tanh(phase)[..., None] * (
        1.0 + 0.5 * initial[:, None, 11:12]
    )
    return SurrogateData(initial, log_times, targets)


@pytest.mark.parametrize(
    "kind",
    [
        "mlp",
        # ~10 s CPU each of compilation: in the slow suite (test budget)
        pytest.param("deeponet", marks=pytest.mark.slow),
        pytest.param("latent_ode", marks=pytest.mark.slow),
    ],
)
def test_every_kind_has_the_one_interface(kind):
    config = SurrogateConfig(kind=kind, num_members=2, width=8, depth=1, basis_size=4,
                             latent_size=3, substeps=1)  # fmt: skip
    members = build_surrogate_ensemble(jax.random.key(0), config, _standardiser(), start=-2.0)
    log_times = jnp.linspace(8.0, 15.0, 5)
    initial = jax.random.normal(jax.random.key(1), (3, 12))
    mean, std = surrogate_predict(members, initial, log_times)
    assert mean.shape == std.shape == (3, 5, 10)
    assert bool(jnp.all(jnp.isfinite(mean)))
    assert bool(jnp.all(std > 0))
    assert isinstance(members, MLPSurrogate | DeepONetSurrogate | LatentODESurrogate)
    if kind == "deeponet":  # its batched method shares the trunk; same numbers as one by one
        one = jax.tree_util.tree_map(lambda a: a[0] if isinstance(a, jax.Array) else a, members)
        batch = one.trajectories(initial, log_times)
        single = jax.vmap(one.trajectory, in_axes=(0, None))(initial, log_times)
        np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-5)


def test_state_features_and_data_coordinates():
    y = initial_state(0.01, 1e-4, 300.0, helium_ionised_fraction=0.001)
    features = state_features(y, 1.5, -2.0, floor_dex=-22.0)
    assert features.shape == (12,)
    np.testing.assert_allclose(features[1], -2.0, atol=1e-6)  # H+
    np.testing.assert_allclose(features[2], -22.0)  # H- starts at zero: the floor
    np.testing.assert_allclose(features[9], np.log10(300.0), rtol=1e-6)
    np.testing.assert_allclose(features[10:], [1.5, -2.0])
    conditions = jnp.array([[1.5, np.log10(300.0), -2.0, -4.0, -2.0]])
    states = jnp.broadcast_to(y, (1, 3, 10))
    data = surrogate_data(conditions, jnp.array([1e8, 1e9, 1e10]), states)
    np.testing.assert_allclose(data.initial[0, :9], features[:9], atol=1e-5)
    np.testing.assert_allclose(data.targets[0, 2], features[:10], atol=1e-5)
    np.testing.assert_allclose(data.log_times, [8.0, 9.0, 10.0], atol=1e-6)
    with pytest.raises(ValueError, match="states must have shape"):
        surrogate_data(conditions, jnp.array([1e8, 1e9]), states)
    with pytest.raises(ValueError, match="increasing"):
        surrogate_data(conditions, jnp.array([1e8, 1e10, 1e9]), states)


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        SurrogateConfig(kind="fno")
    with pytest.raises(ValueError, match="num_pairs"):
        SurrogateConfig(kind="deeponet", num_pairs=4)
    with pytest.raises(TypeError, match="training"):
        SurrogateConfig(training={"max_epochs": 3})


def test_errors_count_only_values_above_the_floor():
    truth = np.full((50, 4, 10), -3.0)
    truth[:, :, 2] = -25.0  # below the floor: never counted
    prediction = truth + np.log10(1.02)
    prediction[:, :, 2] = 0.0  # a huge error below the floor is ignored
    errors = surrogate_errors(prediction, truth, floor_dex=-20.0)
    np.testing.assert_allclose(errors.median_relative[[0, 1, 9]], 0.02, rtol=1e-9)
    np.testing.assert_allclose(errors.median_dex[0], np.log10(1.02), rtol=1e-9)
    assert errors.count[2] == 0
    assert np.isnan(errors.median_relative[2])
    assert errors.count[9] == 200  # temperature always counted
    np.testing.assert_allclose(errors.overall_median_relative, 0.02, rtol=1e-9)
    # negative control: with a floor below the values the error is counted
    assert surrogate_errors(prediction, truth, floor_dex=-30.0).p99_relative[2] > 1e20


def test_variance_scaling_restores_coverage_on_a_separate_split():
    """Statistical test: errors k·σ with k = 2.5; tolerance from the binomial MC error."""
    rng = np.random.default_rng(0)
    shape = (4000, 10)
    std = rng.uniform(0.01, 0.1, size=shape)
    mean = rng.normal(size=shape)
    truth = mean + 2.5 * std * rng.normal(size=shape)
    calibration, test = slice(0, 2000), slice(2000, 4000)
    scale = fit_variance_scale(mean[calibration], std[calibration], truth[calibration])
    sigma_scale = 2.5 * np.sqrt(0.32 * 0.68 / 2000) / (2 * 0.3)  # quantile error, roughly
    np.testing.assert_allclose(scale, 2.5, atol=5 * sigma_scale)
    per, overall = interval_coverage(mean[test], std[test], truth[test], scale=scale)
    # test coverage: binomial error of 20000 values plus the calibration quantile's error
    tolerance = 4 * np.sqrt(0.68 * 0.32 / 20000 + 0.68 * 0.32 / 2000)
    assert abs(overall - 0.68) < tolerance
    assert np.all(np.abs(per - 0.68) < 4 * np.sqrt(0.68 * 0.32 / 2000 * 2))
    # negative control: the raw (scale 1) interval covers P(|z| < 0.99/2.5) ~ 0.31
    _, raw = interval_coverage(mean[test], std[test], truth[test])
    assert abs(raw - 0.31) < 0.03
    assert raw < 0.68 - 5 * tolerance


def test_rollout_first_step_is_the_direct_prediction_and_then_feeds_back():
    config = SurrogateConfig(kind="mlp", num_members=2, width=8, depth=1)
    members = build_surrogate_ensemble(jax.random.key(2), config, _standardiser())
    initial = jax.random.normal(jax.random.key(1), (3, 12))
    log_times = jnp.linspace(8.0, 15.0, 5)  # the shapes of the interface test (one compile)
    direct, _ = surrogate_predict(members, initial, log_times)
    rolled, rolled_std = rollout(members, initial, log_times)
    np.testing.assert_allclose(rolled[:, 0], direct[:, 0], rtol=1e-5, atol=1e-5)
    # negative control: later steps start from predictions, not from t = 0
    assert float(jnp.max(jnp.abs(rolled[:, 2] - direct[:, 2]))) > 1e-3
    assert rolled_std.shape == (3, 5, 10)
    deeponet = build_surrogate_ensemble(
        jax.random.key(2), SurrogateConfig(kind="deeponet", num_members=2, width=4, depth=1),
        _standardiser(),
    )  # fmt: skip
    with pytest.raises(TypeError, match="MLP"):
        rollout(deeponet, initial, log_times)


@pytest.mark.slow  # ~10 s CPU; the io.surrogates docstring example round-trips by default
def test_save_and_load_round_trip(tmp_path):
    config = SurrogateConfig(kind="latent_ode", num_members=2, width=4, depth=1, latent_size=2)
    members = build_surrogate_ensemble(jax.random.key(4), config, _standardiser(), start=-1.5)
    path = save_surrogate_ensemble(tmp_path / "m.eqx", members, config)
    loaded, loaded_config = load_surrogate_ensemble(path)
    assert loaded_config.kind == "latent_ode"
    assert loaded.start == -1.5
    leaves = zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(members), strict=True)
    for new, old in leaves:
        np.testing.assert_array_equal(new, old)
    # the file's one dtype: float32, or float64 for members built in a float64 session
    # (float64 layers beside the float32 standardiser, widened together)
    saved = "float64" if jax.config.jax_enable_x64 else "float32"
    with jax.enable_x64(True):  # float32 weights load as float32 in float64 mode too
        loaded64, _ = load_surrogate_ensemble(path)
    leaves64 = [a for a in jax.tree_util.tree_leaves(loaded64) if isinstance(a, jax.Array)]
    assert {str(a.dtype) for a in leaves64} == {saved}
    (tmp_path / "bad.eqx").write_bytes(b'{"format": "other"}\n')
    with pytest.raises(ValueError, match="not a chemistry-surrogate"):
        load_surrogate_ensemble(tmp_path / "bad.eqx")


@pytest.mark.slow
def test_trained_deeponet_beats_the_mean_on_held_out_initial_conditions():
    """Accuracy on held-out ICs; negative control: the same training on shuffled targets."""
    log_times = jnp.linspace(8.0, 15.0, 8)
    train = _synthetic(jax.random.key(10), 192, log_times)
    test = _synthetic(jax.random.key(11), 64, log_times)
    baseline = float(jnp.median(jnp.abs(train.targets.mean(axis=0) - test.targets)))
    config = SurrogateConfig(
        kind="deeponet", num_members=2, width=32, depth=2, basis_size=8,
        training=TrainingConfig(learning_rate=3e-3, batch_size=32, max_epochs=100,
                                patience=100, schedule="cosine"),
    )  # fmt: skip
    fitted = train_surrogate_ensemble(jax.random.key(12), train, config)
    mean, _ = surrogate_predict(fitted, test.initial, test.log_times)
    error = float(jnp.median(jnp.abs(mean - test.targets)))
    assert error < 0.25 * baseline, (error, baseline)  # measured 0.13 (100 epochs)
    shuffled = train._replace(targets=jax.random.permutation(jax.random.key(13), train.targets))
    control = train_surrogate_ensemble(jax.random.key(12), shuffled, config)
    control_mean, _ = surrogate_predict(control, test.initial, test.log_times)
    control_error = float(jnp.median(jnp.abs(control_mean - test.targets)))
    assert control_error > 0.7 * baseline, (control_error, baseline)


def test_shipped_weights_reproduce_their_recorded_held_out_error():
    members, config, record = load_shipped_chemistry_surrogate()
    check = load_shipped_chemistry_check()
    recorded = record["check_subset"]
    assert config.kind == "mlp"
    assert check["trajectory_index"].min() >= record["training"]["command"]["num_train"]
    mean, std = surrogate_predict(members, check["initial"], check["log_times"])
    errors = surrogate_errors(mean, check["targets"], floor_dex=-20.0)
    # The same float32 program on the same inputs: only reduction-order rounding may differ.
    assert errors.overall_median_relative == pytest.approx(
        recorded["overall_median_relative"], rel=1e-3
    )
    assert errors.overall_p99_relative == pytest.approx(recorded["overall_p99_relative"], rel=1e-3)
    coverage = interval_coverage(mean, std, check["targets"], floor_dex=-20.0)[1]
    assert coverage == pytest.approx(recorded["coverage68_raw"], abs=2e-3)
    # And the level it shipped at: ~1% pooled median (0.996% on all 512 test trajectories).
    assert errors.overall_median_relative < 0.015
    assert record["held_out_test"]["overall_median_relative"] < 0.01
    # Negative control: the same architecture with other (untrained) weights is far off.
    standardiser = jax.tree.map(lambda a: a[0], members.standardiser)  # stacked per member
    fresh = build_surrogate_ensemble(jax.random.key(0), config, standardiser)
    fresh_mean, _ = surrogate_predict(fresh, check["initial"], check["log_times"])
    assert (
        surrogate_errors(fresh_mean, check["targets"], floor_dex=-20.0).overall_median_relative
        > 0.1
    )
