"""The ``Model`` contract: a NumPyro model, or a JAX log-likelihood plus NumPyro priors.

Either becomes a log density on the *unconstrained* space (every bounded parameter mapped
to the real line by NumPyro's bijections) that includes the log-Jacobian of the map, so
that the evidence estimated from samples in that space is the evidence of the original
model: ``z = int L(theta) pi(theta) d theta = int L(theta(u)) pi(theta(u)) |d theta / d u| du``.
The prior must be proper and normalised; improper priors are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model

from astrobayes._checks import check_key, check_positive_int


@dataclass(frozen=True)
class Model:
    """A Bayesian model whose evidence astrobayes can compute.

    Attributes:
        name: Short name (used in tables, files and checkpoints).
        numpyro_model: A NumPyro model function (priors via ``numpyro.sample``, the
            likelihood via observed sites or ``numpyro.factor``).
        model_args: Positional arguments of ``numpyro_model``.
        model_kwargs: Keyword arguments of ``numpyro_model``.

    Example:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> model = Model.from_priors(
        ...     "gauss", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-5.0, 5.0)})
        >>> model.name
        'gauss'

    """

    name: str
    numpyro_model: Callable[..., Any]
    model_args: tuple = ()
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string; got {self.name!r}")
        if not callable(self.numpyro_model):
            raise TypeError(
                f"numpyro_model must be callable; got {type(self.numpyro_model).__name__}"
            )

    @classmethod
    def from_priors(
        cls,
        name: str,
        log_likelihood_fn: Callable[[dict[str, jax.Array]], jax.Array],
        priors: Mapping[str, dist.Distribution],
        *,
        log_prior_correction_fn: Callable[[dict[str, jax.Array]], jax.Array] | None = None,
    ) -> Model:
        """Build a model from a JAX log-likelihood and one NumPyro prior per parameter.

        Args:
            name: Model name.
            log_likelihood_fn: ``f({name: value}) -> log L`` (natural log, normalised
                over the data when evidences of different data models are compared).
            priors: ``{name: numpyro distribution}``, in parameter order; a prior may be
                a callable ``f(previous_values_dict) -> distribution`` for dependent
                supports (e.g. ``wa < -w0``).
            log_prior_correction_fn: Optional extra normalised log prior term (e.g. to
                make a dependent-support prior uniform on its region).

        Returns:
            The :class:`Model`.

        Raises:
            TypeError: If a prior is neither a distribution nor a callable.
            ValueError: If no priors are given.

        """
        if not priors:
            raise ValueError("priors must name at least one parameter; got none")
        for key, prior in priors.items():
            if not isinstance(prior, dist.Distribution) and not callable(prior):
                raise TypeError(
                    f"priors[{key!r}] must be a numpyro distribution (e.g. dist.Uniform(0, 1)) "
                    f"or a callable returning one; got {type(prior).__name__}"
                )
        items = tuple(priors.items())

        def numpyro_model():
            values: dict[str, jax.Array] = {}
            for key, prior in items:
                distribution = prior if isinstance(prior, dist.Distribution) else prior(values)
                values[key] = numpyro.sample(key, distribution)
            if log_prior_correction_fn is not None:
                numpyro.factor("log_prior_correction", log_prior_correction_fn(values))
            numpyro.factor("log_likelihood", log_likelihood_fn(values))

        return cls(name, numpyro_model)


class UnconstrainedDensity(NamedTuple):
    """A model as a log density on the unconstrained space.

    Attributes:
        logdensity_fn: ``u (dim,) -> log L + log pi + log|J|`` (+log density).
        constrain_fn: ``u (dim,) -> {name: value}`` in the original space.
        initial_positions: ``(num_chains, dim)`` valid starting points.
        names: Flat parameter names (vector sites expanded as ``name[i]``).
        unravel_fn: Flat vector to the dict of unconstrained sites.

    """

    logdensity_fn: Callable[[jax.Array], jax.Array]
    constrain_fn: Callable[[jax.Array], dict[str, jax.Array]]
    initial_positions: jax.Array
    names: tuple[str, ...]
    unravel_fn: Callable[[jax.Array], dict[str, jax.Array]]


def unconstrained_density(key: jax.Array, model: Model, num_chains: int) -> UnconstrainedDensity:
    """Turn a :class:`Model` into a log density on the unconstrained space.

    Args:
        key: JAX PRNG key (initial positions, uniform in ``(-2, 2)`` unconstrained).
        model: The model.
        num_chains: Number of initial positions to draw.

    Returns:
        :class:`UnconstrainedDensity`.

    Raises:
        ValueError: If the model has an improper prior (``ImproperUniform``), no
            latent parameter, or a non-finite log density at every initial point.

    """
    check_key(key)
    if not isinstance(model, Model):
        raise TypeError(f"model must be astrobayes.models.Model; got {type(model).__name__}")
    num_chains = check_positive_int(num_chains, "num_chains")
    keys = jax.random.split(key, num_chains)
    try:
        info = initialize_model(
            keys,
            model.numpyro_model,
            model_args=model.model_args,
            model_kwargs=dict(model.model_kwargs),
        )
    except RuntimeError as error:
        raise ValueError(
            f"model {model.name!r}: cannot find a valid initial point: {error}"
        ) from None
    latent = {
        name: site
        for name, site in info.model_trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    if not latent:
        raise ValueError(
            f"model {model.name!r} has no latent parameter (numpyro.sample without obs)"
        )
    for name, site in latent.items():
        fn = site["fn"]
        base = getattr(fn, "base_dist", fn)
        if isinstance(fn, dist.ImproperUniform) or isinstance(base, dist.ImproperUniform):
            raise ValueError(
                f"model {model.name!r}: parameter {name!r} has an improper prior "
                f"({type(fn).__name__}); the evidence needs a proper, normalised prior"
            )
    z = info.param_info.z
    first = jax.tree_util.tree_map(lambda a: a[0], z)
    _, unravel = ravel_pytree(first)
    positions = jax.vmap(lambda tree: ravel_pytree(tree)[0])(z)
    names: list[str] = []
    for name in sorted(first):
        size = int(np.size(first[name]))
        names.extend([name] if np.ndim(first[name]) == 0 else [f"{name}[{i}]" for i in range(size)])
    potential_fn = info.potential_fn
    postprocess_fn = info.postprocess_fn

    def logdensity_fn(u):
        return -potential_fn(unravel(u))

    def constrain_fn(u):
        return postprocess_fn(unravel(u))

    return UnconstrainedDensity(logdensity_fn, constrain_fn, positions, tuple(names), unravel)


def constrained_samples(
    density: UnconstrainedDensity, samples: np.ndarray
) -> dict[str, np.ndarray]:
    """Map unconstrained draws ``(..., dim)`` to ``{name: (..., *site_shape)}`` (deterministic sites too)."""
    flat = jnp.asarray(samples).reshape(-1, samples.shape[-1])
    out = jax.jit(jax.vmap(density.constrain_fn))(flat)
    return {k: np.asarray(v).reshape(samples.shape[:-1] + np.shape(v)[1:]) for k, v in out.items()}
