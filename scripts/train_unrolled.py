r"""Train the unrolled imaging network shipped in ``astrobayes/imaging/weights/``.

Training pairs (all offline, drawn afresh for every chunk from the chunk's key):

* skies from :func:`astrobayes.imaging.skies.random_sky` (point sources, Gaussian
  blobs, power-law diffuse emission, radio galaxies; peak 1);
* randomised uv-coverages from :mod:`astrobayes.imaging.uv_coverage` (subsets,
  durations, rotations and hour-angle ranges of the shared MeerKAT tracks, and random
  arrays), with the coverages reserved for the robustness test never drawn;
* complex Gaussian noise at an ISNR drawn uniformly in ``--isnr-range`` dB;
* per pair: the truth, the dirty image ``Phi^H y`` and the Toeplitz spectrum of
  ``Phi^H Phi`` (:mod:`astrobayes.imaging.toeplitz`), so a training step never calls a
  NUFFT.

M31 and Cygnus A (``../shared/data/imaging/images``) are never read. The loss is the
mean relative squared error ``||x_hat - x||^2 / ||x||^2`` (its ``-10 log10`` is the
reconstruction SNR). Training runs in chunks through :func:`astrobayes._training.fit`
(the one training loop): after each chunk the network and the progress are written
atomically to ``--checkpoint`` (``model.eqx`` + ``state.json``), and a rerun resumes
after the last finished chunk (the optimiser's moments restart with each chunk). The
image size can change between chunks (``--sizes``): the network is convolutional and
its physics inputs are computed at whatever size it is given.

Usage:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_unrolled.py \\
        --checkpoint /tmp/unrolled_ckpt --out my_network.eqx [--dc-iterations 8]
        [--init-weights shipped|FILE] [--tracks DIR] [--max-wall-seconds S]
        [--simulator finufft|direct] [--prefetch] [--compile-cache DIR]

``--tracks`` points at the MeerKAT tracks when ``../shared`` is not beside the checkout
(e.g. a copy carried to another machine); ``--max-wall-seconds`` stops before a chunk that
would end past the budget (judged by the last chunk's time) and writes ``--out`` from the
chunks done, recording ``chunks_done`` and ``chunks_planned`` in the JSON.

``--simulator direct`` observes the pairs by exact sums in one compiled program
(:func:`astrobayes.imaging.uv_coverage.simulate_observations_direct`) instead of
jax-finufft: for a GPU, where jax-finufft is not built; slow on a CPU. With it,
``--prefetch`` draws the next chunk's skies and coverages on the host CPU in a thread
while the accelerator trains on this chunk (on the H200, drawing was about half of each
chunk's wall time); the draws are the same with or without it.

The shipped weights were made by four runs (the fourth on an NVIDIA H200 with
``--simulator direct``), each started from the previous one's
weights (``--init-weights``): their commands, times and losses are in the weights' JSON
(``command``, ``history``, ``started_from``) and in docs/learned_imaging.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from astrobayes._training import TrainingConfig, fit, split_validation
from astrobayes.compilation import enable_compilation_cache
from astrobayes.imaging.skies import random_sky
from astrobayes.imaging.toeplitz import NormalOperator
from astrobayes.imaging.unrolled import UnrolledNetwork, UnrolledSettings
from astrobayes.imaging.uv_coverage import (
    random_array_coverage,
    random_track_coverage,
    rotate_uv,
    simulate_observations_direct,
    simulate_training_set,
)
from astrobayes.io import software_provenance, write_json_atomic
from astrobayes.io.imaging_files import read_uv_points
from astrobayes.io.unrolled_files import read_unrolled, write_unrolled

TRACKS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imaging" / "meerkat_uv"


HELDOUT_ANGLES = (math.pi / 3, math.pi / 2)
"""Rotations (modulo pi) never drawn in training: the robustness rows test them."""
HELDOUT_ARRAY_SEED = 10_000
"""Random-array keys ``fold_in(key(seed), HELDOUT_ARRAY_SEED + i)`` are never drawn here."""
TRACK_TIMES = {1: 15, 2: 30, 4: 60}
"""Time steps of the shared 1/2/4 h tracks (time-major, 2,016 baselines each)."""


def relative_error_loss(model, batch, key):
    """Mean over the batch of ``||x_hat - x||^2 / ||x||^2``."""
    del key
    truth, dirty, spectrum = batch
    height, width = truth.shape[1:]

    def one(x, d, s):
        normal = NormalOperator(
            spectrum=s, shape=(height, width), padded_shape=(2 * height, 2 * width)
        )
        estimate = model(normal, d)
        return jnp.sum((estimate - x) ** 2) / jnp.sum(x**2)

    return jnp.mean(jax.vmap(one)(truth, dirty, spectrum))


def training_angle(u: float) -> float:
    """A rotation angle uniform on ``[0, pi)`` minus the held-out window."""
    low, high = HELDOUT_ANGLES
    allowed = math.pi - (high - low)
    angle = u * allowed
    return angle if angle < low else angle + (high - low)


def draw_coverage(key, tracks, array_fraction):
    """One training coverage: a MeerKAT track variant or a random array.

    Track variants (:func:`~astrobayes.imaging.uv_coverage.random_track_coverage`: a
    time window, flagged baselines) are rotated by :func:`training_angle` (outside the
    held-out window) and, with probability 1/2, reflected (``u`` and ``v`` swapped, as
    the QuantifAI protocol puts ``uu`` on the rows).
    """
    key_kind, key_cov, key_geometry = jax.random.split(key, 3)
    u = np.asarray(jax.random.uniform(key_geometry, (3,)), np.float64)
    if float(jax.random.uniform(key_kind)) < array_fraction:
        return random_array_coverage(key_cov)
    hours = (1, 2, 4)[min(2, int(u[0] * 3))]
    points = random_track_coverage(
        key_cov, tracks[hours], num_times=TRACK_TIMES[hours], rotate=False
    )
    if u[1] < 0.5:
        points = points[:, ::-1]
    return rotate_uv(points, training_angle(u[2]))


def draw_pairs(key, num, size, tracks, isnr_range, num_coverages, array_fraction):
    """``num`` training pairs ``(truth, dirty, spectrum)`` of ``size x size`` pixels."""
    key_sky, key_cov, key_obs = jax.random.split(key, 3)
    skies = jax.vmap(lambda k: random_sky(k, (size, size)))(jax.random.split(key_sky, num))
    coverages = [
        draw_coverage(jax.random.fold_in(key_cov, c), tracks, array_fraction)
        for c in range(num_coverages)
    ]
    pairs = simulate_training_set(key_obs, skies, coverages, isnr_db_range=tuple(isnr_range))
    spectra = pairs.normal.spectrum[pairs.coverage_index]
    return (
        jnp.asarray(pairs.truth, jnp.float32),
        jnp.asarray(pairs.backprojection, jnp.float32),
        jnp.asarray(spectra, jnp.float32),
    )


MAX_POINTS = 131_072
"""Coverages padded to this many points for ``--simulator direct`` (one compiled shape;
the 4 h track has 120,960 points, the largest random array 64,512)."""


@functools.partial(jax.jit, static_argnums=1)
def _sky_batch(keys, size):
    """``random_sky`` for each key, one compiled program.

    Run on the CPU: on an H200 (JAX 0.11.2) this program did not compile in 95 s.
    """
    return jax.vmap(lambda k: random_sky(k, (size, size)))(keys)


def _direct_keys(key):
    """``(sky, coverage, ISNR, noise)`` keys of one chunk's direct draws."""
    key_sky, key_cov, key_obs = jax.random.split(key, 3)
    return key_sky, key_cov, *jax.random.split(key_obs)


