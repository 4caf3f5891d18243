"""``astrobayes run`` on users' own models against independently computed evidences.

A user's likelihood module and TOML configs are written to ``--out`` (default: a temporary
folder), run with ``astrobayes run`` (learned harmonic mean, and with ``--bridge`` also
bridge sampling), and each ln z is set beside a truth computed here without astrobayes:

* ``rv``: radial velocities at 40 epochs (seed 42), no planet (offset and jitter) against
  one circular-orbit planet (amplitude and jitter log-uniform, period log-uniform on
  15-20 d, phase uniform). Truths: the no-planet model by Gauss-Legendre quadrature in
  (offset, ln jitter); the planet model semi-analytically (the offset integrated in
  closed form, a grid over frequency, ln jitter, ln amplitude and phase).
* ``line``: a straight line to 30 points with 5 outliers (seed 42), without and with the
  outlier mixture of Hogg, Bovy & Lang (2010, arXiv:1008.4686). Truths: quadrature for the
  line; importance sampling (Student-t proposal fitted to the run's draws, 2e6 draws,
  its own error) for the 5-parameter mixture.
* ``schools``: the eight schools (Rubin 1981) as NumPyro models, centred, non-centred and
  pooled. Truths: ``scipy.integrate.dblquad`` over (mu, tau) with the school effects
  integrated in closed form (the same for both parameterisations), and ``quad``.

Prints per model: the truth, each estimate with its pull, and the statuses. Measured
2026-12-06 (docs/run.md, "Checked against known evidences").

Usage: .venv/bin/python benchmarks/run_user_models.py [--out DIR] [--bridge] [--smc]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from scipy import integrate, stats
from scipy.special import logsumexp

USER_MODULE = """
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.infer.reparam import LocScaleReparam


def _norm(r, s2):
    return -0.5 * r**2 / s2 - 0.5 * jnp.log(2 * jnp.pi * s2)


def flat(p, data):
    t, v, e = data["rv"].T
    return jnp.sum(_norm(v - p["gamma"], e**2 + p["jit"] ** 2))


def planet(p, data):
    t, v, e = data["rv"].T
    m = p["gamma"] + p["K"] * jnp.sin(2 * jnp.pi * t / p["P"] + p["phi"])
    return jnp.sum(_norm(v - m, e**2 + p["jit"] ** 2))


def line(p, data):
    x, y, s = data["pts"].T
    return jnp.sum(_norm(y - p["a"] - p["b"] * x, s**2))


def outliers(p, data):
    x, y, s = data["pts"].T
    good = jnp.log1p(-p["Q"]) + _norm(y - p["a"] - p["b"] * x, s**2)
    bad = jnp.log(p["Q"]) + _norm(y - p["Yb"], s**2 + p["Vb"])
    return jnp.sum(jnp.logaddexp(good, bad))


Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
S = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centered():
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", 8):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("obs", dist.Normal(theta, S), obs=Y)


def noncentered():
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", 8):
        with numpyro.handlers.reparam(config={"theta": LocScaleReparam(0)}):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("obs", dist.Normal(theta, S), obs=Y)


