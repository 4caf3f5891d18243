r"""Scattering covariance statistics of fields on the sphere.

Following Mousset, Allys, Price, ... & McEwen 2024 (A&A 691, A269; arXiv:2407.08687),
which brings the scattering covariances of Cheng et al. 2023 (arXiv:2306.17210) to the
sphere. With wavelet maps :math:`W_j = f \star \psi_j` and their moduli
:math:`M_j = |W_j|`:

* :math:`S_1^j = \langle M_j \rangle` (sparsity),
* :math:`S_2^j = \langle W_j^2 \rangle` (power in band ``j``),
* :math:`S_3^{j_1 j_2} = \langle W_{j_2} \, (M_{j_1} \star \psi_{j_2}) \rangle`,
  :math:`j_1 \ge j_2` (how the envelope of a finer scale couples to the field at a
  coarser one),
* :math:`S_4^{j_1 j_2 j_3} = \langle (M_{j_1} \star \psi_{j_3})(M_{j_2} \star \psi_{j_3})
  \rangle`, :math:`j_1 \ge j_2 \ge j_3` (the covariance of the envelopes),

with the scale index ``j`` growing with the degree ``ell`` (``j = 0`` is the coarsest
wavelet; the paper counts the other way and writes the same sets as ``j_1 <= j_2``)

where :math:`\langle\cdot\rangle` is the mean over the sphere. ``W_j`` and
``M_j \star \psi_j`` have no monopole, so these moments are covariances. :math:`S_3` and
:math:`S_4` are computed from cross-spectra (Parseval), so the cost is one analysis of
``f`` plus ``J`` syntheses and ``J`` analyses, whatever the number of coefficients. The
axisymmetric wavelets (:func:`~astrobayes.sphere.wavelets.axisymmetric_filters`) make
every statistic rotation invariant already: the isotropic reduction is then the identity.

Directional wavelets (:func:`~astrobayes.sphere.wavelets.directional_filters`, ``N = 3``
orientations :math:`\gamma_k`), as in Mousset et al. (s2scat): the first-layer maps
:math:`W_{j,k}` and their moduli :math:`M_{j,k} = |W_{j,k}|` carry an orientation, and

* :math:`S_1^{j,k} = \langle M_{j,k}\rangle`, :math:`S_2^{j,k} = \langle W_{j,k}^2\rangle`,
* :math:`S_3^{j_1 j_2, k'} = N^{-1}\sum_k \langle W_{j_2,k} (M_{j_1,k'} \star
  \psi_{j_2,k})\rangle`,
* :math:`S_4^{j_1 j_2 j_3, k_1 k_2} = N^{-1}\sum_k \langle (M_{j_1,k_1} \star
  \psi_{j_3,k})(M_{j_2,k_2} \star \psi_{j_3,k})\rangle`.

The average over the second wavelet's orientation ``k`` is an integral over SO(3) (exact
with ``N`` samples: the products hold ``|n - n'| <= 4`` only), under which the orders
``n`` are orthogonal, so by :math:`\sum_n s_{\ell n}^2 = 1` these are the axisymmetric
formulas with directional moduli (cross-spectra, Parseval): one analysis per modulus, no
second-layer synthesis. The isotropic reduction (``isotropic=True``, the default) averages
S1, S2 and S3 over orientation and S4 over the pairs with the same offset
``k_2 - k_1 (mod N)`` (Cheng et al. 2023; s2scat's isotropic mode sums over all
orientations instead), which leaves S4 with ``N`` offsets per triple.

Normalisation: each statistic is divided by the reference power
:math:`\sigma_j^2 = S_2^j` of a reference field (the target in generation; the field
itself by default), :math:`S_1/\sigma_j`, :math:`S_2/\sigma_j^2`,
:math:`S_3/(\sigma_{j_1}\sigma_{j_2})`, :math:`S_4/(\sigma_{j_1}\sigma_{j_2})`, so all
are of order one and scale-free; the pixel mean and variance (normalised the same way
by the reference variance) are kept as a zeroth group.
"""

from __future__ import annotations

import functools
from functools import cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes.sphere.transforms import SphereGrid, ell_m, forward, inverse
from astrobayes.sphere.wavelets import WaveletFilters, directional_maps_from_alm

__all__ = [
    "ScatteringCovariance",
    "flatten_statistics",
    "normalise",
    "scattering_covariance",
]


