"""Tests of astrobayes.models.model: the unconstrained density includes the Jacobian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import integrate, special

from astrobayes.models import Model, constrained_samples, unconstrained_density


def _log_integral_1d(logdensity_fn, lo=-40.0, hi=40.0, num=20_001):
    u = jnp.linspace(lo, hi, num)
    values = np.asarray(jax.jit(jax.vmap(logdensity_fn))(u[:, None]), np.float64)
    values = np.where(np.isfinite(values), values, -np.inf)
    peak = values.max()
    return peak + np.log(integrate.trapezoid(np.exp(values - peak), np.asarray(u, np.float64)))


def test_uniform_prior_density_integrates_to_the_evidence(key):
    # L(x) = exp(-x^2 / 2) (unnormalised), x ~ U(-5, 5):
    # z = sqrt(2 pi) (Phi(5) - Phi(-5)) / 10.
    model = Model.from_priors("gauss", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-5, 5)})
    density = unconstrained_density(key, model, 4)
    assert density.names == ("x",)
    assert density.initial_positions.shape == (4, 1)
    truth = np.log(np.sqrt(2 * np.pi) * (special.ndtr(5) - special.ndtr(-5)) / 10)
    np.testing.assert_allclose(_log_integral_1d(density.logdensity_fn), truth, atol=1e-4)
    # the density is log L + log prior + log |dx/du| with x = -5 + 10 sigmoid(u)
    u = np.linspace(-8.0, 8.0, 33)
    x = np.asarray(
        jax.jit(jax.vmap(density.constrain_fn))(jnp.asarray(u[:, None]))["x"], np.float64
    )
    log_jacobian = np.log(10.0) + np.log(special.expit(u)) + np.log(special.expit(-u))
    expected = -0.5 * x**2 - np.log(10.0) + log_jacobian
    actual = np.asarray(jax.jit(jax.vmap(density.logdensity_fn))(jnp.asarray(u[:, None])))
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_positive_prior_density_integrates_to_the_evidence(key):
    # log L = -x (unnormalised) with x ~ HalfNormal(1): z = E[exp(-x)] = exp(1/2) erfc(1/sqrt 2).
    model = Model.from_priors("exp", lambda p: -p["x"], {"x": dist.HalfNormal(1.0)})
    density = unconstrained_density(key, model, 2)
    truth = 0.5 + np.log(special.erfc(1 / np.sqrt(2)))
    np.testing.assert_allclose(
        _log_integral_1d(density.logdensity_fn, -30.0, 10.0), truth, atol=1e-4
    )


def test_dependent_prior_with_correction_is_normalised(key):
    # The w0-wa prior of the dark-energy models: uniform on {w0 in [-3, 1], wa in [-3, 2],
    # w0 + wa < 0}, area 15.5. With a flat likelihood the evidence is 1.
    def wa_upper(w0):
        return jnp.minimum(2.0, -w0)

    model = Model.from_priors(
        "w0wa",
        lambda p: jnp.zeros(()),
        {
            "w0": dist.Uniform(-3.0, 1.0),
            "wa": lambda values: dist.Uniform(-3.0, wa_upper(values["w0"])),
        },
        log_prior_correction_fn=lambda p: jnp.log(4.0 * (wa_upper(p["w0"]) + 3.0) / 15.5),
    )
    density = unconstrained_density(key, model, 2)
    assert density.names == ("w0", "wa")
    grid = np.linspace(-25.0, 25.0, 801)
    uu = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    values = np.asarray(jax.jit(jax.vmap(density.logdensity_fn))(jnp.asarray(uu)), np.float64)
    mass = integrate.trapezoid(
        integrate.trapezoid(np.exp(values).reshape(grid.size, grid.size), grid, axis=1), grid
    )
    np.testing.assert_allclose(mass, 1.0, atol=2e-3)
    # every constrained point respects w0 + wa < 0
    constrained = constrained_samples(density, uu[::97])
    assert np.all(constrained["w0"] + constrained["wa"] <= 1e-5)


def test_improper_prior_is_refused(key):
    model = Model.from_priors(
        "flat",
        lambda p: -0.5 * p["x"] ** 2,
        {"x": dist.ImproperUniform(dist.constraints.real, (), ())},
    )
    with pytest.raises(ValueError, match="'x' has an improper prior"):
        unconstrained_density(key, model, 2)


def test_vector_site_names_and_constrained_samples(key):
    def numpyro_model():
        x = numpyro.sample("x", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
        numpyro.sample("s", dist.LogNormal(0.0, 1.0))
        numpyro.deterministic("total", jnp.sum(x))

    density = unconstrained_density(key, Model("vec", numpyro_model), 3)
    assert density.names == ("s", "x[0]", "x[1]", "x[2]")
    assert density.initial_positions.shape == (3, 4)
    u = np.random.default_rng(0).normal(size=(2, 5, 4))
    out = constrained_samples(density, u)
    assert out["x"].shape == (2, 5, 3)
    assert out["s"].shape == (2, 5)
    np.testing.assert_allclose(out["s"], np.exp(u[..., 0]), rtol=1e-5)
    np.testing.assert_allclose(out["total"], out["x"].sum(-1), rtol=1e-5, atol=1e-5)


def test_model_validation(key):
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        Model("", lambda: None)
    with pytest.raises(TypeError, match="numpyro_model must be callable; got int"):
        Model("m", 3)
    with pytest.raises(ValueError, match="priors must name at least one parameter"):
        Model.from_priors("m", lambda p: 0.0, {})
    with pytest.raises(TypeError, match=r"priors\['x'\] must be a numpyro distribution"):
        Model.from_priors("m", lambda p: 0.0, {"x": 3.0})
    model = Model.from_priors("m", lambda p: -(p["x"] ** 2), {"x": dist.Normal(0, 1)})
    with pytest.raises(TypeError, match="model must be astrobayes.models.Model"):
        unconstrained_density(key, lambda: None, 2)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        unconstrained_density(1, model, 2)
    with pytest.raises(ValueError, match="num_chains must be >= 1"):
        unconstrained_density(key, model, 0)


def _python_if(p):
    return -1.0 if p["x"] > 0 else -2.0


@pytest.mark.parametrize(
    ("log_likelihood_fn", "message"),
    [
        # numpyro.factor would sum these silently: refused, with the shape
        (
            lambda p: -0.5 * p["x"] ** 2 * jnp.ones(3),
            r"must return one number; got an array of shape \(3,\)",
        ),
        (lambda p: jnp.atleast_1d(-0.5 * p["x"] ** 2), r"shape \(1,\)"),
        (lambda p: "ln L", r"must return one number \(a JAX scalar\); got str"),
        (lambda p: jnp.complex64(1.0) * p["x"], "must return a real number; got dtype complex"),
        # errors of the user's own code: named, one line, with the remedy
        (_python_if, "model 'm': its code raised TracerBoolConversionError.*use jnp.where"),
        (
            lambda p: -0.5 * np.square(np.asarray(p["x"])),
            "its code raised TracerArrayConversionError.*jnp functions instead of float\\(\\), math or NumPy",
        ),
        (lambda p: p["y"], "model 'm': its code raised KeyError when JAX traced it: 'y'"),
    ],
)
def test_a_log_likelihood_that_is_not_one_traceable_number_is_named(
    key, log_likelihood_fn, message
):
    model = Model.from_priors("m", log_likelihood_fn, {"x": dist.Normal(0, 1)})
    with pytest.raises(ValueError, match=message):
        unconstrained_density(key, model, 2)


def test_a_scalar_log_likelihood_of_any_real_dtype_passes(key):
    # the negative control of the test above: scalars (float, int, a 0-d array) pass
    for fn in (
        lambda p: -0.5 * p["x"] ** 2,
        lambda p: jnp.int32(3),
        lambda p: jnp.sum(p["x"] * jnp.ones(3)),
    ):
        density = unconstrained_density(
            key, Model.from_priors("m", fn, {"x": dist.Normal(0, 1)}), 2
        )
        assert np.isfinite(
            np.asarray(jax.vmap(density.logdensity_fn)(density.initial_positions))
        ).all()


def test_model_without_latent_parameter_is_refused(key):
    def numpyro_model():
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=0.3)

    with pytest.raises(ValueError, match="no latent parameter"):
        unconstrained_density(key, Model("observed", numpyro_model), 2)


@pytest.mark.slow
def test_dark_energy_models_have_finite_densities(key):
    from astrobayes.cosmology.dark_energy import dark_energy_models

    models = dark_energy_models()
    assert [m.name for m in models] == ["lcdm", "wcdm", "w0wacdm"]
    dims = []
    for model in models:
        density = unconstrained_density(key, model, 2)
        values = jax.jit(jax.vmap(density.logdensity_fn))(density.initial_positions)
        assert np.all(np.isfinite(np.asarray(values)))
        dims.append(len(density.names))
    assert dims == [2, 3, 4]


def test_unconstrained_prior_splits_the_density_with_its_jacobian(key):
    """Prior + likelihood = the density; the prior part carries each bijection's Jacobian."""
    from numpyro.distributions.transforms import biject_to

    from astrobayes.models import unconstrained_prior

    priors = {"s": dist.HalfNormal(2.0), "x": dist.Uniform(-5.0, 5.0)}
    model = Model.from_priors("m", lambda p: -0.5 * ((p["x"] - 1) ** 2 + p["s"] ** 2), priors)
    density = unconstrained_density(key, model, 1)
    split = unconstrained_prior(key, model, 4000, density)
    assert split.names == ("s", "x")
    assert split.draws.shape == (4000, 2)
    u = split.draws[:50]
    # jitted batches: eager vmaps compile each operation on its own
    constrain = jax.jit(jax.vmap(density.constrain_fn))
    log_prior_fn = jax.jit(jax.vmap(split.log_prior_fn))
    theta = constrain(u)
    log_prior = sum(
        priors[n].log_prob(theta[n])
        + biject_to(priors[n].support).log_abs_det_jacobian(u[:, i], theta[n])
        for i, n in enumerate(split.names)
    )
    log_like = -0.5 * ((theta["x"] - 1) ** 2 + theta["s"] ** 2)
    np.testing.assert_allclose(log_prior_fn(u), log_prior, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(split.log_likelihood_fn))(u), log_like, rtol=1e-4, atol=1e-4
    )
    # Negative control: the prior without the Jacobian is a different function.
    without = sum(priors[n].log_prob(theta[n]) for n in split.names)
    assert np.max(np.abs(np.asarray(log_prior_fn(u) - without))) > 0.5
    # The draws follow the prior: means within 4 standard errors (4000 draws).
    drawn = constrain(split.draws)
    for name, mean, std in (("x", 0.0, 10 / np.sqrt(12)), ("s", 2 * np.sqrt(2 / np.pi), 1.2)):
        assert abs(float(drawn[name].mean()) - mean) < 4 * std / np.sqrt(4000), name
    assert abs(float(drawn["x"].mean()) - 0.5) > 4 * 2.9 / np.sqrt(4000)  # a wrong mean fails


