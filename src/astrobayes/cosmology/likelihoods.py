"""BAO and SN Ia likelihoods (normalised, jit/vmap/grad friendly).

Two layers:

* ``bao_log_likelihood(cosmology, data, h_rd=...)`` / ``sn_log_likelihood(cosmology, data,
  offset_bounds=...)`` take a :class:`~astrobayes.cosmology.Cosmology`;
* ``make_bao_log_likelihood(data, parameter_names)`` / ``make_sn_log_likelihood(...)``
  return ``log_likelihood_fn(theta)`` of a flat parameter vector, ready for a sampler
  (``jax.jit`` it yourself; it is pure).

The ``*_from_predictions`` functions take model predictions directly, so that an emulator
(or any other fast surrogate) can replace the distance integrals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from jaxtyping import Array, ArrayLike, Float

from astrobayes.cosmology.background import (
    Cosmology,
    _transverse_dimensionless_at_data,
    efunc,
)
from astrobayes.cosmology.bao_ratios import _distance_unit_over_rd
from astrobayes.cosmology.data import BAOData, SNData

__all__ = [
    "COSMOLOGY_PARAMETERS",
    "bao_log_likelihood",
    "bao_log_likelihood_from_predictions",
    "bao_predictions",
    "make_bao_log_likelihood",
    "make_sn_log_likelihood",
    "sn_distance_moduli",
    "sn_log_likelihood",
    "sn_log_likelihood_from_moduli",
]

COSMOLOGY_PARAMETERS = ("h", "omega_m", "omega_k", "omega_r", "w0", "wa")
"""Field names of :class:`~astrobayes.cosmology.Cosmology` usable in ``parameter_names``."""


def bao_predictions(
    cosmology: Cosmology,
    data: BAOData,
    *,
    rd: Float[ArrayLike, ""] | None = None,
    h_rd: Float[ArrayLike, ""] | None = None,
) -> Float[Array, " n"]:
    """Model predictions for the entries of a BAO data vector.

    Args:
        cosmology: Parameters (``h`` ignored when ``h_rd`` is given).
        data: The BAO data (its redshifts and quantities are used).
        rd: Sound horizon in Mpc, or
        h_rd: the product :math:`h r_d` in Mpc.

    Returns:
        Predicted :math:`D_M/r_d`, :math:`D_H/r_d` or :math:`D_V/r_d` per entry, shape
        ``(n,)``.

    Raises:
        ValueError: Unless exactly one of ``rd`` and ``h_rd`` is given.

    Example:
        >>> from astrobayes.cosmology import Cosmology, bao_predictions, desi_dr2_bao
        >>> prediction = bao_predictions(Cosmology(omega_m=0.3), desi_dr2_bao(), h_rd=100.0)

    """
    unit = _distance_unit_over_rd(cosmology, rd, h_rd)
    dm = _transverse_dimensionless_at_data(cosmology, data.redshifts)
    z = jnp.asarray(data.redshifts)
    dh = 1.0 / efunc(cosmology, z)
    quantities = np.asarray(data.quantities)
    prediction = jnp.where(quantities == "DM_over_rs", dm, dh)
    if "DV_over_rs" in data.quantities:
        dv = jnp.cbrt(z * dm * dm * dh)
        prediction = jnp.where(quantities == "DV_over_rs", dv, prediction)
    return unit * prediction


def bao_log_likelihood_from_predictions(
    prediction: Float[ArrayLike, " n"], data: BAOData
) -> Float[Array, ""]:
    r"""Normalised Gaussian log-likelihood of BAO predictions (same order as ``data``).

    Args:
        prediction: Predicted ratios, shape ``(n,)``.
        data: The BAO data.

    Returns:
        :math:`-\tfrac12 r^T C^{-1} r - \tfrac12\ln\det(2\pi C)`.

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import bao_log_likelihood_from_predictions, desi_dr2_bao
        >>> data = desi_dr2_bao()
        >>> value = bao_log_likelihood_from_predictions(np.asarray(data.values), data)

    """
    return data.likelihood(prediction)


def bao_log_likelihood(
    cosmology: Cosmology,
    data: BAOData,
    *,
    rd: Float[ArrayLike, ""] | None = None,
    h_rd: Float[ArrayLike, ""] | None = None,
) -> Float[Array, ""]:
    r"""Normalised Gaussian BAO log-likelihood (full covariance).

    Args:
        cosmology: Parameters (``h`` ignored when ``h_rd`` is given).
        data: BAO data, e.g. :func:`~astrobayes.cosmology.desi_dr2_bao`.
        rd: Sound horizon in Mpc, or
        h_rd: the product :math:`h r_d` in Mpc (what uncalibrated BAO constrains).

    Returns:
        :math:`\ln L` including :math:`-\tfrac12\ln\det(2\pi C)`.

    Raises:
        ValueError: Unless exactly one of ``rd`` and ``h_rd`` is given.

    References:
        DESI Collaboration 2025, arXiv:2503.14738.

    Example:
        >>> from astrobayes.cosmology import Cosmology, bao_log_likelihood, desi_dr2_bao
        >>> data = desi_dr2_bao()
        >>> value = bao_log_likelihood(Cosmology(omega_m=0.3), data, h_rd=101.0)

    """
    return data.likelihood(bao_predictions(cosmology, data, rd=rd, h_rd=h_rd))


def _check_offset_bounds(offset_bounds) -> tuple[float, float] | None:
    if offset_bounds is None:
        return None
    try:
        low, high = (float(v) for v in offset_bounds)
    except (TypeError, ValueError):
        raise TypeError(
            f"offset_bounds must be a pair (low, high) of numbers or None; got {offset_bounds!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"offset_bounds must be finite with low < high; got ({low}, {high})")
    return low, high


def _log_normal_mass(lower: Array, upper: Array) -> Array:
    r""":math:`\ln[\Phi(upper) - \Phi(lower)]` for ``lower < upper``, stable in both tails."""
    flip = lower > 0
    a = jnp.where(flip, -upper, lower)
    b = jnp.where(flip, -lower, upper)
    log_b = log_ndtr(b)
    log_a = log_ndtr(a)
    return log_b + jnp.log1p(-jnp.exp(jnp.minimum(log_a - log_b, 0.0)))


def sn_distance_moduli(cosmology: Cosmology, data: SNData) -> Float[Array, " n"]:
    r"""Dimensionless distance moduli :math:`5\log_{10}[(1+z_{hel}) D_M(z) H_0/c]`.

    (Add :math:`5\log_{10}(c/H_0/\mathrm{Mpc}) + 25` for the usual modulus; the SN
    likelihood absorbs it into the offset ``M``.)

    Args:
        cosmology: Parameters (``h`` is irrelevant).
        data: SN data (redshifts used).

    Returns:
        Shape ``(n,)``.

    Example:
        >>> from astrobayes.cosmology import Cosmology, SNData, sn_distance_moduli
        >>> data = SNData([0.1, 0.5], [38.3, 42.3], [[0.01, 0.0], [0.0, 0.01]])
        >>> moduli = sn_distance_moduli(Cosmology(), data)

    """
    dm = _transverse_dimensionless_at_data(cosmology, data.redshifts)
    return 5.0 * jnp.log10((1.0 + jnp.asarray(data.heliocentric_redshifts)) * dm)


def sn_log_likelihood_from_moduli(
    moduli: Float[ArrayLike, " n"],
    data: SNData,
    *,
    offset_bounds: tuple[float, float] | None,
) -> Float[Array, ""]:
    r"""SN log-likelihood with the offset ``M`` marginalised analytically.

    With :math:`r = m - \mu`, :math:`A = \mathbf 1^T C^{-1}\mathbf 1`, :math:`\hat M =
    \mathbf 1^T C^{-1} r / A` and :math:`\chi^2_{min} = (r - \hat M)^T C^{-1}(r - \hat M)`:

    * ``offset_bounds=(lo, hi)`` (uniform prior on ``M``, a proper likelihood for
      evidences):
      :math:`\ln L = -\tfrac12\ln\det(2\pi C) - \tfrac12\chi^2_{min}
      + \tfrac12\ln(2\pi/A) + \ln[\Phi(\sqrt A(hi-\hat M)) - \Phi(\sqrt A(lo-\hat M))]
      - \ln(hi - lo)` (exact);
    * ``offset_bounds=None`` ("profile" / improper flat prior): the same without the
      last two terms, i.e. :math:`\int L\,dM` with unit prior density. Parameter
      posteriors are identical to the wide-prior limit, but evidences are defined only
      up to the (infinite) prior width, so do not compare them across data sets.

    Args:
        moduli: Model distance moduli without the offset, shape ``(n,)``.
        data: SN data.
        offset_bounds: ``(lo, hi)`` of the uniform prior on ``M``, or ``None``. Required
            keyword, so the choice is always explicit.

    Returns:
        :math:`\ln L` (scalar).

    Raises:
        TypeError, ValueError: If ``offset_bounds`` is not ``None`` or a finite increasing
            pair.

    References:
        Conley et al. 2011 (arXiv:1104.1443), Appendix C (analytic marginalisation).

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import SNData, sn_log_likelihood_from_moduli
        >>> data = SNData([0.1, 0.5], [38.3, 42.3], 0.01 * np.eye(2))
        >>> value = sn_log_likelihood_from_moduli(
        ...     np.array([-4.7, -0.7]), data, offset_bounds=(42.0, 45.0)
        ... )

    """
    bounds = _check_offset_bounds(offset_bounds)
    residual = jnp.asarray(data.magnitudes) - data.reference_offset - jnp.asarray(moduli)
    if data.whitening_diagonal is not None:  # the same numbers, without the zeros
        white_ones = jnp.asarray(data.whitening_diagonal)
        white_residual = white_ones * residual
    else:
        whitening = jnp.asarray(data.whitening)
        white_residual = whitening @ residual
        white_ones = jnp.sum(whitening, axis=1)
    precision = data.ones_precision
    offset_hat = jnp.dot(white_ones, white_residual) / precision
    white_centred = white_residual - offset_hat * white_ones
    chi2 = jnp.sum(white_centred * white_centred)
    value = data.log_normalisation - 0.5 * chi2 + 0.5 * math.log(2.0 * math.pi / precision)
    if bounds is None:
        return value
    low, high = bounds
    root = math.sqrt(precision)
    centre = data.reference_offset + offset_hat
    mass = _log_normal_mass(root * (low - centre), root * (high - centre))
    return value + mass - math.log(high - low)


def sn_log_likelihood(
    cosmology: Cosmology,
    data: SNData,
    *,
    offset_bounds: tuple[float, float] | None,
) -> Float[Array, ""]:
    r"""SN Ia log-likelihood, offset ``M`` marginalised (see :func:`sn_log_likelihood_from_moduli`).

    Args:
        cosmology: Parameters (``h`` is absorbed by ``M`` and irrelevant).
        data: SN data from one of the readers or :class:`~astrobayes.cosmology.SNData`.
        offset_bounds: ``(lo, hi)`` uniform prior on ``M`` (normalised), or ``None`` for
            the improper flat prior.

    Returns:
        :math:`\ln L` (scalar).

    Raises:
        TypeError, ValueError: If ``offset_bounds`` is invalid.

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import Cosmology, SNData, sn_log_likelihood
        >>> data = SNData([0.1, 0.5], [38.3, 42.3], 0.01 * np.eye(2))
        >>> value = sn_log_likelihood(Cosmology(), data, offset_bounds=(42.0, 45.0))

    """
    return sn_log_likelihood_from_moduli(
        sn_distance_moduli(cosmology, data), data, offset_bounds=offset_bounds
    )


def _parse_parameters(
    parameter_names: Sequence[str],
    fixed: Mapping[str, float] | None,
    allowed: Sequence[str],
) -> tuple[tuple[str, ...], dict[str, float]]:
    if isinstance(parameter_names, str):
        raise TypeError(
            f"parameter_names must be a sequence of names, e.g. ('omega_m', 'h_rd'); got the "
            f"string {parameter_names!r}"
        )
    names = tuple(parameter_names)
    fixed = dict(fixed or {})
    unknown = sorted((set(names) | set(fixed)) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter name(s) {unknown}; allowed: {tuple(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"parameter_names has duplicates: {names}")
    both = sorted(set(names) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {both} are both sampled and fixed")
    for name, value in fixed.items():
        if not math.isfinite(float(value)):
            raise ValueError(f"fixed[{name!r}] must be finite; got {value!r}")
    return names, {k: float(v) for k, v in fixed.items()}


def _cosmology_from(values: Mapping[str, Array]) -> Cosmology:
    return Cosmology(**{k: v for k, v in values.items() if k in COSMOLOGY_PARAMETERS})


def make_bao_log_likelihood(
    data: BAOData,
    parameter_names: Sequence[str] = ("omega_m", "h_rd"),
    *,
    fixed: Mapping[str, float] | None = None,
) -> Callable[[Float[Array, " dim"]], Float[Array, ""]]:
    """Build ``log_likelihood_fn(theta)`` for BAO data over a flat parameter vector.

    Args:
        data: BAO data, e.g. :func:`~astrobayes.cosmology.desi_dr2_bao`.
        parameter_names: Names of the entries of ``theta``, from
            :data:`COSMOLOGY_PARAMETERS` plus ``"h_rd"`` (:math:`h r_d` in Mpc) or
            ``"rd"`` (Mpc, then ``h`` must be sampled or fixed). Flat ΛCDM:
            ``("omega_m", "h_rd")``; wCDM: add ``"w0"``; w0waCDM: add ``"w0", "wa"``.
        fixed: Values of non-sampled parameters; the rest take the :class:`Cosmology`
            defaults (``omega_k = omega_r = 0``, ``w0 = -1``, ``wa = 0``).

    Returns:
        A pure function ``theta -> ln L`` (``theta`` shape ``(len(parameter_names),)``),
        jit/vmap/grad friendly.

    Raises:
        TypeError: If ``parameter_names`` is a single string.
        ValueError: On unknown, duplicated or doubly given names, or unless exactly one of
            ``h_rd``/``rd`` appears (with ``h`` when ``rd`` is used).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.cosmology import desi_dr2_bao, make_bao_log_likelihood
        >>> log_likelihood_fn = jax.jit(make_bao_log_likelihood(desi_dr2_bao(), ("omega_m", "h_rd")))
        >>> value = log_likelihood_fn(jnp.array([0.3, 101.0]))

    """
    names, fixed_values = _parse_parameters(
        parameter_names, fixed, (*COSMOLOGY_PARAMETERS, "h_rd", "rd")
    )
    given = set(names) | set(fixed_values)
    if ("h_rd" in given) == ("rd" in given):
        raise ValueError(
            "exactly one of 'h_rd' (h * r_d in Mpc) and 'rd' (Mpc) must be sampled or fixed; "
            f"got parameter_names={names}, fixed={sorted(fixed_values)}"
        )
    if "rd" in given and "h" not in given:
        raise ValueError("'rd' needs 'h' to be sampled or fixed (or use 'h_rd' instead)")
    use_h_rd = "h_rd" in given

    def log_likelihood_fn(theta: Float[Array, " dim"]) -> Float[Array, ""]:
        theta = jnp.asarray(theta)
        values = {**fixed_values, **{name: theta[i] for i, name in enumerate(names)}}
        cosmology = _cosmology_from(values)
        if use_h_rd:
            return bao_log_likelihood(cosmology, data, h_rd=values["h_rd"])
        return bao_log_likelihood(cosmology, data, rd=values["rd"])

    return log_likelihood_fn


def make_sn_log_likelihood(
    data: SNData,
    parameter_names: Sequence[str] = ("omega_m",),
    *,
    offset_bounds: tuple[float, float] | None,
    fixed: Mapping[str, float] | None = None,
) -> Callable[[Float[Array, " dim"]], Float[Array, ""]]:
    """Build ``log_likelihood_fn(theta)`` for SN Ia data with ``M`` marginalised.

    Args:
        data: SN data (see the readers).
        parameter_names: Names of the entries of ``theta`` from
            :data:`COSMOLOGY_PARAMETERS` (``h`` has no effect).
        offset_bounds: Uniform prior ``(lo, hi)`` on ``M``, or ``None`` (improper flat).
        fixed: Values of non-sampled parameters.

    Returns:
        A pure function ``theta -> ln L``.

    Raises:
        TypeError, ValueError: On invalid names or ``offset_bounds``.

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> from astrobayes.cosmology import SNData, make_sn_log_likelihood
        >>> data = SNData([0.1, 0.5], [38.3, 42.3], 0.01 * np.eye(2))
        >>> fn = make_sn_log_likelihood(data, ("omega_m",), offset_bounds=(42.0, 45.0))
        >>> value = fn(jnp.array([0.3]))

    """
    names, fixed_values = _parse_parameters(parameter_names, fixed, COSMOLOGY_PARAMETERS)
    _check_offset_bounds(offset_bounds)

    def log_likelihood_fn(theta: Float[Array, " dim"]) -> Float[Array, ""]:
        theta = jnp.asarray(theta)
        values = {**fixed_values, **{name: theta[i] for i, name in enumerate(names)}}
        return sn_log_likelihood(_cosmology_from(values), data, offset_bounds=offset_bounds)

    return log_likelihood_fn
