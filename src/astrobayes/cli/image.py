"""``astrobayes image CONFIG.toml [--out DIR]``: MAP imaging with uncertainty.

The TOML format is documented in ``docs/imaging.md``; ``astrobayes image --demo`` runs
a built-in offline example. Outputs in ``DIR``: ``map.fits``, ``dirty.fits``, PNG
figures and ``results.json`` (``snr_db`` when a truth is given, ``gamma_alpha``,
``map_potential``, timings, ...).

``[prior] kind = "denoiser"`` (``docs/imaging_priors.md``) samples the posterior with a
learned denoiser's Tweedie score as the prior (PnP-ULA, ``imaging.pnp``) instead of a
MAP: ``weights = "radio" | "galaxy" | "PATH.eqx"``, ``score_sigma`` (the smoothing
``sqrt(eps)`` of the score), ``positivity``, and a ``[sampling]`` table (``method =
"pnp-ula"``, ``chains``, ``warmup``, ``samples``, ``thinning``, ``step_fraction``,
``seed``, ``interval``). It writes ``posterior_mean.fits``, ``posterior_std.fits``,
``interval_lower.fits`` / ``interval_upper.fits`` (per-pixel central credible
intervals), ``dirty.fits``, ``reconstruction.png`` and ``results.json`` (``snr_db`` of
the posterior mean when a truth is given, R-hat / ESS, status, timings).

``[prior] kind = "diffusion"`` uses a noise-conditional denoiser as a diffusion prior
(``imaging.diffusion``: annealed Langevin over a VE noise schedule, ``[sampling] method =
"diffusion"``): ``weights`` as above, ``sigma_min`` / ``sigma_max`` (default the
denoiser's training range), ``levels``, ``steps_per_level``, ``likelihood_inflation``,
``final_likelihood_inflation``; the same ``[sampling]`` keys and outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from pathlib import Path

import numpy as np

DEMO_CONFIG = """
# Built-in demo: a synthetic 64x64 radio source observed through a random
# low-frequency-weighted Fourier mask at ISNR 30 dB.
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0
seed = 0

[prior]
kind = "wavelets"
wavelet_order = 8
wavelet_levels = 3
strength = "discrepancy"
positivity = true

