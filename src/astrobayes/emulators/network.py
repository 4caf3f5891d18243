"""The :class:`Emulator` Module: standardised inputs, optional PCA of outputs, an MLP.

CosmoPower-style (Spurio Mancini et al. 2022, arXiv:2106.03846): inputs are shifted and
scaled to unit range; outputs are optionally log-transformed, standardised per feature
and optionally compressed onto their leading principal components; a multilayer
perceptron with a smooth activation maps inputs to the (standardised) coefficients.
Everything is a PyTree, so the emulator is differentiable (gradients for NUTS), and
``jit``/``vmap`` friendly.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

__all__ = ["ACTIVATIONS", "Emulator"]

ACTIVATIONS = {
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
}
"""Smooth activations available by name (names are stored in saved files)."""


class Emulator(eqx.Module):
    r"""A trained neural emulator ``parameters -> outputs`` (final; build with ``train_emulator``).

    Prediction for one parameter vector :math:`x`:
    :math:`h = \mathrm{MLP}((x - \mu_x)/\sigma_x)`; with PCA
    :math:`s = (h \odot \sigma_c) B`, else :math:`s = h`;
    :math:`y = \mu_y + \sigma_y \odot s`, and :math:`\exp(y)` if ``log_outputs``.

    Attributes:
        layers: The MLP's linear layers.
        input_shift, input_scale: Input standardisation, shape ``(num_parameters,)``.
        output_shift, output_scale: Output standardisation, shape ``(num_outputs,)``.
        basis: PCA basis ``(num_components, num_outputs)`` (orthonormal rows) or ``None``.
        coefficient_scale: Standard deviations of the PCA coefficients, or ``None``.
        hidden: Hidden-layer widths (static).
        activation: Activation name, a key of :data:`ACTIVATIONS` (static).
        log_outputs: Whether outputs were emulated in log space (static).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.emulators import train_emulator
        >>> x = jnp.linspace(0.0, 1.0, 64)[:, None]
        >>> emulator, history = train_emulator(
        ...     jax.random.key(0), x, jnp.sin(3 * x) + 2, hidden=(16,), num_epochs=5
        ... )
        >>> emulator(jnp.array([0.5])).shape
        (1,)

    """

    layers: tuple[eqx.nn.Linear, ...]
    input_shift: Array
    input_scale: Array
    output_shift: Array
    output_scale: Array
    basis: Array | None
    coefficient_scale: Array | None
    hidden: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    log_outputs: bool = eqx.field(static=True)

    def __init__(
        self,
        key: jax.Array,
        *,
        input_shift: Float[ArrayLike, " num_parameters"],
        input_scale: Float[ArrayLike, " num_parameters"],
        output_shift: Float[ArrayLike, " num_outputs"],
        output_scale: Float[ArrayLike, " num_outputs"],
        basis: Float[ArrayLike, "num_components num_outputs"] | None = None,
        coefficient_scale: Float[ArrayLike, " num_components"] | None = None,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        log_outputs: bool = False,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if (basis is None) != (coefficient_scale is None):
            raise ValueError("basis and coefficient_scale must be given together")
        self.input_shift = jnp.asarray(input_shift)
        self.input_scale = jnp.asarray(input_scale)
        self.output_shift = jnp.asarray(output_shift)
        self.output_scale = jnp.asarray(output_scale)
        self.basis = None if basis is None else jnp.asarray(basis)
        self.coefficient_scale = (
            None if coefficient_scale is None else jnp.asarray(coefficient_scale)
        )
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.log_outputs = bool(log_outputs)
        num_in = self.input_shift.shape[0]
        num_out = self.output_shift.shape[0] if self.basis is None else self.basis.shape[0]
        sizes = (num_in, *self.hidden, num_out)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )

    @property
    def num_parameters(self) -> int:
        """Input dimension."""
        return int(self.input_shift.shape[0])

    @property
    def num_outputs(self) -> int:
        """Output dimension."""
        return int(self.output_shift.shape[0])

    @property
    def num_components(self) -> int | None:
        """Number of PCA components, or ``None`` without PCA."""
        return None if self.basis is None else int(self.basis.shape[0])

    def _network(self, standardised: Array) -> Array:
        activation = ACTIVATIONS[self.activation]
        h = standardised
        for layer in self.layers[:-1]:
            h = activation(layer(h))
        return self.layers[-1](h)

    def _standardised_outputs(self, parameters: Array) -> Array:
        """Network output mapped to standardised output space ``s`` (one sample)."""
        h = self._network((parameters - self.input_shift) / self.input_scale)
        if self.basis is not None:
            h = (h * self.coefficient_scale) @ self.basis
        return h

    def _single(self, parameters: Array) -> Array:
        y = self.output_shift + self.output_scale * self._standardised_outputs(parameters)
        return jnp.exp(y) if self.log_outputs else y

    def __call__(
        self, parameters: Float[ArrayLike, "*batch num_parameters"]
    ) -> Float[Array, "*batch num_outputs"]:
        """Emulated outputs for one parameter vector or a batch (leading axes)."""
        parameters = jnp.asarray(parameters, dtype=self.input_shift.dtype)
        if parameters.shape[-1:] != (self.num_parameters,):
            raise ValueError(
                f"parameters must have last axis {self.num_parameters}; got shape {parameters.shape}"
            )
        batch = parameters.shape[:-1]
        flat = parameters.reshape(-1, self.num_parameters)
        outputs = jax.vmap(self._single)(flat)
        return outputs.reshape(*batch, self.num_outputs)
