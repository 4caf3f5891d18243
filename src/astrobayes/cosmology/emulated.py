"""BAO likelihood whose distance ratios come from a neural emulator.

The emulator (:mod:`astrobayes.emulators`, a leaf package) knows nothing about cosmology;
the likelihood that feeds its outputs to the BAO data lives here, beside the data.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from astrobayes._checks import as_float_array, check_finite
from astrobayes.cosmology.data import BAOData
from astrobayes.emulators import Emulator

__all__ = ["make_emulated_bao_log_likelihood"]


def make_emulated_bao_log_likelihood(
    emulator: Emulator,
    data: BAOData,
    redshift_grid: Float[ArrayLike, " num_redshifts"],
) -> Callable[[Float[Array, " num_parameters"]], Float[Array, ""]]:
    """BAO log-likelihood with :math:`D_M/r_d` and :math:`D_H/r_d` from an emulator.

    The emulator must output ``[D_M/r_d on the grid, D_H/r_d on the grid]`` (length
    ``2 * num_redshifts``); the data redshifts are reached by linear interpolation on the
    grid and :math:`D_V/r_d = [z (D_M/r_d)^2 (D_H/r_d)]^{1/3}`. The likelihood is the same
    normalised Gaussian as :func:`astrobayes.cosmology.bao_log_likelihood`.

    Args:
        emulator: Trained emulator of the distance ratios.
        data: BAO data, e.g. :func:`astrobayes.cosmology.desi_dr2_bao`.
        redshift_grid: The emulator's redshift grid, strictly increasing, covering the
            data redshifts.

    Returns:
        ``log_likelihood_fn(theta)`` with ``theta`` the emulator's input vector (pure,
        jit/vmap/grad friendly).

    Raises:
        ValueError: If the grid is not increasing, does not cover the data, or does not
            match the emulator's number of outputs.

    Example:
        >>> from astrobayes.cosmology import desi_dr2_bao, make_emulated_bao_log_likelihood
        >>> from astrobayes.io import load_emulator
        >>> emulator = load_emulator("bao_distances.eqx")  # doctest: +SKIP
        >>> fn = make_emulated_bao_log_likelihood(emulator, desi_dr2_bao(), grid)  # doctest: +SKIP

    """
    grid = as_float_array(redshift_grid, "redshift_grid", ndim=1)
    check_finite(grid, "redshift_grid")
    if grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError("redshift_grid must be strictly increasing with at least 2 points")
    if emulator.num_outputs != 2 * grid.size:
        raise ValueError(
            f"the emulator has {emulator.num_outputs} outputs; a grid of {grid.size} redshifts "
            f"needs {2 * grid.size} ([D_M/r_d, D_H/r_d] on the grid)"
        )
    redshifts = np.asarray(data.redshifts)
    if redshifts.min() < grid[0] or redshifts.max() > grid[-1]:
        raise ValueError(
            f"redshift_grid [{grid[0]}, {grid[-1]}] must cover the data redshifts "
            f"[{redshifts.min()}, {redshifts.max()}]"
        )
    quantities = np.asarray(data.quantities)
    num = grid.size

    def log_likelihood_fn(theta: Float[Array, " num_parameters"]) -> Float[Array, ""]:
        outputs = emulator(theta)
        z = jnp.asarray(redshifts)
        z_grid = jnp.asarray(grid)
        dm = jnp.interp(z, z_grid, outputs[:num])
        dh = jnp.interp(z, z_grid, outputs[num:])
        dv = jnp.cbrt(z * dm * dm * dh)
        prediction = jnp.where(
            quantities == "DM_over_rs", dm, jnp.where(quantities == "DH_over_rs", dh, dv)
        )
        return data.likelihood(prediction)

    return log_likelihood_fn
