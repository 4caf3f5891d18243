"""Cosmic shear: astrobayes (NUTS + learned harmonic mean) vs nested samplers, LCDM vs w0waCDM.

The same emulated likelihood and prior (``astrobayes.cosmology.shear``) of one survey
(``--survey``: ``des_y1_like``, 14 and 16 parameters, or ``lsst_y1_like``, 28 and 30) through

* astrobayes ``compare`` (NUTS + learned harmonic mean; wall time includes JIT compilation),
* dynesty's default static ``NestedSampler`` (nlive 500),
* BlackJAX nested slice sampling (``blackjax.nss``, 500 live points),

for LCDM and w0waCDM, in one process run. Prints ln z ± sigma of each, wall and CPU
seconds, the pull of each peer against astrobayes in combined sigma, ln B (w0waCDM vs LCDM)
of each, and time ratios, raw and extrapolated to equal ln z accuracy (a nested sampler's
sigma falls as nlive^-1/2 while its time grows as nlive). ``--long-nlive N`` also runs the
peers with N live points, to measure rather than extrapolate. ``--check-draws N`` (needs
jax-cosmo, the ``cosmo`` extra) compares the emulated ln L with the jax-cosmo one at N of
astrobayes' posterior draws of each model and prints the ln z shift (importance
reweighting). Peer runners: ``benchmarks/nested_peers.py``.

Usage: .venv/bin/python benchmarks/shear_vs_nested.py [--survey lsst_y1_like]
       [--nlive 500] [--num-samples 1000] [--skip dynesty] [--skip blackjax]
       [--long-nlive 2000] [--check-draws 100]
       [--evidence-method bridge_sampling] [--dense-mass]
       [--mass-matrix-estimator fisher]
Needs the bench extra (dynesty, blackjax).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nested_peers import PeerResult, run_blackjax_ns, run_dynesty  # noqa: E402

from astrobayes.comparison import compare  # noqa: E402
from astrobayes.cosmology.shear import (  # noqa: E402
    make_shear_log_likelihood,
    shear_models,
    shear_problems,
)
from astrobayes.cosmology.shear_survey import SURVEYS  # noqa: E402
from astrobayes.evidence import estimate  # noqa: E402
from astrobayes.io import shipped_shear_data, shipped_shear_emulator  # noqa: E402
from astrobayes.sampling import NUTSConfig  # noqa: E402
from astrobayes.sampling.kernel import (  # noqa: E402
    INITIAL_METRICS,
    MASS_MATRIX_ESTIMATORS,
    MAX_TREE_DEPTH,
    METRIC_SHRINKAGES,
)


def run_astrobayes(key, model, config, evidence_method="learned_harmonic_mean"):
    """compare() on one model, timed end to end; returns (PeerResult, its ModelReport)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = compare(key, [model], sampling=config, evidence_method=evidence_method)
    report = result.models[model.name]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    gradients = result.to_dict()["models"][model.name]["num_gradient_evaluations"]
    method = "LHM" if evidence_method == "learned_harmonic_mean" else "bridge"
    peer = PeerResult(
        f"astrobayes NUTS+{method} ({config.num_chains}x{config.num_samples})",
        report.log_evidence,
        report.log_evidence_std,
        wall,
        # NUTS' density-and-gradient evaluations (leapfrog steps, warm-up included): the
        # machine-independent cost beside the peers' likelihood calls
        -1 if gradients is None else gradients,
        cpu_s=cpu,
    )
    return peer, report


