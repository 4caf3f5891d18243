"""A normalising-flow proposal on standardised coordinates, and its fit to draws.

Shared by the samplers that learn a flow from their own draws: flow-enhanced MCMC
(:mod:`astrobayes.sampling.flow_mcmc`, global independence proposals) and preconditioned
SMC (:mod:`astrobayes.sampling.smc`, the flow as a preconditioner of the particles).
Training goes through the one training loop, :func:`astrobayes._training.fit`.

References:
    Gabrié, Rotskoff & Vanden-Eijnden 2022 (arXiv:2105.12603); Karamanis et al. 2022,
    pocoMC (arXiv:2207.05652).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._training import TrainingConfig, TrainingInfo, fit

__all__ = ["FlowProposal", "fit_flow_proposal", "proposal_arrays", "restore_proposal"]


class FlowProposal(eqx.Module):
    """A flow on standardised coordinates, ``theta = mean + scale * u``, ``u ~ flow``."""

    flow: eqx.Module
    mean: Float[Array, " dim"]
    scale: Float[Array, " dim"]

    def log_prob(self, theta: Float[Array, "num dim"]) -> Float[Array, " num"]:
        """Normalised log density of ``theta`` under the proposal."""
        u = (theta - self.mean) / self.scale
        return paramax.unwrap(self.flow).log_prob(u) - jnp.sum(jnp.log(self.scale))

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``num`` draws from the proposal."""
        u = paramax.unwrap(self.flow).sample(key, (num,))
        return self.mean + self.scale * u


def fit_flow_proposal(
    key: PRNGKeyArray,
    flow: eqx.Module,
    proposal: FlowProposal | None,
    buffer: Float[np.ndarray, "num dim"],
    training_config: TrainingConfig,
) -> tuple[FlowProposal, TrainingInfo]:
    """Fit ``flow`` (warm start) to the draws in ``buffer`` on standardised coordinates.

    The coordinates are the draws' mean and standard deviation when ``proposal`` is
    ``None``, else ``proposal``'s (kept fixed so that a warm start stays meaningful).
    A tenth of the draws (at least one) is held out for early stopping; training goes
    through :func:`astrobayes._training.fit`.

    Args:
        key: PRNG key for the split and the training.
        flow: The flow to start from (e.g. the previous fit).
        proposal: The previous proposal, or ``None`` for fresh coordinates.
        buffer: ``(num, dim)`` draws to fit.
        training_config: Training settings.

    Returns:
        The fitted :class:`FlowProposal` and its :class:`~astrobayes._training.TrainingInfo`.
    """
    if proposal is None:
        mean = jnp.asarray(buffer.mean(axis=0), jnp.result_type(float))
        scale = jnp.asarray(np.clip(buffer.std(axis=0), 1e-6, None), jnp.result_type(float))
    else:  # keep the coordinates fixed so that the warm start stays meaningful
        mean, scale = proposal.mean, proposal.scale
    split_key, train_key = jax.random.split(key)
    u = (jnp.asarray(buffer) - mean) / scale
    order = jax.random.permutation(split_key, u.shape[0])
    num_validation = max(u.shape[0] // 10, 1)
    validation = (u[order[:num_validation]],)
    train = (u[order[num_validation:]],)
    trained, info = fit(
        train_key,
        flow,
        _negative_log_likelihood,
        train,
        validation,
        config=training_config,
        is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
    )
    return FlowProposal(trained, mean, scale), info


def _negative_log_likelihood(flow, batch, key):
    del key
    (u,) = batch
    return -jnp.mean(paramax.unwrap(flow).log_prob(u))


def proposal_arrays(proposal: FlowProposal) -> dict[str, np.ndarray]:
    """The proposal's array leaves in tree order, as ``{"proposal_i": array}`` (checkpoints).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flowjax.bijections import Affine
        >>> from flowjax.distributions import Normal, Transformed
        >>> flow = Transformed(Normal(jnp.zeros(2)), Affine(jnp.ones(2)))
        >>> p = FlowProposal(flow, jnp.zeros(2), jnp.ones(2))
        >>> q = restore_proposal(proposal_arrays(p), FlowProposal(flow, jnp.ones(2), jnp.ones(2)))
        >>> bool(jnp.all(q.mean == 0))
        True
    """
    leaves = jax.tree_util.tree_leaves(eqx.filter(proposal, eqx.is_array))
    return {f"proposal_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def restore_proposal(saved: dict[str, np.ndarray], template: FlowProposal) -> FlowProposal:
    """The proposal saved by :func:`proposal_arrays`; ``template`` gives its structure."""
    params, static = eqx.partition(template, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    restored = [jnp.asarray(saved[f"proposal_{i}"]) for i in range(len(leaves))]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, restored), static)
