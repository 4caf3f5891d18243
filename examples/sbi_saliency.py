"""Which pixels of a weak-lensing map drive each posterior parameter of an NPE.

Issue 14, item 5. Trains the NPE of ``examples/sbi_weak_lensing.py`` (its simulator,
prior and CNN embedding, by calling its ``main`` with fewer simulations), then explains
the *posterior mean* of each parameter, ``f_j(x) = mean_i theta_j(u_i; x)`` over a fixed
set of base draws of the flow (reparametrised, so differentiable in the map ``x``):

* vanilla gradients ``d f_j / d x`` and integrated gradients from the empty map
  (``x = 0``: no convergence, no noise) with their completeness error
  (``astrobayes.interpret.vanilla_gradients`` / ``integrated_gradients``);
* the model-randomisation sanity check (Adebayo et al. 2018,
  ``astrobayes.interpret.randomisation_check``): only the CNN embedding's weights are
  re-drawn (the trained flow is kept), so the check asks whether the map depends on
  what the embedding learned;
* how |saliency| relates to the map: Spearman rank correlation over pixels with the
  noise-free convergence kappa, with |kappa|, and with the shape-noise map (both
  reconstructed from the simulator's key split);
* a PNG: map, kappa, and the gradient and IG maps of Omega_m and S8 for the mock
  observation at ``THETA_TRUE``.

Run:  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python examples/sbi_saliency.py \
          --num-simulations 1500 --out /tmp/sbi_saliency.png
(a few CPU-minutes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sbi_weak_lensing import NPIX, PRIOR, SHAPE_NOISE, THETA_TRUE, main, simulate

from astrobayes.interpret import (
    integrated_gradients,
    randomisation_check,
    vanilla_gradients,
)
from astrobayes.sbi import simulate_for_prior


class PosteriorMean(eqx.Module):
    """Posterior mean of every parameter as a function of one map.

    Only ``embedding`` holds arrays; the trained estimator sits in a static closure, so
    :func:`randomisation_check` re-draws the embedding's weights and nothing else.
    """

    embedding: eqx.Module
    mean_fn: Callable = eqx.field(static=True)

    def __call__(self, x):
        return self.mean_fn(self.embedding, x)


def posterior_mean_model(npe, key, num_draws: int) -> PosteriorMean:
    """Wrap a trained NPE: ``model(x) -> E[theta | x]`` over ``num_draws`` fixed draws."""

    def mean_fn(embedding, x):
        estimator = eqx.tree_at(lambda n: n.embedding, npe, embedding)
        return estimator.sample(key, x, num_draws).mean(axis=0)

    return PosteriorMean(npe.embedding, mean_fn)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two flattened arrays."""
    rank_a = np.argsort(np.argsort(a.ravel())).astype(float)
    rank_b = np.argsort(np.argsort(b.ravel())).astype(float)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def top_overlap(saliency: np.ndarray, kappa: np.ndarray, fraction: float = 0.05) -> float:
    """Share of the top ``fraction`` |saliency| pixels that are among the top ``fraction``
    of kappa (the convergence peaks); ``fraction`` by chance."""
    count = max(1, int(fraction * saliency.size))
    top_saliency = np.argsort(saliency.ravel())[-count:]
    top_kappa = np.argsort(kappa.ravel())[-count:]
    return np.intersect1d(top_saliency, top_kappa).size / count


def components(key, theta):
    """The simulator's map and its noise-free kappa and noise (same key split)."""
    x = simulate(key, theta)
    noise = SHAPE_NOISE * jax.random.normal(jax.random.split(key)[1], (NPIX, NPIX)) / 0.02
    return np.asarray(x), np.asarray(x - noise), np.asarray(noise)