[uq]
alpha = 0.01
superpixel_sizes = [8, 4]
test_regions = [[28, 36, 28, 36], [2, 8, 2, 8]]
"""


DENOISER_KIND = "denoiser"
DIFFUSION_KIND = "diffusion"
SAMPLING_METHODS = ("pnp-ula", "diffusion")
#: the sampling method each sampled prior kind runs
KIND_METHODS = {DENOISER_KIND: "pnp-ula", DIFFUSION_KIND: "diffusion"}


@dataclasses.dataclass(frozen=True)
class DenoiserPriorTable:
    """``[prior]`` with ``kind = "denoiser"``: a learned denoiser's Tweedie score as the prior.

    Attributes:
        kind: ``"denoiser"``.
        weights: ``"radio"`` or ``"galaxy"`` (the shipped denoisers) or an ``.eqx`` file
            written by ``astrobayes.io.save_denoiser``.
        score_sigma: Noise level ``sigma`` of the Tweedie score (``eps = sigma**2``, image
            units); must lie in the denoiser's training range.
        positivity: Pull the chains towards ``x >= 0`` (Moreau-Yosida term).
        alpha: Prior weight.
    """

    kind: str = DENOISER_KIND
    weights: str = "radio"
    score_sigma: float = 0.01
    positivity: bool = True
    alpha: float = 1.0

    def __post_init__(self):
        if self.kind != DENOISER_KIND:
            raise ValueError(f"prior.kind must be {DENOISER_KIND!r} here; got {self.kind!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(
                f"prior.weights must be 'radio', 'galaxy' or a .eqx path; got {self.weights!r}"
            )
        for name in ("score_sigma", "alpha"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (np.isfinite(value) and value > 0)
            ):
                raise ValueError(f"prior.{name} must be a positive number; got {value!r}")
        if not isinstance(self.positivity, bool):
            raise TypeError(f"prior.positivity must be true or false; got {self.positivity!r}")


@dataclasses.dataclass(frozen=True)
class DiffusionPriorTable:
    """``[prior]`` with ``kind = "diffusion"``: a noise-conditional denoiser as a diffusion prior.

    Attributes:
        kind: ``"diffusion"``.
        weights: ``"radio"`` or ``"galaxy"`` (shipped, noise-conditional) or an ``.eqx`` file.
        sigma_min: Last level of the VE schedule (image units); default the denoiser's
            ``sigma_min``.
        sigma_max: First level; default the denoiser's ``sigma_max``.
        levels: Number of levels.
        steps_per_level: Annealed Langevin steps per level.
        likelihood_inflation: ``c`` in the likelihood variance ``sigma^2 + c sigma_t^2``
            during the annealing.
        final_likelihood_inflation: ``c`` for the chain continued at ``sigma_min`` (the
            warm-up and kept draws); default ``likelihood_inflation``; 0 makes that chain
            PnP-ULA's target (the plain likelihood).
    """

    kind: str = DIFFUSION_KIND
    weights: str = "radio"
    sigma_min: float | None = None
    sigma_max: float | None = None
    levels: int = 20
    steps_per_level: int = 20
    likelihood_inflation: float = 1.0
    final_likelihood_inflation: float | None = None

    def __post_init__(self):
        if self.kind != DIFFUSION_KIND:
            raise ValueError(f"prior.kind must be {DIFFUSION_KIND!r} here; got {self.kind!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(
                f"prior.weights must be 'radio', 'galaxy' or a .eqx path; got {self.weights!r}"
            )
        for name in ("sigma_min", "sigma_max"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (np.isfinite(value) and value > 0)
            ):
                raise ValueError(f"prior.{name} must be a positive number; got {value!r}")
        for name, minimum in (("levels", 2), ("steps_per_level", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"prior.{name} must be an integer >= {minimum}; got {value!r}")
        for name in ("likelihood_inflation", "final_likelihood_inflation"):
            value = getattr(self, name)
            if value is None and name == "final_likelihood_inflation":
                continue
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and np.isfinite(value) and value >= 0
            ):
                raise ValueError(f"prior.{name} must be a number >= 0; got {value!r}")


@dataclasses.dataclass(frozen=True)
class SamplingTable:
    """``[sampling]`` (only with ``[prior] kind = "denoiser"``): the PnP-ULA run.

    Attributes:
        method: ``"pnp-ula"``.
        chains: Number of chains.
        warmup: Discarded iterations per chain.
        samples: Kept samples per chain.
        thinning: Iterations per kept sample.
        step_fraction: Fraction of Laumont et al.'s step bound (<= 1 keeps ULA's bias
            controlled).
        seed: Seed of the chains' key.
        interval: Probability of the central per-pixel credible intervals.
        lipschitz_iterations: Power iterations of the score's Lipschitz estimate.
    """

    method: str = "pnp-ula"
    chains: int = 4
    warmup: int = 1000
    samples: int = 200
    thinning: int = 10
    step_fraction: float = 1.0
    seed: int = 0
    interval: float = 0.9
    lipschitz_iterations: int = 20

    def __post_init__(self):
        if self.method not in SAMPLING_METHODS:
            raise ValueError(
                f"sampling.method must be one of {SAMPLING_METHODS}; got {self.method!r}"
            )
        for name, minimum in (
            ("chains", 1),
            ("warmup", 0),
            ("samples", 4),
            ("thinning", 1),
            ("seed", 0),
            ("lipschitz_iterations", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"sampling.{name} must be an integer >= {minimum}; got {value!r}")
        if isinstance(self.step_fraction, bool) or not (
            isinstance(self.step_fraction, int | float) and 0 < self.step_fraction <= 2
        ):
            raise ValueError(
                f"sampling.step_fraction must lie in (0, 2]; got {self.step_fraction!r}"
            )
        if isinstance(self.interval, bool) or not (
            isinstance(self.interval, int | float) and 0 < self.interval < 1
        ):
            raise ValueError(f"sampling.interval must lie in (0, 1); got {self.interval!r}")


@dataclasses.dataclass(frozen=True)
class DenoiserRun:
    """The denoiser-prior settings of a config: ``[prior]`` and ``[sampling]``."""

    prior: DenoiserPriorTable | DiffusionPriorTable
    sampling: SamplingTable


def split_denoiser_tables(document: dict, base: Path) -> tuple[dict, DenoiserRun | None]:
    """Take the denoiser ``[prior]`` and ``[sampling]`` tables out of a parsed TOML document.

    Returns the document the MAP settings parse (``[prior]`` emptied for a denoiser run)
    and the :class:`DenoiserRun` (``None`` for the other prior kinds).

    Raises:
        ValueError: On unknown keys or bad values in these tables, or a ``[sampling]``
            table with another prior kind.
    """
    from astrobayes._config import from_mapping

    document = dict(document)
    prior = document.get("prior", {})
    sampling = document.pop("sampling", None)
    kind = prior.get("kind") if isinstance(prior, dict) else None
    if kind not in KIND_METHODS:
        if sampling is not None:
            raise ValueError(
                f"[sampling] is for [prior] kind = {DENOISER_KIND!r} or {DIFFUSION_KIND!r}; "
                f"got kind {prior.get('kind', 'wavelets') if isinstance(prior, dict) else prior!r}"
            )
        return document, None
    table_class = DenoiserPriorTable if kind == DENOISER_KIND else DiffusionPriorTable
    table = from_mapping(table_class, prior, table="prior")
    if table.weights not in ("radio", "galaxy"):
        table = dataclasses.replace(table, weights=str((base / table.weights).resolve()))
    sampling = {"method": KIND_METHODS[kind], **(sampling or {})}
    sampling_table = from_mapping(SamplingTable, sampling, table="sampling")
    if sampling_table.method != KIND_METHODS[kind]:
        raise ValueError(
            f"sampling.method must be one of ({KIND_METHODS[kind]!r},) for [prior] kind = "
            f"{kind!r}; got {sampling_table.method!r}"
        )
    run = DenoiserRun(table, sampling_table)
    document["prior"] = {"positivity": getattr(table, "positivity", False)}
    return document, run


def add_parser(subparsers) -> None:
    """Register the ``image`` subcommand."""
    parser = subparsers.add_parser(
        "image",
        help="radio-interferometric imaging with MAP-based uncertainty",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="TOML configuration (see docs/imaging.md)")
    parser.add_argument("--out", default="imaging_output", help="output folder")
    parser.add_argument("--demo", action="store_true", help="run the built-in offline demo")
    parser.add_argument("--no-plots", action="store_true", help="write no figures")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (posterior sampling)"
    )
    parser.set_defaults(func=run)


def load_config(text: str, base: Path):
    """Parse the TOML text into an ``ImagingFileConfig``; paths resolved against ``base``."""
    return load_run_config(text, base)[0]


def load_run_config(text: str, base: Path):
    """``(ImagingFileConfig, DenoiserRun | None)`` from the TOML text (paths against ``base``)."""
    from astrobayes._config import from_mapping
    from astrobayes.imaging.problem import DEMO, ImagingFileConfig

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None
    document, denoiser_run = split_denoiser_tables(document, base)
    config = from_mapping(ImagingFileConfig, document)

    def resolve(value):
        return value if value is None or value == DEMO else str((base / value).resolve())

    data = config.data
    data = dataclasses.replace(
        data, **{k: resolve(getattr(data, k)) for k in ("truth", "mask", "uv", "visibilities")}
    )
    prior = dataclasses.replace(
        config.prior,
        crr_weights=resolve(config.prior.crr_weights),
        weights=resolve(config.prior.weights),
    )
    return dataclasses.replace(config, data=data, prior=prior), denoiser_run


def read_problem(config):
    """Read the files named by the ``[data]`` settings and build the imaging problem."""
    import jax

    from astrobayes.imaging.problem import (
        DEMO,
        build_problem,
        demo_sky,
        problem_image_shape,
        resize_image,
    )
    from astrobayes.io.imaging_files import (
        prepare_protocol_image,
        read_fits_image,
        read_fourier_mask,
        read_uv_points,
        read_visibilities,
    )

    truth = None
    if config.truth == DEMO:
        truth = demo_sky(64)
    elif config.truth is not None:
        truth = read_fits_image(config.truth)
        if config.resize is not None:
            truth = resize_image(truth, config.resize)
        if config.normalise:
            truth = prepare_protocol_image(truth, flip=config.flip)
        elif config.flip:
            truth = np.flipud(truth)
    arrays = {}
    if config.is_observed:
        observed = read_visibilities(config.visibilities)
        arrays.update(
            visibilities=observed.visibilities,
            visibility_sigma=observed.sigma,
            uv_points=observed.uv,
        )
    elif config.uv is not None:
        arrays["uv_points"] = read_uv_points(config.uv)
    if config.mask is not None and config.mask != DEMO:
        arrays["mask"] = read_fourier_mask(config.mask, shape=problem_image_shape(config, truth))
    return build_problem(jax.random.key(config.seed), config, truth=truth, **arrays)


def _summary(config, problem, result, figures, *, is_observed: bool) -> dict:
    """The content of ``results.json``."""
    image = np.asarray(result.map_result.image)
    return {
        "prior": config.prior,
        "status": result.status,
        "strength": result.strength,
        "strength_rule": result.strength_rule,
        "discrepancy_ratio": None
        if result.strength_result is None
        else result.strength_result.discrepancy_ratio,
        "snr_db": result.snr_db,
        "map_potential": result.map_result.potential,
        "map_status": result.map_result.status,
        "map_iterations": result.map_result.num_iterations,
        "gamma_alpha": None if result.hpd is None else result.hpd.gamma_alpha,
        "alpha": config.alpha,
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": is_observed,
        "image_shape": list(image.shape),
        "lci": [
            {
                "superpixel_size": lci.superpixel_size,
                "mean_length": float(np.mean(lci.length)),
                "num_unbounded": lci.num_unbounded,
                "num_lower_at_positivity": int(np.sum(np.asarray(lci.lower_status) == 1)),
            }
            for lci in result.intervals
        ],
        "hypothesis_tests": [
            {
                "region": list(region),
                "reject_null": t.reject_null,
                "potential_surrogate": t.potential_surrogate,
            }
            for t, region in zip(result.tests, config.test_regions, strict=True)
        ],
        "timings": result.timings,
        "figures": [p.name for p in figures],
    }


def _write_outputs(out: Path, config, problem, result, *, no_plots: bool = False) -> list[Path]:
    """FITS images and figures; returns the figure paths."""
    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.io.imaging_files import write_fits_image

    image = np.asarray(result.map_result.image)
    write_fits_image(
        out / "map.fits", image, header={"PRIOR": config.prior, "STRENGTH": result.strength}
    )
    write_fits_image(out / "dirty.fits", np.asarray(result.dirty))
    for lci in result.intervals:
        size = lci.superpixel_size
        write_fits_image(out / f"lci_length_{size}x{size}.fits", np.asarray(lci.length))
    return write_imaging_figures(
        out,
        result,
        truth=problem.truth,
        test_regions=config.test_regions,
        prior=config.prior,
        no_plots=no_plots,
    )


def _run_unrolled(config, file_config, problem, out: Path, *, no_plots: bool) -> int:
    """``[prior] kind = "unrolled"``: the learned network; same files as a MAP run."""
    from types import SimpleNamespace

    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.imaging.unrolled import run_unrolled_imaging
    from astrobayes.io import software_provenance, write_json_atomic
    from astrobayes.io.imaging_files import write_fits_image
    from astrobayes.io.unrolled_files import read_unrolled

    weights = read_unrolled(config.unrolled_weights)
    result = run_unrolled_imaging(
        weights.network,
        problem.operator,
        problem.visibilities,
        problem.sigma,
        truth=problem.truth,
    )
    out.mkdir(parents=True, exist_ok=True)
    image = np.asarray(result.image)
    write_fits_image(out / "map.fits", image, header={"PRIOR": "unrolled"})
    write_fits_image(out / "dirty.fits", np.asarray(result.dirty))
    view = SimpleNamespace(  # the figure writer's view of a MAP result
        map_result=result, dirty=result.dirty, snr_db=result.snr_db, intervals=(), tests=()
    )
    figures = write_imaging_figures(
        out, view, truth=problem.truth, prior="unrolled", no_plots=no_plots
    )
    summary = {
        "prior": "unrolled",
        "status": result.status,
        "snr_db": result.snr_db,
        "discrepancy_ratio": result.discrepancy_ratio,
        "weights": str(weights.path),
        "network": dataclasses.asdict(weights.network.settings),
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": file_config.data.is_observed,
        "image_shape": list(image.shape),
        "timings": result.timings,
        "figures": [p.name for p in figures],
    }
    summary["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", summary)
    snr = "" if result.snr_db is None else f", SNR {result.snr_db:.2f} dB"
    print(
        f"astrobayes image: unrolled network{snr}; data residual ratio "
        f"{result.discrepancy_ratio:.3g}; status {result.status.name.lower()}; "
        f"wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1


def load_denoiser_weights(weights: str):
    """The denoiser named by ``[prior] weights``: a shipped name or a file."""
    from astrobayes.io.denoiser_files import load_denoiser, load_shipped_denoiser

    if weights in ("radio", "galaxy"):
        return load_shipped_denoiser(weights)[0]
    return load_denoiser(weights)


def _check_denoiser_fits(denoiser, shape: tuple[int, int]) -> None:
    """``prior.weights``' network must tile the image (sides multiples of its stride)."""
    if shape[0] % denoiser.size_multiple or shape[1] % denoiser.size_multiple:
        raise ValueError(
            f"prior.weights: the image shape {shape} does not fit the denoiser (sides must be "
            f"multiples of {denoiser.size_multiple})"
        )


