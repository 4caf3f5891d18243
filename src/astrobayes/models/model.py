"""The ``Model`` contract: a NumPyro model, or a JAX log-likelihood plus NumPyro priors.

Either becomes a log density on the *unconstrained* space (every bounded parameter mapped
to the real line by NumPyro's bijections) that includes the log-Jacobian of the map, so
that the evidence estimated from samples in that space is the evidence of the original
model: ``z = int L(theta) pi(theta) d theta = int L(theta(u)) pi(theta(u)) |d theta / d u| du``.
The prior must be proper and normalised; improper priors are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.util import constrain_fn as numpyro_constrain_fn
from numpyro.infer.util import potential_energy
from numpyro.infer.util import unconstrain_fn as numpyro_unconstrain_fn

from astrobayes._checks import (
    UserFunctionOutputError,
    check_key,
    check_positive_int,
    scalar_output,
    user_code_error,
)
from astrobayes.sampling import batched_logdensity

__all__ = [
    "Model",
    "UnconstrainedDensity",
    "UnconstrainedPrior",
    "check_model",
    "constrained_samples",
    "PriorSupport",
    "prior_ranges",
    "prior_supports",
    "unconstrained_density",
    "unconstrained_prior",
]

_MAX_INIT_ATTEMPTS = 100
#: NumPyro keeps its effect-handler stack in a module global, so two threads must never
#: run (or trace) a NumPyro model at the same time; this lock serialises exactly that (a
#: jitted density is traced once, so compilation and execution stay concurrent).
_NUMPYRO_LOCK = threading.RLock()


@dataclass(frozen=True)
class Model:
    """A Bayesian model whose evidence astrobayes can compute.

    Attributes:
        name: Short name (used in tables, files and checkpoints).
        numpyro_model: A NumPyro model function (priors via ``numpyro.sample``, the
            likelihood via observed sites or ``numpyro.factor``).
        model_args: Positional arguments of ``numpyro_model``.
        model_kwargs: Keyword arguments of ``numpyro_model``.
        labels: ``{parameter name: LaTeX label}`` (no ``$``) for figures and GetDist
            files; a parameter not listed is labelled by its name (see :meth:`label`).

    Example:
        >>> import jax.numpy as jnp, numpyro.distributions as dist
        >>> model = Model.from_priors(
        ...     "gauss", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-5.0, 5.0)})
        >>> model.name
        'gauss'
        >>> model.label("x")
        'x'

    """

    name: str
    numpyro_model: Callable[..., Any]
    model_args: tuple = ()
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string; got {self.name!r}")
        if not callable(self.numpyro_model):
            raise TypeError(
                f"numpyro_model must be callable; got {type(self.numpyro_model).__name__}"
            )
        if not isinstance(self.labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise TypeError(
                f"labels must map parameter names to LaTeX strings; got {self.labels!r}"
            )

    def label(self, name: str) -> str:
        """LaTeX label of parameter ``name`` (without ``$``); the name itself when none is set."""
        return self.labels.get(name, name)

    @classmethod
    def from_priors(
        cls,
        name: str,
        log_likelihood_fn: Callable[[dict[str, jax.Array]], jax.Array],
        priors: Mapping[str, dist.Distribution],
        *,
        log_prior_correction_fn: Callable[[dict[str, jax.Array]], jax.Array] | None = None,
        labels: Mapping[str, str] | None = None,
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
            labels: Optional ``{name: LaTeX label}`` for figures (see :meth:`label`).

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
            numpyro.factor(
                "log_likelihood",
                scalar_output(log_likelihood_fn(values), f"the log-likelihood of model {name!r}"),
            )

        return cls(name, numpyro_model, labels=dict(labels or {}))


class UnconstrainedDensity(NamedTuple):
    """A model as a log density on the unconstrained space.

    Attributes:
        logdensity_fn: ``u (dim,) -> log L + log pi + log|J|`` (+log density).
        constrain_fn: ``u (dim,) -> {name: value}`` in the original space.
        initial_positions: ``(num_chains, dim)`` valid starting points.
        names: Flat parameter names (vector sites expanded as ``name[i]``).
        unravel_fn: Flat vector to the dict of unconstrained sites.

    """

    logdensity_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]]
    constrain_fn: Callable[[Float[Array, " dim"]], dict[str, Array]]
    initial_positions: Float[Array, "num_chains dim"]
    names: tuple[str, ...]
    unravel_fn: Callable[[Float[Array, " dim"]], dict[str, Array]]


def unconstrained_density(key: PRNGKeyArray, model: Model, num_chains: int) -> UnconstrainedDensity:
    """Turn a :class:`Model` into a log density on the unconstrained space.

    The model is traced abstractly (``jax.eval_shape``) to find its latent sites, so no
    likelihood is evaluated eagerly; the density is NumPyro's potential energy with the
    sign flipped (log joint plus the log-Jacobian of each site's bijection).

    Args:
        key: JAX PRNG key (initial positions, uniform in ``(-2, 2)`` unconstrained).
        model: The model.
        num_chains: Number of initial positions to draw.

    Returns:
        :class:`UnconstrainedDensity`.

    Raises:
        ValueError: If the model has an improper prior (``ImproperUniform``), a discrete
            latent parameter, no latent parameter, or a non-finite log density at every
            initial point tried.

    Example:
        >>> import jax, numpyro.distributions as dist
        >>> model = Model.from_priors("m", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-5, 5)})
        >>> density = unconstrained_density(jax.random.key(0), model, 3)
        >>> density.names, density.initial_positions.shape
        (('x',), (3, 1))

    """
    check_key(key)
    if not isinstance(model, Model):
        raise TypeError(f"model must be astrobayes.models.Model; got {type(model).__name__}")
    num_chains = check_positive_int(num_chains, "num_chains")
    args, kwargs = model.model_args, dict(model.model_kwargs)
    shapes = _latent_shapes(model)
    # The default float type: float64 under jax_enable_x64 (ravel_pytree casts back to it).
    prototype = {name: jnp.zeros(shape, jnp.result_type(float)) for name, shape in shapes.items()}
    flat, unravel = ravel_pytree(prototype)
    dim = flat.shape[0]
    names: list[str] = []
    for name in sorted(prototype):
        shape = shapes[name]
        size = int(np.prod(shape))
        names.extend([name] if not shape else [f"{name}[{i}]" for i in range(size)])

    def logdensity_fn(u):
        with _NUMPYRO_LOCK:
            return -potential_energy(model.numpyro_model, args, kwargs, unravel(u))

    def constrain_fn(u):
        with _NUMPYRO_LOCK:
            return numpyro_constrain_fn(
                model.numpyro_model, args, kwargs, unravel(u), return_deterministic=True
            )

    positions = _initial_positions(key, logdensity_fn, num_chains, dim, model.name)
    return UnconstrainedDensity(
        logdensity_fn=logdensity_fn,
        constrain_fn=constrain_fn,
        initial_positions=positions,
        names=tuple(names),
        unravel_fn=unravel,
    )


class UnconstrainedPrior(NamedTuple):
    """A model split into prior and likelihood on the unconstrained space (for tempering).

    ``log_prior_fn(u) + log_likelihood_fn(u)`` is the model's
    :attr:`UnconstrainedDensity.logdensity_fn`; ``draws`` are independent prior draws.

    Attributes:
        log_prior_fn: ``u (dim,) -> log pi(theta(u)) + log|J|``, normalised on the
            unconstrained space (the latent sites only).
        log_likelihood_fn: ``u (dim,) -> log L`` (every observed site and
            ``numpyro.factor``, including a ``log_prior_correction`` factor, which is then
            tempered with the likelihood: the evidence is unchanged).
        draws: ``(num_draws, dim)`` prior draws, mapped to the unconstrained space.
        names: Flat parameter names, as :func:`unconstrained_density` gives them.

    """

    log_prior_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]]
    log_likelihood_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]]
    draws: Float[Array, "num_draws dim"]
    names: tuple[str, ...]


def unconstrained_prior(
    key: PRNGKeyArray, model: Model, num_draws: int, density: UnconstrainedDensity | None = None
) -> UnconstrainedPrior:
    """Split a :class:`Model` into prior and likelihood on the unconstrained space.

    What tempered samplers (:func:`astrobayes.sampling.run_smc`) need: prior draws and a
    likelihood to raise to a power. The prior is the model with its observed sites hidden
    (NumPyro's ``block`` handler), so its log density is the latent sites' log
    probabilities plus the log-Jacobians of their bijections, exactly the prior part of
    :func:`unconstrained_density`; the log likelihood is the rest.

    Args:
        key: JAX PRNG key (the prior draws).
        model: The model.
        num_draws: Number of prior draws.
        density: The model's :func:`unconstrained_density` when already built (its
            flattening is reused; otherwise it is built here).

    Returns:
        :class:`UnconstrainedPrior`.

    Raises:
        ValueError: As :func:`unconstrained_density`, or if a prior draw has a
            non-finite log prior (a prior that cannot be sampled).

    Example:
        >>> import jax, numpyro.distributions as dist
        >>> model = Model.from_priors("m", lambda p: -0.5 * p["x"] ** 2, {"x": dist.Uniform(-5, 5)})
        >>> split = unconstrained_prior(jax.random.key(0), model, 4)
        >>> split.draws.shape, split.names
        ((4, 1), ('x',))

    """
    check_key(key)
    num_draws = check_positive_int(num_draws, "num_draws")
    density_key, draw_key = jax.random.split(key)
    if density is None:
        density = unconstrained_density(density_key, model, 1)
    args, kwargs = model.model_args, dict(model.model_kwargs)
    # Hide the model's own observed sites by name: NumPyro adds the log-Jacobians as
    # observed factor sites of its own while evaluating, and those must stay.
    observed = _observed_sites(model)
    prior_model = handlers.block(model.numpyro_model, hide_fn=lambda site: site["name"] in observed)

    def log_prior_fn(u):
        with _NUMPYRO_LOCK:
            return -potential_energy(prior_model, args, kwargs, density.unravel_fn(u))

    def log_likelihood_fn(u):
        return density.logdensity_fn(u) - log_prior_fn(u)

    def draw(draw_key):
        traced = handlers.trace(handlers.seed(prior_model, draw_key)).get_trace(*args, **kwargs)
        values = {
            name: site["value"]
            for name, site in traced.items()
            if site["type"] == "sample" and not site["is_observed"]
        }
        return ravel_pytree(numpyro_unconstrain_fn(prior_model, args, kwargs, values))[0]

    with _NUMPYRO_LOCK:
        draws = jax.jit(jax.vmap(draw))(jax.random.split(draw_key, num_draws))
    if draws.shape[1] != len(density.names):
        raise ValueError(
            f"model {model.name!r}: prior draws have {draws.shape[1]} unconstrained "
            f"coordinates, the density {len(density.names)}"
        )
    finite = np.isfinite(np.asarray(jax.jit(jax.vmap(log_prior_fn))(draws)))
    if not finite.all():
        raise ValueError(
            f"model {model.name!r}: the log prior is not finite at {int((~finite).sum())} of "
            f"{num_draws} prior draws; the prior cannot be sampled"
        )
    return UnconstrainedPrior(log_prior_fn, log_likelihood_fn, draws, density.names)


def _visit_abstract_trace(model: Model, visit: Callable[[dict], None]) -> None:
    """Trace the model abstractly (``jax.eval_shape``, no likelihood evaluated) and visit it."""

    def trace(key):
        seeded = handlers.substitute(
            handlers.seed(model.numpyro_model, key), substitute_fn=init_to_uniform
        )
        try:
            model_trace = handlers.trace(seeded).get_trace(
                *model.model_args, **dict(model.model_kwargs)
            )
        except UserFunctionOutputError:
            raise
        except Exception as error:  # the user's code: say whose, and what JAX needs
            raise user_code_error(f"model {model.name!r}", error) from error
        visit(model_trace)
        return 0

    with _NUMPYRO_LOCK:
        jax.eval_shape(trace, jax.random.key(0))


def _observed_sites(model: Model) -> frozenset[str]:
    """Names of the observed sites (data and ``numpyro.factor``)."""
    found: set[str] = set()
    _visit_abstract_trace(
        model,
        lambda t: found.update(
            n for n, s in t.items() if s["type"] == "sample" and s["is_observed"]
        ),
    )
    return frozenset(found)


def check_model(model: Model) -> None:
    """Trace a model once, abstractly, and refuse it early if it cannot be sampled.

    Nothing is evaluated (``jax.eval_shape``), so this costs a trace, not a likelihood
    call. :func:`astrobayes.comparison.compare` checks every model this way before it
    samples any, so a mistake in the last model's code stops a run before the first
    model has sampled for hours.

    Args:
        model: The model.

    Raises:
        TypeError: If ``model`` is not a :class:`Model`.
        ValueError: Naming the model, if a prior is improper or discrete, there is no
            latent parameter, a log-likelihood (:meth:`Model.from_priors`) returns
            anything but one real number, or the model's code raises while traced
            (the exception and, for the common JAX mistakes, the remedy).

    Example:
        >>> import numpyro.distributions as dist
        >>> check_model(Model.from_priors("m", lambda p: -p["x"] ** 2, {"x": dist.Normal(0, 1)}))
        >>> try:
        ...     check_model(Model.from_priors("v", lambda p: -p["x"] * jnp.ones(2), {"x": dist.Normal(0, 1)}))
        ... except ValueError as error:
        ...     print(error)
        the log-likelihood of model 'v' must return one number; got an array of shape (2,) (a total of per-point terms is jnp.sum(terms); a size-1 array's number is x[0])

    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be astrobayes.models.Model; got {type(model).__name__}")
    _latent_shapes(model)


def _latent_shapes(model: Model) -> dict[str, tuple[int, ...]]:
    """Unconstrained shape of each latent site, from an abstract trace of the model."""
    found: dict[str, tuple[int, ...]] = {}

    def visit(model_trace):
        for name, site in model_trace.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            fn = site["fn"]
            base = getattr(fn, "base_dist", fn)
            if isinstance(fn, dist.ImproperUniform) or isinstance(base, dist.ImproperUniform):
                raise ValueError(
                    f"model {model.name!r}: parameter {name!r} has an improper prior "
                    f"({type(fn).__name__}); the evidence needs a proper, normalised prior"
                )
            if fn.support.is_discrete:
                raise ValueError(
                    f"model {model.name!r}: parameter {name!r} is discrete "
                    f"({type(fn).__name__}); NUTS needs continuous parameters"
                )
            shape = jnp.shape(site["value"])
            found[name] = tuple(int(n) for n in biject_to(fn.support).inverse_shape(shape))

    _visit_abstract_trace(model, visit)
    if not found:
        raise ValueError(
            f"model {model.name!r} has no latent parameter (numpyro.sample without obs)"
        )
    return found


def _initial_positions(key, logdensity_fn, num_chains: int, dim: int, name: str) -> jax.Array:
    """Uniform draws in ``(-2, 2)^dim`` (unconstrained), redrawn where the density is not finite."""
    batch_logdensity = batched_logdensity(logdensity_fn)
    positions = np.zeros((num_chains, dim), np.float32)
    missing = np.ones(num_chains, bool)
    for attempt in range(_MAX_INIT_ATTEMPTS):
        trial = jax.random.uniform(
            jax.random.fold_in(key, attempt), (num_chains, dim), minval=-2.0, maxval=2.0
        )
        finite = np.isfinite(np.asarray(batch_logdensity(trial)))
        take = missing & finite
        positions[take] = np.asarray(trial)[take]
        missing &= ~finite
        if not missing.any():
            return jnp.asarray(positions)
    raise ValueError(
        f"model {name!r}: cannot find a valid initial point: the log density was not finite "
        f"at {_MAX_INIT_ATTEMPTS} uniform draws in (-2, 2)^{dim} (unconstrained) for "
        f"{int(missing.sum())} of {num_chains} chains (common causes: NaN or inf in the "
        "data, a log of a negative number or a division by zero in the likelihood, or a "
        "likelihood that is -inf except in a tiny region)"
    )


def constrained_samples(
    density: UnconstrainedDensity, samples: Float[np.ndarray, "*batch dim"]
) -> dict[str, np.ndarray]:
    """Map unconstrained draws ``(..., dim)`` to ``{name: (..., *site_shape)}`` (deterministic sites too)."""
    flat = jnp.asarray(samples).reshape(-1, samples.shape[-1])
    out = jax.jit(jax.vmap(density.constrain_fn))(flat)
    return {k: np.asarray(v).reshape(samples.shape[:-1] + np.shape(v)[1:]) for k, v in out.items()}


def prior_ranges(model: Model) -> dict[str, tuple[float | None, float | None]]:
    """Hard edges of each scalar parameter's prior support, where they are fixed numbers.

    Read from an abstract trace of the model (``jax.eval_shape``: the likelihood is
    traced, never evaluated): an edge given as a number is kept; an edge computed from
    another parameter (such as ``wa < -w0``) is a tracer there and is left open. Figures
    pass these to GetDist so that its kernel density estimate is corrected at a prior
    edge instead of leaking past it.

    Args:
        model: The model.

    Returns:
        ``{name: (low, high)}`` for every scalar latent site, ``None`` for an open side.

    Example:
        >>> import numpyro.distributions as dist
        >>> m = Model.from_priors("m", lambda p: -p["x"] ** 2, {"x": dist.Uniform(-2.0, 3.0),
        ...                                                     "y": dist.Normal(0.0, 1.0)})
        >>> prior_ranges(m)
        {'x': (-2.0, 3.0), 'y': (None, None)}

    """
    return {name: (site.low, site.high) for name, site in _scalar_prior_sites(model).items()}


class PriorSupport(NamedTuple):
    """Where a scalar parameter's prior ends, and what kind of end it is.

    Attributes:
        low: Lower edge, ``None`` when open or computed from another parameter.
        high: Upper edge, the same.
        log_uniform: The prior is uniform in ``ln x`` (NumPyro's ``LogUniform``, the
            TOML's ``log-uniform``, or a ``Uniform`` pushed through ``ExpTransform``):
            where a posterior meets its edge is read, and drawn, in ``ln x``.
        chosen: The edges are the analyst's choice (a uniform, log-uniform or truncated
            prior), so ln z depends on where they are put; ``False`` for a
            distribution's own support (a half-normal's 0, a beta's 0 and 1).

    """

    low: float | None
    high: float | None
    log_uniform: bool
    chosen: bool


def prior_supports(model: Model) -> dict[str, PriorSupport]:
    """The edges of every scalar parameter's prior, with their kind (:class:`PriorSupport`).

    Args:
        model: The model.

    Returns:
        ``{name: PriorSupport}``, from an abstract trace as in :func:`prior_ranges`.

    Example:
        >>> import numpyro.distributions as dist
        >>> m = Model.from_priors("m", lambda p: -p["x"] ** 2, {"x": dist.LogUniform(0.1, 3.0),
        ...                                                     "t": dist.HalfCauchy(5.0)})
        >>> supports = prior_supports(m)
        >>> supports["x"].log_uniform, supports["x"].chosen
        (True, True)
        >>> supports["t"]
        PriorSupport(low=0.0, high=None, log_uniform=False, chosen=False)

    """
    return _scalar_prior_sites(model)


def _is_log_uniform(fn) -> bool:
    """Whether a NumPyro distribution is a uniform one in ``ln x``."""
    return (
        isinstance(fn, dist.TransformedDistribution)
        and isinstance(fn.base_dist, dist.Uniform)
        and len(fn.transforms) == 1
        and isinstance(fn.transforms[0], dist.transforms.ExpTransform)
    )


#: Distributions whose edges an analyst chooses (NumPyro's truncations included).
_CHOSEN_EDGES = (
    dist.Uniform,
    dist.truncated.LeftTruncatedDistribution,
    dist.truncated.RightTruncatedDistribution,
    dist.truncated.TwoSidedTruncatedDistribution,
)


def _scalar_prior_sites(model: Model) -> dict[str, PriorSupport]:
    """:class:`PriorSupport` of every scalar latent site (abstract trace)."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be astrobayes.models.Model; got {type(model).__name__}")
    found: dict[str, PriorSupport] = {}

    def edge(value) -> float | None:
        if value is None or isinstance(value, jax.core.Tracer):
            return None
        array = np.asarray(value, dtype=float)
        return float(array) if array.shape == () and np.isfinite(array) else None

    def trace(key):
        seeded = handlers.substitute(
            handlers.seed(model.numpyro_model, key), substitute_fn=init_to_uniform
        )
        model_trace = handlers.trace(seeded).get_trace(
            *model.model_args, **dict(model.model_kwargs)
        )
        for name, site in model_trace.items():
            if site["type"] != "sample" or site["is_observed"] or jnp.shape(site["value"]):
                continue
            fn, support = site["fn"], site["fn"].support
            log_uniform = _is_log_uniform(fn)
            found[name] = PriorSupport(
                edge(getattr(support, "lower_bound", None)),
                edge(getattr(support, "upper_bound", None)),
                log_uniform,
                log_uniform or isinstance(fn, _CHOSEN_EDGES),
            )
        return 0

    with _NUMPYRO_LOCK:
        jax.eval_shape(trace, jax.random.key(0))
    return found
