"""The ``noise_scaled`` strength rule of the learned convex prior (issue 16 item 4)."""

import numpy as np
import pytest
from imaging_helpers import small_problem

from astrobayes.imaging.pipeline import (
    ImagingConfig,
    initial_strength,
    noise_scaled_strength,
    run_imaging,
)
from astrobayes.io.imaging_files import read_convex_ridge


@pytest.fixture(scope="module")
def crr():
    return read_convex_ridge()


def test_noise_scaled_strength_scales_as_inverse_root_noise(crr):
    trained = float(crr.regulariser.strength) / crr.sigma_train**2
    sigma_train = crr.sigma_train
    # at the training noise the rule is the trained strength
    assert noise_scaled_strength(crr, sigma_train, 1.0) == pytest.approx(trained, rel=1e-6)
    # 16 times less noise: 4 times the strength (sigma^-1/2), not 256 times (sigma^-2)
    assert noise_scaled_strength(crr, sigma_train / 16, 1.0) == pytest.approx(4 * trained)
    # the MAP is unchanged when Phi, y and sigma are scaled together: so is the rule
    assert noise_scaled_strength(crr, 3e-3, 1.0) == pytest.approx(
        noise_scaled_strength(crr, 3e-3 * 1e3, 1e3)
    )
    # negative control: other noise levels give other strengths
    assert noise_scaled_strength(crr, 3e-3, 1.0) != pytest.approx(trained, rel=0.1)
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        noise_scaled_strength(crr, 0.0, 1.0)
    with pytest.raises(ValueError, match="operator_norm must be a positive finite number"):
        noise_scaled_strength(crr, 1e-3, float("nan"))
    with pytest.raises(ValueError, match="'noise_scaled' applies to the learned prior"):
        ImagingConfig(prior="wavelets", strength_rule="noise_scaled")
    # the TOML word reaches the workflow settings
    from astrobayes.imaging.problem import (
        ImagingDataConfig,
        ImagingFileConfig,
        ImagingPriorConfig,
    )

    toml = ImagingFileConfig(
        data=ImagingDataConfig(truth="demo", mask="demo"),
        prior=ImagingPriorConfig(kind="crr", strength="noise_scaled"),
    )
    assert toml.imaging_config().strength_rule == "noise_scaled"


def test_pipeline_uses_the_noise_scaled_strength(key, crr):
    truth, op, data, sigma = small_problem(key, size=16)
    config = ImagingConfig(
        prior="crr", strength_rule="noise_scaled", superpixel_sizes=(), max_iterations=300
    )
    result = run_imaging(config, op, data, sigma, truth=truth, crr=crr)
    assert result.strength_rule == "noise_scaled"
    expected = noise_scaled_strength(crr, sigma, float(result.posterior.operator_norm))
    np.testing.assert_allclose(result.strength, expected, rtol=1e-6)
    # the default CRR rule is ``noise_scaled`` ...
    default = ImagingConfig(prior="crr", superpixel_sizes=(), max_iterations=300)
    assert default.resolved_strength_rule() == "noise_scaled"
    auto = run_imaging(default, op, data, sigma, truth=truth, crr=crr)
    assert auto.strength_rule == "noise_scaled"
    np.testing.assert_allclose(auto.strength, expected, rtol=1e-6)
    # ... which differs from the ``trained`` strength here (control)
    trained = initial_strength(default, op, data, crr=crr)
    assert abs(np.log(result.strength / trained)) > 0.1
    assert ImagingConfig(prior="wavelets").resolved_strength_rule() == "discrepancy"


@pytest.mark.slow
@pytest.mark.shared_data
def test_noise_scaled_near_the_grid_best_on_two_simulated_skies(shared_data, crr):
    """On the two 256x256 simulated skies of docs/imaging.md (M31 mask, ISNR 30 dB), the
    ``noise_scaled`` MAP is within 0.5 dB of the best of a half-octave grid around it;
    negative control: the ``trained`` rule is not (it under-regularises both skies)."""
    import sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp

    from astrobayes.imaging.map import map_estimate, snr_db, with_strength
    from astrobayes.imaging.operators import (
        add_complex_noise,
        fourier_mask_operator,
        noise_sigma_from_isnr,
    )
    from astrobayes.imaging.pipeline import build_prior
    from astrobayes.imaging.posterior import imaging_posterior
    from astrobayes.io.imaging_files import read_fourier_mask

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from imaging_strength_rules import simulated_sky

    mask = read_fourier_mask(
        shared_data / "imaging" / "masks" / "M31_fourier_mask.mat", shape=(256, 256)
    )
    op = fourier_mask_operator(mask)
    config = ImagingConfig(prior="crr")
    for kind, seed in (("point", 1), ("lobes", 2)):
        truth = simulated_sky(kind, seed)
        clean = op(jnp.asarray(truth, jnp.float32))
        sigma = noise_sigma_from_isnr(clean, 30.0)
        data = add_complex_noise(jax.random.key(0), clean, sigma)
        trained = initial_strength(config, op, data, crr=crr)
        post = imaging_posterior(
            op, data, sigma, build_prior(config, op.image_shape, trained, crr=crr), positivity=True
        )
        rule = noise_scaled_strength(crr, sigma, float(post.operator_norm))

        def snr(strength, post=post, truth=truth):
            return snr_db(truth, map_estimate(with_strength(post, strength)).image)

        at_rule = snr(rule)
        grid = [snr(rule * 2.0**k) for k in (-1.0, -0.5, 0.5, 1.0)]
        best = max([at_rule, *grid])
        assert at_rule >= best - 0.5, (kind, at_rule, grid)
        assert snr(trained) < best - 0.5, kind  # negative control: the check can fail