def _write_sampled_posterior(
    out: Path, result, problem, dirty, sampling, *, header: dict, label: str, no_plots: bool
) -> dict:
    """FITS, figures and the shared ``results.json`` entries of a sampled posterior.

    ``result`` is a PnP-ULA or diffusion result (``summaries``, ``mean``, ``variance``,
    ``rhat``, ``ess``); writes ``posterior_mean/std.fits``, ``interval_lower/upper.fits``
    (central ``sampling.interval`` intervals of the kept draws), ``dirty.fits`` and the
    figures; returns the SNR, interval and convergence entries of the summary.
    """
    from types import SimpleNamespace

    from astrobayes.cli._figures import write_imaging_figures
    from astrobayes.imaging.map import snr_db
    from astrobayes.io.imaging_files import write_fits_image

    shape = tuple(problem.operator.image_shape)
    draws = np.asarray(result.summaries).reshape(-1, shape[0] * shape[1])
    tail = (1.0 - sampling.interval) / 2
    if draws.shape[0] and np.all(np.isfinite(draws)):
        lower, upper = np.quantile(draws, [tail, 1.0 - tail], axis=0)
    else:
        lower = upper = np.full(shape[0] * shape[1], np.nan)
    lower, upper = lower.reshape(shape), upper.reshape(shape)
    mean = np.asarray(result.mean)
    snr = (
        None
        if problem.truth is None or not np.all(np.isfinite(mean))
        else snr_db(problem.truth, mean)
    )
    out.mkdir(parents=True, exist_ok=True)
    write_fits_image(out / "posterior_mean.fits", mean, header=header)
    write_fits_image(out / "posterior_std.fits", np.sqrt(np.asarray(result.variance)))
    write_fits_image(out / "interval_lower.fits", lower, header={"PROB": sampling.interval})
    write_fits_image(out / "interval_upper.fits", upper, header={"PROB": sampling.interval})
    write_fits_image(out / "dirty.fits", np.asarray(dirty))
    view = SimpleNamespace(  # the figure writer's view of a MAP result
        map_result=SimpleNamespace(image=mean), dirty=dirty, snr_db=snr, intervals=(), tests=()
    )
    figures = write_imaging_figures(out, view, truth=problem.truth, prior=label, no_plots=no_plots)
    finite_rhat = np.asarray(result.rhat)[np.isfinite(result.rhat)]
    finite_ess = np.asarray(result.ess)[np.isfinite(result.ess)]
    inside = None
    if problem.truth is not None and np.all(np.isfinite(lower)):
        truth = np.asarray(problem.truth)
        inside = float(np.mean((truth >= lower) & (truth <= upper)))
    return {
        "snr_db": snr,
        "interval": sampling.interval,
        "interval_mean_width": float(np.mean(upper - lower)),
        "truth_inside_interval_fraction": inside,
        "rhat_max": float(finite_rhat.max()) if finite_rhat.size else None,
        "rhat_median": float(np.median(finite_rhat)) if finite_rhat.size else None,
        "ess_min": float(finite_ess.min()) if finite_ess.size else None,
        "ess_median": float(np.median(finite_ess)) if finite_ess.size else None,
        "figures": [p.name for p in figures],
    }


