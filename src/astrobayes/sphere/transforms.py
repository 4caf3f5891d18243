r"""Differentiable spherical harmonic transforms on exact grids and HEALPix.

The fast CPU path wraps ducc0's transforms (Reinecke & Seljebotn 2013,
arXiv:1303.4945) as JAX primitives: each transform is a linear primitive whose
transpose is another primitive (synthesis <-> adjoint synthesis, analysis <-> adjoint
analysis), so ``jax.jvp``, ``jax.vjp``, ``jax.grad``, ``jax.hessian``, ``jit`` and
``vmap`` all work and the adjoint is exact, not a finite-difference approximation. The
transform runs inside ``jax.pure_callback`` on the host. s2fft 1.5.0 (Price & McEwen
2024, arXiv:2311.14670) offers the same idea only through ``pyssht`` (``jax_ssht``, not
installable here) or healpy (``jax_healpy``: spin 0, no ``jit``), which is why this module
exists; its pure-JAX transforms are reachable with ``method="jax"`` (spin 0) for
accelerators.

Conventions are healpy's: a real map is expanded in :math:`Y_{\ell m}` with the
Condon-Shortley phase, coefficients are stored for :math:`m \ge 0` in healpy's packing
(index ``m * (2 L - 1 - m) // 2 + l``), and a spin-2 field ``(Q, U)`` is expanded into
gradient and curl coefficients ``(E, B)``; the spin +2 and -2 coefficients are
:math:`{}_{\pm 2}a_{\ell m} = -(E_{\ell m} \pm i B_{\ell m})`.

Sampling schemes:

* ``"gl"`` (Gauss-Legendre, ``L`` rings x ``2L - 1`` longitudes) and ``"mw"`` (McEwen &
  Wiaux 2011, arXiv:1110.6298, same shape) are exact: analysis inverts synthesis to
  rounding error for band limit ``L``.
* ``"healpix"`` (Gorski et al. 2005, astro-ph/0409513) has no exact quadrature. Analysis
  starts from the equal-weight quadrature and applies ``iterations`` steps of Jacobi
  refinement ``a <- a + A0 (f - S a)`` *inside* the linear primitive, so the derivative is
  the exact transpose of the refined operator. With ``L <= 2 nside`` each step gains about
  one decade (8 steps: ~1e-8 relative on band-limited maps); above ``2 nside`` the
  refinement stalls and the result is only as good as healpy's.
"""

from __future__ import annotations

import dataclasses
import os
from functools import cache, partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, Complex, Float

__all__ = [
    "METHODS",
    "SAMPLINGS",
    "SphereGrid",
    "alm_index",
    "check_ducc_thread_environment",
    "ell_m",
    "forward",
    "inverse",
    "num_alm",
]

SAMPLINGS = ("gl", "mw", "healpix")
METHODS = ("ducc", "jax")
_GEOMETRY = {"gl": "GL", "mw": "MW"}


def num_alm(band_limit: int) -> int:
    """Number of packed coefficients (``m >= 0``) for band limit ``L``: ``L (L + 1) / 2``.

    Examples:
        >>> num_alm(4)
        10
    """
    return band_limit * (band_limit + 1) // 2


@cache
def _ell_m(band_limit: int) -> tuple[np.ndarray, np.ndarray]:
    ms = np.concatenate([np.full(band_limit - m, m) for m in range(band_limit)])
    ells = np.concatenate([np.arange(m, band_limit) for m in range(band_limit)])
    return ells, ms