def draw_host_direct(key, num, size, tracks, isnr_range, num_coverages, array_fraction):
    """The host-side half of :func:`draw_pairs_direct`: skies, padded coverages, ISNRs.

    Runs on the CPU device whatever the default device (a ``jax.default_device``
    context, which is per thread), so ``--prefetch`` can run it in a thread for the next
    chunk while the accelerator trains on this one. Returns numpy arrays only.
    """
    per = max(1, num // num_coverages)
    num_coverages = -(-num // per)
    key_sky, key_cov, key_isnr, _ = _direct_keys(key)
    with jax.default_device(jax.devices("cpu")[0]):
        coverages = [
            np.asarray(draw_coverage(jax.random.fold_in(key_cov, c), tracks, array_fraction))
            for c in range(num_coverages)
        ]
        total = num_coverages * per
        skies = np.asarray(_sky_batch(jax.random.split(key_sky, total), size))
        isnr_unit = np.asarray(jax.random.uniform(key_isnr, (num_coverages, per)))
    points = np.zeros((num_coverages, MAX_POINTS, 2), np.float32)
    counts = np.array([len(p) for p in coverages])
    if counts.max() > MAX_POINTS:
        raise SystemExit(f"a coverage has {counts.max()} points, more than {MAX_POINTS}")
    for c, p in enumerate(coverages):
        points[c, : len(p)] = p
    low, high = isnr_range
    return {
        "skies": skies,
        "points": points,
        "counts": counts,
        "isnr": low + (high - low) * isnr_unit,
    }


def observe_direct(key, num, host):
    """The device half of :func:`draw_pairs_direct`: observe ``host``'s skies (one program)."""
    num_coverages, per = host["isnr"].shape
    size = host["skies"].shape[-1]
    key_noise = _direct_keys(key)[3]
    skies = jax.device_put(host["skies"], jax.devices()[0])
    dirty, spectrum, _ = simulate_observations_direct(
        key_noise,
        skies.reshape(num_coverages, per, size, size),
        host["points"],
        host["counts"],
        host["isnr"],
    )
    spectra = jnp.repeat(spectrum, per, axis=0)
    return (
        jnp.asarray(skies[:num], jnp.float32),
        jnp.asarray(dirty.reshape(num_coverages * per, size, size)[:num], jnp.float32),
        jnp.asarray(spectra[:num], jnp.float32),
    )


def draw_pairs_direct(key, num, size, tracks, isnr_range, num_coverages, array_fraction):
    """:func:`draw_pairs` by :func:`simulate_observations_direct` (one program, any device).

    Coverages and skies are drawn on the CPU (coverage sizes vary, which would compile
    anew on an accelerator; the sky program compiles too slowly there), padded to
    :data:`MAX_POINTS` and observed in one compiled call with ``num // num_coverages``
    skies each; the pairs are the same distribution as :func:`draw_pairs` (other noise
    keys). The two halves are :func:`draw_host_direct` and :func:`observe_direct`.
    """
    host = draw_host_direct(key, num, size, tracks, isnr_range, num_coverages, array_fraction)
    return observe_direct(key, num, host)


def chunk_plan(sizes, pairs, epochs, *, final_chunks, learning_rate, final_learning_rate):
    """One ``{"size", "pairs", "epochs", "learning_rate"}`` per chunk.

    ``epochs`` has one entry (every chunk) or one per chunk; the last ``final_chunks``
    chunks use ``final_learning_rate``.

    Raises:
        ValueError: If the lists do not give one entry per chunk, or a count is not
            positive.
    """
    sizes, pairs, epochs = list(sizes), list(pairs), list(epochs)
    if len(sizes) != len(pairs):
        raise ValueError(f"--sizes and --pairs need one entry per chunk; got {sizes} and {pairs}")
    if len(epochs) == 1:
        epochs = epochs * len(sizes)
    if len(epochs) != len(sizes):
        raise ValueError(f"--epochs needs one entry, or one per chunk ({len(sizes)}); got {epochs}")
    if min(sizes + pairs + epochs, default=0) < 1 or final_chunks < 0:
        raise ValueError(
            f"sizes, pairs and epochs must be >= 1 and final chunks >= 0; got {sizes}, {pairs}, "
            f"{epochs}, {final_chunks}"
        )
    first_final = len(sizes) - final_chunks
    return [
        {
            "size": size,
            "pairs": num,
            "epochs": num_epochs,
            "learning_rate": final_learning_rate if chunk >= first_final else learning_rate,
        }
        for chunk, (size, num, num_epochs) in enumerate(zip(sizes, pairs, epochs, strict=True))
    ]


def out_of_time(elapsed: float, last_chunk: float, budget: float | None) -> bool:
    """Whether a chunk started now would end past ``budget`` seconds (``--max-wall-seconds``).

    The next chunk is assumed to take as long as the last one (``0`` before the first, so
    the first chunk always runs); ``None`` means no budget.
    """
    return budget is not None and elapsed + last_chunk > budget


def initialised_from(network: UnrolledNetwork, source: str) -> UnrolledNetwork:
    """``network`` started from the network in ``source``.

    The U-Nets and Tikhonov filters are copied, and the data-consistency weights when
    both networks have that step. A network with more (unshared) stages than the source
    grows it: the extra stages start with a zero output layer, so they add nothing
    until trained, and their filter and data-consistency weights copy the source's
    last ones.
    """
    start = read_unrolled(None if source == "shipped" else source).network
    mine, theirs = network.settings, start.settings
    same_unet = (mine.widths, mine.convs_per_level, mine.shared, mine.use_bias) == (
        theirs.widths,
        theirs.convs_per_level,
        theirs.shared,
        theirs.use_bias,
    )
    grows = mine.num_stages >= theirs.num_stages and not mine.shared
    if not same_unet or (mine.num_stages != theirs.num_stages and not grows):
        raise SystemExit(f"--init-weights holds {theirs}; its U-Nets do not fit {mine}")
    extra = mine.num_stages - theirs.num_stages

    def silent(unet):
        head = unet.head
        zeros = [jnp.zeros_like(head.weight)] + (
            [] if head.bias is None else [jnp.zeros_like(head.bias)]
        )
        where = (lambda h: (h.weight,)) if head.bias is None else (lambda h: (h.weight, h.bias))
        return eqx.tree_at(lambda u: where(u.head), unet, tuple(zeros))

    def extended(values):
        return jnp.concatenate([values, jnp.repeat(values[-1:], extra)])

    stages = tuple(start.stages) + tuple(silent(u) for u in network.stages[theirs.num_stages :])
    network = eqx.tree_at(
        lambda n: (n.stages, n.log_eps), network, (stages, extended(start.log_eps))
    )
    if network.log_mu is not None and start.log_mu is not None:  # both have data consistency
        network = eqx.tree_at(lambda n: n.log_mu, network, extended(start.log_mu))
    return network


def started_from(source: str | None) -> dict | None:
    """The record of the weights ``--init-weights`` named (path, command, cost, lineage).

    Returns:
        ``None`` without ``--init-weights``; else the source's path and the entries of its
        ``.json`` that say how it was made (its own ``started_from`` included, so the
        whole lineage and its total training time stay on record).
    """
    if not source:
        return None
    weights = read_unrolled(None if source == "shipped" else source)
    keep = ("command", "training_cpu_s", "training_wall_s", "final_validation_snr_db")
    record = {"path": str(weights.path), **{k: weights.metadata.get(k) for k in keep}}
    record["started_from"] = weights.metadata.get("started_from")
    return record


def load_state(checkpoint: Path):
    """``(network, state)`` of the last finished chunk, or ``(None, fresh state)``."""
    state_path = checkpoint / "state.json"
    if not state_path.is_file():
        return None, {"chunks_done": 0, "history": [], "cpu_s": 0.0, "wall_s": 0.0}
    return read_unrolled(checkpoint / "model.eqx").network, json.loads(state_path.read_text())


def main() -> None:
    """Train (or resume) and write the weights."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="src/astrobayes/imaging/weights/unrolled_default.eqx")
    parser.add_argument("--checkpoint", default="unrolled_checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--shared", action="store_true", help="one U-Net for all stages")
    parser.add_argument(
        "--dc-iterations",
        type=int,
        default=0,
        help="conjugate-gradient steps of a data-consistency step after each stage (0: none)",
    )
    parser.add_argument("--initial-mu", type=float, default=1.0, help="its initial weight")
    parser.add_argument(
        "--init-weights",
        default=None,
        help="start from this network's U-Nets and filters ('shipped' = the shipped weights); "
        "same stages and widths",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[64] * 6 + [128] * 3, help="image side per chunk"
    )
    parser.add_argument("--pairs", type=int, nargs="+", default=[800] * 6 + [320] * 3)
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[3],
        help="epochs per chunk (one, or one per chunk)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--final-learning-rate", type=float, default=3e-4, help="for the last --final-chunks chunks"
    )
    parser.add_argument("--final-chunks", type=int, default=2)
    parser.add_argument(
        "--schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="step size within a chunk (cosine: decays to 5%% of the chunk's rate)",
    )
    parser.add_argument("--isnr-range", type=float, nargs=2, default=[20.0, 40.0])
    parser.add_argument("--pairs-per-coverage", type=int, default=4)
    parser.add_argument("--array-fraction", type=float, default=0.25)
    parser.add_argument(
        "--tracks", type=Path, default=TRACKS, help="folder of the MeerKAT 1/2/4 h uv tracks"
    )
    parser.add_argument(
        "--simulator",
        choices=("finufft", "direct"),
        default="finufft",
        help="how pairs are observed: jax-finufft on the CPU, or exact sums in one compiled "
        "program (a GPU; jax-finufft has no GPU build here)",
    )
    parser.add_argument(
        "--max-wall-seconds",
        type=float,
        default=None,
        help="stop before a chunk that would end past this many seconds of this run "
        "(judged by the last chunk's time) and write --out from the chunks done",
    )
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="with --simulator direct: draw the next chunk's skies and coverages on the host "
        "CPU in a thread while this chunk trains (same draws; for an accelerator)",
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        default=None,
        help="JAX's persistent compilation cache in this folder: a rerun (e.g. on a fresh "
        "accelerator machine given the folder back) skips compiling the training programs",
    )
    args = parser.parse_args()
    if args.compile_cache is not None:
        enable_compilation_cache(args.compile_cache)
    try:
        plan = chunk_plan(
            args.sizes,
            args.pairs,
            args.epochs,
            final_chunks=args.final_chunks,
            learning_rate=args.learning_rate,
            final_learning_rate=args.final_learning_rate,
        )
    except ValueError as error:
        parser.error(str(error))

    tracks = {
        h: read_uv_points(args.tracks / f"meerkat_simulation_{h}h_uv_only.npz") for h in (1, 2, 4)
    }
    checkpoint = Path(args.checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    settings = UnrolledSettings(
        num_stages=args.stages,
        widths=tuple(args.widths),
        shared=args.shared,
        dc_iterations=args.dc_iterations,
        initial_mu=args.initial_mu,
    )
    network, state = load_state(checkpoint)
    if network is None:
        network = UnrolledNetwork(settings, key=jax.random.key(args.seed))
        if args.init_weights:
            network = initialised_from(network, args.init_weights)
    elif network.settings != settings:
        raise SystemExit(f"checkpoint holds {network.settings}, asked for {settings}")
    key = jax.random.key(args.seed + 1)
    num_chunks = len(plan)

    def draw_arguments(chunk):
        """``(key, num, size, tracks, isnr_range, num_coverages, array_fraction)``."""
        num, size = plan[chunk]["pairs"], plan[chunk]["size"]
        coverages = max(1, num // args.pairs_per_coverage)
        chunk_key = jax.random.fold_in(key, chunk)
        return chunk_key, num, size, tracks, args.isnr_range, coverages, args.array_fraction

    def host_draws(chunk):
        return draw_host_direct(*draw_arguments(chunk))

    prefetched = None
    pool = ThreadPoolExecutor(1) if args.prefetch and args.simulator == "direct" else None
    run_start, last_wall = time.perf_counter(), 0.0
    for chunk in range(state["chunks_done"], num_chunks):
        elapsed = time.perf_counter() - run_start
        if out_of_time(elapsed, last_wall, args.max_wall_seconds):
            print(
                f"stopping before chunk {chunk + 1}/{num_chunks}: {elapsed:.0f} s spent, the "
                f"last chunk took {last_wall:.0f} s, --max-wall-seconds {args.max_wall_seconds:g}",
                flush=True,
            )
            break
        cpu0, wall0 = time.process_time(), time.perf_counter()
        chunk_key = jax.random.fold_in(key, chunk)
        size, num_pairs = plan[chunk]["size"], plan[chunk]["pairs"]
        rate, epochs = plan[chunk]["learning_rate"], plan[chunk]["epochs"]
        if args.simulator == "direct":
            # this chunk's host draws (prefetched while the last chunk trained, if asked),
            # then the next chunk's in the background: the same draws either way
            host = prefetched.result() if prefetched else host_draws(chunk)
            prefetched = None
            if pool is not None and chunk + 1 < num_chunks:
                prefetched = pool.submit(host_draws, chunk + 1)
            data = observe_direct(chunk_key, num_pairs, host)
        else:
            data = draw_pairs(*draw_arguments(chunk))
        jax.block_until_ready(data)
        data_s = time.process_time() - cpu0
        print(f"chunk {chunk + 1}: {num_pairs} pairs drawn, {data_s:.0f} CPU s", flush=True)
        train, validation = split_validation(jax.random.fold_in(chunk_key, 1), data, 0.1)
        config = TrainingConfig(
            learning_rate=rate,
            batch_size=args.batch,
            max_epochs=epochs,
            patience=epochs,
            schedule=args.schedule,
            clip_max_norm=1.0,
            epoch_loop="python",  # conv nets: ~15x faster on a CPU than one scanned epoch
        )
        network, info = fit(
            jax.random.fold_in(chunk_key, 2),
            network,
            relative_error_loss,
            train,
            validation,
            config=config,
            progress_fn=lambda stage, done, total, start=cpu0: print(
                f"  {stage} epoch {done}/{total}: {time.process_time() - start:.0f} CPU s "
                "into the chunk",
                flush=True,
            ),
        )
        entry = {
            "chunk": chunk,
            "size": size,
            "pairs": num_pairs,
            "learning_rate": rate,
            "epochs": epochs,
            "schedule": args.schedule,
            "train_losses": info.train_losses.tolist(),
            "validation_losses": info.validation_losses.tolist(),
            "validation_snr_db": float(-10 * np.log10(np.min(info.validation_losses))),
            "data_s": data_s,
            "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0,
        }
        state["history"].append(entry)
        state["chunks_done"] = chunk + 1
        state["cpu_s"] += entry["cpu_s"]
        state["wall_s"] += entry["wall_s"]
        last_wall = entry["wall_s"]
        write_unrolled(checkpoint / "model.eqx", network)
        write_json_atomic(checkpoint / "state.json", state)
        print(
            f"chunk {chunk + 1}/{num_chunks} size {entry['size']} pairs {entry['pairs']}: "
            f"validation SNR {entry['validation_snr_db']:.2f} dB, "
            f"{entry['cpu_s']:.0f} CPU s ({data_s:.0f} s data), total {state['cpu_s'] / 60:.1f} "
            "CPU min",
            flush=True,
        )
    write_unrolled(
        args.out,
        network,
        script="scripts/train_unrolled.py",
        command=shlex.join(["python", "scripts/train_unrolled.py", *sys.argv[1:]]),
        arguments={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        training_data=(
            "astrobayes.imaging.skies.random_sky skies; uv-coverages: random variants of the "
            "shared MeerKAT 1/2/4 h tracks (random_track_coverage: time window, flagged "
            "baselines; rotated outside the held-out window "
            f"{HELDOUT_ANGLES} rad modulo pi, u/v swapped with probability 1/2) and "
            f"random arrays (random_array_coverage, fraction {args.array_fraction}); ISNR "
            f"uniform in {args.isnr_range} dB; M31 and Cygnus A never used"
        ),
        started_from=started_from(args.init_weights),
        heldout_angles_rad=list(HELDOUT_ANGLES),
        heldout_array_seed=HELDOUT_ARRAY_SEED,
        chunks_done=state["chunks_done"],
        chunks_planned=num_chunks,
        provenance=software_provenance(),
        devices=[str(d) for d in jax.devices()],
        training_cpu_s=state["cpu_s"],
        training_wall_s=state["wall_s"],
        history=state["history"],
        final_validation_snr_db=state["history"][-1]["validation_snr_db"],
        final_validation_loss=float(np.min(state["history"][-1]["validation_losses"])),
    )
    print(f"wrote {args.out}")
    if pool is not None:  # after --out is written: a prefetch left running ends at exit
        pool.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    main()
