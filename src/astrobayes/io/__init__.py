"""Reading and writing files: posterior chains, results as JSON.

Only :mod:`astrobayes.io` and :mod:`astrobayes.cli` touch files. The chain readers turn
NumPy, GetDist/CosmoMC, Cobaya, emcee, ArviZ and CSV chains into
:class:`~astrobayes.chains.Chains` whose ``log_posterior`` is ``log L + log pi`` with the
prior normalised, and say which convention they used (see ``docs/io.md``).
"""

from astrobayes.io.checkpoint import NpzCheckpoint
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
    "NpzCheckpoint",
    "ChainsFile",
    "detect_format",
    "read_chains",
    "to_json",
    "to_jsonable",
    "write_chains_npz",
    "write_json_atomic",
    "write_text_atomic",
    "write_npz_atomic",
    "save_figure_atomic",
]
