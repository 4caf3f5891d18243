"""Mass maps to FITS: posterior mean, standard deviation and optional truth as extensions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astrobayes.io.writers import write_atomic

__all__ = ["read_massmap_fits", "write_massmap_fits"]


def write_massmap_fits(
    path: str | Path,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    truth: np.ndarray | None = None,
    header: dict | None = None,
) -> Path:
    """Write a convergence map and its standard deviation as FITS image extensions.

    Extensions ``MEAN``, ``STD`` and (when given) ``TRUTH``, float32, written atomically.

    Args:
        path: Output ``.fits`` file.
        mean: Posterior mean map, 2-d.
        std: Posterior standard deviation map, same shape.
        truth: Optional true map, same shape.
        header: Extra primary-header cards ``{KEY: value}`` (keys up to 8 characters).

    Returns:
        The path written.

    Raises:
        ValueError: If a map is not 2-d or the shapes differ.

    Example:
        >>> import tempfile, numpy as np
        >>> path = write_massmap_fits(tempfile.mkdtemp() + "/k.fits", np.zeros((4, 4)), np.ones((4, 4)))
        >>> sorted(read_massmap_fits(path))
        ['MEAN', 'STD']

    """
    from astropy.io import fits

    maps = {"MEAN": mean, "STD": std} | ({} if truth is None else {"TRUTH": truth})
    maps = {name: np.asarray(value, np.float32) for name, value in maps.items()}
    shape = maps["MEAN"].shape
    for name, value in maps.items():
        if value.ndim != 2 or value.shape != shape:
            raise ValueError(
                f"{name.lower()} must be a 2-d map of shape {shape}; got {value.shape}"
            )
    primary = fits.PrimaryHDU()
    for key, value in (header or {}).items():
        primary.header[str(key)[:8].upper()] = value
    hdus = fits.HDUList([primary] + [fits.ImageHDU(v, name=n) for n, v in maps.items()])
    return write_atomic(path, hdus.writeto)


def read_massmap_fits(path: str | Path) -> dict[str, np.ndarray]:
    """The image extensions of a file written by :func:`write_massmap_fits`, by name."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdus:
        return {hdu.name: np.asarray(hdu.data) for hdu in hdus[1:]}
