"""astrobayes vs the ``sbi`` package (PyTorch) on sbibm tasks: C2ST and training wall time.

Both packages train NPE on the *same* simulations (drawn with sbibm's simulators) for
each task and budget; posterior draws for each observation are scored with sbibm's
C2ST against its reference posterior samples (the same metric for both). Training wall
time and CPU seconds are measured side by side in one run on this machine (with
``--threads 1`` the CPU seconds are each package's work, whatever else the machine runs);
``--jax-cache DIR`` keeps astrobayes' compilations on disk, so a second run measures it warm.

Peers (bench extra): ``pip install torch==2.13.0 sbi`` then ``pip install --no-deps
sbibm`` and ``pip install pandas pyro-ppl future autograd``.

Usage::

    .venv/bin/python benchmarks/sbi_vs_sbi.py --tasks two_moons gaussian_linear slcp \
        --budgets 1000 10000 --num-observations 10 --num-samples 10000
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
from timing import Stopwatch

warnings.filterwarnings("ignore")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def astrobayes_prior(task_name, dim):
    from astrobayes.sbi import Prior

    if task_name == "two_moons":
        return Prior.uniform([-1.0] * dim, [1.0] * dim)
    if task_name == "slcp":
        return Prior.uniform([-3.0] * dim, [3.0] * dim)
    if task_name == "gaussian_linear":
        return Prior.normal([0.0] * dim, [np.sqrt(0.1)] * dim)
    raise ValueError(f"no prior mapping for {task_name}")


# Matched flows: both packages use a 5-layer masked autoregressive flow, 2 hidden layers
# of 50 units per conditioner; "rqs": rational-quadratic splines with 10 bins (sbi's
# "maf_rqs"), "affine": affine autoregressive layers (sbi's "maf").
SBI_FLOWS = {"rqs": "maf_rqs", "affine": "maf"}


def _our_flow(args):
    from astrobayes.sbi import FlowConfig

    return FlowConfig(flow_layers=5, nn_width=50, nn_depth=2, knots=10 if args.flow == "rqs" else 0)


def _our_training(args):
    from astrobayes.sbi import SBITrainingConfig

    # sbi's defaults: batch 200, Adam 5e-4, 10% validation, stop after 20 epochs without
    # improvement (patience), gradient norm clipped at 5, no epoch cap (ours: --max-epochs).
    return SBITrainingConfig(
        learning_rate=5e-4,
        batch_size=200,
        validation_fraction=0.1,
        patience=20,
        max_epochs=args.max_epochs,
        clip_max_norm=5.0,
    )


def run_sbi_package(theta, x, prior, observations, num_samples, seed, args):
    import tempfile

    import torch
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from torch.utils.tensorboard.writer import SummaryWriter

    torch.manual_seed(seed)
    # sbi writes tensorboard logs to ./sbi-logs by default: keep the checkout clean.
    writer = SummaryWriter(tempfile.mkdtemp(prefix="sbi-logs-"))
    density_estimator = posterior_nn(
        SBI_FLOWS[args.flow], hidden_features=50, num_transforms=5, num_bins=10
    )
    inference = NPE(
        prior=prior,
        density_estimator=density_estimator,
        show_progress_bars=False,
        summary_writer=writer,
    )
    clock = Stopwatch()
    with clock():
        estimator = inference.append_simulations(theta, x).train(
            training_batch_size=200,
            learning_rate=5e-4,
            validation_fraction=0.1,
            stop_after_epochs=20,
            max_num_epochs=args.max_epochs,
            clip_max_norm=5.0,
            show_train_summary=False,
        )
    posterior = inference.build_posterior(estimator)
    samples = [
        posterior.sample((num_samples,), x=obs, show_progress_bars=False) for obs in observations
    ]
    return clock, samples, inference.summary["epochs_trained"][-1]


def _train_amortised(train_fn, theta, x, prior, seed, args):
    """Train an amortised estimator on all simulations; returns it, the clock and the epochs."""
    import jax

    key_train, key_sample = jax.random.split(jax.random.key(seed))
    clock = Stopwatch()
    with clock():
        estimator, info = train_fn(
            key_train,
            prior,
            theta.numpy(),
            x.numpy(),
            flow_config=_our_flow(args),
            training_config=_our_training(args),
        )
    return estimator, clock, info.num_epochs, key_sample


def run_astrobayes(theta, x, prior, observations, num_samples, seed, args):
    import jax

    from astrobayes.sbi import sample_posterior, train_npe

    npe, clock, epochs, key_sample = _train_amortised(train_npe, theta, x, prior, seed, args)
    keys = jax.random.split(key_sample, len(observations))
    samples = [
        sample_posterior(k, npe, obs.numpy().reshape(-1), num_samples).samples
        for k, obs in zip(keys, observations, strict=True)
    ]
    return clock, samples, epochs


def _mcmc_config(args):
    from astrobayes.sbi import MCMCConfig

    return MCMCConfig(
        num_chains=args.num_chains, num_warmup=args.num_warmup, num_initial=args.num_initial
    )


def _posterior_report(name, posterior):
    d = posterior.diagnostics
    if posterior.method == "smc":
        detail = f"{d['num_temperatures']} temperatures, acceptance {d['acceptance_rate']:.2f}"
    else:
        detail = (
            f"R-hat {d.get('split_rhat_max', float('nan')):.3f}, divergent "
            f"{d.get('num_divergent', 0)}, acceptance {d.get('acceptance_rate', 0):.2f}"
        )
    print(f"    {name}: {posterior.status.name}, {detail}", flush=True)


def run_astrobayes_nle(theta, x, prior, observations, num_samples, seed, args):
    """Amortised NLE: one training, then NUTS (many chains from the prior) per observation."""
    import jax

    from astrobayes.sbi import sample_posterior, train_nle

    nle, clock, epochs, key_sample = _train_amortised(train_nle, theta, x, prior, seed, args)
    keys = jax.random.split(key_sample, len(observations))
    samples = []
    for i, (k, obs) in enumerate(zip(keys, observations, strict=True)):
        start = time.perf_counter()
        posterior = sample_posterior(
            k,
            nle,
            obs.numpy().reshape(-1),
            num_samples,
            method=args.posterior_method,
            mcmc_config=_mcmc_config(args),
        )
        _posterior_report(f"observation {i + 1} ({time.perf_counter() - start:.0f} s)", posterior)
        samples.append(posterior.samples)
    return clock, samples, epochs


def run_astrobayes_snle(task, budget, prior, observations, num_samples, seed, args):
    """Sequential NLE (Papamakarios et al. 2019): ``rounds`` rounds per observation.

    Round 1 simulates from the prior; each later round simulates at draws from the
    current NLE posterior and continues training the NLE on all simulations so far.
    Training time is summed over rounds and observations.
    """
    import jax
    import torch

    from astrobayes.sbi import sample_posterior, train_nle

    rounds = args.rounds
    per_round = budget // rounds
    simulator = task.get_simulator()
    task_prior = task.get_prior()
    mcmc = _mcmc_config(args)
    samples, clock, epochs = [], Stopwatch(), 0
    keys = jax.random.split(jax.random.key(seed), len(observations))
    for i, (key, obs) in enumerate(zip(keys, observations, strict=True)):
        x_obs = obs.numpy().reshape(-1)
        torch.manual_seed(seed + 1000 * i)
        theta = task_prior(num_samples=per_round)
        thetas, xs = [theta.numpy()], [simulator(theta).numpy()]
        nle = None
        for r, k in enumerate(jax.random.split(key, rounds)):
            k_train, k_post = jax.random.split(k)
            theta_all, x_all = np.concatenate(thetas), np.concatenate(xs)
            keep = np.all(np.isfinite(x_all), axis=1)
            with clock():
                nle, info = train_nle(
                    k_train,
                    prior,
                    theta_all[keep],
                    x_all[keep],
                    flow_config=_our_flow(args),
                    training_config=_our_training(args),
                    initial=nle if args.warm_start else None,
                )
            epochs += info.num_epochs
            last = r == rounds - 1
            start = time.perf_counter()
            posterior = sample_posterior(
                k_post,
                nle,
                x_obs,
                num_samples if last else per_round,
                method=args.posterior_method,
                mcmc_config=mcmc,
            )
            _posterior_report(
                f"observation {i + 1} round {r + 1} ({info.num_epochs} epochs, "
                f"{info.wall_time_s:.0f} s train, {time.perf_counter() - start:.0f} s "
                f"{args.posterior_method})",
                posterior,
            )
            if last:
                samples.append(posterior.samples)
                if args.predictive_check:
                    _report_predictive_check(simulator, posterior.samples, x_obs, i)
            else:
                theta = torch.as_tensor(posterior.samples[:per_round], dtype=torch.float32)
                thetas.append(theta.numpy())
                xs.append(simulator(theta).numpy())
    return clock, samples, epochs


def _report_predictive_check(simulator, samples, x_obs, index, num_draws=4000):
    """Posterior predictive check of one observation (simulations at posterior draws)."""
    import torch

    from astrobayes.validation import posterior_predictive_check

    theta = torch.as_tensor(np.asarray(samples[:num_draws]), dtype=torch.float32)
    x_pred = simulator(theta).numpy()
    keep = np.all(np.isfinite(x_pred), axis=1)
    check = posterior_predictive_check(x_obs, x_pred[keep])
    print(
        f"    observation {index + 1} predictive check: {check.status.name}, adjusted p "
        f"{check.p_adjusted:.2g} (joint {check.p_joint:.2g}, smallest component "
        f"{check.p_values.min():.2g})",
        flush=True,
    )


def run_astrobayes_tsnpe(task, budget, prior, observations, num_samples, seed, rounds=2):
    """Truncated sequential NPE: one run of ``rounds`` rounds per observation."""
    import jax
    import torch

    from astrobayes.sbi import PythonSimulator, SBIConfig, run_sbi

    simulator_fn = task.get_simulator()

    class TorchBatchSimulator(PythonSimulator):
        def __call__(self, key, theta):
            torch.manual_seed(int(jax.random.randint(key, (), 0, 2**31 - 1)))
            x = simulator_fn(torch.as_tensor(np.asarray(theta), dtype=torch.float32)).numpy()
            return x.astype(float), [None] * x.shape[0]

    names = [f"theta_{i}" for i in range(prior.dim)]
    spec = {}
    for i, name in enumerate(names):
        low, high = float(prior.low[i]), float(prior.high[i])
        spec[name] = {"uniform" if prior.is_bounded[i] else "normal": [low, high]}
    config = SBIConfig(
        simulator="sbibm:task",
        prior=spec,
        x_obs=tuple(observations[0].numpy().reshape(-1).tolist()),
        num_simulations=budget // rounds,
        num_rounds=rounds,
        num_posterior_samples=num_samples,
        num_validation=0,
    )
    samples, clock, epochs = [], Stopwatch(), 0
    clock.cpu = float("nan")  # run_sbi reports wall-clock training time only
    keys = jax.random.split(jax.random.key(seed), len(observations))
    for k, obs in zip(keys, observations, strict=True):
        result = run_sbi(k, config, obs.numpy().reshape(-1), simulator=TorchBatchSimulator(print))
        clock.wall += sum(r.training_time_s for r in result.rounds)
        epochs += sum(r.training_epochs for r in result.rounds)
        samples.append(result.posterior.samples)
    return clock, samples, epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["two_moons", "gaussian_linear", "slcp"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--num-observations", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results as JSON here")
    parser.add_argument(
        "--metric",
        default="sbibm",
        choices=["sbibm", "astrobayes"],
        help="C2ST implementation: sbibm's (scikit-learn MLP, slow on CPU) or "
        "astrobayes.validation.c2st (same architecture and 5 folds, in JAX)",
    )
    parser.add_argument(
        "--packages", nargs="+", default=["sbi", "astrobayes"], choices=["sbi", "astrobayes"]
    )
    parser.add_argument(
        "--astrobayes-method",
        default="npe",
        choices=["npe", "tsnpe", "nle", "snle"],
        help="npe / nle: amortised; tsnpe: 2 truncated rounds per observation; snle: "
        "--rounds rounds per observation, each simulating at the current posterior's draws "
        "(budget split evenly, training time summed over rounds and observations)",
    )
    parser.add_argument(
        "--flow",
        default="rqs",
        choices=["rqs", "affine"],
        help="flow family for both packages' NPE (rqs: sbi maf_rqs; affine: sbi maf)",
    )
    parser.add_argument(
        "--max-epochs", type=int, default=2**31 - 1, help="epoch cap for both (sbi: none)"
    )
    parser.add_argument(
        "--first-observation",
        type=int,
        default=1,
        help="sbibm observation number to start from (1-10)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for both torch and XLA (0: torch uses every core, XLA its default)",
    )
    parser.add_argument(
        "--jax-cache",
        default=None,
        help="JAX persistent compilation cache folder (default: none, every compilation "
        "is paid); a second run with the same folder measures astrobayes warm",
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds of snle")
    parser.add_argument(
        "--predictive-check",
        action="store_true",
        help="snle: posterior predictive check of each observation (4000 simulations)",
    )
    parser.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="snle: continue training the previous round's NLE",
    )
    parser.add_argument(
        "--posterior-method",
        default="smc",
        choices=["smc", "nuts"],
        help="sampler of the NLE posterior (nle, snle)",
    )
    parser.add_argument("--num-chains", type=int, default=100, help="NUTS chains (nle, snle)")
    parser.add_argument("--num-warmup", type=int, default=300, help="NUTS warm-up (nle, snle)")
    parser.add_argument(
        "--num-initial",
        type=int,
        default=100_000,
        help="prior draws importance-resampled to start the chains (nle, snle)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        # Before JAX starts: one XLA CPU thread pool of this size, like torch's below.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
            + f" intra_op_parallelism_threads={args.threads}"
        )

    if args.jax_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", args.jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

    import sbibm
    import torch
    from sbibm.metrics import c2st

    torch.set_num_threads(args.threads or os.cpu_count() or 1)

    def score(samples, reference, index):
        if args.metric == "sbibm":
            return float(
                c2st(torch.as_tensor(samples, dtype=torch.float32), torch.as_tensor(reference))[0]
            )
        import jax

        from astrobayes.validation import c2st as c2st_jax

        return c2st_jax(jax.random.key(index), samples, reference).accuracy

    rows = []
    for task_name in args.tasks:
        task = sbibm.get_task(task_name)
        numbers = range(args.first_observation, args.first_observation + args.num_observations)
        observations = [task.get_observation(i) for i in numbers]
        references = [task.get_reference_posterior_samples(i)[: args.num_samples] for i in numbers]
        for budget in args.budgets:
            torch.manual_seed(args.seed)
            theta = task.get_prior()(num_samples=budget)
            x = task.get_simulator()(theta)
            ours_prior = astrobayes_prior(task_name, theta.shape[1])
            results = {}
            for name, runner, prior in (
                ("sbi", run_sbi_package, task.get_prior_dist()),
                ("astrobayes", run_astrobayes, ours_prior),
            ):
                if name not in args.packages:
                    continue
                if name == "astrobayes" and args.astrobayes_method == "tsnpe":
                    clock, samples, epochs = run_astrobayes_tsnpe(
                        task, budget, prior, observations, args.num_samples, args.seed
                    )
                elif name == "astrobayes" and args.astrobayes_method == "nle":
                    clock, samples, epochs = run_astrobayes_nle(
                        theta, x, prior, observations, args.num_samples, args.seed, args
                    )
                elif name == "astrobayes" and args.astrobayes_method == "snle":
                    clock, samples, epochs = run_astrobayes_snle(
                        task, budget, prior, observations, args.num_samples, args.seed, args
                    )
                else:
                    clock, samples, epochs = runner(
                        theta, x, prior, observations, args.num_samples, args.seed, args
                    )
                print(
                    f"{task_name:16s} {budget:6d} {name:10s} trained in {clock.wall:7.1f} s "
                    f"({clock.cpu:.1f} CPU-s, {epochs} epochs)",
                    flush=True,
                )
                scores = [
                    score(np.asarray(s), ref.numpy(), i)
                    for i, (s, ref) in enumerate(zip(samples, references, strict=True))
                ]
                results[name] = {
                    "train_time_s": clock.wall,
                    "train_cpu_s": clock.cpu,
                    "epochs": int(epochs),
                    "c2st": scores,
                    "c2st_mean": float(np.mean(scores)),
                }
                print(
                    f"{task_name:16s} {budget:6d} {name:10s} C2ST {np.mean(scores):.3f} "
                    f"{np.round(scores, 3).tolist()} "
                    f"train {clock.wall:7.1f} s, {clock.cpu:.1f} CPU-s ({epochs} epochs)",
                    flush=True,
                )
            ratio = cpu_ratio = float("nan")
            if len(results) == 2:
                ours, theirs = results["astrobayes"], results["sbi"]
                ratio = ours["train_time_s"] / theirs["train_time_s"]
                cpu_ratio = ours["train_cpu_s"] / theirs["train_cpu_s"]
                print(
                    f"{task_name:16s} {budget:6d} time ratio astrobayes/sbi = {ratio:.2f} "
                    f"(CPU-s: {cpu_ratio:.2f})",
                    flush=True,
                )
            rows.append(
                {"task": task_name, "budget": budget, "ratio": ratio, "cpu_ratio": cpu_ratio}
                | results
            )
            if args.out:
                with open(args.out, "w") as handle:
                    json.dump({"args": vars(args), "rows": rows}, handle, indent=2)
    print("\ntask             budget  C2ST sbi  C2ST ours  time sbi  time ours  ratio  CPU-s ratio")
    nan = {"c2st_mean": float("nan"), "train_time_s": float("nan")}
    for r in rows:
        sbi_row, ours = r.get("sbi", nan), r.get("astrobayes", nan)
        print(
            f"{r['task']:16s} {r['budget']:6d}  {sbi_row['c2st_mean']:8.3f}  "
            f"{ours['c2st_mean']:9.3f}  {sbi_row['train_time_s']:8.1f}  "
            f"{ours['train_time_s']:9.1f}  {r['ratio']:5.2f}  {r['cpu_ratio']:11.2f}"
        )


if __name__ == "__main__":
    main()
