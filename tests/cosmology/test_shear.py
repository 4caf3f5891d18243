import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from astrobayes.cosmology.shear import (
    LCDM_NAMES,
    W0WACDM_NAMES,
    ShearData,
    make_shear_log_likelihood,
    shear_models,
    shear_problems,
    shear_spectra,
)
from astrobayes.cosmology.shear_jax_cosmo import gaussian_covariance
from astrobayes.cosmology.shear_survey import (
    DES_Y1_LIKE,
    EMULATOR_NAMES,
    FIDUCIAL,
    ShearSurvey,
    emulator_bounds,
)
from astrobayes.emulators import Emulator
from astrobayes.io import des_y1_like_data, des_y1_like_emulator
from astrobayes.models.model import unconstrained_density


def _shipped():
    """The shipped emulator and data, read afresh (never shared between tests)."""
    return des_y1_like_emulator(), des_y1_like_data()


def _fiducial(names=W0WACDM_NAMES):
    return jnp.asarray([FIDUCIAL[n] for n in names])


def test_shipped_data_and_emulator_shapes():
    data = des_y1_like_data()
    assert data.ell.shape == (12,)
    assert data.data_vector.shape == (DES_Y1_LIKE.num_data,) == (120,)
    assert data.covariance.shape == (120, 120)
    np.testing.assert_allclose(data.ell, DES_Y1_LIKE.ell)
    assert np.all(np.linalg.eigvalsh(data.covariance) > 0)
    emulator = des_y1_like_emulator()
    assert emulator.num_parameters == len(EMULATOR_NAMES) == 11
    assert emulator.num_outputs == 3 * 120
    outputs = eqx.filter_jit(lambda e, x: e(x))(emulator, jnp.asarray(emulator_bounds().mean(1)))
    assert outputs.shape == (360,)
    assert bool(jnp.all(outputs > 0))


def test_shear_spectra_calibration_and_ia_are_exact(key):
    components = jax.random.uniform(key, (3, 10, 12), minval=0.5, maxval=2.0)
    components = components.at[1].multiply(-1.0)
    m = jnp.asarray([0.01, -0.02, 0.03, -0.04])
    a_ia = 0.7
    base = components[0] + a_ia * components[1] + a_ia**2 * components[2]
    observed = shear_spectra(components, a_ia, m)
    for k, (i, j) in enumerate(DES_Y1_LIKE.pairs):
        np.testing.assert_allclose(observed[k], (1 + m[i]) * (1 + m[j]) * base[k], rtol=1e-6)
    np.testing.assert_allclose(shear_spectra(components, 0.0, jnp.zeros(4)), components[0])


def test_likelihood_finite_gradient_finite_and_lcdm_defaults():
    fn = make_shear_log_likelihood(*_shipped())
    values = {k: jnp.asarray(v) for k, v in FIDUCIAL.items()}
    value, grad = jax.jit(jax.value_and_grad(fn))(values)
    assert np.isfinite(float(value))
    assert all(np.isfinite(float(g)) for g in grad.values())
    lcdm = {k: v for k, v in values.items() if k not in ("w0", "wa")}
    np.testing.assert_allclose(float(jax.jit(fn)(lcdm)), float(value), rtol=1e-6)
    # The likelihood prefers the fiducial S8 to a 15% lower one (the data constrain S8).
    low = {**values, "s8": jnp.asarray(0.68)}
    assert float(jax.jit(fn)(low)) < float(value) - 2.0