def _sampling_bar(no_progress: bool):
    """The progress bar of the sampled-posterior priors (PnP-ULA, annealed Langevin)."""
    from astrobayes.cli._common import ProgressBar

    return ProgressBar(
        "image",
        disable=no_progress,
        labels={"sampling": "PnP-ULA", "diffusion": "annealed Langevin"},
        units={"sampling": "iteration", "diffusion": "step"},
    )


def _run_denoiser(
    denoiser_run, file_config, problem, out: Path, *, no_plots: bool, no_progress: bool = False
) -> int:
    """``[prior] kind = "denoiser"``: PnP-ULA with the denoiser's Tweedie score."""
    import time

    import jax
    import jax.numpy as jnp

    from astrobayes.imaging.denoisers import score_function
    from astrobayes.imaging.pnp import pnp_ula, score_lipschitz_estimate
    from astrobayes.io import software_provenance, write_json_atomic

    table, sampling = denoiser_run.prior, denoiser_run.sampling
    denoiser = load_denoiser_weights(table.weights)
    settings = denoiser.settings
    shape = tuple(problem.operator.image_shape)
    _check_denoiser_fits(denoiser, shape)
    if not settings.sigma_min <= table.score_sigma <= settings.sigma_max:
        raise ValueError(
            f"prior.score_sigma must lie in the denoiser's training range "
            f"[{settings.sigma_min}, {settings.sigma_max}]; got {table.score_sigma}"
        )
    timings = {}
    wall, cpu = time.perf_counter(), time.process_time()
    score = score_function(denoiser, table.score_sigma)
    dirty = problem.operator.adjoint(problem.visibilities)
    start = jnp.maximum(dirty, 0.0) if table.positivity else dirty
    lipschitz = score_lipschitz_estimate(
        score, start[None], num_iterations=sampling.lipschitz_iterations
    )
    with _sampling_bar(no_progress) as bar:
        result = pnp_ula(
            jax.random.key(sampling.seed),
            problem.operator,
            problem.visibilities,
            float(problem.sigma),
            score,
            start,
            score_lipschitz=lipschitz,
            alpha=table.alpha,
            box=(0.0, None) if table.positivity else None,
            num_chains=sampling.chains,
            num_samples=sampling.samples,
            num_warmup=sampling.warmup,
            thinning=sampling.thinning,
            step_fraction=sampling.step_fraction,
            loop="python",  # a convolutional score: one compiled step per iteration
            progress_fn=bar,
        )
    timings["sampling_s"] = time.perf_counter() - wall
    timings["sampling_cpu_s"] = time.process_time() - cpu
    written = _write_sampled_posterior(
        out,
        result,
        problem,
        dirty,
        sampling,
        header={"PRIOR": "denoiser", "EPSSIG": table.score_sigma},
        label="denoiser (PnP-ULA mean)",
        no_plots=no_plots,
    )
    summary = {
        "prior": DENOISER_KIND,
        "weights": table.weights,
        "denoiser": dataclasses.asdict(settings),
        "score_sigma": table.score_sigma,
        "sampling": dataclasses.asdict(sampling),
        "status": result.status,
        **written,
        "step_size": result.step_size,
        "score_lipschitz": result.score_lipschitz,
        "likelihood_lipschitz": result.likelihood_lipschitz,
        "num_score_evaluations_per_chain": result.num_score_evaluations,
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": file_config.data.is_observed,
        "image_shape": list(shape),
        "timings": timings,
    }
    summary["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", summary)
    snr = summary["snr_db"]
    snr_text = "" if snr is None else f", SNR of the posterior mean {snr:.2f} dB"
    print(
        f"astrobayes image: PnP-ULA with the {table.weights} denoiser ({sampling.chains} chains "
        f"x {sampling.samples} samples){snr_text}; max R-hat {summary['rhat_max']}; status "
        f"{result.status.name.lower()}; wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1


def _run_diffusion(
    diffusion_run, file_config, problem, out: Path, *, no_plots: bool, no_progress: bool = False
) -> int:
    """``[prior] kind = "diffusion"``: annealed Langevin with a noise-conditional denoiser."""
    import time

    import jax

    from astrobayes.imaging.diffusion import NoiseSchedule, diffusion_posterior, diffusion_score
    from astrobayes.io import software_provenance, write_json_atomic

    table, sampling = diffusion_run.prior, diffusion_run.sampling
    denoiser = load_denoiser_weights(table.weights)
    settings = denoiser.settings
    shape = tuple(problem.operator.image_shape)
    _check_denoiser_fits(denoiser, shape)
    if not settings.noise_input:
        raise ValueError("prior.weights: a diffusion prior needs a noise-conditional denoiser")
    sigma_min = settings.sigma_min if table.sigma_min is None else table.sigma_min
    sigma_max = settings.sigma_max if table.sigma_max is None else table.sigma_max
    for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not settings.sigma_min <= value <= settings.sigma_max:
            raise ValueError(
                f"prior.{name} must lie in the denoiser's training range "
                f"[{settings.sigma_min}, {settings.sigma_max}]; got {value}"
            )
    if not sigma_min < sigma_max:
        raise ValueError(f"prior.sigma_min must be < prior.sigma_max; got {sigma_min}, {sigma_max}")
    schedule = NoiseSchedule(sigma_min, sigma_max, table.levels)
    timings = {}
    wall, cpu = time.perf_counter(), time.process_time()
    dirty = problem.operator.adjoint(problem.visibilities)
    with _sampling_bar(no_progress) as bar:
        result = diffusion_posterior(
            jax.random.key(sampling.seed),
            problem.operator,
            problem.visibilities,
            float(problem.sigma),
            diffusion_score(denoiser),
            schedule,
            num_chains=sampling.chains,
            steps_per_level=table.steps_per_level,
            num_warmup=sampling.warmup,
            num_samples=sampling.samples,
            thinning=sampling.thinning,
            step_fraction=sampling.step_fraction,
            likelihood_inflation=table.likelihood_inflation,
            final_likelihood_inflation=table.final_likelihood_inflation,
            progress_fn=bar,
        )
    timings["sampling_s"] = time.perf_counter() - wall
    timings["sampling_cpu_s"] = time.process_time() - cpu
    written = _write_sampled_posterior(
        out,
        result,
        problem,
        dirty,
        sampling,
        header={"PRIOR": "diffusion", "SIGMIN": sigma_min, "SIGMAX": sigma_max},
        label="diffusion (annealed Langevin mean)",
        no_plots=no_plots,
    )
    summary = {
        "prior": DIFFUSION_KIND,
        "weights": table.weights,
        "denoiser": dataclasses.asdict(settings),
        "schedule": dataclasses.asdict(schedule),
        "steps_per_level": table.steps_per_level,
        "likelihood_inflation": table.likelihood_inflation,
        "final_likelihood_inflation": table.final_likelihood_inflation,
        "sampling": dataclasses.asdict(sampling),
        "status": result.status,
        **written,
        "step_sizes": [float(v) for v in result.step_sizes],
        "final_step_size": result.final_step_size,
        "final_noise_variance": result.final_noise_variance,
        "num_score_evaluations_per_chain": result.num_score_evaluations,
        "sigma": float(problem.sigma),
        "num_visibilities": problem.operator.num_visibilities,
        "observed_visibilities": file_config.data.is_observed,
        "image_shape": list(shape),
        "timings": timings,
    }
    summary["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", summary)
    snr = summary["snr_db"]
    snr_text = "" if snr is None else f", SNR of the posterior mean {snr:.2f} dB"
    print(
        f"astrobayes image: annealed Langevin with the {table.weights} diffusion prior "
        f"({sampling.chains} chains x {sampling.samples} samples){snr_text}; max R-hat "
        f"{summary['rhat_max']}; status {result.status.name.lower()}; wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1


def run(args: argparse.Namespace) -> int:
    """Run the ``image`` command; return the exit code."""
    from astrobayes.imaging.pipeline import run_imaging
    from astrobayes.io import software_provenance, write_json_atomic
    from astrobayes.io.imaging_files import read_convex_ridge

    if args.demo == (args.config is not None):
        raise ValueError("give a CONFIG.toml or --demo (not both)")
    if args.demo:
        text, base = DEMO_CONFIG, Path.cwd()
    else:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        text, base = path.read_text(), path.parent
    file_config, denoiser_run = load_run_config(text, base)
    if denoiser_run is not None and isinstance(denoiser_run.prior, DiffusionPriorTable):
        problem = read_problem(file_config.data)
        return _run_diffusion(
            denoiser_run,
            file_config,
            problem,
            Path(args.out),
            no_plots=args.no_plots,
            no_progress=args.no_progress,
        )
    if denoiser_run is not None:
        problem = read_problem(file_config.data)
        return _run_denoiser(
            denoiser_run,
            file_config,
            problem,
            Path(args.out),
            no_plots=args.no_plots,
            no_progress=args.no_progress,
        )
    config = file_config.imaging_config()
    problem = read_problem(file_config.data)
    if config.prior == "unrolled":
        return _run_unrolled(config, file_config, problem, Path(args.out), no_plots=args.no_plots)
    crr = read_convex_ridge(config.crr_weights) if config.prior == "crr" else None
    result = run_imaging(
        config, problem.operator, problem.visibilities, problem.sigma, truth=problem.truth, crr=crr
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _write_outputs(out, config, problem, result, no_plots=args.no_plots)
    summary = _summary(config, problem, result, figures, is_observed=file_config.data.is_observed)
    summary["provenance"] = software_provenance()
    write_json_atomic(out / "results.json", summary)
    snr = "" if result.snr_db is None else f", SNR {result.snr_db:.2f} dB"
    gamma = "n/a" if result.hpd is None else f"{result.hpd.gamma_alpha:.6g}"
    print(
        f"astrobayes image: MAP ({config.prior}, strength {result.strength:.4g}){snr}; "
        f"gamma_alpha {gamma}; status {result.status.name.lower()}; wrote {out}/results.json"
    )
    return 0 if not result.status.is_failure else 1