def ell_m(band_limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree and order of every packed coefficient, in healpy's ``m``-major order.

    Args:
        band_limit: ``L``; degrees run over ``0 .. L - 1``.

    Returns:
        ``(ells, ms)``, two integer arrays of length ``L (L + 1) / 2``.

    Examples:
        >>> ells, ms = ell_m(3)
        >>> ells.tolist(), ms.tolist()
        ([0, 1, 2, 1, 2, 2], [0, 0, 0, 1, 1, 2])
    """
    ells, ms = _ell_m(band_limit)
    return ells.copy(), ms.copy()


def alm_index(band_limit: int, ell: int, m: int) -> int:
    """Position of coefficient ``(ell, m)``, ``0 <= m <= ell < L``, in healpy's packing.

    Examples:
        >>> alm_index(3, 2, 1)
        4
    """
    if not 0 <= m <= ell < band_limit:
        raise ValueError(f"need 0 <= m <= ell < band_limit={band_limit}, got ell={ell}, m={m}")
    return m * (2 * band_limit - 1 - m) // 2 + ell


def check_ducc_thread_environment() -> None:
    """Refuse empty thread-count variables, which ducc0 cannot parse, before it is called.

    ducc0 reads ``DUCC0_NUM_THREADS`` and ``OMP_NUM_THREADS`` when a transform starts;
    a variable that is set but empty (``OMP_NUM_THREADS= python ...``) makes it abort
    with "could not convert '' to desired data type", which inside a JAX callback
    surfaces as an opaque ``JaxRuntimeError`` (measured with ducc0 0.42).

    Raises:
        ValueError: If either variable is set but empty.

    Example:
        >>> check_ducc_thread_environment()  # nothing to report in a clean environment
    """
    for name in ("DUCC0_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name)
        if value is not None and not value.strip():
            raise ValueError(
                f"environment variable {name} is set but empty, which ducc0 (the sphere "
                f"transforms) cannot parse; got {value!r}. Unset it or give a number."
            )


@dataclasses.dataclass(frozen=True)
class SphereGrid:
    """Where a field on the sphere is sampled, and how it is transformed.

    Attributes:
        band_limit: ``L``: harmonic degrees ``0 .. L - 1`` are represented.
        sampling: ``"gl"`` or ``"mw"`` (``L`` x ``2L - 1`` exact grids) or
            ``"healpix"`` (RING order, needs ``nside``).
        nside: HEALPix resolution (a power of two), only with ``sampling="healpix"``.
        iterations: Jacobi refinement steps of HEALPix analysis (0 = plain quadrature).
        num_threads: threads ducc0 uses per transform (ducc0's default is 1).
        method: ``"ducc"`` (ducc0 on the host, differentiable through JAX primitives;
            the default) or ``"jax"`` (s2fft's pure-JAX recursions, spin 0 only, for
            accelerators).

    Examples:
        >>> SphereGrid(8, "gl").map_shape
        (8, 15)
        >>> SphereGrid(16, "healpix", nside=8).map_shape
        (768,)
    """

    band_limit: int
    sampling: Literal["gl", "mw", "healpix"] = "gl"
    nside: int | None = None
    iterations: int = 8
    num_threads: int = 1
    method: Literal["ducc", "jax"] = "ducc"

    def __post_init__(self) -> None:
        """Check the band limit, sampling, nside and method."""
        if isinstance(self.band_limit, np.integer):
            object.__setattr__(self, "band_limit", int(self.band_limit))
        if isinstance(self.nside, np.integer):
            object.__setattr__(self, "nside", int(self.nside))
        if not isinstance(self.band_limit, int) or self.band_limit < 2:
            raise ValueError(f"band_limit must be an int >= 2, got {self.band_limit!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.sampling == "healpix":
            n = self.nside
            if not isinstance(n, int) or n < 1 or n & (n - 1):
                raise ValueError(f"nside must be a power of two with sampling='healpix', got {n!r}")
            if self.band_limit > 3 * n:
                raise ValueError(
                    f"band_limit must be <= 3 * nside = {3 * n} on HEALPix, got {self.band_limit}"
                )
        elif self.nside is not None:
            raise ValueError(f"nside is only used with sampling='healpix', got nside={self.nside}")
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations must be an int >= 0, got {self.iterations!r}")
        if not isinstance(self.num_threads, int) or self.num_threads < 0:
            raise ValueError(f"num_threads must be an int >= 0, got {self.num_threads!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "ducc":
            check_ducc_thread_environment()

    @property
    def map_shape(self) -> tuple[int, ...]:
        """Shape of one map: ``(L, 2L - 1)`` on exact grids, ``(12 nside^2,)`` on HEALPix."""
        if self.sampling == "healpix":
            return (12 * self.nside**2,)  # type: ignore[operator]
        return (self.band_limit, 2 * self.band_limit - 1)

    @property
    def num_alm(self) -> int:
        """Number of packed harmonic coefficients, ``L (L + 1) / 2``."""
        return num_alm(self.band_limit)

    def pixel_weights(self) -> np.ndarray:
        """Quadrature weights (steradians, summing to 4 pi) with the map's shape.

        Exact for band-limited integrands on GL and MW grids; ``4 pi / N_pix`` on HEALPix.
        """
        # A fresh array per call: JAX caches the device copy of a NumPy array by object,
        # dtype included, so one cached object handed to jnp.asarray under float32 stays
        # float32 after jax_enable_x64 is switched on (3e-9 errors in float64 statistics).
        return _pixel_weights(self).copy()

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude ``theta`` and longitude ``phi`` (radians) of every pixel."""
        theta, phi = _coordinates(self)
        return theta.copy(), phi.copy()  # fresh arrays, as pixel_weights


@cache
def _pixel_weights(grid: SphereGrid) -> np.ndarray:
    if grid.sampling == "healpix":
        n = grid.map_shape[0]
        return np.full(n, 4.0 * np.pi / n)
    # The integral is sqrt(4 pi) a_00, a linear functional whose weights are the
    # adjoint of analysis applied to the unit a_00.
    unit = np.zeros((1, grid.num_alm), np.complex128)
    unit[0, 0] = 1.0
    weights = _adjoint_analysis_exact(unit, grid, 0)[0]
    return np.sqrt(4.0 * np.pi) * weights


@cache
def _coordinates(grid: SphereGrid) -> tuple[np.ndarray, np.ndarray]:
    import ducc0

    if grid.sampling == "healpix":
        base = ducc0.healpix.Healpix_Base(grid.nside, "RING")
        angles = base.pix2ang(np.arange(grid.map_shape[0]))
        return angles[:, 0], angles[:, 1]
    num_theta, num_phi = grid.map_shape
    if grid.sampling == "gl":
        nodes, _ = np.polynomial.legendre.leggauss(num_theta)
        theta = np.arccos(-nodes)
    else:
        theta = np.pi * (2 * np.arange(num_theta) + 1) / (2 * num_theta - 1)
    phi = 2 * np.pi * np.arange(num_phi) / num_phi
    return np.broadcast_to(theta[:, None], grid.map_shape).copy(), np.broadcast_to(
        phi[None, :], grid.map_shape
    ).copy()


# ---------------------------------------------------------------------------------
# Host (NumPy) transforms on one component stack: alm (ncomp, nalm) complex,
# maps (ncomp, *map_shape) real. Real pairs: (..., ncomp, 2, nalm).


@cache
def _healpix_info(nside: int) -> dict:
    import ducc0

    return ducc0.healpix.Healpix_Base(nside, "RING").sht_info()


@cache
def _m_factor(band_limit: int) -> np.ndarray:
    _, ms = _ell_m(band_limit)
    return np.where(ms == 0, 1.0, 2.0)


def _synthesis_one(alm: np.ndarray, grid: SphereGrid, spin: int) -> np.ndarray:
    from ducc0.sht import experimental as sht

    lmax = grid.band_limit - 1
    if grid.sampling == "healpix":
        out = sht.synthesis(
            alm=alm, lmax=lmax, spin=spin, nthreads=grid.num_threads, **_healpix_info(grid.nside)
        )
        return out
    return sht.synthesis_2d(
        alm=alm,
        spin=spin,
        lmax=lmax,
        geometry=_GEOMETRY[grid.sampling],
        ntheta=grid.map_shape[0],
        nphi=grid.map_shape[1],
        nthreads=grid.num_threads,
    )


def _adjoint_synthesis_one(maps: np.ndarray, grid: SphereGrid, spin: int) -> np.ndarray:
    from ducc0.sht import experimental as sht

    lmax = grid.band_limit - 1
    if grid.sampling == "healpix":
        return sht.adjoint_synthesis(
            map=maps, lmax=lmax, spin=spin, nthreads=grid.num_threads, **_healpix_info(grid.nside)
        )
    return sht.adjoint_synthesis_2d(
        map=maps,
        spin=spin,
        lmax=lmax,
        geometry=_GEOMETRY[grid.sampling],
        nthreads=grid.num_threads,
    )


def _adjoint_analysis_exact(alm: np.ndarray, grid: SphereGrid, spin: int) -> np.ndarray:
    from ducc0.sht import experimental as sht

    return sht.adjoint_analysis_2d(
        alm=alm,
        spin=spin,
        lmax=grid.band_limit - 1,
        geometry=_GEOMETRY[grid.sampling],
        ntheta=grid.map_shape[0],
        nphi=grid.map_shape[1],
        nthreads=grid.num_threads,
    )


def _analysis_one(maps: np.ndarray, grid: SphereGrid, spin: int) -> np.ndarray:
    from ducc0.sht import experimental as sht

    if grid.sampling != "healpix":
        return sht.analysis_2d(
            map=maps,
            spin=spin,
            lmax=grid.band_limit - 1,
            geometry=_GEOMETRY[grid.sampling],
            nthreads=grid.num_threads,
        )
    weight = 4.0 * np.pi / maps.shape[-1]
    alm = _adjoint_synthesis_one(maps * weight, grid, spin)
    for _ in range(grid.iterations):
        residual = maps - _synthesis_one(alm, grid, spin)
        alm = alm + _adjoint_synthesis_one(residual * weight, grid, spin)
    return alm


def _to_complex(pairs: np.ndarray) -> np.ndarray:
    return pairs[..., 0, :] + 1j * pairs[..., 1, :]


def _to_pairs(alm: np.ndarray, band_limit: int) -> np.ndarray:
    pairs = np.stack([alm.real, alm.imag], axis=-2)
    _, ms = _ell_m(band_limit)
    pairs[..., 1, ms == 0] = 0.0
    return pairs


def _batched(fn, x: np.ndarray, core_ndim: int, out_shape: tuple[int, ...]) -> np.ndarray:
    lead = x.shape[: x.ndim - core_ndim]
    flat = x.reshape((-1, *x.shape[x.ndim - core_ndim :]))
    out = np.stack([fn(item) for item in flat]) if flat.shape[0] else np.zeros((0, *out_shape))
    return out.reshape(lead + out_shape)


def _ncomp(spin: int) -> int:
    return 1 if spin == 0 else 2


def _synthesis_np(pairs, grid: SphereGrid, spin: int):
    pairs = np.asarray(pairs, np.float64)
    shape = (_ncomp(spin), *grid.map_shape)
    return _batched(lambda p: _synthesis_one(_to_complex(p), grid, spin), pairs, 3, shape)


def _synthesis_transpose_np(maps, grid: SphereGrid, spin: int):
    maps = np.asarray(maps, np.float64)
    shape = (_ncomp(spin), 2, grid.num_alm)
    factor = _m_factor(grid.band_limit)
    return _batched(
        lambda f: _to_pairs(_adjoint_synthesis_one(f, grid, spin) * factor, grid.band_limit),
        maps,
        1 + len(grid.map_shape),
        shape,
    )


def _analysis_np(maps, grid: SphereGrid, spin: int):
    maps = np.asarray(maps, np.float64)
    shape = (_ncomp(spin), 2, grid.num_alm)
    return _batched(
        lambda f: _to_pairs(_analysis_one(f, grid, spin), grid.band_limit),
        maps,
        1 + len(grid.map_shape),
        shape,
    )


def _analysis_transpose_one(pairs: np.ndarray, grid: SphereGrid, spin: int) -> np.ndarray:
    factor = _m_factor(grid.band_limit)
    cot = _to_complex(pairs)
    if grid.sampling != "healpix":
        return _adjoint_analysis_exact(cot / factor, grid, spin)
    # A_n = sum_k (I - A0 S)^k A0 with A0 = F^-1 S^T W; its transpose is
    # sum_k A0^T (I - S^T A0^T)^k, with A0^T = W S F^-1.
    weight = 4.0 * np.pi / grid.map_shape[0]

    def a0_t(c):
        return weight * _synthesis_one(c / factor, grid, spin)

    def s_t(f):
        return _adjoint_synthesis_one(f, grid, spin) * factor

    v = cot
    out = a0_t(v)
    for _ in range(grid.iterations):
        v = v - s_t(a0_t(v))
        _, ms = _ell_m(grid.band_limit)
        v[..., ms == 0] = v[..., ms == 0].real
        out = out + a0_t(v)
    return out


def _analysis_transpose_np(pairs, grid: SphereGrid, spin: int):
    pairs = np.asarray(pairs, np.float64)
    shape = (_ncomp(spin), *grid.map_shape)
    return _batched(lambda p: _analysis_transpose_one(p, grid, spin), pairs, 3, shape)


# ---------------------------------------------------------------------------------
# JAX primitives: four linear maps, transposes of each other in pairs.


def _out_shape(kind: str, in_shape, grid: SphereGrid, spin: int) -> tuple[int, ...]:
    if kind in ("synthesis", "analysis_transpose"):
        lead = in_shape[:-3]
        return (*lead, _ncomp(spin), *grid.map_shape)
    lead = in_shape[: len(in_shape) - 1 - len(grid.map_shape)]
    return (*lead, _ncomp(spin), 2, grid.num_alm)


_HOST = {
    "synthesis": _synthesis_np,
    "synthesis_transpose": _synthesis_transpose_np,
    "analysis": _analysis_np,
    "analysis_transpose": _analysis_transpose_np,
}
_PARTNER = {
    "synthesis": "synthesis_transpose",
    "synthesis_transpose": "synthesis",
    "analysis": "analysis_transpose",
    "analysis_transpose": "analysis",
}


def _make_impl(kind: str):
    host = _HOST[kind]

    def impl(x, *, grid, spin):
        shape = _out_shape(kind, x.shape, grid, spin)
        dtype = x.dtype

        def callback(arr):
            if jax.dtypes.canonicalize_dtype(dtype) != dtype:
                raise RuntimeError(
                    f"{dtype} arrays reached the ducc0 callback on a thread where JAX's x64 "
                    "mode is off: the jax.enable_x64() context manager is thread-local; use "
                    "jax.config.update('jax_enable_x64', True) for float64 transforms"
                )
            return np.asarray(host(arr, grid, spin), dtype=dtype)

        return jax.pure_callback(
            callback, jax.ShapeDtypeStruct(shape, dtype), x, vmap_method="expand_dims"
        )

    return impl


def _make_eager_impl(kind: str):
    """The primitive applied to concrete arrays: ducc0 on the host, nothing to compile.

    (Bound eagerly, a primitive's impl would otherwise wrap ``pure_callback`` in a program
    compiled for every new shape: ~40 ms each. Under ``jit`` the lowering below is used.)
    """
    host = _HOST[kind]

    def impl(x, *, grid, spin):
        # device_put, not jnp.asarray: in this JAX, jnp.asarray of a NumPy array compiles
        # a small program (``stage``) for every new shape
        return jax.device_put(np.asarray(host(np.asarray(x), grid, spin), dtype=x.dtype))

    return impl


_PRIMITIVES: dict[str, Primitive] = {}
for _kind in _HOST:
    _prim = Primitive(f"astrobayes_sphere_{_kind}")
    _impl = _make_impl(_kind)
    _prim.def_impl(_make_eager_impl(_kind))
    _prim.def_abstract_eval(
        lambda x, *, grid, spin, _k=_kind: jax.core.ShapedArray(
            _out_shape(_k, x.shape, grid, spin), x.dtype
        )
    )
    mlir.register_lowering(_prim, mlir.lower_fun(_impl, multiple_results=False))
    _PRIMITIVES[_kind] = _prim

for _kind, _prim in _PRIMITIVES.items():

    def _transpose(cotangent, x, *, grid, spin, _partner=_PRIMITIVES[_PARTNER[_kind]]):
        return [_partner.bind(cotangent, grid=grid, spin=spin)]

    ad.deflinear2(_prim, _transpose)

    def _batch(args, dims, *, grid, spin, _p=_prim):
        (x,), (dim,) = args, dims
        return _p.bind(jnp.moveaxis(x, dim, 0), grid=grid, spin=spin), 0

    batching.primitive_batchers[_prim] = _batch


# ---------------------------------------------------------------------------------
# Public transforms.


def _check_spin(spin: int) -> None:
    if spin not in (0, 2):
        raise ValueError(f"spin must be 0 or 2 (the (Q, U) <-> (E, B) pair), got {spin!r}")


def _check_grid(grid) -> None:
    if not isinstance(grid, SphereGrid):
        raise TypeError(f"grid must be a SphereGrid, got {type(grid).__name__}")


def forward(
    f: Float[Array, "*batch *map"], grid: SphereGrid, *, spin: int = 0
) -> Complex[Array, "*batch num_alm"]:
    """Harmonic analysis: a real map (spin 0) or a ``(Q, U)`` pair (spin 2) to coefficients.

    Args:
        f: maps with trailing shape ``grid.map_shape`` (spin 0) or ``(2, *map_shape)``
            holding ``(Q, U)`` (spin 2); any leading batch axes.
        grid: the :class:`SphereGrid` (band limit, sampling, method).
        spin: 0 or 2.

    Returns:
        Complex coefficients, trailing shape ``(num_alm,)`` (spin 0) or
        ``(2, num_alm)`` holding ``(E, B)`` (spin 2), in healpy's packing.

    Raises:
        TypeError: ``grid`` is not a :class:`SphereGrid`.
        ValueError: a spin other than 0 and 2, a map of the wrong shape, or spin 2 with
            ``method="jax"``.

    References:
        Reinecke & Seljebotn 2013 (arXiv:1303.4945); McEwen & Wiaux 2011
        (arXiv:1110.6298); Price & McEwen 2024 (arXiv:2311.14670).

    Examples:
        >>> grid = SphereGrid(4, "gl")
        >>> theta, _ = grid.coordinates()
        >>> alm = forward(jnp.asarray(np.cos(theta)), grid)  # Y_10 = sqrt(3/4pi) cos
        >>> round(float(alm[1].real) ** 2 * 3 / (4 * np.pi), 6)
        1.0
    """
    _check_grid(grid)
    _check_spin(spin)
    f = jnp.asarray(f)
    core = (1 if spin == 0 else 2, *grid.map_shape)
    want = core[1:] if spin == 0 else core
    if tuple(f.shape[f.ndim - len(want) :]) != want or f.ndim < len(want):
        raise ValueError(f"f must end with shape {want} for spin {spin} on {grid}, got {f.shape}")
    if not jnp.issubdtype(f.dtype, jnp.floating):
        f = f.astype(jnp.result_type(float))
    if grid.method == "jax":
        if spin != 0:
            raise ValueError("method='jax' supports spin 0 only; use method='ducc' for spin 2")
        return _s2fft_forward(f, grid)
    return _forward(f, grid, spin)


@partial(jax.jit, static_argnums=(1, 2))
def _forward(f, grid: SphereGrid, spin: int):
    """:func:`forward` after its checks: one program per shape, grid and spin.

    Called eagerly, its few array operations would each compile on their own.
    """
    x = jnp.expand_dims(f, -1 - len(grid.map_shape)) if spin == 0 else f
    pairs = _PRIMITIVES["analysis"].bind(x, grid=grid, spin=spin)
    alm = jax.lax.complex(pairs[..., 0, :], pairs[..., 1, :])
    return alm[..., 0, :] if spin == 0 else alm


def inverse(
    alm: Complex[Array, "*batch num_alm"], grid: SphereGrid, *, spin: int = 0
) -> Float[Array, "*batch *map"]:
    """Harmonic synthesis: coefficients to a real map (spin 0) or ``(Q, U)`` (spin 2).

    The imaginary parts of the ``m = 0`` coefficients do not enter a real field and are
    ignored (their derivative is zero).

    Args:
        alm: complex coefficients, trailing shape ``(num_alm,)`` (spin 0) or
            ``(2, num_alm)`` = ``(E, B)`` (spin 2), healpy packing.
        grid: the :class:`SphereGrid`.
        spin: 0 or 2.

    Returns:
        Maps with trailing shape ``grid.map_shape`` or ``(2, *map_shape)``.

    Raises:
        TypeError: ``grid`` is not a :class:`SphereGrid`.
        ValueError: a spin other than 0 and 2, coefficients of the wrong shape.

    Examples:
        >>> grid = SphereGrid(4, "mw")
        >>> a00 = np.complex64(np.sqrt(4 * np.pi))
        >>> alm = jnp.zeros(num_alm(4), jnp.complex64).at[0].set(a00)
        >>> np.allclose(inverse(alm, grid), 1.0, atol=1e-6)  # a_00 = sqrt(4 pi): f = 1
        True
    """
    _check_grid(grid)
    _check_spin(spin)
    alm = jnp.asarray(alm)
    want = (grid.num_alm,) if spin == 0 else (2, grid.num_alm)
    if tuple(alm.shape[alm.ndim - len(want) :]) != want or alm.ndim < len(want):
        raise ValueError(
            f"alm must end with shape {want} for spin {spin} and band_limit "
            f"{grid.band_limit}, got {alm.shape}"
        )
    if not jnp.issubdtype(alm.dtype, jnp.complexfloating):
        alm = alm.astype(jnp.result_type(alm.dtype, jnp.complex64))
    if grid.method == "jax":
        if spin != 0:
            raise ValueError("method='jax' supports spin 0 only; use method='ducc' for spin 2")
        return _s2fft_inverse(alm, grid)
    return _inverse(alm, grid, spin)


@partial(jax.jit, static_argnums=(1, 2))
def _inverse(alm, grid: SphereGrid, spin: int):
    """:func:`inverse` after its checks (one program per shape, grid and spin)."""
    x = alm[..., None, :] if spin == 0 else alm
    pairs = jnp.stack([jnp.real(x), jnp.imag(x)], axis=-2)
    maps = _PRIMITIVES["synthesis"].bind(pairs, grid=grid, spin=spin)
    return jnp.squeeze(maps, -1 - len(grid.map_shape)) if spin == 0 else maps


# ---------------------------------------------------------------------------------
# s2fft's pure-JAX path (spin 0).


@cache
def _full_layout_indices(band_limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ells, ms = _ell_m(band_limit)
    positive = ells * (2 * band_limit - 1) + band_limit - 1 + ms
    negative = ells * (2 * band_limit - 1) + band_limit - 1 - ms
    sign = np.where(ms % 2 == 0, 1.0, -1.0)
    return positive, negative, sign


def _s2fft_kwargs(grid: SphereGrid) -> dict:
    kwargs = {"L": grid.band_limit, "sampling": grid.sampling, "reality": True}
    if grid.sampling == "healpix":
        kwargs["nside"] = grid.nside
    return kwargs


def _s2fft_forward(f, grid: SphereGrid):
    import s2fft

    positive, _, _ = _full_layout_indices(grid.band_limit)

    def one(x):
        kwargs = _s2fft_kwargs(grid)
        if grid.sampling == "healpix":
            kwargs["iter"] = grid.iterations
        flm = s2fft.forward(x, method="jax", **kwargs)
        return flm.reshape(-1)[positive]

    flat = f.reshape((-1, *grid.map_shape))
    out = jax.vmap(one)(flat)
    return out.reshape((*f.shape[: f.ndim - len(grid.map_shape)], grid.num_alm))


def _s2fft_inverse(alm, grid: SphereGrid):
    import s2fft

    band_limit = grid.band_limit
    positive, negative, sign = _full_layout_indices(band_limit)

    def one(a):
        full = jnp.zeros(band_limit * (2 * band_limit - 1), a.dtype)
        full = full.at[negative].set(sign * jnp.conj(a)).at[positive].set(a)
        flm = full.reshape(band_limit, 2 * band_limit - 1)
        return jnp.real(s2fft.inverse(flm, method="jax", **_s2fft_kwargs(grid)))

    flat = alm.reshape((-1, grid.num_alm))
    out = jax.vmap(one)(flat)
    return out.reshape((*alm.shape[:-1], *grid.map_shape))
