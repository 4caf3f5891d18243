"""Conventions behind the MeerKAT table (issue 16 item 5): noise definition, uv axes, scale.

The QuantifAI study (Liaudat et al. 2024, arXiv:2312.00125) splits the complex noise
level ``10^(-ISNR/20) ||y|| / sqrt(M)`` between the real and imaginary parts, passes the
file's ``(uu, vv)`` to torchkbnufft with ``uu`` on the first image axis, and uses a
normalised (``ortho``, oversampled) NUFFT. These tests pin the option and the conventions
the benchmark ``benchmarks/imaging_meerkat_table.py`` relies on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.map import map_estimate
from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import add_complex_noise, noise_sigma_from_isnr
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.imaging.priors import WaveletSparsityPrior
from astrobayes.imaging.wavelets import WaveletTransform


def _measured_isnr_db(split_complex: bool, num: int = 20_000, repeats: int = 4) -> np.ndarray:
    rng = np.random.default_rng(3)
    clean = jnp.asarray(rng.normal(size=num) + 1j * rng.normal(size=num), jnp.complex64)
    sigma = noise_sigma_from_isnr(clean, 30.0, split_complex=split_complex)
    values = []
    for seed in range(repeats):
        noise = add_complex_noise(jax.random.key(seed), clean, sigma) - clean
        values.append(10 * np.log10(np.sum(np.abs(clean) ** 2) / np.sum(np.abs(noise) ** 2)))
    return np.asarray(values)


def test_split_complex_noise_gives_the_isnr_and_the_default_is_3db_lower():
    num = 20_000
    # ||n||^2 / E||n||^2 ~ chi2(2M) / 2M: relative sd 1 / sqrt(M), i.e. 4.343 / sqrt(M) dB
    sd_db = 10 / np.log(10) / np.sqrt(num)
    split = _measured_isnr_db(True, num)
    assert np.all(np.abs(split - 30.0) < 5 * sd_db), split
    # negative control: the default puts the level on each part (twice the noise power)
    default = _measured_isnr_db(False, num)
    assert np.all(np.abs(default - (30.0 - 10 * np.log10(2.0))) < 5 * sd_db), default
    assert np.all(np.abs(default - 30.0) > 50 * sd_db)


def test_split_complex_is_the_default_over_sqrt2():
    y = jnp.asarray([1.0 + 2.0j, -0.5j, 3.0], jnp.complex64)
    assert noise_sigma_from_isnr(y, 25.0, split_complex=True) == pytest.approx(
        noise_sigma_from_isnr(y, 25.0) / np.sqrt(2.0), rel=1e-12
    )


def test_swapped_points_put_the_first_coordinate_on_the_rows():
    """``points[:, ::-1]`` is the study's operator: ``sum x[n] exp(-i (w0 n0' + w1 n1'))``.

    ``w0`` (the file's ``uu``) multiplies the row index and ``w1`` the column index,
    ``n' = n - N // 2``; the study's torchkbnufft operator is this up to a constant
    factor (its ``ortho`` normalisation on the oversampled grid).
    """
    rng = np.random.default_rng(0)
    height, width = 8, 12
    image = rng.random((height, width))
    points = rng.uniform(-np.pi, np.pi, size=(40, 2))
    rows = np.arange(height)[:, None] - height // 2
    cols = np.arange(width)[None, :] - width // 2
    dense = np.array([np.sum(image * np.exp(-1j * (w0 * rows + w1 * cols))) for w0, w1 in points])
    study = nufft_operator_from_pixel_phases(points[:, ::-1], image_shape=(height, width))
    np.testing.assert_allclose(np.asarray(study(jnp.asarray(image))), dense, rtol=1e-4, atol=1e-4)
    # negative control: without the swap the first coordinate lands on the columns
    ours = nufft_operator_from_pixel_phases(points, image_shape=(height, width))
    assert np.max(np.abs(np.asarray(ours(jnp.asarray(image))) - dense)) > 0.1 * np.max(
        np.abs(dense)
    )


def test_map_does_not_depend_on_the_operator_normalisation():
    """A NUFFT scaled by ``c`` (e.g. an ``ortho`` FFT on an oversampled grid) gives the same MAP.

    With the noise level defined relative to ``||Phi x||`` (ISNR), ``(c Phi, c y, c sigma)``
    is the same posterior as ``(Phi, y, sigma)``; only a mismatched sigma changes it.
    """
    rng = np.random.default_rng(1)
    shape = (16, 16)
    truth = np.zeros(shape)
    truth[5:9, 6:11] = 1.0
    truth[11, 3] = 2.0
    points = rng.uniform(-np.pi, np.pi, size=(150, 2))
    prior = WaveletSparsityPrior(3.0, WaveletTransform(1, 1))

    def solve(scale: float, sigma_scale: float):
        weights = np.full(points.shape[0], scale**2)
        op = nufft_operator_from_pixel_phases(points, image_shape=shape, weights=weights)
        clean = op(jnp.asarray(truth, jnp.float32))
        sigma = noise_sigma_from_isnr(clean, 20.0, split_complex=True)
        data = add_complex_noise(jax.random.key(0), clean, sigma)
        post = imaging_posterior(op, data, sigma * sigma_scale, prior)
        return np.asarray(map_estimate(post, max_iterations=3000, tolerance=1e-7).image)

    reference = solve(1.0, 1.0)
    scaled = solve(1.0 / 512.0, 1.0)
    spread = np.linalg.norm(reference)
    assert np.linalg.norm(scaled - reference) < 1e-3 * spread
    # negative control: the same scaled operator with a sigma 4x too large is a different MAP
    wrong = solve(1.0 / 512.0, 4.0)
    assert np.linalg.norm(wrong - reference) > 1e-2 * spread


def test_shared_meerkat_tracks_are_phases_per_pixel(shared_data):
    from astrobayes.io.imaging_files import read_uv_points

    for hours, count in ((1, 30_240), (2, 60_480), (4, 120_960)):
        points = read_uv_points(
            shared_data / "imaging" / "meerkat_uv" / f"meerkat_simulation_{hours}h_uv_only.npz"
        )
        assert points.shape == (count, 2)
        # each axis rescaled to [-pi, pi] by the study (phases per pixel)
        np.testing.assert_allclose(np.max(np.abs(points), axis=0), np.pi, rtol=1e-6)
