"""Reading and writing files: posterior chains, results as JSON, emulators, data sets.

Only :mod:`astrobayes.io` and :mod:`astrobayes.cli` touch files. The chain readers turn
NumPy, GetDist/CosmoMC, Cobaya, emcee, ArviZ and CSV chains into
:class:`~astrobayes.chains.Chains` whose ``log_posterior`` is ``log L + log pi`` with the
prior normalised, and say which convention they used (see ``docs/io.md``). The other
readers turn published data files (SN Ia compilations, the radiata pine table, the
shipped cosmic-shear data and emulator) into the arrays and Modules the numerical core
takes; every writer is atomic.

The data-set and emulator functions are imported on first use (they pull in
:mod:`astrobayes.cosmology` and :mod:`astrobayes.emulators`), so reading chains stays
light: ``from astrobayes.io import read_union3`` works as usual.
"""

import importlib
from typing import Any

from astrobayes.io.checkpoint import NpzCheckpoint
from astrobayes.io.readers import FORMATS, ChainsFile, detect_format, read_chains
from astrobayes.io.writers import (
    save_figure_atomic,
    to_json,
    to_jsonable,
    write_atomic,
    write_chains_npz,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)

__all__ = [
    "FORMATS",
    "CampaignStore",
    "ChainsFile",
    "NpzCheckpoint",
    "des_y1_like_data",
    "des_y1_like_emulator",
    "detect_format",
    "load_denoiser",
    "load_emulator",
    "load_shipped_chemistry_check",
    "load_shipped_chemistry_surrogate",
    "load_shipped_denoiser",
    "load_surrogate_ensemble",
    "lsst_y1_like_data",
    "lsst_y1_like_emulator",
    "read_chains",
    "read_des_sn5yr",
    "read_pantheon_binned",
    "read_pantheon_plus",
    "read_convex_ridge",
    "read_data_arrays",
    "read_fits_image",
    "read_massmap_fits",
    "read_radiata_pine",
    "read_union3",
    "read_unrolled",
    "save_denoiser",
    "save_emulator",
    "save_figure_atomic",
    "save_surrogate_ensemble",
    "shipped_shear_data",
    "shipped_shear_emulator",
    "software_provenance",
    "to_json",
    "to_jsonable",
    "write_atomic",
    "write_arviz_netcdf",
    "write_chains_npz",
    "write_convex_ridge",
    "write_fits_image",
    "write_massmap_fits",
    "write_getdist_chains",
    "write_json_atomic",
    "write_npz_atomic",
    "write_posterior_npz",
    "write_text_atomic",
    "write_unrolled",
]

_LAZY = {
    "des_y1_like_data": "astrobayes.io.cosmology_data",
    "des_y1_like_emulator": "astrobayes.io.cosmology_data",
    "lsst_y1_like_data": "astrobayes.io.cosmology_data",
    "lsst_y1_like_emulator": "astrobayes.io.cosmology_data",
    "shipped_shear_data": "astrobayes.io.cosmology_data",
    "shipped_shear_emulator": "astrobayes.io.cosmology_data",
    "read_des_sn5yr": "astrobayes.io.cosmology_data",
    "read_pantheon_binned": "astrobayes.io.cosmology_data",
    "read_pantheon_plus": "astrobayes.io.cosmology_data",
    "read_union3": "astrobayes.io.cosmology_data",
    "load_emulator": "astrobayes.io.emulators",
    "save_emulator": "astrobayes.io.emulators",
    "load_shipped_chemistry_check": "astrobayes.io.surrogates",
    "load_shipped_chemistry_surrogate": "astrobayes.io.surrogates",
    "load_surrogate_ensemble": "astrobayes.io.surrogates",
    "save_surrogate_ensemble": "astrobayes.io.surrogates",
    "read_radiata_pine": "astrobayes.io.problems_data",
    "read_convex_ridge": "astrobayes.io.imaging_files",
    "write_convex_ridge": "astrobayes.io.imaging_files",
    "load_denoiser": "astrobayes.io.denoiser_files",
    "load_shipped_denoiser": "astrobayes.io.denoiser_files",
    "save_denoiser": "astrobayes.io.denoiser_files",
    "read_fits_image": "astrobayes.io.imaging_files",
    "write_fits_image": "astrobayes.io.imaging_files",
    "read_unrolled": "astrobayes.io.unrolled_files",
    "write_unrolled": "astrobayes.io.unrolled_files",
    "read_massmap_fits": "astrobayes.io.massmap_files",
    "write_massmap_fits": "astrobayes.io.massmap_files",
    "write_getdist_chains": "astrobayes.io.getdist_chains",
    "CampaignStore": "astrobayes.io.campaign",
    "read_data_arrays": "astrobayes.io.run_files",
    "write_arviz_netcdf": "astrobayes.io.run_files",
    "write_posterior_npz": "astrobayes.io.run_files",
    "software_provenance": "astrobayes.io.provenance",
}


def __getattr__(name: str) -> Any:
    """Import the data-set and emulator readers on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Public names, the lazy ones included."""
    return sorted(set(globals()) | set(_LAZY))
