"""Orthonormal periodised Daubechies wavelet transforms in JAX.

The transform is the periodised (circular) discrete wavelet transform of
Mallat (1989) with the compactly supported orthonormal filters of Daubechies (1988,
1992). Periodisation makes the transform an orthogonal matrix ``Psi`` (``Psi^T Psi =
Psi Psi^T = I``) for any image whose sides are divisible by ``2^levels``; therefore the
proximal operator of ``lam * ||Psi x||_1`` is exactly ``Psi^T soft(Psi x, lam)``. This is
not true of the redundant, boundary-padded transforms used by some imaging codes (their
``Psi`` is a frame, not an orthogonal matrix, and the formula is then only an
approximation).

Coefficients are stored in one array of the image's shape, in the usual layout: the
approximation at the coarsest level in the top-left corner and, at each level ``j``,
the three detail sub-bands in the other three quadrants of the top-left
``(H / 2^(j-1), W / 2^(j-1))`` block.

References:
    Daubechies 1988, Comm. Pure Appl. Math. 41, 909, "Orthonormal bases of compactly
    supported wavelets".
    Daubechies 1992, "Ten Lectures on Wavelets", SIAM, Table 6.1 (filter coefficients
    ``h_n`` normalised so that ``sum h_n = sqrt(2)``).
    Mallat 1989, IEEE TPAMI 11, 674, "A theory for multiresolution signal decomposition".

"""

from __future__ import annotations

import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "DAUBECHIES_FILTERS",
    "WaveletTransform",
    "prox_l1_orthonormal",
    "soft_threshold",
    "wavelet_transform",
]

# Daubechies (1992), Table 6.1: low-pass reconstruction filters h_n of the orthonormal
# wavelets with N vanishing moments (dbN, filter length 2N), normalised to sum sqrt(2).
DAUBECHIES_FILTERS: dict[int, tuple[float, ...]] = {
    1: (0.7071067811865476, 0.7071067811865476),
    2: (0.48296291314453416, 0.8365163037378079, 0.2241438680420134, -0.12940952255126037),
    3: (
        0.33267055295008263, 0.8068915093110925, 0.45987750211849154, -0.13501102001025458,
        -0.08544127388202666, 0.03522629188570953,
    ),
    4: (
        0.2303778133088965, 0.7148465705529157, 0.6308807679298589, -0.027983769416859854,
        -0.18703481171909309, 0.030841381835560764, 0.0328830116668852, -0.010597401785069032,
    ),
    5: (
        0.16010239797419293, 0.6038292697971896, 0.7243085284377729, 0.13842814590132074,
        -0.24229488706638203, -0.032244869584638375, 0.07757149384004572,
        -0.006241490212798274, -0.012580751999081999, 0.0033357252854737712,
    ),
    6: (
        0.11154074335010947, 0.49462389039845306, 0.7511339080210954, 0.31525035170919763,
        -0.22626469396543983, -0.12976686756726194, 0.09750160558732304,
        0.027522865530305727, -0.03158203931748603, 0.0005538422011614961,
        0.004777257510945511, -0.0010773010853084796,
    ),
    7: (
        0.07785205408500918, 0.3965393194819173, 0.7291320908462351, 0.4697822874051931,
        -0.14390600392856498, -0.22403618499387498, 0.07130921926683026,
        0.08061260915108308, -0.03802993693501441, -0.01657454163066688,
        0.01255099855609984, 0.0004295779729213665, -0.0018016407040474908,
        0.00035371379997452024,
    ),
    8: (
        0.05441584224310401, 0.31287159091429995, 0.6756307362972898, 0.5853546836542067,
        -0.015829105256349306, -0.2840155429615469, 0.0004724845739132828,
        0.12874742662047847, -0.017369301001807547, -0.044088253930794755,
        0.013981027917398282, 0.008746094047405777, -0.004870352993451574,
        -0.00039174037337694705, 0.0006754494064505693, -0.00011747678412476953,
    ),
}  # fmt: skip


