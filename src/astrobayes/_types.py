"""Shape aliases and callback types shared across the package (jaxtyping)."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

Samples = Float[Array, "num_chains num_samples dim"]
LogDensities = Float[Array, "num_chains num_samples"]
Key = PRNGKeyArray

#: The one progress-callback shape of the package: ``progress_fn(stage, done, total)``,
#: e.g. ``("warmup", 200, 400)``, ``("training", 12, 60)``, ``("simulations", 500, 1000)``.
#: Long runs call it after each block; the CLI turns it into progress bars.
ProgressFn = Callable[[str, int, int], None]


def parameter_dtype(model: Any) -> np.dtype:
    """The dtype of a network's weights: that of ``model``'s first inexact array leaf.

    Inputs are cast to it before they meet the weights: with ``jax_enable_x64`` on, a
    float64 input and float32 weights do not mix in a convolution.

    Raises:
        ValueError: If ``model`` holds no floating-point array.

    Example:
        >>> import equinox as eqx, jax, jax.numpy as jnp
        >>> parameter_dtype(eqx.nn.Linear(2, 3, key=jax.random.key(0), dtype=jnp.float32))
        dtype('float32')

    """
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    if not leaves:
        raise ValueError(f"model holds no floating-point array; got {type(model).__name__}")
    return np.dtype(leaves[0].dtype)


__all__ = ["Array", "Float", "Key", "LogDensities", "ProgressFn", "Samples", "parameter_dtype"]
