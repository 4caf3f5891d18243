import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.imaging.intervals import local_credible_intervals
from astrobayes.imaging.map import map_estimate
from astrobayes.imaging.mcmc import McmcStatus, proximal_mcmc
from astrobayes.imaging.nested import (
    NestedStatus,
    ball_projection,
    nested_finalise,
    proximal_nested_sampling,
)
from astrobayes.imaging.nested_kernel import (
    build_nested_step,
    check_nested_settings,
    nested_init,
    nested_is_running,
)
from astrobayes.imaging.operators import (
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.imaging.priors import WaveletSparsityPrior
from astrobayes.imaging.problem import demo_sky
from astrobayes.imaging.uq import hpd_threshold
from astrobayes.imaging.wavelets import WaveletTransform


def test_rhat_and_ess_on_iid_and_stuck_chains():
    """The proximal MCMC's diagnostics are astrobayes.diagnostics' (one implementation)."""
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(4, 1000, 2))
    np.testing.assert_allclose(split_rhat(iid), 1.0, atol=0.01)
    ess = effective_sample_size(iid)
    assert np.all((ess > 2500) & (ess < 6000))
    stuck = iid + np.arange(4)[:, None, None]  # chains at different places: negative control
    assert np.all(split_rhat(stuck) > 1.5)
    walk = np.cumsum(rng.normal(size=(4, 1000, 1)), axis=1)  # strongly autocorrelated
    assert effective_sample_size(walk)[0] < 100


def _gaussian_problem(key, dim, prior_scale=1.0, noise=1.0):
    k1, k2 = jax.random.split(key)
    y = prior_scale * jax.random.normal(k1, (dim,)) + noise * jax.random.normal(k2, (dim,))
    total = prior_scale**2 + noise**2
    truth = -0.5 * dim * math.log(2 * math.pi * total) - float(jnp.sum(y**2)) / (2 * total)
    return y, truth


def _run_nested(key, y, dim, num_live, prior_scale=1.0, noise=1.0, steps=20, num_delete=1):
    k_live, k_run = jax.random.split(key)
    return proximal_nested_sampling(
        k_run,
        lambda x: -jnp.sum((x - y) ** 2) / (2 * noise**2),
        lambda x: jnp.sum(x**2) / (2 * prior_scale**2),
        ball_projection(y, noise),
        prior_scale * jax.random.normal(k_live, (num_live, dim)),
        log_likelihood_offset=-0.5 * dim * math.log(2 * math.pi * noise**2),
        num_mcmc_steps=steps,
        num_delete=num_delete,
    )


def test_nested_sampling_small_gaussian_and_same_key(key):
    y, truth = _gaussian_problem(key, 10)
    a = _run_nested(key, y, 10, 50)
    b = _run_nested(key, y, 10, 50)
    assert a.log_evidence == b.log_evidence
    assert a.status.name == "CONVERGED"
    assert abs(a.log_evidence - truth) < 3 * a.log_evidence_error


@pytest.mark.slow
def test_nested_sampling_gaussian_d100_within_3_sigma(key):
    dim = 100
    y, truth = _gaussian_problem(key, dim)
    result = _run_nested(jax.random.fold_in(key, 1), y, dim, 100)
    assert result.status.name == "CONVERGED"
    z = (result.log_evidence - truth) / result.log_evidence_error
    assert abs(z) < 3, (result.log_evidence, result.log_evidence_error, truth)
    # negative control: the evidence of a wrong model (prior scale 2) is many sigma away
    wrong_total = 4.0 + 1.0
    wrong = -0.5 * dim * math.log(2 * math.pi * wrong_total) - float(jnp.sum(y**2)) / (
        2 * wrong_total
    )
    assert abs(result.log_evidence - wrong) > 3 * result.log_evidence_error


def test_nested_validation(key):
    with pytest.raises(ValueError, match="initial_live_points must have shape"):
        proximal_nested_sampling(key, jnp.sum, jnp.sum, lambda x, level: x, np.zeros(3))
    with pytest.raises(ValueError, match="initial_live_points must be finite"):
        proximal_nested_sampling(key, jnp.sum, jnp.sum, lambda x, level: x, np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="num_delete must be at most num_live // 2 = 2"):
        proximal_nested_sampling(
            key, jnp.sum, jnp.sum, lambda x, level: x, np.zeros((4, 2)), num_delete=3
        )


