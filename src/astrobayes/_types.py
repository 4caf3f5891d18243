"""Shape aliases and callback types shared across the package (jaxtyping)."""

from collections.abc import Callable

from jaxtyping import Array, Float, PRNGKeyArray

Samples = Float[Array, "num_chains num_samples dim"]
LogDensities = Float[Array, "num_chains num_samples"]
Key = PRNGKeyArray

#: The one progress-callback shape of the package: ``progress_fn(stage, done, total)``,
#: e.g. ``("warmup", 200, 400)``, ``("training", 12, 60)``, ``("simulations", 500, 1000)``.
#: Long runs call it after each block; the CLI turns it into progress bars.
ProgressFn = Callable[[str, int, int], None]

__all__ = ["Array", "Float", "Key", "LogDensities", "ProgressFn", "Samples"]
