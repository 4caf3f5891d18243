"""The emulated BAO likelihood agrees with the direct one when the emulator is exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.cosmology import (
    Cosmology,
    desi_dr2_bao,
    dh_over_rd,
    dm_over_rd,
    make_bao_log_likelihood,
    make_emulated_bao_log_likelihood,
)


def test_emulated_bao_likelihood_with_exact_outputs():
    # Feed exact grid values through the emulated-likelihood path (an identity
    # "emulator" whose outputs are exact), then compare with the direct likelihood.
    grid = np.linspace(0.1, 2.5, 481)
    data = desi_dr2_bao()
    theta = jnp.array([0.31, 100.0, -0.9, -0.2])

    class Exact:
        num_outputs = 2 * grid.size

        def __call__(self, t):
            cosmology = Cosmology(omega_m=t[0], w0=t[2], wa=t[3])
            return jnp.concatenate(
                [dm_over_rd(cosmology, grid, h_rd=t[1]), dh_over_rd(cosmology, grid, h_rd=t[1])]
            )

    emulated = make_emulated_bao_log_likelihood(Exact(), data, grid)
    direct = make_bao_log_likelihood(data, ("omega_m", "h_rd", "w0", "wa"))
    np.testing.assert_allclose(jax.jit(emulated)(theta), jax.jit(direct)(theta), atol=2e-3)
    with pytest.raises(ValueError, match="must cover the data redshifts"):
        make_emulated_bao_log_likelihood(Exact(), data, np.linspace(0.5, 2.5, 481))
    with pytest.raises(ValueError, match="needs 20"):
        make_emulated_bao_log_likelihood(Exact(), data, np.linspace(0.1, 2.5, 10))