class ScatteringCovariance(NamedTuple):
    """Scattering covariance statistics of one or more maps (leading batch axes kept).

    Attributes:
        mean: mean of the band-limited field, ``a_00 / sqrt(4 pi)``, shape ``(*batch,)``.
        variance: variance of the band-limited field (all ``ell >= 1``), ``(*batch,)``.
        s1: ``(*batch, J)``; ``(*batch, J, N)`` for directional, non-isotropic ones.
        s2: ``(*batch, J)``; ``(*batch, J, N)`` likewise.
        s3: ``(*batch, P3)`` over pairs ``j1 >= j2`` (order of :func:`_pairs`);
            ``(*batch, P3, N)`` (modulus orientation) likewise.
        s4: ``(*batch, P4)`` over triples ``j1 >= j2 >= j3``; directional:
            ``(*batch, P4, N)`` (orientation offsets, isotropic) or
            ``(*batch, P4, N, N)`` (orientation pairs).
    """

    mean: Array
    variance: Array
    s1: Array
    s2: Array
    s3: Array
    s4: Array


@cache
def _pairs(num_scales: int) -> np.ndarray:
    return np.array([(a, b) for b in range(num_scales) for a in range(b, num_scales)], dtype=int)


@cache
def _triples(num_scales: int) -> np.ndarray:
    return np.array(
        [
            (a, b, c)
            for c in range(num_scales)
            for b in range(c, num_scales)
            for a in range(b, num_scales)
        ],
        dtype=int,
    )


def _cross_spectra(alm_a, alm_b, ells, ms, band_limit):
    """(2 ell + 1) C_ell / (4 pi) of the cross-spectrum of two real fields, per ell."""
    double = jnp.asarray(np.where(ms == 0, 1.0, 2.0))
    product = jnp.real(alm_a * jnp.conj(alm_b)) * double
    summed = jax.ops.segment_sum(jnp.moveaxis(product, -1, 0), jnp.asarray(ells), band_limit)
    return jnp.moveaxis(summed, 0, -1) / (4.0 * np.pi)


def scattering_covariance(
    f: Float[Array, "*batch *map"],
    grid: SphereGrid,
    filters: WaveletFilters,
    *,
    isotropic: bool = True,
) -> ScatteringCovariance:
    """Scattering covariance statistics (unnormalised) of real maps.

    Args:
        f: maps with trailing shape ``grid.map_shape``; any leading batch axes.
        grid: the :class:`~astrobayes.sphere.SphereGrid`.
        filters: wavelet filters for ``grid.band_limit``: axisymmetric, or directional
            (:func:`~astrobayes.sphere.wavelets.directional_filters`, ``N = 3``).
        isotropic: with directional filters, average over orientations (S1, S2, S3)
            and over equal orientation offsets (S4); ignored for axisymmetric ones.

    Returns:
        :class:`ScatteringCovariance`; differentiable in ``f`` (``jax.grad`` works).

    References:
        Mousset et al. 2024 (arXiv:2407.08687); Cheng et al. 2023 (arXiv:2306.17210).

    Examples:
        >>> from astrobayes.sphere import axisymmetric_filters
        >>> grid = SphereGrid(8, "gl")
        >>> f = jnp.asarray(np.random.default_rng(0).normal(size=grid.map_shape))
        >>> stats = scattering_covariance(f, grid, axisymmetric_filters(8))
        >>> stats.s1.shape, stats.s3.shape, stats.s4.shape
        ((4,), (10,), (20,))
    """
    if not isinstance(filters, WaveletFilters):
        raise TypeError(f"filters must be WaveletFilters, got {type(filters).__name__}")
    if filters.scaling.shape != (grid.band_limit,):
        raise ValueError(
            f"filters must be built for band_limit {grid.band_limit}, "
            f"got profiles of length {filters.scaling.shape[0]}"
        )
    if not isinstance(isotropic, bool):
        raise TypeError(f"isotropic must be a bool, got {type(isotropic).__name__}")
    if filters.directions == 1:
        return _scattering(jnp.asarray(f), grid=grid, filters=filters)
    return _directional_scattering(jnp.asarray(f), grid=grid, filters=filters, isotropic=isotropic)


