"""Reading and writing imaging files: FITS images, Fourier masks, uv coverages.

Only this module (and the CLI) touches files for the imaging code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "prepare_protocol_image",
    "read_fits_image",
    "read_fourier_mask",
    "read_uv_points",
    "write_fits_image",
]


def read_fits_image(path: str | Path, *, hdu: int = 0) -> np.ndarray:
    """Read a 2-d image from a FITS file (degenerate leading axes are dropped).

    Non-standard header cards (common in archival radio images, e.g. an invalid
    ``INSTRUME`` card in the QuantifAI study's M31 file) are tolerated: astropy's
    warnings about them are silenced because only the data are used.

    Args:
        path: FITS file.
        hdu: HDU index.

    Returns:
        The image as ``float64`` with shape ``(height, width)``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the HDU holds no 2-d image or the image is not finite.

    """
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning
    from astropy.utils.exceptions import AstropyUserWarning

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FITS image not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        warnings.filterwarnings(
            "ignore", "The following header keyword is invalid", AstropyUserWarning
        )
        with fits.open(path, memmap=False) as hdul:
            if hdu >= len(hdul):
                raise ValueError(f"{path} has {len(hdul)} HDUs; hdu={hdu} requested")
            data = hdul[hdu].data
            data = None if data is None else np.array(data, dtype=np.float64)
    if data is None:
        raise ValueError(f"HDU {hdu} of {path} holds no data")
    data = np.squeeze(data)
    if data.ndim != 2:
        raise ValueError(f"{path} must hold a 2-d image; got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path} contains {int(np.sum(~np.isfinite(data)))} non-finite pixels")
    return data


def write_fits_image(path: str | Path, image: np.ndarray, *, header: dict | None = None) -> Path:
    """Write a 2-d image to FITS (overwriting), with optional header cards.

    Args:
        path: Output file.
        image: 2-d array.
        header: Extra cards ``{KEY: value}`` (keys up to 8 characters).

    Returns:
        The path written.

    Raises:
        ValueError: If the image is not 2-d.

    """
    from astropy.io import fits

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-d; got shape {image.shape}")
    hdu = fits.PrimaryHDU(image)
    for key, value in (header or {}).items():
        hdu.header[str(key)[:8].upper()] = value
    path = Path(path)
    hdu.writeto(path, overwrite=True)
    return path


def read_fourier_mask(path: str | Path, *, shape: tuple[int, int]) -> np.ndarray:
    """Read a Fourier sampling mask in NumPy's FFT layout.

    Two formats:

    * MATLAB ``.mat`` with a sparse selection matrix ``Ma`` of shape ``(M, N)`` (the
      QuantifAI study's masks): its column sums, reshaped in Fortran order to
      ``shape``, give the boolean mask. These masks are in NumPy's FFT layout (zero
      frequency at ``[0, 0]``; they are densest at the corners), which is how the study
      applies them (``fft2(x) * mask``).
    * ``.npy``: a boolean (or 0/1) array of ``shape``.

    Args:
        path: The file.
        shape: Image shape ``(height, width)``.

    Returns:
        Boolean mask of ``shape``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: On an unknown extension, a missing ``Ma`` matrix or a shape
            mismatch.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    shape = tuple(int(n) for n in shape)
    if path.suffix == ".mat":
        import scipy.io

        content = scipy.io.loadmat(path)
        if "Ma" not in content:
            raise ValueError(f"{path} has no selection matrix 'Ma'")
        selection = content["Ma"]
        if selection.shape[1] != shape[0] * shape[1]:
            raise ValueError(
                f"mask shape mismatch: {path} selects from {selection.shape[1]} coefficients "
                f"but the image {shape} has {shape[0] * shape[1]}"
            )
        mask = np.asarray(selection.sum(axis=0)).reshape(shape, order="F") > 0
    elif path.suffix == ".npy":
        mask = np.load(path, allow_pickle=False)
        if mask.shape != shape:
            raise ValueError(f"mask shape mismatch: {path} has shape {mask.shape}, image {shape}")
        if mask.dtype != bool and not np.all(np.isin(mask, (0, 1))):
            raise ValueError(f"{path} must hold a boolean or 0/1 mask")
        mask = mask.astype(bool)
    else:
        raise ValueError(f"unknown mask format {path.suffix!r}; use .mat (sparse 'Ma') or .npy")
    return mask


def read_uv_points(path: str | Path) -> np.ndarray:
    """Read uv points ``(M, 2)`` from an ``.npz`` with arrays ``uu`` and ``vv``.

    Args:
        path: The ``.npz`` file (read without pickles).

    Returns:
        Array ``(M, 2)`` of ``(u, v)`` in the file's units.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If ``uu`` or ``vv`` is missing or they differ in length.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"uv file not found: {path}")
    with np.load(path, allow_pickle=False) as content:
        if "uu" not in content or "vv" not in content:
            raise ValueError(f"{path} must contain arrays 'uu' and 'vv'")
        uu = np.asarray(content["uu"], dtype=np.float64).ravel()
        vv = np.asarray(content["vv"], dtype=np.float64).ravel()
    if uu.shape != vv.shape:
        raise ValueError(f"uu and vv differ in length: {uu.shape} vs {vv.shape}")
    return np.stack([uu, vv], axis=1)


def prepare_protocol_image(image: np.ndarray, *, flip: bool = True) -> np.ndarray:
    """Apply the QuantifAI protocol's preprocessing: flip up-down, rescale to ``[0, 1]``.

    Args:
        image: 2-d image.
        flip: Flip up-down (FITS rows run bottom to top).

    Returns:
        The processed image (float64).

    Raises:
        ValueError: If the image is constant.

    """
    image = np.asarray(image, dtype=np.float64)
    if flip:
        image = np.flipud(image)
    span = image.max() - image.min()
    if span <= 0:
        raise ValueError("image is constant; cannot normalise to [0, 1]")
    return (image - image.min()) / span
