"""``astrobayes image`` with ``[prior] kind = "denoiser"`` (PnP-ULA with a Tweedie score)."""

import json

import jax
import numpy as np
import pytest

from astrobayes.cli.image import load_run_config
from astrobayes.cli.main import main
from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser
from astrobayes.io.denoiser_files import save_denoiser

CONFIG = """
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0

[prior]
kind = "denoiser"
weights = "tiny.eqx"
score_sigma = 0.05

[sampling]
chains = 2
warmup = 4
samples = 6
thinning = 2
lipschitz_iterations = 3
"""

TINY = DenoiserSettings("dncnn", width=4, depth=2, sigma_min=0.01, sigma_max=0.2)


def test_cli_samples_with_a_denoiser_prior(tmp_path, capsys):
    from astrobayes.io.imaging_files import read_fits_image

    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), TINY))
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    code = main(["image", str(config), "--out", str(out), "--no-plots"])
    results = json.loads((out / "results.json").read_text())
    assert code == (1 if results["status"] in ("not_finite", "diverged") else 0)
    assert results["prior"] == "denoiser"
    assert results["sampling"]["chains"] == 2
    assert results["num_score_evaluations_per_chain"] == 2 * (2 + 6)
    assert np.isfinite(results["snr_db"])
    assert 0.0 <= results["truth_inside_interval_fraction"] <= 1.0
    mean = read_fits_image(out / "posterior_mean.fits")
    lower = read_fits_image(out / "interval_lower.fits")
    upper = read_fits_image(out / "interval_upper.fits")
    std = read_fits_image(out / "posterior_std.fits")
    assert mean.shape == lower.shape == upper.shape == std.shape == (64, 64)
    assert np.all(lower <= upper)
    assert np.all(std >= 0)
    assert np.mean((mean >= lower) & (mean <= upper)) > 0.5
    assert (out / "dirty.fits").is_file()
    captured = capsys.readouterr()
    assert "PnP-ULA" in captured.out
    assert "image: PnP-ULA" in captured.err  # the progress bar (off with --no-progress)


def test_cli_runs_with_jax_in_float64(tmp_path, global_x64):
    """With ``jax_enable_x64`` on (as many cosmology sessions set it), the float32 denoiser
    took float64 images into its convolutions and the Lipschitz estimate float64 tangents:
    the command failed with a dtype error from lax (found 2026-12-06 when another test
    left x64 on). The network now runs in its weights' dtype."""
    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), TINY))
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    code = main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == (1 if results["status"] in ("not_finite", "diverged") else 0)
    assert np.isfinite(results["snr_db"])


def test_denoiser_config_errors(tmp_path, capsys):
    base = tmp_path
    table, run = load_run_config(CONFIG, base)
    assert run.prior.weights == str((base / "tiny.eqx").resolve())
    assert run.sampling.method == "pnp-ula"
    assert run.sampling.samples == 6
    assert table.prior.kind == "wavelets"  # the MAP settings are not used by this kind
    assert load_run_config(CONFIG.replace('"tiny.eqx"', '"radio"'), base)[1].prior.weights == (
        "radio"
    )
    with pytest.raises(ValueError, match="unknown key 'score_sgima'"):
        load_run_config(CONFIG.replace("score_sigma", "score_sgima"), base)
    with pytest.raises(ValueError, match="unknown key 'chain'"):
        load_run_config(CONFIG.replace("chains =", "chain ="), base)
    with pytest.raises(ValueError, match="sampling.method must be one of"):
        load_run_config(CONFIG + 'method = "diffusion"\n', base)
    with pytest.raises(ValueError, match=r"\[sampling\] is for \[prior\] kind = 'denoiser'"):
        load_run_config(CONFIG.replace('kind = "denoiser"', 'kind = "wavelets"'), base)
    with pytest.raises(ValueError, match="prior.score_sigma must be a positive number"):
        load_run_config(CONFIG.replace("0.05", "-1.0"), base)
    with pytest.raises(ValueError, match="sampling.samples must be an integer >= 4"):
        load_run_config(CONFIG.replace("samples = 6", "samples = 2"), base)

    # a weights file whose payload does not match its header (another width)
    save_denoiser(tmp_path / "a.eqx", init_denoiser(jax.random.key(0), TINY))
    save_denoiser(
        tmp_path / "b.eqx",
        init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=6, depth=2)),
    )
    header = (tmp_path / "a.eqx").read_bytes().split(b"\n", 1)[0]
    payload = (tmp_path / "b.eqx").read_bytes().split(b"\n", 1)[1]
    (tmp_path / "tiny.eqx").write_bytes(header + b"\n" + payload)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    assert main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    assert "do not match the architecture" in capsys.readouterr().err

    # a smoothing outside the denoiser's training range
    save_denoiser(tmp_path / "tiny.eqx", init_denoiser(jax.random.key(0), TINY))
    config.write_text(CONFIG.replace("0.05", "0.5"))
    assert main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    assert "training range" in capsys.readouterr().err
    config.write_text(CONFIG.replace('"tiny.eqx"', '"missing.eqx"'))
    assert main(["image", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    assert "no such denoiser file" in capsys.readouterr().err
