"""Learned denoisers and the Tweedie score (issue 12 item 1)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes._training import TrainingConfig, TrainingStatus
from astrobayes.imaging.denoisers import (
    DenoiserSettings,
    DenoiseStatus,
    denoise,
    denoising_score_matching_loss,
    init_denoiser,
    score_function,
    train_denoiser,
    tweedie_score,
)
from astrobayes.io.denoiser_files import load_denoiser, save_denoiser

TINY = DenoiserSettings("dncnn", width=4, depth=2, sigma_min=0.05, sigma_max=0.2)


@pytest.fixture(scope="module")
def tiny():
    return init_denoiser(jax.random.key(0), TINY)


def _zero_network(denoiser):
    """The same denoiser with every weight zero: ``D_sigma(z) = z``."""
    return jax.tree_util.tree_map(
        lambda a: jnp.zeros_like(a) if eqx.is_inexact_array(a) else a, denoiser
    )


def test_score_is_tweedie_of_the_denoiser_for_single_images_and_batches(tiny):
    images = jax.random.normal(jax.random.key(1), (3, 8, 8))
    sigma = 0.1
    expected = (tiny(images, sigma) - images) / sigma**2
    np.testing.assert_allclose(tweedie_score(tiny, images, sigma), expected, rtol=1e-5, atol=1e-5)
    score = eqx.filter_jit(score_function(tiny, sigma))
    np.testing.assert_allclose(score(images), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(score(images[1]), expected[1], rtol=1e-5, atol=1e-4)
    # per-image noise levels in a batch equal one-at-a-time calls
    sigmas = jnp.array([0.05, 0.1, 0.2])
    batch = tiny(images, sigmas)
    np.testing.assert_allclose(batch[2], tiny(images[2], 0.2), atol=1e-5)


def test_float64_images_run_through_the_float32_network(tiny, global_x64):
    """Under ``jax_enable_x64`` a float64 image gives a float64 output equal to the float32
    image's to float32 rounding (the network runs in its weights' dtype); negative
    control: a float32 network fed float64 straight into its convolution raises."""
    tiny = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tiny)
    image = np.asarray(jax.random.normal(jax.random.key(1), (8, 8)), np.float32)
    out64 = tiny(jnp.asarray(image, jnp.float64), 0.1)
    out32 = tiny(jnp.asarray(image, jnp.float32), 0.1)
    assert out64.dtype == jnp.float64
    assert out32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out64), np.asarray(out32), rtol=1e-6, atol=1e-6)
    image64 = jnp.asarray(image, jnp.float64)
    channels = jnp.stack([image64] * (2 if tiny.settings.noise_input else 1))
    with pytest.raises(TypeError, match="same dtypes"):
        tiny.network(channels)


def test_loss_of_the_identity_denoiser_is_one_within_monte_carlo_error(tiny):
    identity = _zero_network(tiny)
    images = jnp.zeros((64, 8, 8))
    loss_fn = eqx.filter_jit(denoising_score_matching_loss)
    loss = float(loss_fn(identity, (images,), jax.random.key(2)))
    # mean of n^2 over 4096 standard normals: sd sqrt(2 / 4096)
    assert abs(loss - 1.0) < 4 * np.sqrt(2 / images.size)


@pytest.fixture(scope="module")
def gaussian_denoiser():
    """A bias-free DnCNN trained at one noise level on iid Gaussian pixels N(0, tau^2)."""
    tau, sigma = 0.5, 0.3
    settings = DenoiserSettings(
        "dncnn", width=8, depth=2, use_bias=False, sigma_min=sigma, sigma_max=sigma
    )
    images = tau * jax.random.normal(jax.random.key(3), (600, 8, 8))
    denoiser = init_denoiser(jax.random.key(4), settings)
    config = TrainingConfig(learning_rate=1e-2, batch_size=50, max_epochs=40, patience=40)
    trained, info = train_denoiser(
        jax.random.key(5), denoiser, images[:500], images[500:], config=config
    )
    return trained, denoiser, info, tau, sigma


@pytest.mark.slow  # trains a small network for 400 steps (~15-25 s here)
def test_trained_denoiser_reaches_the_bayes_risk_and_the_analytic_score(gaussian_denoiser):
    """Gaussian prior: D(z) = tau^2 z / (tau^2 + sigma^2), score -z / (tau^2 + sigma^2)."""
    trained, untrained, info, tau, sigma = gaussian_denoiser
    assert info.status is not TrainingStatus.NON_FINITE
    clean = tau * jax.random.normal(jax.random.key(6), (300, 8, 8))
    noisy = clean + sigma * jax.random.normal(jax.random.key(7), clean.shape)
    bayes = tau**2 * sigma**2 / (tau**2 + sigma**2)
    mse = float(jnp.mean((trained(noisy, sigma) - clean) ** 2))
    # Monte Carlo error of the MSE over 19200 pixels is ~1%; the tolerance is the
    # network's approximation error (zero padding at the borders costs ~1-2%)
    assert mse < 1.08 * bayes
    exact = -noisy / (tau**2 + sigma**2)
    error = jnp.linalg.norm(tweedie_score(trained, noisy, sigma) - exact) / jnp.linalg.norm(exact)
    assert float(error) < 0.15
    # negative control: the untrained network is far from both
    assert float(jnp.mean((untrained(noisy, sigma) - clean) ** 2)) > 1.2 * bayes
    bad = jnp.linalg.norm(tweedie_score(untrained, noisy, sigma) - exact) / jnp.linalg.norm(exact)
    assert float(bad) > 0.3


def test_denoise_status_flags_non_finite_and_out_of_range(tiny):
    image = jnp.ones((8, 8))
    assert denoise(tiny, image, 0.1).status is DenoiseStatus.OK
    assert denoise(tiny, image, 0.5).status is DenoiseStatus.OUT_OF_RANGE
    bad = image.at[2, 3].set(jnp.nan)
    result = denoise(tiny, bad, 0.1)
    assert result.status is DenoiseStatus.NON_FINITE
    assert result.num_non_finite > 0
    with pytest.raises(UnreliableResultError):
        denoise(tiny, bad, 0.1, throw=True)
    assert not bool(jnp.all(jnp.isfinite(score_function(tiny, 0.1)(bad))))


def test_bad_inputs_name_the_argument(tiny):
    unet = init_denoiser(jax.random.key(1), DenoiserSettings(widths=(4, 8, 8)))
    with pytest.raises(ValueError, match="multiples of 4"):
        unet(jnp.zeros((6, 8)), 0.1)
    with pytest.raises(ValueError, match="image must be"):
        tiny(jnp.zeros(8), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        tiny(jnp.zeros((8, 8)), 0.0)
    with pytest.raises(ValueError, match="sigma"):
        tiny(jnp.zeros((8, 8)), jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="sigma"):
        score_function(tiny, float("nan"))
    with pytest.raises(TypeError, match="denoiser"):
        score_function(lambda x, s: x, 0.1)
    with pytest.raises(ValueError, match="train_images"):
        train_denoiser(jax.random.key(0), tiny, jnp.zeros((4, 8)), jnp.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="validation_images must be finite"):
        train_denoiser(jax.random.key(0), tiny, jnp.zeros((4, 8, 8)), jnp.full((2, 8, 8), jnp.nan))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"architecture": "resnet"}, "architecture"),
        ({"widths": ()}, "widths"),
        ({"depth": 1}, "depth"),
        ({"sigma_min": 0.0}, "sigma_min"),
        ({"sigma_min": 0.5, "sigma_max": 0.1}, "sigma_min must be <="),
        ({"use_bias": 1}, "use_bias"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DenoiserSettings(**kwargs)


def test_files_round_trip_and_reject_mismatched_weights(tiny, tmp_path):
    path = save_denoiser(tmp_path / "d.eqx", tiny)
    loaded = load_denoiser(path)
    image = jax.random.normal(jax.random.key(9), (8, 8))
    np.testing.assert_array_equal(loaded(image, 0.1), tiny(image, 0.1))
    # a header whose architecture does not match the payload
    header, payload = path.read_bytes().split(b"\n", 1)
    table = json.loads(header)
    table["settings"]["width"] = 8
    wrong = tmp_path / "wrong.eqx"
    wrong.write_bytes(json.dumps(table).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="do not match the architecture"):
        load_denoiser(wrong)
    truncated = tmp_path / "truncated.eqx"
    truncated.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="do not match"):
        load_denoiser(truncated)
    table["settings"]["frobnicate"] = 1
    unknown = tmp_path / "unknown.eqx"
    unknown.write_bytes(json.dumps(table).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="frobnicate"):
        load_denoiser(unknown)
    (tmp_path / "text.eqx").write_text("hello\n")
    with pytest.raises(ValueError, match="not a denoiser file"):
        load_denoiser(tmp_path / "text.eqx")
    with pytest.raises(FileNotFoundError):
        load_denoiser(tmp_path / "missing.eqx")


@pytest.mark.slow
def test_shipped_galaxy_denoiser_reproduces_its_held_out_record(global_x32):
    """The shipped weights give the held-out SNRs recorded by scripts/train_denoiser.py."""
    pytest.importorskip("galsim")
    from astrobayes.imaging.galaxies import GalaxySettings, galaxy_images
    from astrobayes.imaging.map import snr_db
    from astrobayes.io.denoiser_files import load_shipped_denoiser

    denoiser, record = load_shipped_denoiser("galaxy")
    data = record["data"]
    settings = GalaxySettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in data["settings"].items()}
    )
    key = jax.random.fold_in(jax.random.key(data["seed"]), data["test_stream"])
    test = galaxy_images(key, record["num_test"], settings)
    for i, (sigma, row) in enumerate(record["held_out_test"].items()):
        sigma = float(sigma)
        noise_key = jax.random.fold_in(jax.random.key(record["seed"] + 7), i)
        noisy = test + sigma * np.asarray(jax.random.normal(noise_key, test.shape), np.float32)
        denoised = np.asarray(denoiser(jnp.asarray(noisy), sigma))
        snr = np.mean([snr_db(t, d) for t, d in zip(test, denoised, strict=True)])
        assert snr == pytest.approx(row["denoised_snr_db"], abs=0.02)
        # negative control: the noisy images are far worse
        assert row["noisy_snr_db"] < snr - 5.0
