"""Random radio skies for training learned imaging: pure JAX, from an explicit key.

Every generator maps ``(key, shape)`` to a non-negative image of static shape, so a batch
is ``jax.vmap(lambda k: random_sky(k, (128, 128)))(jax.random.split(key, n))``. Sizes are
in fractions of the image width, so the same settings give comparable skies at 128 and
256 pixels. The components:

* :func:`point_sources` -- unresolved sources on single pixels, fluxes from a Pareto
  (power-law number counts) law;
* :func:`gaussian_blobs` -- elliptical Gaussians (compact and moderately extended
  sources);
* :func:`gaussian_random_field` / :func:`power_law_emission` -- a Gaussian random field
  with power spectrum ``P(k) ~ k^-beta`` (diffuse emission: halos, relics, the Galactic
  foreground), exponentiated (log-normal) and multiplied by a random Gaussian envelope;
* :func:`radio_galaxy` -- Fanaroff-Riley-like double-lobed sources: a core, two jets
  and two lobes with hotspots along a random axis, with random asymmetry and bending;
* :func:`random_sky` -- a random mixture of all of these, normalised to peak 1.

References:
    Fanaroff & Riley 1974, MNRAS 167, 31P (the two classes of double radio sources).
    Coles & Jones 1991, MNRAS 248, 1 (log-normal fields from Gaussian random fields).
    Mars et al. 2024, arXiv:2405.08958 (training learned radio imaging on simulated skies).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from astrobayes._checks import check_key
from astrobayes.imaging.nufft import _check_image_shape

__all__ = [
    "SkyConfig",
    "gaussian_blobs",
    "gaussian_random_field",
    "point_sources",
    "power_law_emission",
    "radio_galaxy",
    "random_sky",
]


def _check_shape(shape) -> tuple[int, int]:
    out = _check_image_shape(shape)
    if min(out) < 8:
        raise ValueError(f"shape must be two integers >= 8; got {shape!r}")
    return out


def _grid(shape):
    """Pixel coordinates ``(rows, cols)`` in units of the image width, centred on zero."""
    height, width = shape
    rows = (jnp.arange(height) - height / 2) / width
    cols = (jnp.arange(width) - width / 2) / width
    return jnp.meshgrid(rows, cols, indexing="ij")


def _elliptical_gaussians(shape, centres, sigma_major, sigma_minor, angle, amplitude):
    """Sum of elliptical Gaussians; all parameters ``(n,)`` (centres ``(n, 2)``, width units)."""
    rows, cols = _grid(shape)
    dr = rows[None] - centres[:, 0, None, None]
    dc = cols[None] - centres[:, 1, None, None]
    cos, sin = jnp.cos(angle)[:, None, None], jnp.sin(angle)[:, None, None]
    along = cos * dc + sin * dr
    across = -sin * dc + cos * dr
    quad = (along / sigma_major[:, None, None]) ** 2 + (across / sigma_minor[:, None, None]) ** 2
    return jnp.sum(amplitude[:, None, None] * jnp.exp(-0.5 * quad), axis=0)


def point_sources(
    key: jax.Array,
    shape: tuple[int, int],
    *,
    num_sources: int = 10,
    flux_index: float = 1.5,
    max_flux_ratio: float = 100.0,
) -> Float[Array, "height width"]:
    """Point sources on single pixels, fluxes ``S`` with ``N(>S) ~ S^-flux_index``.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.
        num_sources: Number of sources (static; each is placed, some may coincide).
        flux_index: Index of the Pareto law of fluxes (> 0).
        max_flux_ratio: Fluxes are clipped to ``[1, max_flux_ratio]`` before the peak
            normalisation.

    Returns:
        Non-negative image with peak 1.

    Example:
        >>> import jax
        >>> sky = point_sources(jax.random.key(0), (16, 16), num_sources=3)
        >>> float(sky.max()), int((sky > 0).sum()) <= 3
        (1.0, True)

    """
    check_key(key)
    shape = _check_shape(shape)
    return _point_sources_key(
        key, shape, int(num_sources), float(flux_index), float(max_flux_ratio)
    )


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _point_sources_key(key, shape, num_sources, flux_index, max_flux_ratio):
    draws = jax.random.uniform(key, (2 * num_sources,))
    return _point_sources(draws, shape, num_sources, flux_index, max_flux_ratio)


def _point_sources(u, shape, num_sources, flux_index=1.5, max_flux_ratio=100.0):
    draws = u.reshape(2, num_sources)
    size = shape[0] * shape[1]
    index = jnp.minimum(jnp.floor(draws[0] * size).astype(jnp.int32), size - 1)
    uniform = jnp.maximum(draws[1], 1e-6)
    flux = jnp.clip(uniform ** (-1.0 / flux_index), 1.0, max_flux_ratio)
    image = jnp.zeros(shape[0] * shape[1]).at[index].add(flux).reshape(shape)
    return image / jnp.max(image)


def gaussian_blobs(
    key: jax.Array,
    shape: tuple[int, int],
    *,
    num_blobs: int = 5,
    size_range: tuple[float, float] = (0.005, 0.08),
    margin: float = 0.1,
) -> Float[Array, "height width"]:
    """Elliptical Gaussian sources with random centres, sizes, shapes and amplitudes.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.
        num_blobs: Number of Gaussians (static).
        size_range: Range of the major-axis standard deviation, in fractions of the
            width (log-uniform).
        margin: Centres avoid this fraction of the image at each edge.

    Returns:
        Non-negative image with peak 1.

    Example:
        >>> import jax
        >>> sky = gaussian_blobs(jax.random.key(0), (32, 32))
        >>> round(float(sky.max()), 6), bool(sky.min() >= 0)
        (1.0, True)

    """
    check_key(key)
    shape = _check_shape(shape)
    return _gaussian_blobs_key(key, shape, int(num_blobs), tuple(size_range), float(margin))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _gaussian_blobs_key(key, shape, num_blobs, size_range, margin):
    u = jax.random.uniform(key, (6 * num_blobs,))
    return _gaussian_blobs(u, shape, num_blobs, size_range, margin)


def _gaussian_blobs(u, shape, num_blobs, size_range=(0.005, 0.08), margin=0.1):
    u = u.reshape(6, num_blobs)
    half = 0.5 - margin
    aspect = shape[0] / shape[1]
    centres = (2 * u[:2].T - 1) * half * jnp.array([aspect, 1.0])
    low, high = jnp.log(size_range[0]), jnp.log(size_range[1])
    major = jnp.exp(low + (high - low) * u[2])
    minor = major * (0.3 + 0.7 * u[3])
    angle = jnp.pi * u[4]
    amplitude = 0.1 + 0.9 * u[5]
    image = _elliptical_gaussians(shape, centres, major, minor, angle, amplitude)
    return image / jnp.max(image)


def gaussian_random_field(
    key: jax.Array, shape: tuple[int, int], beta: float | Float[Array, ""]
) -> Float[Array, "height width"]:
    """Zero-mean, unit-variance Gaussian random field with ``P(k) ~ |k|^-beta``.

    White noise filtered by ``|k|^(-beta / 2)`` in Fourier space (the ``k = 0`` mode is
    removed), with ``k`` in cycles per image; the field is periodic.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.
        beta: Spectral index (a float or a traced scalar; typical diffuse emission
            2-4).

    Returns:
        The field, standardised to zero mean and unit variance over the image.

    Example:
        >>> import jax
        >>> field = gaussian_random_field(jax.random.key(0), (32, 32), 3.0)
        >>> abs(round(float(field.mean()), 6)), round(float(field.std()), 6)
        (0.0, 1.0)

    """
    check_key(key)
    shape = _check_shape(shape)
    return _gaussian_random_field_key(key, shape, beta)


@functools.partial(jax.jit, static_argnums=(1,))
def _gaussian_random_field_key(key, shape, beta):
    return _gaussian_random_field(jax.random.normal(key, shape), beta)


def _gaussian_random_field(noise, beta):
    shape = noise.shape
    height, width = shape
    k_rows = jnp.fft.fftfreq(height) * height
    k_cols = jnp.fft.rfftfreq(width) * width
    radius = jnp.sqrt(k_rows[:, None] ** 2 + k_cols[None, :] ** 2)
    safe = jnp.where(radius > 0, radius, 1.0)
    amplitude = jnp.where(radius > 0, safe ** (-0.5 * jnp.asarray(beta, noise.dtype)), 0.0)
    field = jnp.fft.irfft2(jnp.fft.rfft2(noise) * amplitude, s=shape)
    field = field - jnp.mean(field)
    return field / jnp.std(field)


def power_law_emission(
    key: jax.Array,
    shape: tuple[int, int],
    *,
    beta_range: tuple[float, float] = (2.0, 4.0),
    contrast_range: tuple[float, float] = (0.5, 2.0),
    envelope_range: tuple[float, float] = (0.1, 0.3),
) -> Float[Array, "height width"]:
    """Diffuse emission: ``envelope * exp(s * g)`` for a power-law field ``g``.

    ``g`` is :func:`gaussian_random_field` with ``beta`` uniform in ``beta_range``, ``s``
    (the log-normal contrast) uniform in ``contrast_range``, and the envelope an
    elliptical Gaussian of random centre, orientation and size (standard deviation in
    ``envelope_range`` fractions of the width), so the emission fades to zero
    away from the source.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.
        beta_range: Range of the spectral index.
        contrast_range: Range of the log-normal contrast ``s``.
        envelope_range: Range of the envelope's major-axis standard deviation.

    Returns:
        Non-negative image with peak 1.

    Example:
        >>> import jax
        >>> sky = power_law_emission(jax.random.key(1), (32, 32))
        >>> round(float(sky.max()), 6), bool(sky.min() >= 0)
        (1.0, True)

    """
    check_key(key)
    shape = _check_shape(shape)
    ranges = (tuple(beta_range), tuple(contrast_range), tuple(envelope_range))
    return _power_law_emission_key(key, shape, ranges)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _power_law_emission_key(key, shape, ranges):
    key_field, key_params = jax.random.split(key)
    noise = jax.random.normal(key_field, shape)
    u = jax.random.uniform(key_params, (7,))
    return _power_law_emission(u, noise, *ranges)


def _power_law_emission(
    u, noise, beta_range=(2.0, 4.0), contrast_range=(0.5, 2.0), envelope_range=(0.1, 0.3)
):
    shape = noise.shape
    beta = beta_range[0] + (beta_range[1] - beta_range[0]) * u[0]
    contrast = contrast_range[0] + (contrast_range[1] - contrast_range[0]) * u[1]
    field = _gaussian_random_field(noise, beta)
    aspect = shape[0] / shape[1]
    centre = (0.3 * u[2:4] - 0.15)[None] * jnp.array([aspect, 1.0])
    major = envelope_range[0] + (envelope_range[1] - envelope_range[0]) * u[4:5]
    minor = major * (0.4 + 0.6 * u[5:6])
    angle = jnp.pi * u[6:7]
    envelope = _elliptical_gaussians(shape, centre, major, minor, angle, jnp.ones(1))
    image = envelope * jnp.exp(contrast * field)
    return image / jnp.max(image)


def radio_galaxy(
    key: jax.Array,
    shape: tuple[int, int],
    *,
    length_range: tuple[float, float] = (0.1, 0.35),
    num_jet_knots: int = 24,
) -> Float[Array, "height width"]:
    """A double-lobed radio galaxy: core, two jets, two lobes with hotspots.

    Along a random axis through a random core position: each jet is a chain of
    ``num_jet_knots`` small Gaussians bending slightly (a random quadratic offset);
    each lobe an elliptical Gaussian at the jet's end, elongated across or along the
    axis, with a compact hotspot at its outer edge. The two sides differ in length and
    brightness (random asymmetry, as Doppler boosting and environment make them).

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.
        length_range: Range of the core-to-lobe distance, in fractions of the width.
        num_jet_knots: Gaussians per jet (static).

    Returns:
        Non-negative image with peak 1.

    Example:
        >>> import jax
        >>> sky = radio_galaxy(jax.random.key(2), (32, 32))
        >>> round(float(sky.max()), 6), bool(sky.min() >= 0)
        (1.0, True)

    """
    check_key(key)
    shape = _check_shape(shape)
    return _radio_galaxy_key(key, shape, tuple(length_range), int(num_jet_knots))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _radio_galaxy_key(key, shape, length_range, num_jet_knots):
    return _radio_galaxy(jax.random.uniform(key, (17,)), shape, length_range, num_jet_knots)


def _radio_galaxy(u, shape, length_range=(0.1, 0.35), num_jet_knots=24):
    aspect = shape[0] / shape[1]
    pixel = 1.0 / shape[1]
    core = (0.2 * u[0:2] - 0.1) * jnp.array([aspect, 1.0])
    theta = jnp.pi * u[2]
    direction = jnp.array([jnp.sin(theta), jnp.cos(theta)])  # (row, col)
    normal = jnp.array([jnp.cos(theta), -jnp.sin(theta)])
    lengths = length_range[0] + (length_range[1] - length_range[0]) * u[3:5]
    lengths = lengths * min(1.0, aspect)
    bend = 0.3 * (u[5:7] - 0.5)
    brightness = 0.3 + 0.7 * u[7:9]
    lobe_major = lengths * (0.25 + 0.25 * u[9:11])
    lobe_minor = lobe_major * (0.4 + 0.5 * u[11:13])
    lobe_across = u[13:15] < 0.5
    jet_width = 1.2 * pixel + 0.004 * u[15]
    core_flux = 0.2 + 0.8 * u[16]

    t = jnp.linspace(0.05, 1.0, num_jet_knots)
    centres, majors, minors, angles, amps = [], [], [], [], []
    for side, sign in enumerate((1.0, -1.0)):
        # jet knots: along the axis, bent by a quadratic offset, fading outwards
        offset = bend[side] * lengths[side] * t**2
        knots = core + sign * lengths[side] * t[:, None] * direction + offset[:, None] * normal
        centres.append(knots)
        majors.append(jnp.full(num_jet_knots, 2.0 * jet_width))
        minors.append(jnp.full(num_jet_knots, jet_width))
        angles.append(jnp.full(num_jet_knots, theta))
        amps.append(0.25 * brightness[side] * (1.0 - 0.5 * t))
        tip = knots[-1]
        lobe_angle = theta + jnp.where(lobe_across[side], 0.5 * jnp.pi, 0.0)
        hotspot = tip + sign * 0.5 * lobe_major[side] * direction
        centres.append(jnp.stack([tip, hotspot]))
        majors.append(jnp.stack([lobe_major[side], 1.5 * pixel + 0.1 * lobe_minor[side]]))
        minors.append(jnp.stack([lobe_minor[side], 1.5 * pixel + 0.1 * lobe_minor[side]]))
        angles.append(jnp.stack([lobe_angle, theta]))
        amps.append(jnp.stack([0.5 * brightness[side], brightness[side]]))
    centres.append(core[None])
    majors.append(jnp.array([pixel]))
    minors.append(jnp.array([pixel]))
    angles.append(jnp.zeros(1))
    amps.append(core_flux[None])
    image = _elliptical_gaussians(
        shape,
        jnp.concatenate(centres),
        jnp.concatenate(majors),
        jnp.concatenate(minors),
        jnp.concatenate(angles),
        jnp.concatenate(amps),
    )
    return image / jnp.max(image)


@dataclasses.dataclass(frozen=True)
class SkyConfig:
    """Mixture settings of :func:`random_sky` (the counts are static under ``jit``).

    Attributes:
        point_probability: Probability that the sky has point sources.
        blob_probability: Probability of Gaussian blobs.
        extended_probability: Probability of power-law diffuse emission.
        galaxy_probability: Probability of a radio galaxy.
        num_point_sources: Point sources when present.
        num_blobs: Gaussian blobs when present.
        point_flux_range: Range of the point sources' peak relative to the sky's other
            components (log-uniform).

    """

    point_probability: float = 0.6
    blob_probability: float = 0.6
    extended_probability: float = 0.6
    galaxy_probability: float = 0.5
    num_point_sources: int = 10
    num_blobs: int = 5
    point_flux_range: tuple[float, float] = (0.05, 1.0)

    def __post_init__(self):
        for name in (
            "point_probability",
            "blob_probability",
            "extended_probability",
            "galaxy_probability",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
        for name in ("num_point_sources", "num_blobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        low, high = self.point_flux_range
        if not 0 < low <= high:
            raise ValueError(
                f"point_flux_range must satisfy 0 < low <= high; got {self.point_flux_range!r}"
            )


def random_sky(
    key: jax.Array, shape: tuple[int, int], config: SkyConfig | None = None
) -> Float[Array, "height width"]:
    """A random sky: a random subset of the components, random weights, peak 1.

    Each component is present with its probability in ``config``; when none is drawn
    the extended emission is used, so a sky is never empty. The present components get
    log-uniform relative weights (point sources in ``config.point_flux_range``), and the
    sum is normalised to peak 1.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)`` (static; e.g. 128 or 256 square).
        config: A :class:`SkyConfig` (default ``SkyConfig()``).

    Returns:
        Non-negative image with peak 1.

    Example:
        >>> import jax
        >>> sky = random_sky(jax.random.key(0), (32, 32))
        >>> sky.shape, round(float(sky.max()), 6), bool(sky.min() >= 0)
        ((32, 32), 1.0, True)

    """
    check_key(key)
    shape = _check_shape(shape)
    config = SkyConfig() if config is None else config
    if not isinstance(config, SkyConfig):
        raise TypeError(f"config must be a SkyConfig; got {type(config).__name__}")
    probabilities = jnp.array(
        [
            config.point_probability,
            config.blob_probability,
            config.extended_probability,
            config.galaxy_probability,
        ]
    )
    log_flux_range = jnp.log(jnp.array(config.point_flux_range))
    counts = (config.num_point_sources, config.num_blobs)
    return _random_sky_key(key, probabilities, log_flux_range, shape, counts)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _random_sky_key(key, probabilities, log_flux_range, shape, counts):
    # Two draws in all: every jax.random call adds about a second of XLA compilation.
    num_points, num_blobs = counts
    sizes = (2 * num_points, 6 * num_blobs, 7, 17, 8)
    key_uniform, key_normal = jax.random.split(key)
    u = jax.random.uniform(key_uniform, (sum(sizes),))
    noise = jax.random.normal(key_normal, shape)
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    part = [u[offsets[i] : offsets[i + 1]] for i in range(len(sizes))]
    components = jnp.stack(
        [
            _point_sources(part[0], shape, num_points),
            _gaussian_blobs(part[1], shape, num_blobs),
            _power_law_emission(part[2], noise),
            _radio_galaxy(part[3], shape),
        ]
    )
    u = part[4]
    present = u[:4] < probabilities
    present = present.at[2].set(present[2] | ~jnp.any(present))
    low, high = log_flux_range[0], log_flux_range[1]
    point_weight = jnp.exp(low + (high - low) * u[4])
    other_weights = jnp.exp(jnp.log(0.2) * (1.0 - u[5:8]))
    weights = jnp.concatenate([point_weight[None], other_weights]) * present
    image = jnp.tensordot(weights, components, axes=1)
    return image / jnp.max(image)
