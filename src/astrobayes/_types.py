"""Shape aliases shared across the package (jaxtyping)."""

from jaxtyping import Array, Float, PRNGKeyArray

Samples = Float[Array, "num_chains num_samples dim"]
LogDensities = Float[Array, "num_chains num_samples"]
Key = PRNGKeyArray

__all__ = ["Array", "Float", "Key", "LogDensities", "Samples"]
