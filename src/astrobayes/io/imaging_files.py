"""Reading and writing imaging files: FITS images, Fourier masks, uv coverages, CRR weights.

Only this module (and the CLI) touches files for the imaging code; the learned convex
ridge regulariser's weights (including the package's default, shipped as package data)
are read and written here, the arrays converted by :mod:`astrobayes.imaging.crr`.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from astrobayes.imaging.crr import (
    ConvexRidgeRegulariser,
    ConvexRidgeWeights,
    regulariser_from_arrays,
    regulariser_to_arrays,
)
from astrobayes.io.writers import write_atomic, write_npz_atomic

__all__ = [
    "ObservedVisibilities",
    "default_convex_ridge_path",
    "prepare_protocol_image",
    "read_convex_ridge",
    "read_fits_image",
    "read_fourier_mask",
    "read_uv_points",
    "read_visibilities",
    "write_convex_ridge",
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
    """Write a 2-d image to FITS (overwriting, atomically), with optional header cards.

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
    return write_atomic(path, hdu.writeto)


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


class ObservedVisibilities(NamedTuple):
    """Observed visibilities read by :func:`read_visibilities`.

    Attributes:
        visibilities: Complex visibilities ``(M,)``.
        sigma: Noise standard deviation of each of the real and imaginary parts,
            ``(M,)`` (a scalar in the file is broadcast).
        uv: ``(M, 2)`` coordinates ``(u, v)`` in the file's units, or ``None`` when the
            file has no ``uu``/``vv`` (visibilities on a Fourier mask).
    """

    visibilities: np.ndarray
    sigma: np.ndarray
    uv: np.ndarray | None


def read_visibilities(path: str | Path) -> ObservedVisibilities:
    """Read observed visibilities from an ``.npz`` file (no pickles).

    Layout: ``vis`` (complex, ``(M,)``), ``sigma`` (positive, scalar or ``(M,)``: the
    standard deviation of each of the real and imaginary parts of the noise) and,
    for visibilities at arbitrary baselines, ``uu`` and ``vv`` (``(M,)`` each). Without
    ``uu``/``vv`` the visibilities are the sampled coefficients of a Fourier mask, in
    the order of ``numpy.nonzero(mask)`` on the mask in NumPy's FFT layout.

    Args:
        path: The ``.npz`` file.

    Returns:
        :class:`ObservedVisibilities`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If an array is missing, has the wrong shape or dtype, or is not
            finite, or a ``sigma`` is not positive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"visibilities file not found: {path}")
    with np.load(path, allow_pickle=False) as content:
        missing = {"vis", "sigma"} - set(content.files)
        if missing:
            raise ValueError(
                f"{path} must contain arrays 'vis' (complex) and 'sigma'; missing {sorted(missing)}"
            )
        vis = np.asarray(content["vis"])
        sigma = np.asarray(content["sigma"], dtype=np.float64)
        has_u, has_v = "uu" in content.files, "vv" in content.files
        if has_u != has_v:
            raise ValueError(f"{path} must contain both 'uu' and 'vv' or neither")
        uv = None
        if has_u:
            uu = np.asarray(content["uu"], dtype=np.float64)
            vv = np.asarray(content["vv"], dtype=np.float64)
            if uu.ndim != 1 or uu.shape != vv.shape:
                raise ValueError(
                    f"'uu' and 'vv' must be 1-d of equal length; got {uu.shape} and {vv.shape}"
                )
            uv = np.stack([uu, vv], axis=1)
    if vis.ndim != 1 or vis.size == 0:
        raise ValueError(f"'vis' must be a non-empty 1-d array; got shape {vis.shape}")
    if not np.iscomplexobj(vis):
        raise ValueError(f"'vis' must be complex (real and imaginary parts); got dtype {vis.dtype}")
    vis = vis.astype(np.complex128)
    if not np.all(np.isfinite(vis)):
        raise ValueError(f"'vis' has {int(np.sum(~np.isfinite(vis)))} non-finite entries")
    if sigma.ndim == 0:
        sigma = np.full(vis.shape, float(sigma))
    if sigma.shape != vis.shape:
        raise ValueError(f"'sigma' must be a scalar or have shape {vis.shape}; got {sigma.shape}")
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ValueError("'sigma' must be positive and finite")
    if uv is not None:
        if uv.shape[0] != vis.shape[0]:
            raise ValueError(f"'uu'/'vv' have {uv.shape[0]} entries but 'vis' has {vis.shape[0]}")
        if not np.all(np.isfinite(uv)):
            raise ValueError("'uu' and 'vv' must be finite")
    return ObservedVisibilities(visibilities=vis, sigma=sigma, uv=uv)


def default_convex_ridge_path() -> Path:
    """Path of the shipped CRR weights (package data ``astrobayes/imaging/weights``)."""
    return Path(str(resources.files("astrobayes.imaging") / "weights" / "crr_default.npz"))


def read_convex_ridge(path: str | Path | None = None) -> ConvexRidgeWeights:
    """Read CRR weights written by :func:`write_convex_ridge` (default: the shipped ones).

    The file is opened once; the regulariser and its metadata (e.g. ``sigma_train``)
    come back together.

    Args:
        path: ``.npz`` file, or ``None`` for the package's default weights.

    Returns:
        :class:`~astrobayes.imaging.crr.ConvexRidgeWeights`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If an entry is missing (naming the file and the entry).

    Example:
        >>> weights = read_convex_ridge()
        >>> weights.regulariser.num_channels > 0, weights.sigma_train > 0
        (True, True)
    """
    path = default_convex_ridge_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CRR weights not found: {path}")
    with np.load(path, allow_pickle=False) as content:
        arrays = {name: np.asarray(content[name]) for name in content.files}
    try:
        return regulariser_from_arrays(arrays)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def write_convex_ridge(path: str | Path, regulariser: ConvexRidgeRegulariser, **metadata) -> Path:
    """Write a regulariser as a plain ``.npz`` (no pickles), atomically.

    Args:
        path: Output file.
        regulariser: The regulariser.
        **metadata: Extra scalar or string entries (e.g. ``sigma_train``), stored as
            ``meta_<key>``.

    Returns:
        The path written.
    """
    return write_npz_atomic(path, **regulariser_to_arrays(regulariser, **metadata))
