"""Training the unrolled network through the shared loop improves on its start (slow)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig, fit, split_validation
from astrobayes.imaging.unrolled import UnrolledNetwork, UnrolledSettings

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import train_unrolled
    finally:
        sys.path.remove(str(SCRIPTS))
    return train_unrolled


def test_chunk_plan_expands_epochs_and_lowers_the_final_rate():
    plan = _script().chunk_plan(
        [64, 64, 128],
        [512, 512, 192],
        [5],
        final_chunks=1,
        learning_rate=1e-3,
        final_learning_rate=3e-4,
    )
    assert [c["epochs"] for c in plan] == [5, 5, 5]
    assert [c["learning_rate"] for c in plan] == [1e-3, 1e-3, 3e-4]
    assert [(c["size"], c["pairs"]) for c in plan] == [(64, 512), (64, 512), (128, 192)]
    plan = _script().chunk_plan(
        [64, 128], [8, 4], [3, 2], final_chunks=0, learning_rate=1e-3, final_learning_rate=3e-4
    )
    assert [(c["epochs"], c["learning_rate"]) for c in plan] == [(3, 1e-3), (2, 1e-3)]
    with pytest.raises(ValueError, match="--epochs"):
        _script().chunk_plan(
            [64, 64, 128],
            [8, 8, 4],
            [3, 2],
            final_chunks=1,
            learning_rate=1e-3,
            final_learning_rate=1e-4,
        )
    with pytest.raises(ValueError, match="--sizes and --pairs"):
        _script().chunk_plan(
            [64], [8, 8], [3], final_chunks=1, learning_rate=1e-3, final_learning_rate=1e-4
        )


def test_out_of_time_judges_the_next_chunk_by_the_last():
    script = _script()
    assert not script.out_of_time(0.0, 0.0, 10.0)  # the first chunk always runs
    assert not script.out_of_time(4.0, 5.0, 10.0)
    assert script.out_of_time(6.0, 5.0, 10.0)  # would end at 11 s
    assert not script.out_of_time(1e9, 1e9, None)  # no budget


def test_init_weights_copy_the_unets_filters_and_data_consistency_weights(tmp_path):
    """``--init-weights``: a trained file's leaves start a network with (or without) DC."""
    import equinox as eqx

    from astrobayes.io.unrolled_files import write_unrolled

    script = _script()
    settings = UnrolledSettings(num_stages=2, widths=(2, 4), dc_iterations=2, initial_mu=3.0)
    source = UnrolledNetwork(settings, key=jax.random.key(1))
    source = eqx.tree_at(lambda n: n.log_mu, source, source.log_mu + 0.5)
    path, _ = write_unrolled(tmp_path / "source.eqx", source)
    fresh = UnrolledNetwork(settings, key=jax.random.key(2))
    started = script.initialised_from(fresh, str(path))
    for mine, theirs in zip(jax.tree.leaves(started), jax.tree.leaves(source), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # a network without the step takes the U-Nets and filters of one with it
    plain = UnrolledNetwork(UnrolledSettings(num_stages=2, widths=(2, 4)), key=jax.random.key(3))
    started = script.initialised_from(plain, str(path))
    assert started.log_mu is None
    np.testing.assert_array_equal(started.log_eps, source.log_eps)
    # more stages: the source's stages first, the new ones silent (same image as before
    # their training, up to the extra data-consistency steps, here none)
    plain_source = UnrolledNetwork(
        UnrolledSettings(num_stages=2, widths=(2, 4)), key=jax.random.key(5)
    )
    plain_path, _ = write_unrolled(tmp_path / "plain.eqx", plain_source)
    deeper = UnrolledNetwork(UnrolledSettings(num_stages=3, widths=(2, 4)), key=jax.random.key(4))
    grown = script.initialised_from(deeper, str(plain_path))
    assert len(grown.stages) == 3
    assert grown.log_eps.shape == (4,)
    op_normal = lambda v: 0.5 * v + 0.5 * jnp.roll(v, 1, axis=0)  # noqa: E731
    dirty = jnp.asarray(np.random.default_rng(0).random((8, 8)), jnp.float32)
    # float32 images; under JAX_ENABLE_X64 the silent stage is built in float64 and the sum
    # rounds differently (1.8e-6 relative seen)
    np.testing.assert_allclose(grown(op_normal, dirty), plain_source(op_normal, dirty), rtol=1e-5)
    assert not np.allclose(deeper(op_normal, dirty), plain_source(op_normal, dirty))  # control
    shallower = UnrolledNetwork(
        UnrolledSettings(num_stages=1, widths=(2, 4)), key=jax.random.key(6)
    )
    other = UnrolledNetwork(UnrolledSettings(num_stages=2, widths=(2, 8)), key=jax.random.key(7))
    for bad in (shallower, other):
        with pytest.raises(SystemExit, match="do not fit"):
            script.initialised_from(bad, str(path))


@pytest.mark.slow
def test_training_beats_the_untrained_network_on_held_out_pairs(shared_data):
    """A tiny network trained on 32x32 pairs gains SNR on pairs drawn from other keys.

    Negative control: the untrained network (its Tikhonov start) on the same held-out
    pairs; the trained one must beat it by more than 1 dB.
    """
    script = _script()
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


def _tracks(shared_data):
    from astrobayes.io.imaging_files import read_uv_points

    folder = shared_data / "imaging" / "meerkat_uv"
    return {h: read_uv_points(folder / f"meerkat_simulation_{h}h_uv_only.npz") for h in (1, 2, 4)}


def test_prefetched_host_draws_are_the_same_draws(shared_data):
    """``--prefetch``: host draws made in a worker thread equal those of the main thread.

    The worker thread has no ``jax.default_device`` context of its own; the draws must
    not depend on it. Negative control: another chunk key gives other skies.
    """
    from concurrent.futures import ThreadPoolExecutor

    script = _script()
    tracks = _tracks(shared_data)
    arguments = (6, 16, tracks, (20.0, 40.0), 2, 0.5)
    here = script.draw_host_direct(jax.random.key(3), *arguments)
    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(script.draw_host_direct, jax.random.key(3), *arguments).result()
    assert here.keys() == there.keys()
    for name in here:
        np.testing.assert_array_equal(here[name], there[name], err_msg=name)
    assert here["skies"].shape == (6, 16, 16)
    assert here["isnr"].shape == (2, 3)
    assert np.all((here["isnr"] >= 20.0) & (here["isnr"] <= 40.0))
    other = script.draw_host_direct(jax.random.key(4), *arguments)
    assert not np.allclose(other["skies"], here["skies"])
    pairs = script.observe_direct(jax.random.key(3), 6, here)
    reference = script.draw_pairs_direct(jax.random.key(3), *arguments)
    for got, want in zip(pairs, reference, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_direct_pairs_are_the_observation_model(shared_data):
    """``--simulator direct`` pairs: each dirty image is its own spectrum's ``Phi^H Phi x``.

    At ISNR 150-160 dB the noise is negligible, so ``dirty = N x`` to float32 precision
    through the pair's spectrum; negative control: another pair's coverage does not
    explain it.
    """
    script = _script()
    from astrobayes.imaging.toeplitz import NormalOperator

    tracks = _tracks(shared_data)
    truth, dirty, spectra = script.draw_pairs_direct(
        jax.random.key(1), 6, 16, tracks, (150.0, 160.0), 2, 0.5
    )
    assert truth.shape == dirty.shape == (6, 16, 16)
    assert spectra.shape == (6, 32, 17)

    def explained(i, j):
        normal = NormalOperator(spectrum=spectra[j], shape=(16, 16), padded_shape=(32, 32))
        clean = normal(truth[i])
        return float(jnp.linalg.norm(dirty[i] - clean) / jnp.linalg.norm(clean))

    for i in range(6):
        assert explained(i, i) < 1e-4
    assert explained(0, 3) > 0.05  # pairs 0-2 and 3-5 saw different coverages
