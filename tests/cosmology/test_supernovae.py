import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad, trapezoid
from scipy.stats import multivariate_normal

from astrobayes.cosmology import (
    Cosmology,
    SNData,
    make_sn_log_likelihood,
    sn_distance_moduli,
    sn_log_likelihood,
    sn_log_likelihood_from_moduli,
)
from astrobayes.io import read_des_sn5yr, read_pantheon_binned, read_pantheon_plus, read_union3


def _toy_data():
    rng = np.random.default_rng(7)
    z = np.array([0.05, 0.1, 0.3, 0.6, 1.0, 1.5])
    a = rng.normal(size=(6, 6)) * 0.03
    covariance = a @ a.T + np.diag(np.full(6, 0.02**2))
    moduli = np.asarray(
        sn_distance_moduli(Cosmology(omega_m=0.3), SNData(z, np.zeros(6), np.eye(6)))
    )
    magnitudes = moduli + 43.2 + rng.multivariate_normal(np.zeros(6), covariance)
    return SNData(z, magnitudes, covariance), covariance


def test_offset_marginalisation_matches_numerical_integral():
    with jax.enable_x64(True):
        data, covariance = _toy_data()
        cosmology = Cosmology(omega_m=0.35)
        moduli = np.asarray(sn_distance_moduli(cosmology, data))
        low, high = 43.0, 43.3  # narrow prior: the erf factor matters

        def integrand(offset):
            return multivariate_normal(moduli + offset, covariance).pdf(data.magnitudes)

        expected = np.log(quad(integrand, low, high, epsabs=0, epsrel=1e-12)[0] / (high - low))
        value = sn_log_likelihood(cosmology, data, offset_bounds=(low, high))
        np.testing.assert_allclose(value, expected, rtol=1e-9)
        # Improper flat prior: the integral over the whole line.
        wide = np.log(quad(integrand, 40.0, 46.0, epsabs=0, epsrel=1e-12, points=[43.2])[0])
        np.testing.assert_allclose(
            sn_log_likelihood(cosmology, data, offset_bounds=None), wide, rtol=1e-9
        )
        # Far tail of the prior (Phi difference of two tiny numbers) stays finite and right.
        tail = sn_log_likelihood(cosmology, data, offset_bounds=(44.0, 45.0))
        assert np.isfinite(tail)
        assert tail < value


