"""GP emulator (tinygp): validation, leave-one-out calibration, held-out coverage."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest
from scipy.integrate import quad

from astrobayes.emulators import design
from astrobayes.emulators.gp import GPConfig, leave_one_out, train_gp_emulator
from astrobayes.validation.intervals import interval_coverage

Z68 = 0.994457883  # two-sided 68.27% normal quantile

# The BAO emulator's problem (examples/emulate_distances.py): flat w0waCDM over its box
BAO_BOUNDS = np.array([[0.01, 0.99], [50.0, 150.0], [-3.0, 1.0], [-3.0, 2.0]])


def _bao_log_distances(theta):
    """ln D_M/r_d at z = 0.5, 1, 2.5 and ln D_H/r_d at z = 0.5, 2.5 (scipy quad, as there)."""
    omega_m, h_rd, w0, wa = (float(v) for v in theta)

    def efunc(z):
        de = (1 + z) ** (3 * (1 + w0 + wa)) * np.exp(-3 * wa * z / (1 + z))
        return np.sqrt(omega_m * (1 + z) ** 3 + (1 - omega_m) * de)

    unit = 2997.92458 / h_rd
    dm = [unit * quad(lambda x: 1 / efunc(x), 0, z, epsrel=1e-10)[0] for z in (0.5, 1, 2.5)]
    return np.log(dm + [unit / efunc(z) for z in (0.5, 2.5)])


def _tiny(config):
    x = np.linspace(0.0, 1.0, 10)[:, None]
    return train_gp_emulator(jax.random.key(0), x, np.sin(4 * x[:, 0]), config=config)[0]


@pytest.fixture(scope="module")
def tiny_gp():
    """One small default GP (10 points of sin(4x)) shared by the fast tests."""
    return _tiny(GPConfig(max_epochs=40))


def test_rejects_bad_input(key):
    with pytest.raises(ValueError, match="same length"):
        train_gp_emulator(key, np.zeros((4, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="at least 3 design points"):
        train_gp_emulator(key, np.zeros((2, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="must be finite"):
        train_gp_emulator(key, np.full((4, 1), np.nan), np.zeros(4))
    with pytest.raises(TypeError, match="config must be a GPConfig"):
        train_gp_emulator(key, np.zeros((4, 1)), np.zeros(4), config={"kernel": "matern52"})
    with pytest.raises(ValueError, match="noise_floor must be positive"):
        GPConfig(noise_floor=0.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        GPConfig(kernel="rbf")
    with pytest.raises(TypeError, match="float64 must be a bool"):
        GPConfig(float64=1)
    with pytest.raises(TypeError, match="emulator must be a GPEmulator"):
        leave_one_out("gp")


def test_closed_form_leave_one_out_equals_refitting_without_each_point(tiny_gp):
    gp = tiny_gp
    residual, std = leave_one_out(gp)
    x = np.linspace(0.0, 1.0, 10)[:, None]
    y = np.sin(4 * x[:, 0])
    noise = float(np.exp(2 * np.asarray(gp.hyper.log_noise))) + gp.hyper.noise_floor
    for i in (0, 4, 9):  # an end, the middle, the other end
        keep = np.arange(10) != i
        x_train, y_train = np.asarray(gp.x_train)[keep], np.asarray(gp.y_train)[keep]
        without = eqx.tree_at(lambda g: (g.x_train, g.y_train), gp, (x_train, y_train))
        mean, latent = without.predict(x[i : i + 1])
        np.testing.assert_allclose(residual[i], y[i] - float(mean[0]), rtol=1e-6, atol=1e-12)
        expected = np.sqrt(float(latent[0]) ** 2 + noise * float(gp.y_scale) ** 2)
        np.testing.assert_allclose(std[i], expected, rtol=1e-4)  # cancellation in variances


def test_std_scale_is_the_rms_standardised_loo_residual_applied_on_request(tiny_gp):
    gp = tiny_gp
    residual, std = leave_one_out(gp)
    np.testing.assert_allclose(float(gp.std_scale), np.sqrt(np.mean((residual / std) ** 2)))
    points = np.array([[0.33], [0.71]])
    _, raw = gp.predict(points)
    _, scaled = gp.predict(points, loo_scaled=True)
    np.testing.assert_allclose(np.asarray(scaled), float(gp.std_scale) * np.asarray(raw))


def test_default_computes_in_float64_whatever_the_global_flag(tiny_gp):
    gp = tiny_gp
    with jax.enable_x64(False):
        mean, std = gp.predict(np.array([[0.5]]))
        assert mean.dtype == np.float64
        assert std.dtype == np.float64
        assert gp.x_train.dtype == np.float64
        assert gp.hyper.noise_floor == 1e-8
        single = _tiny(GPConfig(max_epochs=40, float64=False))
        mean32, _ = single.predict(np.array([[0.5]]))
        assert mean32.dtype == np.float32
        assert single.hyper.noise_floor == 1e-4
        # jit-able inside a float32 program: the float64 block is traced like any other
        jitted = eqx.filter_jit(lambda g, p: g.predict(p)[0])(gp, np.array([[0.5]]))
        np.testing.assert_allclose(float(jitted[0]), float(mean[0]), rtol=1e-6)


@pytest.mark.slow
def test_68_percent_intervals_cover_60_to_76_percent_of_the_bao_emulator_held_out_points(key):
    """The BAO emulator's box and held-out design: 64 Sobol' points, 256 LHS held out.

    Four designs (seeds; seed 0 is examples/emulate_distances.py's) x five outputs; the
    error of the coverage is cluster-robust over the designs (points of one design are
    correlated). Negative controls: the same GPs with half the standard deviation, and the
    first version's squared-exponential kernel, fall below the band.
    """
    ratios = {"default": [], "squared_exponential": []}
    for seed in range(4):
        design_key, test_key, _ = jax.random.split(jax.random.key(2025 + seed), 3)
        x = design(design_key, BAO_BOUNDS, 64, method="sobol")
        held_out = design(test_key, BAO_BOUNDS, 256, method="lhs")
        y = np.array([_bao_log_distances(t) for t in x])
        truth = np.array([_bao_log_distances(t) for t in held_out])
        for name, config in (
            ("default", GPConfig()),
            ("squared_exponential", GPConfig(kernel="squared_exponential")),
        ):
            per_output = []
            for j in range(y.shape[1]):
                gp, info = train_gp_emulator(key, x, y[:, j], config=config)
                assert not info.status.is_failure
                mean, std = gp.predict(held_out)
                per_output.append(np.abs(truth[:, j] - np.asarray(mean)) / np.asarray(std))
            ratios[name].append(per_output)
    ratio = np.array(ratios["default"])  # (designs, outputs, held-out)
    coverage = interval_coverage(ratio, 0.0, Z68, axis=0)
    # tolerance: two cluster-robust errors, at least two binomial errors of the 1280 points
    tolerance = 2 * max(coverage.error, np.sqrt(0.68 * 0.32 / ratio.size))
    assert 0.60 - tolerance <= coverage.fraction <= 0.76 + tolerance, coverage
    for control in (
        interval_coverage(ratio, 0.0, 0.5 * Z68, axis=0),
        interval_coverage(np.array(ratios["squared_exponential"]), 0.0, Z68, axis=0),
    ):
        assert control.fraction < 0.60 - 2 * max(control.error, np.sqrt(0.24 / ratio.size)), control
