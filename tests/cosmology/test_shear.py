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
from astrobayes.cosmology.shear_jax_cosmo import gaussian_covariance, log_evidence_shift
from astrobayes.cosmology.shear_survey import (
    DES_Y1_LIKE,
    EMULATOR_NAMES,
    FIDUCIAL,
    LSST_Y1_LIKE,
    ShearSurvey,
    emulator_bounds,
    emulator_names,
    fiducial,
    parameter_names,
)
from astrobayes.emulators import Emulator
from astrobayes.io import des_y1_like_data, des_y1_like_emulator, shipped_shear_data
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
    two_bins = dataclasses.replace(DES_Y1_LIKE, smail_z0=(0.3, 0.6), photo_z_sigma=(0.01, 0.01))
    with pytest.raises(ValueError, match="emulator must map 9 parameters"):
        shear_models(*_shipped(), survey=two_bins)
    with pytest.raises(ValueError, match="photo_z_sigma must have one width per bin"):
        dataclasses.replace(DES_Y1_LIKE, smail_z0=(0.3, 0.6))
    with pytest.raises(ValueError, match="bin_edges must increase"):
        dataclasses.replace(LSST_Y1_LIKE, bin_edges=(0.0, 0.5, 0.4, *LSST_Y1_LIKE.bin_edges[3:]))
    with pytest.raises(ValueError, match="parent's single z0"):
        dataclasses.replace(LSST_Y1_LIKE, smail_z0=(0.2, 0.3))
    with pytest.raises(ValueError, match="survey must be one of"):
        shipped_shear_data("lsst")
    with pytest.raises(ValueError, match="model must be 'lcdm' or 'w0wacdm'"):
        parameter_names(LSST_Y1_LIKE, "wcdm")


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


# --------------------------------------------------------------------- 30+ parameters


def _fake_lsst(key):
    """A tiny random emulator of the LSST-Y1-like shape and data made from it (no files).

    Outputs near [1, 1, 0.1] x 1e-9 with random O(1) wiggles; the data are its spectra at
    the fiducial with A_IA = 0.5, covariance 1e-2 x the squared signal on the diagonal.
    """
    survey = LSST_Y1_LIKE
    size = 3 * survey.num_data
    level = np.log(np.repeat(np.asarray([1.0, 0.3, 0.1]), survey.num_data) * 1e-9)
    bounds = emulator_bounds(survey)
    emulator = Emulator(
        key,
        input_shift=jnp.asarray(bounds.mean(1)),
        input_scale=jnp.asarray(np.ptp(bounds, axis=1) / 2),
        output_shift=jnp.asarray(level),
        output_scale=jnp.full(size, 0.3),
        hidden=(8,),
        log_outputs=True,
    )
    truth = fiducial(survey)
    theta = jnp.asarray([truth[n] for n in emulator_names(survey)])
    components = emulator(theta).reshape(3, survey.num_pairs, survey.num_ell)
    components = components * jnp.asarray([1.0, -1.0, 1.0])[:, None, None]
    signal = np.asarray(shear_spectra(components, 0.5, jnp.zeros(10), survey), np.float64)
    data = ShearData(
        ell=np.asarray(survey.ell),
        data_vector=signal.reshape(-1),
        covariance=np.diag((0.1 * signal.reshape(-1)) ** 2),
    )
    return emulator, data


def test_lsst_y1_like_survey_has_30_parameters_and_a_consistent_box():
    survey = LSST_Y1_LIKE
    assert survey.num_bins == 10
    assert survey.num_pairs == 55
    assert survey.num_data == 660
    assert len(parameter_names(survey, "lcdm")) == 28
    assert len(parameter_names(survey, "w0wacdm")) == 30
    assert len(emulator_names(survey)) == 19
    assert emulator_bounds(survey).shape == (19, 2)
    assert emulator_names(survey)[7:9] == ("eta_ia", "a_mod")
    # Equal-number bins of the SRD Y1 parent: increasing edges, median near z = 0.8.
    edges = np.asarray(survey.bin_edges)
    assert np.all(np.diff(edges) > 0)
    assert 0.7 < edges[5] < 0.9
    # Photo-z priors lie >= 3.5 sigma inside the emulator's range.
    assert survey.photo_z_bound >= 3.5 * max(survey.photo_z_sigma)
    truth = fiducial(survey)
    bounds = dict(zip(emulator_names(survey), emulator_bounds(survey), strict=True))
    for name, (low, high) in bounds.items():
        assert low < truth[name] < high, name
    # The DES-Y1-like names and constants are unchanged.
    assert parameter_names(DES_Y1_LIKE, "lcdm") == LCDM_NAMES
    assert len(W0WACDM_NAMES) == 16
    assert emulator_names(DES_Y1_LIKE) == EMULATOR_NAMES


