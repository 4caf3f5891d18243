"""Growth of structure by a diffrax ODE: independent checks, gradients, data, models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from astrobayes.cosmology import Cosmology
from astrobayes.physics import (
    FSigma8Data,
    fsigma8,
    fsigma8_log_likelihood,
    gold2017_fsigma8,
    growth_models,
    solve_growth,
)

REDSHIFTS = np.array([0.0, 0.02, 0.37, 0.86, 1.4, 3.0])


def _e_numpy(a, omega_m, omega_k=0.0, w0=-1.0, wa=0.0):
    """E(a) written out again in NumPy (independent of astrobayes.cosmology)."""
    omega_de = 1.0 - omega_m - omega_k
    de = a ** (-3.0 * (1.0 + w0 + wa)) * np.exp(-3.0 * wa * (1.0 - a))
    return np.sqrt(omega_m / a**3 + omega_k / a**2 + omega_de * de)


def _heath_fsigma8(omega_m, omega_k, sigma8, z):
    """ΛCDM integral solution D ∝ E ∫ da / (a E)^3 (Heath 1977), f from its derivative."""

    def integral(a):
        return quad(
            lambda x: 1.0 / (x * _e_numpy(x, omega_m, omega_k)) ** 3, 0, a, epsabs=0, epsrel=1e-13
        )[0]

    def growth(a):
        return _e_numpy(a, omega_m, omega_k) * integral(a)

    out = []
    for a in 1.0 / (1.0 + z):
        e = _e_numpy(a, omega_m, omega_k)
        dlne = (-1.5 * omega_m / a**3 - omega_k / a**2) / e**2
        rate = dlne + 1.0 / (a**2 * e**3 * integral(a))
        out.append(sigma8 * rate * growth(a) / growth(1.0))
    return np.array(out)


def _scipy_fsigma8(omega_m, w0, wa, sigma8, z):
    """The growth ODE in ln a integrated by scipy's DOP853 with a NumPy E(a)."""

    def rhs(x, y):
        a = np.exp(x)
        e = _e_numpy(a, omega_m, 0.0, w0, wa)
        h = 1e-6
        dlne = (
            np.log(_e_numpy(np.exp(x + h), omega_m, 0.0, w0, wa))
            - np.log(_e_numpy(np.exp(x - h), omega_m, 0.0, w0, wa))
        ) / (2 * h)
        return [y[1], -(2.0 + dlne) * y[1] + 1.5 * omega_m / (a**3 * e**2) * y[0]]

    a_eval = np.sort(np.unique(np.concatenate([1.0 / (1.0 + z), [1.0]])))
    sol = solve_ivp(
        rhs,
        (np.log(1e-3), 0.0),
        [1e-3, 1e-3],
        method="DOP853",
        t_eval=np.log(a_eval),
        rtol=1e-12,
        atol=1e-15,
    )
    d_today = sol.y[0, -1]
    lookup = dict(zip(np.round(a_eval, 14), sol.y[1] / d_today, strict=True))
    return sigma8 * np.array([lookup[round(a, 14)] for a in 1.0 / (1.0 + z)])


@pytest.mark.parametrize(("omega_m", "omega_k"), [(0.3, 0.0), (0.25, 0.1)])
def test_lcdm_matches_integral_solution(omega_m, omega_k):
    with jax.enable_x64(True):
        ours = np.asarray(fsigma8(Cosmology(omega_m=omega_m, omega_k=omega_k), 0.8, REDSHIFTS))
    truth = _heath_fsigma8(omega_m, omega_k, 0.8, REDSHIFTS)
    np.testing.assert_allclose(ours, truth, rtol=1e-6)


@pytest.mark.parametrize(("w0", "wa"), [(-0.9, 0.0), (-0.75, -0.9)])
def test_w0wa_matches_scipy(w0, wa):
    with jax.enable_x64(True):
        ours = np.asarray(fsigma8(Cosmology(omega_m=0.31, w0=w0, wa=wa), 0.8, REDSHIFTS))
    truth = _scipy_fsigma8(0.31, w0, wa, 0.8, REDSHIFTS)
    np.testing.assert_allclose(ours, truth, rtol=1e-6)
    # Negative control: the ΛCDM curve is far from this one at the same tolerance.
    lcdm = _heath_fsigma8(0.31, 0.0, 0.8, REDSHIFTS)
    assert np.max(np.abs(ours / lcdm - 1)) > 1e-3


def test_einstein_de_sitter_is_exact_and_float32_works():
    out = solve_growth(Cosmology(omega_m=1.0), jnp.array([[0.0, 1.0], [3.0, 0.5]]))
    assert out.growth_factor.shape == (2, 2)
    np.testing.assert_allclose(out.growth_factor, [[1.0, 0.5], [0.25, 1 / 1.5]], rtol=1e-5)
    np.testing.assert_allclose(out.growth_rate, 1.0, rtol=1e-5)
    assert bool(out.is_successful)


