"""Calibration of the GMM mutual-information error bar on correlated Gaussians.

For each correlation rho, ``--repeats`` independent data sets of ``--samples`` pairs are
drawn from a bivariate normal (true MI = -1/2 ln(1 - rho^2)) and each goes through
``astrobayes.interpret.mutual_information`` with the default settings (number of
components chosen on held-out likelihood, 50 bootstrap replicas). Printed per rho: the
mean estimate, the bias and its standard error over repeats, the mean bootstrap sigma,
|bias| / sigma, and the standard deviation of the z-scores (estimate - truth) / error,
which is 1 for calibrated error bars. Both the bootstrap-mean estimate (GMM-MI's
convention) and the full-data estimate are scored. The negative control scores each
repeat against a wrong truth (rho shifted by 0.05): its z-scores must be far from
N(0, 1).

Usage: nice -n 10 python benchmarks/interpret_mi_calibration.py [--repeats 50]
       [--samples 1000] [--rhos 0.1,0.3,0.5,0.7,0.9,0.95] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from astrobayes.interpret import MIConfig, mutual_information


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rhos", default="0.1,0.3,0.5,0.7,0.9,0.95")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="optional JSON file for the table")
    args = parser.parse_args()
    rhos = [float(r) for r in args.rhos.split(",")]
    config = MIConfig()
    key = jax.random.key(args.seed)
    rows = []
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    all_z = {"bootstrap_mean": [], "full_data": []}
    print(f"{args.repeats} repeats x n = {args.samples}; config {config}")
    for rho in rhos:
        truth = -0.5 * np.log(1 - rho**2)
        estimates, full, errors, components = [], [], [], []
        for repeat in range(args.repeats):
            key, data_key, fit_key = jax.random.split(key, 3)
            z = np.asarray(jax.random.normal(data_key, (args.samples, 2)), np.float64)
            x = z[:, 0]
            y = rho * x + np.sqrt(1 - rho**2) * z[:, 1]
            result = mutual_information(fit_key, x, y, config=config)
            estimates.append(result.estimate)
            full.append(result.full_data_estimate)
            errors.append(result.error)
            components.append(result.num_components)
            del repeat
        estimates, full, errors = map(np.asarray, (estimates, full, errors))
        row = {"rho": rho, "truth": truth, "mean_sigma": float(errors.mean())}
        for name, values in (("bootstrap_mean", estimates), ("full_data", full)):
            bias = float(values.mean() - truth)
            z_scores = (values - truth) / errors
            all_z[name].extend(z_scores.tolist())
            row[name] = {
                "mean": float(values.mean()),
                "bias": bias,
                "bias_standard_error": float(values.std(ddof=1) / np.sqrt(len(values))),
                "abs_bias_over_sigma": abs(bias) / float(errors.mean()),
                "scatter_over_sigma": float(values.std(ddof=1) / errors.mean()),
                "z_mean": float(z_scores.mean()),
                "z_std": float(z_scores.std(ddof=1)),
            }
        wrong_rho = min(rho + 0.05, 0.99)
        wrong = -0.5 * np.log(1 - wrong_rho**2)
        wrong_z = (estimates - wrong) / errors
        row["negative_control"] = {
            "wrong_rho": wrong_rho,
            "z_mean": float(wrong_z.mean()),
            "z_rms": float(np.sqrt(np.mean(wrong_z**2))),
        }
        row["components"] = np.bincount(components).tolist()
        rows.append(row)
        b, f = row["bootstrap_mean"], row["full_data"]
        print(
            f"rho={rho:4.2f} truth={truth:.4f} sigma={row['mean_sigma']:.4f} | "
            f"boot-mean bias={b['bias']:+.4f}+-{b['bias_standard_error']:.4f} "
            f"|b|/s={b['abs_bias_over_sigma']:.2f} z_std={b['z_std']:.2f} | "
            f"full bias={f['bias']:+.4f} |b|/s={f['abs_bias_over_sigma']:.2f} "
            f"z_std={f['z_std']:.2f} | control z_rms={row['negative_control']['z_rms']:.1f} "
            f"| k counts {row['components']}",
            flush=True,
        )
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    pooled = {name: float(np.std(values, ddof=1)) for name, values in all_z.items()}
    print(f"pooled z std: {pooled}; wall {wall:.0f} s, CPU {cpu:.0f} s")
    if args.out:
        with open(args.out, "w") as handle:  # benchmark output, outside the package
            json.dump({"rows": rows, "pooled_z_std": pooled, "wall_s": wall, "cpu_s": cpu}, handle)


if __name__ == "__main__":
    main()
