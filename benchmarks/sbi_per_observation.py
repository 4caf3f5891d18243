"""Per-observation diagnostic (issue 16 item 3): C2ST beside the local likelihood check.

For each sbibm observation, trains a neural likelihood (sequential NLE, ``--rounds``
rounds of ``--budget / --rounds`` simulations per observation, warm-started, as in
``benchmarks/sbi_vs_sbi.py --astrobayes-method snle``; or ``--method nle``: one amortised
NLE per task on ``--budget`` prior simulations), samples its posterior by tempered SMC,
scores the posterior with C2ST against sbibm's reference draws, and runs
:func:`astrobayes.sbi.local_likelihood_check` (``--num-check`` posterior draws, one fresh
simulation each) and, for comparison, the posterior predictive check. Prints one row per
observation: C2ST, the check's verdict, adjusted p-value and what it flagged.

The simulators are JAX ports of sbibm's slcp, two_moons and gaussian_linear (checked
against sbibm's definitions: same parametrisation, ``x`` ordered as sbibm's). The
observations and reference draws are read from ``--ref DIR/<task>.npz`` (arrays
``observations`` ``(10, D)``, ``reference`` ``(10, 10000, dim)``), exported from the
sbibm wheel's ``files/num_observation_*/`` CSVs (no torch needed)::

    pip download sbibm --no-deps -d /tmp/sbibm-dl   # then unzip and read the CSVs

Trained estimators and per-observation rows are cached under ``--cache`` (resumable).

Usage::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/sbi_per_observation.py \
        --tasks gaussian_linear slcp two_moons --method nle --num-samples 5000
    # sequential NLE (4 rounds of 2500), observation 7 only:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/sbi_per_observation.py \
        --tasks slcp --observations 7 --method snle
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _sim_slcp(key, theta):
    import jax
    import jax.numpy as jnp

    e = jax.random.normal(key, (4, 2))
    s1, s2, rho = theta[2] ** 2, theta[3] ** 2, jnp.tanh(theta[4])
    x = theta[0] + s1 * e[:, 0]
    y = theta[1] + s2 * (rho * e[:, 0] + jnp.sqrt(1 - rho**2) * e[:, 1])
    return jnp.stack([x, y], axis=1).reshape(-1)


def _sim_two_moons(key, theta):
    import jax
    import jax.numpy as jnp

    ka, kr = jax.random.split(key)
    a = jax.random.uniform(ka, (), minval=-jnp.pi / 2, maxval=jnp.pi / 2)
    r = 0.1 + 0.01 * jax.random.normal(kr, ())
    p = jnp.stack([jnp.cos(a) * r + 0.25, jnp.sin(a) * r])
    c, s = jnp.cos(-jnp.pi / 4), jnp.sin(-jnp.pi / 4)
    return p + jnp.stack([-jnp.abs(c * theta[0] - s * theta[1]), s * theta[0] + c * theta[1]])


def _sim_gaussian_linear(key, theta):
    import jax
    import jax.numpy as jnp

    return theta + jnp.sqrt(0.1) * jax.random.normal(key, theta.shape)


SIMULATORS = {
    "slcp": _sim_slcp,
    "two_moons": _sim_two_moons,
    "gaussian_linear": _sim_gaussian_linear,
}


def task_prior(task):
    from astrobayes.sbi import Prior

    if task == "slcp":
        return Prior.uniform([-3.0] * 5, [3.0] * 5)
    if task == "two_moons":
        return Prior.uniform([-1.0] * 2, [1.0] * 2)
    return Prior.normal([0.0] * 10, [np.sqrt(0.1)] * 10)


def simulate(key, task, theta):
    import jax
    import jax.numpy as jnp

    theta = jnp.asarray(theta, jnp.float32)
    keys = jax.random.split(key, theta.shape[0])
    return np.asarray(jax.jit(jax.vmap(SIMULATORS[task]))(keys, theta))


def _configs(args):
    from astrobayes.sbi import FlowConfig, SBITrainingConfig

    flow = FlowConfig(flow_layers=5, nn_width=50, nn_depth=2, knots=10)
    training = SBITrainingConfig(
        learning_rate=5e-4,
        batch_size=200,
        validation_fraction=0.1,
        patience=20,
        max_epochs=args.max_epochs,
        clip_max_norm=5.0,
    )
    return flow, training


def _save_nle(path, nle):
    import equinox as eqx

    tmp = path.with_suffix(".tmp")
    eqx.tree_serialise_leaves(tmp, nle)
    os.replace(tmp, path)


def _load_nle(path, prior, theta, x, args):
    """Rebuild the structure with a one-epoch fit, then read the cached leaves."""
    import equinox as eqx
    import jax

    from astrobayes.sbi import SBITrainingConfig, train_nle

    flow, _ = _configs(args)
    skeleton, _ = train_nle(
        jax.random.key(0),
        prior,
        theta[:400],
        x[:400],
        flow_config=flow,
        training_config=SBITrainingConfig(max_epochs=1, batch_size=200),
    )
    return eqx.tree_deserialise_leaves(path, skeleton)


def _posterior(key, nle, x_obs, n):
    from astrobayes.sbi import sample_posterior

    return sample_posterior(key, nle, x_obs, n, method="smc")


def train_snle(key, task, x_obs, args, cache):
    """Sequential NLE for one observation; returns (nle, posterior draws, training s)."""
    import jax

    from astrobayes.sbi import train_nle

    prior = task_prior(task)
    flow, training = _configs(args)
    per_round = args.budget // args.rounds
    k_prior, k_sim, key = jax.random.split(key, 3)
    theta = np.asarray(prior.sample(k_prior, per_round))
    thetas, xs = [theta], [simulate(k_sim, task, theta)]
    nle, seconds = None, 0.0
    for r, k in enumerate(jax.random.split(key, args.rounds)):
        k_train, k_post, k_sim = jax.random.split(k, 3)
        theta_all, x_all = np.concatenate(thetas), np.concatenate(xs)
        start = time.perf_counter()
        nle, info = train_nle(
            k_train,
            prior,
            theta_all,
            x_all,
            flow_config=flow,
            training_config=training,
            initial=nle,
        )
        seconds += time.perf_counter() - start
        last = r == args.rounds - 1
        post = _posterior(k_post, nle, x_obs, args.num_samples if last else per_round)
        print(
            f"      round {r + 1}: {info.num_epochs} epochs, {info.status.name}, "
            f"posterior {post.status.name}",
            flush=True,
        )
        if not last:
            theta = np.asarray(post.samples[:per_round])
            thetas.append(theta)
            xs.append(simulate(k_sim, task, theta))
    _save_nle(cache, nle)
    return nle, np.asarray(post.samples), seconds


def amortised_nle(key, task, args, cache):
    """One NLE per task on ``--budget`` prior simulations (cached)."""
    import jax

    from astrobayes.sbi import train_nle

    prior = task_prior(task)
    k_prior, k_sim, k_train = jax.random.split(key, 3)
    theta = np.asarray(prior.sample(k_prior, args.budget))
    x = simulate(k_sim, task, theta)
    if cache.exists():
        return _load_nle(cache, prior, theta, x, args), 0.0
    flow, training = _configs(args)
    start = time.perf_counter()
    nle, info = train_nle(k_train, prior, theta, x, flow_config=flow, training_config=training)
    seconds = time.perf_counter() - start
    print(f"    {task}: amortised NLE {info.num_epochs} epochs, {seconds:.0f} s", flush=True)
    _save_nle(cache, nle)
    return nle, seconds


def run_observation(task, index, nle, args, cache_dir):
    """One row: train (snle) or reuse (nle), sample, C2ST, both per-observation checks."""
    import jax

    from astrobayes.sbi import local_likelihood_check
    from astrobayes.validation import c2st, posterior_predictive_check

    ref = np.load(Path(args.ref) / f"{task}.npz")
    x_obs = ref["observations"][index - 1].astype(np.float32)
    reference = ref["reference"][index - 1][: args.num_samples]
    key = jax.random.split(jax.random.key(args.seed), 10)[index - 1]
    k_run, k_check, k_pred, k_c2st = jax.random.split(key, 4)
    seconds = 0.0
    if args.method == "snle":
        path = cache_dir / f"{task}_snle_{index}.eqx"
        samples_path = path.with_suffix(".npz")
        if path.exists() and samples_path.exists():
            prior = task_prior(task)
            theta0 = np.asarray(prior.sample(jax.random.key(1), 400))
            nle = _load_nle(path, prior, theta0, simulate(jax.random.key(2), task, theta0), args)
            samples = np.load(samples_path)["samples"]
        else:
            nle, samples, seconds = train_snle(k_run, task, x_obs, args, path)
            np.savez(samples_path, samples=samples)
    else:
        samples_path = cache_dir / f"{task}_nle_{index}.npz"
        if samples_path.exists():
            samples = np.load(samples_path)["samples"]
        else:
            samples = np.asarray(_posterior(k_run, nle, x_obs, args.num_samples).samples)
            np.savez(samples_path, samples=samples)
    score_path = samples_path.with_suffix(".c2st.json")
    if score_path.exists():
        score = json.loads(score_path.read_text())["c2st"]
    else:
        score = float(c2st(k_c2st, samples, reference).accuracy)
        score_path.write_text(json.dumps({"c2st": score}))
    rng = np.random.default_rng(index)
    num_check = max(args.num_check, 200 * (x_obs.size + 1))  # what the check needs
    draws = samples[rng.choice(len(samples), num_check, replace=False)]
    k_sim, k_flow = jax.random.split(k_check)
    start = time.perf_counter()
    check = local_likelihood_check(k_flow, nle, x_obs, draws, simulate(k_sim, task, draws))
    check_s = time.perf_counter() - start
    pred = posterior_predictive_check(x_obs, simulate(k_pred, task, draws))
    return {
        "task": task,
        "observation": index,
        "c2st": float(score),
        "flagged": check.status.name != "CONSISTENT",
        "status": check.status.name,
        "p_adjusted": check.p_adjusted,
        "p_radius": check.p_radius,
        "exceed": [check.exceed_observed, check.exceed_expected],
        "p_components": check.p_components.tolist(),
        "tail_simulator": check.tail_simulator.tolist(),
        "tail_flow": check.tail_flow.tolist(),
        "summary": check.summary,
        "predictive_p_adjusted": pred.p_adjusted,
        "train_s": seconds,
        "check_s": check_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["slcp", "two_moons", "gaussian_linear"])
    parser.add_argument("--observations", nargs="+", type=int, default=list(range(1, 11)))
    parser.add_argument("--method", default="snle", choices=["snle", "nle"])
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--num-check", type=int, default=2000)
    parser.add_argument("--max-epochs", type=int, default=2**31 - 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="rerun the checks on the cached estimators, draws and C2ST scores",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ref", default="/tmp/sbibm-ref")
    parser.add_argument("--cache", default="/tmp/sbi-per-observation-cache")
    args = parser.parse_args(argv)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
        + f" intra_op_parallelism_threads={args.threads}"
    )
    import jax

    cache_dir = Path(args.cache)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in args.tasks:
        nle = None
        if args.method == "nle":
            nle, _ = amortised_nle(
                jax.random.key(args.seed + 17), task, args, cache_dir / f"{task}_nle.eqx"
            )
        for index in args.observations:
            row_path = cache_dir / f"{task}_{args.method}_{index}_row.json"
            if row_path.exists() and not args.recheck:
                row = json.loads(row_path.read_text())
            else:
                row = run_observation(task, index, nle, args, cache_dir)
                row_path.write_text(json.dumps(row))
            rows.append(row)
            print(
                f"{task:16s} {index:2d}  C2ST {row['c2st']:.3f}  "
                f"{'FLAGGED' if row['flagged'] else 'ok     '}  adjusted p "
                f"{row['p_adjusted']:.2g}  (radius {row['exceed'][0]} vs "
                f"{row['exceed'][1]:.1f})  predictive p {row['predictive_p_adjusted']:.2g}"
                f"  | {row['summary']}",
                flush=True,
            )
    print("\ntask              obs  C2ST   flagged  adjusted p")
    for row in rows:
        print(
            f"{row['task']:16s} {row['observation']:4d}  {row['c2st']:.3f}  "
            f"{'yes' if row['flagged'] else 'no ':7s}  {row['p_adjusted']:.2g}"
        )
    for task in args.tasks:
        mine = [r for r in rows if r["task"] == task]
        print(
            f"{task}: mean C2ST {np.mean([r['c2st'] for r in mine]):.3f} over "
            f"{len(mine)} observations; flagged {sum(r['flagged'] for r in mine)}"
        )


if __name__ == "__main__":
    main()