def test_unconstrained_prior_of_a_numpyro_model_with_data(key):
    from astrobayes.models import unconstrained_prior

    def numpyro_model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    data = jnp.array([0.5, 1.0])
    split = unconstrained_prior(key, Model("n", numpyro_model, model_args=(data,)), 8)
    mu = split.draws[:, 0]
    np.testing.assert_allclose(
        jax.vmap(split.log_prior_fn)(split.draws), dist.Normal(0.0, 3.0).log_prob(mu), rtol=1e-5
    )
    expected = dist.Normal(mu[:, None], 1.0).log_prob(data).sum(-1)
    np.testing.assert_allclose(
        jax.vmap(split.log_likelihood_fn)(split.draws), expected, rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ValueError, match="num_draws"):
        unconstrained_prior(key, Model("n", numpyro_model, model_args=(data,)), 0)


def test_prior_supports_name_chosen_edges_and_log_uniform_priors():
    from numpyro.distributions.transforms import ExpTransform

    from astrobayes.models import PriorSupport, prior_ranges, prior_supports

    priors = {
        "u": dist.Uniform(-1.0, 2.0),
        "lu": dist.LogUniform(0.1, 10.0),
        "exp_u": dist.TransformedDistribution(dist.Uniform(-2.0, 1.0), ExpTransform()),
        "tn": dist.TruncatedNormal(0.0, 1.0, low=0.0, high=3.0),
        "left": dist.TruncatedNormal(0.0, 1.0, low=-1.0),
        "half": dist.HalfCauchy(5.0),
        "beta": dist.Beta(2.0, 2.0),
        "lognormal": dist.LogNormal(0.0, 1.0),  # its edge 0 is its support, not a choice
        "n": dist.Normal(0.0, 1.0),
    }
    model = Model.from_priors("m", lambda p: 0.0 * p["u"], priors)
    s = prior_supports(model)
    assert s["u"] == PriorSupport(-1.0, 2.0, False, True)
    assert s["lu"] == PriorSupport(0.1, 10.0, True, True)
    assert s["exp_u"].log_uniform
    assert s["exp_u"].chosen
    assert s["tn"] == PriorSupport(0.0, 3.0, False, True)
    assert s["left"] == PriorSupport(-1.0, None, False, True)
    assert s["half"] == PriorSupport(0.0, None, False, False)
    assert s["beta"] == PriorSupport(0.0, 1.0, False, False)
    assert s["lognormal"] == PriorSupport(0.0, None, False, False)
    assert s["n"] == PriorSupport(None, None, False, False)
    assert prior_ranges(model) == {k: (v.low, v.high) for k, v in s.items()}
