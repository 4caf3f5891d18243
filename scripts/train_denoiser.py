r"""Train a data-driven imaging prior: a noise-conditional U-Net denoiser (issue 12).

Denoising score matching across noise levels (``astrobayes.imaging.denoisers``:
``sigma`` log-uniform on ``[sigma_min, sigma_max]``, loss ``||D_sigma(z) - x||^2 /
sigma^2``) on the ``train`` images of ``scripts/make_galaxy_images.py`` (10% of them
held out for early stopping), through ``astrobayes._training.fit``. The ``test`` images
are never trained on: the script only reports the held-out denoising SNR on them at the
end, and ``benchmarks/imaging_galaxy_denoising.py`` uses them.

Resumable: training runs in ``--chunks`` chunks of ``--epochs-per-chunk`` epochs (over the
whole training set, or over the next ``--images-per-chunk`` images of it, cyclically), the
step size of chunk ``c`` following a cosine from ``--learning-rate`` down to 10% of it;
after each chunk the denoiser (``astrobayes.io.save_denoiser``, atomic) and the progress
(``write_json_atomic``) are written to ``--checkpoint``, and a rerun continues from the
last finished chunk (Adam's moments restart at each chunk). At the end the weights and
the training record go to ``--out`` and its ``.json`` sibling.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_denoiser.py \\
        --data runs/galaxies/galaxies_32.npz --checkpoint runs/denoiser_galaxy \\
        --out src/astrobayes/imaging/weights/denoiser_galaxy.eqx

Radio skies (``--radio``): instead of ``--data``, the training images are simulated skies of
:func:`astrobayes.imaging.skies.random_sky` (point sources, Gaussian blobs, power-law
diffuse emission, FR-like radio galaxies, random mixtures; each sky min-max rescaled to
[0, 1] like the benchmark images), ``--sky-size`` pixels square, cut into non-overlapping
``--patch`` x ``--patch`` patches (the intensities of a patch stay those of its [0, 1] sky,
as when the denoiser runs on a whole [0, 1] image). Training skies come from the key
stream ``fold_in(key(--sky-seed), 0)``, held-out test skies from ``fold_in(..., 1)``: no
real image (M31, Cygnus A, ...) is ever used. The skies are cached in the checkpoint
folder (atomic NPZ). At the end the held-out denoising SNR of the new denoiser is
reported beside that of the shipped galaxy denoiser on the same noisy patches, and the
weights are written to ``--out`` only when the new denoiser is better at every report
noise level (``--force`` writes them anyway)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_denoiser.py --radio \\
        --checkpoint runs/denoiser_radio --out src/astrobayes/imaging/weights/denoiser_radio.eqx \\
        --widths 12 24 48 --sigma-min 0.002 --sigma-max 0.1 --batch-size 16 \\
        --chunks 24 --epochs-per-chunk 1 --images-per-chunk 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes._training import TrainingConfig, split_validation
from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser, train_denoiser
from astrobayes.imaging.map import snr_db
from astrobayes.io import software_provenance, write_atomic, write_json_atomic
from astrobayes.io.denoiser_files import load_denoiser, load_shipped_denoiser, save_denoiser

REPORT_SIGMAS = (0.02, 0.05, 0.1)
#: Radio report levels: the smoothing of the M31 PnP-ULA runs (0.005-0.01) and above.
RADIO_REPORT_SIGMAS = (0.005, 0.01, 0.02, 0.05)


def radio_skies(seed: int, stream: int, num: int, size: int, patch: int) -> np.ndarray:
    """``num`` skies of ``random_sky`` from key stream ``stream``, cut into patches.

    Each sky is rescaled to [0, 1] (min-max, as ``prepare_protocol_image`` does for the
    benchmark images) and cut into ``(size // patch)**2`` non-overlapping patches.
    """
    from astrobayes.imaging.skies import random_sky

    base = jax.random.fold_in(jax.random.key(seed), stream)
    draw = jax.jit(jax.vmap(lambda k: random_sky(k, (size, size))))
    skies = []
    for start in range(0, num, 256):  # batches of 256 skies (memory)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(
            jnp.arange(start, min(start + 256, num))
        )
        skies.append(np.asarray(draw(keys), np.float32))
    skies = np.concatenate(skies)
    low = skies.min(axis=(1, 2), keepdims=True)
    skies = (skies - low) / (skies.max(axis=(1, 2), keepdims=True) - low)
    n = size // patch
    patches = skies[:, : n * patch, : n * patch].reshape(-1, n, patch, n, patch)
    return patches.transpose(0, 1, 3, 2, 4).reshape(-1, patch, patch)


def radio_data(args, checkpoint: Path):
    """Training and test patches of simulated radio skies (cached atomically)."""
    cache = checkpoint / "skies.npz"
    record = {
        "script": "scripts/train_denoiser.py --radio (astrobayes.imaging.skies.random_sky)",
        "seed": args.sky_seed,
        "train_stream": 0,
        "test_stream": 1,
        "num_train_skies": args.radio,
        "num_test_skies": args.radio_test,
        "sky_size": args.sky_size,
        "patch": args.patch,
        "rescaling": "each sky min-max to [0, 1]; patches keep their sky's intensities",
        "real_images_used": "none (M31 and Cygnus A are never used in training)",
    }
    if cache.is_file():
        with np.load(cache) as data:
            if json.loads(str(data["record"])) == record:
                print(f"using cached skies {cache}", flush=True)
                return data["train"], data["test"], record
    wall = time.perf_counter()
    train = radio_skies(args.sky_seed, 0, args.radio, args.sky_size, args.patch)
    test = radio_skies(args.sky_seed, 1, args.radio_test, args.sky_size, args.patch)
    print(
        f"simulated {train.shape[0]} training and {test.shape[0]} test patches "
        f"in {time.perf_counter() - wall:.0f} s",
        flush=True,
    )

    def write(handle):
        np.savez(handle, train=train, test=test, record=json.dumps(record))

    write_atomic(cache, write)
    return train, test, record


def held_out_report(denoiser, test: np.ndarray, seed: int, sigmas=REPORT_SIGMAS) -> dict:
    """Mean SNR (dB) of the noisy and denoised held-out images at each report sigma."""
    report = {}
    for i, sigma in enumerate(sigmas):
        key = jax.random.fold_in(jax.random.key(seed + 7), i)
        noisy = test + sigma * np.asarray(jax.random.normal(key, test.shape), np.float32)
        denoised = np.concatenate(
            [
                np.asarray(denoiser(jnp.asarray(part), sigma))
                for part in np.array_split(noisy, max(1, len(noisy) // 256))
            ]
        )
        keep = np.linalg.norm(test, axis=(1, 2)) > 0  # empty sky patches have no SNR
        report[str(sigma)] = {
            "noisy_snr_db": float(
                np.mean([snr_db(t, n) for t, n in zip(test[keep], noisy[keep], strict=True)])
            ),
            "denoised_snr_db": float(
                np.mean([snr_db(t, d) for t, d in zip(test[keep], denoised[keep], strict=True)])
            ),
        }
        if not keep.all():
            report[str(sigma)]["num_empty_skipped"] = int((~keep).sum())
            report[str(sigma)]["pooled_denoised_snr_db"] = snr_db(test, denoised)
    return report


def _initial_weights(name_or_file: str):
    """A shipped denoiser by name (``galaxy``, ``radio``) or one from a weight file."""
    if name_or_file in ("galaxy", "radio"):
        return load_shipped_denoiser(name_or_file)[0]
    return load_denoiser(Path(name_or_file))


def main() -> None:
    """Train (or resume), then save the weights and the record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="runs/galaxies/galaxies_32.npz")
    parser.add_argument(
        "--radio",
        type=int,
        default=None,
        metavar="NUM_SKIES",
        help="train on NUM_SKIES simulated radio skies (imaging.skies) instead of --data",
    )
    parser.add_argument("--radio-test", type=int, default=64, help="held-out radio skies")
    parser.add_argument("--sky-seed", type=int, default=2026)
    parser.add_argument("--sky-size", type=int, default=128)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument(
        "--validation-size",
        type=int,
        default=None,
        help="cap on the early-stopping images (default: 10%% of the data)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="--radio: write --out even if not better than the galaxy denoiser",
    )
    parser.add_argument(
        "--init-weights",
        default=None,
        metavar="NAME_OR_FILE",
        help="start from these weights ('galaxy', 'radio' or a .eqx file; same --widths and "
        "sigma range) instead of a random network; --out is then written only when the new "
        "denoiser beats them on the held-out test set at every report sigma",
    )
    parser.add_argument("--checkpoint", default="runs/denoiser_galaxy")
    parser.add_argument("--out", default="src/astrobayes/imaging/weights/denoiser_galaxy.eqx")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--sigma-min", type=float, default=0.005)
    parser.add_argument("--sigma-max", type=float, default=0.3)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs-per-chunk", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--num-train", type=int, default=None, help="use the first N images")
    parser.add_argument(
        "--images-per-chunk",
        type=int,
        default=None,
        help="each chunk trains on the next N training images (cyclically): finer checkpoints",
    )
    args = parser.parse_args()

    checkpoint = Path(args.checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    if args.radio is not None:
        images, test, data_record = radio_data(args, checkpoint)
    else:
        with np.load(args.data) as data:
            images = data["train"]
            test = data["test"]
            data_record = json.loads(str(data["record"]))
    if args.num_train is not None:
        images = images[: args.num_train]
    settings = DenoiserSettings(
        widths=tuple(args.widths), sigma_min=args.sigma_min, sigma_max=args.sigma_max
    )
    key = jax.random.key(args.seed)
    (train,), (validation,) = split_validation(
        jax.random.fold_in(key, 0), (jnp.asarray(images),), 0.1
    )
    if args.validation_size is not None:
        validation = validation[: args.validation_size]
    weights_file, progress_file = checkpoint / "denoiser.eqx", checkpoint / "progress.json"
    progress = {"chunks_done": 0, "history": [], "cpu_s": 0.0, "wall_s": 0.0}
    if progress_file.is_file() and weights_file.is_file():
        progress = json.loads(progress_file.read_text())
        denoiser = load_denoiser(weights_file)
        if denoiser.settings != settings:
            sys.exit(f"{weights_file} has settings {denoiser.settings}, not {settings}")
        print(f"resuming after chunk {progress['chunks_done']}", flush=True)
    elif args.init_weights is not None:
        denoiser = _initial_weights(args.init_weights)
        if denoiser.settings != settings:
            sys.exit(f"--init-weights has settings {denoiser.settings}, not {settings}")
        print(f"starting from {args.init_weights}", flush=True)
    else:
        denoiser = init_denoiser(jax.random.fold_in(key, 1), settings)
    for chunk in range(progress["chunks_done"], args.chunks):
        fraction = chunk / max(args.chunks - 1, 1)
        rate = args.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction)))
        config = TrainingConfig(
            learning_rate=rate,
            batch_size=args.batch_size,
            max_epochs=args.epochs_per_chunk,
            patience=args.epochs_per_chunk,
            epoch_loop="python",  # conv nets: ~15x faster on a CPU than one scanned epoch
        )
        wall, cpu = time.perf_counter(), time.process_time()

        def progress_fn(stage, done, total, chunk=chunk):
            print(f"  chunk {chunk} {stage} epoch {done}/{total}", flush=True)

        part = train
        if args.images_per_chunk is not None:  # a cyclic window of the training set
            start = (chunk * args.images_per_chunk) % train.shape[0]
            part = jnp.roll(train, -start, axis=0)[: args.images_per_chunk]
        denoiser, info = train_denoiser(
            jax.random.fold_in(key, 100 + chunk),
            denoiser,
            part,
            validation,
            config=config,
            progress_fn=progress_fn,
        )
        progress["cpu_s"] += time.process_time() - cpu
        progress["wall_s"] += time.perf_counter() - wall
        progress["history"].append(
            {
                "chunk": chunk,
                "learning_rate": rate,
                "train_losses": info.train_losses.tolist(),
                "validation_losses": info.validation_losses.tolist(),
                "best_epoch": info.best_epoch,
                "status": info.status.name.lower(),
            }
        )
        progress["chunks_done"] = chunk + 1
        save_denoiser(weights_file, denoiser)
        write_json_atomic(progress_file, progress)
        print(
            f"chunk {chunk}: lr {rate:.2e} train {info.train_losses[-1]:.4f} "
            f"validation {info.validation_losses.min():.4f} (best epoch {info.best_epoch}) "
            f"{progress['cpu_s']:.0f} CPU-s, {progress['wall_s']:.0f} s",
            flush=True,
        )
    sigmas = REPORT_SIGMAS if args.radio is None else RADIO_REPORT_SIGMAS
    report = held_out_report(denoiser, test, args.seed, sigmas)
    for sigma, row in report.items():
        print(
            f"held-out sigma {sigma}: noisy {row['noisy_snr_db']:.2f} dB -> "
            f"denoised {row['denoised_snr_db']:.2f} dB",
            flush=True,
        )
    galaxy_report, better = None, True
    if args.radio is not None:  # the same noisy held-out skies through the galaxy denoiser
        galaxy_report = held_out_report(load_shipped_denoiser("galaxy")[0], test, args.seed, sigmas)
        for sigma, row in galaxy_report.items():
            print(
                f"held-out sigma {sigma}: galaxy denoiser {row['denoised_snr_db']:.2f} dB",
                flush=True,
            )
        better = all(
            report[k]["denoised_snr_db"] > galaxy_report[k]["denoised_snr_db"] for k in report
        )
    init_report = None
    if args.init_weights is not None:  # fine-tuning must beat its starting point
        init_report = held_out_report(_initial_weights(args.init_weights), test, args.seed, sigmas)
        for sigma, row in init_report.items():
            print(
                f"held-out sigma {sigma}: starting weights {row['denoised_snr_db']:.2f} dB",
                flush=True,
            )
        better = better and all(
            report[k]["denoised_snr_db"] > init_report[k]["denoised_snr_db"] for k in report
        )
    last = progress["history"][-1]
    record = {
        "name": "galaxy" if args.radio is None else "radio",
        "image_size": int(images.shape[-1]),
        "settings": dataclasses.asdict(settings),
        "data": data_record,
        "data_file": Path(args.data).name if args.radio is None else "skies.npz (simulated)",
        "num_train": int(train.shape[0]),
        "num_validation": int(validation.shape[0]),
        "num_test": int(test.shape[0]),
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "epochs_per_chunk": args.epochs_per_chunk,
        "chunks": args.chunks,
        "images_per_chunk": args.images_per_chunk,
        "final_validation_loss": float(min(last["validation_losses"])),
        "final_status": last["status"],
        "training_cpu_s": progress["cpu_s"],
        "training_wall_s": progress["wall_s"],
        "history": progress["history"],
        "held_out_test": report,
        "command": _command(args, data_record, images, test),
        "script": "scripts/train_denoiser.py",
        "provenance": software_provenance(),
    }
    if init_report is not None:
        record["init_weights"] = args.init_weights
        if args.init_weights in ("galaxy", "radio"):  # how the starting weights were made
            record["init_weights_record"] = {
                k: v
                for k, v in load_shipped_denoiser(args.init_weights)[1].items()
                if k != "history"
            }
        record["held_out_test_init_weights"] = init_report
        record["better_than_init_weights"] = better
    if galaxy_report is not None:
        record["held_out_test_galaxy_denoiser"] = galaxy_report
        record["better_than_galaxy_denoiser"] = better
        record["sigma_min_max"] = [args.sigma_min, args.sigma_max]
    if not (better or args.force):
        sys.exit(
            f"not writing {args.out}: the new denoiser is not better than the galaxy "
            "denoiser (and the --init-weights, if given) on the held-out skies at every "
            "report sigma (--force writes it)"
        )
    save_denoiser(args.out, denoiser)
    write_json_atomic(Path(args.out).with_suffix(".json"), record)
    print(f"saved {args.out} and its record", flush=True)