@functools.partial(jax.jit, static_argnames=("grid", "filters"))
def _scattering(f, *, grid: SphereGrid, filters: WaveletFilters) -> ScatteringCovariance:
    ells, ms = ell_m(grid.band_limit)
    weights = jnp.asarray(grid.pixel_weights())
    map_axes = tuple(range(-len(grid.map_shape), 0))
    num_scales = filters.wavelets.shape[0]
    profiles = jnp.asarray(filters.wavelets[:, ells])  # (J, nalm) for the wavelet maps

    alm = forward(f, grid)
    # mean and variance of the band-limited field (from a_lm), like every other statistic
    mean = jnp.real(alm[..., 0]) / np.sqrt(4.0 * np.pi)
    double = jnp.asarray(np.where(ms == 0, 1.0, 2.0) * (ells > 0))
    variance = jnp.sum(double * jnp.abs(alm) ** 2, axis=-1) / (4.0 * np.pi)
    wavelet_maps = inverse(alm[..., None, :] * profiles, grid)  # (*b, J, *map)
    modulus = jnp.abs(wavelet_maps)
    s1 = jnp.sum(modulus * weights, axis=map_axes) / (4.0 * np.pi)
    modulus_alm = forward(modulus, grid)  # (*b, J, nalm)

    band_limit = grid.band_limit
    squared = jnp.asarray(filters.wavelets.T**2)  # (L, J): profile^2 per ell and scale
    auto = _cross_spectra(alm, alm, ells, ms, band_limit)  # (*b, L)
    s2 = auto @ squared
    # S3[a, b] = sum_ell kappa_b^2 C_ell(f, M_a): cross-spectra with every modulus, then
    # the pairs a >= b picked from a (J, J) table (no large constant gathers).
    cross_f = _cross_spectra(alm[..., None, :], modulus_alm, ells, ms, band_limit)  # (*b, J, L)
    table3 = cross_f @ squared  # (*b, J_a, J_b)
    pairs = _pairs(num_scales)
    s3 = table3[..., pairs[:, 0], pairs[:, 1]]
    # S4[a, b, c] = sum_ell kappa_c^2 C_ell(M_a, M_b) for a >= b >= c.
    first, second = np.triu_indices(num_scales)  # first <= second
    cross_m = _cross_spectra(
        modulus_alm[..., second, :], modulus_alm[..., first, :], ells, ms, band_limit
    )  # (*b, P, L)
    table4 = cross_m @ squared  # (*b, P, J_c)
    position = {(int(a), int(b)): k for k, (b, a) in enumerate(zip(first, second, strict=True))}
    triples = _triples(num_scales)
    rows = np.array([position[(int(a), int(b))] for a, b, _ in triples])
    s4 = table4[..., rows, triples[:, 2]]
    return ScatteringCovariance(mean=mean, variance=variance, s1=s1, s2=s2, s3=s3, s4=s4)


@functools.partial(jax.jit, static_argnames=("grid", "filters", "isotropic"))
def _directional_scattering(
    f, *, grid: SphereGrid, filters: WaveletFilters, isotropic: bool
) -> ScatteringCovariance:
    ells, ms = ell_m(grid.band_limit)
    weights = jnp.asarray(grid.pixel_weights())
    map_axes = tuple(range(-len(grid.map_shape), 0))
    num_scales, directions = filters.wavelets.shape[0], filters.directions
    band_limit = grid.band_limit

    alm = forward(f, grid)
    mean = jnp.real(alm[..., 0]) / np.sqrt(4.0 * np.pi)
    double = jnp.asarray(np.where(ms == 0, 1.0, 2.0) * (ells > 0))
    variance = jnp.sum(double * jnp.abs(alm) ** 2, axis=-1) / (4.0 * np.pi)
    wavelet_maps = directional_maps_from_alm(alm, grid, filters)  # (*b, J, N, *map)
    modulus = jnp.abs(wavelet_maps)
    s1 = jnp.sum(modulus * weights, axis=map_axes) / (4.0 * np.pi)  # (*b, J, N)
    s2 = jnp.sum(wavelet_maps**2 * weights, axis=map_axes) / (4.0 * np.pi)
    modulus_alm = forward(modulus, grid)  # (*b, J, N, nalm)

    squared = jnp.asarray(filters.wavelets.T**2)  # (L, J)
    # S3[a, b, k'] = sum_ell kappa_b^2 C_ell(f, M_{a,k'})  (second wavelet's orientation
    # averaged: sum_n s_ln^2 = 1)
    cross_f = _cross_spectra(alm[..., None, None, :], modulus_alm, ells, ms, band_limit)
    table3 = jnp.moveaxis(cross_f @ squared, -2, -1)  # (*b, J_a, J_b, N)
    pairs = _pairs(num_scales)
    s3 = table3[..., pairs[:, 0], pairs[:, 1], :]  # (*b, P3, N)
    # S4[a, b, c, k1, k2] = sum_ell kappa_c^2 C_ell(M_{a,k1}, M_{b,k2}), a >= b >= c:
    # cross-spectra of every unordered pair of channels (scale, orientation)
    channels = modulus_alm.reshape((*modulus_alm.shape[:-3], num_scales * directions, -1))
    first, second = np.triu_indices(num_scales * directions)  # first <= second
    cross_m = _cross_spectra(
        channels[..., second, :], channels[..., first, :], ells, ms, band_limit
    )  # (*b, P, L)
    table4 = cross_m @ squared  # (*b, P, J_c)
    position = {(int(a), int(b)): k for k, (b, a) in enumerate(zip(first, second, strict=True))}
    triples = _triples(num_scales)
    rows = np.zeros((len(triples), directions, directions), dtype=int)
    for t, (a, b, _) in enumerate(triples):
        for k1 in range(directions):
            for k2 in range(directions):
                x, y = a * directions + k1, b * directions + k2
                rows[t, k1, k2] = position[(max(x, y), min(x, y))]
    s4 = table4[..., rows, triples[:, 2][:, None, None]]  # (*b, P4, N, N)
    if isotropic:
        s1 = jnp.mean(s1, axis=-1)
        s2 = jnp.mean(s2, axis=-1)
        s3 = jnp.mean(s3, axis=-1)
        k1 = np.arange(directions)[:, None]
        offsets = (k1 + np.arange(directions)[None, :]) % directions  # [k1, delta] -> k2
        s4 = jnp.mean(s4[..., k1, offsets], axis=-2)  # (*b, P4, N): offset delta
    return ScatteringCovariance(mean=mean, variance=variance, s1=s1, s2=s2, s3=s3, s4=s4)


