"""Flow-enhanced MCMC on a multimodal Gaussian mixture with known weights and evidence.

The target: a ``dim``-dimensional mixture of three isotropic Gaussians with unequal
weights (0.5, 0.3, 0.2), unit scales (``--scales 1,0.7,1.3`` gives the hard case where
chains started far away all fall into the widest mode) and modes ``8 sqrt(dim)`` apart, as
the likelihood, under a Gaussian prior ``N(0, 6^2 I)``. The posterior is again a Gaussian
mixture, so its mode weights and ``ln z`` are analytic.

In one process run:

* astrobayes ``run_flow_mcmc`` (MALA + flow proposals, chains started from the prior),
  ``ln z`` from its draws by the learned harmonic mean (``evidence.estimate``) and by
  importance sampling with the production flow;
* NUTS alone (``run_nuts``, chains started from the same prior draws): the negative
  control, whose mode weights are set by where the chains started;
* peers (``bench`` extra, skipped with a message when absent): dynesty static (default
  ``nlive=500``) and nautilus (``Sampler`` defaults).

Prints each method's mode weights (with the flow-MCMC Monte Carlo error from per-chain
batch means), R-hat, ``ln z`` with its error and pull against the truth, likelihood calls
and wall/CPU seconds with peer / astrobayes ratios.

``--task massmap``: variational mass mapping on a masked flat patch (Kaiser-Squires, shape
noise, power-law Gaussian prior) against the exact Wiener-filter posterior: for the
mean-field and low-rank families, the map error in posterior-std units against the
run-to-run Monte Carlo error (two seeds), per-pixel coverage of 68% / 90% intervals over
several data realizations, and the variance ratio to the exact posterior; writes FITS
maps and a PNG to ``--out``.

Usage: OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py [--dim 10] [--peers
dynesty,nautilus] [--seed 0]
       OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py --task massmap [--size 12]
       [--realizations 3] [--out /tmp/massmap]
       OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py --task bnn [--methods
       ensemble,dropout,bbb,laplace,sgld,nuts] [--train 500] [--width 16]
       (Bayesian neural networks on photo-z: benchmarks/probabilistic_bnn.py)
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp, ndtri
from timing import Stopwatch

from astrobayes.evidence import GaussianMixtureTarget, estimate
from astrobayes.sampling import (
    FlowMCMCConfig,
    NUTSConfig,
    SMCConfig,
    run_flow_mcmc,
    run_nuts,
    run_smc,
)

PRIOR_SCALE = 6.0
WEIGHTS = np.array([0.5, 0.3, 0.2])


def mixture(dim: int, scales: np.ndarray):
    """Means, log likelihood, log prior, analytic posterior weights and ln z."""
    means = np.zeros((3, dim))
    means[0], means[1] = -4.0, 4.0
    means[2] = np.tile([4.0, -4.0], dim)[:dim]
    m, w, s = jnp.asarray(means), jnp.asarray(WEIGHTS), jnp.asarray(scales)

    def log_likelihood(x):
        d2 = jnp.sum((x[None, :] - m) ** 2, axis=-1)
        terms = jnp.log(w) - 0.5 * d2 / s**2 - dim * jnp.log(s) - 0.5 * dim * np.log(2 * np.pi)
        return logsumexp(terms)

    def log_prior(x):
        return -0.5 * jnp.sum(x**2) / PRIOR_SCALE**2 - dim * (
            np.log(PRIOR_SCALE) + 0.5 * np.log(2 * np.pi)
        )

    variance = scales**2 + PRIOR_SCALE**2
    log_z_k = (
        np.log(WEIGHTS)
        - 0.5 * np.sum(means**2, axis=1) / variance
        - 0.5 * dim * np.log(2 * np.pi * variance)
    )
    log_z = float(np.logaddexp.reduce(log_z_k))
    return means, log_likelihood, log_prior, np.exp(log_z_k - log_z), log_z


def mode_shares(samples: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of draws nearest each mode, with the error from per-chain batch means."""
    label = np.argmin(((samples[..., None, :] - means) ** 2).sum(-1), axis=-1)
    per_chain = np.stack([np.mean(label == k, axis=1) for k in range(len(means))], axis=1)
    return per_chain.mean(0), per_chain.std(0, ddof=1) / np.sqrt(per_chain.shape[0])


