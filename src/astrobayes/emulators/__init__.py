"""Neural emulators: design training sets, train, validate accuracy, save/load, use in likelihoods.

See ``docs/emulators.md`` and ``examples/emulate_distances.py``.
"""

from astrobayes.emulators.likelihood import make_emulated_bao_log_likelihood
from astrobayes.emulators.network import ACTIVATIONS, Emulator
from astrobayes.emulators.serialization import load_emulator, save_emulator
from astrobayes.emulators.training import (
    EmulatorValidation,
    TrainingHistory,
    design,
    train_emulator,
    validate_emulator,
)

__all__ = [
    "ACTIVATIONS",
    "Emulator",
    "EmulatorValidation",
    "TrainingHistory",
    "design",
    "load_emulator",
    "make_emulated_bao_log_likelihood",
    "save_emulator",
    "train_emulator",
    "validate_emulator",
]