def _divide(statistic, scale, extra: int):
    """Divide along the statistic axis that precedes ``extra`` orientation axes."""
    return statistic / scale.reshape(scale.shape + (1,) * extra)


def normalise(
    statistics: ScatteringCovariance, reference: ScatteringCovariance
) -> ScatteringCovariance:
    """Divide each statistic by the reference field's band powers (see the module notes).

    Args:
        statistics: from :func:`scattering_covariance` (any batch axes).
        reference: the statistics of one reference map (no batch axes), e.g. the target.

    Returns:
        Dimensionless :class:`ScatteringCovariance` of the same shapes.

    Examples:
        >>> stats = ScatteringCovariance(
        ...     mean=jnp.zeros(()), variance=jnp.ones(()), s1=jnp.ones(2), s2=jnp.full(2, 4.0),
        ...     s3=jnp.ones(3), s4=jnp.ones(4),
        ... )
        >>> normalise(stats, stats).s2.tolist(), normalise(stats, stats).s1.tolist()
        ([1.0, 1.0], [0.5, 0.5])
    """
    power = jnp.asarray(reference.s2)
    if power.ndim == 2:  # per orientation: the band power is the orientation mean
        power = jnp.mean(power, axis=-1)
    sigma = jnp.sqrt(power)
    num_scales = sigma.shape[-1]
    pairs = _pairs(num_scales)
    triples = _triples(num_scales)
    std = jnp.sqrt(reference.variance)
    extra = {name: jnp.ndim(getattr(reference, name)) - 1 for name in ("s1", "s2", "s3", "s4")}
    return ScatteringCovariance(
        mean=(statistics.mean - reference.mean) / std,
        variance=statistics.variance / reference.variance,
        s1=_divide(statistics.s1, sigma, extra["s1"]),
        s2=_divide(statistics.s2, sigma**2, extra["s2"]),
        s3=_divide(statistics.s3, sigma[pairs[:, 0]] * sigma[pairs[:, 1]], extra["s3"]),
        s4=_divide(statistics.s4, sigma[triples[:, 0]] * sigma[triples[:, 1]], extra["s4"]),
    )


def flatten_statistics(statistics: ScatteringCovariance) -> Float[Array, "*batch num_stats"]:
    """Concatenate the groups into one vector per map (mean, variance, S1, S2, S3, S4).

    Examples:
        >>> stats = ScatteringCovariance(*(jnp.zeros(()),) * 2, *(jnp.zeros(2),) * 4)
        >>> flatten_statistics(stats).shape
        (10,)
    """
    batch = jnp.shape(statistics.mean)
    parts = [
        jnp.reshape(jnp.asarray(getattr(statistics, name)), (*batch, -1))
        for name in ("mean", "variance", "s1", "s2", "s3", "s4")
    ]
    return jnp.concatenate(parts, axis=-1)