def pooled():
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    numpyro.sample("obs", dist.Normal(mu, S), obs=Y)
"""

SAMPLER = "[sampler]\nnum_chains = 4\nnum_warmup = 500\nnum_samples = 1000\n"
CONFIGS = {
    "rv": """
        reference = "flat"
        [models.flat]
        likelihood = "userlik:flat"
        data = { rv = "rv.txt" }
        [models.flat.parameters]
        gamma = { prior = "uniform", low = -20.0, high = 20.0 }
        jit = { prior = "log-uniform", low = 0.1, high = 20.0 }
        [models.planet]
        likelihood = "userlik:planet"
        data = { rv = "rv.txt" }
        [models.planet.parameters]
        gamma = { prior = "uniform", low = -20.0, high = 20.0 }
        jit = { prior = "log-uniform", low = 0.1, high = 20.0 }
        K = { prior = "log-uniform", low = 0.5, high = 30.0 }
        P = { prior = "log-uniform", low = 15.0, high = 20.0 }
        phi = { prior = "uniform", low = 0.0, high = 6.283185307179586 }
        """,
    "line": """
        reference = "line"
        [models.line]
        likelihood = "userlik:line"
        data = { pts = "line.txt" }
        [models.line.parameters]
        a = { prior = "uniform", low = -10.0, high = 10.0 }
        b = { prior = "uniform", low = -5.0, high = 5.0 }
        [models.outliers]
        likelihood = "userlik:outliers"
        data = { pts = "line.txt" }
        [models.outliers.parameters]
        a = { prior = "uniform", low = -10.0, high = 10.0 }
        b = { prior = "uniform", low = -5.0, high = 5.0 }
        Q = { prior = "uniform", low = 0.0, high = 1.0 }
        Yb = { prior = "uniform", low = -20.0, high = 30.0 }
        Vb = { prior = "log-uniform", low = 0.1, high = 1000.0 }
        """,
    "schools": """
        reference = "pooled"
        [models.centered]
        numpyro_model = "userlik:centered"
        [models.noncentered]
        numpyro_model = "userlik:noncentered"
        [models.pooled]
        numpyro_model = "userlik:pooled"
        """,
}


def write_inputs(folder: Path) -> None:
    """The user's data (fixed seeds), likelihood module and configs."""
    rng = np.random.default_rng(42)
    t = np.sort(rng.uniform(0, 200, 40))
    err = rng.uniform(2, 4, 40)
    v = 3 + 6 * np.sin(2 * np.pi * t / 17.3 + 1.0) + rng.normal(0, np.sqrt(err**2 + 1.5**2))
    np.savetxt(folder / "rv.txt", np.c_[t, v, err], header="t[d] v[m/s] err[m/s]; seed 42")
    x = np.sort(rng.uniform(0, 10, 30))
    sy = rng.uniform(0.5, 1.0, 30)
    y = 1.0 + 0.8 * x + rng.normal(0, sy)
    out = rng.choice(30, 5, replace=False)
    y[out] = rng.normal(5, 6, 5)
    np.savetxt(folder / "line.txt", np.c_[x, y, sy], header="x y sigma_y; seed 42")
    (folder / "userlik.py").write_text(USER_MODULE)


def _norm(r, s2):
    return -0.5 * r**2 / s2 - 0.5 * np.log(2 * np.pi * s2)


