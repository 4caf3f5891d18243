"""The demo's ΛCDM and wCDM on DESI DR2 BAO, with a Python likelihood on SciPy distances.

An independent check of the Python-likelihood path and of the demo's numbers: the
distances come from ``scipy.integrate.quad`` of ``1/E(z)`` (flat, no radiation, as the
demo's JAX background), not from ``astrobayes.cosmology``, and are checked against
``astropy.cosmology`` (``FlatLambdaCDM`` / ``FlatwCDM``) at 20 prior draws (astropy builds
a units-aware object per cosmology, ~2 ms, too slow to sample with: an astropy version of
this likelihood ran SMC for 13 minutes without finishing ΛCDM). The models have the demo's
priors (Omega_m ~ U(0.01, 0.99), h r_d ~ U(50, 150) Mpc, w ~ U(-3, 1)); SMC samples them
through :class:`~astrobayes.models.PythonLikelihood` (no gradients). Truths: a grid over
the posterior's box (±8σ of SMC's particles in each parameter, 241 points each,
Simpson's rule, the prior normalised over its full range) with the same SciPy likelihood,
so nothing of astrobayes enters them. Also: the SciPy ``ln L`` against the demo's JAX
``ln L`` at the particles (what the demo's evidence rests on).

Usage: .venv/bin/python benchmarks/python_bao.py [--particles 2000] [--workers 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import quad, simpson

C_KM_S = 299792.458
PRIORS = {"omega_m": (0.01, 0.99), "h_rd": (50.0, 150.0), "w": (-3.0, 1.0)}


def bao_arrays():
    from astrobayes.cosmology import desi_dr2_bao

    data = desi_dr2_bao()
    return {
        "z": np.asarray(data.redshifts),
        "kind": np.array(
            [{"DM_over_rs": 0, "DH_over_rs": 1, "DV_over_rs": 2}[q] for q in data.quantities]
        ),
        "values": np.asarray(data.values),
        "covariance": np.asarray(data.covariance),
    }


def _efunc(z, omega_m: float, w: float):
    return np.sqrt(omega_m * (1 + z) ** 3 + (1 - omega_m) * (1 + z) ** (3 * (1 + w)))


def _ratios_times_h_rd(omega_m: float, w: float, data) -> np.ndarray:
    """``D/r_d * h r_d`` (Mpc, H0 = 100) for each entry, by adaptive quadrature."""
    hubble = C_KM_S / 100.0
    distinct = np.unique(data["z"])
    edges = np.concatenate([[0.0], distinct])
    pieces = [
        quad(lambda z: 1.0 / _efunc(z, omega_m, w), a, b, epsabs=0, epsrel=1e-11)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    comoving = dict(zip(distinct, hubble * np.cumsum(pieces), strict=True))
    z = data["z"]
    dm = np.array([comoving[v] for v in z])
    dh = hubble / _efunc(z, omega_m, w)
    dv = np.cbrt(z * dm**2 * dh)
    return np.choose(data["kind"], [dm, dh, dv])


def _astropy_ratios_times_h_rd(omega_m: float, w: float, data) -> np.ndarray:
    """The same from ``astropy.cosmology`` (the check of the quadrature)."""
    from astropy.cosmology import FlatwCDM

    cosmology = FlatwCDM(H0=100.0, Om0=omega_m, w0=w, Tcmb0=0.0)
    z = data["z"]
    dm = cosmology.comoving_transverse_distance(z).value
    dh = C_KM_S / 100.0 / cosmology.efunc(z)
    return np.choose(data["kind"], [dm, dh, np.cbrt(z * dm**2 * dh)])


def _gaussian(predictions, data) -> np.ndarray:
    """Normalised Gaussian ln L of ``predictions`` (``(..., n)``)."""
    residual = data["values"] - predictions
    precision = np.linalg.inv(data["covariance"])
    _, logdet = np.linalg.slogdet(2 * np.pi * data["covariance"])
    return -0.5 * np.einsum("...i,ij,...j->...", residual, precision, residual) - 0.5 * logdet


class ScipyBAO:
    """``ln L(params)`` from SciPy distances (picklable for worker processes)."""

    def __init__(self, data):
        self.data = data

    def __call__(self, params) -> float:
        w = params.get("w", -1.0)
        scaled = _ratios_times_h_rd(params["omega_m"], w, self.data)
        return float(_gaussian(scaled / params["h_rd"], self.data))


def grid_log_evidence(data, names, particles) -> float:
    """ln z on a 241-point-per-axis grid over ±8σ of the particles (SciPy distances)."""
    axes = {}
    for i, name in enumerate(names):
        mean, std = particles[:, i].mean(), particles[:, i].std()
        low, high = PRIORS[name]
        axes[name] = np.linspace(max(low, mean - 8 * std), min(high, mean + 8 * std), 241)
    h_rd = axes["h_rd"]
    w_axis = axes.get("w", np.array([-1.0]))
    log_l = np.empty((axes["omega_m"].size, w_axis.size, h_rd.size))
    for i, om in enumerate(axes["omega_m"]):
        for j, w in enumerate(w_axis):
            scaled = _ratios_times_h_rd(om, w, data)
            log_l[i, j] = _gaussian(scaled[None, :] / h_rd[:, None], data)
    peak = log_l.max()
    integrand = np.exp(log_l - peak)
    integral = simpson(integrand, x=h_rd, axis=2)
    integral = simpson(integral, x=w_axis, axis=1) if w_axis.size > 1 else integral[:, 0]
    integral = simpson(integral, x=axes["omega_m"])
    log_volume = sum(np.log(PRIORS[n][1] - PRIORS[n][0]) for n in names)
    return float(np.log(integral) + peak - log_volume)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=2000, help="SMC particles (2000)")
    parser.add_argument("--workers", type=int, default=1, help="processes (1: this process)")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    from astrobayes.comparison import compare
    from astrobayes.cosmology import desi_dr2_bao, make_bao_log_likelihood
    from astrobayes.models import Model, PythonLikelihood
    from astrobayes.sampling import SMCConfig
    from astrobayes.sbi.executors import ExecutorConfig

    data = bao_arrays()
    rng = np.random.default_rng(1)
    worst = max(
        np.max(
            np.abs(_ratios_times_h_rd(om, w, data) / _astropy_ratios_times_h_rd(om, w, data) - 1)
        )
        for om, w in zip(rng.uniform(0.01, 0.99, 20), rng.uniform(-3.0, 1.0, 20), strict=True)
    )
    print(
        f"SciPy distances against astropy at 20 prior draws: largest relative difference {worst:.1e}"
    )
    kind = "serial" if args.workers == 1 else "process"
    print(
        f"DESI DR2 BAO, demo priors; SMC ({args.particles} particles) on a SciPy likelihood, "
        f"{args.workers} worker(s); truths by a grid with the same likelihood"
    )
    print(
        f"{'model':6s} {'SMC ln z':>18s} {'grid truth':>11s} {'pull':>6s} {'calls':>7s} {'wall s':>7s}  max |ln L SciPy - JAX|  status"
    )
    with ExecutorConfig(
        kind, num_workers=None if kind == "serial" else args.workers
    ).make() as executor:
        for name, names in (("lcdm", ("omega_m", "h_rd")), ("wcdm", ("omega_m", "h_rd", "w"))):
            likelihood = PythonLikelihood(ScipyBAO(data), executor=executor, name=name)
            priors = {n: dist.Uniform(*PRIORS[n]) for n in names}
            start = time.perf_counter()
            report = compare(
                jax.random.key(0),
                [Model.from_priors(name, likelihood, priors)],
                sampling=SMCConfig(num_particles=args.particles),
            ).models[name]
            wall = time.perf_counter() - start
            particles = np.stack([report.posterior[n].reshape(-1) for n in names], axis=1)
            truth = grid_log_evidence(data, names, particles)
            jax_names = ("omega_m", "h_rd", "w0") if name == "wcdm" else names
            jax_log_l = jax.jit(jax.vmap(make_bao_log_likelihood(desi_dr2_bao(), jax_names)))
            ours = np.asarray(jax_log_l(jnp.asarray(particles[:200], jnp.result_type(float))))
            theirs = np.array(
                [
                    likelihood.log_likelihood_fn(dict(zip(names, p, strict=True)))
                    for p in particles[:200]
                ]
            )
            pull = (report.log_evidence - truth) / report.log_evidence_std
            print(
                f"{name:6s} {report.log_evidence:9.4f} ± {report.log_evidence_std:.4f} {truth:11.4f} "
                f"{pull:+6.2f} {likelihood.evaluations:7d} {wall:7.1f}  {np.max(np.abs(ours - theirs)):.2e}"
                f"  {report.status.name.lower()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
