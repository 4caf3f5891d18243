"""Nested-sampling peers run on the same likelihood as astrobayes, for the benchmarks.

Each runner takes a JAX log-likelihood of one parameter vector and a *unit-cube prior
transform* written in ``jax.numpy`` (so the same prior serves dynesty, UltraNest and
BlackJAX's nested slice sampler), runs the peer with the defaults a user would take, and
returns a :class:`PeerResult` with its ln z, its own error estimate, the wall time (JIT
compilation included) and the number of likelihood calls.

Peers (``bench`` extra): dynesty (Speagle 2020, arXiv:1904.02180), UltraNest (Buchner 2021,
arXiv:2101.09604), BlackJAX nested slice sampling (Yallup, Kroupa & Handley 2026,
arXiv:2601.23252; Lovick et al. 2025, arXiv:2509.13307).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Keeps ``ndtri``-style transforms finite at the faces of the unit cube.
_CUBE_EPS = 1e-12


class PeerResult(NamedTuple):
    """One peer run: ln z with the peer's own error, wall time and likelihood calls.

    ``samples`` and ``log_weights`` (unnormalised) are the peer's weighted posterior draws
    where the runner returns them (dynesty), else ``None``; ``cpu_s`` is the process CPU
    time of the run (all threads), NaN where not measured.
    """

    name: str
    log_evidence: float
    log_evidence_std: float
    wall_s: float
    num_likelihood_calls: int
    samples: np.ndarray | None = None
    log_weights: np.ndarray | None = None
    cpu_s: float = float("nan")


def _cube_log_likelihood(log_likelihood_fn: Callable, prior_transform_fn: Callable) -> Callable:
    def fn(u):
        return log_likelihood_fn(prior_transform_fn(jnp.clip(u, _CUBE_EPS, 1.0 - _CUBE_EPS)))

    return fn


def run_dynesty(
    log_likelihood_fn: Callable,
    prior_transform_fn: Callable,
    ndim: int,
    *,
    nlive: int = 500,
    seed: int = 0,
    max_wall_s: float | None = None,
) -> PeerResult:
    """dynesty's static ``NestedSampler`` with its defaults (``nlive`` live points).

    With ``max_wall_s`` the run stops after that many wall seconds if not done (its own
    stopping rule, ``dlogz = 1e-3 (nlive - 1) + 0.01`` as in ``run_nested``, is otherwise
    unchanged); an unfinished run is returned with ``ln z = nan`` and "UNFINISHED" in its
    name, so its wall time is a lower bound on what the run would take.
    """
    import dynesty

    start, cpu = time.perf_counter(), time.process_time()
    loglike = jax.jit(log_likelihood_fn)
    transform = jax.jit(prior_transform_fn)
    sampler = dynesty.NestedSampler(
        lambda x: float(loglike(jnp.asarray(x, jnp.float32))),
        lambda u: np.asarray(transform(jnp.asarray(u, jnp.float32)), np.float64),
        ndim,
        nlive=nlive,
        rstate=np.random.default_rng(seed),
    )
    if max_wall_s is None:
        sampler.run_nested(print_progress=False)
    else:
        for _ in sampler.sample(dlogz=1e-3 * (nlive - 1) + 0.01):
            if time.perf_counter() - start > max_wall_s:
                return PeerResult(
                    f"dynesty static (nlive={nlive}) UNFINISHED after {max_wall_s:.0f} s",
                    float("nan"),
                    float("nan"),
                    time.perf_counter() - start,
                    int(sampler.ncall),
                    None,
                    None,
                    time.process_time() - cpu,
                )
        for _ in sampler.add_live_points():
            pass
        # as run_nested does at the end: the integrals recomputed over the full run
        from dynesty.utils import compute_integrals

        run = sampler.saved_run
        logwt, logz, logzvar, h = compute_integrals(logl=run["logl"], logvol=run["logvol"])
        run["logwt"], run["logz"] = logwt.tolist(), logz.tolist()
        run["logzvar"], run["h"] = logzvar.tolist(), h.tolist()
        sampler.loglikelihood.finalize_history()
    res = sampler.results
    return PeerResult(
        f"dynesty static (nlive={nlive})",
        float(res.logz[-1]),
        float(res.logzerr[-1]),
        time.perf_counter() - start,
        int(np.sum(res.ncall)),
        np.asarray(res.samples),
        np.asarray(res.logwt),
        time.process_time() - cpu,
    )


def run_ultranest(
    log_likelihood_fn: Callable,
    prior_transform_fn: Callable,
    names: Sequence[str],
    *,
    seed: int = 0,
    max_ncalls: int | None = None,
) -> PeerResult:
    """UltraNest's ``ReactiveNestedSampler.run()`` defaults, with a vectorised likelihood."""
    import logging

    import ultranest

    logging.getLogger("ultranest").setLevel(logging.WARNING)
    np.random.seed(seed)  # UltraNest draws from NumPy's global generator.
    start = time.perf_counter()
    loglike = _padded_batch(jax.jit(jax.vmap(log_likelihood_fn)))
    transform = _padded_batch(jax.jit(jax.vmap(prior_transform_fn)))
    sampler = ultranest.ReactiveNestedSampler(list(names), loglike, transform, vectorized=True)
    logging.getLogger("ultranest").setLevel(logging.WARNING)  # its handler is set up above
    result = sampler.run(show_status=False, viz_callback=False, max_ncalls=max_ncalls)
    return PeerResult(
        "UltraNest (ReactiveNestedSampler defaults)",
        float(result["logz"]),
        float(result["logzerr"]),
        time.perf_counter() - start,
        int(result["ncall"]),
    )


