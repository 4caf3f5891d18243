"""Neural emulators: design training sets, train, validate accuracy.

A leaf package: it imports only the ground floor (``_checks``, ``_status``,
``_training``). Saving and loading are :func:`astrobayes.io.save_emulator` and
:func:`astrobayes.io.load_emulator`; the emulated BAO likelihood is
:func:`astrobayes.cosmology.make_emulated_bao_log_likelihood`. See ``docs/emulators.md``
and ``examples/emulate_distances.py``.
"""

from astrobayes.emulators.network import ACTIVATIONS, Emulator
from astrobayes.emulators.training import (
    EmulatorValidation,
    design,
    train_emulator,
    validate_emulator,
)

__all__ = [
    "ACTIVATIONS",
    "Emulator",
    "EmulatorValidation",
    "design",
    "train_emulator",
    "validate_emulator",
]
