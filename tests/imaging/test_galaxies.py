"""GalSim parametric galaxies for the data-driven galaxy prior (issue 12)."""

import sys

import jax
import numpy as np
import pytest

from astrobayes.imaging.galaxies import GalaxySettings, galaxy_images, galaxy_parameters

pytest.importorskip("galsim")

SMALL = GalaxySettings(size=16, disk_radius=(1.0, 3.0), max_offset=1.0)


def test_images_are_peak_normalised_non_negative_and_reproducible():
    key = jax.random.key(3)
    images = galaxy_images(key, 4, SMALL)
    assert images.shape == (4, 16, 16)
    assert images.dtype == np.float32
    assert np.all(images >= 0)
    np.testing.assert_allclose(images.max(axis=(1, 2)), 1.0)
    np.testing.assert_array_equal(images, galaxy_images(key, 4, SMALL))
    other = galaxy_images(jax.random.fold_in(key, 1), 4, SMALL)
    assert np.min(np.abs(images - other).max(axis=(1, 2))) > 1e-2


def test_light_is_centred_within_the_offset_and_flux_mostly_inside_the_stamp():
    images = galaxy_images(jax.random.key(0), 6, SMALL)
    rows, cols = np.mgrid[0:16, 0:16]
    for image in images:
        flux = image.sum()
        centre = np.array([(rows * image).sum(), (cols * image).sum()]) / flux
        # GalSim puts the profile centre at the stamp centre (8, 8) - 0.5 for even sides
        assert np.all(np.abs(centre - 7.5) <= SMALL.max_offset + 0.6)
        # the border rows and columns hold a small share of the light
        border = flux - image[2:-2, 2:-2].sum()
        assert border < 0.2 * flux


def test_parameters_stay_in_their_ranges():
    params = galaxy_parameters(jax.random.key(1), 500, GalaxySettings())
    s = GalaxySettings()
    radius = np.asarray(params["disk_radius"])
    assert s.disk_radius[0] <= radius.min()
    assert radius.max() <= s.disk_radius[1]
    ratio = np.asarray(params["bulge_radius"]) / radius
    assert s.bulge_ratio[0] <= ratio.min() + 1e-6
    assert ratio.max() <= s.bulge_ratio[1] + 1e-6
    assert np.asarray(params["disk_g"]).max() < s.disk_shear
    assert np.abs(np.asarray(params["offset_x"])).max() <= s.max_offset
    fwhm = np.asarray(params["psf_fwhm"])
    assert s.psf_fwhm[0] <= fwhm.min()
    assert fwhm.max() <= s.psf_fwhm[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 4}, "size"),
        ({"disk_radius": (3.0, 1.0)}, "disk_radius"),
        ({"bulge_fraction": (0.0, 1.5)}, "bulge_fraction"),
        ({"disk_shear": 1.0}, "disk_shear"),
        ({"max_offset": -1.0}, "max_offset"),
        ({"psf_fwhm": 2.0}, "psf_fwhm"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GalaxySettings(**kwargs)


def test_bad_arguments():
    with pytest.raises(TypeError, match="num"):
        galaxy_images(jax.random.key(0), 2.5, SMALL)
    with pytest.raises(TypeError, match="settings"):
        galaxy_parameters(jax.random.key(0), 2, {"size": 16})


def test_missing_galsim_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "galsim", None)
    with pytest.raises(ImportError, match="pip install"):
        galaxy_images(jax.random.key(0), 1, SMALL)