def test_shear_models_have_finite_unconstrained_density(key):
    models = shear_models(*_shipped())
    assert [m.name for m in models] == ["lcdm", "w0wacdm"]
    assert len(unconstrained_density(key, models[0], 2).names) == 14
    density = unconstrained_density(key, models[1], 2)
    assert len(density.names) == 16
    value, grad = jax.jit(jax.value_and_grad(density.logdensity_fn))(density.initial_positions[0])
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_problems_prior_transform_matches_the_priors():
    for problem, names in zip(
        shear_problems(*_shipped()), (LCDM_NAMES, W0WACDM_NAMES), strict=True
    ):
        assert problem.names == names
        assert list(problem.priors) == list(names)
        transform = jax.jit(problem.prior_transform_fn)
        for u in (0.02, 0.3, 0.5, 0.9):
            theta = transform(jnp.full(len(names), u))
            for name, value in zip(names, theta, strict=True):
                prior = problem.priors[name]
                np.testing.assert_allclose(float(prior.cdf(value)), u, atol=2e-5, err_msg=name)
        theta = transform(jnp.full(len(names), 0.5))
        np.testing.assert_allclose(
            float(problem.log_likelihood_fn(theta)),
            float(make_shear_log_likelihood(*_shipped())(dict(zip(names, theta, strict=True)))),
            rtol=1e-6,
        )
    truncated = shear_problems(*_shipped())[0].priors["delta_z_1"]
    assert float(truncated.support.lower_bound) == -0.1
    assert float(truncated.support.upper_bound) == 0.1


def test_bad_inputs_raise_clear_errors(key):
    data = des_y1_like_data()
    with pytest.raises(TypeError, match="emulator must be an astrobayes.emulators.Emulator"):
        make_shear_log_likelihood(lambda x: x, data)
    small = Emulator(
        key,
        input_shift=jnp.zeros(11),
        input_scale=jnp.ones(11),
        output_shift=jnp.zeros(12),
        output_scale=jnp.ones(12),
        hidden=(4,),
        log_outputs=True,
    )
    with pytest.raises(ValueError, match="emulator must map 11 parameters"):
        make_shear_log_likelihood(small, data)
    linear = Emulator(
        key,
        input_shift=jnp.zeros(11),
        input_scale=jnp.ones(11),
        output_shift=jnp.zeros(360),
        output_scale=jnp.ones(360),
        hidden=(4,),
        log_outputs=False,
    )
    with pytest.raises(ValueError, match="log_outputs=True"):
        make_shear_log_likelihood(linear, data)
    with pytest.raises(TypeError, match="data must be a ShearData"):
        make_shear_log_likelihood(
            des_y1_like_emulator(), (data.ell, data.data_vector, data.covariance)
        )
    with pytest.raises(ValueError, match="data.data_vector must have 120 entries"):
        make_shear_log_likelihood(
            des_y1_like_emulator(), data._replace(data_vector=data.data_vector[:-1])
        )
    with pytest.raises(ValueError, match="data.ell must be the survey's 12 multipoles"):
        make_shear_log_likelihood(des_y1_like_emulator(), data._replace(ell=2.0 * data.ell))
    with pytest.raises(ValueError, match="positive definite"):
        make_shear_log_likelihood(
            des_y1_like_emulator(), data._replace(covariance=-data.covariance)
        )
    bad = data.data_vector.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        make_shear_log_likelihood(des_y1_like_emulator(), data._replace(data_vector=bad))
    with pytest.raises(TypeError, match="survey must be a ShearSurvey"):
        shear_models(*_shipped(), survey="des")
    with pytest.raises(ValueError, match="4 tomographic bins"):
        shear_models(*_shipped(), survey=dataclasses.replace(DES_Y1_LIKE, smail_z0=(0.3, 0.6)))


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning")
def test_gaussian_covariance_matches_jax_cosmo():
    jc = pytest.importorskip("jax_cosmo")
    signal = np.asarray(des_y1_like_data().data_vector).reshape(10, 12)
    nzs = [
        jc.redshift.smail_nz(2.0, 1.5, z0, gals_per_arcmin2=1.5, zmax=3.0)
        for z0 in DES_Y1_LIKE.smail_z0
    ]
    probe = jc.probes.WeakLensing(nzs, sigma_e=DES_Y1_LIKE.sigma_e)
    ell = jnp.asarray(DES_Y1_LIKE.ell)
    noise = jc.angular_cl.noise_cl(ell, [probe])
    theirs = jc.angular_cl.gaussian_cl_covariance(
        ell, [probe], jnp.asarray(signal), noise, f_sky=DES_Y1_LIKE.f_sky, sparse=False
    )
    ours = gaussian_covariance(signal)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-4, atol=1e-6 * np.abs(ours).max())
    np.testing.assert_allclose(ours, des_y1_like_data().covariance, rtol=1e-6)


