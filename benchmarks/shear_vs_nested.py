"""Cosmic shear at d = 14 and 16: astrobayes (NUTS + learned harmonic mean) vs nested samplers.

The same emulated DES-Y1-like likelihood and prior (``astrobayes.cosmology.shear``) through

* astrobayes ``compare`` (NUTS + learned harmonic mean; wall time includes JIT compilation),
* dynesty's default static ``NestedSampler`` (nlive 500),
* BlackJAX nested slice sampling (``blackjax.nss``, 500 live points),

for LCDM (14 parameters) and w0waCDM (16), in one process run. Prints ln z ± sigma of each,
the pull of each peer against astrobayes in combined sigma, ln B (w0waCDM vs LCDM) of each,
and wall-time ratios, raw and extrapolated to equal ln z accuracy (a nested sampler's
sigma falls as nlive^-1/2 while its time grows as nlive). Peer runners: ``benchmarks/nested_peers.py``.

Usage: .venv/bin/python benchmarks/shear_vs_nested.py [--nlive 500] [--num-samples 1000]
       [--skip dynesty] [--skip blackjax]
Needs the bench extra (dynesty, blackjax).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nested_peers import PeerResult, run_blackjax_ns, run_dynesty  # noqa: E402

from astrobayes.comparison import compare  # noqa: E402
from astrobayes.cosmology.shear import shear_models, shear_problems  # noqa: E402
from astrobayes.io import des_y1_like_data, des_y1_like_emulator  # noqa: E402
from astrobayes.sampling import NUTSConfig  # noqa: E402


def run_astrobayes(key, model, config) -> PeerResult:
    """compare() on one model, timed end to end."""
    start = time.perf_counter()
    result = compare(key, [model], sampling=config)
    report = result.models[model.name]
    wall = time.perf_counter() - start
    return PeerResult(
        f"astrobayes NUTS+LHM ({config.num_chains}x{config.num_samples})",
        report.log_evidence,
        report.log_evidence_std,
        wall,
        -1,  # gradient evaluations are not reported by run_nuts
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nlive", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=8)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", action="append", default=[], choices=["dynesty", "blackjax"])
    args = parser.parse_args()

    config = NUTSConfig(args.num_chains, args.num_warmup, args.num_samples)
    key = jax.random.key(args.seed)
    emulator, data = des_y1_like_emulator(), des_y1_like_data()
    models = shear_models(emulator, data)
    problems = shear_problems(emulator, data)
    results: dict[str, dict[str, PeerResult]] = {}
    for index, (model, problem) in enumerate(zip(models, problems, strict=True)):
        ndim = len(problem.names)
        model_key = jax.random.fold_in(key, index)
        row = {"astrobayes": run_astrobayes(model_key, model, config)}
        print(f"[{problem.name}, d={ndim}] {row['astrobayes']}", flush=True)
        if "dynesty" not in args.skip:
            row["dynesty"] = run_dynesty(
                problem.log_likelihood_fn,
                problem.prior_transform_fn,
                ndim,
                nlive=args.nlive,
                seed=args.seed,
            )
            print(f"[{problem.name}, d={ndim}] {row['dynesty']}", flush=True)
        if "blackjax" not in args.skip:
            row["blackjax"] = run_blackjax_ns(
                jax.random.fold_in(model_key, 1),
                problem.log_likelihood_fn,
                problem.prior_transform_fn,
                ndim,
                num_live=args.nlive,
            )
            print(f"[{problem.name}, d={ndim}] {row['blackjax']}", flush=True)
        results[problem.name] = row

    print("\nln z ± sigma, wall time, likelihood calls (-1: not reported)")
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
                    f"time ratio peer/astrobayes {res.wall_s / ours.wall_s:.2f} "
                    f"(at equal sigma, extrapolated: {equal / ours.wall_s:.0f})"
                )
            print(
                f"  {name:<8} {peer:<10} {res.log_evidence:9.2f} ± {res.log_evidence_std:.2f}  "
                f"{res.wall_s:7.0f} s  {res.num_likelihood_calls:>9d}  {pull}"
            )
    print("\nln B (w0wacdm vs lcdm) and total wall time")
    for peer in results["lcdm"]:
        a, b = results["w0wacdm"][peer], results["lcdm"][peer]
        log_b = a.log_evidence - b.log_evidence
        std = np.hypot(a.log_evidence_std, b.log_evidence_std)
        print(f"  {peer:<10} ln B {log_b:+.2f} ± {std:.2f}   total {a.wall_s + b.wall_s:.0f} s")


if __name__ == "__main__":
    main()