def _command(args, data_record, images, test) -> str:
    """The command line that made the weights (for the record)."""
    common = (
        f"--widths {' '.join(map(str, args.widths))} "
        f"--learning-rate {args.learning_rate} --batch-size {args.batch_size} "
        f"--epochs-per-chunk {args.epochs_per_chunk} --chunks {args.chunks} --seed {args.seed}"
        + ("" if args.images_per_chunk is None else f" --images-per-chunk {args.images_per_chunk}")
        + ("" if args.init_weights is None else f" --init-weights {args.init_weights}")
    )
    if args.radio is not None:
        return (
            "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_denoiser.py "
            f"--radio {args.radio} --radio-test {args.radio_test} --sky-seed {args.sky_seed} "
            f"--sky-size {args.sky_size} --patch {args.patch} --sigma-min {args.sigma_min} "
            f"--sigma-max {args.sigma_max} "
            + ("" if args.validation_size is None else f"--validation-size {args.validation_size} ")
            + common
        )
    return (
        "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/make_galaxy_images.py "
        f"--seed {data_record['seed']} --num-train {images.shape[0]} --num-test "
        f"{test.shape[0]} && OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python "
        f"scripts/train_denoiser.py --widths {' '.join(map(str, args.widths))} "
        f"--learning-rate {args.learning_rate} --batch-size {args.batch_size} "
        f"--epochs-per-chunk {args.epochs_per_chunk} --chunks {args.chunks} --seed {args.seed}"
        + ("" if args.images_per_chunk is None else f" --images-per-chunk {args.images_per_chunk}")
    )


if __name__ == "__main__":
    main()