def test_max_steps_failure_is_reported_not_silent():
    out = solve_growth(Cosmology(omega_m=0.3), [0.5], max_steps=2)
    assert not bool(out.is_successful)
    assert np.isnan(np.asarray(out.growth_factor)).all()


@pytest.mark.slow  # reverse-mode compile of the solver: ~25 s
def test_gradient_through_solver_matches_finite_differences():
    with jax.enable_x64(True):
        log_likelihood_fn = fsigma8_log_likelihood(gold2017_fsigma8())

        def fn(theta):
            return log_likelihood_fn(
                Cosmology(omega_m=theta[0], w0=theta[1], wa=theta[2]), theta[3]
            )

        theta = jnp.array([0.3, -0.9, -0.4, 0.8])
        grad = np.asarray(jax.grad(fn)(theta))
        step = 1e-5
        numeric = [
            (fn(theta.at[i].add(step)) - fn(theta.at[i].add(-step))) / (2 * step) for i in range(4)
        ]
    np.testing.assert_allclose(grad, np.asarray(numeric), rtol=1e-5, atol=1e-6)


def test_gold2017_table_and_covariance():
    data = gold2017_fsigma8()
    assert data.redshift.shape == data.fsigma8.shape == (18,)
    np.testing.assert_allclose(data.covariance, data.covariance.T)
    assert np.all(np.linalg.eigvalsh(data.covariance) > 0)
    assert data.covariance[12, 13] == pytest.approx(2.570e-3)
    assert data.covariance[0, 1] == 0.0
    assert "1703.10538" in data.reference


# slow (~9 s: three likelihoods through eager x64 growth solves); the fast suite checks the
# solves against integrals and scipy and the likelihood through NumPyro
@pytest.mark.slow
def test_alcock_paczynski_correction_is_identity_at_the_fiducial():
    data = gold2017_fsigma8()
    uniform = data._replace(omega_m_fiducial=np.full(18, 0.3))
    with jax.enable_x64(True):
        cosmology = Cosmology(omega_m=0.3)
        with_ap = fsigma8_log_likelihood(uniform)(cosmology, 0.8)
        without = fsigma8_log_likelihood(uniform, alcock_paczynski=False)(cosmology, 0.8)
        other = fsigma8_log_likelihood(data)(cosmology, 0.8)
    np.testing.assert_allclose(with_ap, without, rtol=1e-12)
    assert abs(float(other - without)) > 1e-3


def test_likelihood_validation_errors():
    data = gold2017_fsigma8()
    with pytest.raises(TypeError, match="FSigma8Data"):
        fsigma8_log_likelihood({"z": 1})
    with pytest.raises(ValueError, match=r"data.fsigma8 must have the shape"):
        fsigma8_log_likelihood(data._replace(fsigma8=data.fsigma8[:3]))
    with pytest.raises(ValueError, match="redshift must be >= 0"):
        fsigma8_log_likelihood(data._replace(redshift=-data.redshift))
    with pytest.raises(ValueError, match="covariance"):
        fsigma8_log_likelihood(data._replace(covariance=-data.covariance))
    assert isinstance(data, FSigma8Data)


def test_growth_models_evaluate_through_numpyro():
    from numpyro.infer.util import log_density

    lcdm, w0wa = growth_models()

    def density(model):  # jitted, as a sampler runs it (eagerly: 2.4x the time here)
        return jax.jit(lambda params: log_density(model.numpyro_model, (), {}, params)[0])

    with jax.enable_x64(True):
        value = density(lcdm)({"omega_m": 0.3, "sigma8": 0.75})
        params = {"omega_m": 0.3, "sigma8": 0.75, "w0": -1.0, "wa": 0.0}
        value_w = density(w0wa)(params)
    assert np.isfinite(float(value))
    # Same likelihood at the ΛCDM point; the prior differs by log(1 * 1.5).
    np.testing.assert_allclose(float(value - value_w), np.log(1.0 * 1.5), rtol=1e-4)


@pytest.mark.slow
def test_nuts_on_growth_model_converges(key):
    from astrobayes.models import unconstrained_density
    from astrobayes.sampling import NUTSConfig, run_nuts

    with jax.enable_x64(True):
        lcdm = growth_models()[0]
        init_key, run_key = jax.random.split(key)
        density = unconstrained_density(init_key, lcdm, 4)
        result = run_nuts(
            run_key,
            density.logdensity_fn,
            density.initial_positions,
            config=NUTSConfig(num_chains=4, num_warmup=300, num_samples=500),
            names=density.names,
        )
    assert float(np.max(result.rhat)) <= 1.01