def test_nested_sampling_several_deletions_matches_analytic(key):
    """k = 5 deletions per iteration: ln X falls by sum 1/(N - j) per cycle; same truth."""
    y, truth = _gaussian_problem(key, 10)
    a = _run_nested(key, y, 10, 50, num_delete=5)
    b = _run_nested(key, y, 10, 50, num_delete=5)
    assert a.log_evidence == b.log_evidence
    assert a.status.name == "CONVERGED"
    assert a.num_iterations % 5 == 0
    assert abs(a.log_evidence - truth) < 3 * a.log_evidence_error
    # the error is sqrt(H v) with v slightly above 1 / N
    assert math.sqrt(a.information / 50) < a.log_evidence_error
    # negative control: the evidence of a wrong prior scale (10) is many sigma away. (Scale
    # 2 was too close: ln z(scale) peaks near the data's own scale, so a wrong scale's
    # evidence can equal the truth's for some data; it came 1.07 sigma away in float64.)
    total = 10.0**2 + 1.0
    wrong = -5 * math.log(2 * math.pi * total) - float(jnp.sum(y**2)) / (2 * total)
    assert abs(a.log_evidence - wrong) > 3 * a.log_evidence_error


def _mcmc_problem(size=32, isnr=25.0):
    truth = demo_sky(size)
    key = jax.random.key(0)
    k_mask, k_noise = jax.random.split(key)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    mask = np.asarray(jax.random.uniform(k_mask, (size, size))) < np.clip(
        0.9 * np.exp(-radius / 0.12), 0.02, 1
    )
    mask[0, 0] = True
    op = fourier_mask_operator(mask)
    clean = op(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, isnr)
    data = add_complex_noise(k_noise, clean, sigma)
    post = imaging_posterior(op, data, sigma, WaveletSparsityPrior(60.0, WaveletTransform(4, 2)))
    return truth, post


def test_samplers_run_and_same_key_same_result(key):
    _, post = _mcmc_problem(8)
    start = map_estimate(post).image
    settings = {"num_chains": 2, "num_samples": 8, "num_warmup": 4, "thinning": 2}
    a = proximal_mcmc(key, post, start, method="myula", **settings)
    b = proximal_mcmc(key, post, start, method="myula", **settings)
    np.testing.assert_array_equal(np.asarray(a.summaries), np.asarray(b.summaries))
    assert a.summaries.shape == (2, 8, 64)
    c = proximal_mcmc(key, post, start, method="skrock", num_stages=3, **settings)
    assert np.all(np.isfinite(np.asarray(c.mean)))
    assert c.num_gradient_evaluations == 3 * (4 + 2 * 8)
    with pytest.raises(ValueError, match="method must be"):
        proximal_mcmc(key, post, start, method="hmc")


