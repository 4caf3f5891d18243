r"""DISCO spherical convolutions on HEALPix maps, and a small spherical CNN built from them.

A discrete-continuous (DISCO) convolution (Ocampo, Price & McEwen 2023, ICLR,
arXiv:2209.13603) evaluates the spherical convolution

.. math::

    g^{o}(\omega') = \sum_{c} \int_{S^2} \kappa^{o c}\big(R_{\omega'}^{-1}\omega\big)
    f^{c}(\omega) \, d\omega

with a filter :math:`\kappa` that is *continuous* (defined everywhere on a geodesic cap
of radius ``radius`` around the north pole, as a learned combination of fixed basis
functions) while the integral is a *discrete* quadrature over the input pixels. Because
the filter is rotated exactly to every output point :math:`\omega'`
(:math:`R_{\omega'} = R_z(\phi') R_y(\theta')` takes the pole to it) and only the
quadrature is discrete, the operator is rotation-equivariant up to quadrature error,
and because the cap is small each output sees a fixed number of input pixels: the cost
is linear in the number of pixels.

Grid: HEALPix RING order (Gorski et al. 2005, astro-ph/0409513). Its pixels have equal
area, so the quadrature weights are all :math:`4\pi / N_\mathrm{pix}` and every cap
holds about the same number of pixels anywhere on the sphere (an equiangular grid
crowds its pixels near the poles); it is also the format of the sky maps and transforms
in :mod:`astrobayes.sphere`.

Filter basis: ``num_radial`` piecewise-linear "hat" functions of the geodesic distance
:math:`\rho` from the output point, centred at :math:`\rho_k = k\,h`,
:math:`h = \mathrm{radius} / \mathrm{num\_radial}` (isotropic filters), optionally
times :math:`\cos(m\alpha)`, :math:`\sin(m\alpha)` for :math:`m = 1..\mathrm{max\_order}`
(directional filters; :math:`\alpha` is the azimuth in the local frame whose first axis
points south along the meridian; the central hat is not modulated, as :math:`\alpha`
is undefined at :math:`\rho = 0`). The quadrature weight of an input pixel is the basis
function integrated over that pixel (averaged over its HEALPix sub-pixels,
``supersample``), not its value at the pixel centre: the hats' kinks and the cap's edge
then cut through pixels smoothly, which lowers the equivariance error about threefold
at the default resolution. Each radial hat is normalised *per output pixel* so
that its quadrature sums to one: every isotropic basis response is a weighted local
mean (the equal HEALPix weights cancel), constants map to constants exactly, and the
discrete operator approximates the continuous one with filters
:math:`\phi_k / \int \phi_k`.

Equivariance: isotropic filters give an S²→S² convolution that commutes with every
rotation (up to quadrature error; measured by :func:`equivariance_error`).
Directional filters read orientation in the local (south, east) frame, so they commute
with rotations about the polar axis only; a general rotation turns that frame by a
position-dependent angle (this is why the paper lifts directional outputs to SO(3)).
Both behaviours are measured in ``benchmarks/sphere_disco.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from astrobayes.sphere.transforms import SphereGrid, forward, inverse

__all__ = [
    "DiscoCNN",
    "DiscoConv",
    "DiscoStencil",
    "disco_stencil",
    "equivariance_error",
    "pixel_scale",
    "planar_control_conv",
    "radial_basis_spectrum",
    "random_rotations",
    "rotate_map",
]


def _check_nside(nside, name: str = "nside") -> int:
    if isinstance(nside, np.integer):
        nside = int(nside)
    if not isinstance(nside, int) or isinstance(nside, bool) or nside < 1 or nside & (nside - 1):
        raise ValueError(f"{name} must be a power of two >= 1 (HEALPix), got {nside!r}")
    return nside


def pixel_scale(nside: int) -> float:
    r"""Typical HEALPix pixel size in radians, :math:`\sqrt{4\pi / (12\,\mathrm{nside}^2)}`.

    Args:
        nside: HEALPix resolution, a power of two.

    Returns:
        The square root of the pixel area (radians).

    Raises:
        ValueError: ``nside`` is not a power of two.

    Examples:
        >>> round(pixel_scale(16), 4)
        0.064
    """
    nside = _check_nside(nside)
    return math.sqrt(math.pi / 3.0) / nside


class DiscoStencil(NamedTuple):
    """The fixed sparse structure of a DISCO convolution (host NumPy arrays).

    Attributes:
        neighbours: ``(num_out, max_neighbours)`` indices of the input pixels that overlap
            each output pixel's cap, padded with index 0 where ``basis`` is zero.
        basis: ``(num_basis, num_out, max_neighbours)`` basis values times quadrature
            weights, each radial hat normalised to sum to one per output pixel.
        radial_index: ``(num_basis,)`` which radial hat each basis function uses.
        order: ``(num_basis,)`` angular order ``m`` (0 isotropic; ``+m`` cosine, ``-m`` sine).
        mean_neighbours: mean number of input pixels inside the cap (the padding
            overhead is ``max_neighbours / mean_neighbours``).
    """

    neighbours: np.ndarray
    basis: np.ndarray
    radial_index: np.ndarray
    order: np.ndarray
    mean_neighbours: float


@cache
def _unit_vectors(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta, phi = SphereGrid(2, "healpix", nside=nside).coordinates()
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    position = np.stack([st * cp, st * sp, ct], axis=-1)
    south = np.stack([ct * cp, ct * sp, -st], axis=-1)
    east = np.stack([-sp, cp, np.zeros_like(sp)], axis=-1)
    return position, south, east


@cache
def _sub_vectors(nside: int, supersample: int) -> np.ndarray:
    """Centres of the ``supersample**2`` sub-pixels (at nside * supersample) of each pixel."""
    if supersample == 1:
        return _unit_vectors(nside)[0][:, None, :]
    import ducc0

    nest = ducc0.healpix.Healpix_Base(nside, "RING").ring2nest(np.arange(12 * nside**2))
    children = nest[:, None] * supersample**2 + np.arange(supersample**2)[None, :]
    return ducc0.healpix.Healpix_Base(nside * supersample, "NEST").pix2vec(children)


@cache
def _stencil(
    nside_in: int,
    nside_out: int,
    radius: float,
    num_radial: int,
    max_order: int,
    supersample: int,
) -> DiscoStencil:
    import ducc0
    from scipy.spatial import cKDTree

    points, _, _ = _unit_vectors(nside_in)
    subs = _sub_vectors(nside_in, supersample)
    centres, south, east = _unit_vectors(nside_out)
    num_in, num_out = points.shape[0], centres.shape[0]
    reach = radius
    if supersample > 1:  # pixels whose centre lies outside the cap may overlap it
        reach = min(math.pi, radius + ducc0.healpix.Healpix_Base(nside_in, "RING").max_pixrad())
    chord = 2.0 * math.sin(reach / 2.0) * (1.0 + 1e-12)
    cap_area = 2.0 * math.pi * (1.0 - math.cos(reach))
    k = min(num_in, int(1.5 * cap_area / (4.0 * math.pi / num_in)) + 16)
    tree = cKDTree(points)
    while True:
        dist, idx = tree.query(centres, k=k, distance_upper_bound=chord)
        dist, idx = dist.reshape(num_out, -1), idx.reshape(num_out, -1)
        if k >= num_in or not np.isfinite(dist[:, -1]).any():
            break
        k = min(num_in, 2 * k)
    valid = np.isfinite(dist)
    idx = np.where(valid, idx, 0)
    step = radius / num_radial
    pairs = [(r, 0) for r in range(num_radial)]
    pairs += [
        (r, q) for m in range(1, max_order + 1) for r in range(1, num_radial) for q in (m, -m)
    ]
    basis = np.zeros((len(pairs), num_out, idx.shape[1]))
    chunk = max(1, 2**22 // (idx.shape[1] * subs.shape[1]))
    for start in range(0, num_out, chunk):
        rows = slice(start, start + chunk)
        p = subs[idx[rows]]  # (chunk, M, S, 3): sub-pixel centres in each output's frame R^-1

        def component(axis, p=p, rows=rows):
            v = axis[rows][:, None, None, :]
            return p[..., 0] * v[..., 0] + p[..., 1] * v[..., 1] + p[..., 2] * v[..., 2]

        z = component(centres)
        if max_order:
            x, y = component(south), component(east)
            rho, alpha = np.arctan2(np.hypot(x, y), z), np.arctan2(y, x)
        else:  # isotropic: the distance alone (arccos is accurate to ~1e-12 here)
            rho, alpha = np.arccos(np.clip(z, -1.0, 1.0)), None
        hats = [np.clip(1.0 - np.abs(rho - r * step) / step, 0.0, None) for r in range(num_radial)]
        for b, (r, q) in enumerate(pairs):
            value = hats[r]
            if q > 0:
                value = value * np.cos(q * alpha)
            elif q < 0:
                value = value * np.sin(-q * alpha)
            basis[b, rows] = np.where(valid[rows], value.mean(axis=-1), 0.0)
    for r in range(num_radial):
        total = basis[r].sum(axis=1, keepdims=True)
        if np.any(total <= 0):
            raise ValueError(
                f"radius={radius:.4g} rad is too small for nside_in={nside_in} with "
                f"num_radial={num_radial}: radial ring {r} holds no input pixel around some "
                f"output pixels; use radius >= {1.5 * num_radial * pixel_scale(nside_in):.3g}"
            )
        for b, (rr, _) in enumerate(pairs):
            if rr == r:
                basis[b] /= total
    # drop neighbours that no basis function touches, then the all-padding columns
    used = valid & np.any(basis != 0.0, axis=0)
    order = np.argsort(~used, axis=1, kind="stable")
    width = int(used.sum(axis=1).max())
    order = order[:, :width]
    idx = np.take_along_axis(idx, order, axis=1)
    used = np.take_along_axis(used, order, axis=1)
    basis = np.take_along_axis(basis, order[None], axis=2)
    return DiscoStencil(
        neighbours=np.where(used, idx, 0).astype(np.int32),
        basis=basis,
        radial_index=np.asarray([r for r, _ in pairs]),
        order=np.asarray([q for _, q in pairs]),
        mean_neighbours=float(used.sum(axis=1).mean()),
    )


def _check_stencil_args(nside_in, nside_out, radius, num_radial, max_order, supersample):
    nside_in = _check_nside(nside_in, "nside")
    nside_out = nside_in if nside_out is None else _check_nside(nside_out, "nside_out")
    if nside_out > nside_in:
        raise ValueError(f"nside_out must be <= nside={nside_in} (no upsampling), got {nside_out}")
    if not isinstance(num_radial, int) or isinstance(num_radial, bool) or num_radial < 1:
        raise ValueError(f"num_radial must be an int >= 1, got {num_radial!r}")
    if not isinstance(max_order, int) or isinstance(max_order, bool) or max_order < 0:
        raise ValueError(f"max_order must be an int >= 0, got {max_order!r}")
    if supersample not in (1, 2, 4, 8):
        raise ValueError(f"supersample must be 1, 2, 4 or 8, got {supersample!r}")
    if radius is None:
        radius = min(1.5 * num_radial * pixel_scale(nside_in), 0.9 * math.pi)
    if not isinstance(radius, int | float | np.floating) or not 0.0 < float(radius) < math.pi:
        raise ValueError(f"radius must be a float in (0, pi) radians, got {radius!r}")
    return nside_in, nside_out, float(radius), num_radial, max_order, supersample


def disco_stencil(
    nside: int,
    *,
    radius: float | None = None,
    num_radial: int = 3,
    max_order: int = 0,
    nside_out: int | None = None,
    supersample: int = 2,
) -> DiscoStencil:
    """Neighbour table and filter-basis values of a DISCO convolution (host, NumPy).

    Computed once per configuration (cached): a k-d tree finds the input pixels that
    overlap the geodesic cap of radius ``radius`` around each output pixel; their
    sub-pixel centres are expressed in the output pixel's local frame (distance ``rho``
    and azimuth ``alpha``) and the basis functions described in the module docstring are
    averaged over each pixel.

    Args:
        nside: input HEALPix resolution (RING order), a power of two.
        radius: cap radius in radians, in ``(0, pi)``; default ``1.5 * num_radial``
            input pixel scales (:func:`pixel_scale`).
        num_radial: number of piecewise-linear radial hats.
        max_order: highest angular order of the directional basis (0: isotropic only).
        nside_out: output resolution, ``<= nside`` (default ``nside``); a coarser output
            grid downsamples.
        supersample: each input pixel's basis value is the mean over its
            ``supersample**2`` sub-pixels (HEALPix children at ``nside * supersample``),
            i.e. the filter integrated over the pixel instead of sampled at its centre;
            1 is point evaluation. 2 (default) cuts the equivariance error of a
            4.5-pixel filter on inputs band-limited at L = nside about 3x (benchmark).

    Returns:
        A :class:`DiscoStencil`; ``num_basis = num_radial + 2 max_order (num_radial - 1)``.

    Raises:
        ValueError: a bad nside, radius, num_radial or max_order, or a radius too small
            for every radial hat to see an input pixel.

    References:
        Ocampo, Price & McEwen 2023 (arXiv:2209.13603).

    Examples:
        >>> s = disco_stencil(4, num_radial=2)
        >>> s.neighbours.shape[0], s.basis.shape[:2]
        (192, (2, 192))
        >>> bool(np.allclose(s.basis.sum(axis=-1), 1.0))  # each hat is a local mean
        True
    """
    args = _check_stencil_args(nside, nside_out, radius, num_radial, max_order, supersample)
    out = _stencil(*args)
    return out._replace(
        neighbours=out.neighbours.copy(),
        basis=out.basis.copy(),
        radial_index=out.radial_index.copy(),
        order=out.order.copy(),
    )


def radial_basis_spectrum(
    radius: float, num_radial: int, band_limit: int
) -> Float[np.ndarray, "num_radial band_limit"]:
    r"""Legendre spectra of the normalised radial hats: the exact continuous operator.

    By the Funk-Hecke theorem an isotropic filter :math:`h(\rho)` multiplies the
    coefficients :math:`f_{\ell m}` by
    :math:`\lambda_\ell = 2\pi \int_0^{r} h(\rho) P_\ell(\cos\rho) \sin\rho\, d\rho`;
    here for each hat :math:`\phi_k / \int \phi_k` (so :math:`\lambda_0 = 1`), computed by
    Gauss-Legendre quadrature on every linear piece. An isotropic :class:`DiscoConv`
    approximates ``alm_out[o] = sum_{c,k} weight[o,c,k] * spectrum[k, ell] * alm_in[c]``,
    the dense (harmonic-space) spherical convolution it is benchmarked against.

    Args:
        radius: cap radius (radians), as in :func:`disco_stencil`.
        num_radial: number of radial hats.
        band_limit: ``L``; degrees ``0 .. L - 1``.

    Returns:
        ``(num_radial, L)`` float64 array.

    Raises:
        ValueError: bad radius, num_radial or band_limit.

    Examples:
        >>> lam = radial_basis_spectrum(0.3, 3, 4)
        >>> lam.shape, bool(np.allclose(lam[:, 0], 1.0))
        ((3, 4), True)
    """
    if not isinstance(radius, int | float | np.floating) or not 0.0 < float(radius) < math.pi:
        raise ValueError(f"radius must be a float in (0, pi) radians, got {radius!r}")
    if not isinstance(num_radial, int) or isinstance(num_radial, bool) or num_radial < 1:
        raise ValueError(f"num_radial must be an int >= 1, got {num_radial!r}")
    if not isinstance(band_limit, int) or isinstance(band_limit, bool) or band_limit < 1:
        raise ValueError(f"band_limit must be an int >= 1, got {band_limit!r}")
    step = float(radius) / num_radial
    nodes, weights = np.polynomial.legendre.leggauss(max(32, band_limit))
    out = np.zeros((num_radial, band_limit))
    for k in range(num_radial):
        for lo in (k - 1, k):  # the rising and falling pieces of hat k
            if lo < 0 or lo >= num_radial:
                continue
            a, b = lo * step, (lo + 1) * step
            rho = 0.5 * (b - a) * nodes + 0.5 * (a + b)
            w = 0.5 * (b - a) * weights * np.clip(1 - np.abs(rho - k * step) / step, 0, None)
            w = w * np.sin(rho)
            t = np.cos(rho)
            p_prev, p = np.ones_like(t), t
            out[k, 0] += np.sum(w)
            for ell in range(1, band_limit):
                out[k, ell] += np.sum(w * p)
                p_prev, p = p, ((2 * ell + 1) * t * p - ell * p_prev) / (ell + 1)
    return out / out[:, :1]


def _check_map(x, name: str, channels: int, num_pixels: int, nside: int):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a real floating-point array, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[-2:] != (channels, num_pixels):
        raise ValueError(
            f"{name} must have shape (..., in_channels={channels}, 12 * nside**2={num_pixels}) "
            f"for nside={nside}, got {x.shape}"
        )
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


class DiscoConv(eqx.Module):
    """A DISCO convolution layer on HEALPix (RING) maps, multi-channel, optional bias.

    ``y[o] = sum_{c, k} weight[o, c, k] * (B_k f_c) + bias[o]``, where ``B_k`` applies
    basis filter ``k`` (see :func:`disco_stencil`) by a gather over each output pixel's
    neighbours and a contraction: cost and memory are linear in the number of pixels.
    The stencil arrays are constants (``stop_gradient``): only ``weight`` and ``bias``
    receive gradients (they are integer or frozen otherwise; use
    :func:`equinox.partition` with a filter if an optimiser with weight decay must not
    see them).

    Attributes:
        weight: ``(out_channels, in_channels, num_basis)`` basis coefficients.
        bias: ``(out_channels,)`` or ``None``.
        neighbours: ``(num_out, max_neighbours)`` int32 neighbour table.
        basis: ``(num_basis, num_out, max_neighbours)`` basis values (frozen).
        in_channels, out_channels, nside, nside_out, radius, num_radial, max_order:
            the configuration (static).

    References:
        Ocampo, Price & McEwen 2023, "Scalable and equivariant spherical CNNs by
        discrete-continuous (DISCO) convolutions", ICLR (arXiv:2209.13603).

    Examples:
        >>> conv = DiscoConv(1, 2, 4, key=jax.random.key(0), use_bias=False)
        >>> y = conv(jnp.ones((1, 192)))
        >>> y.shape, bool(jnp.allclose(y, y[:, :1], rtol=1e-5))  # constants stay constant
        ((2, 192), True)
    """

    weight: Float[Array, "out_channels in_channels num_basis"]
    bias: Float[Array, " out_channels"] | None
    neighbours: Int[Array, "num_out max_neighbours"]
    basis: Float[Array, "num_basis num_out max_neighbours"]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    nside: int = eqx.field(static=True)
    nside_out: int = eqx.field(static=True)
    radius: float = eqx.field(static=True)
    num_radial: int = eqx.field(static=True)
    max_order: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        nside: int,
        *,
        key: Array,
        radius: float | None = None,
        num_radial: int = 3,
        max_order: int = 0,
        nside_out: int | None = None,
        use_bias: bool = True,
        supersample: int = 2,
        dtype=None,
    ):
        """Build the stencil (host) and draw the weights.

        Args:
            in_channels: input channels (>= 1).
            out_channels: output channels (>= 1).
            nside: input HEALPix resolution.
            key: PRNG key for the weights (normal, std ``1 / sqrt(in_channels * num_basis)``).
            radius: filter cap radius (radians); see :func:`disco_stencil`.
            num_radial: radial hats.
            max_order: angular order of directional filters (0: isotropic).
            nside_out: output resolution (``<= nside``; default ``nside``).
            use_bias: add a learned per-channel bias.
            supersample: sub-pixels per side for the filter's pixel integrals
                (see :func:`disco_stencil`).
            dtype: floating dtype of weights and basis (default JAX's default float).
        """
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        nside, nside_out, radius, num_radial, max_order, supersample = _check_stencil_args(
            nside, nside_out, radius, num_radial, max_order, supersample
        )
        stencil = _stencil(nside, nside_out, radius, num_radial, max_order, supersample)
        dtype = jnp.result_type(float) if dtype is None else dtype
        num_basis = stencil.basis.shape[0]
        self.weight = jax.random.normal(key, (out_channels, in_channels, num_basis), dtype) / (
            math.sqrt(in_channels * num_basis)
        )
        self.bias = jnp.zeros(out_channels, dtype) if use_bias else None
        self.neighbours = jnp.asarray(stencil.neighbours)
        self.basis = jnp.asarray(stencil.basis, dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.nside, self.nside_out, self.radius = nside, nside_out, radius
        self.num_radial, self.max_order = num_radial, max_order

    def __call__(
        self, x: Float[Array, "*batch in_channels num_pixels"]
    ) -> Float[Array, "*batch out_channels num_out"]:
        """Convolve ``x`` (any leading batch axes); NaNs are rejected outside ``jit``.

        Raises:
            TypeError: ``x`` is not a floating-point array.
            ValueError: ``x`` does not end with ``(in_channels, 12 nside^2)``, or holds
                NaN/inf values (checked when ``x`` is concrete).
        """
        x = _check_map(x, "x", self.in_channels, 12 * self.nside**2, self.nside)
        basis = jax.lax.stop_gradient(self.basis).astype(x.dtype)
        gathered = jnp.take(x, self.neighbours, axis=-1)  # (*batch, C, N_out, M)
        responses = jnp.einsum("...cnm,knm->...ckn", gathered, basis)
        out = jnp.einsum("...ckn,ock->...on", responses, self.weight.astype(x.dtype))
        if self.bias is not None:
            out = out + self.bias.astype(x.dtype)[:, None]
        return out


class DiscoCNN(eqx.Module):
    """A small spherical CNN: DISCO layers, nonlinearities, global pooling, linear head.

    Each layer halves ``nside`` (while it is above 1) and is followed by the
    activation; the last feature maps are pooled over the sphere (mean and standard
    deviation of every channel), so with isotropic filters the embedding is invariant to
    rotations of the input up to quadrature error, and a linear head maps the pooled
    features to an ``embedding_size`` vector (e.g. the summary network of an SBI
    estimator).

    Attributes:
        layers: the :class:`DiscoConv` layers.
        head: ``eqx.nn.Linear`` from ``2 * channels[-1]`` pooled features.
        activation: elementwise nonlinearity (static).
        nside, in_channels, embedding_size: the configuration (static).

    References:
        Ocampo, Price & McEwen 2023 (arXiv:2209.13603); Cohen et al. 2018
        (arXiv:1801.10130) for spherical CNNs with invariant pooling.

    Examples:
        >>> net = DiscoCNN(4, key=jax.random.key(0), channels=(2,), embedding_size=2)
        >>> net(jnp.ones(192)).shape
        (2,)
    """

    layers: tuple[DiscoConv, ...]
    head: eqx.nn.Linear
    activation: Callable = eqx.field(static=True)
    nside: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    embedding_size: int = eqx.field(static=True)

    def __init__(
        self,
        nside: int,
        *,
        key: Array,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16, 16),
        embedding_size: int = 8,
        num_radial: int = 3,
        max_order: int = 0,
        radius_pixels: float = 4.5,
        downsample: bool = True,
        activation: Callable = jax.nn.gelu,
        supersample: int = 2,
        dtype=None,
    ):
        """Build the layers.

        Args:
            nside: input HEALPix resolution.
            key: PRNG key for all weights.
            in_channels: channels of the input map (a single map: 1).
            channels: output channels of each DISCO layer (at least one layer).
            embedding_size: length of the output vector.
            num_radial: radial hats per layer.
            max_order: angular order of the filters (0: isotropic, rotation-invariant
                embedding).
            radius_pixels: filter radius in units of each layer's input
                :func:`pixel_scale` (capped below pi).
            downsample: halve nside at every layer (while above 1).
            activation: nonlinearity after every layer.
            supersample: sub-pixels per side of the filters' pixel integrals.
            dtype: floating dtype of the weights.
        """
        nside = _check_nside(nside)
        channels = tuple(channels)
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of ints >= 1, got {channels}")
        if not isinstance(embedding_size, int) or embedding_size < 1:
            raise ValueError(f"embedding_size must be an int >= 1, got {embedding_size!r}")
        if not (isinstance(radius_pixels, int | float) and radius_pixels > 0):
            raise ValueError(f"radius_pixels must be a positive number, got {radius_pixels!r}")
        if not callable(activation):
            raise TypeError(f"activation must be callable, got {type(activation).__name__}")
        keys = jax.random.split(key, len(channels) + 1)
        layers, current, width = [], nside, in_channels
        for layer_key, out in zip(keys[:-1], channels, strict=True):
            following = max(current // 2, 1) if downsample else current
            radius = min(radius_pixels * pixel_scale(current), 0.9 * math.pi)
            layers.append(
                DiscoConv(
                    width,
                    out,
                    current,
                    key=layer_key,
                    radius=radius,
                    num_radial=num_radial,
                    max_order=max_order,
                    nside_out=following,
                    supersample=supersample,
                    dtype=dtype,
                )
            )
            current, width = following, out
        self.layers = tuple(layers)
        dtype = jnp.result_type(float) if dtype is None else dtype
        self.head = eqx.nn.Linear(2 * width, embedding_size, key=keys[-1], dtype=dtype)
        self.activation = activation
        self.nside, self.in_channels, self.embedding_size = nside, in_channels, embedding_size

    def __call__(self, x: Float[Array, "*channels num_pixels"]) -> Float[Array, " embedding_size"]:
        """Embed one map: ``(num_pixels,)`` (one channel) or ``(in_channels, num_pixels)``.

        Batches go through ``jax.vmap``.

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: wrong shape, or NaN/inf values (checked outside ``jit``).
        """
        x = jnp.asarray(x)
        if x.ndim == 1 and self.in_channels == 1:
            x = x[None]
        x = _check_map(x, "x", self.in_channels, 12 * self.nside**2, self.nside)
        if x.ndim != 2:
            raise ValueError(f"x must be one map (vmap for batches), got shape {x.shape}")
        for layer in self.layers:
            x = self.activation(layer(x))
        pooled = jnp.concatenate([jnp.mean(x, axis=-1), jnp.std(x, axis=-1)])
        return self.head(pooled)


# ---------------------------------------------------------------------------------
# Rotations through harmonic space, and the equivariance measurement.


def random_rotations(key: Array, num: int) -> np.ndarray:
    r"""Euler angles ``(psi, theta, phi)`` of rotations drawn uniformly (Haar) on SO(3).

    ``psi`` and ``phi`` are uniform on :math:`[0, 2\pi)` and :math:`\cos\theta` uniform
    on :math:`[-1, 1]` (the active z-y-z convention of :func:`rotate_map`).

    Args:
        key: PRNG key.
        num: number of rotations.

    Returns:
        ``(num, 3)`` float64 NumPy array.

    Examples:
        >>> random_rotations(jax.random.key(0), 2).shape
        (2, 3)
    """
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be an int >= 1, got {num!r}")
    u = np.asarray(jax.random.uniform(key, (num, 3)), np.float64)
    return np.stack([2 * np.pi * u[:, 0], np.arccos(1 - 2 * u[:, 1]), 2 * np.pi * u[:, 2]], -1)


def _check_angles(angles) -> np.ndarray:
    angles = np.asarray(angles, np.float64)
    if angles.shape != (3,) or not np.all(np.isfinite(angles)):
        raise ValueError(
            f"angles must be three finite Euler angles (psi, theta, phi), got {angles}"
        )
    return angles


def _rotate_alm(alm: np.ndarray, band_limit: int, angles: np.ndarray) -> np.ndarray:
    import ducc0

    psi, theta, phi = angles
    return ducc0.sht.rotate_alm(
        np.ascontiguousarray(alm, np.complex128), band_limit - 1, psi, theta, phi
    )


def rotate_map(f: Float[Array, " *map"], grid: SphereGrid, angles: Sequence[float]) -> np.ndarray:
    r"""Rotate a map through harmonic space: :math:`f \mapsto f(R^{-1} x)`, exact when band-limited.

    ``R = R_z(\phi) R_y(\theta) R_z(\psi)`` (active rotations; ducc0's ``rotate_alm``).
    The map is analysed on ``grid`` (so anything above its band limit is dropped),
    the coefficients rotated with Wigner-D matrices and synthesised on the same grid.
    Host-side NumPy (float64), not differentiable; meant for measurements and data
    augmentation.

    Args:
        f: one map with shape ``grid.map_shape``.
        grid: the :class:`SphereGrid` (band limit and sampling).
        angles: Euler angles ``(psi, theta, phi)`` in radians.

    Returns:
        The rotated map, float64 NumPy array of shape ``grid.map_shape``.

    Raises:
        ValueError: wrong map shape, NaNs, or angles that are not three finite numbers.

    References:
        Reinecke & Seljebotn 2013 (arXiv:1303.4945) for the rotation of coefficients.

    Examples:
        >>> grid = SphereGrid(8, "healpix", nside=4)
        >>> theta, phi = grid.coordinates()
        >>> z = np.cos(theta)                        # dipole along +z
        >>> x = rotate_map(z, grid, (0.0, np.pi / 2, 0.0))  # +z -> +x
        >>> bool(np.allclose(x, np.sin(theta) * np.cos(phi), atol=1e-6))
        True
    """
    if not isinstance(grid, SphereGrid):
        raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")
    angles = _check_angles(angles)
    f = np.asarray(f, np.float64)
    if f.shape != grid.map_shape:
        raise ValueError(f"f must have shape {grid.map_shape} on {grid}, got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("f contains NaN or infinite values")
    alm = np.asarray(forward(jnp.asarray(f), grid))
    rotated = _rotate_alm(alm, grid.band_limit, angles)
    return np.asarray(inverse(jnp.asarray(rotated), grid), np.float64)


def _alm_norm(alm: np.ndarray, band_limit: int) -> float:
    from astrobayes.sphere.transforms import ell_m

    _, ms = ell_m(band_limit)
    weight = np.where(ms == 0, 1.0, 2.0)  # m < 0 mirrors m > 0 for a real map
    return float(np.sqrt(np.sum(weight * np.abs(alm) ** 2)))


def equivariance_error(
    operator_fn: Callable[[Array], Array],
    f: Float[Array, " *map"],
    grid: SphereGrid,
    rotations: np.ndarray,
    *,
    grid_out: SphereGrid | None = None,
) -> np.ndarray:
    r"""Relative rotation-equivariance error of a map-to-map operator, per rotation.

    With :math:`P` the projection on band limit ``L`` (harmonic analysis on the output
    grid) and :math:`\mathcal{R}` a rotation applied through harmonic space, returns

    .. math::

        rac{\| P\,A(\mathcal{R} f) - \mathcal{R}\,P\,A(f) \|}{\| P\,A(f) \|}

    for each rotation, norms over the coefficients (the :math:`L^2` norm of the
    band-limited maps). ``f`` is first projected on band limit ``L`` so that
    :math:`\mathcal{R} f` is exact; both sides are compared on band-limited outputs, so
    what remains is the operator's own failure to commute with rotations.

    Args:
        operator_fn: maps one map of ``grid.map_shape`` to one map of
            ``grid_out.map_shape`` (e.g. ``lambda m: conv(m[None])[0]``).
        f: the input map (``grid.map_shape``).
        grid: input grid (band limit and sampling).
        rotations: ``(num, 3)`` Euler angles (:func:`random_rotations`).
        grid_out: output grid (default ``grid``); its band limit is the one compared.

    Returns:
        ``(num,)`` relative errors (float64 NumPy).

    Raises:
        TypeError: ``operator_fn`` is not callable or a grid is not a SphereGrid.
        ValueError: bad map or rotation angles.

    Examples:
        >>> grid = SphereGrid(8, "healpix", nside=4)
        >>> f = np.random.default_rng(0).normal(size=192)
        >>> err = equivariance_error(lambda m: 2.0 * m, f, grid, [(0.3, 1.0, 2.0)])
        >>> bool(err[0] < 1e-5)  # scaling commutes with rotations
        True
    """
    if not callable(operator_fn):
        raise TypeError(f"operator_fn must be callable, got {type(operator_fn).__name__}")
    if not isinstance(grid, SphereGrid):
        raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")
    grid_out = grid if grid_out is None else grid_out
    if not isinstance(grid_out, SphereGrid):
        raise TypeError(f"grid_out must be a SphereGrid, got {type(grid_out).__name__}")
    rotations = np.asarray(rotations, np.float64)
    if rotations.ndim != 2 or rotations.shape[1] != 3 or len(rotations) == 0:
        raise ValueError(f"rotations must have shape (num, 3), got {rotations.shape}")
    f = np.asarray(f, np.float64)
    if f.shape != grid.map_shape:
        raise ValueError(f"f must have shape {grid.map_shape} on {grid}, got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("f contains NaN or infinite values")
    alm_in = np.asarray(forward(jnp.asarray(f), grid))

    def projected_output(alm):
        image = inverse(jnp.asarray(alm), grid)
        return np.asarray(forward(jnp.asarray(operator_fn(image)), grid_out))

    reference = projected_output(alm_in)
    scale = _alm_norm(reference, grid_out.band_limit)
    errors = []
    for angles in rotations:
        angles = _check_angles(angles)
        rotated_out = projected_output(_rotate_alm(alm_in, grid.band_limit, angles))
        expected = _rotate_alm(reference, grid_out.band_limit, angles)
        errors.append(_alm_norm(rotated_out - expected, grid_out.band_limit) / scale)
    return np.asarray(errors)


def planar_control_conv(
    f: Float[Array, " pixels"], grid: SphereGrid, radius: float, weights: Float[Array, " hats"]
) -> Array:
    """The negative control for :func:`equivariance_error`: a planar CNN layer.

    ``f`` (HEALPix, ``grid``) is projected through harmonic space onto the
    equirectangular McEwen-Wiaux grid of band limit ``2 nside``, convolved there with a
    planar kernel of radial hats of the same physical radius at the equator (in pixel
    units: periodic in longitude, edge-padded in colatitude, as a CNN on a projected map
    would be), and brought back to ``grid``. A planar convolution ignores the
    projection's distortion, so it does not commute with rotations: the DISCO layer's
    equivariance error must be far below this one's (Ocampo, Price & McEwen 2023,
    arXiv:2209.13603, compare with planar CNNs on projected maps).

    Args:
        f: one HEALPix map of ``grid.map_shape``.
        grid: a HEALPix :class:`~astrobayes.sphere.transforms.SphereGrid`.
        radius: the filter's radius in radians (> 0).
        weights: ``(num_hats,)`` weights of the radial hats.

    Returns:
        The filtered map on ``grid``.

    Raises:
        TypeError: ``grid`` is not a SphereGrid.
        ValueError: ``grid`` is not HEALPix, or bad ``f``, ``radius`` or ``weights``.

    Examples:
        >>> grid = SphereGrid(8, "healpix", nside=4)
        >>> out = planar_control_conv(np.ones(192), grid, 0.5, np.array([1.0]))
        >>> bool(np.allclose(out, 1.0, atol=1e-3))  # normalised hats keep a constant
        True
    """
    if not isinstance(grid, SphereGrid):
        raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")
    if grid.sampling != "healpix":
        raise ValueError(f"grid must be a HEALPix grid, got sampling={grid.sampling!r}")
    if isinstance(radius, bool) or not (np.isscalar(radius) and np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number (radians), got {radius!r}")
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights)):
        raise ValueError(f"weights must be a non-empty finite 1-d array, got shape {weights.shape}")
    if np.shape(f) != grid.map_shape:
        raise ValueError(f"f must have shape {grid.map_shape} on {grid}, got {np.shape(f)}")
    small, big = grid.band_limit, 2 * grid.nside
    mw = SphereGrid(big, "mw")
    from astrobayes.sphere.transforms import ell_m

    ells, ms = ell_m(small)
    index = ms * (2 * big - 1 - ms) // 2 + ells
    alm_small = forward(jnp.asarray(f), grid)
    alm = jnp.zeros(mw.num_alm, alm_small.dtype).at[index].set(alm_small)
    image = inverse(alm, mw)
    radius_pixels = radius / (2 * np.pi / mw.map_shape[1])
    half = int(np.ceil(radius_pixels))
    offsets = np.arange(-half, half + 1)
    distance = np.hypot(offsets[:, None], offsets[None, :])
    step = radius_pixels / len(weights)
    centres = step * np.arange(len(weights))[:, None, None]
    hats = np.clip(1 - np.abs(distance[None] - centres) / step, 0, None)
    kernel = np.tensordot(weights, hats / hats.sum(axis=(1, 2), keepdims=True), 1)
    padded = jnp.pad(image, ((half, half), (0, 0)), mode="edge")
    padded = jnp.pad(padded, ((0, 0), (half, half)), mode="wrap")
    out = jax.scipy.signal.convolve2d(padded, jnp.asarray(kernel, image.dtype), mode="valid")
    return inverse(forward(out, mw)[index], grid)