def test_lsst_likelihood_priors_and_transform_with_a_tiny_fake_emulator(key):
    emulator, data = _fake_lsst(key)
    survey = LSST_Y1_LIKE
    fn = make_shear_log_likelihood(emulator, data, survey)
    truth = {k: jnp.asarray(v) for k, v in fiducial(survey).items()}
    value, grad = jax.jit(jax.value_and_grad(fn))(truth)
    assert np.isfinite(float(value))
    assert set(grad) == set(truth)
    assert all(np.isfinite(float(g)) for g in grad.values())
    # At the data's own parameters the residual is zero: ln L is the normalisation.
    norm = -0.5 * (survey.num_data * np.log(2 * np.pi) + np.linalg.slogdet(data.covariance)[1])
    np.testing.assert_allclose(float(value), norm, rtol=1e-5)
    # m_10 (the 10th bin, a two-digit index) enters: 5% calibration costs likelihood.
    assert float(fn({**truth, "m_10": jnp.asarray(0.05)})) < float(value) - 1.0
    problems = shear_problems(emulator, data, survey)
    assert [(p.name, len(p.names)) for p in problems] == [("lcdm", 28), ("w0wacdm", 30)]
    problem = problems[1]
    units = jnp.asarray([0.02, 0.5, 0.9])
    theta = jax.vmap(problem.prior_transform_fn)(jnp.repeat(units[:, None], 30, axis=1))
    for k, name in enumerate(problem.names):
        cdf = np.asarray(problem.priors[name].cdf(theta[:, k]))
        np.testing.assert_allclose(cdf, units, atol=3e-5, err_msg=name)
    priors = problem.priors
    assert float(priors["delta_z_10"].base_dist.scale) == survey.photo_z_sigma[9]
    assert float(priors["delta_z_10"].support.upper_bound) == survey.photo_z_bound
    assert float(priors["m_10"].scale) == survey.multiplicative_bias_sigma
    assert float(priors["a_mod"].low) == 0.6
    assert float(priors["eta_ia"].high) == 4.0
    assert [m.name for m in shear_models(emulator, data, survey)] == ["lcdm", "w0wacdm"]


def test_log_evidence_shift_matches_the_lognormal_mean(key):
    # delta ~ N(mu, s^2): ln E[exp(delta)] = mu + s^2 / 2 exactly.
    mu, s, n = 0.1, 0.3, 4000
    delta = mu + s * np.asarray(jax.random.normal(key, (n,)), np.float64)
    shift, error = log_evidence_shift(delta)
    assert abs(shift - (mu + s**2 / 2)) < 4.0 * error
    # Negative control: the mean of delta (no reweighting) misses by s^2 / 2 = 11 sigma.
    assert abs(float(delta.mean()) - (mu + s**2 / 2)) > 4.0 * error
    assert log_evidence_shift(np.full(5, -0.2)) == pytest.approx((-0.2, 0.0))
    with pytest.raises(ValueError, match="delta_log_likelihood must hold"):
        log_evidence_shift([np.nan, 0.0])


def test_photo_z_bins_partition_the_parent_and_stay_positive_in_their_tails():
    jc = pytest.importorskip("jax_cosmo")
    from astrobayes.cosmology.shear_jax_cosmo import _parent_bins

    survey = LSST_Y1_LIKE
    edges = survey.bin_edges
    bins = _parent_bins(jc, survey)  # the bins the spectra use, before photo-z shifts
    from jax.scipy.special import ndtr

    z = jnp.linspace(0.01, 3.4, 200)
    # Together the bins select 0 <= z_photo < 4 from the parent.
    width = 0.05 * (1.0 + z)
    selected = ndtr((edges[-1] - z) / width) - ndtr((edges[0] - z) / width)
    parent = z**2 * jnp.exp(-((z / 0.26) ** 0.94)) * selected
    total = sum(np.asarray(b.pz_fn(z), np.float64) for b in bins)
    np.testing.assert_allclose(total, np.asarray(parent), rtol=1e-5)
    # Far tails: the first bin at z = 2 and the last at z = 0.8 (8-11 sigma_z outside)
    # are tiny but positive.
    first, last = bins[0].pz_fn(jnp.asarray([2.0])), bins[-1].pz_fn(jnp.asarray([0.8]))
    assert 0.0 < float(first[0]) < 1e-15
    assert 0.0 < float(last[0]) < 1e-15
    # Negative control: the textbook difference of error functions cancels to zero there.
    from jax.scipy.special import erf

    width = jnp.sqrt(2.0) * 0.05 * (1.0 + 2.0)
    naive = 0.5 * (erf((edges[1] - 2.0) / width) - erf((edges[0] - 2.0) / width))
    assert float(naive) <= 0.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning")
