r"""BAO distance ratios :math:`D_M/r_d`, :math:`D_H/r_d`, :math:`D_V/r_d`.

They take either the sound horizon ``rd`` in Mpc (then ``cosmology.h`` is used) or the
product ``h_rd`` :math:`= h\,r_d` in Mpc (then ``h`` is ignored, since :math:`D/r_d`
depends on :math:`h` and :math:`r_d` only through their product). Pure functions of a
:class:`~astrobayes.cosmology.Cosmology`, ``jit``/``vmap``/``grad`` friendly.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from astrobayes.cosmology.background import (
    _HUBBLE_DISTANCE_H1,
    Cosmology,
    _dv_dimensionless,
    _transverse_dimensionless,
    efunc,
)

__all__ = ["dh_over_rd", "dm_over_rd", "dv_over_rd"]


def _distance_unit_over_rd(
    cosmology: Cosmology, rd: Float[ArrayLike, ""] | None, h_rd: Float[ArrayLike, ""] | None
) -> Array:
    """(c/H0)/r_d from either ``rd`` (Mpc, with ``cosmology.h``) or ``h_rd`` (Mpc)."""
    if (rd is None) == (h_rd is None):
        raise ValueError(
            "give exactly one of rd (sound horizon in Mpc, used with cosmology.h) or h_rd "
            f"(the product h * r_d in Mpc); got rd={rd!r}, h_rd={h_rd!r}"
        )
    if h_rd is not None:
        return _HUBBLE_DISTANCE_H1 / jnp.asarray(h_rd)
    return _HUBBLE_DISTANCE_H1 / (jnp.asarray(cosmology.h) * jnp.asarray(rd))


def dm_over_rd(
    cosmology: Cosmology,
    z: Float[ArrayLike, "*shape"],
    *,
    rd: Float[ArrayLike, ""] | None = None,
    h_rd: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "*shape"]:
    r"""BAO ratio :math:`D_M(z)/r_d`.

    Args:
        cosmology: Parameters (``h`` is ignored when ``h_rd`` is given).
        z: Redshift(s), any shape.
        rd: Sound horizon at the drag epoch in Mpc.
        h_rd: Alternatively the product :math:`h\,r_d` in Mpc.

    Returns:
        :math:`D_M/r_d`, same shape as ``z``.

    Raises:
        ValueError: Unless exactly one of ``rd`` and ``h_rd`` is given.

    Example:
        >>> from astrobayes.cosmology import Cosmology, dm_over_rd
        >>> ratio = dm_over_rd(Cosmology(omega_m=0.3), 0.51, h_rd=100.0)

    """
    unit = _distance_unit_over_rd(cosmology, rd, h_rd)
    return unit * _transverse_dimensionless(cosmology, jnp.asarray(z))


def dh_over_rd(
    cosmology: Cosmology,
    z: Float[ArrayLike, "*shape"],
    *,
    rd: Float[ArrayLike, ""] | None = None,
    h_rd: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "*shape"]:
    r"""BAO ratio :math:`D_H(z)/r_d` with :math:`D_H = c/H(z)`.

    Args:
        cosmology: Parameters (``h`` is ignored when ``h_rd`` is given).
        z: Redshift(s), any shape.
        rd: Sound horizon at the drag epoch in Mpc.
        h_rd: Alternatively the product :math:`h\,r_d` in Mpc.

    Returns:
        :math:`D_H/r_d`, same shape as ``z``.

    Raises:
        ValueError: Unless exactly one of ``rd`` and ``h_rd`` is given.

    Example:
        >>> from astrobayes.cosmology import Cosmology, dh_over_rd
        >>> ratio = dh_over_rd(Cosmology(omega_m=0.3), 0.51, rd=147.0)

    """
    unit = _distance_unit_over_rd(cosmology, rd, h_rd)
    return unit / efunc(cosmology, z)


def dv_over_rd(
    cosmology: Cosmology,
    z: Float[ArrayLike, "*shape"],
    *,
    rd: Float[ArrayLike, ""] | None = None,
    h_rd: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "*shape"]:
    r"""BAO ratio :math:`D_V(z)/r_d`.

    Args:
        cosmology: Parameters (``h`` is ignored when ``h_rd`` is given).
        z: Redshift(s) ``> 0``, any shape.
        rd: Sound horizon at the drag epoch in Mpc.
        h_rd: Alternatively the product :math:`h\,r_d` in Mpc.

    Returns:
        :math:`D_V/r_d`, same shape as ``z``.

    Raises:
        ValueError: Unless exactly one of ``rd`` and ``h_rd`` is given.

    Example:
        >>> from astrobayes.cosmology import Cosmology, dv_over_rd
        >>> ratio = dv_over_rd(Cosmology(omega_m=0.3), 0.295, h_rd=100.0)

    """
    unit = _distance_unit_over_rd(cosmology, rd, h_rd)
    return unit * _dv_dimensionless(cosmology, jnp.asarray(z))
