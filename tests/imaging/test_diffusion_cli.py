"""``astrobayes image`` with ``[prior] kind = "diffusion"`` (annealed Langevin, VE schedule)."""

import json

import jax
import numpy as np
import pytest

from astrobayes.cli.image import DiffusionPriorTable, load_run_config
from astrobayes.cli.main import main
from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser
from astrobayes.io.denoiser_files import save_denoiser

CONFIG = """
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0

[prior]
kind = "diffusion"
weights = "tiny.eqx"
sigma_max = 0.2
levels = 3
steps_per_level = 2

[sampling]
chains = 2
warmup = 2
samples = 4
thinning = 1
"""

TINY = DenoiserSettings("dncnn", width=4, depth=2, sigma_min=0.01, sigma_max=0.2)


def test_cli_samples_with_a_diffusion_prior(tmp_path, capsys):
    from astrobayes.io.imaging_files import read_fits_image

    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), TINY))
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    code = main(["image", str(config), "--out", str(out), "--no-plots"])
    results = json.loads((out / "results.json").read_text())
    assert code == (1 if results["status"] in ("not_finite", "diverged") else 0)
    assert results["prior"] == "diffusion"
    assert results["schedule"] == {"sigma_min": 0.01, "sigma_max": 0.2, "num_levels": 3}
    assert results["sampling"]["method"] == "diffusion"
    assert results["num_score_evaluations_per_chain"] == 3 * 2 + 2 + 4
    assert results["final_likelihood_inflation"] is None  # the annealing's c (1.0)
    assert results["final_noise_variance"] > results["sigma"] ** 2
    mean = read_fits_image(out / "posterior_mean.fits")
    lower = read_fits_image(out / "interval_lower.fits")
    upper = read_fits_image(out / "interval_upper.fits")
    assert mean.shape == lower.shape == upper.shape == (64, 64)
    assert np.all(lower <= upper)
    assert np.isfinite(results["snr_db"])
    captured = capsys.readouterr()
    assert "diffusion prior" in captured.out
    assert "image: annealed Langevin" in captured.err  # the progress bar


def test_diffusion_config_errors(tmp_path, capsys):
    _, run = load_run_config(CONFIG, tmp_path)
    assert isinstance(run.prior, DiffusionPriorTable)
    assert run.prior.sigma_min is None  # the denoiser's range at run time
    with pytest.raises(ValueError, match="unknown key 'level'"):
        load_run_config(CONFIG.replace("levels =", "level ="), tmp_path)
    with pytest.raises(ValueError, match=r"sampling.method must be one of \('diffusion',\)"):
        load_run_config(CONFIG + 'method = "pnp-ula"\n', tmp_path)
    with pytest.raises(ValueError, match="prior.levels must be an integer >= 2"):
        load_run_config(CONFIG.replace("levels = 3", "levels = 1"), tmp_path)
    with pytest.raises(ValueError, match="prior.likelihood_inflation must be a number >= 0"):
        load_run_config(
            CONFIG.replace("levels = 3", "levels = 3\nlikelihood_inflation = -1.0"), tmp_path
        )
    with pytest.raises(ValueError, match="prior.final_likelihood_inflation must be a number"):
        load_run_config(
            CONFIG.replace("levels = 3", "levels = 3\nfinal_likelihood_inflation = -1.0"), tmp_path
        )
    _, run = load_run_config(
        CONFIG.replace("levels = 3", "levels = 3\nfinal_likelihood_inflation = 0.0"), tmp_path
    )
    assert run.prior.final_likelihood_inflation == 0.0
    # a schedule outside the denoiser's training range; a blind denoiser
    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), TINY))
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.replace("sigma_max = 0.2", "sigma_max = 0.5"))
    assert main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    assert "prior.sigma_max must lie in the denoiser's training range" in capsys.readouterr().err
    blind = DenoiserSettings("dncnn", width=4, depth=2, noise_input=False)
    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), blind))
    config.write_text(CONFIG)
    assert main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    assert "noise-conditional" in capsys.readouterr().err
