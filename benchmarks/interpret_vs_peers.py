"""astrobayes.interpret against its peers, side by side in one process.

Sections (``--sections laws,mi,bmi,chronometers``):

* ``laws``: ten noisy known laws of complexity <= 7 (listed in ``LAWS``; 30 points on
  x in [0.5, 3], Gaussian noise of 1% of the range of y, per-point sigma given). Ours:
  exhaustive search to ``--max-complexity`` (default 7) with the default operators,
  ranked by Laplace evidence (and, alongside, by evidence + ESR structure prior and by
  description length). The rank of the truth is that of the first expression with no
  more parameters than the true tree whose best chi-square equals (to 1e-4) that of the
  true tree refitted independently with scipy (6 starts): the same function family.
  Peer: gplearn's
  ``SymbolicRegressor`` (genetic programming; skipped with a message if missing). Its
  programs carry fixed numeric constants rather than fitted parameters, so it is scored
  by accuracy (RMS deviation from the noiseless truth in units of sigma) and time.
* ``mi``: GMM mutual information vs ``gmm-mi`` (GPL peer, ``bench`` extra) on correlated
  Gaussians (n = 2000): estimate, error, truth, wall and CPU time of each.
* ``bmi``: seven tasks of the benchmark-mi suite (samples drawn by benchmark-mi in its
  own environment, read from ``--bmi-samples``): bias and z-scores of our estimate.
* ``chronometers``: H(z) of the 32 cosmic chronometers of the Moresco et al. (2022)
  compilation (Living Rev. Relativ. 25, 6; arXiv:2201.07241), with x = 1 + z and
  y = H / (100 km/s/Mpc), ranked by evidence; the top 10 are printed.

Usage: nice -n 10 python benchmarks/interpret_vs_peers.py [--sections laws]
       [--max-complexity 7] [--laws 0,1,...]
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from astrobayes.interpret import (  # noqa: E402
    MIConfig,
    SymbolicConfig,
    evaluate_expression,
    mutual_information,
    symbolic_regression,
    unique_expressions,
)
from astrobayes.interpret.symbolic import _count_parameters, _size  # noqa: E402

#: name, complexity, number of parameters, function
LAWS = [
    ("a0**x (a0=1.8)", ("pow", ("a",), ("x",)), lambda x: 1.8**x),
    ("a0 + a1*x (0.8, 1.3)", ("+", ("a",), ("*", ("a",), ("x",))), lambda x: 0.8 + 1.3 * x),
    ("a0*x**a1 (1.2, 1.6)", ("*", ("a",), ("pow", ("x",), ("a",))), lambda x: 1.2 * x**1.6),
    ("a0 + a1/x (0.5, 2.2)", ("+", ("a",), ("/", ("a",), ("x",))), lambda x: 0.5 + 2.2 / x),
    (
        "a0*exp(a1*x) (2.5, -0.7)",
        ("*", ("a",), ("exp", ("*", ("a",), ("x",)))),
        lambda x: 2.5 * np.exp(-0.7 * x),
    ),
    (
        "a0 + a1*log(x) (0.4, 1.5)",
        ("+", ("a",), ("*", ("a",), ("log", ("x",)))),
        lambda x: 0.4 + 1.5 * np.log(x),
    ),
    (
        "x*exp(a0*x) (-0.9)",
        ("*", ("x",), ("exp", ("*", ("a",), ("x",)))),
        lambda x: x * np.exp(-0.9 * x),
    ),
    (
        "log(a0 + a1*x) (0.7, 2.1)",
        ("log", ("+", ("a",), ("*", ("a",), ("x",)))),
        lambda x: np.log(0.7 + 2.1 * x),
    ),
    (
        "a0*x/(a1 + x) (2.0, 0.6)",
        ("/", ("*", ("a",), ("x",)), ("+", ("a",), ("x",))),
        lambda x: 2.0 * x / (0.6 + x),
    ),
    (
        "a0 + a1*x*x (0.3, 0.45)",
        ("+", ("a",), ("*", ("a",), ("*", ("x",), ("x",)))),
        lambda x: 0.3 + 0.45 * x * x,
    ),
]
"""Name, the true tree (complexity = its node count) and the noiseless law."""


#: Moresco et al. (2022) compilation of cosmic-chronometer H(z) [km/s/Mpc], as used by
#: ESR (Bartlett, Desmond & Ferreira 2022): z, H, sigma_H
CHRONOMETERS = np.array([
    [0.07, 69.0, 19.6], [0.09, 69.0, 12.0], [0.12, 68.6, 26.2], [0.17, 83.0, 8.0],
    [0.179, 75.0, 4.0], [0.199, 75.0, 5.0], [0.20, 72.9, 29.6], [0.27, 77.0, 14.0],
    [0.28, 88.8, 36.6], [0.352, 83.0, 14.0], [0.38, 83.0, 13.5], [0.40, 95.0, 17.0],
    [0.4004, 77.0, 10.2], [0.425, 87.1, 11.2], [0.445, 92.8, 12.9], [0.47, 89.0, 49.6],
    [0.4783, 80.9, 9.0], [0.48, 97.0, 62.0], [0.593, 104.0, 13.0], [0.68, 92.0, 8.0],
    [0.75, 98.8, 33.6], [0.781, 105.0, 12.0], [0.875, 125.0, 17.0], [0.88, 90.0, 40.0],
    [0.90, 117.0, 23.0], [1.037, 154.0, 20.0], [1.30, 168.0, 17.0], [1.363, 160.0, 33.6],
    [1.43, 177.0, 18.0], [1.53, 140.0, 14.0], [1.75, 202.0, 40.0], [1.965, 186.5, 50.4],
])  # fmt: skip


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _best_chi2(tree, x, y, sigma):
    """Chi-square of ``tree`` refitted to ``(x, y)`` (several starts, scipy)."""
    from scipy.optimize import least_squares

    p = _count_parameters(tree)

    def residual(params):
        values = np.asarray(evaluate_expression(tree, params, x), np.float64)
        return np.nan_to_num((values - y) / sigma, nan=1e6, posinf=1e6, neginf=-1e6)

    rng = np.random.default_rng(0)
    best = np.inf
    for start in [np.ones(p)] + [rng.normal(0, 2, p) for _ in range(5)]:
        fit = least_squares(residual, start, xtol=1e-12, ftol=1e-12, max_nfev=500)
        best = min(best, float(np.sum(fit.fun**2)))
    return best


def laws_section(args) -> None:
    x = np.linspace(0.5, 3.0, 30)
    rng = np.random.default_rng(args.seed)
    config = SymbolicConfig(
        max_complexity=args.max_complexity,
        num_starts=args.num_starts,
        num_iterations=args.num_iterations,
    )
    print(config)
    selected = [int(i) for i in args.laws.split(",")] if args.laws else range(len(LAWS))
    recovered = {"log_evidence": 0, "log_posterior": 0, "description_length": 0}
    rows = []
    start = _clock()
    trees, num_enumerated = unique_expressions(x, config=config)
    wall, cpu = _since(start)
    print(
        f"{num_enumerated} trees enumerated, {len(trees)} unique ({wall:.0f} s wall, {cpu:.0f} s CPU)"
    )
    try:
        from gplearn.genetic import SymbolicRegressor
    except ImportError:
        SymbolicRegressor = None
        print("gplearn is not installed: peer skipped (pip install gplearn)")
    for number in selected:
        name, tree, law = LAWS[number]
        complexity = _size(tree)
        truth = law(x)
        sigma = np.full(x.size, 0.01 * np.ptp(truth))
        y = truth + sigma * rng.normal(size=x.size)
        start = _clock()
        result = symbolic_regression(
            jax.random.key(number), x, y, sigma, config=config, expressions=trees
        )
        wall, cpu = _since(start)
        truth_tree = LAWS[number][1]
        num_params = _count_parameters(truth_tree)
        truth_chi2 = _best_chi2(truth_tree, x, y, sigma)

        def is_truth(e, truth_chi2=truth_chi2, num_params=num_params):
            # the same function family reaches the same best chi-square
            return len(e.parameters) <= num_params and abs(e.chi2 - truth_chi2) <= 1e-4 * max(
                truth_chi2, 1.0
            )

        ranks = {}
        for score, sign in (
            ("log_evidence", -1),
            ("log_posterior", -1),
            ("description_length", 1),
        ):
            ordered = sorted(result.equations, key=lambda e, s=score, g=sign: g * getattr(e, s))
            ranks[score] = (
                next((r for r, e in enumerate(ordered, start=1) if is_truth(e)), None),
                ordered[0].expression,
            )
        for score, (rank, _) in ranks.items():
            recovered[score] += rank == 1
        top = result.equations[0]
        line = (
            f"[{number}] {name:28s} c={complexity} | truth rank by lnZ={ranks['log_evidence'][0]}"
            f" (top {ranks['log_evidence'][1]}), by lnZ+structure prior="
            f"{ranks['log_posterior'][0]} (top {ranks['log_posterior'][1]}), by DL="
            f"{ranks['description_length'][0]} (top {ranks['description_length'][1]}) "
            f"| wall={wall:.0f}s cpu={cpu:.0f}s"
        )
        if SymbolicRegressor is not None and not args.no_peers:
            start = _clock()
            peer = SymbolicRegressor(
                population_size=500,
                generations=20,
                function_set=("add", "sub", "mul", "div", "log"),
                parsimony_coefficient=0.001,
                random_state=number,
            )
            peer.fit(x[:, None], y)
            peer_wall, peer_cpu = _since(start)
            rms = float(np.sqrt(np.mean((peer.predict(x[:, None]) - truth) ** 2)) / sigma[0])
            ours_rms = float(
                np.sqrt(
                    np.mean(
                        (np.asarray(evaluate_expression(top.tree, top.parameters, x)) - truth) ** 2
                    )
                )
                / sigma[0]
            )
            line += (
                f" | gplearn: {str(peer._program)[:40]} rms/sigma={rms:.2f} "
                f"(ours {ours_rms:.2f}) wall={peer_wall:.0f}s cpu={peer_cpu:.0f}s"
            )
        print(line, flush=True)
        rows.append(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"true law ranked first (of {len(list(selected))}): {recovered}; peak memory {peak:.0f} MiB"
    )


def mi_section(args) -> None:
    try:
        from gmm_mi.mi import EstimateMI
    except ImportError:
        EstimateMI = None
        print("gmm-mi is not installed: peer skipped (pip install gmm-mi, bench extra)")
    rng = np.random.default_rng(args.seed)
    for rho in (0.3, 0.6, 0.9):
        truth = -0.5 * np.log(1 - rho**2)
        z = rng.normal(size=(2000, 2))
        x, y = z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
        mutual_information(jax.random.key(0), x, y)  # compile outside the timing
        start = _clock()
        ours = mutual_information(jax.random.key(1), x, y, config=MIConfig())
        wall, cpu = _since(start)
        line = (
            f"rho={rho} truth={truth:.4f} | ours {ours.estimate:.4f}+-{ours.error:.4f} "
            f"(k={ours.num_components}) wall={wall:.2f}s cpu={cpu:.2f}s"
        )
        if EstimateMI is not None:
            start = _clock()
            try:
                estimate, error = EstimateMI().fit(np.stack([x, y], axis=1))
            except Exception as failure:  # noqa: BLE001 - report the peer's failure, go on
                print(f"{line} | gmm-mi failed: {type(failure).__name__}: {failure}")
                continue
            peer_wall, peer_cpu = _since(start)
            line += (
                f" | gmm-mi {estimate:.4f}+-{error:.4f} wall={peer_wall:.2f}s "
                f"cpu={peer_cpu:.2f}s | speed-up wall x{peer_wall / wall:.1f} "
                f"cpu x{peer_cpu / cpu:.1f}"
            )
        print(line, flush=True)


def bmi_section(args) -> None:
    """Tasks of the benchmark-mi suite (Czyz et al. 2023, arXiv:2306.11078).

    benchmark-mi pins jax < 0.5, so its samples are drawn in a separate environment
    (``/tmp/bmi-venv``, see docs/interpret.md) and read here from ``--bmi-samples``.
    """
    try:
        data = np.load(args.bmi_samples)
    except FileNotFoundError:
        print(f"{args.bmi_samples} not found: benchmark-mi section skipped")
        return
    names = sorted({key.split("|")[0] for key in data.files})
    for name in names:
        truth = float(data[f"{name}|mi"])
        seeds = sorted(
            {
                int(k.split("|")[1])
                for k in data.files
                if k.startswith(name + "|") and k.count("|") == 2
            }
        )
        z_scores, estimates, errors, components = [], [], [], []
        start = _clock()
        for seed in seeds:
            x, y = data[f"{name}|{seed}|x"], data[f"{name}|{seed}|y"]
            r = mutual_information(jax.random.key(seed), x, y)
            estimates.append(r.estimate)
            errors.append(r.error)
            components.append(r.num_components)
            z_scores.append((r.estimate - truth) / r.error)
        wall, cpu = _since(start)
        estimates, errors = np.asarray(estimates), np.asarray(errors)
        bias = estimates.mean() - truth
        print(
            f"{name:32s} truth={truth:.4f} mean={estimates.mean():.4f} sigma={errors.mean():.4f} "
            f"|bias|/sigma={abs(bias) / errors.mean():.2f} z={np.round(z_scores, 2).tolist()} "
            f"k={components} wall={wall:.0f}s cpu={cpu:.0f}s",
            flush=True,
        )


def chronometers_section(args) -> None:
    z, hubble, sigma = CHRONOMETERS.T
    config = SymbolicConfig(
        max_complexity=args.max_complexity,
        num_starts=args.num_starts,
        num_iterations=args.num_iterations,
    )
    start = _clock()
    result = symbolic_regression(
        jax.random.key(0), 1.0 + z, hubble / 100.0, sigma / 100.0, config=config
    )
    wall, cpu = _since(start)
    print(f"cosmic chronometers: {result.num_unique} unique, wall {wall:.0f}s cpu {cpu:.0f}s")
    for rank, e in enumerate(result.equations[:10], start=1):
        print(
            f"{rank:2d}. {e.expression:28s} params={np.round(e.parameters, 4).tolist()} "
            f"lnZ={e.log_evidence:.2f} DL={e.description_length:.2f} chi2={e.chi2:.2f}"
        )
    by_dl = sorted(result.equations, key=lambda e: e.description_length)[:5]
    print("top 5 by description length:", [e.expression for e in by_dl])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default="laws,mi,chronometers")
    parser.add_argument("--max-complexity", type=int, default=7)
    parser.add_argument("--laws", default=None, help="comma-separated law indices")
    parser.add_argument("--num-starts", type=int, default=6, help="fit starts per expression")
    parser.add_argument("--num-iterations", type=int, default=80, help="LM iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true", help="skip gplearn in laws")
    parser.add_argument("--bmi-samples", default="/tmp/bmi_tasks.npz")
    args = parser.parse_args()
    sections = {
        "laws": laws_section,
        "mi": mi_section,
        "bmi": bmi_section,
        "chronometers": chronometers_section,
    }
    for name in args.sections.split(","):
        print(f"== {name}", flush=True)
        sections[name](args)


if __name__ == "__main__":
    main()
