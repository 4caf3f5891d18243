"""Tests of the halo laboratory and the interpretable encoder (issue 14, items 2-3)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig, TrainingStatus
from astrobayes.interpret import (
    FACTOR_NAMES,
    LatentMIStatus,
    MIConfig,
    ProfileVAE,
    RotationStatus,
    VAEConfig,
    active_latents,
    encode_profiles,
    gaussian_kl,
    halo_log_density,
    halo_profiles,
    ica_rotation,
    latent_factor_mi,
    latent_traversal,
    reconstruction_rms,
    splashback_radius,
    train_profile_vae,
    vae_loss,
    wechsler_concentration,
)

SMALL_MI = MIConfig(max_components=1, num_inits=1, num_bootstrap=5, num_mc_samples=500)


# ----------------------------------------------------------------------------- laboratory


def test_same_key_same_halos_and_shapes():
    a = halo_profiles(jax.random.key(3), 50)
    b = halo_profiles(jax.random.key(3), 50)
    np.testing.assert_array_equal(np.asarray(a.log_density), np.asarray(b.log_density))
    assert a.log_density.shape == (50, 32)
    assert a.factors.shape == (50, len(FACTOR_NAMES))
    factors = np.asarray(a.factors)
    assert factors[:, 0].min() >= 0.0
    assert factors[:, 0].max() <= 3 * math.log10(2.0) + 1e-6
    assert factors[:, 1].min() >= 0.2
    assert factors[:, 1].max() <= 0.5
    assert np.all(np.isfinite(np.asarray(a.log_density)))


def test_published_relations():
    # More, Diemer & Kravtsov (2015) eq. 5 and Wechsler et al. (2002) c = 4.1 a_obs / a_c
    gamma = np.array([0.0, 1.0, 4.0])
    expected = 0.54 * (1 + 0.53 * 0.3) * (1 + 1.36 * np.exp(-gamma / 3.04))
    np.testing.assert_allclose(np.asarray(splashback_radius(gamma, 0.3)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(wechsler_concentration(0.25, 0.5)), 8.2, rtol=1e-6)


def test_nfw_normalisation_encloses_200_times_the_mean_density():
    # Inner term: the mean density inside R_200m must be 200 rho_m.
    x = np.logspace(-6, 0, 20001)
    total = 10.0 ** np.asarray(halo_log_density(0.0, 7.0, 1e4, jnp.asarray(x, jnp.float32)))
    inner = total - ((x / 5.0) ** -1.5 + 1.0)  # minus the outer (infalling) term
    mean_density = np.trapezoid(3 * x**2 * inner, x)
    np.testing.assert_allclose(mean_density, 200.0, rtol=2e-3)


def test_control_removes_the_accretion_dependence_of_the_splashback_radius():
    n = 2000
    main = halo_profiles(jax.random.key(0), n)
    control = halo_profiles(jax.random.key(0), n, control=True)
    gamma = np.asarray(main.factors[:, 2])
    r_main = np.corrcoef(gamma, np.asarray(main.splashback_radius))[0, 1]
    r_control = np.corrcoef(
        np.asarray(control.factors[:, 2]), np.asarray(control.splashback_radius)
    )[0, 1]
    assert r_main < -0.8  # R_sp falls with Γ (scatter 0.03 dex)
    assert abs(r_control) < 4.0 / math.sqrt(n)  # negative control: no dependence
    # the outer profile still varies as much
    spread_main = np.std(np.asarray(main.splashback_radius))
    spread_control = np.std(np.asarray(control.splashback_radius))
    np.testing.assert_allclose(spread_control, spread_main, rtol=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_halos": 0}, "num_halos"),
        ({"formation_epoch_range": (0.5, 0.2)}, "formation_epoch_range"),
        ({"formation_epoch_range": (0.5, 1.5)}, "formation_epoch_range"),
        ({"noise": -0.1}, "noise"),
        ({"radii": jnp.array([0.0, 1.0])}, "radii"),
    ],
)
def test_laboratory_rejects_bad_input(kwargs, match):
    args = {"num_halos": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        halo_profiles(jax.random.key(0), **args)


# ----------------------------------------------------------------------------- the encoder


def test_gaussian_kl_closed_form():
    mean, variance = 0.7, 2.5
    expected = -0.5 * math.log(variance) + 0.5 * (variance + mean**2) - 0.5
    value = float(gaussian_kl(jnp.array([mean]), jnp.log(jnp.array([variance])))[0])
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_active_latents_by_kl():
    mean = jnp.array([[0.0, 1.0, 0.05], [0.0, -1.0, -0.05]])
    indices, kl = active_latents(mean, jnp.zeros((2, 3)), threshold=0.1)
    assert indices.tolist() == [1]
    np.testing.assert_allclose(kl, [0.0, 0.5, 0.00125], atol=1e-7)


def test_loss_is_gaussian_reconstruction_plus_beta_kl():
    vae = ProfileVAE(jax.random.key(0), 6, VAEConfig(num_latents=2, width=8))
    # force log-variance to its floor (-14): the latent sample equals the mean to 1e-3
    last = vae.encoder.layers[-1]
    weight = last.weight.at[2:].set(0.0)
    bias = last.bias.at[2:].set(-100.0)
    vae = eqx.tree_at(lambda m: (m.encoder.layers[-1].weight, m.encoder.layers[-1].bias),
                      vae, (weight, bias))  # fmt: skip
    profiles = jax.random.normal(jax.random.key(1), (3, 6))
    radii = jnp.linspace(-1.0, 0.5, 6)
    mean, log_var = encode_profiles(vae, profiles)
    prediction = jax.vmap(vae.decode, in_axes=(0, None))(mean, radii)
    reconstruction = jnp.sum((profiles - prediction) ** 2, axis=1) / (2 * 0.5**2)
    kl = jnp.sum(gaussian_kl(mean, log_var), axis=1)
    loss_fn = eqx.filter_jit(vae_loss)
    for beta in (1e-12, 3.0):  # traced, one compilation
        loss = loss_fn(vae, (profiles,), jax.random.key(2), log_radius=radii,
                       beta=jnp.asarray(beta), noise_scale=0.5)  # fmt: skip
        expected = float(jnp.mean(reconstruction + beta * kl)) / 6
        np.testing.assert_allclose(float(loss), expected, rtol=1e-3)
    # DIP-VAE-I term: + lambda * Cov_batch[mu_0, mu_1]^2 per profile (two latents)
    centred = np.asarray(mean) - np.asarray(mean).mean(axis=0)
    covariance = float(np.mean(centred[:, 0] * centred[:, 1]))
    # a weight that makes the term 1 per profile, far above rtol (the covariance of these
    # random weights is ~1e-3 in float32, ~3e-4 in float64)
    assert abs(covariance) > 1e-6
    weight = 1.0 / covariance**2
    loss = loss_fn(vae, (profiles,), jax.random.key(2), log_radius=radii,
                   beta=jnp.asarray(3.0), noise_scale=0.5, decorrelation=jnp.asarray(weight))  # fmt: skip
    expected = (float(jnp.mean(reconstruction + 3.0 * kl)) + weight * covariance**2) / 6
    np.testing.assert_allclose(float(loss), expected, rtol=1e-3)


def test_traversal_changes_only_with_the_swept_latent():
    vae = ProfileVAE(jax.random.key(0), 5, VAEConfig(num_latents=3, width=8))
    radii = jnp.linspace(-1.0, 0.5, 5)
    sweep = latent_traversal(vae, jnp.zeros(3), 1, jnp.array([0.0, 0.0]), radii)
    np.testing.assert_array_equal(np.asarray(sweep[0]), np.asarray(sweep[1]))
    np.testing.assert_allclose(
        np.asarray(sweep[0]), np.asarray(vae.decode(jnp.zeros(3), radii)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="latent_index"):
        latent_traversal(vae, jnp.zeros(3), 3, jnp.zeros(2), radii)


@pytest.mark.slow  # ~10 s CPU; kept out of the default budget
def test_training_reduces_the_reconstruction_error():
    halos = halo_profiles(jax.random.key(0), 256)
    config = VAEConfig(num_latents=3, width=16, beta=1.0)
    untrained = ProfileVAE(jax.random.key(5), 32, config)
    model, info = train_profile_vae(
        jax.random.key(1), halos.log_density, halos.log_radius, config=config,
        training=TrainingConfig(max_epochs=40, batch_size=64, learning_rate=3e-3),
    )  # fmt: skip
    assert info.status in (TrainingStatus.CONVERGED, TrainingStatus.MAX_EPOCHS)
    rms, _ = reconstruction_rms(model, halos.log_density, halos.log_radius)
    rms_untrained, _ = reconstruction_rms(untrained, halos.log_density, halos.log_radius)
    spread = float(np.std(np.asarray(halos.log_density), axis=0).mean())
    assert rms < 0.7 * spread < rms_untrained  # better than predicting the mean profile


def test_train_rejects_mismatched_radii():
    with pytest.raises(ValueError, match="log_radius"):
        train_profile_vae(jax.random.key(0), jnp.zeros((10, 4)), jnp.zeros(3))
    with pytest.raises(TypeError, match="VAEConfig"):
        train_profile_vae(jax.random.key(0), jnp.zeros((10, 4)), jnp.zeros(4), config={})


# ----------------------------------------------------------------------------- MI matrix


def _factors(n):
    return np.asarray(jax.random.normal(jax.random.key(10), (n, 2)))


def test_mi_matrix_matches_a_permuted_disentangled_code():
    f = _factors(300)
    noise = 0.3 * np.asarray(jax.random.normal(jax.random.key(11), (300, 2)))
    latents = np.stack([f[:, 1], -(f[:, 0] ** 3)], axis=1) + noise  # z0 ~ f1, z1 ~ f0
    result = latent_factor_mi(jax.random.key(0), latents, f, config=SMALL_MI)
    assert result.matching == (1, 0)
    assert result.off_diagonal_ratio < 0.1
    assert result.status in (LatentMIStatus.OK, LatentMIStatus.MI_WARNING)


def test_mi_matrix_flags_an_entangled_code():
    # negative control: both latents carry f0, nothing carries f1
    f = _factors(300)
    noise = 0.3 * np.asarray(jax.random.normal(jax.random.key(11), (300, 2)))
    latents = np.stack([f[:, 0], f[:, 0]], axis=1) + noise
    result = latent_factor_mi(jax.random.key(0), latents, f, config=SMALL_MI)
    assert result.off_diagonal_ratio > 1.0
    assert result.status in (LatentMIStatus.SHARED, LatentMIStatus.ENTANGLED)


def test_mi_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="at least as many latents"):
        latent_factor_mi(jax.random.key(0), np.zeros((100, 1)), np.zeros((100, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        latent_factor_mi(jax.random.key(0), np.zeros((100, 2)), np.zeros((90, 2)))


# ----------------------------------------------------------------------------- ICA rotation


def _mixed(kind, n, source_key, mixing_key=0):
    """Independent unit-variance sources and a fixed rotation + shear of them."""
    k = jax.random.key(source_key)
    if kind == "uniform":
        sources = np.asarray(jax.random.uniform(k, (n, 3), minval=-1, maxval=1)) * math.sqrt(3)
    else:
        sources = np.asarray(jax.random.normal(k, (n, 3)))
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(jax.random.key(100 + mixing_key), (3, 3))))
    return sources, sources @ (q @ np.diag([1.0, 2.0, 0.5])).T


def _cross_correlation(a, b):
    k = a.shape[1]
    return np.abs(np.corrcoef(a.T, b.T)[:k, k:])


def test_ica_recovers_independent_uniform_sources_on_held_out_data():
    # fit on one sample, apply to another of the same mixture. Tolerance: the estimation
    # error of the unmixing is O(1/sqrt(n)); measured over 40 repeats (n = 2000, 3 uniform
    # sources, random rotations): largest off-diagonal |corr| 1.3/sqrt(n) on average,
    # 2.6/sqrt(n) at most -> 5/sqrt(n)
    n = 2000
    _, train = _mixed("uniform", n, 0)
    sources, test = _mixed("uniform", n, 1)  # same mixing, new sources
    rotation = ica_rotation(jax.random.key(2), train)
    assert rotation.status is RotationStatus.OK
    np.testing.assert_allclose(rotation.kurtosis, -1.2, atol=5 * rotation.kurtosis_error)
    corr = _cross_correlation(rotation.apply(test), sources)
    tolerance = 5 / math.sqrt(n)
    assert sorted(np.argmax(corr, axis=1).tolist()) == [0, 1, 2]  # one source per component
    assert np.all(corr.max(axis=1) > 1 - tolerance)
    assert np.sort(corr, axis=1)[:, :-1].max() < tolerance
    # the raw mixture is far from the sources (the rotation did the work)
    assert np.sort(_cross_correlation(test, sources), axis=1)[:, :-1].max() > 3 * tolerance


def test_ica_cannot_identify_gaussian_sources():
    # negative control: a rotation of Gaussian sources is again Gaussian with independent
    # components, so nothing identifies the mixing; the status says so and the
    # components are not the sources
    n = 2000
    sources, mixed = _mixed("gaussian", n, 0)
    rotation = ica_rotation(jax.random.key(2), mixed)
    assert rotation.status is RotationStatus.GAUSSIAN
    corr = _cross_correlation(rotation.apply(mixed), sources)
    assert np.sort(corr, axis=1)[:, :-1].max() > 5 / math.sqrt(n)


def test_ica_rotation_disentangles_the_mi_matrix():
    # two uniform factors seen through monotone functions mixed by a 35 degree rotation:
    # the raw latents are entangled, the ICA components (fitted on a separate training
    # sample, without the factors) are not
    def sample(key, n):
        f = np.asarray(jax.random.uniform(jax.random.key(key), (n, 2)))
        angle = math.radians(35)
        mix = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        return f, np.stack([f[:, 0], f[:, 1] ** 1.5], axis=1) @ mix.T

    _, train = sample(20, 1000)
    f, held_out = sample(21, 300)
    raw = latent_factor_mi(jax.random.key(0), held_out, f, config=SMALL_MI)
    rotation = ica_rotation(jax.random.key(1), train)
    assert rotation.status is RotationStatus.OK
    rotated = latent_factor_mi(jax.random.key(0), rotation.apply(held_out), f, config=SMALL_MI)
    assert raw.off_diagonal_ratio > 0.3
    assert rotated.off_diagonal_ratio < 0.1
    assert len(set(rotated.matching)) == 2


def test_ica_rotation_rejects_bad_input():
    with pytest.raises(ValueError, match="more rows"):
        ica_rotation(jax.random.key(0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="tolerance"):
        ica_rotation(jax.random.key(0), np.zeros((10, 2)), tolerance=0.0)
    rotation = ica_rotation(jax.random.key(0), _mixed("uniform", 200, 0)[1])
    with pytest.raises(ValueError, match="3 columns"):
        rotation.apply(np.zeros((5, 2)))


# ----------------------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_ive_finds_three_latents_and_the_control_loses_accretion(global_x32):
    """The measured run of ``scripts/interpret_train_ive.py`` at β = 4 (~3 CPU-minutes).

    Same keys as the script (seed 0, β = 4 is entry 2 of its sweep). Raw β-VAE latents:
    three active latents, the normalisation latent disentangled (its off-diagonal MI below
    10% of its diagonal), while the two shape latents are a rotated basis (0.24 on the
    test set, not asserted). β-VAE + ICA (rotation fitted on the training latents): the
    issue-14 criterion, every off-diagonal MI below 10% of the smallest diagonal, within
    3 bootstrap σ (measured 0.005 ± 0.003 on the test set; 0.002-0.007 on the selection
    set for four training seeds). Control: no latent, raw or rotated, informative about Γ.
    With the training loop's validation on fixed draws (2026-12-06, stop 50) the script's
    seeds 0-3 give 3 active latents and 0.003-0.020 on the test set (docs/interpret.md);
    with draws renewed every epoch this test failed under the optimised programs on one
    machine (a fourth latent at KL 0.119, stop 49).
    """
    keys = jax.random.split(jax.random.key(0), 10)
    training = TrainingConfig(learning_rate=2e-3, batch_size=128, max_epochs=300, patience=20,
                              schedule="cosine")  # fmt: skip
    config = VAEConfig(num_latents=5, width=32, depth=2, beta=4.0, noise_scale=0.02)
    results, rotated = {}, {}
    for control, data_key, train_key, mi_key in (
        (False, keys[0], jax.random.fold_in(keys[1], 2), keys[3]),
        (True, keys[4], keys[5], keys[6]),
    ):
        halos = halo_profiles(data_key, 4000, control=control)
        model, _ = train_profile_vae(train_key, halos.log_density[:2000], halos.log_radius,
                                     config=config, training=training)  # fmt: skip
        mean, log_var = encode_profiles(model, halos.log_density[3000:])
        active, _ = active_latents(mean, log_var, 0.1)
        latents = np.asarray(mean)[:, active]
        results[control] = latent_factor_mi(mi_key, latents, halos.factors[3000:])
        train_mean, _ = encode_profiles(model, halos.log_density[:2000])
        rotation = ica_rotation(jax.random.fold_in(mi_key, 2), np.asarray(train_mean)[:, active])
        assert rotation.status is RotationStatus.OK
        rotated[control] = latent_factor_mi(
            jax.random.fold_in(mi_key, 1), rotation.apply(latents), halos.factors[3000:]
        )
    main, control = results[False], results[True]
    assert main.estimate.shape[0] == 3  # three active latents, no more
    assert len(set(main.matching)) == 3  # one latent per factor
    norm_row = main.matching[0]
    assert np.all(np.delete(main.estimate[norm_row], 0) < 0.1 * main.diagonal[0])
    assert np.all(np.delete(main.estimate[:, 0], norm_row) < 0.1 * main.diagonal[0])
    # β-VAE + ICA: the criterion, with 3 bootstrap σ of margin
    ica = rotated[False]
    assert len(set(ica.matching)) == 3
    assert ica.off_diagonal_ratio + 3 * ica.off_diagonal_ratio_error < 0.1
    # control: no latent is informative about Γ (within 3 bootstrap σ + 0.01 nats)
    for result in (control, rotated[True]):
        gamma_mi, gamma_error = result.estimate[:, 2], result.error[:, 2]
        assert np.all(gamma_mi < 3 * gamma_error + 0.01)
        assert main.diagonal[2] > 10 * np.max(gamma_mi)