class JaxCosmoCheck:
    """|Delta ln L| and the ln z shift at posterior draws (jax-cosmo forward, float32).

    Both models' draws go through one compiled jax-cosmo program (LCDM draws get
    ``w0 = -1``, ``wa = 0``), so jax-cosmo is compiled once.
    """

    def __init__(self, emulator, data, survey):
        from astrobayes.cosmology.shear_jax_cosmo import jax_cosmo_log_likelihood

        true_one = jax_cosmo_log_likelihood(data, survey)
        self.true_fn = jax.jit(lambda batch: jax.lax.map(true_one, batch, batch_size=8))
        self.emulated = jax.jit(jax.vmap(make_shear_log_likelihood(emulator, data, survey)))

    def __call__(self, report, num_draws, seed):
        from astrobayes.cosmology.shear_jax_cosmo import log_evidence_shift

        flat = {k: np.asarray(v).reshape(-1) for k, v in report.posterior.items()}
        size = next(iter(flat.values())).size
        pick = np.random.default_rng(seed).choice(size, size=num_draws, replace=False)
        draws = {"w0": np.full(num_draws, -1.0), "wa": np.zeros(num_draws)}
        draws.update({k: v[pick] for k, v in flat.items()})
        draws = {k: jnp.asarray(v, jnp.float32) for k, v in sorted(draws.items())}
        start, cpu = time.perf_counter(), time.process_time()
        true = np.asarray(self.true_fn(draws), np.float64)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        delta = true - np.asarray(self.emulated(draws), np.float64)
        shift, shift_std = log_evidence_shift(delta)
        return (
            f"|Delta ln L| median {np.median(np.abs(delta)):.3f}, 99% "
            f"{np.percentile(np.abs(delta), 99):.3f}, max {np.abs(delta).max():.3f}; ln z "
            f"shift {shift:+.3f} ± {shift_std:.3f} (sigma_ln z {report.log_evidence_std:.3f}); "
            f"jax-cosmo {wall:.0f} s wall, {cpu:.0f} CPU-s for {num_draws} draws "
            "(compilation included the first time)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=sorted(SURVEYS), default="des_y1_like")
    parser.add_argument("--nlive", type=int, default=500)
    parser.add_argument("--long-nlive", type=int, default=None)
    parser.add_argument("--num-chains", type=int, default=8)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-draws", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["lcdm", "w0wacdm"])
    parser.add_argument("--skip", action="append", default=[], choices=["dynesty", "blackjax"])
    parser.add_argument(
        "--dynesty-max-seconds",
        type=float,
        default=None,
        help="stop dynesty after this many wall seconds if unfinished (reported as a lower "
        "bound on its time)",
    )
    parser.add_argument(
        "--evidence-method",
        choices=["learned_harmonic_mean", "bridge_sampling"],
        default="learned_harmonic_mean",
        help="astrobayes' evidence estimator; with bridge_sampling the learned harmonic "
        "mean on the same chains is printed too",
    )
    parser.add_argument(
        "--dense-mass",
        action="store_true",
        help="adapt a dense inverse mass matrix in astrobayes' NUTS (default: diagonal)",
    )
    parser.add_argument(
        "--mass-matrix-estimator",
        choices=MASS_MATRIX_ESTIMATORS,
        default="welford",
        help="astrobayes' NUTS metric estimator (NUTSConfig.mass_matrix_estimator)",
    )
    parser.add_argument(
        "--pooled-metric",
        action="store_true",
        help="estimate the NUTS metric from all chains' warm-up windows together "
        "(NUTSConfig.pooled_metric)",
    )
    parser.add_argument(
        "--initial-metric",
        choices=INITIAL_METRICS,
        default="identity",
        help="the NUTS metric before the first slow window (NUTSConfig.initial_metric)",
    )
    parser.add_argument(
        "--metric-shrinkage",
        choices=METRIC_SHRINKAGES,
        default="stan",
        help="how each warm-up window's covariance is regularised (NUTSConfig.metric_shrinkage)",
    )
    parser.add_argument(
        "--pooled-step-size",
        action="store_true",
        help="adapt one step size for all chains from their mean acceptance "
        "(NUTSConfig.pooled_step_size)",
    )
    parser.add_argument(
        "--max-tree-depth",
        type=int,
        default=MAX_TREE_DEPTH,
        help="at most 2**depth - 1 leapfrog steps per NUTS transition (NUTSConfig.max_tree_depth)",
    )
    args = parser.parse_args()

    survey = SURVEYS[args.survey]
    peers = [p for p in ("dynesty", "blackjax") if p not in args.skip]
    for peer, module in (("dynesty", "dynesty"), ("blackjax", "blackjax")):
        if peer in peers and importlib.util.find_spec(module) is None:
            print(f"{module} is not installed (bench extra): skipping it")
            peers.remove(peer)
    if args.check_draws and importlib.util.find_spec("jax_cosmo") is None:
        print("jax-cosmo is not installed (cosmo extra): skipping the check against it")
        args.check_draws = 0
    config = NUTSConfig(
        args.num_chains,
        args.num_warmup,
        args.num_samples,
        dense_mass=args.dense_mass,
        mass_matrix_estimator=args.mass_matrix_estimator,
        pooled_metric=args.pooled_metric,
        initial_metric=args.initial_metric,
        metric_shrinkage=args.metric_shrinkage,
        pooled_step_size=args.pooled_step_size,
        max_tree_depth=args.max_tree_depth,
    )
    key = jax.random.key(args.seed)
    emulator, data = shipped_shear_emulator(args.survey), shipped_shear_data(args.survey)
    models = shear_models(emulator, data, survey)
    problems = shear_problems(emulator, data, survey)
    check = JaxCosmoCheck(emulator, data, survey) if args.check_draws else None
    results: dict[str, dict[str, PeerResult]] = {}
    verdicts = {}  # astrobayes' status per model
    for index, (model, problem) in enumerate(zip(models, problems, strict=True)):
        if problem.name not in args.models:
            continue
        ndim = len(problem.names)
        tag = f"[{args.survey} {problem.name}, d={ndim}]"
        model_key = jax.random.fold_in(key, index)
        row = {}
        row["astrobayes"], report = run_astrobayes(model_key, model, config, args.evidence_method)
        verdicts[problem.name] = report.status
        print(f"{tag} {row['astrobayes']._replace(samples=None)}", flush=True)
        # the estimate's own verdict: a failure status (e.g. Pareto k > 0.7) means the
        # ln z and its error bar above are not to be trusted, whatever the peers say
        evidence = report.evidence
        print(
            f"{tag} astrobayes status {report.status.value!r}; evidence Pareto k "
            f"{evidence.pareto_k:.2f}, temperature {evidence.temperature:g}; max split R-hat "
            f"{np.max(report.sampling.rhat):.4f}, min ESS {np.min(report.sampling.ess):.0f}",
            flush=True,
        )
        computed = getattr(report.sampling, "num_computed_evaluations", None)
        counted = getattr(report.sampling, "num_gradient_evaluations", None)
        if computed is not None and counted is not None:
            # the vectorized program runs every chain as long as the longest trajectory
            print(
                f"{tag} astrobayes NUTS evaluations computed (all chains, vectorized): "
                f"{computed}, {computed / max(int(np.sum(counted)), 1):.2f}x the per-chain sum",
                flush=True,
            )
        if args.evidence_method == "bridge_sampling":
            # the learned harmonic mean on the same chains with the same evidence key
            cpu = time.process_time()
            evidence_key = jax.random.split(jax.random.fold_in(model_key, 0), 3)[2]
            lhm = estimate(evidence_key, report.sampling.to_chains())
            print(
                f"{tag} same chains, learned harmonic mean: ln z {lhm.log_evidence:.3f} ± "
                f"{lhm.log_evidence_std:.3f}, status {lhm.status.name.lower()} (Pareto k "
                f"{lhm.pareto_k:.2f}, T {lhm.temperature:g}), "
                f"{time.process_time() - cpu:.0f} CPU-s",
                flush=True,
            )
        if check is not None:
            message = check(report, args.check_draws, args.seed)
            print(f"{tag} emulator vs jax-cosmo: {message}", flush=True)
        runs = [(args.nlive, "")]
        if args.long_nlive:
            runs.append((args.long_nlive, f"@{args.long_nlive}"))
        for nlive, suffix in runs:
            if "dynesty" in peers:
                res = run_dynesty(
                    problem.log_likelihood_fn,
                    problem.prior_transform_fn,
                    ndim,
                    nlive=nlive,
                    seed=args.seed,
                    max_wall_s=args.dynesty_max_seconds,
                )
                row["dynesty" + suffix] = res._replace(samples=None, log_weights=None)
                print(f"{tag} {row['dynesty' + suffix]}", flush=True)
            if "blackjax" in peers:
                row["blackjax" + suffix] = run_blackjax_ns(
                    jax.random.fold_in(model_key, 1),
                    problem.log_likelihood_fn,
                    problem.prior_transform_fn,
                    ndim,
                    num_live=nlive,
                )
                print(f"{tag} {row['blackjax' + suffix]}", flush=True)
        results[problem.name] = row

    print(
        "\nln z ± sigma, wall s, CPU s, likelihood calls (astrobayes: NUTS density + gradient "
        "evaluations, warm-up included, without the evidence stage's density evaluations; -1: not "
        "reported)"
    )
    for name, row in results.items():
        ours = row["astrobayes"]
        for peer, res in row.items():
            pull = ""
            if peer != "astrobayes":
                combined = np.hypot(ours.log_evidence_std, res.log_evidence_std)
                # Nested sampling: sigma ~ nlive^-1/2 and time ~ nlive, so the peer's time
                # to reach astrobayes' sigma is wall * (sigma_peer / sigma_ours)^2.
                equal = res.wall_s * (res.log_evidence_std / ours.log_evidence_std) ** 2
                pull = (
                    f"pull {(res.log_evidence - ours.log_evidence) / combined:+.2f} sigma, "
                    f"peer/astrobayes wall {res.wall_s / ours.wall_s:.2f}, "
                    f"CPU {res.cpu_s / ours.cpu_s:.2f} "
                    f"(wall at equal sigma, extrapolated: {equal / ours.wall_s:.0f})"
                )
            flag = ""
            if peer == "astrobayes" and not verdicts[name].is_ok:
                flag = f"  [{verdicts[name].name}: {verdicts[name].severity.name.lower()}]"
            print(
                f"  {name:<8} {peer:<16} {res.log_evidence:10.3f} ± {res.log_evidence_std:.3f}"
                f"  {res.wall_s:7.0f} {res.cpu_s:7.0f}  {res.num_likelihood_calls:>9d}  {pull}"
                f"{flag}"
            )
    if len(results) == 2:
        print("\nln B (w0wacdm vs lcdm) and total wall / CPU seconds")
        for peer in results["lcdm"]:
            if peer not in results["w0wacdm"]:
                continue
            a, b = results["w0wacdm"][peer], results["lcdm"][peer]
            log_b = a.log_evidence - b.log_evidence
            std = np.hypot(a.log_evidence_std, b.log_evidence_std)
            print(
                f"  {peer:<16} ln B {log_b:+.3f} ± {std:.3f}   total {a.wall_s + b.wall_s:.0f} s "
                f"wall, {a.cpu_s + b.cpu_s:.0f} CPU-s"
            )


if __name__ == "__main__":
    main()
