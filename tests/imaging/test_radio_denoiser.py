"""The shipped radio denoiser (``scripts/train_denoiser.py --radio``) against its record."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.mark.slow
def test_shipped_radio_denoiser_reproduces_its_held_out_record(global_x32):
    """Held-out simulated skies (test key stream) give the recorded SNRs, above the galaxy's."""
    from astrobayes.imaging.map import snr_db
    from astrobayes.imaging.skies import random_sky
    from astrobayes.io.denoiser_files import load_shipped_denoiser

    denoiser, record = load_shipped_denoiser("radio")
    data = record["data"]
    assert data["real_images_used"].startswith("none")
    size, patch = data["sky_size"], data["patch"]
    base = jax.random.fold_in(jax.random.key(data["seed"]), data["test_stream"])
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(data["num_test_skies"]))
    skies = np.asarray(jax.vmap(lambda k: random_sky(k, (size, size)))(keys), np.float32)
    low = skies.min(axis=(1, 2), keepdims=True)
    skies = (skies - low) / (skies.max(axis=(1, 2), keepdims=True) - low)
    n = size // patch
    test = skies.reshape(-1, n, patch, n, patch).transpose(0, 1, 3, 2, 4).reshape(-1, patch, patch)
    assert test.shape[0] == record["num_test"]
    keep = np.linalg.norm(test, axis=(1, 2)) > 0
    for i, (sigma, row) in enumerate(record["held_out_test"].items()):
        sigma = float(sigma)
        noise_key = jax.random.fold_in(jax.random.key(record["seed"] + 7), i)
        noisy = test + sigma * np.asarray(jax.random.normal(noise_key, test.shape), np.float32)
        denoised = np.asarray(denoiser(jnp.asarray(noisy), sigma))
        snr = np.mean([snr_db(t, d) for t, d in zip(test[keep], denoised[keep], strict=True)])
        assert snr == pytest.approx(row["denoised_snr_db"], abs=0.02)
        # the galaxy denoiser on the same noisy skies is worse (why the radio one ships)
        assert record["held_out_test_galaxy_denoiser"][str(sigma)]["denoised_snr_db"] < snr
        # negative control: the noisy images are far worse
        assert row["noisy_snr_db"] < snr - 3.0
