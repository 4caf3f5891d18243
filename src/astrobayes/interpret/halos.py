"""A halo-profile laboratory: density profiles driven by known physics, with known causes.

Each halo has three generating factors, drawn independently:

1. the **normalisation** ``log10 ρ_m(z) / ρ_m(0) = 3 log10(1 + z)``: halos are observed
   at redshifts ``z`` and their densities are given in units of today's mean matter
   density, so a halo of the same shape observed earlier is denser by ``(1 + z)³``
   (the mass definition fixes ``ρ / ρ_m(z)`` at a given ``r / R_200m``);
2. the **formation epoch** ``a_c / a_obs`` of the mass-accretion history, in units of
   the observation epoch, which sets the inner profile through the concentration of
   Wechsler et al. (2002), ``c = c1 a_obs / a_c`` with ``c1 = 4.1`` (applied to
   ``c_200m``), with a log-normal scatter;
3. the **recent accretion rate** ``Γ = Δ ln M / Δ ln a``, which sets the splashback
   radius by the calibration of More, Diemer & Kravtsov (2015, their eq. 5),
   ``R_sp / R_200m = 0.54 [1 + 0.53 Ω_m] (1 + 1.36 exp(-Γ / 3.04))``, with a
   log-normal scatter.

The density is the form of Diemer & Kravtsov (2014): an inner (NFW) profile times the
transition term ``f_trans = [1 + (r / r_t)^β]^(-γ / β)`` (``β = 4``, ``γ = 6``), plus the
outer (infalling) term ``ρ_m [b_e (r / 5 R_200m)^(-s_e) + 1]`` (``b_e = 1``,
``s_e = 1.5``). The truncation radius is put at the splashback radius, ``r_t = R_sp``.
The NFW normalisation follows from the mass definition (mean density ``200 ρ_m`` inside
``R_200m``): ``ρ_s = 200 ρ_m c³ / (3 m(c))``, ``m(c) = ln(1 + c) − c / (1 + c)``
(Navarro, Frenk & White 1997). Gaussian noise (in dex) is added to ``log10 ρ``.

What is simplified, on purpose: a single-parameter Wechsler history alone would tie
``Γ`` to ``a_c`` (``Γ = 2 S a_c / a`` at the observation epoch); real histories scatter
around that, and the laboratory draws ``Γ`` independently so that each factor has one
owner. The mass dependence of ``a_c`` and of ``R_sp``, and the evolution of ``Ω_m(z)``
in the splashback relation, are dropped for the same reason.

With ``control=True`` the splashback radius is set by an *independent* draw of the
accretion rate that is not returned: the outer profile varies as much as before but
carries no information about the returned ``Γ`` (the negative control of the
interpretable encoder).

Radii are in units of each halo's ``R_200m``.

References:
    Wechsler, Bullock, Primack, Kravtsov & Dekel (2002), ApJ 568, 52, astro-ph/0108151.
    Diemer & Kravtsov (2014), ApJ 789, 1, arXiv:1401.1216.
    More, Diemer & Kravtsov (2015), ApJ 810, 36, arXiv:1504.05591.
    Navarro, Frenk & White (1997), ApJ 490, 493, astro-ph/9611107.
    Lucie-Smith, Peiris, Pontzen, Nord, Thiyagalingam & Piras (2022), PRD 105, 103533,
    arXiv:2203.08827 (the interpretable encoder on simulated halos).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

__all__ = [
    "FACTOR_NAMES",
    "HaloProfiles",
    "default_radii",
    "halo_log_density",
    "halo_profiles",
    "splashback_radius",
    "wechsler_concentration",
]

#: Names of the generating factors, in the column order of :attr:`HaloProfiles.factors`.
FACTOR_NAMES = ("normalisation", "formation_epoch", "accretion_rate")

_WECHSLER_C1 = 4.1
_TRANSITION_BETA = 4.0
_TRANSITION_GAMMA = 6.0
_OUTER_AMPLITUDE = 1.0
_OUTER_SLOPE = 1.5


class HaloProfiles(NamedTuple):
    """Profiles of the laboratory and what made them.

    Attributes:
        log_density: ``log10 ρ / ρ_m(0)`` with noise, shape ``(num_halos, num_radii)``.
        log_radius: ``log10 r / R_200m``, ``(num_radii,)``.
        factors: The generating factors ``(3 log10(1 + z), a_c / a_obs, Γ)``,
            ``(num_halos, 3)``;
            column names in :data:`FACTOR_NAMES`.
        concentration: ``c_200m`` (after scatter), ``(num_halos,)``.
        splashback_radius: ``R_sp / R_200m`` (after scatter), ``(num_halos,)``.
        is_control: Whether the outer profile was made independent of ``Γ``.
    """

    log_density: Float[Array, "num_halos num_radii"]
    log_radius: Float[Array, " num_radii"]
    factors: Float[Array, "num_halos 3"]
    concentration: Float[Array, " num_halos"]
    splashback_radius: Float[Array, " num_halos"]
    is_control: bool


def default_radii(num_radii: int = 32) -> Float[Array, " num_radii"]:
    """``num_radii`` log-spaced radii from 0.05 to 3 (units of ``R_200m``).

    Examples:
        >>> r = default_radii(4)
        >>> [round(float(v), 3) for v in r]
        [0.05, 0.196, 0.766, 3.0]
    """
    check_positive_int(num_radii, "num_radii", minimum=2)
    return jnp.logspace(math.log10(0.05), math.log10(3.0), num_radii)


def wechsler_concentration(
    formation_epoch: Float[Array, ...], observed_epoch: float = 1.0
) -> Float[Array, ...]:
    """Concentration ``c = 4.1 a_obs / a_c`` (Wechsler et al. 2002, astro-ph/0108151).

    Examples:
        >>> round(float(wechsler_concentration(0.41)), 6)
        10.0
    """
    return _WECHSLER_C1 * observed_epoch / jnp.asarray(formation_epoch)


def splashback_radius(
    accretion_rate: Float[Array, ...], omega_m: float = 0.31
) -> Float[Array, ...]:
    """``R_sp / R_200m = 0.54 [1 + 0.53 Ω_m] (1 + 1.36 e^(−Γ/3.04))`` (More et al. 2015).

    Args:
        accretion_rate: ``Γ = Δ ln M / Δ ln a`` (More, Diemer & Kravtsov 2015,
            arXiv:1504.05591, eq. 5).
        omega_m: Matter density parameter.

    Examples:
        >>> round(float(splashback_radius(0.0, omega_m=0.0)), 4)
        1.2744
    """
    gamma = jnp.asarray(accretion_rate)
    return 0.54 * (1.0 + 0.53 * omega_m) * (1.0 + 1.36 * jnp.exp(-gamma / 3.04))


def halo_log_density(
    normalisation: Float[Array, ""],
    concentration: Float[Array, ""],
    splashback: Float[Array, ""],
    radii: Float[Array, " num_radii"],
) -> Float[Array, " num_radii"]:
    """``log10 ρ(r) / ρ_m(0)`` of one halo in the Diemer & Kravtsov (2014) form.

    Args:
        normalisation: ``log10 ρ_m(z) / ρ_m(0)`` (``3 log10(1 + z)``).
        concentration: ``c_200m`` of the inner NFW profile.
        splashback: ``R_sp / R_200m`` (the truncation radius of ``f_trans``).
        radii: Radii in units of ``R_200m``.

    Returns:
        ``log10 ρ / ρ_m(0)`` at ``radii``, noise-free.

    Examples:
        >>> import jax.numpy as jnp
        >>> rho = halo_log_density(0.0, 10.0, 1.2, jnp.array([0.1, 1.0, 3.0]))
        >>> [round(float(v), 2) for v in rho]
        [4.06, 1.51, 0.5]
    """
    x = radii
    c = concentration
    m_c = jnp.log1p(c) - c / (1.0 + c)
    rho_s = 200.0 * c**3 / (3.0 * m_c)
    inner = rho_s / (c * x * (1.0 + c * x) ** 2)
    transition = (1.0 + (x / splashback) ** _TRANSITION_BETA) ** (
        -_TRANSITION_GAMMA / _TRANSITION_BETA
    )
    outer = _OUTER_AMPLITUDE * (x / 5.0) ** (-_OUTER_SLOPE) + 1.0
    return normalisation + jnp.log10(inner * transition + outer)


@partial(jax.jit, static_argnames=("num_halos", "ranges", "control"))
def _draw(key, num_halos, radii, ranges, concentration_scatter, splashback_scatter, noise,
          omega_m, control):  # fmt: skip
    """Factors, concentrations, splashback radii and noisy profiles (compiled)."""
    redshift_range, formation_epoch_range, accretion_rate_range = ranges
    keys = jax.random.split(key, 7)

    def uniform(k, bounds):
        return jax.random.uniform(k, (num_halos,), minval=bounds[0], maxval=bounds[1])

    normalisation = 3.0 * jnp.log10(1.0 + uniform(keys[0], redshift_range))
    formation_epoch = uniform(keys[1], formation_epoch_range)
    accretion_rate = uniform(keys[2], accretion_rate_range)
    outer_rate = uniform(keys[3], accretion_rate_range) if control else accretion_rate
    concentration = wechsler_concentration(formation_epoch) * 10.0 ** (
        concentration_scatter * jax.random.normal(keys[4], (num_halos,))
    )
    splashback = splashback_radius(outer_rate, omega_m) * 10.0 ** (
        splashback_scatter * jax.random.normal(keys[5], (num_halos,))
    )
    clean = jax.vmap(halo_log_density, in_axes=(0, 0, 0, None))(
        normalisation, concentration, splashback, radii
    )
    noisy = clean + noise * jax.random.normal(keys[6], clean.shape)
    factors = jnp.stack([normalisation, formation_epoch, accretion_rate], axis=1)
    return factors, concentration, splashback, noisy


def halo_profiles(
    key: PRNGKeyArray,
    num_halos: int,
    *,
    radii: Float[Array, " num_radii"] | None = None,
    redshift_range: tuple[float, float] = (0.0, 1.0),
    formation_epoch_range: tuple[float, float] = (0.2, 0.5),
    accretion_rate_range: tuple[float, float] = (0.5, 5.0),
    concentration_scatter: float = 0.05,
    splashback_scatter: float = 0.03,
    noise: float = 0.02,
    omega_m: float = 0.31,
    control: bool = False,
) -> HaloProfiles:
    """Draw ``num_halos`` noisy profiles with their generating factors.

    ``z``, ``a_c / a_obs`` and ``Γ`` are independent and uniform in their ranges. Scatter:
    ``log10 c`` and ``log10 R_sp`` get Gaussian scatter of ``concentration_scatter``
    and ``splashback_scatter`` dex; every profile point gets Gaussian noise of
    ``noise`` dex.

    Args:
        key: PRNG key.
        num_halos: Number of halos.
        radii: Radii (units of ``R_200m``); default :func:`default_radii`.
        redshift_range: Range of the observation redshift ``z``.
        formation_epoch_range: Range of the formation epoch ``a_c / a_obs``.
        accretion_rate_range: Range of ``Γ``.
        concentration_scatter: Scatter of ``log10 c`` at fixed ``a_c`` (dex).
        splashback_scatter: Scatter of ``log10 R_sp`` at fixed ``Γ`` (dex).
        noise: Noise per profile point (dex).
        omega_m: Matter density parameter of the splashback relation.
        control: Set the splashback radius from an independent accretion rate (not
            returned), so that the outer profile carries no information about ``Γ``.

    Returns:
        A :class:`HaloProfiles`.

    Raises:
        ValueError: If a range is empty or outside its physical domain, a scatter or
            the noise is negative, or ``num_halos`` is not a positive integer.

    Examples:
        >>> import jax
        >>> halos = halo_profiles(jax.random.key(0), 3)
        >>> halos.log_density.shape, halos.factors.shape
        ((3, 32), (3, 3))
    """
    check_key(key)
    check_positive_int(num_halos, "num_halos")
    for name, (low, high), minimum in (
        ("redshift_range", redshift_range, 0.0),
        ("formation_epoch_range", formation_epoch_range, 0.0),
        ("accretion_rate_range", accretion_rate_range, 0.0),
    ):
        if not (math.isfinite(low) and math.isfinite(high) and minimum <= low < high):
            raise ValueError(
                f"{name} must be (low, high) with {minimum} <= low < high, finite; "
                f"got {(low, high)}"
            )
    if formation_epoch_range[1] > 1.0:
        raise ValueError(f"formation_epoch_range must lie in (0, 1]; got {formation_epoch_range}")
    for name, value in (
        ("concentration_scatter", concentration_scatter),
        ("splashback_scatter", splashback_scatter),
        ("noise", noise),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    radii = default_radii() if radii is None else jnp.asarray(radii, jnp.result_type(float))
    if radii.ndim != 1 or not bool(jnp.all(radii > 0)):
        raise ValueError(f"radii must be a 1-D array of positive radii; got shape {radii.shape}")
    factors, concentration, splashback, noisy = _draw(
        key,
        num_halos,
        radii,
        tuple(
            (float(low), float(high))
            for low, high in (redshift_range, formation_epoch_range, accretion_rate_range)
        ),
        concentration_scatter,
        splashback_scatter,
        noise,
        omega_m,
        bool(control),
    )
    return HaloProfiles(
        log_density=noisy,
        log_radius=jnp.log10(radii),
        factors=factors,
        concentration=concentration,
        splashback_radius=splashback,
        is_control=bool(control),
    )