@pytest.mark.slow
def test_mcmc_intervals_inside_map_based_intervals_64(key):
    size, block = 64, 8
    truth, post = _mcmc_problem(size, isnr=30.0)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, size * size, 0.01)
    lci = local_credible_intervals(post, result.image, hpd, block)

    def means(x):
        return x.reshape(size // block, block, size // block, block).mean(axis=(1, 3)).reshape(-1)

    chains = proximal_mcmc(
        key,
        post,
        result.image,
        num_chains=4,
        num_samples=200,
        num_warmup=200,
        thinning=5,
        summary_fn=means,
    )
    assert np.max(chains.rhat) < 1.05
    assert np.min(chains.ess) > 100
    samples = np.asarray(chains.summaries).reshape(-1, (size // block) ** 2)
    low, high = np.quantile(samples, [0.005, 0.995], axis=0)
    contained = (np.asarray(lci.lower).ravel() <= low) & (high <= np.asarray(lci.upper).ravel())
    assert contained.all()
    coverage = np.mean((low <= means(truth)) & (means(truth) <= high))
    assert coverage > 0.5  # reported in the benchmark; MY-ULA targets a smoothed posterior


def test_multichain_mcmc_with_nufft_operator(key):
    # jax-finufft's vmap rule is broken on jax 0.10: chains must still run with a NUFFT
    from astrobayes.imaging.nufft import nufft_operator
    from astrobayes.imaging.operators import ARCSEC_TO_RADIANS

    rng = np.random.default_rng(5)
    pixel = 40.0
    limit = 1 / (2 * pixel * ARCSEC_TO_RADIANS)
    uv = rng.uniform(-limit, limit, size=(40, 2))
    op = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=pixel)
    truth = demo_sky(8)
    clean = op(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, 20.0)
    post = imaging_posterior(
        op,
        add_complex_noise(key, clean, sigma),
        sigma,
        WaveletSparsityPrior(1.0, WaveletTransform(1, 1)),
    )
    start = jnp.asarray(truth, jnp.float32)
    settings = {"num_chains": 3, "num_samples": 4, "num_warmup": 2, "thinning": 1}
    a = proximal_mcmc(key, post, start, method="myula", **settings)
    b = proximal_mcmc(key, post, start, method="myula", **settings)
    assert a.summaries.shape == (3, 4, 64)
    # same key, same result up to rounding (finufft's multithreaded spreading sums in
    # a varying order)
    np.testing.assert_allclose(
        np.asarray(a.summaries), np.asarray(b.summaries), rtol=1e-4, atol=1e-5
    )
    assert np.all(np.isfinite(np.asarray(a.summaries)))
    # the chains are distinct (each has its own key)
    assert not np.allclose(np.asarray(a.summaries[0]), np.asarray(a.summaries[1]))


def test_nested_driver_equals_init_step_finalise(key):
    """The driver is nothing but init, a while loop of step, and finalise."""
    y, _ = _gaussian_problem(key, 4)
    k_live, k_run = jax.random.split(key)
    live = jax.random.normal(k_live, (20, 4))

    def log_likelihood_fn(x):
        return -jnp.sum((x - y) ** 2) / 2

    def prior_potential_fn(x):
        return jnp.sum(x**2) / 2

    driver = proximal_nested_sampling(
        k_run, log_likelihood_fn, prior_potential_fn, ball_projection(y, 1.0), live,
        num_mcmc_steps=5, num_delete=2,
    )  # fmt: skip
    settings = check_nested_settings(20, num_mcmc_steps=5, num_delete=2)
    step = jax.jit(
        build_nested_step(log_likelihood_fn, prior_potential_fn, ball_projection(y, 1.0), settings)
    )
    state = nested_init(k_run, live, log_likelihood_fn, settings)
    while bool(nested_is_running(state, settings)):
        state = step(state)
    manual = nested_finalise(state, settings)
    assert manual.num_iterations == driver.num_iterations
    np.testing.assert_allclose(manual.log_evidence, driver.log_evidence, rtol=1e-5)


def test_nested_failure_status_and_throw(key):
    """A likelihood that is nan everywhere gives a non-finite evidence: a failure."""

    def run(throw):
        return proximal_nested_sampling(
            key,
            lambda x: jnp.sum(x) * jnp.nan,
            lambda x: jnp.sum(x**2) / 2,
            lambda x, level: x,
            jax.random.normal(key, (6, 2)),
            num_mcmc_steps=2,
            max_iterations=10,
            throw=throw,
        )

    assert run(False).status is NestedStatus.NOT_FINITE
    with pytest.raises(UnreliableResultError, match="NestedStatus.NOT_FINITE") as error:
        run(True)
    assert error.value.result.status is NestedStatus.NOT_FINITE


def test_mcmc_failure_status_and_throw(key):
    """A step far above the stability limit makes the chains blow up: a failure."""
    _, post = _mcmc_problem(8)
    start = map_estimate(post).image
    # 80 steps: the draws grow ~1e5 per step, past float64's range too (with 30 they stayed
    # finite, ~1e173, under JAX_ENABLE_X64: a NOT_CONVERGED warning, not this failure)
    settings = {"num_chains": 2, "num_samples": 4, "num_warmup": 80, "thinning": 1}
    result = proximal_mcmc(key, post, start, method="myula", step_fraction=1e6, **settings)
    assert result.status is McmcStatus.NOT_FINITE
    assert np.all(np.isnan(result.rhat))
    with pytest.raises(UnreliableResultError, match="McmcStatus.NOT_FINITE") as error:
        proximal_mcmc(key, post, start, method="myula", step_fraction=1e6, throw=True, **settings)
    assert error.value.result.status.is_failure