def figure(x, kappa, grads, ig, names, path: Path) -> None:
    """Map, kappa and the IG map of each parameter, written atomically through io."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrobayes.io import save_figure_atomic

    panels = [("map x (noisy)", x), ("noise-free kappa", kappa)]
    panels += [(f"gradient of E[{n} | x]", grads[j]) for j, n in enumerate(names)]
    panels += [(f"IG of E[{n} | x]", ig[j]) for j, n in enumerate(names)]
    fig, axes = plt.subplots(2, 3, figsize=(9.6, 6.6))
    axes = axes.T.ravel()
    for ax, (title, image) in zip(axes, panels, strict=True):
        limit = np.max(np.abs(image))
        ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure_atomic(path, fig)


def run(args) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = main(
        args.num_simulations,
        num_tests=args.num_tests,
        seed=args.seed,
        num_draws=100,
        max_epochs=args.max_epochs,
        patience=10,
    )
    print(f"training + calibration: CPU {time.process_time() - cpu0:.0f} s")
    key = jax.random.key(args.seed + 1)
    k_model, k_maps, k_obs, k_random, k_random_ig = jax.random.split(key, 5)
    model = posterior_mean_model(result.npe, k_model, args.flow_draws)
    names = PRIOR.names

    # Maps to explain: the mock observation at THETA_TRUE and draws from the prior.
    thetas = np.asarray(THETA_TRUE)[None]
    if args.num_maps > 1:
        drawn = simulate_for_prior(k_maps, PRIOR, simulate, args.num_maps - 1).theta
        thetas = np.vstack([thetas, np.asarray(drawn)])
    map_keys = jax.random.split(k_obs, args.num_maps)
    parts = [components(k, jnp.asarray(t)) for k, t in zip(map_keys, thetas, strict=True)]
    x, kappa, noise = (np.stack(p) for p in zip(*parts, strict=True))
    inputs = jnp.asarray(x)

    t0 = time.process_time()
    grads = np.asarray(vanilla_gradients(model, inputs))  # (maps, params, 64, 64)
    t_grad = time.process_time() - t0
    t0 = time.process_time()
    ig, completeness = integrated_gradients(model, inputs, num_steps=args.ig_steps)
    ig, completeness = np.asarray(ig), np.asarray(completeness)
    t_ig = time.process_time() - t0
    means = np.asarray(jax.vmap(model)(inputs))
    scale = np.abs(means - np.asarray(jax.vmap(model)(jnp.zeros_like(inputs))))
    print(
        f"{args.num_maps} maps: vanilla gradients {t_grad:.1f} s CPU, integrated gradients "
        f"({args.ig_steps} steps) {t_ig:.1f} s CPU; IG completeness |error| / |f(x) - f(0)|: "
        f"median {np.median(np.abs(completeness) / scale):.2e}, "
        f"max {np.max(np.abs(completeness) / scale):.2e}"
    )
    print(f"posterior mean at THETA_TRUE {THETA_TRUE}: {means[0]}")

    print("\nSpearman over pixels, mean (min, max) over maps:")
    print("saliency | parameter | with kappa | with |kappa| | with |noise|")
    for label, maps in (("vanilla", grads), ("IG", ig)):
        for j, name in enumerate(names):
            rows = []
            for target in (kappa, np.abs(kappa), np.abs(noise)):
                values = [spearman(np.abs(maps[m, j]), target[m]) for m in range(args.num_maps)]
                rows.append(
                    f"{np.mean(values):+.3f} ({np.min(values):+.3f}, {np.max(values):+.3f})"
                )
            print(f"{label} | {name} | " + " | ".join(rows))
    values = [
        [spearman(np.abs(x[m]), t[m]) for m in range(args.num_maps)]
        for t in (kappa, np.abs(kappa), np.abs(noise))
    ]
    print(
        "control: |x| itself | "
        + " | ".join(f"{np.mean(v):+.3f} ({np.min(v):+.3f}, {np.max(v):+.3f})" for v in values)
    )
    print(
        "\npeaks: fraction of the top 5% |saliency| pixels among the top 5% of kappa (chance 0.05)"
    )
    for label, maps in (("vanilla", grads), ("IG", ig), ("control |x|", np.abs(x)[:, None])):
        for j in range(maps.shape[1]):
            shares = [top_overlap(np.abs(maps[m, j]), kappa[m]) for m in range(args.num_maps)]
            name = names[j] if maps.shape[1] > 1 else "-"
            print(
                f"{label} | {name} | {np.mean(shares):.3f} ({np.min(shares):.3f}, {np.max(shares):.3f})"
            )
    between = [spearman(np.abs(ig[m, 0]), np.abs(ig[m, 1])) for m in range(args.num_maps)]
    print(f"IG Omega_m vs IG S8 (|.|), mean over maps: {np.mean(between):+.3f}")

    print("\nrandomisation check (embedding weights re-drawn, flow kept):")
    t0 = time.process_time()
    check_vanilla = randomisation_check(k_random, model, inputs)
    check_ig = randomisation_check(
        k_random_ig,
        model,
        inputs,
        saliency_fn=lambda fn, z: integrated_gradients(fn, z, num_steps=args.ig_steps)[0],
    )
    print(
        f"vanilla: Spearman trained vs randomised {check_vanilla.rank_correlation:+.3f} "
        f"(threshold {check_vanilla.threshold}) -> {check_vanilla.status.name}; "
        f"IG: {check_ig.rank_correlation:+.3f} -> {check_ig.status.name} "
        f"({time.process_time() - t0:.1f} s CPU)"
    )
    if args.out is not None:
        figure(x[0], kappa[0], grads[0], ig[0], names, args.out)
        print(f"wrote {args.out}")
    print(
        f"\ntotal CPU {time.process_time() - cpu0:.0f} s, wall {time.perf_counter() - wall0:.0f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-simulations", type=int, default=1500)
    parser.add_argument("--num-tests", type=int, default=50)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument(
        "--num-maps", type=int, default=8, help="maps explained (the mock observation first)"
    )
    parser.add_argument("--flow-draws", type=int, default=128, help="draws per posterior mean")
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="PNG of the maps")
    run(parser.parse_args())