def _panels(lo, hi, num_panels, nodes=20):
    x, w = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(lo, hi, num_panels + 1)
    xs = [0.5 * (b - a) * x + 0.5 * (b + a) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ws = [0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return np.concatenate(xs), np.concatenate(ws)


def truth_flat(rv):
    g, wg = _panels(-20, 20, 20)
    u, wu = _panels(np.log(0.1), np.log(20), 20)
    s2 = rv[:, 2] ** 2 + np.exp(2 * u)[:, None]
    ll = np.stack([np.sum(_norm(rv[:, 1] - gi, s2), -1) for gi in g])
    return logsumexp(ll + np.log(wg)[:, None] + np.log(wu)[None]) - np.log(40 * np.log(200))


def truth_line(pts):
    a, wa = _panels(-10, 10, 20)
    b, wb = _panels(-5, 5, 20)
    resid = pts[:, 1] - a[:, None, None] - b[None, :, None] * pts[:, 0]
    ll = np.sum(_norm(resid, pts[:, 2] ** 2), -1)
    return logsumexp(ll + np.log(wa)[:, None] + np.log(wb)[None]) - np.log(200)


def truth_planet(rv, p_lo=15.0, p_hi=20.0, num_frequencies=2000):
    """Offset in closed form; frequency, ln jitter, ln amplitude and phase on grids."""
    t, v, e = rv.T
    lj, wlj = _panels(np.log(0.1), np.log(20), 2, 24)
    lk, wlk = _panels(np.log(0.5), np.log(30), 4, 24)
    phi = np.linspace(0, 2 * np.pi, 128, endpoint=False)  # periodic: trapezoid
    f = np.linspace(1 / p_hi, 1 / p_lo, num_frequencies)
    wf = np.full(f.size, f[1] - f[0])
    wf[[0, -1]] /= 2
    amp = np.exp(lk)[:, None]
    A, B = amp * np.cos(phi), amp * np.sin(phi)  # v = g + A sin(2 pi f t) + B cos(...)
    log_prior = np.log(wlk)[:, None] - np.log(np.log(60)) - np.log(128)
    table = np.empty((f.size, lj.size))
    for j, lji in enumerate(lj):
        s2 = e**2 + np.exp(2 * lji)
        w = 1 / s2
        W = w.sum()
        const = -0.5 * np.sum(np.log(2 * np.pi * s2)) + 0.5 * np.log(2 * np.pi / W) - np.log(40)
        for i0 in range(0, f.size, 250):
            ff = f[i0 : i0 + 250, None]
            sn, cs = np.sin(2 * np.pi * ff * t), np.cos(2 * np.pi * ff * t)

            def m(a, b, w=w, W=W):  # a^T (diag(w) - w w^T / W) b: offset integrated out
                return (a * w * b).sum(-1) - (a * w).sum(-1) * (b * w).sum(-1) / W

            terms = [m(v, v), m(sn, v), m(cs, v), m(sn, sn), m(sn, cs), m(cs, cs)]
            vv, sv, cv, ss, sc, cc = (
                np.broadcast_to(q, ff.shape[:1])[:, None, None] for q in terms
            )
            quad = vv - 2 * A * sv - 2 * B * cv + A**2 * ss + 2 * A * B * sc + B**2 * cc
            table[i0 : i0 + 250, j] = logsumexp(-0.5 * quad + log_prior, axis=(1, 2)) + const
    log_w = np.log(wf)[:, None] - np.log(f)[:, None] + np.log(wlj)[None]
    return logsumexp(table + log_w) - np.log(np.log(p_hi / p_lo)) - np.log(np.log(200))


def truth_outliers(pts, draws, num=2_000_000, seed=0):
    """Importance sampling with a Student-t proposal fitted to posterior draws."""
    x, y, s = pts.T
    lo = np.array([-10, -5, 0, -20, np.log(0.1)])
    hi = np.array([10, 5, 1, 30, np.log(1000)])
    fitted = np.c_[draws[:, :4], np.log(draws[:, 4])]
    proposal = stats.multivariate_t(fitted.mean(0), 1.5 * np.cov(fitted.T), df=4, seed=seed)
    estimates = []
    for _ in range(20):
        th = proposal.rvs(num // 20)
        inside = np.all((th > lo) & (th < hi), 1)
        a, b, q, yb, lv = th[inside].T
        good = np.log1p(-q)[:, None] + _norm(y - a[:, None] - b[:, None] * x, s**2)
        bad = np.log(q)[:, None] + _norm(y - yb[:, None], s**2 + np.exp(lv)[:, None])
        log_w = np.full(len(th), -np.inf)
        log_w[inside] = np.sum(np.logaddexp(good, bad), 1) - np.sum(np.log(hi - lo))
        log_w[inside] -= proposal.logpdf(th[inside])
        estimates.append(logsumexp(log_w) - np.log(len(th)))
    estimates = np.array(estimates)
    value = logsumexp(estimates) - np.log(estimates.size)
    return value, float(np.std(np.exp(estimates - value)) / np.sqrt(estimates.size))


def truth_schools():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    s = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

    def hier(mu, tau):
        log_f = np.sum(stats.norm.logpdf(y, mu, np.sqrt(s**2 + tau**2)))
        return np.exp(log_f + stats.norm.logpdf(mu, 0, 5) + stats.halfcauchy.logpdf(tau, 0, 5) + 30)

    value, _ = integrate.dblquad(hier, 0, np.inf, -60, 60, epsabs=0, epsrel=1e-10)

    def pooled(mu):
        return np.exp(np.sum(stats.norm.logpdf(y, mu, s)) + stats.norm.logpdf(mu, 0, 5) + 30)

    value_pooled, _ = integrate.quad(pooled, -60, 60, epsabs=0, epsrel=1e-12)
    return {
        "centered": np.log(value) - 30,
        "noncentered": np.log(value) - 30,
        "pooled": np.log(value_pooled) - 30,
    }


def run_config(folder: Path, name: str, extra: str, tag: str) -> dict:
    from astrobayes.cli.main import main

    config = folder / f"{name}_{tag}.toml"
    config.write_text("seed = 0\n" + extra + textwrap.dedent(CONFIGS[name]).strip() + "\n")
    if "sampler_kind" not in extra:
        config.write_text(config.read_text() + SAMPLER)
    out = folder / f"{name}_{tag}-run"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the run's own table: in report.md
        main(["run", str(config), "--out", str(out), "--no-progress", "--no-plots"])
    payload = json.loads((out / "results.json").read_text())
    payload["wall_s"] = time.perf_counter() - start
    payload["out"] = out
    return payload


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=None, help="folder for inputs and runs (default: temporary)"
    )
    parser.add_argument(
        "--bridge", action="store_true", help="also evidence_method = bridge_sampling"
    )
    parser.add_argument("--smc", action="store_true", help="also sampler_kind = smc")
    args = parser.parse_args(argv)
    folder = Path(args.out or tempfile.mkdtemp(prefix="run_user_models-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(folder)
    methods = {"lhm": ""}
    if args.bridge:
        methods["bridge"] = 'evidence_method = "bridge_sampling"\n'
    if args.smc:
        methods["smc"] = 'sampler_kind = "smc"\n'
    results = {
        (name, tag): run_config(folder, name, extra, tag)
        for name in CONFIGS
        for tag, extra in methods.items()
    }
    rv, pts = np.loadtxt(folder / "rv.txt"), np.loadtxt(folder / "line.txt")
    lhm_line = results[("line", "lhm")]["out"] / "chains" / "outliers.npz"
    with np.load(lhm_line) as chains:
        names = list(chains["names"])
        order = [names.index(p) for p in ("a", "b", "Q", "Yb", "Vb")]
        draws = chains["samples"].reshape(-1, len(names))[:, order]
    outliers, outliers_std = truth_outliers(pts, draws)
    truths = {
        ("rv", "flat"): (truth_flat(rv), 0.0, "quadrature"),
        ("rv", "planet"): (truth_planet(rv), 0.0, "semi-analytic grid"),
        ("line", "line"): (truth_line(pts), 0.0, "quadrature"),
        ("line", "outliers"): (outliers, outliers_std, "importance sampling"),
        **{("schools", k): (v, 0.0, "dblquad") for k, v in truth_schools().items()},
    }
    print(f"inputs and runs in {folder}")
    header = f"{'model':<20} {'truth':>10} {'':<21}"
    for tag in methods:
        header += f" | {tag + ' ln z':>20} {'pull':>6} {'status':<24}"
    print(header)
    for (config, model), (truth, truth_std, how) in truths.items():
        row = f"{config + ':' + model:<20} {truth:>10.4f} {'(' + how + ')':<21}"
        for tag in methods:
            entry = results[(config, tag)]["models"][model]
            z, dz = entry["log_evidence"], entry["log_evidence_std"]
            pull = (z - truth) / np.hypot(dz, truth_std)
            row += f" | {z:>11.4f} ± {dz:<6.4f} {pull:>+6.2f} {entry['status']:<24}"
        print(row)
    for tag in methods:
        wall = sum(r["wall_s"] for (c, t), r in results.items() if t == tag)
        print(f"{tag}: {wall:.0f} s wall for the three configs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