def run_nautilus(log_likelihood, prior_transform, dim, seed):
    """nautilus ``Sampler`` with its defaults; returns (ln z, calls, wall seconds)."""
    from nautilus import Sampler

    loglike = jax.jit(jax.vmap(log_likelihood))
    transform = jax.jit(jax.vmap(prior_transform))
    start = time.perf_counter()
    sampler = Sampler(
        lambda u: np.asarray(transform(jnp.asarray(u, jnp.float32)), np.float64),
        lambda x: np.asarray(loglike(jnp.asarray(x, jnp.float32)), np.float64),
        n_dim=dim,
        vectorized=True,
        pass_dict=False,
        seed=seed,
    )
    sampler.run(verbose=False)
    return float(sampler.log_z), int(sampler.n_like), time.perf_counter() - start


def massmap(args) -> None:
    """Variational families against the exact Wiener-filter posterior."""
    from pathlib import Path

    from scipy import stats

    from astrobayes.io import save_figure_atomic, write_massmap_fits
    from astrobayes.plots.probabilistic import massmap_figure
    from astrobayes.variational import (
        LowRankGaussian,
        MeanFieldGaussian,
        VIConfig,
        fit_variational,
        make_problem,
        mass_map_logdensity,
        simulate_shear,
        wiener_posterior,
    )

    size, pixels = args.size, args.size**2
    problem = make_problem(size)
    families = {
        "mean-field": lambda k: MeanFieldGaussian.init(jnp.zeros(pixels), 0.3),
        f"low-rank (rank {args.rank})": lambda k: LowRankGaussian.init(
            k, jnp.zeros(pixels), rank=args.rank, std=0.3
        ),
    }
    z68, z90 = stats.norm.ppf(0.84), stats.norm.ppf(0.95)
    hits = {name: [0, 0] for name in [*families, "exact"]}
    ratios = {name: [] for name in families}
    key = jax.random.key(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"mass mapping: {size}x{size} patch, {int(problem.mask.sum())} observed pixels, "
        f"noise {problem.noise_std}"
    )
    for r in range(args.realizations):
        data_key, fit_key = jax.random.split(jax.random.fold_in(key, r))
        kappa, data = simulate_shear(data_key, problem)
        exact = wiener_posterior(problem, np.asarray(data))
        sd = np.sqrt(np.diag(exact.covariance))
        truth = np.asarray(kappa, np.float64).ravel()
        logdensity = mass_map_logdensity(problem, data)
        pulls = {"exact": (truth - exact.mean) / sd}
        maps = {}
        for name, build in families.items():
            clock = Stopwatch()
            with clock():
                fits = [
                    fit_variational(
                        jax.random.fold_in(fit_key, s),
                        logdensity,
                        build(fit_key),
                        config=VIConfig(),
                    )
                    for s in range(2 if r == 0 else 1)
                ]
            fit = fits[0]
            pulls[name] = (truth - fit.mean) / fit.std
            ratios[name].append(np.mean(fit.std**2 / sd**2))
            maps[name] = (fit.mean.reshape(size, size), fit.std.reshape(size, size))
            if r == 0:
                mc = np.sqrt(np.mean(((fits[0].mean - fits[1].mean) / sd) ** 2 / 2))
                error = np.sqrt(
                    np.mean(((0.5 * (fits[0].mean + fits[1].mean) - exact.mean) / sd) ** 2)
                )
                print(
                    f"  {name}: RMS(mean of 2 runs - Wiener) = {error:.4f} posterior std; "
                    f"its Monte Carlo error {mc / np.sqrt(2):.4f} (ratio {error / (mc / np.sqrt(2)):.2f}); "
                    f"status {fit.status.name}; {clock.wall:.0f} s wall for 2 fits"
                )
                if name == "mean-field":
                    optimum = np.mean(fit.std**2 * np.diag(exact.precision))
                    print(
                        f"    mean-field variance / analytic mean-field optimum 1/Lambda_ii: {optimum:.4f}"
                    )
        for name, pull in pulls.items():
            hits[name][0] += int(np.sum(np.abs(pull) < z68))
            hits[name][1] += int(np.sum(np.abs(pull) < z90))
        if r == 0:
            write_massmap_fits(
                out / "wiener.fits",
                exact.mean.reshape(size, size),
                sd.reshape(size, size),
                truth=truth.reshape(size, size),
            )
            for name, (mean, std) in maps.items():
                write_massmap_fits(out / f"{name.split()[0]}.fits", mean, std)
            save_figure_atomic(
                out / "massmaps.png",
                massmap_figure(
                    truth.reshape(size, size),
                    exact.mean.reshape(size, size),
                    sd.reshape(size, size),
                    maps,
                ),
            )
    total = args.realizations * pixels
    print(
        f"\nper-pixel coverage over {args.realizations} realizations x {pixels} pixels "
        f"(binomial error ~{np.sqrt(0.68 * 0.32 / total):.3f}, pixels correlated):"
    )
    print("family | coverage 68% | coverage 90% | variance / exact")
    for name, (c68, c90) in hits.items():
        ratio = np.mean(ratios[name]) if name in ratios else 1.0
        print(f"{name} | {c68 / total:.3f} | {c90 / total:.3f} | {ratio:.3f}")
    print(f"FITS and PNG in {out}")


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mixture", "massmap", "bnn"), default="mixture")
    parser.add_argument("--size", type=int, default=12)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--realizations", type=int, default=3)
    parser.add_argument("--out", default="massmap_outputs")
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--peers", default="dynesty,nautilus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scales", default="1,1,1")
    parser.add_argument("--skip-smc", action="store_true", help="skip the preconditioned SMC")
    args, rest = parser.parse_known_args()
    if args.task == "bnn":  # the BNN section has its own options
        from probabilistic_bnn import main as bnn

        bnn([*rest, f"--seed={args.seed}"])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.task == "massmap":
        massmap(args)
        return
    dim = args.dim
    scales = np.array([float(v) for v in args.scales.split(",")])
    means, log_likelihood, log_prior, true_weights, true_log_z = mixture(dim, scales)

    def log_posterior(x):
        return log_likelihood(x) + log_prior(x)

    key = jax.random.key(args.seed)
    init_key, flow_key, evidence_key, nuts_key = jax.random.split(key, 4)
    smc_key = jax.random.fold_in(key, 5)
    init = PRIOR_SCALE * jax.random.normal(init_key, (args.chains, dim))
    print(
        f"{dim}-d mixture (scales {scales}): true posterior weights {np.round(true_weights, 4)}, ln z = {true_log_z:.4f}"
    )
    rows = []

    clock = Stopwatch()
    with clock():
        result = run_flow_mcmc(
            flow_key, log_posterior, init, config=FlowMCMCConfig(num_chains=args.chains)
        )
        evidence = estimate(evidence_key, result.to_chains())
    mixture_evidence = estimate(evidence_key, result.to_chains(), target=GaussianMixtureTarget())
    shares, share_err = mode_shares(result.samples, means)
    print(
        f"\nflow MCMC: status {result.status.name} {[m.name for m in result.messages]}; "
        f"max R-hat {np.max(result.rhat):.4f}, min ESS {np.min(result.ess):.0f}, "
        f"local/global acceptance {result.local_acceptance.mean():.3f}/"
        f"{result.global_acceptance.mean():.3f}"
    )
    print(f"  mode weights {np.round(shares, 4)} +- {np.round(share_err, 4)}")
    relative = np.abs(shares - true_weights) / true_weights
    print(f"  relative weight errors {np.round(relative, 4)} (acceptance: all < 0.05)")
    print(
        f"  ln z learned harmonic mean {evidence.log_evidence:.4f} +- "
        f"{evidence.log_evidence_std:.4f} (pull {(evidence.log_evidence - true_log_z) / evidence.log_evidence_std:+.2f}, "
        f"status {evidence.status.name})"
    )
    print(
        f"    (flow target: T {evidence.temperature}, Pareto k {evidence.pareto_k:.2f}, ratio "
        f"kurtosis {evidence.kurtosis:.0f}, variance of variance {evidence.variance_of_variance:.3f})"
    )
    print(
        f"  ln z learned harmonic mean, Gaussian-mixture target {mixture_evidence.log_evidence:.4f} +- "
        f"{mixture_evidence.log_evidence_std:.4f} (pull "
        f"{(mixture_evidence.log_evidence - true_log_z) / mixture_evidence.log_evidence_std:+.2f}, "
        f"status {mixture_evidence.status.name}, T {mixture_evidence.temperature}, "
        f"Pareto k {mixture_evidence.pareto_k:.2f})"
    )
    print(
        f"  ln z flow importance sampling {result.flow_log_evidence:.4f} +- "
        f"{result.flow_log_evidence_std:.4f} (pull "
        f"{(result.flow_log_evidence - true_log_z) / result.flow_log_evidence_std:+.2f}, "
        f"Pareto k {result.flow_pareto_k:.2f})"
    )
    rows.append(
        ("astrobayes flow MCMC + LHM", result.num_logdensity_evaluations, clock.wall, clock.cpu)
    )

    if not args.skip_smc:
        smc_clock = Stopwatch()
        smc_init = PRIOR_SCALE * jax.random.normal(jax.random.fold_in(init_key, 1), (2000, dim))
        with smc_clock():
            smc = run_smc(smc_key, log_likelihood, log_prior, smc_init, config=SMCConfig())
        smc_shares = np.mean(
            np.argmin(((smc.samples[:, None, :] - means) ** 2).sum(-1), 1)[:, None] == np.arange(3),
            0,
        )
        print(
            f"\npreconditioned SMC (2000 particles, flow): status {smc.status.name}; "
            f"{len(smc.temperatures) - 1} temperatures; mode weights {np.round(smc_shares, 4)} "
            f"(relative errors {np.round(np.abs(smc_shares - true_weights) / true_weights, 3)}); "
            f"ln z {smc.log_evidence:.4f} +- {smc.log_evidence_std:.4f} (pull "
            f"{(smc.log_evidence - true_log_z) / smc.log_evidence_std:+.2f})"
        )
        rows.append(
            (
                "astrobayes preconditioned SMC",
                smc.num_logdensity_evaluations,
                smc_clock.wall,
                smc_clock.cpu,
            )
        )

    nuts_clock = Stopwatch()
    with nuts_clock():
        nuts = run_nuts(
            nuts_key,
            log_posterior,
            init,
            config=NUTSConfig(num_chains=args.chains, num_warmup=300, num_samples=500),
        )
    nuts_shares, _ = mode_shares(nuts.samples, means)
    print(
        f"\nNUTS alone (negative control): status {nuts.status.name}; max R-hat "
        f"{np.max(nuts.rhat):.3f}; mode weights {np.round(nuts_shares, 4)}; relative errors "
        f"{np.round(np.abs(nuts_shares - true_weights) / true_weights, 3)}"
    )

    def prior_transform(u):
        return PRIOR_SCALE * ndtri(jnp.clip(u, 1e-12, 1 - 1e-12))

    peers = [p for p in args.peers.split(",") if p]
    if "dynesty" in peers:
        try:
            from nested_peers import run_dynesty

            peer_clock = Stopwatch()
            with peer_clock():
                peer = run_dynesty(log_likelihood, prior_transform, dim, seed=args.seed)
            print(
                f"\n{peer.name}: ln z {peer.log_evidence:.4f} +- {peer.log_evidence_std:.4f} "
                f"(pull {(peer.log_evidence - true_log_z) / peer.log_evidence_std:+.2f})"
            )
            rows.append((peer.name, peer.num_likelihood_calls, peer_clock.wall, peer_clock.cpu))
        except ImportError:
            print("\ndynesty not installed: skipped (pip install dynesty)")
    if "nautilus" in peers:
        try:
            peer_clock = Stopwatch()
            with peer_clock():
                log_z, calls, _ = run_nautilus(log_likelihood, prior_transform, dim, args.seed)
            print(
                f"\nnautilus (defaults): ln z {log_z:.4f} (no error in its API; truth {true_log_z:.4f})"
            )
            rows.append(("nautilus (defaults)", calls, peer_clock.wall, peer_clock.cpu))
        except ImportError:
            print("\nnautilus not installed: skipped (pip install nautilus-sampler)")
    print("\nmethod | likelihood calls | calls / ours | wall s | CPU s | CPU / ours")
    base_calls, base_cpu = rows[0][1], rows[0][3]
    for name, calls, wall, cpu in rows:
        print(
            f"{name} | {calls} | {calls / base_calls:.2f} | {wall:.1f} | {cpu:.1f} | {cpu / base_cpu:.2f}"
        )


if __name__ == "__main__":
    main()