def run_blackjax_ns(
    key: jax.Array,
    log_likelihood_fn: Callable,
    prior_transform_fn: Callable,
    ndim: int,
    *,
    num_live: int = 500,
    num_delete: int | None = None,
    num_inner_steps: int | None = None,
    log_remaining_fraction: float = -3.0,
    num_volume_draws: int = 100,
) -> PeerResult:
    """BlackJAX nested slice sampling in the unit cube, run to a remaining-evidence tolerance.

    Args:
        key: PRNG key.
        log_likelihood_fn: JAX log-likelihood of one parameter vector.
        prior_transform_fn: unit cube to parameters, in ``jax.numpy``.
        ndim: number of parameters.
        num_live: live points.
        num_delete: points replaced per (vectorised) step; default ``num_live // 10``.
        num_inner_steps: slice steps per replacement; default ``max(5, 3 * ndim)``
            (BlackJAX recommends at least ``2 * ndim`` for unbiased evidences at ``ndim > 10``).
        log_remaining_fraction: stop when ln(Z_live / Z) falls below this.
        num_volume_draws: simulated shrinkage sequences for ln z and its error.

    Returns:
        :class:`PeerResult`; the error is the spread over simulated prior-volume sequences.
    """
    import blackjax
    from blackjax.ns.utils import finalise, log_weights

    num_delete = num_delete or max(1, num_live // 10)
    num_inner_steps = num_inner_steps or max(5, 3 * ndim)
    start, cpu = time.perf_counter(), time.process_time()
    cube_loglike = _cube_log_likelihood(log_likelihood_fn, prior_transform_fn)

    def log_prior(u):
        inside = jnp.all((u > 0.0) & (u < 1.0))
        return jnp.where(inside, 0.0, -jnp.inf)

    algorithm = blackjax.nss(
        log_prior, cube_loglike, num_inner_steps=num_inner_steps, num_delete=num_delete
    )
    key_init, key_run, key_weights = jax.random.split(key, 3)
    state = algorithm.init(jax.random.uniform(key_init, (num_live, ndim)), key_init)
    step = jax.jit(algorithm.step)
    dead = []
    num_calls = num_live
    while float(state.integrator.logZ_live - state.integrator.logZ) > log_remaining_fraction:
        key_run, key_step = jax.random.split(key_run)
        state, info = step(key_step, state)
        dead.append(info)
        num_calls += _slice_evaluations(info.update_info)
    final = finalise(state, dead)
    log_w = log_weights(key_weights, final, shape=num_volume_draws)
    log_z = jax.scipy.special.logsumexp(log_w, axis=0)
    return PeerResult(
        f"blackjax.nss (live={num_live}, delete={num_delete}, inner={num_inner_steps})",
        float(jnp.mean(log_z)),
        float(jnp.std(log_z)),
        time.perf_counter() - start,
        int(num_calls),
        cpu_s=time.process_time() - cpu,
    )


def _padded_batch(batch_fn: Callable) -> Callable:
    """Call a jitted batch function on power-of-two padded batches (UltraNest's batch sizes
    vary from call to call; without padding every new size would recompile)."""

    def fn(x):
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        size = max(16, 1 << (n - 1).bit_length())
        padded = np.concatenate([x, np.repeat(x[:1], size - n, axis=0)])
        return np.asarray(batch_fn(jnp.asarray(padded)), np.float64)[:n]

    return fn


def _slice_evaluations(update_info) -> int:
    """Likelihood evaluations of one NSS step (stepping-out plus shrinkage), when reported."""
    total = 0
    for field in ("num_steps", "num_shrink"):
        value = getattr(update_info, field, None)
        if value is not None:
            total += int(np.sum(np.asarray(value)))
    return total
