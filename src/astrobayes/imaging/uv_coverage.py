"""Randomised uv-coverages and simulated observations for training learned imaging.

Coverages are arrays of ``(u, v)`` points; the numerical core never reads files (read a
track with :func:`astrobayes.io.imaging_files.read_uv_points` and pass the array in).
Points are either in wavelengths or, for the NUFFT, in radians per pixel
(``2 pi (u, v) * pixel_size``, in ``[-pi, pi]``: the convention of the shared MeerKAT
tracks and of :func:`~astrobayes.imaging.nufft.nufft_operator_from_pixel_phases`).

* From a given track (time-major: ``num_times`` blocks of ``num_baselines`` points, as
  the shared MeerKAT tracks are): :func:`track_time_range` (a duration / hour-angle
  range), :func:`track_baseline_subset` (flagged baselines), :func:`rotate_uv` (a
  rotation of the uv plane, i.e. of the sky), and :func:`random_track_coverage`, which
  draws all three from a key.
* A random array observed with Earth-rotation synthesis: :func:`random_antenna_layout`,
  :func:`earth_rotation_uv` (Thompson, Moran & Swenson 2017, eqs. 4.1-4.4) and
  :func:`random_array_coverage`.
* :func:`pixel_phases` turns uv in wavelengths into radians per pixel (isotropically or
  per axis, as the shared tracks were made); :func:`uniform_density_weights` gives
  uniform-weighting densities on the image's Fourier grid (a filter for a filtered
  data-fidelity gradient).
* :func:`simulate_observations` observes skies through one coverage: the Toeplitz normal
  operator (:mod:`~astrobayes.imaging.toeplitz`), and the dirty (back-projected) data
  ``Phi^H y`` with ``y = Phi x + n``, ``n`` complex Gaussian at a given input SNR. The
  noise is the real thing: drawn in visibility space
  (:func:`~astrobayes.imaging.operators.add_complex_noise`, level from
  :func:`~astrobayes.imaging.operators.noise_sigma_from_isnr`) and back-projected by the
  adjoint NUFFT, exactly as :func:`~astrobayes.imaging.problem.build_problem` does.
  :func:`simulate_training_set` does it for many skies and coverages.

References:
    Thompson, Moran & Swenson 2017, "Interferometry and Synthesis in Radio Astronomy",
    3rd ed., chapter 4 (baselines, uv tracks of Earth-rotation synthesis).
    Briggs 1995, PhD thesis (uniform weighting).
    Mars et al. 2024, arXiv:2405.08958 (training with varying visibility coverage).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from astrobayes._checks import check_finite, check_key
from astrobayes._types import ProgressFn
from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import add_complex_noise, noise_sigma_from_isnr
from astrobayes.imaging.toeplitz import (
    NormalOperator,
    _check_weights,
    stack_normal_operators,
    toeplitz_normal_operator,
)

__all__ = [
    "MEERKAT_LATITUDE_DEG",
    "Observations",
    "TrainingSet",
    "direct_toeplitz_spectrum",
    "earth_rotation_uv",
    "pixel_phases",
    "random_antenna_layout",
    "random_array_coverage",
    "random_track_coverage",
    "rotate_uv",
    "simulate_observations",
    "simulate_observations_direct",
    "simulate_training_set",
    "track_baseline_subset",
    "track_time_range",
    "uniform_density_weights",
]

#: Geodetic latitude of the MeerKAT site (degrees; Jonas et al. 2016).
MEERKAT_LATITUDE_DEG = -30.7130


def _check_points(points, name="points") -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape (M, 2) with M >= 1; got {array.shape}")
    check_finite(array, name)
    return array


def _check_track(points, num_times) -> tuple[np.ndarray, int]:
    array = _check_points(points)
    if isinstance(num_times, bool) or int(num_times) != num_times or num_times < 1:
        raise ValueError(f"num_times must be a positive integer; got {num_times!r}")
    num_times = int(num_times)
    if array.shape[0] % num_times:
        raise ValueError(
            f"points has {array.shape[0]} rows, not a multiple of num_times={num_times} "
            "(a time-major track has num_times blocks of num_baselines points)"
        )
    return array, array.shape[0] // num_times


def track_time_range(
    points: Float[Array, "num_points 2"], *, num_times: int, start: int, stop: int
) -> Float[np.ndarray, "num_selected 2"]:
    """Time steps ``start <= t < stop`` of a time-major track: a shorter hour-angle range.

    Args:
        points: ``(num_times * num_baselines, 2)`` track, time-major (the first
            ``num_baselines`` rows are the first time step).
        num_times: Number of time steps in the track.
        start: First time step kept.
        stop: One past the last time step kept.

    Returns:
        The ``((stop - start) * num_baselines, 2)`` points.

    Raises:
        ValueError: On a bad shape, a row count that is not a multiple of
            ``num_times``, or an empty or out-of-range ``[start, stop)``.

    Example:
        >>> import numpy as np
        >>> track = np.arange(12.0).reshape(6, 2)   # 3 times x 2 baselines
        >>> track_time_range(track, num_times=3, start=1, stop=3)[:, 0]
        array([ 4.,  6.,  8., 10.])

    """
    array, num_baselines = _check_track(points, num_times)
    if not (0 <= int(start) < int(stop) <= num_times):
        raise ValueError(f"need 0 <= start < stop <= num_times={num_times}; got {start}, {stop}")
    return array[int(start) * num_baselines : int(stop) * num_baselines]


def track_baseline_subset(
    points: Float[Array, "num_points 2"], *, num_times: int, baselines: Int[Array, " num_kept"]
) -> Float[np.ndarray, "num_selected 2"]:
    """Keep the given baselines at every time step (flagged baselines or antennas).

    Args:
        points: Time-major track (see :func:`track_time_range`).
        num_times: Number of time steps.
        baselines: Indices in ``[0, num_baselines)`` of the baselines kept.

    Returns:
        ``(num_times * len(baselines), 2)`` points, time-major.

    Raises:
        ValueError: On a bad track or baseline indices out of range or empty.

    Example:
        >>> import numpy as np
        >>> track = np.arange(12.0).reshape(6, 2)   # 3 times x 2 baselines
        >>> track_baseline_subset(track, num_times=3, baselines=[1])[:, 0]
        array([ 2.,  6., 10.])

    """
    array, num_baselines = _check_track(points, num_times)
    index = np.asarray(baselines)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"baselines must be a non-empty 1-d integer array; got {baselines!r}")
    if index.min() < 0 or index.max() >= num_baselines:
        raise ValueError(
            f"baselines must lie in [0, {num_baselines}); got {index.min()}..{index.max()}"
        )
    return array.reshape(num_times, num_baselines, 2)[:, index].reshape(-1, 2)


def rotate_uv(
    points: Float[Array, "num_points 2"], angle: float, *, limit: float | None = math.pi
) -> Float[np.ndarray, "num_kept 2"]:
    """Rotate the uv plane by ``angle`` radians (the sky rotates by the same angle).

    Args:
        points: ``(M, 2)`` uv points.
        angle: Rotation angle in radians (counter-clockwise in the ``(u, v)`` plane).
        limit: Drop rotated points with ``|u|`` or ``|v|`` above it (default ``pi``:
            the Nyquist square of points in radians per pixel; a disc of radius
            ``limit`` is always kept whole). ``None`` keeps all.

    Returns:
        The rotated points inside the limit.

    Raises:
        ValueError: On a bad shape, a non-finite angle or every point dropped.

    Example:
        >>> import numpy as np
        >>> rotate_uv(np.array([[1.0, 0.0]]), np.pi / 2).round(6)
        array([[0., 1.]])

    """
    array = _check_points(points)
    if not np.isfinite(angle):
        raise ValueError(f"angle must be finite; got {angle!r}")
    cos, sin = math.cos(angle), math.sin(angle)
    rotated = array @ np.array([[cos, sin], [-sin, cos]])
    if limit is not None:
        rotated = rotated[np.all(np.abs(rotated) <= limit, axis=1)]
        if rotated.shape[0] == 0:
            raise ValueError("every rotated point fell outside the limit")
    return rotated


def random_track_coverage(
    key: jax.Array,
    points: Float[Array, "num_points 2"],
    *,
    num_times: int,
    duration_range: tuple[float, float] = (0.25, 1.0),
    baseline_fraction_range: tuple[float, float] = (0.6, 1.0),
    rotate: bool = True,
) -> Float[np.ndarray, "num_selected 2"]:
    """A random variant of a track: a time window, a subset of baselines, a rotation.

    The window covers a fraction of the time steps uniform in ``duration_range`` at a
    uniform start (a shorter observation at a random hour angle); each baseline is kept
    with a probability uniform in ``baseline_fraction_range`` (flagging); the uv plane is
    rotated by a uniform angle when ``rotate`` (points leaving ``[-pi, pi]^2`` dropped:
    use points in radians per pixel).

    Args:
        key: JAX PRNG key.
        points: Time-major track (see :func:`track_time_range`).
        num_times: Number of time steps.
        duration_range: Range of the fraction of time steps kept, in ``(0, 1]``.
        baseline_fraction_range: Range of the fraction of baselines kept, in ``(0, 1]``.
        rotate: Rotate by a random angle.

    Returns:
        The points of the random coverage.

    Raises:
        ValueError: On a bad track or ranges outside ``(0, 1]``.

    Example:
        >>> import jax, numpy as np
        >>> track = np.random.default_rng(0).uniform(-1, 1, (40, 2))
        >>> random_track_coverage(jax.random.key(0), track, num_times=4).shape[1]
        2

    """
    check_key(key)
    array, num_baselines = _check_track(points, num_times)
    for name, (low, high) in (
        ("duration_range", duration_range),
        ("baseline_fraction_range", baseline_fraction_range),
    ):
        if not 0 < low <= high <= 1:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1; got {(low, high)}")
    key_draws, key_baselines = jax.random.split(key)
    u = np.asarray(jax.random.uniform(key_draws, (4,)), np.float64)
    fraction = duration_range[0] + (duration_range[1] - duration_range[0]) * u[0]
    length = min(num_times, max(1, round(fraction * num_times)))
    start = min(num_times - length, int(u[1] * (num_times - length + 1)))
    selected = track_time_range(array, num_times=num_times, start=start, stop=start + length)
    keep_fraction = (
        baseline_fraction_range[0]
        + (baseline_fraction_range[1] - baseline_fraction_range[0]) * u[2]
    )
    kept = np.asarray(jax.random.uniform(key_baselines, (num_baselines,))) < keep_fraction
    if not kept.any():
        kept[int(u[3] * num_baselines) % num_baselines] = True
    selected = track_baseline_subset(selected, num_times=length, baselines=np.flatnonzero(kept))
    if rotate:
        selected = rotate_uv(selected, 2.0 * math.pi * u[3])
    return selected


def random_antenna_layout(
    key: jax.Array,
    num_antennas: int,
    *,
    core_radius_m: float = 500.0,
    max_radius_m: float = 4000.0,
    core_fraction: float = 0.7,
) -> Float[np.ndarray, "num_antennas 3"]:
    """Random antenna positions ``(east, north, up)`` in metres, centrally concentrated.

    A fraction ``core_fraction`` of the antennas lies in a Gaussian core of scale
    ``core_radius_m`` (as MeerKAT's ~70% within 1 km), the rest at radii log-uniform
    between ``core_radius_m`` and ``max_radius_m`` and uniform azimuths; ``up`` is 0.

    Args:
        key: JAX PRNG key.
        num_antennas: Number of antennas (>= 2).
        core_radius_m: Core scale in metres.
        max_radius_m: Largest distance from the centre, in metres.
        core_fraction: Fraction of antennas in the core, in ``[0, 1]``.

    Returns:
        ``(num_antennas, 3)`` positions.

    Raises:
        ValueError: On a bad count, radii or fraction.

    Example:
        >>> import jax
        >>> random_antenna_layout(jax.random.key(0), 5).shape
        (5, 3)

    """
    check_key(key)
    if isinstance(num_antennas, bool) or int(num_antennas) != num_antennas or num_antennas < 2:
        raise ValueError(f"num_antennas must be an integer >= 2; got {num_antennas!r}")
    if not 0 < core_radius_m < max_radius_m:
        raise ValueError(
            f"need 0 < core_radius_m < max_radius_m; got {core_radius_m}, {max_radius_m}"
        )
    if not 0 <= core_fraction <= 1:
        raise ValueError(f"core_fraction must be in [0, 1]; got {core_fraction}")
    num_antennas = int(num_antennas)
    key_core, key_outer = jax.random.split(key)
    num_core = round(core_fraction * num_antennas)
    core = np.asarray(jax.random.normal(key_core, (num_core, 2)), np.float64) * core_radius_m
    u = np.asarray(jax.random.uniform(key_outer, (num_antennas - num_core, 2)), np.float64)
    radius = core_radius_m * (max_radius_m / core_radius_m) ** u[:, 0]
    azimuth = 2 * math.pi * u[:, 1]
    outer = np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth)], axis=1)
    east_north = np.concatenate([core, outer])
    return np.concatenate([east_north, np.zeros((num_antennas, 1))], axis=1)


def earth_rotation_uv(
    antennas_enu: Float[Array, "num_antennas 3"],
    *,
    latitude_deg: float,
    declination_deg: float,
    hour_angles: Float[Array, " num_times"],
    wavelength_m: float,
) -> Float[np.ndarray, "num_points 2"]:
    """The uv tracks of all baselines through Earth rotation (time-major), in wavelengths.

    Baseline ``b = r_j - r_i`` (``i < j``) in local ``(E, N, U)`` becomes equatorial
    ``X = -N sin(lat) + U cos(lat)``, ``Y = E``, ``Z = N cos(lat) + U sin(lat)``, and
    at hour angle ``H`` towards declination ``dec``
    ``u = sin(H) X + cos(H) Y``,
    ``v = -sin(dec) cos(H) X + sin(dec) sin(H) Y + cos(dec) Z``
    (Thompson, Moran & Swenson 2017, eqs. 4.1, 4.4), divided by the wavelength.

    Args:
        antennas_enu: ``(A, 3)`` antenna positions (east, north, up) in metres.
        latitude_deg: Site latitude in degrees.
        declination_deg: Source declination in degrees.
        hour_angles: ``(T,)`` hour angles in radians.
        wavelength_m: Observing wavelength in metres.

    Returns:
        ``(T * A (A - 1) / 2, 2)`` uv points in wavelengths, time-major (the baselines
        in the order of ``numpy.triu_indices(A, 1)`` at each time).

    Raises:
        ValueError: On bad shapes, non-finite values or a non-positive wavelength.

    Example:
        >>> import numpy as np
        >>> ants = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])   # an east-west pair
        >>> earth_rotation_uv(ants, latitude_deg=-30.0, declination_deg=-90.0,
        ...                   hour_angles=np.array([0.0]), wavelength_m=0.2).round(6)
        array([[500.,   0.]])

    """
    enu = np.asarray(antennas_enu, dtype=np.float64)
    if enu.ndim != 2 or enu.shape[1] != 3 or enu.shape[0] < 2:
        raise ValueError(f"antennas_enu must have shape (A, 3) with A >= 2; got {enu.shape}")
    check_finite(enu, "antennas_enu")
    hour = np.atleast_1d(np.asarray(hour_angles, dtype=np.float64))
    if hour.ndim != 1 or hour.size == 0:
        raise ValueError(f"hour_angles must be a non-empty 1-d array; got shape {hour.shape}")
    check_finite(hour, "hour_angles")
    for name, value in (("latitude_deg", latitude_deg), ("declination_deg", declination_deg)):
        if not (np.isfinite(value) and -90 <= value <= 90):
            raise ValueError(f"{name} must be in [-90, 90]; got {value!r}")
    if not (np.isfinite(wavelength_m) and wavelength_m > 0):
        raise ValueError(f"wavelength_m must be positive and finite; got {wavelength_m!r}")
    first, second = np.triu_indices(enu.shape[0], 1)
    east, north, up = (enu[second] - enu[first]).T
    lat, dec = math.radians(latitude_deg), math.radians(declination_deg)
    x = -north * math.sin(lat) + up * math.cos(lat)
    y = east
    z = north * math.cos(lat) + up * math.sin(lat)
    sin_h, cos_h = np.sin(hour)[:, None], np.cos(hour)[:, None]
    u = sin_h * x + cos_h * y
    v = -math.sin(dec) * cos_h * x + math.sin(dec) * sin_h * y + math.cos(dec) * z
    return np.stack([u.ravel(), v.ravel()], axis=1) / wavelength_m


def pixel_phases(
    uv_wavelengths: Float[Array, "num_points 2"],
    *,
    pixel_size_arcsec: float | None = None,
    extent: float | None = None,
    per_axis: bool = False,
) -> Float[np.ndarray, "num_points 2"]:
    """Convert uv in wavelengths to radians per pixel, ``2 pi (u, v) * pixel_size``.

    Give either the pixel size, or ``extent``: then the pixel size is chosen so that
    the longest ``|u|`` or ``|v|`` maps to ``extent`` (in ``(0, pi]``), and with
    ``per_axis=True`` each axis is rescaled separately to ``[-extent, extent]`` (as the
    shared MeerKAT tracks were made: not a physical pixel, but their convention).

    Args:
        uv_wavelengths: ``(M, 2)`` uv points in wavelengths.
        pixel_size_arcsec: Pixel size in arcseconds.
        extent: Largest phase, in ``(0, pi]``.
        per_axis: Rescale each axis separately (only with ``extent``).

    Returns:
        ``(M, 2)`` phases per pixel.

    Raises:
        ValueError: If neither or both of ``pixel_size_arcsec`` and ``extent`` are given,
            a phase would exceed ``pi`` (aliasing) or the points are all zero.

    Example:
        >>> import numpy as np
        >>> pixel_phases(np.array([[10.0, -5.0]]), extent=np.pi).round(4)
        array([[ 3.1416, -1.5708]])

    """
    uv = _check_points(uv_wavelengths, "uv_wavelengths")
    if (pixel_size_arcsec is None) == (extent is None):
        raise ValueError("give exactly one of pixel_size_arcsec and extent")
    if extent is not None:
        if not 0 < extent <= math.pi:
            raise ValueError(f"extent must be in (0, pi]; got {extent!r}")
        scale = np.max(np.abs(uv), axis=0) if per_axis else np.max(np.abs(uv))
        if np.any(scale == 0):
            raise ValueError("uv_wavelengths are all zero along an axis; cannot rescale")
        return uv / scale * extent
    if per_axis:
        raise ValueError("per_axis needs extent, not pixel_size_arcsec")
    if not (np.isfinite(pixel_size_arcsec) and pixel_size_arcsec > 0):
        raise ValueError(f"pixel_size_arcsec must be positive; got {pixel_size_arcsec!r}")
    phases = 2 * math.pi * uv * pixel_size_arcsec * math.pi / (180.0 * 3600.0)
    if np.max(np.abs(phases)) > math.pi * (1 + 1e-9):
        raise ValueError(
            "a baseline exceeds the Nyquist limit 1/(2 pixel) at this pixel size; use a "
            "smaller pixel"
        )
    return phases


def random_array_coverage(
    key: jax.Array,
    *,
    num_antennas_range: tuple[int, int] = (16, 64),
    declination_range_deg: tuple[float, float] = (-80.0, 10.0),
    duration_range_hours: tuple[float, float] = (0.5, 4.0),
    num_times_range: tuple[int, int] = (8, 32),
    extent_range: tuple[float, float] = (0.6, 1.0),
    latitude_deg: float = MEERKAT_LATITUDE_DEG,
    max_radius_m: float = 4000.0,
) -> Float[np.ndarray, "num_points 2"]:
    """A random array observed by Earth-rotation synthesis, in radians per pixel.

    Draws an antenna layout (:func:`random_antenna_layout`), a declination, an
    observation of random duration centred on a random hour angle within +-2 h of
    transit, and a number of time steps; computes the tracks
    (:func:`earth_rotation_uv`, 21 cm) and rescales them isotropically so the longest
    ``|u|``, ``|v|`` is ``extent * pi`` (a random resolution relative to the pixel).

    Args:
        key: JAX PRNG key.
        num_antennas_range: Inclusive range of the antenna count.
        declination_range_deg: Range of the declination (degrees).
        duration_range_hours: Range of the observation length (hours).
        num_times_range: Inclusive range of the number of time steps.
        extent_range: Range of the largest phase in units of ``pi``, in ``(0, 1]``.
        latitude_deg: Site latitude (default MeerKAT's).
        max_radius_m: Largest antenna distance from the centre (metres).

    Returns:
        ``(num_times * num_baselines, 2)`` points in radians per pixel, time-major.

    Raises:
        ValueError: On bad ranges.

    Example:
        >>> import jax
        >>> pts = random_array_coverage(jax.random.key(0), num_antennas_range=(4, 4),
        ...                             num_times_range=(3, 3))
        >>> pts.shape, bool(abs(pts).max() <= 3.1416)
        ((18, 2), True)

    """
    check_key(key)
    low_a, high_a = (int(n) for n in num_antennas_range)
    low_t, high_t = (int(n) for n in num_times_range)
    if not 2 <= low_a <= high_a:
        raise ValueError(
            f"num_antennas_range must satisfy 2 <= low <= high; got {num_antennas_range}"
        )
    if not 1 <= low_t <= high_t:
        raise ValueError(f"num_times_range must satisfy 1 <= low <= high; got {num_times_range}")
    if not 0 < duration_range_hours[0] <= duration_range_hours[1] <= 24:
        raise ValueError(f"duration_range_hours must lie in (0, 24]; got {duration_range_hours}")
    if not 0 < extent_range[0] <= extent_range[1] <= 1:
        raise ValueError(f"extent_range must lie in (0, 1]; got {extent_range}")
    if not -90 <= declination_range_deg[0] <= declination_range_deg[1] <= 90:
        raise ValueError(
            f"declination_range_deg must lie in [-90, 90]; got {declination_range_deg}"
        )
    key_draws, key_layout = jax.random.split(key)
    u = np.asarray(jax.random.uniform(key_draws, (6,)), np.float64)
    num_antennas = low_a + min(high_a - low_a, int(u[0] * (high_a - low_a + 1)))
    num_times = low_t + min(high_t - low_t, int(u[1] * (high_t - low_t + 1)))
    declination = (
        declination_range_deg[0] + (declination_range_deg[1] - declination_range_deg[0]) * u[2]
    )
    duration = duration_range_hours[0] + (duration_range_hours[1] - duration_range_hours[0]) * u[3]
    centre = (4.0 * u[4] - 2.0) * math.pi / 12.0
    half = 0.5 * duration * math.pi / 12.0
    hour_angles = np.linspace(centre - half, centre + half, num_times)
    extent = math.pi * (extent_range[0] + (extent_range[1] - extent_range[0]) * u[5])
    antennas = random_antenna_layout(key_layout, num_antennas, max_radius_m=max_radius_m)
    uv = earth_rotation_uv(
        antennas,
        latitude_deg=latitude_deg,
        declination_deg=declination,
        hour_angles=hour_angles,
        wavelength_m=0.21,
    )
    return pixel_phases(uv, extent=extent)


def uniform_density_weights(
    points: Float[Array, "num_points 2"], *, image_shape: tuple[int, int]
) -> Float[np.ndarray, " num_points"]:
    """Uniform weighting ``1 / n_cell`` on the image's discrete Fourier grid (Briggs 1995).

    The cells have size ``2 pi / N`` in phase per pixel; weights are normalised to mean
    one. Use them as the filter ``W`` of a filtered data-fidelity gradient
    ``Phi^H W (Phi x - y)`` (``toeplitz_normal_operator(op, weights=w)``).

    Args:
        points: ``(M, 2)`` phases per pixel.
        image_shape: ``(height, width)``.

    Returns:
        ``(M,)`` weights.

    Raises:
        ValueError: On a bad shape or non-finite points.

    Example:
        >>> import numpy as np
        >>> uniform_density_weights(np.array([[0.0, 0.0], [0.01, 0.0], [2.0, 1.0]]),
        ...                         image_shape=(8, 8)).round(3)
        array([0.75, 0.75, 1.5 ])

    """
    array = _check_points(points)
    height, width = (int(n) for n in image_shape)
    cell_u = np.round(array[:, 0] * width / (2 * math.pi)).astype(np.int64)
    cell_v = np.round(array[:, 1] * height / (2 * math.pi)).astype(np.int64)
    _, inverse, counts = np.unique(
        np.stack([cell_u, cell_v], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    weights = 1.0 / counts[inverse.reshape(-1)]
    return weights / weights.mean()


class Observations(NamedTuple):
    """Skies observed through one coverage (from :func:`simulate_observations`).

    Attributes:
        backprojection: ``(N, H, W)`` dirty data ``Phi^H y`` (not peak-normalised;
            divide by ``normal.psf_peak()`` for the usual dirty image). The
            data-fidelity gradient at ``x`` is ``normal(x) - backprojection``.
        normal: The Toeplitz :class:`~astrobayes.imaging.toeplitz.NormalOperator`
            ``Phi^H Phi``.
        sigma: ``(N,)`` noise standard deviation of each of the real and imaginary
            parts of every visibility.
        isnr_db: ``(N,)`` input SNR of each observation.
        filtered_backprojection: ``Phi^H W y`` when ``filter_weights`` were given, else
            ``None``.
        filtered_normal: ``Phi^H W Phi`` when ``filter_weights`` were given, else
            ``None``.

    """

    backprojection: Float[Array, "num_skies height width"]
    normal: NormalOperator
    sigma: Float[np.ndarray, " num_skies"]
    isnr_db: Float[np.ndarray, " num_skies"]
    filtered_backprojection: Float[Array, "num_skies height width"] | None
    filtered_normal: NormalOperator | None


def simulate_observations(
    key: jax.Array,
    skies: Float[Array, "num_skies height width"],
    points: Float[Array, "num_points 2"],
    *,
    isnr_db: float | Float[Array, " num_skies"],
    filter_weights: Float[Array, " num_points"] | None = None,
    split_complex: bool = False,
    eps: float = 1e-6,
    pad_multiple: int | None = 4096,
) -> Observations:
    """Observe skies through one coverage: Toeplitz normal operator and noisy ``Phi^H y``.

    ``y = Phi x + n`` with the NUFFT ``Phi`` at ``points`` (radians per pixel), ``n``
    complex Gaussian with the level of
    :func:`~astrobayes.imaging.operators.noise_sigma_from_isnr` for each sky's ISNR;
    ``Phi^H y`` by the adjoint NUFFT (so the back-projected noise is exactly
    ``Phi^H n``, correlated by the PSF as in real data). The NUFFTs run batched over
    the skies (jax-finufft's leading axis); the normal operator is computed once.

    Args:
        key: JAX PRNG key (the noise).
        skies: ``(N, H, W)`` or ``(H, W)`` true images.
        points: ``(M, 2)`` uv points in radians per pixel.
        isnr_db: Input SNR in dB, one number or one per sky (> 0).
        filter_weights: Optional ``(M,)`` weights ``W`` (e.g.
            :func:`uniform_density_weights`): also returns ``Phi^H W y`` and
            ``Phi^H W Phi``.
        split_complex: The ISNR convention (see ``noise_sigma_from_isnr``).
        eps: NUFFT tolerance.
        pad_multiple: Pad the points with zero-weight points at the origin up to a
            multiple of this (``None``: no padding). The results are unchanged (a
            zero weight removes a point from ``Phi``, ``Phi^H`` and the kernel, and the
            noise level uses the real ``M``), but coverages of different sizes then
            share compiled NUFFTs: each new size costs ~1.5 CPU s of compilation.

    Returns:
        :class:`Observations` (a batch axis always present).

    Raises:
        ValueError: On bad shapes, non-finite skies, or a bad ISNR.

    Example:
        >>> import jax, numpy as np
        >>> sky = np.zeros((8, 8), np.float32); sky[3, 4] = 1.0
        >>> obs = simulate_observations(jax.random.key(0), sky, np.array([[0.5, 1.0], [-2.0, 0.3]]),
        ...                             isnr_db=30.0)
        >>> obs.backprojection.shape, obs.normal.padded_shape
        ((1, 8, 8), (16, 16))

    """
    check_key(key)
    array = np.asarray(skies)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] == 0:
        raise ValueError(f"skies must have shape (N, H, W) or (H, W); got {np.shape(skies)}")
    check_finite(array, "skies")
    num_skies, height, width = array.shape
    isnr = np.broadcast_to(np.asarray(isnr_db, dtype=np.float64), (num_skies,)).copy()
    points = _check_points(points)
    num_points = points.shape[0]
    if pad_multiple is None:
        padded = num_points
    elif isinstance(pad_multiple, bool) or int(pad_multiple) != pad_multiple or pad_multiple < 1:
        raise ValueError(f"pad_multiple must be a positive integer or None; got {pad_multiple!r}")
    else:
        padded = -(-num_points // int(pad_multiple)) * int(pad_multiple)
    real = np.zeros(padded, dtype=bool)
    real[:num_points] = True
    operator = nufft_operator_from_pixel_phases(
        np.concatenate([points, np.zeros((padded - num_points, 2))]),
        image_shape=(height, width),
        weights=real.astype(np.float64) if padded > num_points else None,
        eps=eps,
    )
    dtype = jnp.zeros(()).dtype
    images = jnp.asarray(array, dtype)
    clean = operator(images)  # (N, M), batched by jax-finufft
    sigma = np.array(
        [
            noise_sigma_from_isnr(clean[i, :num_points], isnr[i], split_complex=split_complex)
            for i in range(num_skies)
        ]
    )
    unit_noise = add_complex_noise(key, jnp.zeros_like(clean), 1.0)
    data = clean + jnp.asarray(sigma, dtype)[:, None] * unit_noise
    backprojection = operator.adjoint(data)
    normal = toeplitz_normal_operator(operator)
    filtered_backprojection = filtered_normal = None
    if filter_weights is not None:
        weights = _check_weights(filter_weights, num_points, "filter_weights")
        weights = np.concatenate([weights, np.zeros(padded - num_points)])
        filtered_backprojection = operator.adjoint(jnp.asarray(weights, dtype) * data)
        filtered_normal = toeplitz_normal_operator(operator, weights=weights)
    return Observations(
        backprojection=backprojection,
        normal=normal,
        sigma=sigma,
        isnr_db=isnr,
        filtered_backprojection=filtered_backprojection,
        filtered_normal=filtered_normal,
    )


class TrainingSet(NamedTuple):
    """Training pairs: skies, their noisy back-projections, and the coverages' operators.

    Attributes:
        truth: ``(N, H, W)`` true skies.
        backprojection: ``(N, H, W)`` ``Phi^H y``.
        sigma: ``(N,)`` noise level of each (per real/imaginary part).
        isnr_db: ``(N,)`` input SNRs.
        coverage_index: ``(N,)`` index of each pair's coverage into ``normal``.
        normal: Stacked :class:`~astrobayes.imaging.toeplitz.NormalOperator` of the
            ``C`` coverages (``spectrum`` ``(C, 2H, W + 1)``); pair ``i`` uses
            ``jax.tree.map(lambda s: s[coverage_index[i]], normal)``.
        num_visibilities: ``(C,)`` visibilities of each coverage.

    """

    truth: Float[Array, "num_pairs height width"]
    backprojection: Float[Array, "num_pairs height width"]
    sigma: Float[np.ndarray, " num_pairs"]
    isnr_db: Float[np.ndarray, " num_pairs"]
    coverage_index: Int[np.ndarray, " num_pairs"]
    normal: NormalOperator
    num_visibilities: Int[np.ndarray, " num_coverages"]


def simulate_training_set(
    key: jax.Array,
    skies: Float[Array, "num_pairs height width"],
    coverages: Sequence[Float[Array, "num_points 2"]],
    *,
    isnr_db_range: tuple[float, float] = (20.0, 40.0),
    progress_fn: ProgressFn | None = None,
) -> TrainingSet:
    """Observe skies through coverages: sky ``i`` through coverage ``i mod C``.

    Each sky gets an ISNR uniform in ``isnr_db_range``; each coverage's NUFFTs run once,
    batched over its skies (:func:`simulate_observations`).

    Args:
        key: JAX PRNG key (ISNRs and noise).
        skies: ``(N, H, W)`` true skies (e.g. a vmapped
            :func:`~astrobayes.imaging.skies.random_sky`).
        coverages: ``C`` point arrays in radians per pixel (e.g. from
            :func:`random_track_coverage` and :func:`random_array_coverage`), ``C <= N``.
        isnr_db_range: Range of the input SNR in dB.
        progress_fn: Optional ``progress_fn(stage, done, total)`` per coverage.

    Returns:
        A :class:`TrainingSet`.

    Raises:
        ValueError: On bad shapes, no coverages, more coverages than skies, or a bad
            range.

    Example:
        >>> import jax, numpy as np
        >>> skies = np.ones((4, 8, 8), np.float32)
        >>> cov = [np.array([[0.5, 1.0], [-2.0, 0.3]]), np.array([[1.0, 1.0]])]
        >>> ts = simulate_training_set(jax.random.key(0), skies, cov)
        >>> ts.coverage_index.tolist(), ts.normal.spectrum.shape
        ([0, 1, 0, 1], (2, 16, 9))

    """
    check_key(key)
    array = np.asarray(skies)
    if array.ndim != 3 or array.shape[0] == 0:
        raise ValueError(f"skies must have shape (N, H, W); got {array.shape}")
    coverages = list(coverages)
    if not coverages:
        raise ValueError("coverages must be a non-empty sequence of (M, 2) point arrays")
    if len(coverages) > array.shape[0]:
        raise ValueError(f"{len(coverages)} coverages for {array.shape[0]} skies: need C <= N")
    low, high = (float(v) for v in isnr_db_range)
    if not 0 < low <= high:
        raise ValueError(f"isnr_db_range must satisfy 0 < low <= high; got {isnr_db_range}")
    num_pairs = array.shape[0]
    key_isnr, key_noise = jax.random.split(key)
    isnr = low + (high - low) * np.asarray(jax.random.uniform(key_isnr, (num_pairs,)), np.float64)
    index = np.arange(num_pairs) % len(coverages)
    backprojection = np.zeros(array.shape, dtype=jnp.zeros(()).dtype)
    sigma = np.zeros(num_pairs)
    normals, counts = [], []
    for c, points in enumerate(coverages):
        members = np.flatnonzero(index == c)
        obs = simulate_observations(
            jax.random.fold_in(key_noise, c), array[members], points, isnr_db=isnr[members]
        )
        backprojection[members] = np.asarray(obs.backprojection)
        sigma[members] = obs.sigma
        normals.append(obs.normal)
        counts.append(np.shape(points)[0])
        if progress_fn is not None:
            progress_fn("observe", c + 1, len(coverages))
    return TrainingSet(
        truth=jnp.asarray(array),
        backprojection=jnp.asarray(backprojection),
        sigma=sigma,
        isnr_db=isnr,
        coverage_index=index,
        normal=stack_normal_operators(normals),
        num_visibilities=np.asarray(counts),
    )


def _direct_type1(rows, cols, coefficients, shape):
    """``f[p, j, k] = sum_m c[p, m] exp(i ((j - H//2) rows_m + (k - W//2) cols_m))``.

    finufft's type-1 transform with ``iflag=+1`` and its centred mode order, as an exact
    sum: one batched complex matrix product (``(P, H, M) @ (M, W)``) at full float32
    matmul precision.
    """
    height, width = shape
    modes_rows = jnp.arange(height, dtype=rows.dtype) - height // 2
    modes_cols = jnp.arange(width, dtype=cols.dtype) - width // 2
    along_rows = jnp.exp(1j * rows[:, None] * modes_rows[None, :])  # (M, H)
    along_cols = jnp.exp(1j * cols[:, None] * modes_cols[None, :])  # (M, W)
    return jnp.einsum(
        "pmh,mw->phw",
        coefficients[:, :, None] * along_rows[None],
        along_cols,
        precision=jax.lax.Precision.HIGHEST,
    )


def direct_toeplitz_spectrum(
    points: Float[Array, "num_points 2"], weights: Float[Array, " num_points"], shape
) -> Float[Array, "padded_height half_width"]:
    """The Toeplitz spectrum of ``Phi^H W Phi`` by exact summation (no NUFFT).

    The same quantity as :func:`~astrobayes.imaging.toeplitz.toeplitz_normal_operator`'s
    ``spectrum`` (``kappa(d) = Re sum_m w_m exp(i d . p_m)`` on the ``2H x 2W`` grid, FFT
    layout, ``rfft2``), computed as matrix products, which an accelerator runs where
    jax-finufft is not built (a GPU here). Traceable and jit-able.

    Args:
        points: ``(M, 2)`` uv points in radians per pixel (``u`` = columns, ``v`` = rows).
        weights: ``(M,)`` non-negative weights ``W`` (zero removes a point: padding).
        shape: Image shape ``(H, W)``.

    Returns:
        ``(2H, W + 1)`` real spectrum for :class:`~astrobayes.imaging.toeplitz.NormalOperator`.

    References:
        Fessler et al. 2005, IEEE Trans. Signal Process. 53, 3393 (the normal operator
        of a NUFFT as a Toeplitz matrix, embedded in a 2x circulant).

    Example:
        >>> import jax.numpy as jnp
        >>> s = direct_toeplitz_spectrum(jnp.array([[0.5, 1.0], [-2.0, 0.3]]), jnp.ones(2), (4, 6))
        >>> s.shape, round(float(jnp.fft.irfft2(s, s=(8, 12))[0, 0]), 4)  # kappa(0) = sum w
        ((8, 7), 2.0)
    """
    height, width = shape
    centred = _direct_type1(
        points[:, 1],
        points[:, 0],
        weights[None].astype(jnp.result_type(points.dtype, jnp.complex64)),
        (2 * height, 2 * width),
    )[0]
    kernel = jnp.fft.ifftshift(jnp.real(centred))
    return jnp.fft.rfft2(kernel).real.astype(points.dtype)


@functools.partial(jax.jit, static_argnames=("split_complex",))
def _simulate_direct(key, skies, points, num_points, isnr_db, split_complex):
    """See :func:`simulate_observations_direct` (inputs checked there)."""
    num_coverages, per_coverage, height, width = skies.shape
    dtype = skies.dtype
    mask = (jnp.arange(points.shape[1])[None, :] < num_points[:, None]).astype(dtype)

    def one(args):
        coverage_key, sky_batch, coverage_points, weights, count, isnr = args
        spectrum = direct_toeplitz_spectrum(coverage_points, weights, (height, width))
        normal = NormalOperator(
            spectrum=spectrum, shape=(height, width), padded_shape=(2 * height, 2 * width)
        )
        clean = jax.vmap(normal.apply)(sky_batch)  # Phi^H Phi x, exactly (Toeplitz)
        power = jnp.sum(clean * sky_batch, axis=(1, 2))  # ||Phi x||^2 = <x, Phi^H Phi x>
        # noise_sigma_from_isnr's convention, traced (tests check they agree)
        sigma = 10.0 ** (-isnr / 20.0) * jnp.sqrt(jnp.maximum(power, 0.0) / count)
        if split_complex:
            sigma = sigma / math.sqrt(2.0)
        key_real, key_imag = jax.random.split(coverage_key)
        shape = (per_coverage, coverage_points.shape[0])
        noise = jax.random.normal(key_real, shape, dtype) + 1j * jax.random.normal(
            key_imag, shape, dtype
        )
        noise = noise * (sigma[:, None] * weights[None, :])
        back = jnp.real(
            _direct_type1(coverage_points[:, 1], coverage_points[:, 0], noise, (height, width))
        )
        return clean + back.astype(dtype), spectrum, sigma

    keys = jax.random.split(key, num_coverages)
    counts = num_points.astype(dtype)
    return jax.lax.map(one, (keys, skies, points, mask, counts, isnr_db))


def simulate_observations_direct(
    key: jax.Array,
    skies: Float[Array, "num_coverages per_coverage height width"],
    points: Float[Array, "num_coverages max_points 2"],
    num_points: Int[Array, " num_coverages"],
    isnr_db: Float[Array, "num_coverages per_coverage"],
    *,
    split_complex: bool = False,
) -> tuple[Array, Array, Array]:
    """Observe batches of skies through padded coverages, in one compiled program.

    The same observation model as :func:`simulate_observations` (``y = Phi x + n``,
    ``n`` complex Gaussian at each sky's ISNR, dirty image ``Phi^H y``) for an
    accelerator: no NUFFT, fixed shapes, so one compilation serves every batch of the
    same shape. The Toeplitz spectrum is an exact sum (:func:`direct_toeplitz_spectrum`);
    the clean part of the dirty image is ``Phi^H Phi x`` through it (exact, and the
    noise level uses ``||Phi x||^2 = <x, Phi^H Phi x>``); the noise is drawn in visibility
    space and back-projected by the exact adjoint sum. Cost per coverage: ``O(M H W)``
    per sky (matrix products), against the NUFFT's ``O(M + H W log(H W))``: meant for a
    GPU (an H200 runs the sums at tens of TFLOP/s); on a CPU use
    :func:`simulate_training_set`. The noise draws differ from
    :func:`simulate_observations`'s (other keys), the distribution is the same.

    Args:
        key: JAX PRNG key (the noise; coverage ``c`` uses ``split(key, C)[c]``).
        skies: ``(C, P, H, W)`` true images, ``P`` per coverage.
        points: ``(C, M_max, 2)`` uv points in radians per pixel; coverage ``c``'s real
            points first, the rest padding (ignored).
        num_points: ``(C,)`` real points of each coverage (``1 <= n <= M_max``).
        isnr_db: ``(C, P)`` input SNR of each sky in dB (> 0).
        split_complex: The ISNR convention (see
            :func:`~astrobayes.imaging.operators.noise_sigma_from_isnr`).

    Returns:
        ``(backprojection (C, P, H, W), spectrum (C, 2H, W + 1), sigma (C, P))``: the
        dirty images ``Phi^H y``, the Toeplitz spectra of ``Phi^H Phi`` and the noise
        levels (per real/imaginary part).

    Raises:
        ValueError: On bad shapes, non-finite inputs, points outside ``[-pi, pi]``, a
            bad count or a bad ISNR.

    References:
        Fessler et al. 2005, IEEE Trans. Signal Process. 53, 3393 (Toeplitz normal
        operator); Mars et al. 2024, arXiv:2405.08958 (training with varying coverage).

    Example:
        >>> import jax, numpy as np
        >>> skies = np.zeros((2, 3, 8, 8), np.float32); skies[:, :, 4, 4] = 1.0
        >>> pts = np.zeros((2, 5, 2), np.float32); pts[:, :3] = [[0.5, 1.0], [-2.0, 0.3], [1.0, -1.0]]
        >>> dirty, spectrum, sigma = simulate_observations_direct(
        ...     jax.random.key(0), skies, pts, np.array([3, 2]), np.full((2, 3), 30.0))
        >>> dirty.shape, spectrum.shape, sigma.shape
        ((2, 3, 8, 8), (2, 16, 9), (2, 3))

    """
    check_key(key)
    skies = jnp.asarray(skies)
    if skies.ndim != 4 or 0 in skies.shape:
        raise ValueError(f"skies must have shape (C, P, H, W); got {skies.shape}")
    if not jnp.issubdtype(skies.dtype, jnp.floating):
        skies = skies.astype(jnp.zeros(()).dtype)
    num_coverages, per_coverage = skies.shape[:2]
    points = np.asarray(points, dtype=skies.dtype)
    if points.ndim != 3 or points.shape[0] != num_coverages or points.shape[2] != 2:
        raise ValueError(f"points must have shape ({num_coverages}, M_max, 2); got {points.shape}")
    check_finite(points, "points")
    if np.max(np.abs(points)) > np.pi * (1 + 1e-6):
        raise ValueError("points must lie in [-pi, pi] (radians per pixel)")
    counts = np.asarray(num_points)
    if (
        counts.shape != (num_coverages,)
        or not np.issubdtype(counts.dtype, np.integer)
        or counts.min() < 1
        or counts.max() > points.shape[1]
    ):
        raise ValueError(
            f"num_points must be {num_coverages} integers in [1, {points.shape[1]}]; got {counts!r}"
        )
    isnr = np.asarray(isnr_db, dtype=np.float64)
    if isnr.shape != (num_coverages, per_coverage) or not np.all(np.isfinite(isnr) & (isnr > 0)):
        raise ValueError(
            f"isnr_db must be finite positive dB of shape ({num_coverages}, {per_coverage}); "
            f"got shape {isnr.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(skies))):
        raise ValueError("skies must be finite")
    return _simulate_direct(
        key,
        skies,
        jnp.asarray(points),
        jnp.asarray(counts),
        jnp.asarray(isnr, skies.dtype),
        split_complex=bool(split_complex),
    )
