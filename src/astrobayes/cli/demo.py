"""``astrobayes demo``: is dark energy evolving? LCDM vs wCDM vs w0waCDM on DESI DR2 BAO.

A built-in config of ``astrobayes run`` (written to ``DIR/demo.toml``; ``astrobayes run
DIR/demo.toml`` gives the same numbers): samples each model with NUTS (checkpointed: a
killed run resumes), estimates each evidence with the learned harmonic mean, prints a
table and writes ``DIR/results.json``, ``DIR/report.md``, figures and the chains (GetDist,
``.npz``, ArviZ netCDF). Then checks the estimator on problems with a known evidence and
prints estimate, error, truth and time (exact draws of the demo's chain shape, 8 x 1500,
in the models' dimensions, 2 and 4).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax

from astrobayes.cli.run import add_compile_cache_option
from astrobayes.sampling import NUTSConfig

#: The run's NUTS settings. Chains run one after another (``chain_method =
#: "sequential"``): on a CPU each chain then pays for its own trajectories, not the
#: longest of the eight. Measured 2026-12-05 on w0wacdm with ``run_nuts`` and the demo's
#: keys (seeds 0, 1, 2; compilation included): 32.8 / 31.0 / 34.0 CPU-s vectorised against
#: 20.0 / 19.2 / 20.5 sequential, at the same gradient evaluations (0.71-0.76 M), min ESS
#: (1054 / 1031 / 1205 against 1059 / 1119 / 1105) and R-hat (all <= 1.009), no
#: divergences (docs/scale.md).
DEMO_SAMPLING = NUTSConfig(
    num_chains=8,
    num_warmup=400,
    num_samples=1500,
    checkpoint_every=500,
    chain_method="sequential",
)

#: Each model's own ``[models.NAME.sampler]`` keys (the rest are :data:`DEMO_SAMPLING`'s).
#: Measured 2026-12-05 with ``run_nuts`` and the demo's keys (seed 0, one core,
#: compilation included; docs/scale.md): a dense metric with chains run one after another
#: took lcdm's NUTS from 16.0 to 10.7 CPU-s (min ESS 2113 -> 8946) and wcdm's from 25.4 to
#: 12.5 (ESS 3642 -> 6506), all R-hat <= 1.0012 and no divergences. w0wacdm keeps the
#: diagonal metric: dense gave divergences (6 vectorised, 26 sequential).
DEMO_MODEL_SAMPLERS = {
    "lcdm": {"dense_mass": True},
    "wcdm": {"dense_mass": True},
}


def demo_sampling() -> dict[str, NUTSConfig]:
    """``{name: NUTSConfig}``: the settings each demo model runs with (for ``compare``).

    Example:
        >>> settings = demo_sampling()
        >>> settings["lcdm"].dense_mass, settings["w0wacdm"] == DEMO_SAMPLING
        (True, True)

    """
    return {
        name: dataclasses.replace(DEMO_SAMPLING, **DEMO_MODEL_SAMPLERS.get(name, {}))
        for name in ("lcdm", "wcdm", "w0wacdm")
    }


def add_parser(subparsers) -> None:
    """Register the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="is dark energy evolving? LCDM vs wCDM vs w0waCDM on DESI DR2 BAO",
        description=__doc__,
    )
    parser.add_argument(
        "--out", default="astrobayes-demo", help="output directory (default astrobayes-demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument(
        "--skip-checks", action="store_true", help="skip the check on problems with known evidence"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plots", action="store_true", help="write no figures")
    add_compile_cache_option(parser)
    parser.set_defaults(func=run)


def lcdm():
    """Flat LCDM on DESI DR2 BAO (the ``model`` function the built-in config names)."""
    return _dark_energy("lcdm")


def wcdm():
    """Flat wCDM on DESI DR2 BAO."""
    return _dark_energy("wcdm")


def w0wacdm():
    """Flat w0waCDM (CPL) on DESI DR2 BAO, uniform on the region w0 + wa < 0."""
    return _dark_energy("w0wacdm")


def _dark_energy(name: str):
    from astrobayes.cosmology.dark_energy import dark_energy_models

    return next(m for m in dark_energy_models() if m.name == name)


def demo_config(seed: int = 0) -> dict:
    """The demo as the TOML table of ``astrobayes run`` (written to ``DIR/demo.toml``)."""
    return {
        "seed": seed,
        "reference": "lcdm",
        "evidence_target": "rqspline",
        "sampler": {
            "num_chains": DEMO_SAMPLING.num_chains,
            "num_warmup": DEMO_SAMPLING.num_warmup,
            "num_samples": DEMO_SAMPLING.num_samples,
            "checkpoint_every": DEMO_SAMPLING.checkpoint_every,
            "chain_method": DEMO_SAMPLING.chain_method,
        },
        "models": {
            name: {
                "model": f"astrobayes.cli.demo:{name}",
                **({"sampler": DEMO_MODEL_SAMPLERS[name]} if name in DEMO_MODEL_SAMPLERS else {}),
            }
            for name in ("lcdm", "wcdm", "w0wacdm")
        },
    }


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 1 when an evidence (or a NUTS run) failed."""
    from astrobayes.cli.run import execute
    from astrobayes.cosmology import desi_dr2_bao
    from astrobayes.io import write_text_atomic
    from astrobayes.runconfig import run_config_from_mapping

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = demo_config(args.seed)
    config = run_config_from_mapping(table)
    write_text_atomic(out / "demo.toml", _toml(table))
    print(
        "Priors: Om ~ U(0.01, 0.99), h*rd ~ U(50, 150) Mpc, w ~ U(-3, 1), w0 ~ U(-3, 1), "
        "wa ~ U(-3, 2) with w0 + wa < 0"
    )

    def add_checks(payload: dict) -> None:
        payload["settings"]["data"] = (
            "DESI DR2 BAO (arXiv:2503.14738), 13 values, published covariance"
        )
        payload["settings"]["priors"] = {
            "omega_m": [0.01, 0.99],
            "h_rd": [50, 150],
            "w": [-3, 1],
            "w0": [-3, 1],
            "wa": [-3, 2],
            "w0+wa": "< 0 (uniform on the region, area 15.5)",
        }
        if not args.skip_checks:
            print("\nCheck of the evidence estimator on problems with a known evidence:")
            payload["known_evidence_checks"] = _known_evidence_checks(args.seed)

    return execute(
        config,
        out,
        base=out,
        title=(
            "Is dark energy evolving? Flat LCDM vs wCDM vs w0waCDM on DESI DR2 BAO "
            "(arXiv:2503.14738) -- astrobayes run with the built-in config demo.toml"
        ),
        no_progress=args.no_progress,
        figure_options={"data": desi_dr2_bao(), "no_plots": args.no_plots},
        after_comparison=add_checks,
    )


def _toml(table: dict) -> str:
    """The built-in config as TOML text (flat values, ``[sampler]``, ``[models.NAME]``)."""

    def value(v):
        return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)

    lines = ["# astrobayes demo: the built-in config (astrobayes run demo.toml gives the same)"]
    lines += [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines += ["", "[sampler]"] + [f"{k} = {value(v)}" for k, v in table["sampler"].items()]
    for name, model in table["models"].items():
        flat = {k: v for k, v in model.items() if not isinstance(v, dict)}
        lines += ["", f"[models.{name}]"] + [f"{k} = {value(v)}" for k, v in flat.items()]
        if "sampler" in model:  # this model's own settings
            own = model["sampler"].items()
            lines += ["", f"[models.{name}.sampler]"] + [f"{k} = {value(v)}" for k, v in own]
    return "\n".join(lines) + "\n"


def _known_evidence_checks(seed: int) -> list[dict]:
    from astrobayes.evidence import estimate
    from astrobayes.models import bimodal_gaussian, gaussian_gaussian_prior, rosenbrock

    out = []
    print(
        f"{'problem':<22} {'estimate':>9} {'± error':>8} {'truth':>9} {'(est-truth)/err':>16} {'time':>7}"
    )
    for index, problem in enumerate(
        (gaussian_gaussian_prior(4), rosenbrock(), bimodal_gaussian(2))
    ):
        key = jax.random.fold_in(jax.random.key(seed), 1000 + index)
        sample_key, fit_key = jax.random.split(key)
        # The demo's own chain shape (8 x 1500): the check measures the estimator on as
        # many draws as the models get (and trains on as many: 40% fewer than the
        # 8 x 2500 it used before). And the models' dimensions (2 and 4; d = 8
        # until 2026-12-05): the check is of the estimator at the settings the
        # demo's numbers depend on, and its flows share the models' compiled training,
        # sampling and evaluation programs (a d = 8 problem compiled its own: ~12 CPU-s
        # of a cold demo). Higher dimensions are checked in docs/evidence.md (d = 30).
        chains = problem.sample_chains(
            sample_key, DEMO_SAMPLING.num_chains, DEMO_SAMPLING.num_samples
        )
        start = time.perf_counter()
        r = estimate(fit_key, chains)
        seconds = time.perf_counter() - start
        pull = (r.log_evidence - problem.log_evidence) / r.log_evidence_std
        print(
            f"{problem.name:<22} {r.log_evidence:>9.4f} {r.log_evidence_std:>8.4f} "
            f"{problem.log_evidence:>9.4f} {pull:>16.2f} {seconds:>6.1f}s  {r.status.name.lower()}"
        )
        out.append(
            {
                "problem": problem.name,
                "log_evidence": r.log_evidence,
                "log_evidence_std": r.log_evidence_std,
                "truth": problem.log_evidence,
                "pull": pull,
                "seconds": seconds,
                "status": r.status,
            }
        )
    return out
