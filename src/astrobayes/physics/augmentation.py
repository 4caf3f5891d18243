r"""Redshift augmentation of supernova-like light curves (Boone 2019), on a simulated task.

Two classes of transients with analytic rest-frame templates: a blackbody photosphere
whose bolometric light curve :math:`L(\tau) = L_0 (1 - e^{-\tau/\tau_r}) e^{-\tau/\tau_f}`
and temperature :math:`T(\tau) = T_\infty + (T_0 - T_\infty) e^{-\tau/\tau_T}` differ by
class (class 0 fast and hot, class 1 slower, cooler and fainter: at high redshift time
dilation and the band shift make class 0 look like class 1 at low redshift), with
per-object scatter in a stretch of all time scales, the temperatures and :math:`L_0`.
An object at redshift :math:`z` is observed in four fixed bands (Gaussian filters,
480/620/760/900 nm) on a fixed observer-frame cadence, with

- time dilation: rest-frame time :math:`\tau = (t - t_0)/(1+z)`;
- band shift: the flux density at observed frequency :math:`\nu` is the rest-frame
  SED at :math:`\nu(1+z)`, :math:`f_\nu = (1+z) L_\nu(\nu(1+z)) / 4\pi d_L^2`;
- distance dimming by :math:`d_L(z)` of :func:`astrobayes.cosmology.luminosity_distance`
  (flat ΛCDM, Ωm = 0.3, h = 0.7);
- Gaussian noise of fixed depth per point (sky-limited), so high-z objects are faint.

Redshift augmentation (:func:`redshift_augment`) re-observes *training* objects at new
redshifts from their **observed** light curves only: each epoch's four band fluxes are fit
by a blackbody (colour temperature on a grid, amplitude by linear least squares), the
per-epoch (amplitude, temperature) are interpolated in rest-frame time, and the object is
re-observed at :math:`z'` (dilated time, shifted bands, :math:`d_L` dimming) with noise
added to the survey depth. :func:`redshift_augment_latent` does the same from the
simulator's noise-free SED (an upper bound of what augmentation can do: with real data the
SED must be modelled, as by Boone's 2-D Gaussian process).

References:
    Boone 2019, "Avocado: photometric classification of astronomical transients with
    Gaussian process augmentation" (arXiv:1907.04690); Alves, Peres & Lopes 2022
    (arXiv:2201.08482) for redshift augmentation of supernova light curves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes.cosmology import Cosmology, luminosity_distance

__all__ = [
    "LightCurves",
    "SurveyConfig",
    "TransientClassifier",
    "classification_accuracy",
    "redshift_augment",
    "redshift_augment_latent",
    "simulate_transients",
    "train_classifier",
]

_H_OVER_K = 4.799243073e-11  # h / k_B in K s (so h nu / k T = _H_OVER_K * nu / T)
_C_NM = 2.99792458e17  # speed of light in nm/s
# Class templates: tau_rise, tau_fall, tau_T (days), T0, T_inf (K), log10 L0.
_TEMPLATES = np.array(
    [
        [4.0, 20.0, 12.0, 14000.0, 7000.0, 0.0],
        [7.0, 38.0, 30.0, 9500.0, 5500.0, -0.3],
    ]
)
_COSMOLOGY = Cosmology(h=0.7, omega_m=0.3)
# Flux unit: peak band flux of a class-0 object at z = 0.1 is ~ _FLUX_SCALE noise units.
_FLUX_SCALE = 3000.0
_D_REFERENCE = 0.1  # redshift of the flux normalisation


@dataclass(frozen=True)
class SurveyConfig:
    """Bands, cadence and depth of the simulated survey.

    Attributes:
        band_centres_nm: Centres of the Gaussian filters, nm.
        band_width_nm: Standard deviation of each filter, nm.
        num_epochs: Observations per band (same times in every band).
        cadence_days: Observer-frame days between observations.
        noise: Standard deviation of the flux noise per point (flux units in which a
            class-0 object at z = 0.1 peaks near 3000).

    """

    band_centres_nm: tuple[float, ...] = (480.0, 620.0, 760.0, 900.0)
    band_width_nm: float = 50.0
    num_epochs: int = 24
    cadence_days: float = 4.0
    noise: float = 1.0

    def __post_init__(self) -> None:
        if len(self.band_centres_nm) < 2 or min(self.band_centres_nm) <= 0:
            raise ValueError(
                f"band_centres_nm must hold >= 2 positive wavelengths; got {self.band_centres_nm}"
            )
        for name in ("band_width_nm", "cadence_days", "noise"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite positive number; got {value!r}")
        check_positive_int(self.num_epochs, "num_epochs", minimum=2)

    @property
    def times(self) -> np.ndarray:
        """Observer-frame epochs in days, ``(num_epochs,)``."""
        return self.cadence_days * np.arange(self.num_epochs)

    def band_wavelengths(self) -> tuple[np.ndarray, np.ndarray]:
        """``(num_bands, 16)`` wavelength grid (nm) and normalised filter weights."""
        offsets = np.linspace(-2.0, 2.0, 16)
        centres = np.asarray(self.band_centres_nm)[:, None]
        wavelengths = centres + self.band_width_nm * offsets[None, :]
        weights = np.exp(-0.5 * offsets**2)
        return wavelengths, np.broadcast_to(weights / weights.sum(), wavelengths.shape)


class LightCurves(NamedTuple):
    """Simulated light curves.

    Attributes:
        fluxes: ``(num, num_bands, num_epochs)`` band fluxes with noise.
        labels: ``(num,)`` class (0 or 1).
        redshifts: ``(num,)``.
        latents: ``(num, 5)`` per-object stretch, T0 scale, T_inf scale, log10 L0 offset,
            explosion time (observer days).

    """

    fluxes: Float[Array, "num bands epochs"]
    labels: Int[Array, " num"]
    redshifts: Float[Array, " num"]
    latents: Float[Array, "num 5"]


def _planck_shape(frequency, temperature):
    """Blackbody SED per unit bolometric flux, pi B_nu / (sigma T^4), in Hz^-1."""
    x = _H_OVER_K * frequency / temperature
    return 15.0 * _H_OVER_K / (np.pi**4 * temperature) * x**3 / jnp.expm1(jnp.minimum(x, 700.0))


def _luminosity_and_temperature(labels, latents, rest_days):
    template = jnp.asarray(_TEMPLATES)[labels]
    stretch = latents[:, 0:1]
    tau = jnp.maximum(rest_days, 0.0)
    rise = 1.0 - jnp.exp(-tau / (template[:, 0:1] * stretch))
    fall = jnp.exp(-tau / (template[:, 1:2] * stretch))
    luminosity = 10.0 ** (template[:, 5:6] + latents[:, 3:4]) * rise * fall
    luminosity = jnp.where(rest_days > 0, luminosity, 0.0)
    t0 = template[:, 3:4] * latents[:, 1:2]
    t_inf = template[:, 4:5] * latents[:, 2:3]
    temperature = t_inf + (t0 - t_inf) * jnp.exp(-tau / (template[:, 2:3] * stretch))
    return luminosity, temperature


def _flux_normalisation():
    # 5.88e-16 Hz^-1 is the filter-averaged peak SED of the class-0 template (measured once;
    # tests/test_physics_augmentation.py checks the resulting peak flux at z = 0.1).
    d_ref = luminosity_distance(_COSMOLOGY, _D_REFERENCE)
    return _FLUX_SCALE * d_ref**2 / (1.0 + _D_REFERENCE) / 5.88e-16


def _band_flux(amplitude, temperature, redshift, config: SurveyConfig):
    """Band-averaged f_nu of amplitude * (1+z) * planck_shape(nu (1+z), T) / d_L^2."""
    wavelengths, weights = config.band_wavelengths()
    frequency = _C_NM / jnp.asarray(wavelengths)  # (bands, grid)
    z = redshift[:, None, None, None]
    shape = _planck_shape(frequency[None, :, None, :] * (1.0 + z), temperature[:, None, :, None])
    averaged = jnp.sum(shape * jnp.asarray(weights)[None, :, None, :], axis=-1)
    d_l = luminosity_distance(_COSMOLOGY, redshift)[:, None, None]
    scale = _flux_normalisation() * (1.0 + redshift[:, None, None]) / d_l**2
    return scale * amplitude[:, None, :] * averaged


def _observe(key, labels, latents, redshifts, config: SurveyConfig):
    times = jnp.asarray(config.times)[None, :]
    rest = (times - latents[:, 4:5]) / (1.0 + redshifts[:, None])
    luminosity, temperature = _luminosity_and_temperature(labels, latents, rest)
    clean = _band_flux(luminosity, temperature, redshifts, config)
    return clean + config.noise * jax.random.normal(key, clean.shape, clean.dtype)


def _draw_latents(key, num, config: SurveyConfig):
    keys = jax.random.split(key, 5)
    stretch = jax.random.uniform(keys[0], (num,), minval=0.75, maxval=1.35)
    t0_scale = jax.random.uniform(keys[1], (num,), minval=0.85, maxval=1.15)
    t_inf_scale = jax.random.uniform(keys[2], (num,), minval=0.85, maxval=1.15)
    log_l0 = 0.25 * jax.random.normal(keys[3], (num,))
    span = config.cadence_days * (config.num_epochs - 1)
    explosion = jax.random.uniform(keys[4], (num,), minval=-15.0, maxval=0.35 * span)
    return jnp.stack([stretch, t0_scale, t_inf_scale, log_l0, explosion], axis=1)


def simulate_transients(
    key: PRNGKeyArray,
    num: int,
    redshift_range: tuple[float, float],
    config: SurveyConfig,
) -> LightCurves:
    """Draw ``num`` transients (balanced classes in expectation) uniform in redshift.

    Args:
        key: JAX PRNG key.
        num: Number of objects.
        redshift_range: ``(low, high)`` with ``0 < low < high``.
        config: :class:`SurveyConfig`.

    Returns:
        :class:`LightCurves`.

    Raises:
        ValueError: On a bad ``num`` or redshift range.

    Example:
        >>> import jax
        >>> curves = simulate_transients(jax.random.key(0), 2, (0.1, 0.2), SurveyConfig())
        >>> curves.fluxes.shape
        (2, 4, 24)

    """
    check_key(key)
    num = check_positive_int(num, "num")
    low, high = redshift_range
    if not 0.0 < low < high:
        raise ValueError(
            f"redshift_range must be (low, high) with 0 < low < high; got {redshift_range}"
        )
    return _simulate(key, num, float(low), float(high), config)


@functools.partial(jax.jit, static_argnames=("num", "config"))
def _simulate(key, num, low, high, config):
    label_key, z_key, latent_key, noise_key = jax.random.split(key, 4)
    labels = jax.random.bernoulli(label_key, 0.5, (num,)).astype(jnp.int32)
    redshifts = jax.random.uniform(z_key, (num,), minval=low, maxval=high)
    latents = _draw_latents(latent_key, num, config)
    fluxes = _observe(noise_key, labels, latents, redshifts, config)
    return LightCurves(fluxes, labels, redshifts, latents)


def _check_augment(key, copies, redshift_range):
    check_key(key)
    copies = check_positive_int(copies, "copies")
    low, high = redshift_range
    if not 0.0 < low < high:
        raise ValueError(
            f"redshift_range must be (low, high) with 0 < low < high; got {redshift_range}"
        )
    return copies, float(low), float(high)


def redshift_augment_latent(
    key: PRNGKeyArray,
    curves: LightCurves,
    copies: int,
    redshift_range: tuple[float, float],
    config: SurveyConfig,
) -> LightCurves:
    """Re-observe each object ``copies`` times at new redshifts from its true (noise-free) SED.

    The simulator's own rest-frame template and latents are used (an upper bound of the
    gain: real data need a model of the SED). A new explosion time is drawn per copy.

    Args:
        key: JAX PRNG key.
        curves: Training :class:`LightCurves`.
        copies: New versions per object.
        redshift_range: Range of the new redshifts (uniform).
        config: :class:`SurveyConfig`.

    Returns:
        :class:`LightCurves` of the ``num * copies`` new objects.

    """
    copies, low, high = _check_augment(key, copies, redshift_range)
    return _augment_latent(key, curves, copies, low, high, config)


@functools.partial(jax.jit, static_argnames=("copies", "config"))
def _augment_latent(key, curves, copies, low, high, config):
    z_key, time_key, noise_key = jax.random.split(key, 3)
    num = curves.labels.shape[0]
    redshifts = jax.random.uniform(z_key, (num * copies,), minval=low, maxval=high)
    labels = jnp.repeat(curves.labels, copies)
    fresh = _draw_latents(time_key, num * copies, config)
    latents = jnp.repeat(curves.latents, copies, axis=0).at[:, 4].set(fresh[:, 4])
    fluxes = _observe(noise_key, labels, latents, redshifts, config)
    return LightCurves(fluxes, labels, redshifts, latents)


_TEMPERATURE_GRID = np.geomspace(2500.0, 40000.0, 96)


def _fit_blackbodies(curves: LightCurves, config: SurveyConfig):
    """Per-epoch colour temperature (grid) and amplitude (least squares) of each object."""
    num, _, num_epochs = curves.fluxes.shape
    grid = jnp.asarray(_TEMPERATURE_GRID)
    # Template band fluxes for unit amplitude: (num, bands, grid).
    templates = _band_flux(
        jnp.ones((num, grid.size)),
        jnp.broadcast_to(grid, (num, grid.size)),
        curves.redshifts,
        config,
    )
    observed = curves.fluxes  # (num, bands, epochs)
    numerator = jnp.einsum("nbg,nbe->nge", templates, observed)
    denominator = jnp.sum(templates**2, axis=1)[:, :, None]
    amplitude = jnp.maximum(numerator / denominator, 0.0)  # (num, grid, epochs)
    residual = jnp.sum(
        (observed[:, :, None, :] - templates[:, :, :, None] * amplitude[:, None]) ** 2, axis=1
    )
    best = jnp.argmin(residual, axis=1)  # (num, epochs)
    temperature = grid[best]
    amplitude = jnp.take_along_axis(amplitude, best[:, None, :], axis=1)[:, 0]
    return amplitude, temperature


def redshift_augment(
    key: PRNGKeyArray,
    curves: LightCurves,
    copies: int,
    redshift_range: tuple[float, float],
    config: SurveyConfig,
) -> LightCurves:
    """Redshift training objects from their observed light curves (per-epoch blackbody fits).

    For each object: a blackbody fit at every epoch (colour temperature on a 96-point grid,
    amplitude by least squares, clipped at 0), then for each copy a new redshift
    :math:`z'` and a shift of the observing window; the amplitude and temperature are
    interpolated linearly in rest-frame time :math:`t/(1+z)` (amplitude 0 before the
    first epoch, held after the last), the band fluxes recomputed at :math:`z'` (band
    shift, :math:`(1+z')/d_L(z')^2` against :math:`(1+z)/d_L(z)^2`) and noise of the
    survey depth added.

    Args:
        key: JAX PRNG key.
        curves: Training :class:`LightCurves` (their redshifts are used; labels copied).
        copies: New versions per object.
        redshift_range: Range of the new redshifts (uniform).
        config: :class:`SurveyConfig`.

    Returns:
        :class:`LightCurves` of the ``num * copies`` new objects (``latents`` are
        copied from the originals, with the explosion-time column set to NaN: unknown).

    Example:
        >>> import jax
        >>> config = SurveyConfig()
        >>> train = simulate_transients(jax.random.key(0), 2, (0.05, 0.3), config)
        >>> more = redshift_augment(jax.random.key(1), train, 3, (0.05, 1.0), config)
        >>> more.fluxes.shape, more.labels.tolist()[:3]
        ((6, 4, 24), [0, 0, 0])

    """
    copies, low, high = _check_augment(key, copies, redshift_range)
    return _augment_observed(key, curves, copies, low, high, config)


@functools.partial(jax.jit, static_argnames=("copies", "config"))
def _augment_observed(key, curves, copies, low, high, config):
    z_key, shift_key, noise_key = jax.random.split(key, 3)
    num = curves.labels.shape[0]
    amplitude, temperature = _fit_blackbodies(curves, config)
    redshifts = jax.random.uniform(z_key, (num * copies,), minval=low, maxval=high)
    old_z = jnp.repeat(curves.redshifts, copies)
    amplitude = jnp.repeat(amplitude, copies, axis=0)
    temperature = jnp.repeat(temperature, copies, axis=0)
    times = jnp.asarray(config.times)
    old_rest = times[None, :] / (1.0 + old_z[:, None])
    span = float(config.times[-1])
    shift = jax.random.uniform(
        shift_key, (num * copies, 1), minval=-0.15 * span, maxval=0.15 * span
    )
    new_rest = (times[None, :] + shift) / (1.0 + redshifts[:, None])

    def interp(x, xp, fp, left):
        return jnp.interp(x, xp, fp, left=left, right=fp[-1])

    new_amplitude = jax.vmap(lambda x, xp, fp: interp(x, xp, fp, 0.0))(
        new_rest, old_rest, amplitude
    )
    new_temperature = jax.vmap(lambda x, xp, fp: interp(x, xp, fp, fp[0]))(
        new_rest, old_rest, temperature
    )
    # The fitted amplitude is the intrinsic luminosity (the template already carries the
    # (1+z)/d_L^2 of the old redshift), so it is re-observed as it is at z'.
    clean = _band_flux(new_amplitude, new_temperature, redshifts, config)
    fluxes = clean + config.noise * jax.random.normal(noise_key, clean.shape, clean.dtype)
    latents = jnp.repeat(curves.latents, copies, axis=0).at[:, 4].set(jnp.nan)
    return LightCurves(fluxes, jnp.repeat(curves.labels, copies), redshifts, latents)


class TransientClassifier(eqx.Module):
    """MLP on peak-normalised band fluxes -> two class logits.

    Attributes:
        mlp: ``equinox.nn.MLP`` from ``num_bands * num_epochs`` inputs to 2 logits.

    """

    mlp: eqx.nn.MLP

    def __init__(self, key: PRNGKeyArray, num_inputs: int, *, width: int = 64, depth: int = 2):
        self.mlp = eqx.nn.MLP(num_inputs, 2, width, depth, activation=jax.nn.gelu, key=key)

    def __call__(self, fluxes: Float[Array, "bands epochs"]) -> Float[Array, " 2"]:
        """Logits of one light curve (normalised by its largest absolute flux)."""
        flat = jnp.ravel(fluxes)
        return self.mlp(flat / jnp.max(jnp.abs(flat)))


def _loss(model, batch, key):
    del key
    fluxes, labels = batch
    logits = jax.vmap(model)(fluxes)
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(labels.shape[0]), labels])


def train_classifier(key: PRNGKeyArray, curves: LightCurves, *, config=None):
    """Train a :class:`TransientClassifier` with the shared loop (10% validation).

    Args:
        key: JAX PRNG key (initialisation, split, minibatches).
        curves: Training :class:`LightCurves`.
        config: :class:`astrobayes._training.TrainingConfig` (default: lr 1e-3, batch
            128, ≤ 200 epochs, patience 15).

    Returns:
        ``(classifier, TrainingInfo)``.

    """
    from astrobayes._training import TrainingConfig, fit, split_validation

    check_key(key)
    config = (
        TrainingConfig(learning_rate=1e-3, batch_size=128, max_epochs=200, patience=15)
        if config is None
        else config
    )
    init_key, split_key, fit_key = jax.random.split(key, 3)
    num_inputs = curves.fluxes.shape[1] * curves.fluxes.shape[2]
    model = TransientClassifier(init_key, num_inputs)
    train, validation = split_validation(split_key, (curves.fluxes, curves.labels), 0.1)
    return fit(fit_key, model, _loss, train, validation, config=config)


def classification_accuracy(
    classifier: TransientClassifier, curves: LightCurves
) -> Float[Array, ""]:
    """Share of ``curves`` whose most probable class is the true one.

    Example:
        >>> import jax
        >>> config = SurveyConfig()
        >>> curves = simulate_transients(jax.random.key(0), 2, (0.1, 0.2), config)
        >>> model = TransientClassifier(jax.random.key(1), 4 * 24)
        >>> 0.0 <= float(classification_accuracy(model, curves)) <= 1.0
        True

    """
    predicted = jnp.argmax(jax.vmap(classifier)(curves.fluxes), axis=-1)
    return jnp.mean(predicted == curves.labels)
