import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.cosmology import (
    BAOData,
    Cosmology,
    bao_log_likelihood,
    bao_log_likelihood_from_predictions,
    bao_predictions,
    desi_dr1_bao,
    desi_dr2_bao,
    dh_over_rd,
    dm_over_rd,
    dv_over_rd,
    make_bao_log_likelihood,
)


def _read_release(folder, prefix):
    table = [
        line.split()
        for line in (folder / f"{prefix}_mean.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    covariance = np.loadtxt(folder / f"{prefix}_cov.txt")
    return table, covariance


@pytest.mark.parametrize(
    ("loader", "folder", "prefix"),
    [
        (desi_dr2_bao, "desi_bao_dr2", "desi_gaussian_bao_ALL_GCcomb"),
        (desi_dr1_bao, "desi_bao_dr1", "desi_2024_gaussian_bao_ALL_GCcomb"),
    ],
)
def test_shipped_tables_equal_release_files(shared_data, loader, folder, prefix):
    table, covariance = _read_release(shared_data / "cosmology" / folder, prefix)
    data = loader()
    assert data.num_data == len(table)
    np.testing.assert_array_equal(data.redshifts, [float(row[0]) for row in table])
    np.testing.assert_array_equal(data.values, [float(row[1]) for row in table])
    assert data.quantities == tuple(row[2] for row in table)
    np.testing.assert_allclose(data.covariance, covariance, rtol=1e-12, atol=1e-18)
    # Exactly: rebuild from the typed-in entries.
    from astrobayes.cosmology import data as data_module

    entries = (
        data_module._DESI_DR2_COVARIANCE
        if loader is desi_dr2_bao
        else data_module._DESI_DR1_COVARIANCE
    )
    rebuilt = np.zeros_like(covariance)
    for (i, j), value in entries.items():
        rebuilt[i, j] = rebuilt[j, i] = value
    np.testing.assert_array_equal(rebuilt, covariance)


def test_desi_dr2_structure():
    data = desi_dr2_bao()
    assert data.num_data == 13
    assert data.reference == "arXiv:2503.14738"
    assert sorted(set(np.round(data.redshifts, 3))) == [
        0.295,
        0.51,
        0.706,
        0.934,
        1.321,
        1.484,
        2.33,
    ]
    assert data.quantities.count("DV_over_rs") == 1


def test_likelihood_is_normalised_gaussian():
    with jax.enable_x64(True):
        data = desi_dr2_bao()
        cosmology = Cosmology(omega_m=0.3)
        prediction = bao_predictions(cosmology, data, h_rd=100.0)
        residual = np.asarray(data.values) - np.asarray(prediction)
        covariance = data.covariance
        sign, log_det = np.linalg.slogdet(2 * np.pi * covariance)
        expected = -0.5 * residual @ np.linalg.solve(covariance, residual) - 0.5 * log_det
        np.testing.assert_allclose(
            bao_log_likelihood(cosmology, data, h_rd=100.0), expected, rtol=1e-12
        )
        np.testing.assert_allclose(
            bao_log_likelihood_from_predictions(prediction, data), expected, rtol=1e-12
        )


def test_predictions_pick_the_right_quantity():
    with jax.enable_x64(True):
        data = desi_dr2_bao()
        cosmology = Cosmology(omega_m=0.31, w0=-0.9, wa=-0.3)
        prediction = np.asarray(bao_predictions(cosmology, data, rd=147.0))
        functions = {"DM_over_rs": dm_over_rd, "DH_over_rs": dh_over_rd, "DV_over_rs": dv_over_rd}
        for i, (z, quantity) in enumerate(zip(data.redshifts, data.quantities, strict=True)):
            np.testing.assert_allclose(
                prediction[i], functions[quantity](cosmology, z, rd=147.0), rtol=1e-12
            )


def test_desi_dr2_best_fit_lcdm():
    # DESI DR2 BAO alone, flat LCDM: Om = 0.2975 +- 0.0086, h r_d = 101.54 +- 0.73 Mpc
    # (arXiv:2503.14738, Table V). The maximum of our likelihood must sit there.
    with jax.enable_x64(True):
        fn = make_bao_log_likelihood(desi_dr2_bao(), ("omega_m", "h_rd"))
        grid_om = np.linspace(0.27, 0.33, 61)
        grid_hrd = np.linspace(99.0, 104.0, 51)
        values = jax.vmap(jax.vmap(lambda om, hrd: fn(jnp.array([om, hrd])), (None, 0)), (0, None))(
            grid_om, grid_hrd
        )
        i, j = np.unravel_index(np.argmax(values), values.shape)
        assert abs(grid_om[i] - 0.2975) < 0.003  # grid step 0.001
        assert abs(grid_hrd[j] - 101.54) < 0.3  # grid step 0.1
        chi2_min = -2 * (float(values[i, j]) - desi_dr2_bao().likelihood.log_normalisation)
        assert 8.0 < chi2_min < 13.0  # DESI report chi2 = 10.2 for 11 dof


def test_factory_jit_vmap_grad():
    data = desi_dr2_bao()
    fn = make_bao_log_likelihood(data, ("omega_m", "h_rd", "w0", "wa"))
    theta = jnp.array([0.31, 100.0, -0.8, -0.6])
    # float32: ln L is accurate to ~1e-5 absolute (chi^2 summed in single precision).
    np.testing.assert_allclose(jax.jit(fn)(theta), fn(theta), atol=1e-4)
    thetas = jnp.stack([theta, theta * 1.01])
    np.testing.assert_allclose(jax.vmap(fn)(thetas), [fn(t) for t in thetas], atol=1e-4)
    with jax.enable_x64(True):
        fn64 = make_bao_log_likelihood(data, ("omega_m", "h_rd", "w0", "wa"))
        theta = jnp.array([0.31, 100.0, -0.8, -0.6])
        gradient = jax.jit(jax.grad(fn64))(theta)
        value = jax.jit(fn64)  # one program for the 8 evaluations (eager: ~0.5 s each)
        step = 1e-6
        for k in range(4):
            e = jnp.zeros(4).at[k].set(step * max(1.0, abs(float(theta[k]))))
            finite = (value(theta + e) - value(theta - e)) / (2 * e[k])
            np.testing.assert_allclose(gradient[k], finite, rtol=1e-5)


def test_factory_fixed_and_rd():
    data = desi_dr2_bao()
    a = make_bao_log_likelihood(data, ("omega_m",), fixed={"h_rd": 0.7 * 147.0})(jnp.array([0.3]))
    b = make_bao_log_likelihood(data, ("omega_m", "rd"), fixed={"h": 0.7})(jnp.array([0.3, 147.0]))
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(parameter_names=("omega_m", "bogus", "h_rd")), ValueError, "unknown parameter"),
        (dict(parameter_names=("omega_m",)), ValueError, "exactly one of 'h_rd'"),
        (dict(parameter_names=("omega_m", "h_rd", "rd")), ValueError, "exactly one of 'h_rd'"),
        (dict(parameter_names=("omega_m", "rd")), ValueError, "'rd' needs 'h'"),
        (dict(parameter_names=("omega_m", "omega_m", "h_rd")), ValueError, "duplicates"),
        (
            dict(parameter_names=("omega_m", "h_rd"), fixed={"omega_m": 0.3}),
            ValueError,
            "both sampled and fixed",
        ),
        (dict(parameter_names="omega_m"), TypeError, "sequence of names"),
    ],
)
def test_factory_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_bao_log_likelihood(desi_dr2_bao(), **kwargs)


def test_bao_data_validation():
    cov = np.eye(2)
    with pytest.raises(ValueError, match="same length"):
        BAOData([0.5, 1.0], ["DM_over_rs"], [1.0, 2.0], cov)
    with pytest.raises(ValueError, match="quantities must be among"):
        BAOData([0.5, 1.0], ["DM_over_rs", "DA"], [1.0, 2.0], cov)
    with pytest.raises(ValueError, match="redshifts must be > 0"):
        BAOData([0.0, 1.0], ["DM_over_rs", "DH_over_rs"], [1.0, 2.0], cov)
    with pytest.raises(ValueError, match="must be 2x2"):
        BAOData([0.5, 1.0], ["DM_over_rs", "DH_over_rs"], [1.0, 2.0], np.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        BAOData([0.5, 1.0], ["DM_over_rs", "DH_over_rs"], [1.0, 2.0], [[1.0, 2.0], [2.0, 1.0]])


def test_data_is_read_only_and_fresh():
    first, second = desi_dr2_bao(), desi_dr2_bao()
    assert first is not second
    with pytest.raises(ValueError, match="read-only"):
        first.values[0] = 0.0
