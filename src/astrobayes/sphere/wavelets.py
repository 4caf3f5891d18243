r"""Scale-discretised axisymmetric wavelets on the sphere, with filters built here.

The harmonic tiling of Wiaux et al. 2008 (arXiv:0712.3519) in the form of S2LET
(Leistedt, McEwen, Vandergheynst & Wiaux 2013, arXiv:1211.1680): a smooth kernel
:math:`k_\lambda(t)` falls from 1 at :math:`t \le 1/\lambda` to 0 at :math:`t \ge 1`; the
wavelet of scale ``j`` has harmonic profile
:math:`\kappa_j(\ell) = \sqrt{k_\lambda(\ell/\lambda^{j+1}) - k_\lambda(\ell/\lambda^j)}`
and the scaling function :math:`\eta(\ell) = \sqrt{k_\lambda(\ell/\lambda^{J_0})}`. The
squares telescope, :math:`\eta^2 + \sum_j \kappa_j^2 = 1` for every :math:`\ell < L`, so
synthesis after analysis is the identity up to rounding (on exact grids) whatever the
accuracy of the kernel's quadrature. Convolution with an axisymmetric wavelet multiplies
:math:`f_{\ell m}` by the profile, so the wavelet maps are real.

Directional wavelets (McEwen, Durastanti & Wiaux 2018, arXiv:1509.06749; S2LET's
steerable tiling) multiply the same radial profiles by a steerable azimuthal profile
:math:`s_{\ell n}` with azimuthal band limit ``N``: :math:`\psi^j_{\ell n} =
\sqrt{(2\ell+1)/4\pi}\,\kappa_j(\ell)\,s_{\ell n}`, ``n`` in ``-N+1, -N+3, .., N-1``,
:math:`\sum_n |s_{\ell n}|^2 = 1`. The coefficient of a real map at position
:math:`(\beta, \alpha)` and orientation :math:`\gamma` is
:math:`W^j(\alpha,\beta,\gamma) = \langle f, R_{\alpha\beta\gamma}\psi^j\rangle
= \sum_{\ell m n} f_{\ell m}\,\kappa_j(\ell)\,s_{\ell n}\,e^{i n \gamma}\,
{}_{-n}Y_{\ell m}(\beta, \alpha)`, so each ``n`` is one spin-``(-n)`` synthesis; with
``N = 3`` (``n`` in ``{-2, 0, 2}``) that is one spin-0 and one spin-2 synthesis of
:mod:`astrobayes.sphere.transforms`, no Wigner transform:
:math:`W^j(\gamma) = T_j + 2 (Q_j \cos 2\gamma + U_j \sin 2\gamma)`, with
:math:`T_j` the spin-0 map of :math:`f_{\ell m}\kappa_j s_{\ell 0}` and
:math:`(Q_j, U_j)` the spin-2 map of :math:`E = -f_{\ell m}\kappa_j s_{\ell 2}, B = 0`
(checked against a brute-force quadrature of :math:`\langle f, R\psi\rangle` with
rotation matrices, ``tests/test_sphere_wavelets.py``). ``N`` orientations
:math:`\gamma_k = \pi k / N` determine every other orientation exactly (steerability,
:func:`steer`), and synthesis, the adjoint of analysis with weight ``1/N`` per
orientation, reconstructs exactly because :math:`\eta^2 + \sum_j \kappa_j^2
\sum_n s_{\ell n}^2 = 1`. Only ``N = 1`` and ``N = 3`` are offered: other ``N`` need
spins 1, 3, 4, ... that the transforms do not expose.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes.sphere.transforms import SphereGrid, ell_m, forward, inverse

__all__ = [
    "DIRECTIONS",
    "WaveletFilters",
    "axisymmetric_filters",
    "directional_analysis",
    "directional_filters",
    "directional_maps_from_alm",
    "directional_synthesis",
    "orientations",
    "steer",
    "wavelet_analysis",
    "wavelet_synthesis",
]

DIRECTIONS = (1, 3)


@dataclasses.dataclass(frozen=True, eq=False)
class WaveletFilters:
    """Harmonic profiles of the scaling function and the wavelets.

    Hashed by identity, so one filter set can be a static argument of ``jax.jit``.

    Attributes:
        scaling: ``eta(ell)``, shape ``(L,)``.
        wavelets: ``kappa_j(ell)`` for ``j = min_scale .. max_scale``, shape ``(J, L)``.
        dilation: ``lambda`` > 1.
        min_scale: ``J_0``.
        directions: ``N``, the azimuthal band limit (1: axisymmetric).
        steerable: ``s_{ell n}`` for ``n = -N+1, -N+3, .., N-1``, shape ``(L, N)``
            (real; ``None`` for axisymmetric filters, i.e. ``s_{ell 0} = 1``).
    """

    scaling: np.ndarray
    wavelets: np.ndarray
    dilation: float
    min_scale: int
    directions: int = 1
    steerable: np.ndarray | None = None


def _kernel(t: np.ndarray, dilation: float) -> np.ndarray:
    """k_lambda(t): 1 below 1/lambda, 0 above 1, smooth and monotone in between."""
    lower = 1.0 / dilation
    grid = np.linspace(lower, 1.0, 4097)
    u = 2.0 * dilation / (dilation - 1.0) * (grid - lower) - 1.0
    with np.errstate(divide="ignore", over="ignore"):
        bump = np.where(np.abs(u) < 1.0, np.exp(-1.0 / np.maximum(1.0 - u**2, 1e-300)), 0.0)
    integrand = bump / grid
    # cumulative integral from t to 1 (trapezoid), normalised to 1 at t = 1/lambda
    pieces = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(grid)
    tail = np.concatenate([np.cumsum(pieces[::-1])[::-1], [0.0]])
    tail = tail / tail[0]
    return np.interp(t, grid, tail, left=1.0, right=0.0)


def axisymmetric_filters(
    band_limit: int, *, dilation: float = 2.0, min_scale: int = 0
) -> WaveletFilters:
    """Scale-discretised axisymmetric wavelet and scaling profiles for band limit ``L``.

    Args:
        band_limit: ``L``.
        dilation: ``lambda`` > 1; scale ``j`` covers ``lambda^(j-1) < ell < lambda^(j+1)``.
        min_scale: ``J_0``, the first wavelet scale; lower degrees go to the scaling
            function.

    Returns:
        :class:`WaveletFilters` with ``J = max_scale - min_scale + 1`` wavelets, where
        ``max_scale = ceil(log_lambda(L - 1))``.

    Raises:
        ValueError: ``dilation <= 1``, ``min_scale`` negative or beyond the band limit.

    References:
        Leistedt et al. 2013 (arXiv:1211.1680); Wiaux et al. 2008 (arXiv:0712.3519).

    Examples:
        >>> filters = axisymmetric_filters(16)
        >>> filters.wavelets.shape
        (5, 16)
        >>> bool(np.allclose(filters.scaling**2 + (filters.wavelets**2).sum(0), 1.0))
        True
    """
    if not isinstance(band_limit, int) or band_limit < 2:
        raise ValueError(f"band_limit must be an int >= 2, got {band_limit!r}")
    if not dilation > 1.0:
        raise ValueError(f"dilation must be > 1, got {dilation!r}")
    max_scale = math.ceil(math.log(band_limit - 1) / math.log(dilation) - 1e-12)
    if not isinstance(min_scale, int) or not 0 <= min_scale <= max_scale:
        raise ValueError(f"min_scale must be an int in [0, {max_scale}], got {min_scale!r}")
    ells = np.arange(band_limit, dtype=float)
    scaling = np.sqrt(_kernel(ells / dilation**min_scale, dilation))
    wavelets = []
    for j in range(min_scale, max_scale + 1):
        difference = _kernel(ells / dilation ** (j + 1), dilation) - _kernel(
            ells / dilation**j, dilation
        )
        wavelets.append(np.sqrt(np.clip(difference, 0.0, None)))
    return WaveletFilters(
        scaling=scaling, wavelets=np.stack(wavelets), dilation=float(dilation), min_scale=min_scale
    )


def _check_filters(filters, grid: SphereGrid, *, axisymmetric: bool = True) -> None:
    if not isinstance(filters, WaveletFilters):
        raise TypeError(f"filters must be WaveletFilters, got {type(filters).__name__}")
    if not isinstance(grid, SphereGrid):
        raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")
    if filters.scaling.shape != (grid.band_limit,):
        raise ValueError(
            f"filters must be built for band_limit {grid.band_limit}, "
            f"got profiles of length {filters.scaling.shape[0]}"
        )
    if axisymmetric and filters.directions != 1:
        raise ValueError(
            f"filters must be axisymmetric (directions=1) here, got directions="
            f"{filters.directions}; use directional_analysis / directional_synthesis"
        )


def wavelet_analysis(
    f: Float[Array, "*batch *map"], grid: SphereGrid, filters: WaveletFilters
) -> tuple[Float[Array, "*batch *map"], Float[Array, "*batch num_scales *map"]]:
    """Scaling and wavelet coefficient maps of real maps (full resolution at each scale).

    Args:
        f: maps with trailing shape ``grid.map_shape``.
        grid: the :class:`~astrobayes.sphere.SphereGrid`.
        filters: from :func:`axisymmetric_filters` for ``grid.band_limit``.

    Returns:
        ``(scaling_map, wavelet_maps)``, the latter with a scale axis before the map axes.

    Raises:
        TypeError, ValueError: filters of another type or band limit.

    Examples:
        >>> grid = SphereGrid(8, "gl")
        >>> filters = axisymmetric_filters(8)
        >>> f = jnp.asarray(np.random.default_rng(0).normal(size=grid.map_shape))
        >>> scaling, wavelets = wavelet_analysis(f, grid, filters)
        >>> wavelets.shape
        (4, 8, 15)
    """
    _check_filters(filters, grid)
    ells, _ = ell_m(grid.band_limit)
    alm = forward(f, grid)
    scaling = inverse(alm * jnp.asarray(filters.scaling[ells]), grid)
    profiles = jnp.asarray(filters.wavelets[:, ells])
    wavelets = inverse(alm[..., None, :] * profiles, grid)
    return scaling, wavelets


def wavelet_synthesis(
    scaling: Float[Array, "*batch *map"],
    wavelets: Float[Array, "*batch num_scales *map"],
    grid: SphereGrid,
    filters: WaveletFilters,
) -> Float[Array, "*batch *map"]:
    """The map whose :func:`wavelet_analysis` gave ``(scaling, wavelets)``.

    Args:
        scaling: scaling coefficient maps.
        wavelets: wavelet coefficient maps, scale axis before the map axes.
        grid: the :class:`~astrobayes.sphere.SphereGrid`.
        filters: the filters used in the analysis.

    Returns:
        Reconstructed maps (exact to rounding on GL and MW for band-limited input).

    Examples:
        >>> grid = SphereGrid(8, "mw")
        >>> filters = axisymmetric_filters(8)
        >>> f = inverse(forward(jnp.ones(grid.map_shape), grid), grid)
        >>> back = wavelet_synthesis(*wavelet_analysis(f, grid, filters), grid, filters)
        >>> bool(jnp.allclose(back, f, atol=1e-5))
        True
    """
    _check_filters(filters, grid)
    ells, _ = ell_m(grid.band_limit)
    num_scales = filters.wavelets.shape[0]
    axis = wavelets.ndim - len(grid.map_shape) - 1
    if axis < 0 or wavelets.shape[axis] != num_scales:
        raise ValueError(
            f"wavelets must have {num_scales} scales before the map axes, got shape {wavelets.shape}"
        )
    alm = forward(scaling, grid) * jnp.asarray(filters.scaling[ells])
    wavelet_alm = forward(wavelets, grid) * jnp.asarray(filters.wavelets[:, ells])
    return inverse(alm + wavelet_alm.sum(axis=-2), grid)


def _steerable_profile(band_limit: int, directions: int) -> np.ndarray:
    """S2LET's steerable s_{ell n}, n = -N+1, -N+3, .., N-1, for odd N; shape (L, N)."""
    orders = np.arange(-directions + 1, directions, 2)
    profile = np.zeros((band_limit, directions))
    for ell in range(band_limit):
        # highest order present: N - 1, or one less where ell has the other parity
        top = min(directions - 1, ell - (1 + (-1) ** (directions + ell)) // 2)
        for column, n in enumerate(orders):
            if abs(n) <= top and (top - n) % 2 == 0:
                profile[ell, column] = math.sqrt(math.comb(top, (top - n) // 2) / 2.0**top)
    return profile


def directional_filters(
    band_limit: int, directions: int = 3, *, dilation: float = 2.0, min_scale: int = 0
) -> WaveletFilters:
    r"""Scale-discretised directional (steerable) wavelet filters for band limit ``L``.

    S2LET's radial tiling times a steerable azimuthal profile with azimuthal band limit
    ``N = directions``. The radial profiles are those of :func:`axisymmetric_filters`; the azimuthal profile
    is S2LET's :math:`s_{\ell n} = \sqrt{\binom{\gamma}{(\gamma - n)/2} / 2^\gamma}` with
    :math:`\gamma = \min(N - 1, \ell - (1 + (-1)^{N + \ell})/2)`, so
    :math:`\sum_n s_{\ell n}^2 = 1` at every ``ell`` and the tiling stays exact
    (``s_00 = 1`` here; S2LET sets it to 0, which changes nothing since every
    :math:`\kappa_j(0) = 0`). ``directions=1`` gives the axisymmetric wavelets.

    Args:
        band_limit: ``L``.
        directions: ``N``, 1 or 3 (``n`` in ``{-2, 0, 2}``: spin 0 and 2 transforms).
        dilation: ``lambda`` > 1.
        min_scale: ``J_0``.

    Returns:
        :class:`WaveletFilters` with ``directions`` and ``steerable`` set.

    Raises:
        ValueError: ``directions`` not in :data:`DIRECTIONS`, or what
            :func:`axisymmetric_filters` rejects.

    References:
        McEwen, Durastanti & Wiaux 2018 (arXiv:1509.06749); Leistedt et al. 2013
        (arXiv:1211.1680).

    Examples:
        >>> filters = directional_filters(16, 3)
        >>> filters.steerable.shape, filters.steerable[4].round(4).tolist()
        ((16, 3), [0.5, 0.7071, 0.5])
        >>> bool(np.allclose((filters.steerable**2).sum(1), 1.0))
        True
    """
    if isinstance(directions, bool) or directions not in DIRECTIONS:
        raise ValueError(
            f"directions must be one of {DIRECTIONS} (azimuthal band limit N; other N "
            f"need spins the transforms do not offer), got {directions!r}"
        )
    base = axisymmetric_filters(band_limit, dilation=dilation, min_scale=min_scale)
    return dataclasses.replace(
        base, directions=int(directions), steerable=_steerable_profile(band_limit, directions)
    )


def orientations(directions: int) -> np.ndarray:
    """The sampled orientations ``gamma_k = pi k / N``, ``k = 0 .. N - 1`` (radians).

    With odd ``N`` only even ``n`` occur, so the coefficients are ``pi``-periodic in
    ``gamma`` and ``N`` samples of ``[0, pi)`` determine them.

    Examples:
        >>> orientations(3).round(4).tolist()
        [0.0, 1.0472, 2.0944]
    """
    return np.pi * np.arange(directions) / directions


def _profiles(filters: WaveletFilters) -> tuple[np.ndarray, np.ndarray | None]:
    """kappa_j(ell) s_{ell 0} and kappa_j(ell) s_{ell 2} (None for N = 1), shape (J, L)."""
    if filters.steerable is None:
        return filters.wavelets, None
    orders = np.arange(-filters.directions + 1, filters.directions, 2)
    zero = filters.steerable[:, orders == 0][:, 0]
    if filters.directions == 1:
        return filters.wavelets * zero, None
    two = filters.steerable[:, orders == 2][:, 0]
    return filters.wavelets * zero, filters.wavelets * two


def _map_axes_shape(grid: SphereGrid) -> tuple[int, ...]:
    return (1,) * len(grid.map_shape)


def directional_analysis(
    f: Float[Array, "*batch *map"], grid: SphereGrid, filters: WaveletFilters
) -> tuple[Float[Array, "*batch *map"], Float[Array, "*batch num_scales directions *map"]]:
    r"""Scaling map and directional wavelet maps at the ``N`` orientations of real maps.

    ``wavelets[..., j, k, :]`` is :math:`W^j(\alpha, \beta, \gamma_k) = \langle f,
    R_{\alpha \beta \gamma_k} \psi^j \rangle` on the grid's pixels :math:`(\beta,
    \alpha)`, with :math:`R = R_z(\alpha) R_y(\beta) R_z(\gamma)` acting as
    :math:`(R g)(x) = g(R^{-1} x)` and :math:`\gamma_k` from :func:`orientations`.
    Cost: one analysis, ``J + 1`` spin-0 syntheses and (``N = 3``) ``J`` spin-2 ones.

    Args:
        f: maps with trailing shape ``grid.map_shape``.
        grid: the :class:`~astrobayes.sphere.SphereGrid` (``method="ducc"`` for
            ``N = 3``: the pure-JAX path has no spin 2).
        filters: from :func:`directional_filters` (or :func:`axisymmetric_filters`,
            read as ``N = 1``) for ``grid.band_limit``.

    Returns:
        ``(scaling_map, wavelet_maps)``, the latter with axes ``(scale, orientation)``
        before the map axes (orientation of length 1 for axisymmetric filters).

    Raises:
        TypeError, ValueError: filters or grid of another type, another band limit.

    References:
        McEwen, Durastanti & Wiaux 2018 (arXiv:1509.06749).

    Examples:
        >>> grid = SphereGrid(8, "gl")
        >>> f = jnp.asarray(np.random.default_rng(0).normal(size=grid.map_shape))
        >>> scaling, wavelets = directional_analysis(f, grid, directional_filters(8, 3))
        >>> wavelets.shape
        (4, 3, 8, 15)
    """
    _check_filters(filters, grid, axisymmetric=False)
    ells, _ = ell_m(grid.band_limit)
    alm = forward(f, grid)
    scaling = inverse(alm * jnp.asarray(filters.scaling[ells]), grid)
    return scaling, directional_maps_from_alm(alm, grid, filters)


def directional_maps_from_alm(
    alm: Complex[Array, "*batch num_alm"], grid: SphereGrid, filters: WaveletFilters
) -> Float[Array, "*batch num_scales directions *map"]:
    """The wavelet maps of :func:`directional_analysis` from the map's coefficients.

    For callers that already hold ``forward(f, grid)`` (the scattering statistics).

    Examples:
        >>> grid = SphereGrid(8, "gl")
        >>> alm = forward(jnp.ones(grid.map_shape), grid)
        >>> directional_maps_from_alm(alm, grid, directional_filters(8, 3)).shape
        (4, 3, 8, 15)
    """
    _check_filters(filters, grid, axisymmetric=False)
    ells, _ = ell_m(grid.band_limit)
    zero, two = _profiles(filters)
    spin0 = inverse(alm[..., None, :] * jnp.asarray(zero[:, ells]), grid)  # (*b, J, *map)
    if two is None:
        return spin0[..., None, *(slice(None),) * len(grid.map_shape)]
    gradient = -alm[..., None, :] * jnp.asarray(two[:, ells])  # E; B = 0
    qu = inverse(jnp.stack([gradient, jnp.zeros_like(gradient)], axis=-2), grid, spin=2)
    gammas = orientations(filters.directions)
    shape = (filters.directions, *_map_axes_shape(grid))
    cos = jnp.asarray(np.cos(2 * gammas)).reshape(shape)
    sin = jnp.asarray(np.sin(2 * gammas)).reshape(shape)
    q = qu[..., 0, *(slice(None),) * len(grid.map_shape)]
    u = qu[..., 1, *(slice(None),) * len(grid.map_shape)]
    expand = (..., None, *(slice(None),) * len(grid.map_shape))
    return spin0[expand] + 2.0 * (q[expand] * cos + u[expand] * sin)


def directional_synthesis(
    scaling: Float[Array, "*batch *map"],
    wavelets: Float[Array, "*batch num_scales directions *map"],
    grid: SphereGrid,
    filters: WaveletFilters,
) -> Float[Array, "*batch *map"]:
    r"""The adjoint of :func:`directional_analysis`, which is also its inverse.

    Inner product: pixel quadrature on the sphere, summed over the scaling map and
    averaged over the ``N`` orientations (weight ``1/N``) of every scale. The
    orientation average recovers each ``n`` component exactly, and
    :math:`\eta^2 + \sum_j \kappa_j^2 \sum_n s_{\ell n}^2 = 1` makes synthesis after
    analysis the identity (to rounding on GL and MW; to the HEALPix analysis accuracy
    on HEALPix). On GL it is exactly the adjoint for any input.

    Args:
        scaling: scaling coefficient maps.
        wavelets: wavelet maps with ``(scale, orientation)`` axes before the map axes.
        grid: the :class:`~astrobayes.sphere.SphereGrid`.
        filters: the filters of the analysis.

    Returns:
        Reconstructed maps.

    Raises:
        TypeError, ValueError: filters of another type or band limit; ``wavelets``
            without the filters' ``(J, N)`` axes.

    Examples:
        >>> grid = SphereGrid(8, "mw")
        >>> filters = directional_filters(8, 3)
        >>> f = inverse(forward(jnp.asarray(np.random.default_rng(1).normal(size=(8, 15))), grid), grid)
        >>> back = directional_synthesis(*directional_analysis(f, grid, filters), grid, filters)
        >>> bool(jnp.allclose(back, f, atol=1e-5))
        True
    """
    _check_filters(filters, grid, axisymmetric=False)
    ells, _ = ell_m(grid.band_limit)
    scaling = jnp.asarray(scaling)
    wavelets = jnp.asarray(wavelets)
    num_map = len(grid.map_shape)
    num_scales = filters.wavelets.shape[0]
    axes = wavelets.shape[wavelets.ndim - num_map - 2 : wavelets.ndim - num_map]
    if wavelets.ndim < num_map + 2 or axes != (num_scales, filters.directions):
        raise ValueError(
            f"wavelets must have ({num_scales}, {filters.directions}) (scale, orientation) "
            f"axes before the map axes {grid.map_shape}, got shape {wavelets.shape}"
        )
    orientation_axis = wavelets.ndim - num_map - 1
    zero, two = _profiles(filters)
    alm = forward(scaling, grid) * jnp.asarray(filters.scaling[ells])
    spin0 = jnp.mean(wavelets, axis=orientation_axis)  # the n = 0 component
    total = jnp.sum(forward(spin0, grid) * jnp.asarray(zero[:, ells]), axis=-2)
    if two is not None:
        gammas = orientations(filters.directions)
        shape = (filters.directions, *_map_axes_shape(grid))
        cos = jnp.asarray(np.cos(2 * gammas)).reshape(shape)
        sin = jnp.asarray(np.sin(2 * gammas)).reshape(shape)
        q = jnp.mean(wavelets * cos, axis=orientation_axis)
        u = jnp.mean(wavelets * sin, axis=orientation_axis)
        eb = forward(jnp.stack([q, u], axis=-1 - num_map), grid, spin=2)  # (*b, J, 2, nalm)
        total = total - 2.0 * jnp.sum(eb[..., 0, :] * jnp.asarray(two[:, ells]), axis=-2)
    return inverse(alm + total, grid)


def steer(
    wavelets: Float[Array, "*batch directions *map"],
    angle: float,
    filters: WaveletFilters,
    *,
    axis: int,
) -> Float[Array, "*batch *map"]:
    r"""Wavelet maps at any orientation ``gamma`` from the ``N`` sampled ones (exact).

    :math:`W(\gamma) = \sum_k W(\gamma_k)\,h(\gamma - \gamma_k)` with
    :math:`h(x) = N^{-1} \sum_n \cos(n x)` over ``n = -N+1, -N+3, .., N-1``
    (``h(x) = (1 + 2 \cos 2x) / 3`` for ``N = 3``).

    Args:
        wavelets: maps with an orientation axis of length ``N``, e.g.
            ``directional_analysis(...)[1]`` (all scales at once).
        angle: ``gamma`` in radians.
        filters: the directional filters (for ``N``).
        axis: the orientation axis (``-3`` for GL/MW maps, ``-2`` for HEALPix ones).

    Returns:
        Maps at orientation ``gamma``, the orientation axis removed.

    Examples:
        >>> grid = SphereGrid(8, "gl")
        >>> filters = directional_filters(8, 3)
        >>> f = jnp.asarray(np.random.default_rng(0).normal(size=grid.map_shape))
        >>> _, w = directional_analysis(f, grid, filters)
        >>> bool(jnp.allclose(steer(w, np.pi / 3, filters, axis=-3), w[:, 1], atol=1e-5))
        True
    """
    if not isinstance(filters, WaveletFilters):
        raise TypeError(f"filters must be WaveletFilters, got {type(filters).__name__}")
    wavelets = jnp.asarray(wavelets)
    if not isinstance(axis, int) or not -wavelets.ndim <= axis < wavelets.ndim:
        raise ValueError(f"axis must be an int within {wavelets.ndim} dimensions, got {axis!r}")
    if wavelets.shape[axis] != filters.directions:
        raise ValueError(
            f"wavelets must have an orientation axis of length {filters.directions} at "
            f"axis {axis}, got shape {wavelets.shape}"
        )
    orders = np.arange(-filters.directions + 1, filters.directions, 2)
    offsets = angle - jnp.asarray(orientations(filters.directions))
    weights = jnp.mean(jnp.cos(orders[:, None] * offsets[None, :]), axis=0)
    return jnp.tensordot(weights, jnp.moveaxis(wavelets, axis, 0), axes=1)
