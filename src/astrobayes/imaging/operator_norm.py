"""Spectral norm of a linear operator by power iteration on its normal operator.

References:
    Golub & Van Loan 2013, "Matrix Computations", 4th ed., section 8.2.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._status import Severity, Status, check

__all__ = ["OperatorNormResult", "OperatorNormStatus", "operator_norm"]


class OperatorNormStatus(Status):
    """Outcome of the power iteration; values are the messages."""

    CONVERGED = (Severity.OK, "converged: relative change below tolerance")
    MAX_ITERATIONS = (
        Severity.WARNING,
        "stopped at the maximum number of iterations before reaching tolerance",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "failure: the eigenvalue estimate became non-finite; check the operator",
    )


class OperatorNormResult(NamedTuple):
    """Spectral norm of a measurement operator by power iteration.

    Attributes:
        norm: Estimate of ``||Phi||_2`` (square root of the top eigenvalue of
            ``Phi^H Phi``).
        num_iterations: Iterations run.
        relative_change: Last relative change of the eigenvalue estimate.
        status: An :class:`OperatorNormStatus`.

    """

    norm: float
    num_iterations: int
    relative_change: float
    status: OperatorNormStatus


def operator_norm(
    normal_fn: Callable[[Float[Array, "height width"]], Float[Array, "height width"]],
    image_shape: tuple[int, int],
    *,
    start: Float[Array, "height width"] | None = None,
    num_iterations: int = 500,
    tolerance: float = 1e-6,
    throw: bool = False,
) -> OperatorNormResult:
    """Spectral norm ``||A||_2`` by power iteration on ``A^T A``.

    The iteration is deterministic: it starts from ``start`` or, by default, from a
    fixed non-symmetric pattern (a constant plus a ramp), which is not orthogonal to
    the top eigenvector of the operators met in imaging (their top eigenvector is
    concentrated on low spatial frequencies).

    Args:
        normal_fn: Callable ``x -> A^T A x`` on arrays of ``image_shape`` (e.g.
            ``operator.normal``).
        image_shape: Shape of the domain.
        start: Optional starting image.
        num_iterations: Maximum number of iterations.
        tolerance: Relative change of the eigenvalue estimate at which to stop.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure.

    Returns:
        An :class:`OperatorNormResult`.

    Raises:
        UnreliableResultError: With ``throw=True`` on a non-finite estimate.

    References:
        Golub & Van Loan 2013, "Matrix Computations", 4th ed., section 8.2.1.

    Example:
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.ones((8, 8), dtype=bool))
        >>> round(operator_norm(op.normal, (8, 8)).norm, 4)
        1.0

    """
    shape = tuple(int(n) for n in image_shape)
    if start is None:
        rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        start = 1.0 + 0.1 * np.cos(1.3 * rows + 0.7 * cols) + 0.01 * rows / shape[0]
    start = jnp.asarray(start, dtype=jnp.zeros(()).dtype)
    start = start / jnp.linalg.norm(start)

    def cond(state):
        iteration, _, _, change = state
        return (iteration < num_iterations) & (change > tolerance)

    def body(state):
        iteration, vector, value, _ = state
        image = normal_fn(vector)
        new_value = jnp.linalg.norm(image)
        change = jnp.abs(new_value - value) / jnp.maximum(new_value, 1e-30)
        return iteration + 1, image / jnp.maximum(new_value, 1e-30), new_value, change

    state = (0, start, jnp.asarray(0.0, start.dtype), jnp.asarray(jnp.inf, start.dtype))
    iteration, _, value, change = jax.jit(lambda s: jax.lax.while_loop(cond, body, s))(state)
    if not np.isfinite(float(value)):
        status = OperatorNormStatus.NOT_FINITE
    elif float(change) <= tolerance:
        status = OperatorNormStatus.CONVERGED
    else:
        status = OperatorNormStatus.MAX_ITERATIONS
    result = OperatorNormResult(
        norm=float(jnp.sqrt(value)),
        num_iterations=int(iteration),
        relative_change=float(change),
        status=status,
    )
    return check(result, throw)
