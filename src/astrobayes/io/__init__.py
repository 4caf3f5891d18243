"""Reading and writing files: posterior chains, results as JSON, emulators, data sets.

Only :mod:`astrobayes.io` and :mod:`astrobayes.cli` touch files. The chain readers turn
NumPy, GetDist/CosmoMC, Cobaya, emcee, ArviZ and CSV chains into
:class:`~astrobayes.chains.Chains` whose ``log_posterior`` is ``log L + log pi`` with the
prior normalised, and say which convention they used (see ``docs/io.md``). The other
readers turn published data files (SN Ia compilations, the radiata pine table, the
shipped cosmic-shear data and emulator) into the arrays and Modules the numerical core
takes; every writer is atomic.
"""

from astrobayes.io.checkpoint import NpzCheckpoint
from astrobayes.io.cosmology_data import (
    des_y1_like_data,
    des_y1_like_emulator,
    read_des_sn5yr,
    read_pantheon_binned,
    read_pantheon_plus,
    read_union3,
)
from astrobayes.io.emulators import load_emulator, save_emulator
from astrobayes.io.problems_data import read_radiata_pine
from astrobayes.io.readers import FORMATS, ChainsFile, detect_format, read_chains
from astrobayes.io.writers import (
    save_figure_atomic,
    to_json,
    to_jsonable,
    write_chains_npz,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)

__all__ = [
    "FORMATS",
    "ChainsFile",
    "NpzCheckpoint",
    "des_y1_like_data",
    "des_y1_like_emulator",
    "detect_format",
    "load_emulator",
    "read_chains",
    "read_des_sn5yr",
    "read_pantheon_binned",
    "read_pantheon_plus",
    "read_radiata_pine",
    "read_union3",
    "save_emulator",
    "save_figure_atomic",
    "to_json",
    "to_jsonable",
    "write_chains_npz",
    "write_json_atomic",
    "write_npz_atomic",
    "write_text_atomic",
]
