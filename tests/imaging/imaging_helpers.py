"""Small synthetic imaging problems shared by the imaging tests (no fixtures)."""

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.imaging.operators import (
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)


def small_problem(key, size=32, isnr=20.0, fraction=0.4, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), np.float32)
    truth[size // 4 : size // 2 + 4, size // 3 : size // 2] = 1.0
    truth[3 * size // 4 - 2 : 3 * size // 4 + 2, size // 2 : size - 2] = 0.5
    mask = rng.random((size, size)) < fraction
    mask[0, 0] = True
    op = fourier_mask_operator(mask)
    clean = op(jnp.asarray(truth))
    sigma = noise_sigma_from_isnr(clean, isnr)
    data = add_complex_noise(key, clean, sigma)
    return truth, op, data, sigma


def load_m31(shared_data):
    from astrobayes.io.imaging_files import (
        prepare_protocol_image,
        read_fits_image,
        read_fourier_mask,
    )

    folder = shared_data / "imaging"
    image = prepare_protocol_image(read_fits_image(folder / "images" / "M31.fits"))
    mask = read_fourier_mask(folder / "masks" / "M31_fourier_mask.mat", shape=image.shape)
    return image, mask


__all__ = ["jax", "load_m31", "small_problem"]
