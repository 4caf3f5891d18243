"""False alarms and power of the chains' stationarity test, beside ArviZ's R-hat rule.

``astrobayes.diagnostics.stationarity`` (each chain's pieces against that chain, scaled by
the chains' second halves; F test, Bonferroni over the columns; default significance
1e-4) decides whether input chains hold a burn-in before an evidence is estimated from
them. The peer is the rule practitioners use: ArviZ's rank-normalised split R-hat
(Vehtari et al. 2021, arXiv:1903.08008) of every parameter and of the log posterior above
1.01. Both see the same data sets:

* stationary AR(1) chains (several lengths, autocorrelation times and dimensions) and
  random-walk Metropolis chains written with multiplicity weights, as Cobaya writes them
  (for ArviZ the rows are expanded into steps): the failure rate is the false-alarm
  rate, with its binomial error;
* the same AR(1) chains with a burn-in (every chain relaxing from 10 sigma over its first
  5%), a drift of one sigma over the run, and a first half with 0.3 times the spread:
  the failure rate is the power. For the burn-in, the burn-in fraction the test names
  is tallied too.

Prints one table; wall and CPU seconds of both.

Usage: python benchmarks/stationarity_calibration.py [--repeats 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.signal import lfilter

from astrobayes.diagnostics import stationarity

#: (chains, draws per chain, dimension, AR(1) coefficient) of the stationary cases.
AR1_CASES = ((2, 300, 2, 0.0), (4, 400, 5, 0.8), (8, 1500, 30, 0.9), (2, 5000, 3, 0.97))


def ar1(rng, num_chains, num_samples, dim, rho):
    """AR(1) chains with unit stationary variance, started in equilibrium."""
    noise = rng.standard_normal((num_chains, dim, num_samples))
    noise[..., 1:] *= np.sqrt(1.0 - rho**2)
    return lfilter([1.0], [1.0, -rho], noise, axis=-1).transpose(0, 2, 1)


def metropolis(rng, num_chains, num_steps, dim, step=2.4):
    """Random-walk Metropolis on N(0, I) as rows with multiplicities (Cobaya's format)."""
    samples, weights = [], []
    for _ in range(num_chains):
        x = rng.standard_normal(dim)
        rows, counts = [x], [1.0]
        for _ in range(num_steps):
            y = x + step / np.sqrt(dim) * rng.standard_normal(dim)
            if np.log(rng.uniform()) < 0.5 * (x @ x - y @ y):
                x = y
                rows.append(x)
                counts.append(1.0)
            else:
                counts[-1] += 1.0
        samples.append(np.array(rows))
        weights.append(np.array(counts))
    n = min(len(s) for s in samples)
    return np.stack([s[:n] for s in samples]), np.stack([w[:n] for w in weights])


def arviz_rule(samples, log_posterior, weights=None) -> bool:
    """ArviZ's rank-normalised split R-hat of every column and ln p above 1.01."""
    import arviz as az

    columns = np.concatenate([samples, log_posterior[..., None]], -1)
    if weights is not None:  # expand multiplicities into steps, cut to a common length
        steps = [np.repeat(c, w.astype(int), axis=0) for c, w in zip(columns, weights, strict=True)]
        n = min(len(s) for s in steps)
        columns = np.stack([s[:n] for s in steps])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = [
            float(az.rhat(np.ascontiguousarray(columns[..., k]))) for k in range(columns.shape[-1])
        ]
    return bool(np.max(rhat) > 1.01)


def rate(failures: int, total: int) -> str:
    p = failures / total
    return f"{failures:4d}/{total} = {p:.3f} ± {np.sqrt(max(p * (1 - p), 1 / total) / total):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=100, help="data sets per case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    clock = {"astrobayes": [0.0, 0.0], "arviz": [0.0, 0.0]}

    def judge(samples, log_posterior, weights=None):
        start = time.perf_counter(), time.process_time()
        ours = stationarity(samples, log_posterior, weights)
        clock["astrobayes"][0] += time.perf_counter() - start[0]
        clock["astrobayes"][1] += time.process_time() - start[1]
        start = time.perf_counter(), time.process_time()
        peer = arviz_rule(samples, log_posterior, weights)
        clock["arviz"][0] += time.perf_counter() - start[0]
        clock["arviz"][1] += time.process_time() - start[1]
        return ours, peer

    def log_p(x):
        return -0.5 * (x**2).sum(-1)

    print(f"{'case':48s} {'astrobayes stationarity (1e-4)':32s} {'ArviZ R-hat > 1.01':28s}")
    print("stationary chains: the failure rate is the false-alarm rate")
    cases = [(f"AR(1) {c} x {n}, d={d}, rho={r}", "ar1", (c, n, d, r)) for c, n, d, r in AR1_CASES]
    cases.append(("Metropolis 4 x 3000 steps, d=3, weighted rows", "metropolis", (4, 3000, 3)))
    for label, kind, shape in cases:
        ours = peer = 0
        for _ in range(args.repeats):
            if kind == "ar1":
                x = ar1(rng, *shape)
                result, flagged = judge(x, log_p(x))
            else:
                x, w = metropolis(rng, *shape)
                result, flagged = judge(x, log_p(x), w)
            ours += not result.stationary
            peer += flagged
        print(f"{label:48s} {rate(ours, args.repeats):32s} {rate(peer, args.repeats):28s}")

    print(
        "chains that are not stationary (AR(1) 8 x 1500, d=4, rho=0.9): the failure rate is the power"
    )
    fractions: dict[float, int] = {}
    for label, change in (
        ("burn-in: relaxing from 10 sigma over 5%", "burn_in"),
        ("a drift of 1 sigma over the run", "drift"),
        ("first half with 0.3 x the spread", "spread"),
    ):
        ours = peer = 0
        for _ in range(args.repeats):
            x = ar1(rng, 8, 1500, 4, 0.9)
            if change == "burn_in":
                x[:, :75] += 10.0 * np.exp(-np.arange(75) / 12.5)[None, :, None]
            elif change == "drift":
                x += np.linspace(0.0, 1.0, 1500)[None, :, None]
            else:
                x[:, :750] *= 0.3
            result, flagged = judge(x, log_p(x))
            ours += not result.stationary
            peer += flagged
            if change == "burn_in" and not result.stationary:
                fractions[result.burn_in] = fractions.get(result.burn_in, 0) + 1
        print(f"{label:48s} {rate(ours, args.repeats):32s} {rate(peer, args.repeats):28s}")
    named = ", ".join(f"{f:g}: {n}" for f, n in sorted(fractions.items()))
    print(f"burn-in fraction named by astrobayes for the 5% burn-in: {named}")
    for name, (wall, cpu) in clock.items():
        print(f"time {name}: {wall:.1f} s wall, {cpu:.1f} CPU-s")
    ratio = clock["arviz"][1] / max(clock["astrobayes"][1], 1e-9)
    print(f"CPU ratio arviz / astrobayes: {ratio:.2f}")


if __name__ == "__main__":
    main()
