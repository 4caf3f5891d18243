import json
from pathlib import Path

import numpy as np
import pytest

from astrobayes.cli.image import load_config, read_problem
from astrobayes.cli.main import main
from astrobayes.imaging.pipeline import ImagingConfig
from astrobayes.imaging.problem import ImagingDataConfig


def _strict_json(text):
    """Parse JSON refusing NaN / Infinity literals (a strict parser's view)."""

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


FAST_CONFIG = """
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0

[prior]
kind = "wavelets"
wavelet_order = 4
wavelet_levels = 2
strength = 40.0
positivity = false

[uq]
alpha = 0.05
superpixel_sizes = [16]
test_regions = [[28, 36, 28, 36]]
"""


def test_cli_runs_config_and_writes_outputs(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(FAST_CONFIG)
    out = tmp_path / "out"
    assert main(["image", str(config), "--out", str(out)]) == 0
    results = _strict_json((out / "results.json").read_text())
    for key in ("snr_db", "gamma_alpha", "map_potential", "timings", "provenance"):
        assert key in results
    assert results["status"] == "converged"
    assert results["map_status_message"].startswith("converged")
    assert results["snr_db"] > 10
    assert results["lci"][0]["num_unbounded"] == 0
    for name in (
        "map.fits",
        "dirty.fits",
        "reconstruction.png",
        "lci_16x16.png",
        "hypothesis_test_0.png",
    ):
        assert (out / name).is_file()
    from astrobayes.io.imaging_files import read_fits_image

    assert read_fits_image(out / "map.fits").shape == (64, 64)


def test_cli_errors_are_reported_with_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(FAST_CONFIG.replace('kind = "wavelets"', 'kind = "tv"'))
    assert main(["image", str(bad)]) == 2
    assert "unknown prior 'tv'" in capsys.readouterr().err
    assert main(["image", str(tmp_path / "missing.toml")]) == 2


def test_config_validation():
    with pytest.raises(ValueError, match=r"unknown key 'positivty' in \[prior\]"):
        load_config(FAST_CONFIG.replace("positivity = false", "positivty = false"), Path.cwd())
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config("[data", Path.cwd())
    with pytest.raises(ValueError, match="unknown prior"):
        ImagingConfig(prior="tv")
    with pytest.raises(ValueError, match="'trained' applies to the learned prior"):
        ImagingConfig(prior="wavelets", strength_rule="trained")
    with pytest.raises(ValueError, match="'geometric' applies to the learned prior"):
        ImagingConfig(prior="wavelets", strength_rule="geometric")
    with pytest.raises(ValueError, match="'fixed' needs a strength"):
        ImagingConfig(strength_rule="fixed")
    with pytest.raises(ValueError, match="prior.strength must be a number, 'auto'"):
        load_config(FAST_CONFIG.replace("strength = 40.0", 'strength = "best"'), Path.cwd())
    with pytest.raises(ValueError, match="unknown key 'extra' in the top-level table"):
        load_config(FAST_CONFIG + "\n[extra]\n", Path.cwd())
    config = load_config(FAST_CONFIG, Path.cwd())
    assert config.imaging_config() == ImagingConfig(
        prior="wavelets",
        wavelet_order=4,
        wavelet_levels=2,
        strength=40.0,
        strength_rule="fixed",
        positivity=False,
        alpha=0.05,
        superpixel_sizes=(16,),
        test_regions=((28, 36, 28, 36),),
    )
    with pytest.raises(ValueError, match="takes either 'mask' or 'uv', not both"):
        ImagingDataConfig(truth="demo", mask="demo", uv="uv.npz")
    with pytest.raises(ValueError, match="image_shape is for observed visibilities"):
        ImagingDataConfig(truth="demo", mask="demo", image_shape=(8, 8))


def test_mask_reader_validation(tmp_path):
    from astrobayes.io.imaging_files import read_fourier_mask

    np.save(tmp_path / "mask.npy", np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="mask shape mismatch"):
        read_fourier_mask(tmp_path / "mask.npy", shape=(16, 16))
    (tmp_path / "mask.txt").write_text("1")
    with pytest.raises(ValueError, match="unknown mask format"):
        read_fourier_mask(tmp_path / "mask.txt", shape=(8, 8))


OBSERVED_CONFIG = """
[data]
visibilities = "obs.npz"
image_shape = [32, 32]
{extra}

[prior]
kind = "wavelets"
wavelet_order = 2
wavelet_levels = 2
strength = 40.0
positivity = false

[uq]
superpixel_sizes = [16]

[map]
max_iterations = 300
"""


def _observed_files(tmp_path, *, uv: bool):
    import jax
    import jax.numpy as jnp

    from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
    from astrobayes.imaging.operators import (
        add_complex_noise,
        fourier_mask_operator,
        noise_sigma_from_isnr,
    )
    from astrobayes.imaging.problem import demo_sky

    truth = demo_sky(32)
    rng = np.random.default_rng(0)
    if uv:
        points = rng.uniform(-np.pi, np.pi, size=(300, 2)) * rng.uniform(0, 1, size=(300, 1))
        sigma = np.where(np.arange(300) % 2 == 0, 1.0, 2.0)
        op = nufft_operator_from_pixel_phases(points, image_shape=(32, 32))
        clean = np.asarray(op(jnp.asarray(truth, jnp.float32)))
        sigma = sigma * noise_sigma_from_isnr(clean, 30.0)
        noise = sigma * (rng.normal(size=300) + 1j * rng.normal(size=300))
        np.savez(
            tmp_path / "obs.npz", vis=clean + noise, sigma=sigma, uu=points[:, 0], vv=points[:, 1]
        )
    else:
        mask = rng.random((32, 32)) < 0.4
        np.save(tmp_path / "mask.npy", mask)
        op = fourier_mask_operator(mask)
        clean = op(jnp.asarray(truth, jnp.float32))
        sigma = noise_sigma_from_isnr(clean, 30.0)
        vis = add_complex_noise(jax.random.key(0), clean, sigma)
        np.savez(tmp_path / "obs.npz", vis=np.asarray(vis), sigma=sigma)
    return truth


@pytest.mark.parametrize("uv", [True, False])
def test_cli_observed_visibilities(tmp_path, uv):
    _observed_files(tmp_path, uv=uv)
    extra = 'uv_units = "radians_per_pixel"' if uv else 'mask = "mask.npy"'
    config = tmp_path / "obs.toml"
    config.write_text(OBSERVED_CONFIG.format(extra=extra))
    out = tmp_path / "out"
    assert main(["image", str(config), "--out", str(out)]) == 0
    results = _strict_json((out / "results.json").read_text())
    assert results["observed_visibilities"] is True
    assert results["snr_db"] is None
    assert results["num_visibilities"] == (300 if uv else int(np.load(tmp_path / "mask.npy").sum()))
    assert np.isfinite(results["map_potential"])


def test_cli_observed_visibilities_validation(tmp_path):
    from astrobayes.io.imaging_files import read_visibilities

    def build(**table):
        return read_problem(ImagingDataConfig(**table))

    _observed_files(tmp_path, uv=False)
    good = dict(np.load(tmp_path / "obs.npz"))
    path = tmp_path / "bad.npz"
    data = {"visibilities": str(path), "image_shape": (32, 32), "mask": str(tmp_path / "mask.npy")}

    def write(**changes):
        np.savez(path, **{**good, **changes})

    write(vis=np.where(np.arange(good["vis"].size) == 3, np.nan, good["vis"]))
    with pytest.raises(ValueError, match="'vis' has 1 non-finite entries"):
        read_visibilities(path)
    write(vis=good["vis"].real)
    with pytest.raises(ValueError, match="'vis' must be complex"):
        read_visibilities(path)
    write(sigma=np.ones(3))
    with pytest.raises(ValueError, match="'sigma' must be a scalar or have shape"):
        read_visibilities(path)
    write(sigma=-1.0)
    with pytest.raises(ValueError, match="'sigma' must be positive"):
        read_visibilities(path)
    write(vis=good["vis"][:-1])
    with pytest.raises(ValueError, match="the mask samples .* but the file has"):
        build(**data)
    write()
    with pytest.raises(ValueError, match="image_shape = \\[height, width\\] is required"):
        build(**{k: v for k, v in data.items() if k != "image_shape"})
    with pytest.raises(ValueError, match="isnr_db is for simulated data"):
        build(**{**data, "isnr_db": 30.0})
    with pytest.raises(ValueError, match="has no 'uu'/'vv'"):
        build(**{k: v for k, v in data.items() if k != "mask"})


def test_resize_resamples_truth_as_the_study_does(tmp_path):
    from skimage.transform import resize

    from astrobayes.imaging.problem import resize_image
    from astrobayes.io.imaging_files import write_fits_image

    rng = np.random.default_rng(0)
    image = rng.random((30, 66))
    expected = resize(image, (16, 32), order=3, anti_aliasing=True)
    np.testing.assert_array_equal(resize_image(image, (16, 32)), expected)
    # Negative control: without anti-aliasing the result differs.
    assert not np.allclose(expected, resize(image, (16, 32), order=3, anti_aliasing=False))

    path = tmp_path / "sky.fits"
    write_fits_image(path, image)
    mask = np.zeros((16, 32), bool)
    mask[:4, :4] = True
    np.save(tmp_path / "mask.npy", mask)
    data = ImagingDataConfig(
        truth=str(path), resize=(16, 32), mask=str(tmp_path / "mask.npy"), flip=False
    )
    problem = read_problem(data)
    assert problem.truth.shape == (16, 32)
    span = expected.max() - expected.min()
    np.testing.assert_allclose(problem.truth, (expected - expected.min()) / span)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"truth": "demo", "mask": "demo", "resize": (8, 8)}, "resize resamples a truth FITS"),
        ({"truth": "x.fits", "mask": "demo", "resize": (8,)}, "resize must be two integers"),
        ({"truth": "x.fits", "mask": "demo", "resize": (8, 1)}, "resize must be two integers"),
    ],
)
def test_resize_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImagingDataConfig(**kwargs)


def test_resize_image_rejects_bad_input():
    from astrobayes.imaging.problem import resize_image

    with pytest.raises(ValueError, match="image must be 2-d; got shape \\(5,\\)"):
        resize_image(np.ones(5), (2, 2))
    with pytest.raises(ValueError, match="shape must be two integers >= 2"):
        resize_image(np.ones((5, 5)), (2, 0))