def test_survey_properties():
    survey = ShearSurvey()
    assert survey.num_bins == 4
    assert survey.num_pairs == 10
    assert survey.num_data == 120
    assert survey.pairs[:5] == ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1))
    assert emulator_bounds().shape == (11, 2)
    assert isinstance(des_y1_like_data(), ShearData)


def _importance_log_evidence(key, logdensity_fn, samples, num_draws=20_000, df=5.0):
    """ln z by importance sampling from a Student-t fitted to posterior draws (independent)."""
    flat = samples.reshape(-1, samples.shape[-1])
    mean = flat.mean(0)
    covariance = 1.5 * np.cov(flat.T)
    q = dist.MultivariateStudentT(
        df, jnp.asarray(mean), jnp.asarray(np.linalg.cholesky(covariance))
    )
    draws = q.sample(key, (num_draws,))
    log_w = np.asarray(jax.jit(jax.vmap(logdensity_fn))(draws) - q.log_prob(draws), np.float64)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    peak = log_w.max()
    w = np.exp(log_w - peak)
    log_z = float(np.log(w.mean()) + peak)
    return log_z, float(w.std() / w.mean() / np.sqrt(num_draws))


@pytest.mark.slow
def test_nuts_harmonic_evidence_on_the_emulated_likelihood(key):
    from astrobayes.comparison import compare
    from astrobayes.sampling import NUTSConfig

    model = shear_models(*_shipped())[0]
    result = compare(key, [model], sampling=NUTSConfig(4, 400, 1000))
    report = result.models["lcdm"]
    assert report.rhat_max < 1.05
    # Noiseless data at the fiducial: the S8 posterior is centred on the truth.
    assert abs(report.posterior_mean["s8"] - 0.8) < 3.0 * report.posterior_std["s8"]
    density = unconstrained_density(key, model, 1)
    log_z, log_z_std = _importance_log_evidence(
        jax.random.fold_in(key, 1), density.logdensity_fn, report.sampling.samples
    )
    combined = np.hypot(report.log_evidence_std, log_z_std)
    assert abs(report.log_evidence - log_z) < 4.0 * combined + 0.05
    # Negative control: the original harmonic mean of the same draws (Newton & Raftery
    # 1994; biased, infinite variance) fails the same tolerance.
    draws = {k: jnp.asarray(v.reshape(-1)) for k, v in report.posterior.items()}
    log_l = np.asarray(jax.jit(jax.vmap(make_shear_log_likelihood(*_shipped())))(draws), np.float64)
    naive = -(np.logaddexp.reduce(-log_l) - np.log(log_l.size))
    assert abs(naive - log_z) > 4.0 * combined + 0.05


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning")
def test_emulator_matches_jax_cosmo_at_the_fiducial():
    pytest.importorskip("jax_cosmo")
    from astrobayes.cosmology import GaussianLikelihood
    from astrobayes.cosmology.shear_jax_cosmo import spectra

    data = des_y1_like_data()
    likelihood = GaussianLikelihood(data.data_vector, data.covariance)
    theta = jnp.asarray([FIDUCIAL[n] for n in EMULATOR_NAMES])
    m = jnp.asarray([0.01, -0.01, 0.02, 0.0])
    values = {**{k: jnp.asarray(v) for k, v in FIDUCIAL.items()}, "a_ia": jnp.asarray(1.0)}
    values.update({f"m_{i + 1}": m[i] for i in range(4)})
    true = float(likelihood(jax.jit(spectra)(theta, 1.0, m).reshape(-1)))
    emulated = float(jax.jit(make_shear_log_likelihood(*_shipped()))(values))
    assert abs(true - emulated) < 0.1


def test_jax_cosmo_model_without_jax_cosmo_raises_a_clear_import_error(monkeypatch):
    import sys

    from astrobayes.cosmology.shear_jax_cosmo import spectra

    monkeypatch.setitem(sys.modules, "jax_cosmo", None)
    with pytest.raises(ImportError, match="optional 'cosmo' extra"):
        spectra(jnp.zeros(11), 0.5, jnp.zeros(4))