def _filters(order: int) -> tuple[np.ndarray, np.ndarray]:
    low = np.asarray(DAUBECHIES_FILTERS[order])
    length = low.size
    high = np.array([(-1) ** n * low[length - 1 - n] for n in range(length)])
    return low, high


@functools.lru_cache(maxsize=64)
def _analysis_tables(order: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather indices ``(size/2, L)`` with ``idx[k, n] = (2k + n + s) mod size``.

    The shift ``s = 1 - L/2`` aligns the coefficients with PyWavelets'
    ``mode="periodization"``.
    """
    low, high = _filters(order)
    shift = 1 - low.size // 2
    k = np.arange(size // 2)[:, None]
    n = np.arange(low.size)[None, :]
    return (2 * k + n + shift) % size, low, high


@functools.lru_cache(maxsize=64)
def _synthesis_tables(order: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather form of the transpose: ``x[m] = sum_j H[m,j] a[K[m,j]] + G[m,j] d[K[m,j]]``."""
    low, high = _filters(order)
    length = low.size
    shift = 1 - length // 2
    m = np.arange(size)[:, None]
    j = np.arange(length // 2)[None, :]
    parity = (m - shift) % 2
    n = parity + 2 * j  # taps n with (m - n - shift) even
    index = ((m - n - shift) % size) // 2
    return index, low[n], high[n]


def _analysis_last_axis(x: Array, order: int) -> tuple[Array, Array]:
    index, low, high = _analysis_tables(order, x.shape[-1])
    gathered = jnp.take(x, jnp.asarray(index.ravel()), axis=-1, mode="clip")
    gathered = gathered.reshape(x.shape[:-1] + index.shape)  # (..., size/2, L)
    low = jnp.asarray(low, dtype=x.dtype)
    high = jnp.asarray(high, dtype=x.dtype)
    return gathered @ low, gathered @ high


def _synthesis_last_axis(approx: Array, detail: Array, order: int) -> Array:
    size = 2 * approx.shape[-1]
    index, low, high = _synthesis_tables(order, size)
    low = jnp.asarray(low, dtype=approx.dtype)
    high = jnp.asarray(high, dtype=approx.dtype)
    flat = jnp.asarray(index.ravel())
    shape = approx.shape[:-1] + index.shape
    a = jnp.take(approx, flat, axis=-1, mode="clip").reshape(shape)
    d = jnp.take(detail, flat, axis=-1, mode="clip").reshape(shape)
    return jnp.sum(a * low + d * high, axis=-1)


def _forward_level(x: Array, order: int) -> Array:
    """One 2-d level: rows then columns; returns [[LL, LH], [HL, HH]] in one array."""
    low, high = _analysis_last_axis(x, order)  # along width
    x = jnp.concatenate([low, high], axis=-1)
    x = jnp.swapaxes(x, -1, -2)
    low, high = _analysis_last_axis(x, order)  # along height
    x = jnp.concatenate([low, high], axis=-1)
    return jnp.swapaxes(x, -1, -2)


def _inverse_level(c: Array, order: int) -> Array:
    height, width = c.shape[-2:]
    c = jnp.swapaxes(c, -1, -2)
    c = _synthesis_last_axis(c[..., : height // 2], c[..., height // 2 :], order)
    c = jnp.swapaxes(c, -1, -2)
    return _synthesis_last_axis(c[..., : width // 2], c[..., width // 2 :], order)


def wavelet_transform(
    image: Float[Array, "*batch height width"], *, order: int, levels: int, inverse: bool = False
) -> Float[Array, "*batch height width"]:
    """Multi-level 2-d orthonormal periodised Daubechies transform (or its inverse).

    Args:
        image: Image (or coefficients when ``inverse=True``), with optional leading
            batch axes; both sides divisible by ``2^levels``.
        order: Daubechies order ``N`` (``dbN``), 1 to 8.
        levels: Number of decomposition levels (>= 1).
        inverse: Apply ``Psi^T = Psi^{-1}`` instead of ``Psi``.

    Returns:
        Coefficients (or the image) of the same shape.

    Raises:
        ValueError: On an unknown order, bad number of levels or indivisible shape.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(16, 16))
        >>> c = wavelet_transform(x, order=2, levels=2)
        >>> back = wavelet_transform(c, order=2, levels=2, inverse=True)
        >>> bool(np.allclose(back, x, atol=1e-5))
        True

    """
    _check_wavelet(order, levels, np.shape(image)[-2:])
    x = jnp.asarray(image)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.zeros(()).dtype)
    height, width = x.shape[-2:]
    if not inverse:
        for level in range(levels):
            h, w = height >> level, width >> level
            x = x.at[..., :h, :w].set(_forward_level(x[..., :h, :w], order))
        return x
    for level in reversed(range(levels)):
        h, w = height >> level, width >> level
        x = x.at[..., :h, :w].set(_inverse_level(x[..., :h, :w], order))
    return x


def soft_threshold(values: Array, threshold: Array | float) -> Array:
    """Soft thresholding ``sign(v) * max(|v| - t, 0)``, the prox of ``t * |.|``."""
    return jnp.sign(values) * jnp.maximum(jnp.abs(values) - threshold, 0.0)


class WaveletTransform(eqx.Module):
    """The orthonormal periodised ``dbN`` transform as a Module.

    Attributes:
        order: Daubechies order ``N`` (1 to 8).
        levels: Number of decomposition levels.

    Example:
        >>> import numpy as np
        >>> psi = WaveletTransform(order=8, levels=2)
        >>> x = np.ones((32, 32))
        >>> bool(np.allclose(psi.inverse(psi(x)), x, atol=1e-5))
        True

    """

    order: int = eqx.field(static=True, default=8)
    levels: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        _check_wavelet(self.order, self.levels, None)

    def __call__(
        self, image: Float[Array, "*batch height width"]
    ) -> Float[Array, "*batch height width"]:
        """Analysis ``Psi x``."""
        return wavelet_transform(image, order=self.order, levels=self.levels)

    def inverse(
        self, coefficients: Float[Array, "*batch height width"]
    ) -> Float[Array, "*batch height width"]:
        """Synthesis ``Psi^T c`` (= ``Psi^{-1} c``)."""
        return wavelet_transform(coefficients, order=self.order, levels=self.levels, inverse=True)


def prox_l1_orthonormal(
    image: Float[Array, "height width"], threshold: float, transform: WaveletTransform
) -> Float[Array, "height width"]:
    """Exact prox of ``threshold * ||Psi x||_1`` for orthonormal ``Psi``.

    ``prox(z) = Psi^T soft(Psi z, threshold)``; exact because ``Psi`` is orthogonal
    (Combettes & Pesquet 2011, arXiv:0912.3522, Table 10.1 (x)).

    Args:
        image: Point ``z`` at which to evaluate the prox.
        threshold: Non-negative threshold (step size times regularisation strength).
        transform: The orthonormal wavelet transform.

    Returns:
        ``argmin_x threshold * ||Psi x||_1 + ||x - z||^2 / 2``.

    """
    return transform.inverse(soft_threshold(transform(image), threshold))


def _check_wavelet(order, levels, shape) -> None:
    if (
        isinstance(order, bool)
        or not isinstance(order, int | np.integer)
        or order not in DAUBECHIES_FILTERS
    ):
        raise ValueError(f"wavelet order must be an integer in 1..8 (db1..db8); got {order!r}")
    if isinstance(levels, bool) or not isinstance(levels, int | np.integer) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1; got {levels!r}")
    if shape is not None:
        if len(shape) != 2:
            raise ValueError(f"image must have at least 2 dimensions; got shape {shape}")
        factor = 2**levels
        if shape[0] % factor or shape[1] % factor:
            raise ValueError(
                f"image sides must be divisible by 2^levels = {factor}; got shape {tuple(shape)}"
            )
