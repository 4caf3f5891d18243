"""``astrobayes texture``: outputs readable by healpy, and clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrobayes.cli.main import main

healpy = pytest.importorskip("healpy")


def _lognormal_map(nside):
    ells = np.arange(2 * nside)
    cl = np.where(ells > 1, (ells + 1.0) ** -2, 0.0)
    alm = healpy.synalm(cl, lmax=2 * nside - 1)
    g = healpy.alm2map(alm, nside, lmax=2 * nside - 1)
    return np.exp(g / g.std()) - 1.0


@pytest.mark.slow
def test_texture_writes_samples_validation_and_figures(tmp_path, capsys, global_x64):
    # global_x64: the command turns float64 on for its process; the fixture restores the
    # flag, which this test once left on for the rest of its worker (a later float32
    # imaging test then failed in `make test-all`)
    np.random.seed(0)  # healpy.synalm draws from NumPy's global generator
    target = _lognormal_map(4)
    path = tmp_path / "target.fits"
    healpy.write_map(path, target, dtype=np.float64, column_units="K")
    out = tmp_path / "out"
    argv = ["texture", str(path), "--out", str(out), "--num-samples", "2", "--num-steps", "4"]
    code = main(["--no-compile-cache", *argv, "--seed", "3", "--no-progress"])
    assert code == 0
    samples = healpy.read_map(out / "samples.fits", field=None)
    assert samples.shape == (2, target.size)
    assert np.all(np.isfinite(samples))
    report = json.loads((out / "validation.json").read_text())
    assert report["unit"] == "K"
    assert report["status"] in ("ok", "not_converged")
    assert len(report["cl_ratio"]["samples"]) == 2
    assert set(report["checks"]) == {
        "cl_within_10_percent",
        "skewness_within_20_percent",
        "kurtosis_within_20_percent",
        "minkowski_closer_than_gaussian",
    }
    assert abs(report["moments"]["target"]["skewness"]) > 0.3  # the lognormal is skewed
    assert (out / "maps.png").stat().st_size > 0
    assert (out / "statistics.png").stat().st_size > 0
    assert "wrote" in capsys.readouterr().out


def _expect_error(argv, match, capsys):
    assert main(["--no-compile-cache", *argv, "--no-progress"]) == 2
    assert match in capsys.readouterr().err


def test_bad_input_gets_a_clear_error(tmp_path, capsys, global_x64):
    # global_x64: some of these errors come after the command turned float64 on
    not_healpix = tmp_path / "table.fits"
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((5, 7))).writeto(not_healpix)
    _expect_error(["texture", str(not_healpix)], "is not a HEALPix map", capsys)

    with_nan = tmp_path / "nan.fits"
    values = np.ones(12 * 4**2)
    values[5] = np.nan
    healpy.write_map(with_nan, values, dtype=np.float64)
    _expect_error(["texture", str(with_nan)], "NaN or UNSEEN", capsys)

    too_small = tmp_path / "nside2.fits"
    healpy.write_map(too_small, np.ones(12 * 2**2), dtype=np.float64)
    _expect_error(["texture", str(too_small)], "nside 2 is unsupported", capsys)

    good = tmp_path / "good.fits"
    healpy.write_map(good, np.ones(12 * 4**2), dtype=np.float64)
    mask = tmp_path / "mask.fits"
    healpy.write_map(mask, np.ones(12 * 8**2), dtype=np.float64)
    _expect_error(["texture", str(good), "--mask", str(mask)], "mask has 768 pixels", capsys)
    _expect_error(["texture", str(tmp_path / "missing.fits")], "no such HEALPix FITS file", capsys)


def test_progress_bar_names_its_stage_once_and_counts_from_its_first_report(capsys):
    from astrobayes.cli._common import ProgressBar

    bar = ProgressBar("texture")
    bar("texture", 10, 30)  # the first report comes after 10 steps (and a compilation)
    assert (bar.bar.initial, bar.bar.n) == (10, 10)
    bar("texture", 30, 30)
    bar.close()
    err = capsys.readouterr().err
    assert "texture:" in err
    assert "texture: texture" not in err
    bar = ProgressBar("evidence")
    bar("training", 1, 3)
    bar.close()
    assert "evidence: training flow" in capsys.readouterr().err


def test_maps_figure_draws_the_targets_masked_pixels_grey():
    from astrobayes.plots.sphere import texture_maps_figure

    nside = 4
    target = np.arange(12 * nside**2, dtype=float)
    mask = np.ones(target.size, bool)
    mask[:20] = False  # a polar cap masked out
    samples = np.zeros((1, target.size))
    figure = texture_maps_figure(target, samples, mask=mask)
    masked = figure.axes[0].collections[0].get_array()
    assert figure.axes[0].get_title() == "target (masked pixels grey)"
    assert 0 < np.ma.count_masked(masked) < masked.size
    # the colour scale comes from the kept pixels only
    assert figure.axes[0].collections[0].get_clim()[0] >= 20 - 1e-9
    # negative control: without a mask nothing is masked
    plain = texture_maps_figure(target, samples).axes[0].collections[0].get_array()
    assert np.ma.count_masked(plain) == 0
