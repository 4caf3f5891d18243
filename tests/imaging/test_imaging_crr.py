import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.crr import (
    ConvexRidgePrior,
    init_convex_ridge,
    power_iteration_lipschitz,
    regulariser_from_arrays,
)
from astrobayes.io.imaging_files import read_convex_ridge, write_convex_ridge


def _random_regulariser(seed=0, channels=4):
    model = init_convex_ridge(
        jax.random.key(seed), num_channels=channels, kernel_size=5, num_knots=21
    )
    slopes = jax.random.uniform(
        jax.random.key(seed + 1), model.raw_slopes.shape, minval=-0.5, maxval=1.5
    )
    return eqx.tree_at(lambda m: m.raw_slopes, model, slopes)


def test_convexity_along_random_lines():
    prior = ConvexRidgePrior(3.0, _random_regulariser())
    along = jax.jit(
        jax.vmap(lambda t, a, b: prior.potential((1 - t) * a + t * b), in_axes=(0, None, None))
    )
    for k in range(4):
        a = 0.2 * jax.random.normal(jax.random.key(10 + k), (16, 16))
        b = 0.2 * jax.random.normal(jax.random.key(20 + k), (16, 16))
        values = along(jnp.linspace(0.0, 1.0, 21), a, b)
        second_differences = values[2:] - 2 * values[1:-1] + values[:-2]
        assert float(jnp.min(second_differences)) >= -1e-5 * float(jnp.max(jnp.abs(values)))


def test_activation_monotone_through_origin_and_kernels_zero_mean():
    model = _random_regulariser()
    t = jnp.linspace(-0.5, 0.5, 201)[:, None] * jnp.ones((1, model.num_channels))
    sigma = model.activation(t)
    assert float(jnp.min(jnp.diff(sigma, axis=0))) >= -1e-7
    np.testing.assert_allclose(model.activation(jnp.zeros((1, model.num_channels))), 0.0, atol=1e-7)
    np.testing.assert_allclose(jnp.sum(model.kernels(), axis=(1, 2)), 0.0, atol=1e-6)
    # no bias: R(0) = 0 and grad R(0) = 0
    prior = ConvexRidgePrior(1.0, model)
    np.testing.assert_allclose(prior.gradient(jnp.zeros((8, 8))), 0.0, atol=1e-7)


def test_gradient_matches_autodiff_and_adjoint():
    model = _random_regulariser()
    prior = ConvexRidgePrior(2.0, model)
    x = 0.1 * jax.random.normal(jax.random.key(3), (12, 16))
    np.testing.assert_allclose(
        jax.jit(lambda v: prior.gradient(v))(x),
        jax.jit(jax.grad(lambda v: prior.potential(v)))(x),
        atol=1e-6,
    )
    z = jax.random.normal(jax.random.key(4), (12, 16, model.num_channels))
    lhs = jnp.sum(model.convolve(x) * z)
    rhs = jnp.sum(x * model.convolve_transpose(z))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_lipschitz_bound_by_power_iteration():
    model = _random_regulariser()
    norm_squared = power_iteration_lipschitz(model, (32, 32))
    assert norm_squared <= 1.0 + 1e-4  # kernels are normalised to ||W|| = 1 (on a 128 grid)
    prior = ConvexRidgePrior(2.0, model)
    assert prior.lipschitz >= 2.0 * norm_squared * float(jnp.max(model.slopes()))
    # empirical Lipschitz ratio never exceeds the bound
    for k in range(3):
        a = jax.random.normal(jax.random.key(30 + k), (32, 32)) * 0.05
        b = a + 1e-2 * jax.random.normal(jax.random.key(40 + k), (32, 32))
        ratio = jnp.linalg.norm(prior.gradient(a) - prior.gradient(b)) / jnp.linalg.norm(a - b)
        assert float(ratio) <= prior.lipschitz


def test_coefficient_potential_at_matches_dense_and_shift_indices():
    model = _random_regulariser()
    prior = ConvexRidgePrior(1.5, model)
    x = 0.1 * jax.random.normal(jax.random.key(5), (8, 8))
    z = prior.analysis(x)
    flat = jnp.arange(z.size)
    np.testing.assert_allclose(
        prior.coefficient_potential(z).reshape(-1),
        prior.coefficient_potential_at(z.reshape(-1), flat),
        atol=1e-6,
    )
    shifted = prior.analysis(jnp.roll(x, (2, 3), axis=(0, 1))).reshape(-1)
    index = prior.shift_indices(np.arange(z.size), (8, 8), 2, 3)
    np.testing.assert_allclose(shifted[index], z.reshape(-1), atol=1e-6)


def test_save_load_roundtrip_and_shipped_weights(tmp_path):
    model = _random_regulariser()
    path = write_convex_ridge(tmp_path / "crr.npz", model, sigma_train=0.03)
    loaded = read_convex_ridge(path)
    np.testing.assert_allclose(loaded.regulariser.kernels(), model.kernels(), atol=1e-6)
    assert loaded.sigma_train == pytest.approx(0.03)
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temporary left
    shipped = read_convex_ridge()
    assert shipped.regulariser.num_channels >= 1
    with np.load(path, allow_pickle=False) as content:
        assert "meta_sigma_train" in content
        arrays = {name: content[name] for name in content.files if name != "log_mu"}
    with pytest.raises(ValueError, match="missing entry 'log_mu'"):
        regulariser_from_arrays(arrays)
    with pytest.raises(FileNotFoundError, match="CRR weights not found"):
        read_convex_ridge(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="strength must be positive"):
        ConvexRidgePrior(0.0, model)


def test_lci_with_crr_prior_lies_on_hpd_boundary(key):
    from imaging_helpers import small_problem

    from astrobayes.imaging.intervals import local_credible_intervals
    from astrobayes.imaging.map import map_estimate
    from astrobayes.imaging.posterior import imaging_posterior
    from astrobayes.imaging.uq import hpd_threshold

    truth, op, data, sigma = small_problem(key, size=16)
    prior = ConvexRidgePrior(50.0, _random_regulariser().normalised())
    post = imaging_posterior(op, data, sigma, prior, positivity=True)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.05)
    lci = local_credible_intervals(post, result.image, hpd, 4)
    assert lci.num_unbounded == 0
    for i, j in [(0, 0), (2, 3)]:
        block = np.zeros(truth.shape, np.float32)
        block[4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = 1
        up = float(lci.upper[i, j] - lci.map_mean[i, j])
        value = float(post.potential(result.image + up * block)) - result.potential
        np.testing.assert_allclose(value, hpd.increment, rtol=2e-3)


def test_geometric_strength_is_the_mean_of_trained_and_discrepancy(key):
    """The ``geometric`` rule sits at sqrt(trained x discrepancy) (and nowhere else)."""
    from imaging_helpers import small_problem

    from astrobayes.imaging.pipeline import ImagingConfig, initial_strength, run_imaging

    truth, op, data, sigma = small_problem(key, size=16)
    crr = read_convex_ridge()
    config = ImagingConfig(
        prior="crr", strength_rule="geometric", superpixel_sizes=(), max_iterations=500
    )
    result = run_imaging(config, op, data, sigma, truth=truth, crr=crr)
    trained = initial_strength(config, op, data, crr=crr)
    discrepancy = result.strength_result.strength
    assert result.strength_rule == "geometric"
    np.testing.assert_allclose(result.strength, np.sqrt(trained * discrepancy), rtol=1e-6)
    # negative control: the two rules it combines give other strengths
    assert abs(np.log(result.strength / trained)) > 1e-3
    assert abs(np.log(result.strength / discrepancy)) > 1e-3
