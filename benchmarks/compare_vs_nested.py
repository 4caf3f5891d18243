"""Demo models (ΛCDM, wCDM, w0waCDM on DESI DR2 BAO): astrobayes NUTS + learned harmonic mean
vs dynesty's default static nested sampler, on the same likelihood, in one process run.

Prints ln z of each, the combined-sigma difference, ln B against ΛCDM and the wall-time ratio
(JIT compilation included for astrobayes). For ΛCDM a direct 2-d quadrature is printed too.

Usage: python benchmarks/compare_vs_nested.py [--nlive 500]
Needs the bench extra (``pip install dynesty``).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import trapezoid

from astrobayes.comparison import compare
from astrobayes.cosmology import desi_dr2_bao, make_bao_log_likelihood
from astrobayes.cosmology.dark_energy import W0WA_PRIOR_AREA, dark_energy_models
from astrobayes.sampling import NUTSConfig

NAMES = {
    "lcdm": ("omega_m", "h_rd"),
    "wcdm": ("omega_m", "h_rd", "w0"),
    "w0wacdm": ("omega_m", "h_rd", "w0", "wa"),
}


def prior_transform(name):
    def transform(u):
        x = np.empty_like(u)
        x[0] = 0.01 + 0.98 * u[0]
        x[1] = 50.0 + 100.0 * u[1]
        if name == "wcdm":
            x[2] = -3.0 + 4.0 * u[2]
        if name == "w0wacdm":
            # w0 by inverse CDF of its marginal on the region w0 + wa < 0 (area 15.5).
            c = u[2] * W0WA_PRIOR_AREA
            x[2] = -3.0 + c / 5.0 if c <= 5.0 else 3.0 - np.sqrt(35.0 - 2.0 * c)
            x[3] = -3.0 + (min(2.0, -x[2]) + 3.0) * u[3]
        return x

    return transform


def quadrature_lcdm(fn):
    om, hr = np.linspace(0.01, 0.99, 600), np.linspace(50, 150, 600)
    grid = np.stack(np.meshgrid(om, hr, indexing="ij"), -1).reshape(-1, 2)
    log_l = np.asarray(jax.jit(jax.vmap(fn))(jnp.asarray(grid)), np.float64).reshape(600, 600)
    peak = log_l.max()
    return float(
        np.log(trapezoid(trapezoid(np.exp(log_l - peak), hr, axis=1), om)) + peak - np.log(98.0)
    )


def main() -> None:
    import dynesty

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nlive", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = desi_dr2_bao()
    start = time.perf_counter()
    ours = compare(
        jax.random.key(args.seed),
        dark_energy_models(data),
        reference="lcdm",
        sampling=NUTSConfig(8, 400, 1500, checkpoint_every=500),
    )
    t_ours = time.perf_counter() - start
    print(f"astrobayes (NUTS + learned harmonic mean, 3 models): {t_ours:.0f} s")
    dyn = {}
    t_dyn = 0.0
    for name, names in NAMES.items():
        fn = jax.jit(make_bao_log_likelihood(data, names))
        fn(jnp.zeros(len(names)) + 0.3)
        start = time.perf_counter()
        sampler = dynesty.NestedSampler(
            lambda x, f=fn: float(f(jnp.asarray(x, jnp.float32))),
            prior_transform(name),
            len(names),
            nlive=args.nlive,
            rstate=np.random.default_rng(args.seed),
        )
        sampler.run_nested(print_progress=False)
        elapsed = time.perf_counter() - start
        t_dyn += elapsed
        res = sampler.results
        dyn[name] = (float(res.logz[-1]), float(res.logzerr[-1]), elapsed, int(res.ncall.sum()))
    print(f"dynesty static (nlive={args.nlive}), 3 models: {t_dyn:.0f} s\n")
    print(
        f"{'model':<9} {'astrobayes ln z':>18} {'dynesty ln z':>18} {'diff/sigma':>10} "
        f"{'ln B (ours)':>16} {'ln B (dynesty)':>16}"
    )
    for name in NAMES:
        r = ours.models[name]
        z, ze, _, _ = dyn[name]
        pull = (r.log_evidence - z) / np.hypot(r.log_evidence_std, ze)
        bf = ours.bayes_factors[name]
        bz = z - dyn["lcdm"][0]
        bze = np.hypot(ze, dyn["lcdm"][1]) if name != "lcdm" else 0.0
        print(
            f"{name:<9} {r.log_evidence:>9.3f} ± {r.log_evidence_std:<6.3f} {z:>9.3f} ± {ze:<6.3f} "
            f"{pull:>+10.2f} {bf.log_bayes_factor:>8.3f} ± {bf.log_bayes_factor_std:<5.3f} {bz:>8.3f} ± {bze:<5.3f}"
        )
    print(
        f"\nΛCDM by direct quadrature: ln z = {quadrature_lcdm(jax.jit(make_bao_log_likelihood(data, NAMES['lcdm']))):.4f}"
    )
    print(
        f"wall time ratio dynesty / astrobayes: {t_dyn / t_ours:.2f} (likelihood calls by dynesty: "
        f"{sum(v[3] for v in dyn.values())})"
    )


if __name__ == "__main__":
    main()
