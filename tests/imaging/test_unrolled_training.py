"""Training the unrolled network through the shared loop improves on its start (slow)."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from astrobayes._training import TrainingConfig, fit, split_validation
from astrobayes.imaging.unrolled import UnrolledNetwork, UnrolledSettings

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.slow
def test_training_beats_the_untrained_network_on_held_out_pairs(shared_data):
    """A tiny network trained on 32x32 pairs gains SNR on pairs drawn from other keys.

    Negative control: the untrained network (its Tikhonov start) on the same held-out
    pairs; the trained one must beat it by more than 1 dB.
    """
    sys.path.insert(0, str(SCRIPTS))
    try:
        import train_unrolled as script
    finally:
        sys.path.remove(str(SCRIPTS))
    from astrobayes.io.imaging_files import read_uv_points

    tracks = {
        h: read_uv_points(
            shared_data / "imaging" / "meerkat_uv" / f"meerkat_simulation_{h}h_uv_only.npz"
        )
        for h in (1, 2, 4)
    }
    data = script.draw_pairs(jax.random.key(1), 96, 32, tracks, (25.0, 35.0), 12, 0.25)
    held_out = script.draw_pairs(jax.random.key(2), 32, 32, tracks, (25.0, 35.0), 4, 0.25)
    train, validation = split_validation(jax.random.key(3), data, 0.2)
    network = UnrolledNetwork(UnrolledSettings(num_stages=2, widths=(8, 16)), key=jax.random.key(0))
    config = TrainingConfig(learning_rate=2e-3, batch_size=8, max_epochs=15, patience=15)
    trained, info = fit(
        jax.random.key(4), network, script.relative_error_loss, train, validation, config=config
    )
    before = -10 * np.log10(float(script.relative_error_loss(network, held_out, None)))
    after = -10 * np.log10(float(script.relative_error_loss(trained, held_out, None)))
    assert np.all(np.isfinite(info.validation_losses))
    assert after > before + 1.0, (before, after)
