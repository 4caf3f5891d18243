"""Save and load chemistry-surrogate ensembles without pickle (JSON header + equinox leaves).

File layout as for emulators: one line of UTF-8 JSON (format, version, the
:class:`~astrobayes.physics.surrogates.SurrogateConfig` architecture fields, the latent
start time), a newline, then :func:`equinox.tree_serialise_leaves` of the stacked members.
Loading rebuilds an untrained skeleton with
:func:`~astrobayes.physics.surrogates.build_surrogate_ensemble` and fills in its leaves.
Saving is atomic (:func:`astrobayes.io.write_atomic`).

The package ships one trained ensemble (``astrobayes/physics/data``, made by
``scripts/physics_train_surrogates.py``): :func:`load_shipped_chemistry_surrogate` reads it
with its training record, :func:`load_shipped_chemistry_check` the held-out trajectories
on which its recorded error is reproduced.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.io._eqx_files import (
    read_eqx_header,
    skeleton_in_saved_dtype,
    write_eqx_with_header,
)
from astrobayes.physics.surrogates import (
    NUM_FEATURES,
    NUM_OUTPUTS,
    Standardiser,
    Surrogate,
    SurrogateConfig,
    build_surrogate_ensemble,
)

__all__ = [
    "load_shipped_chemistry_check",
    "load_shipped_chemistry_surrogate",
    "load_surrogate_ensemble",
    "save_surrogate_ensemble",
]

_SHIPPED_PACKAGE = "astrobayes.physics.data"
_SHIPPED_WEIGHTS = "chemistry_mlp_ensemble.eqx"
_SHIPPED_RECORD = "chemistry_mlp_ensemble.json"
_SHIPPED_CHECK = "chemistry_mlp_check.npz"

_FORMAT = "astrobayes-chemistry-surrogate"
_VERSION = 1
_FIELDS = (
    "kind",
    "num_members",
    "width",
    "depth",
    "basis_size",
    "latent_size",
    "substeps",
    "num_pairs",
    "floor_dex",
)


def save_surrogate_ensemble(
    path: str | os.PathLike, members: Surrogate, config: SurrogateConfig
) -> Path:
    """Write stacked surrogate members atomically.

    Args:
        path: Destination file (conventionally ``*.eqx``).
        members: Stacked members (``SurrogateEnsemble.members``).
        config: Their :class:`~astrobayes.physics.surrogates.SurrogateConfig`.

    Returns:
        The path written.

    Raises:
        TypeError: On wrong argument types.

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from astrobayes.physics.surrogates import (Standardiser, SurrogateConfig,
        ...     build_surrogate_ensemble)
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> config = SurrogateConfig(num_members=2, width=4, depth=1)
        >>> m = build_surrogate_ensemble(jax.random.key(0), config, s)
        >>> path = save_surrogate_ensemble(os.path.join(tempfile.mkdtemp(), "m.eqx"), m, config)
        >>> loaded, _ = load_surrogate_ensemble(path)
        >>> bool(jnp.all(loaded.network.layers[0].weight == m.network.layers[0].weight))
        True

    """
    if not isinstance(members, Surrogate):
        raise TypeError(f"members must be a Surrogate; got {type(members).__name__}")
    if not isinstance(config, SurrogateConfig):
        raise TypeError(f"config must be a SurrogateConfig; got {type(config).__name__}")
    header = {
        "format": _FORMAT,
        "version": _VERSION,
        "start": getattr(members, "start", 0.0),
    }
    header.update({name: getattr(config, name) for name in _FIELDS})
    return write_eqx_with_header(path, header, members)


def load_surrogate_ensemble(path: str | os.PathLike) -> tuple[Surrogate, SurrogateConfig]:
    """Read stacked surrogate members written by :func:`save_surrogate_ensemble`.

    Args:
        path: The file.

    Returns:
        ``(members, config)``; ``config.training`` is the default (not stored).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the header is not a surrogate header or the payload does not match.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with path.open("rb") as handle:
        header = read_eqx_header(
            handle, path, file_format=_FORMAT, version=_VERSION, what="a chemistry-surrogate file"
        )
        config = SurrogateConfig(**{name: header[name] for name in _FIELDS})
        zeros = Standardiser(
            jnp.zeros(NUM_FEATURES),
            jnp.ones(NUM_FEATURES),
            jnp.zeros(()),
            jnp.ones(()),
            jnp.zeros(NUM_OUTPUTS),
            jnp.ones(NUM_OUTPUTS),
        )
        skeleton = build_surrogate_ensemble(
            jax.random.key(0), config, zeros, float(header["start"])
        )  # placeholder weights, all overwritten below
        # the saved dtype (float32 unless recorded otherwise), whatever jax_enable_x64 says
        skeleton = skeleton_in_saved_dtype(skeleton, header)
        try:
            return eqx.tree_deserialise_leaves(handle, skeleton), config
        except Exception as error:  # equinox/numpy raise several types on bad payloads
            raise ValueError(f"{path}: payload does not match the header ({error})") from error


def load_shipped_chemistry_surrogate() -> tuple[Surrogate, SurrogateConfig, dict]:
    """The shipped MLP deep ensemble of the primordial chemistry network, with its record.

    Five members, MLP 96×3 on (state, log10 Δt), float32, trained by
    ``scripts/physics_train_surrogates.py`` on 2048 trajectories of
    ``scripts/physics_chemistry_trajectories.py`` (the exact commands are in the record).
    Held-out error (512 test trajectories × 32 times): pooled median relative error
    0.996%, 99th percentile 27%; raw 68% intervals cover 66.1% (docs/physics.md).

    Returns:
        ``(members, config, record)``: stacked members for
        :func:`~astrobayes.physics.surrogates.surrogate_predict`, their
        :class:`~astrobayes.physics.surrogates.SurrogateConfig`, and the record (the
        command, training status and the held-out errors it was shipped with).

    Example:
        >>> from astrobayes.io.surrogates import load_shipped_chemistry_surrogate
        >>> members, config, record = load_shipped_chemistry_surrogate()
        >>> config.kind, config.num_members, round(record["held_out_test"]["overall_median_relative"], 5)
        ('mlp', 5, 0.00996)

    """
    root = importlib.resources.files(_SHIPPED_PACKAGE)
    with importlib.resources.as_file(root / _SHIPPED_WEIGHTS) as file:
        members, config = load_surrogate_ensemble(file)
    record = json.loads((root / _SHIPPED_RECORD).read_text(encoding="utf-8"))
    return members, config, record


def load_shipped_chemistry_check() -> dict[str, np.ndarray]:
    """Held-out test trajectories of the shipped surrogate (never trained on).

    Returns:
        ``{"trajectory_index", "conditions", "initial", "log_times", "targets"}``:
        indices in the trajectory file, the generator's conditions, the surrogate's input
        features ``(num, 12)``, log10 output times ``(32,)`` and true log10 outputs
        ``(num, 32, 10)``.

    Example:
        >>> from astrobayes.io.surrogates import load_shipped_chemistry_check
        >>> load_shipped_chemistry_check()["targets"].shape
        (16, 32, 10)

    """
    path = importlib.resources.files(_SHIPPED_PACKAGE) / _SHIPPED_CHECK
    with importlib.resources.as_file(path) as file, np.load(file, allow_pickle=False) as npz:
        return {name: np.array(npz[name]) for name in npz.files}