def test_diagonal_covariance_takes_the_elementwise_path_with_the_same_numbers():
    """A diagonal covariance whitens elementwise; the value and gradient equal the dense
    path's (the same covariance with a 1e-30 off-diagonal pair) and scipy's integral over
    the offset. Control: errors 1% larger give another value."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(11)
        z = np.sort(rng.uniform(0.01, 2.0, 40))
        sigma = rng.uniform(0.05, 0.2, 40)
        fiducial = jax.jit(sn_distance_moduli)(Cosmology(omega_m=0.3), SNData(z, z, np.eye(40)))
        magnitudes = np.asarray(fiducial) + 43.2 + sigma * rng.normal(size=40)
        diagonal = SNData(z, magnitudes, np.diag(sigma**2))
        nudged = np.diag(sigma**2)
        nudged[0, 1] = nudged[1, 0] = 1e-30
        dense = SNData(z, magnitudes, nudged)
        assert diagonal.whitening_diagonal is not None
        np.testing.assert_array_equal(diagonal.whitening_diagonal, 1.0 / sigma)
        assert dense.whitening_diagonal is None
        assert _toy_data()[0].whitening_diagonal is None
        names = ("omega_m", "w0", "wa")
        theta = jnp.array([0.32, -0.9, -0.3])
        fast = jax.jit(
            jax.value_and_grad(make_sn_log_likelihood(diagonal, names, offset_bounds=(43, 44)))
        )
        slow = jax.jit(
            jax.value_and_grad(make_sn_log_likelihood(dense, names, offset_bounds=(43, 44)))
        )
        (value, grad), (value_dense, grad_dense) = fast(theta), slow(theta)
        np.testing.assert_allclose(value, value_dense, rtol=1e-12)
        np.testing.assert_allclose(grad, grad_dense, rtol=1e-10)
        cosmology = Cosmology(omega_m=0.32, w0=-0.9, wa=-0.3)
        model = np.asarray(jax.jit(sn_distance_moduli)(cosmology, diagonal))
        gaussian = multivariate_normal(np.zeros(40), np.diag(sigma**2))
        integral = quad(lambda m: gaussian.pdf(magnitudes - model - m), 43, 44, epsrel=1e-12)
        np.testing.assert_allclose(value, np.log(integral[0]), rtol=1e-9)
        wider = SNData(z, magnitudes, np.diag((1.01 * sigma) ** 2))
        other = jax.jit(make_sn_log_likelihood(wider, names, offset_bounds=(43, 44)))(theta)
        assert abs(float(other) - float(value)) > 1e-3


def test_float32_accuracy():
    with jax.enable_x64(False):  # float32 even in a float64 session (JAX_ENABLE_X64=1)
        data, _ = _toy_data()
        value = sn_log_likelihood(Cosmology(omega_m=0.3), data, offset_bounds=(42.0, 45.0))
    with jax.enable_x64(True):
        data64, _ = _toy_data()
        reference = float(
            sn_log_likelihood(Cosmology(omega_m=0.3), data64, offset_bounds=(42.0, 45.0))
        )
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(float(value), reference, atol=1e-4)


def test_factory_and_gradient():
    with jax.enable_x64(True):
        data, _ = _toy_data()
        fn = make_sn_log_likelihood(data, ("omega_m", "w0"), offset_bounds=(42.0, 45.0))
        theta = jnp.array([0.3, -0.9])
        jitted = jax.jit(fn)
        np.testing.assert_allclose(jitted(theta), fn(theta), rtol=1e-12)
        # jitted from here: an eager gradient compiles each operation on its own
        gradient = jax.jit(jax.grad(fn))(theta)
        step = 1e-6
        for k in range(2):
            e = jnp.zeros(2).at[k].set(step)
            np.testing.assert_allclose(
                gradient[k], (jitted(theta + e) - jitted(theta - e)) / (2 * step), rtol=1e-5
            )


@pytest.mark.parametrize(
    ("bounds", "error", "match"),
    [
        ((45.0, 42.0), ValueError, "low < high"),
        ((42.0, np.inf), ValueError, "finite"),
        (42.0, TypeError, "pair"),
    ],
)
def test_offset_bounds_validation(bounds, error, match):
    data, _ = _toy_data()
    with pytest.raises(error, match=match):
        sn_log_likelihood_from_moduli(np.zeros(6), data, offset_bounds=bounds)
    with pytest.raises(error, match=match):
        make_sn_log_likelihood(data, ("omega_m",), offset_bounds=bounds)


def test_sn_data_validation():
    with pytest.raises(ValueError, match="same length"):
        SNData([0.1, 0.2], [1.0], np.eye(2))
    with pytest.raises(ValueError, match="must be 2x2"):
        SNData([0.1, 0.2], [1.0, 2.0], np.eye(3))
    with pytest.raises(ValueError, match="redshifts must be > 0"):
        SNData([0.0, 0.2], [1.0, 2.0], np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        SNData([0.1, 0.2], [1.0, 2.0], -np.eye(2))


# ----------------------------------------------------------------------------- readers


def _write(path, text):
    path.write_text(text)
    return path


LCPARAM_HEADER = "#name zcmb zhel dz mb dmb x1 dx1\n"


def test_union3_reader_errors(tmp_path):
    lcparam = _write(
        tmp_path / "lc.txt", LCPARAM_HEADER + "a 0.1 0.1 0 38.0 0 0 0\nb 0.5 0.5 0 42.0 0 0 0\n"
    )
    good = _write(tmp_path / "cov.txt", "2\n0.01\n0\n0\n0.01\n")
    data = read_union3(lcparam, good)
    assert data.num_data == 2
    with pytest.raises(
        ValueError, match=r"bad_size.txt: covariance is 3x3 but the table has 2 rows"
    ):
        read_union3(lcparam, _write(tmp_path / "bad_size.txt", "3\n" + "0\n" * 9))
    with pytest.raises(ValueError, match=r"truncated.txt: the first line declares N = 2"):
        read_union3(lcparam, _write(tmp_path / "truncated.txt", "2\n0.01\n0\n0\n"))
    with pytest.raises(ValueError, match=r"positive definite"):
        read_union3(lcparam, _write(tmp_path / "npd.txt", "2\n0.01\n0.1\n0.1\n0.01\n"))
    with pytest.raises(ValueError, match=r"symmetric"):
        read_union3(lcparam, _write(tmp_path / "asym.txt", "2\n0.01\n0.001\n0\n0.01\n"))
    with pytest.raises(ValueError, match=r"nomb.txt: missing column\(s\) \['mb'\]"):
        read_union3(_write(tmp_path / "nomb.txt", "#name zcmb zhel\na 0.1 0.1\n"), good)
    with pytest.raises(ValueError, match=r"text.txt: column 'mb' is not numeric"):
        read_union3(
            _write(
                tmp_path / "text.txt",
                LCPARAM_HEADER + "a 0.1 0.1 0 xx 0 0 0\nb 0.5 0.5 0 42 0 0 0\n",
            ),
            good,
        )
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_union3(tmp_path / "missing.txt", good)


def test_pantheon_binned_total_covariance(tmp_path):
    lcparam = _write(
        tmp_path / "lc.txt", LCPARAM_HEADER + "a 0.1 0.1 0 14.0 0.1 0 0\nb 0.5 0.5 0 18.0 0.2 0 0\n"
    )
    sys = _write(tmp_path / "sys.txt", "2\n0.001\n0.0005\n0.0005\n0.002\n")
    with jax.enable_x64(True):
        data = read_pantheon_binned(lcparam, sys, offset=19.3)
        np.testing.assert_allclose(data.magnitudes, [33.3, 37.3])
        total = np.array([[0.011, 0.0005], [0.0005, 0.042]])
        whitening = data.whitening
        np.testing.assert_allclose(np.linalg.inv(whitening.T @ whitening), total, rtol=1e-12)


def test_diagonal_readers_warn(tmp_path):
    csv = _write(
        tmp_path / "hd.csv",
        "CID,IDSURVEY,zCMB,zHD,zHEL,MU,MUERR_FINAL\n1,10,0.2,0.2,0.2,40.0,0.1\n2,10,0.5,0.5,0.5,42.2,0.2\n",
    )
    with pytest.warns(UserWarning, match="advise against"):
        data = read_des_sn5yr(csv)
    assert data.num_data == 2
    bad = _write(tmp_path / "bad.csv", "CID,zHD,MUERR\n1,0.2,0.1\n")
    with pytest.raises(ValueError, match=r"bad.csv: missing column\(s\) \['MU'\]"):
        read_des_sn5yr(bad)
    table = _write(
        tmp_path / "plus.dat",
        "CID zHD zHEL m_b_corr m_b_corr_err_DIAG\na 0.005 0.005 13.0 0.2\nb 0.1 0.1 19.0 0.1\nc 0.5 0.5 23.0 0.1\n",
    )
    with pytest.warns(UserWarning, match="plus.dat: no covariance"):
        data = read_pantheon_plus(table)
    assert data.num_data == 2  # zHD > 0.01 cut
    with pytest.raises(ValueError, match="no supernova has zHD > min_redshift"):
        read_pantheon_plus(table, min_redshift=1.0)


# ----------------------------------------------------------------------------- real data


def _log_evidence_lcdm(data, num=401):
    fn = jax.jit(jax.vmap(make_sn_log_likelihood(data, ("omega_m",), offset_bounds=(42.0, 45.0))))
    omega_m = np.linspace(0.0, 1.0, num)
    values = np.asarray(fn(jnp.asarray(omega_m[:, None])), dtype=np.float64)
    peak = values.max()
    return np.log(trapezoid(np.exp(values - peak), omega_m)) + peak  # prior density 1


def _log_evidence_wcdm(data, num_omega_m=101, num_w=151):
    fn = jax.jit(
        jax.vmap(make_sn_log_likelihood(data, ("omega_m", "w0"), offset_bounds=(42.0, 45.0)))
    )
    omega_m, w = np.linspace(0.0, 1.0, num_omega_m), np.linspace(-3.0, 0.0, num_w)
    grid = np.stack(np.meshgrid(omega_m, w, indexing="ij"), -1).reshape(-1, 2)
    values = np.asarray(fn(jnp.asarray(grid)), dtype=np.float64).reshape(num_omega_m, num_w)
    peak = values.max()
    return np.log(trapezoid(trapezoid(np.exp(values - peak), w, axis=1), omega_m) / 3.0) + peak


def _union3(shared_data):
    folder = shared_data / "cosmology" / "union3"
    return read_union3(folder / "lcparam_full.txt", folder / "mag_covmat.txt")


def _pantheon(shared_data):
    folder = shared_data / "cosmology" / "pantheon_binned"
    return read_pantheon_binned(folder / "lcparam_DS17f.txt", folder / "sys_DS17f.txt", offset=19.3)


@pytest.mark.parametrize(
    ("reader", "expected"),
    [(_union3, 37.075), (_pantheon, 74.204)],
    ids=["union3", "pantheon_binned"],
)
def test_reference_evidence_lcdm(shared_data, reader, expected):
    # ../shared/data/README.md: ln Z by direct quadrature, flat LCDM, Om ~ U(0,1), M ~ U(42,45).
    with jax.enable_x64(True):
        log_evidence = _log_evidence_lcdm(reader(shared_data))
    assert abs(log_evidence - expected) < 0.01, log_evidence


@pytest.mark.parametrize(
    ("reader", "expected"),
    [(_union3, 36.198), (_pantheon, 72.520)],
    ids=["union3", "pantheon_binned"],
)
def test_reference_evidence_wcdm(shared_data, reader, expected):
    with jax.enable_x64(True):
        log_evidence = _log_evidence_wcdm(reader(shared_data))
    assert abs(log_evidence - expected) < 0.01, log_evidence


def test_reference_evidence_float32(shared_data):
    # Without x64 the evidence is still right to ~1e-3.
    assert abs(_log_evidence_lcdm(_pantheon(shared_data)) - 74.204) < 0.01


def test_real_readers(shared_data):
    folder = shared_data / "cosmology"
    union3 = _union3(shared_data)
    assert union3.num_data == 22
    assert _pantheon(shared_data).num_data == 40
    with pytest.warns(UserWarning, match="advise against"):
        plus = read_pantheon_plus(folder / "pantheonplus_nocov" / "Pantheon+SH0ES.dat")
    assert 1500 < plus.num_data < 1701
    with pytest.warns(UserWarning, match="advise against"):
        des = read_des_sn5yr(folder / "desy5_nocov" / "DES-SN5YR_HD.csv")
    assert des.num_data > 1000


@pytest.mark.slow
def test_real_data_best_fits(shared_data):
    folder = shared_data / "cosmology"
    union3 = _union3(shared_data)
    with pytest.warns(UserWarning, match="advise against"):
        plus = read_pantheon_plus(folder / "pantheonplus_nocov" / "Pantheon+SH0ES.dat")
    with pytest.warns(UserWarning, match="advise against"):
        des = read_des_sn5yr(folder / "desy5_nocov" / "DES-SN5YR_HD.csv")
    # Sensible best fits: all prefer Om ~ 0.3 - 0.36 in flat LCDM.
    omega_m = np.linspace(0.1, 0.6, 51)
    for data in (union3, plus, des):
        fn = jax.jit(jax.vmap(make_sn_log_likelihood(data, ("omega_m",), offset_bounds=None)))
        best = omega_m[np.argmax(fn(jnp.asarray(omega_m[:, None])))]
        assert 0.25 < best < 0.42, (data.name, best)
