"""Simulation campaign: serial vs a 2-worker Dask LocalCluster vs a 2-process pool.

A Python simulator that sleeps 50 ms per call (a stand-in for an external code that
waits on I/O or a subprocess) runs ``--num`` simulations in chunks of ``--chunk`` through
``astrobayes.sbi.executors.run_campaign`` on each backend with the same campaign key. The
outputs must be identical on every backend (checked); the script prints wall seconds and
the speed-up over serial. Cluster start-up (spawning the workers) is timed separately
from the campaign, since a long campaign pays it once. A second Dask campaign is
interrupted after a few chunks and resumed from its chunk files: it must end with exactly
``--num`` simulations, equal to the serial ones.

Usage: python benchmarks/campaign_dask.py [--num 80] [--chunk 2] [--workers 2]
Needs the ``scale`` extra (dask[distributed]).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from astrobayes.io import CampaignStore  # noqa: E402
from astrobayes.sbi.executors import make_executor, run_campaign  # noqa: E402
from campaign_simulators import slow_noisy  # noqa: E402  (light module: workers import it)


class _Stop(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num", type=int, default=80)
    parser.add_argument("--chunk", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    theta = np.stack([np.linspace(-1, 1, args.num), np.linspace(0, 2, args.num)], axis=1)
    key = jax.random.key(0)
    run_campaign(key, slow_noisy, theta[:2], chunk_size=1)  # compile the seed function once

    times = {}
    start = time.perf_counter()
    serial = run_campaign(key, slow_noisy, theta, chunk_size=args.chunk)
    times["serial"] = time.perf_counter() - start
    print(f"serial: {times['serial']:.2f} s for {args.num} simulations of 50 ms")

    for name in ("dask", "process"):
        start = time.perf_counter()
        with make_executor(name, num_workers=args.workers) as executor:
            # start-up: spawn the workers and let each import the simulator once
            run_campaign(key, slow_noisy, theta[:4], chunk_size=1, executor=executor)
            startup = time.perf_counter() - start
            begin = time.perf_counter()
            result = run_campaign(key, slow_noisy, theta, chunk_size=args.chunk, executor=executor)
            times[name] = time.perf_counter() - begin
        assert np.array_equal(result.x, serial.x), f"{name} outputs differ from serial"
        print(
            f"{name} ({args.workers} workers): {times[name]:.2f} s campaign "
            f"(+ {startup:.2f} s start-up); speed-up over serial {times['serial'] / times[name]:.2f}x "
            f"({times['serial'] / (times[name] + startup):.2f}x with start-up); outputs identical"
        )

    with tempfile.TemporaryDirectory() as folder:
        store = CampaignStore(Path(folder) / "campaign")
        chunks_seen = []

        def stop(stage, done, total):
            chunks_seen.append(done)
            if len(chunks_seen) == 6:
                raise _Stop

        with make_executor("dask", num_workers=args.workers) as executor:
            try:
                run_campaign(
                    key,
                    slow_noisy,
                    theta,
                    chunk_size=args.chunk,
                    executor=executor,
                    store=store,
                    progress_fn=stop,
                )
            except _Stop:
                print("dask campaign interrupted (as a kill would), resuming from its chunk files")
            stored = len(store.completed())
            resumed = run_campaign(
                key, slow_noisy, theta, chunk_size=args.chunk, executor=executor, store=store
            )
        files = len(store.completed())
    ok = resumed.x.shape[0] == args.num and np.array_equal(resumed.x, serial.x)
    print(
        f"dask interrupted after {stored} chunks, resumed {resumed.num_resumed}: {resumed.x.shape[0]} "
        f"simulations in {files} chunk files (expected {args.num} in {-(-args.num // args.chunk)}); "
        f"equal to serial: {ok}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