def test_redshift_dependent_ia_and_baryons_decompose_exactly():
    jc = pytest.importorskip("jax_cosmo")
    from astrobayes.cosmology.shear_jax_cosmo import spectra, spectrum_components

    jax.config.update("jax_enable_x64", True)
    try:
        # A 2-bin, 3-multipole version of the LSST-Y1-like setup (fast to compile).
        survey = dataclasses.replace(
            LSST_Y1_LIKE,
            ell=(100.0, 500.0, 1500.0),
            bin_edges=(0.0, 0.6, 4.0),
            photo_z_sigma=(0.01, 0.01),
        )
        truth = {**fiducial(survey), "eta_ia": 1.5, "a_mod": 0.8, "delta_z_2": 0.02}
        theta = jnp.asarray([truth[n] for n in emulator_names(survey)])
        m = jnp.asarray([0.01, -0.02])
        components = jax.jit(lambda t: spectrum_components(t, survey))(theta)
        direct = jax.jit(lambda t: spectra(t, 1.7, m, survey))(theta)
        np.testing.assert_allclose(
            np.asarray(shear_spectra(components, 1.7, m, survey)), np.asarray(direct), rtol=1e-10
        )
        # eta_ia and a_mod matter: eta_ia changes GI/II, a_mod = 1 is plain halofit.
        other = theta.at[7].set(-1.5)
        changed = jax.jit(lambda t: spectrum_components(t, survey))(other)
        assert float(jnp.max(jnp.abs(changed[2] / components[2] - 1))) > 0.05
        halofit = dataclasses.replace(survey, a_mod_bounds=None)
        plain = jax.jit(lambda t: spectrum_components(t, halofit))(
            jnp.delete(theta.at[8].set(1.0), 8)
        )
        same = jax.jit(lambda t: spectrum_components(t, survey))(theta.at[8].set(1.0))
        np.testing.assert_allclose(np.asarray(same), np.asarray(plain), rtol=1e-10)
        assert float(components[0, 0, -1] / same[0, 0, -1]) < 0.97  # suppressed at l = 1500
        assert jc is not None
    finally:
        jax.config.update("jax_enable_x64", False)


def test_shipped_lsst_emulator_reproduces_the_jax_cosmo_data_vector():
    """The shipped LSST-Y1-like emulator at the fiducial vs the direct jax-cosmo data vector.

    The data vector was computed by jax-cosmo directly (not by the emulator), so the
    chi^2 of the emulated spectra against it is the emulator's error in data units. A
    chi^2 of 1 would move ln L by 0.5; the emulator must stay well under that. Negative
    control: a 2% lower S8 (about one posterior sigma of this survey or less) must cost
    far more.
    """
    from astrobayes.io import lsst_y1_like_data, lsst_y1_like_emulator

    survey = LSST_Y1_LIKE
    emulator, data = lsst_y1_like_emulator(), lsst_y1_like_data()
    assert emulator.num_parameters == len(emulator_names(survey)) == 19
    assert emulator.num_outputs == 3 * survey.num_data == 1980
    assert data.data_vector.shape == (660,)
    fn = jax.jit(make_shear_log_likelihood(emulator, data, survey))
    truth = {k: jnp.asarray(v) for k, v in fiducial(survey).items()}
    norm = -0.5 * (survey.num_data * np.log(2 * np.pi) + np.linalg.slogdet(data.covariance)[1])
    chi2 = -2.0 * (float(fn(truth)) - norm)
    assert 0.0 <= chi2 < 0.5, chi2
    chi2_low = -2.0 * (float(fn({**truth, "s8": jnp.asarray(0.98 * truth["s8"])})) - norm)
    assert chi2_low > 20 * max(chi2, 0.05), (chi2_low, chi2)
