"""Evidence of imaging priors: exact constraint projection, prior draws, analytic ln z."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_ndtr

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.constraints import gaussian_log_likelihood_constant, mask_constraint
from astrobayes.imaging.crr import ConvexRidgePrior
from astrobayes.imaging.nested import proximal_nested_sampling
from astrobayes.imaging.operators import add_complex_noise, fourier_mask_operator
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.imaging.prior_evidence import (
    PriorEvidenceStatus,
    compare_priors,
    prior_log_evidence,
)
from astrobayes.imaging.prior_sampling import (
    crr_fourier_preconditioner,
    crr_value_and_grad,
    sample_prior,
)
from astrobayes.imaging.priors import WaveletSparsityPrior
from astrobayes.imaging.wavelets import WaveletTransform
from astrobayes.io.imaging_files import read_convex_ridge


def load_convex_ridge():
    return read_convex_ridge().regulariser


def _half_plane_mask(size, fraction, seed):
    """Random mask on one half-plane, without self-conjugate frequencies (no mirror pairs)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(
        np.fft.fftfreq(size) * size, np.fft.fftfreq(size) * size, indexing="ij"
    )
    half = (cols > 0) | ((cols == 0) & (rows > 0))
    self_conjugate = (rows % (size // 2) == 0) & (cols % (size // 2) == 0)
    return (rng.random((size, size)) < fraction) & half & ~self_conjugate


def _gaussian_masked_problem(key, size, prior_scale, sigma):
    """x ~ N(0, s^2 I), y = FFT(x)[mask] + noise: every real component of y has variance
    s^2 / 2 + sigma^2 (rows of a half-plane mask are orthogonal with squared norm 1/2)."""
    op = fourier_mask_operator(_half_plane_mask(size, 0.5, 0))
    k_x, k_noise = jax.random.split(key)
    x = prior_scale * jax.random.normal(k_x, (size, size))
    y = add_complex_noise(k_noise, op(x), sigma)
    return op, y, _gaussian_masked_truth(y, prior_scale, sigma)


def _run_gaussian_nested(key, op, y, size, prior_scale, sigma, num_live, steps, num_delete=1):
    constraint = mask_constraint(op, y, sigma)
    shape = (size, size)
    k_live, k_run = jax.random.split(key)
    return proximal_nested_sampling(
        k_run,
        lambda v: constraint.log_likelihood_fn(v.reshape(shape)),
        lambda v: jnp.sum(v**2) / (2 * prior_scale**2),
        lambda v, level: constraint.projection_fn(v.reshape(shape), level).reshape(v.shape),
        prior_scale * jax.random.normal(k_live, (num_live, size * size)),
        log_likelihood_offset=gaussian_log_likelihood_constant(op.num_visibilities, sigma),
        subspace_projection_fn=lambda v: constraint.measured_projection_fn(
            v.reshape(shape)
        ).reshape(v.shape),
        num_mcmc_steps=steps,
        initial_step=sigma**2,
        num_delete=num_delete,
    )


def _gaussian_masked_truth(y, prior_scale, sigma):
    """Analytic ln z of the masked Gaussian problem for data ``y`` and a prior scale."""
    variance = prior_scale**2 / 2 + sigma**2
    parts = np.concatenate([np.real(y), np.imag(y)])
    return float(np.sum(-0.5 * np.log(2 * np.pi * variance) - parts**2 / (2 * variance)))


def _laplace_log_evidence(y, size, psi, strength, sigma):
    """Full mask (a unitary FFT): ln z factorises over wavelet coefficients into
    Gaussian-Laplace convolutions, in closed form."""
    back = np.fft.ifft2(np.asarray(y).reshape(size, size), norm="ortho")
    w = np.asarray(psi(jnp.asarray(back.real)), np.float64)
    lam = strength
    per_coefficient = (
        np.log(lam / 2)
        + lam**2 * sigma**2 / 2
        + np.logaddexp(
            -lam * w + log_ndtr((w - lam * sigma**2) / sigma),
            lam * w + log_ndtr((-w - lam * sigma**2) / sigma),
        )
    )
    return float(
        -0.5 * size * size * np.log(2 * np.pi * sigma**2)
        - np.sum(back.imag**2) / (2 * sigma**2)
        + per_coefficient.sum()
    )


def _laplace_denoising_problem(key, size, order, levels, strength, sigma):
    psi = WaveletTransform(order, levels)
    op = fourier_mask_operator(np.ones((size, size), bool))
    k_x, k_noise = jax.random.split(key)
    x = psi.inverse(jax.random.laplace(k_x, (size, size)) / strength)
    y = add_complex_noise(k_noise, op(x), sigma)
    return op, y, psi, _laplace_log_evidence(y, size, psi, strength, sigma)


def test_likelihood_constant_is_finite_for_tiny_sigma():
    """-M ln(2 pi sigma^2), also where sigma^2 underflows (it raised a math domain error)."""
    for sigma in (0.3, 1.0, 7.0):
        expected = -5 * math.log(2 * math.pi * sigma**2)
        assert gaussian_log_likelihood_constant(5, sigma) == pytest.approx(expected, rel=1e-14)
    tiny = gaussian_log_likelihood_constant(5, 1e-200)
    assert tiny == pytest.approx(-5 * (math.log(2 * math.pi) - 400 * math.log(10)), rel=1e-14)


def test_mask_projection_is_exact():
    size, sigma = 8, 0.1
    rng = np.random.default_rng(0)
    mask = rng.random((size, size)) < 0.5
    mask[0, 0] = True  # the zero frequency and mirror pairs: a non-scalar normal operator
    op = fourier_mask_operator(mask)
    y = add_complex_noise(jax.random.key(1), op(jnp.asarray(rng.normal(size=(size, size)))), sigma)
    constraint = mask_constraint(op, y, sigma)
    x = jnp.asarray(rng.normal(size=(size, size)) * 3, jnp.float32)
    level = float(constraint.log_likelihood_fn(x)) / 4  # x lies outside {ln L >= level}
    z = constraint.projection_fn(x, level)
    np.testing.assert_allclose(float(constraint.log_likelihood_fn(z)), level, rtol=1e-3)
    # KKT: x - z = mu * grad of ||Phi z - y||^2 / 2 with mu > 0
    gradient = np.asarray(op.adjoint(op(z) - y)).ravel()
    step = np.asarray(x - z).ravel()
    mu = step @ gradient / (gradient @ gradient)
    assert mu > 0
    np.testing.assert_allclose(step, mu * gradient, atol=1e-4 * np.abs(step).max())
    # points inside are left alone
    inside = constraint.projection_fn(z, level - 1.0)
    np.testing.assert_array_equal(np.asarray(inside), np.asarray(z))
    # P is an orthogonal projector and Phi x = Phi P x
    p = constraint.measured_projection_fn
    np.testing.assert_allclose(np.asarray(p(p(x))), np.asarray(p(x)), atol=1e-5)
    other = jnp.asarray(rng.normal(size=(size, size)), jnp.float32)
    np.testing.assert_allclose(
        float(jnp.sum(p(x) * other)), float(jnp.sum(x * p(other))), rtol=1e-4
    )
    np.testing.assert_allclose(np.asarray(op(p(x))), np.asarray(op(x)), atol=1e-4)


def test_wavelet_prior_draws_are_exact_laplace(key):
    prior = WaveletSparsityPrior(5.0, WaveletTransform(2, 2))
    a = sample_prior(key, prior, (16, 16), 200)
    b = sample_prior(key, prior, (16, 16), 200)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    assert a.is_exact
    coefficients = np.abs(np.asarray(prior.transform(a.images))).ravel()
    # |c| ~ Exponential(strength): mean 1/5, standard error 1/5 / sqrt(n)
    error = 0.2 / math.sqrt(coefficients.size)
    assert abs(coefficients.mean() - 0.2) < 4 * error
    # negative control: a prior twice as strong is far off
    assert abs(coefficients.mean() - 0.1) > 4 * error


# slow (~13 s): the fast suite checks the same sampler exactly in the Gaussian limit
# (test_preconditioned_crr_draws_match_the_gaussian_limit)
@pytest.mark.slow
def test_crr_prior_draws_run_and_have_gaussian_mean(key):
    prior = ConvexRidgePrior(1000.0, load_convex_ridge().normalised())
    draws = sample_prior(key, prior, (8, 8), 64, mean_scale=2.0, num_steps=60)
    assert not draws.is_exact
    assert draws.images.shape == (64, 8, 8)
    assert 0.2 < draws.acceptance_rate < 0.95
    assert np.isfinite(draws.rhat)
    means = np.asarray(draws.images).sum(axis=(1, 2)) / 8.0
    # the mean is drawn exactly from N(0, 2^2): a chi-square check with 64 draws
    assert 0.5 < np.mean(means**2) / 4.0 < 1.7


def test_laplace_evidence_small_matches_analytic(key):
    op, y, psi, truth = _laplace_denoising_problem(key, 4, 1, 1, 5.0, 0.1)
    posterior = imaging_posterior(op, y, 0.1, WaveletSparsityPrior(5.0, psi))
    result = prior_log_evidence(jax.random.key(2), posterior, num_live=40, num_mcmc_steps=10)
    assert result.status.name == "OK"
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error
    # negative control: the analytic evidence of a 4x stronger prior, same data, is far away
    wrong = _laplace_log_evidence(y, 4, psi, 20.0, 0.1)
    assert abs(result.log_evidence - wrong) > 3 * result.log_evidence_error


@pytest.mark.parametrize("num_delete", [1, 6])
def test_masked_gaussian_evidence_small_matches_analytic(key, num_delete):
    op, y, truth = _gaussian_masked_problem(key, 8, 1.0, 0.1)
    result = _run_gaussian_nested(jax.random.key(3), op, y, 8, 1.0, 0.1, 24, 10, num_delete)
    assert result.status.name == "CONVERGED"
    assert result.num_iterations % num_delete == 0
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error
    # negative control: a prior twice as wide gives an analytic ln z many sigma away
    wrong = _gaussian_masked_truth(y, 2.0, 0.1)
    assert abs(result.log_evidence - wrong) > 3 * result.log_evidence_error


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_masked_gaussian_evidence_d256_within_3_sigma(key, seed):
    op, y, truth = _gaussian_masked_problem(key, 16, 1.0, 0.05)
    result = _run_gaussian_nested(jax.random.key(seed), op, y, 16, 1.0, 0.05, 50, 40)
    assert result.status.name == "CONVERGED"
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error


@pytest.mark.slow
@pytest.mark.parametrize("num_delete", [1, 10])
def test_laplace_evidence_d256_within_3_sigma(key, num_delete):
    op, y, psi, truth = _laplace_denoising_problem(key, 16, 4, 2, 20.0, 0.02)
    posterior = imaging_posterior(op, y, 0.02, WaveletSparsityPrior(20.0, psi))
    result = prior_log_evidence(
        jax.random.key(0), posterior, num_live=50, num_mcmc_steps=40, num_delete=num_delete
    )
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error


def test_prior_evidence_validation(key):
    op = fourier_mask_operator(_half_plane_mask(8, 0.5, 0))
    y = jnp.zeros(op.num_visibilities, jnp.complex64)
    prior = WaveletSparsityPrior(1.0, WaveletTransform(1, 1))
    positive = imaging_posterior(op, y, 0.1, prior, positivity=True)
    with pytest.raises(ValueError, match="positivity must be False"):
        prior_log_evidence(key, positive)
    post = imaging_posterior(op, y, 0.1, prior)
    with pytest.raises(ValueError, match="at least two priors"):
        compare_priors(key, {"a": post})
    other = imaging_posterior(op, y + 1.0, 0.1, prior)
    with pytest.raises(ValueError, match="does not hold the same data"):
        compare_priors(key, {"a": post, "b": other})
    dc = np.zeros((8, 8), bool)
    dc[0, 0] = dc[1, 2] = True
    op_dc = fourier_mask_operator(dc)
    y_dc = jnp.zeros(2, jnp.complex64)
    crr = ConvexRidgePrior(1.0, load_convex_ridge().normalised())
    with pytest.raises(ValueError, match="zero frequency is measured"):
        compare_priors(
            key,
            {
                "w": imaging_posterior(op_dc, y_dc, 0.1, prior),
                "c": imaging_posterior(op_dc, y_dc, 0.1, crr),
            },
        )
    with pytest.raises(TypeError, match="FourierMaskOperator"):
        mask_constraint(object(), y, 0.1)
    with pytest.raises(ValueError, match="visibilities must have shape"):
        mask_constraint(op, jnp.zeros(3, jnp.complex64), 0.1)
    with pytest.raises(TypeError, match="WaveletSparsityPrior or a ConvexRidgePrior"):
        sample_prior(key, object(), (8, 8), 4)
    # nested-sampling settings are checked before any prior draw
    with pytest.raises(ValueError, match="num_delete must be at most num_live // 2 = 5"):
        prior_log_evidence(key, post, num_live=10, num_delete=6)
    with pytest.raises(ValueError, match="num_mcmc_steps"):
        prior_log_evidence(key, post, num_mcmc_steps=0)
    with pytest.raises(ValueError, match="remainder_fraction must lie in"):
        prior_log_evidence(key, post, remainder_fraction=1.5)
    with pytest.raises(ValueError, match="initial_step must be positive"):
        prior_log_evidence(key, post, initial_step=-1.0)


def test_gather_free_crr_matches_the_prior(key):
    prior = ConvexRidgePrior(50.0, load_convex_ridge().normalised())
    # values spanning the knots and beyond (linear continuation)
    x = 0.3 * jax.random.normal(key, (16, 16))
    value, gradient = jax.jit(crr_value_and_grad(prior))(x)
    np.testing.assert_allclose(float(value), float(prior.potential(x)), rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(gradient), np.asarray(prior.gradient(x)), rtol=1e-3, atol=1e-4 * 50
    )


@pytest.mark.usefixtures("optimized_xla")  # 200 chains x 400 steps: 9.9 -> 6.2 s
def test_preconditioned_crr_draws_match_the_gaussian_limit(key):
    """Equal spline slopes s and small images: psi_c(t) = s t^2 / 2 on the knots, so the
    prior is Gaussian with Fourier variances 1 / (strength s sum_c |h_c^(w)|^2)."""
    from astrobayes.imaging.crr import init_convex_ridge

    regulariser = init_convex_ridge(jax.random.key(7), num_channels=4, kernel_size=3)
    prior = ConvexRidgePrior(5000.0, regulariser.normalised())  # |z| << knot range
    draws = sample_prior(key, prior, (8, 8), 200, num_steps=400)
    assert draws.rhat < 1.05
    images = np.asarray(draws.images, np.float64)
    images = images - images.mean(axis=(1, 2), keepdims=True)  # the mean is drawn apart
    power = np.mean(np.abs(np.fft.fft2(images, norm="ortho")) ** 2, axis=0)
    variance = crr_fourier_preconditioner(prior, (8, 8))  # exact here (slopes all 0.5)
    nonzero = variance > 0
    ratio = np.mean(power[nonzero] / variance[nonzero])
    # |X(w)|^2 / variance ~ Exp(1) for ~31 independent complex modes, 200 draws each
    error = 1 / math.sqrt(200 * 31)
    print(f"power / analytic variance = {ratio:.4f} +- {error:.4f}")
    assert abs(ratio - 1) < 4 * error, ratio
    # negative control: against the variances of slope-1 splines (twice smaller)
    wrong = np.mean(power[nonzero] / (variance[nonzero] / 2))
    assert abs(wrong - 1) > 4 * error


def test_prior_evidence_failure_status_and_throw(key):
    """Overflowing data make every likelihood -inf: nested sampling fails, and says so."""
    op = fourier_mask_operator(_half_plane_mask(8, 0.5, 0))
    y = jnp.full(op.num_visibilities, 1e30, jnp.complex64)
    # (y / sigma)^2 overflows in the session's float type (JAX_ENABLE_X64=1: float64)
    sigma = 1e-30 if jnp.result_type(float) == jnp.float32 else 1e-200
    post = imaging_posterior(op, y, sigma, WaveletSparsityPrior(1.0, WaveletTransform(1, 1)))
    options = {"num_live": 6, "num_mcmc_steps": 2, "max_iterations": 12, "initial_step": 0.1}
    result = prior_log_evidence(key, post, **options)
    assert result.status is PriorEvidenceStatus.NESTED_FAILED
    assert result.nested.status.is_failure
    with pytest.raises(UnreliableResultError, match="NESTED_FAILED") as error:
        prior_log_evidence(key, post, throw=True, **options)
    assert error.value.result.nested is not None
    with pytest.raises(UnreliableResultError, match="NESTED_FAILED") as error:
        compare_priors(key, {"a": post, "b": post}, num_repeats=1, throw=True, **options)
    assert error.value.result.status is PriorEvidenceStatus.NESTED_FAILED  # the worst run
    assert error.value.result.names == ("a", "b")


def test_repeated_evidence_runs_reuse_the_compiled_loop_of_their_own_posterior(key, monkeypatch):
    """A posterior's nested-sampling loop is compiled once and dropped with the posterior.

    Repeats on one posterior give the same numbers (same key, bit for bit); a second
    posterior of the same shapes but other data gets its own program, whose result
    equals that of a fresh compile (a third, equal posterior object). Negative control:
    handed the first posterior's program, the second one's result differs from the fresh
    compile's.
    """
    import gc

    from astrobayes.imaging import prior_evidence

    op = fourier_mask_operator(_half_plane_mask(8, 0.5, 0))
    prior = WaveletSparsityPrior(1.0, WaveletTransform(1, 1))
    options = {"num_live": 10, "num_mcmc_steps": 2, "num_delete": 5, "initial_step": 0.05}

    def keys_of(posterior):
        return [k for k in prior_evidence._LOOP_PROGRAMS if k[0] == id(posterior)]

    image = jax.random.normal(jax.random.key(5), (8, 8))
    first = imaging_posterior(op, op(image), 0.1, prior)
    a = prior_log_evidence(key, first, **options)
    (first_key,) = keys_of(first)
    program = prior_evidence._LOOP_PROGRAMS[first_key]
    b = prior_log_evidence(key, first, **options)
    assert keys_of(first) == [first_key]
    assert prior_evidence._LOOP_PROGRAMS[first_key] is program  # reused, not rebuilt
    assert a.log_evidence == b.log_evidence
    np.testing.assert_array_equal(a.nested.dead_log_likelihoods, b.nested.dead_log_likelihoods)

    second = imaging_posterior(op, op(3.0 * image), 0.1, prior)
    c = prior_log_evidence(key, second, **options)
    (second_key,) = keys_of(second)
    fresh = prior_log_evidence(key, imaging_posterior(op, op(3.0 * image), 0.1, prior), **options)
    assert c.log_evidence == fresh.log_evidence
    assert abs(c.log_evidence - a.log_evidence) > 1.0

    # Negative control: every posterior handed the first one's program.
    with monkeypatch.context() as patch:
        patch.setattr(prior_evidence, "_loop_program", lambda *_, shared=program: shared)
        wrong = prior_log_evidence(key, second, **options)
    assert wrong.log_evidence != fresh.log_evidence

    del first, second, program
    gc.collect()
    assert first_key not in prior_evidence._LOOP_PROGRAMS
    assert second_key not in prior_evidence._LOOP_PROGRAMS
