"""Emulator files: exact round trip, atomic writes, clear errors on bad files."""

import jax
import numpy as np
import pytest

from astrobayes.emulators import design, train_emulator
from astrobayes.io import load_emulator, save_emulator


def test_save_load_round_trip_exact(key, tmp_path):
    x = design(key, [[0.5, 1.5], [0.5, 1.5]], 64)
    y = x[:, :1] * np.exp(-x[:, 1:] * np.linspace(0, 1, 10))
    emulator, _ = train_emulator(
        key,
        x,
        y,
        pca_components=3,
        log_outputs=True,
        hidden=(8, 4),
        activation="tanh",
        num_epochs=2,
    )
    path = tmp_path / "emulator.eqx"
    assert save_emulator(path, emulator) == path
    assert [p.name for p in tmp_path.iterdir()] == ["emulator.eqx"]  # no temporary left
    loaded = load_emulator(path)
    for a, b in zip(
        jax.tree_util.tree_leaves(emulator), jax.tree_util.tree_leaves(loaded), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert (loaded.hidden, loaded.activation, loaded.log_outputs) == ((8, 4), "tanh", True)
    np.testing.assert_array_equal(loaded(x), emulator(x))
    assert path.read_bytes().startswith(b'{"activation"')


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_emulator(tmp_path / "missing.eqx")
    bad = tmp_path / "bad.eqx"
    bad.write_bytes(b"\x80\x04 not json\n")
    with pytest.raises(ValueError, match="not an astrobayes emulator file"):
        load_emulator(bad)
    other = tmp_path / "other.eqx"
    other.write_bytes(b'{"format": "something"}\n')
    with pytest.raises(ValueError, match="not an astrobayes emulator file"):
        load_emulator(other)
    with pytest.raises(TypeError, match="must be an Emulator"):
        save_emulator(tmp_path / "x.eqx", object())


def test_load_truncated_payload(key, tmp_path):
    x = design(key, [[0.0, 1.0]], 32)
    emulator, _ = train_emulator(key, x, x, hidden=(4,), num_epochs=1)
    path = tmp_path / "e.eqx"
    save_emulator(path, emulator)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="payload does not match"):
        load_emulator(path)


def test_shipped_emulator_round_trip(tmp_path):
    from astrobayes.cosmology.shear_survey import emulator_bounds
    from astrobayes.io import des_y1_like_emulator

    emulator = des_y1_like_emulator()
    save_emulator(tmp_path / "shear.eqx", emulator)
    loaded = load_emulator(tmp_path / "shear.eqx")
    x = jax.numpy.asarray(emulator_bounds().mean(1))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(emulator(x)))


def test_save_into_missing_directory_fails_and_leaves_nothing(key, tmp_path):
    x = design(key, [[0.0, 1.0]], 32)
    emulator, _ = train_emulator(key, x, x, hidden=(4,), num_epochs=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_emulator(tmp_path / "missing" / "e.eqx", emulator)
    assert list(tmp_path.iterdir()) == []
