import json
from pathlib import Path

import numpy as np
import pytest

from astrobayes.cli.image import load_config
from astrobayes.cli.main import main
from astrobayes.imaging.pipeline import ImagingConfig

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
    results = json.loads((out / "results.json").read_text())
    for key in ("snr_db", "gamma_alpha", "map_potential", "timings"):
        assert key in results
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
    with pytest.raises(ValueError, match=r"unknown key\(s\) in \[prior\]"):
        load_config(FAST_CONFIG.replace("positivity = false", "positivty = false"), Path.cwd())
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config("[data", Path.cwd())
    with pytest.raises(ValueError, match="unknown prior"):
        ImagingConfig(prior="tv")
    with pytest.raises(ValueError, match="'trained' applies to the learned prior"):
        ImagingConfig(prior="wavelets", strength_rule="trained")
    with pytest.raises(ValueError, match="'fixed' needs a strength"):
        ImagingConfig(strength_rule="fixed")
    with pytest.raises(ValueError, match="prior.strength must be a number, 'auto'"):
        load_config(FAST_CONFIG.replace("strength = 40.0", 'strength = "best"'), Path.cwd())


def test_mask_reader_validation(tmp_path):
    from astrobayes.io.imaging_files import read_fourier_mask

    np.save(tmp_path / "mask.npy", np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="mask shape mismatch"):
        read_fourier_mask(tmp_path / "mask.npy", shape=(16, 16))
    (tmp_path / "mask.txt").write_text("1")
    with pytest.raises(ValueError, match="unknown mask format"):
        read_fourier_mask(tmp_path / "mask.txt", shape=(8, 8))
