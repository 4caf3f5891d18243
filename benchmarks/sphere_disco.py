"""DISCO spherical convolution: equivariance against a planar CNN, cost against peers.

Sections (``--sections``, default ``equivariance,cnn,cost``):

* ``equivariance`` (float64): relative error ``||P A(R f) - R P A(f)|| / ||P A(f)||`` over
  random rotations R (``astrobayes.sphere.disco.equivariance_error``; rotations applied
  through harmonic space, outputs compared on band limit L) for

  - ours, isotropic filters (band-pass weights and random weights), with the default
    pixel-integrated basis (``supersample=2``) and with point evaluation (``supersample=1``),
  - ours, directional filters (``max_order=1``), for general rotations and for rotations
    about the pole,
  - the negative control: a planar CNN layer (same radial hats, same physical radius at the
    equator) applied to the equirectangular (MW) projection of the map,

  at fixed filter radius and input band limit L = 8 while nside grows (the quadrature
  converges, the planar distortion does not), and for the default layer at native
  resolution. Also the distance of ours to the exact continuous convolution
  (``radial_basis_spectrum``, harmonic space).
* ``cnn``: how much an (untrained) ``DiscoCNN`` embedding (isotropic filters, global
  pooling) moves when its input is rotated, against another realisation of the same
  field and against the same map with 10% more amplitude.
* ``cost`` (float32, each measurement in a fresh subprocess): one forward + backward
  (gradient w.r.t. weights and input of a sum of squares) of a ``channels -> channels``
  layer with 3 isotropic radial basis functions and the default radius
  (4.5 pixel scales), at each nside:

  - ours: ``DiscoConv`` (jitted), HEALPix;
  - dense: the same filters applied in harmonic space with our transforms (HEALPix,
    L = 2 nside, 3 Jacobi refinement steps as healpy's default), O(N^1.5);
  - torch-harmonics ``DiscreteContinuousConvS2`` (same theta_cutoff, 3 basis functions,
    equiangular grid with about as many pixels), if importable.

  Wall and CPU seconds (median of ``--repeats`` after a warm-up call that compiles), setup
  seconds (stencil or spectra; XLA compile apart), and the peak resident memory of the
  first forward + backward above the process's resident memory before it
  (``/proc/self/clear_refs``; JAX compiled ahead of time) with XLA's own temp-buffer size.

torch-harmonics: 0.9.x wheels are built against torch 2.14 and fail to import with the
torch 2.13 of the ``bench-torch`` extra (undefined symbol), and 0.9.3 would pull torch
2.14; so it is not in any extra. The numbers in docs/sphere.md used 0.8.0 built from its
sdist against the installed torch, outside .venv::

    pip download --no-deps torch-harmonics==0.8.0 && tar xzf torch_harmonics-0.8.0.tar.gz
    cd torch_harmonics-0.8.0 && python setup.py build_ext --inplace   # a C++ helper
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/sphere_disco.py

Usage: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/sphere_disco.py
       [--sections equivariance,cnn,cost] [--nsides 32,64,128] [--channels 4] [--repeats 3]
       [--rotations 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

PEERS = ("ours", "dense", "torch-harmonics")


# ---------------------------------------------------------------------------------
# Equivariance


def _equivariance_rows(nside, band_limit, radius, num_radial, filters, rotations, polar):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from astrobayes.sphere import SphereGrid, ell_m, forward, inverse
    from astrobayes.sphere.disco import (
        DiscoConv,
        equivariance_error,
        planar_control_conv,
        radial_basis_spectrum,
    )

    grid = SphereGrid(band_limit, "healpix", nside=nside)
    rng = np.random.default_rng(nside)
    f = np.asarray(inverse(forward(jnp.asarray(rng.normal(size=grid.map_shape)), grid), grid))
    alm = forward(jnp.asarray(f), grid)
    ells, _ = ell_m(band_limit)
    spectrum = radial_basis_spectrum(radius, num_radial, band_limit)
    rows = []
    for label, weights in filters:
        conv = DiscoConv(
            1, 1, nside, key=jax.random.key(0), radius=radius, num_radial=num_radial, use_bias=False
        )
        conv = eqx.tree_at(lambda c: c.weight, conv, jnp.asarray(weights)[None, None])
        ours = equivariance_error(lambda m, c=conv: c(m[None])[0], f, grid, rotations)
        point = DiscoConv(
            1,
            1,
            nside,
            key=jax.random.key(0),
            radius=radius,
            num_radial=num_radial,
            use_bias=False,
            supersample=1,
        )
        point = eqx.tree_at(lambda c: c.weight, point, jnp.asarray(weights)[None, None])
        at_centres = equivariance_error(lambda m, c=point: c(m[None])[0], f, grid, rotations)
        planar = equivariance_error(
            lambda m, w=weights: planar_control_conv(m, grid, radius, w), f, grid, rotations
        )
        exact = inverse(alm * (np.asarray(weights) @ spectrum)[ells], grid)
        to_exact = float(
            jnp.linalg.norm(conv(jnp.asarray(f)[None])[0] - exact) / jnp.linalg.norm(exact)
        )
        rows.append((label, conv.neighbours.shape[1], ours, at_centres, planar, to_exact))
    directional = DiscoConv(
        1, 1, nside, key=jax.random.key(1), radius=radius, num_radial=num_radial, max_order=1
    )
    apply = lambda m: directional(m[None])[0]  # noqa: E731
    general = equivariance_error(apply, f, grid, rotations)
    about_pole = equivariance_error(apply, f, grid, polar)
    return rows, general, about_pole


def bench_equivariance(num_rotations):
    import jax

    from astrobayes.sphere.disco import pixel_scale, random_rotations

    jax.config.update("jax_enable_x64", True)
    rotations = random_rotations(jax.random.key(20261203), num_rotations)
    polar = np.stack(
        [np.zeros(num_rotations), np.zeros(num_rotations), rotations[:, 0]], axis=-1
    )  # rotations about the pole by random angles
    rng = np.random.default_rng(7)
    filters3 = [("band-pass (0, 1, -1)", np.array([0.0, 1.0, -1.0]))] + [
        (f"random #{i}", rng.normal(size=3) / math.sqrt(3)) for i in range(3)
    ]
    print("\n## Equivariance (relative error on band-limited outputs; max over rotations)")
    print(f"{num_rotations} random rotations (Haar); directional: max_order=1, random weights\n")
    header = (
        "| nside | L | radius (px of nside) | filter | neighbours | ours | ours, point "
        "evaluation | planar control | planar / ours | ours vs exact conv |"
    )
    print(header)
    print("|" + "---|" * 10)
    configs = [
        # fixed filter (radius 4.5 pixel scales of nside 8) and input band limit 8
        *[(n, 8, 4.5 * pixel_scale(8)) for n in (8, 16, 32)],
        # the default layer at native resolution, input band-limited at L = nside
        (32, 32, 4.5 * pixel_scale(32)),
    ]
    directional_rows = []
    for nside, band_limit, radius in configs:
        start = time.perf_counter()
        rows, general, about_pole = _equivariance_rows(
            nside, band_limit, radius, 3, filters3, rotations, polar
        )
        for label, neighbours, ours, at_centres, planar, to_exact in rows:
            print(
                f"| {nside} | {band_limit} | {radius / pixel_scale(nside):.1f} | {label} "
                f"| {neighbours} | {ours.max():.2e} | {at_centres.max():.2e} "
                f"| {planar.min():.2e}-{planar.max():.2e} "
                f"| {planar.min() / ours.max():.0f} | {to_exact:.1e} |",
                flush=True,
            )
        directional_rows.append((nside, band_limit, general, about_pole))
        print(f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    print("\nDirectional filters (ours, max_order=1):\n")
    print("| nside | L | general rotations | rotations about the pole |")
    print("|---|---|---|---|")
    for nside, band_limit, general, about_pole in directional_rows:
        print(
            f"| {nside} | {band_limit} | {general.min():.2e}-{general.max():.2e} "
            f"| {about_pole.max():.2e} |"
        )


def bench_cnn(num_rotations):
    """Rotation invariance of a DiscoCNN embedding (isotropic filters, global pooling)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from astrobayes.sphere import SphereGrid, forward, inverse
    from astrobayes.sphere.disco import DiscoCNN, random_rotations, rotate_map

    jax.config.update("jax_enable_x64", True)
    rotations = random_rotations(jax.random.key(20261204), num_rotations)
    print(
        "\n## DiscoCNN embedding change ||e(.) - e(f)|| / ||e(f)|| (nside 32, channels "
        "(8, 16, 16), embedding 8, untrained, float64)\n"
    )
    print(
        "| input L | rotated f (max) | another realisation g | 1.1 f (10% more amplitude) |\n"
        "|---|---|---|---|"
    )
    nside = 32
    net = DiscoCNN(nside, key=jax.random.key(0), dtype=jnp.float64)
    embed = eqx.filter_jit(lambda m: net(m))
    rng = np.random.default_rng(11)
    for band_limit in (16, 32):
        grid = SphereGrid(band_limit, "healpix", nside=nside)
        f, g = (
            np.asarray(inverse(forward(jnp.asarray(rng.normal(size=grid.map_shape)), grid), grid))
            for _ in range(2)
        )
        reference = np.asarray(embed(jnp.asarray(f)))
        changes = [
            np.linalg.norm(np.asarray(embed(jnp.asarray(rotate_map(f, grid, a)))) - reference)
            for a in rotations
        ]
        other = np.linalg.norm(np.asarray(embed(jnp.asarray(g))) - reference)
        louder = np.linalg.norm(np.asarray(embed(jnp.asarray(1.1 * f))) - reference)
        scale = np.linalg.norm(reference)
        print(
            f"| {band_limit} | {max(changes) / scale:.2e} | {other / scale:.2e} "
            f"| {louder / scale:.2e} |",
            flush=True,
        )


# ---------------------------------------------------------------------------------
# Cost (one measurement per subprocess)


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _measure(step, repeats):
    """(median wall, median CPU, peak extra RSS bytes of the first call) of ``step()``.

    JAX functions arrive compiled ahead of time; the peak is the high-water mark of the
    first execution above the resident memory before it, the times the median of the
    ``repeats`` calls after it.
    """
    baseline = _rss_bytes("VmRSS")
    reset = _reset_peak()
    step()
    peak = _rss_bytes("VmHWM") - baseline if reset else -1
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), peak


def worker(method, nside, channels, repeats):
    """Measure one method at one nside; print a JSON line."""
    from astrobayes.sphere.disco import pixel_scale

    radius = 4.5 * pixel_scale(nside)
    rng = np.random.default_rng(0)
    out = {"method": method, "nside": nside}
    if method == "torch-harmonics":
        try:
            import torch
            import torch_harmonics as th
        except ImportError as error:
            out["skipped"] = f"torch-harmonics not importable ({error})"
            print(json.dumps(out))
            return
        torch.set_num_threads(1)
        nlat = round(math.sqrt(6) * nside)
        nlon = 2 * nlat
        start = time.perf_counter()
        kernel_shape = next(
            k
            for k in range(1, 12)
            if th.DiscreteContinuousConvS2(
                1, 1, (8, 16), (8, 16), kernel_shape=(k,), theta_cutoff=1.0
            ).weight.shape[-1]
            == 3
        )
        conv = th.DiscreteContinuousConvS2(
            channels,
            channels,
            (nlat, nlon),
            (nlat, nlon),
            kernel_shape=(kernel_shape,),
            theta_cutoff=radius,
            grid_in="equiangular",
            grid_out="equiangular",
        )
        out["setup_s"] = time.perf_counter() - start
        x = torch.tensor(rng.normal(size=(1, channels, nlat, nlon)), dtype=torch.float32)
        x.requires_grad_(True)

        def step():
            conv.zero_grad()
            x.grad = None
            loss = (conv(x) ** 2).sum()
            loss.backward()
            return float(loss.detach())

        out["pixels"] = nlat * nlon
        out["version"] = th.__version__
        out["basis"] = int(conv.weight.shape[-1])
    else:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from astrobayes.sphere import SphereGrid, ell_m, forward, inverse
        from astrobayes.sphere.disco import DiscoConv, radial_basis_spectrum

        x = jnp.asarray(rng.normal(size=(channels, 12 * nside**2)), jnp.float32)
        start = time.perf_counter()
        if method == "ours":
            model = DiscoConv(channels, channels, nside, key=jax.random.key(0), num_radial=3)
            out["neighbours"] = int(model.neighbours.shape[1])
            params, static = eqx.partition(model, eqx.is_inexact_array)

            def loss(p, m):
                return jnp.sum(eqx.combine(p, static)(m) ** 2)

        else:
            grid = SphereGrid(2 * nside, "healpix", nside=nside, iterations=3)
            ells, _ = ell_m(grid.band_limit)
            spectrum = jnp.asarray(radial_basis_spectrum(radius, 3, grid.band_limit), jnp.float32)
            params = jax.random.normal(jax.random.key(0), (channels, channels, 3)) / 3.0

            def loss(weight, m):
                transfer = jnp.einsum("ock,kl->ocl", weight, spectrum)[..., ells]
                alm = jnp.einsum("ocn,cn->on", transfer, forward(m, grid))
                return jnp.sum(inverse(alm, grid) ** 2)

        jax.block_until_ready(params)
        out["setup_s"] = time.perf_counter() - start  # stencil or filter spectra
        start = time.perf_counter()
        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(params, x).compile()
        out["compile_s"] = time.perf_counter() - start
        analysis = compiled.memory_analysis()
        if analysis is not None:
            out["xla_temp_bytes"] = int(analysis.temp_size_in_bytes)

        def step():
            return jax.block_until_ready(compiled(params, x))

        out["pixels"] = 12 * nside**2
    out["wall_s"], out["cpu_s"], out["peak_bytes"] = _measure(step, repeats)
    print(json.dumps(out))


def bench_cost(nsides, channels, repeats):
    print(
        f"\n## Cost: one forward + backward, {channels} -> {channels} channels, 3 radial basis "
        "functions, radius 4.5 pixel scales, float32, single thread\n"
    )
    results = {}
    for nside in nsides:
        for method in PEERS:
            command = [sys.executable, __file__, "--worker", method, str(nside)]
            command += ["--channels", str(channels), "--repeats", str(repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"{method} at nside {nside} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(lines[-1])
            results[method, nside] = row
            if "skipped" in row:
                print(f"{method}: {row['skipped']}")
            print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
    print(
        "| nside | method | pixels | setup s | wall s | CPU s | peak MB | wall / ours "
        "| CPU / ours | wall per Mpixel s |"
    )
    print("|" + "---|" * 10)
    for nside in nsides:
        ours = results.get(("ours", nside))
        for method in PEERS:
            row = results.get((method, nside))
            if row is None or "skipped" in row:
                continue
            ratio = f"{row['wall_s'] / ours['wall_s']:.2f}" if ours else "-"
            cpu_ratio = f"{row['cpu_s'] / ours['cpu_s']:.2f}" if ours else "-"
            print(
                f"| {nside} | {method} | {row['pixels']} | {row['setup_s']:.2f} "
                f"| {row['wall_s']:.4f} | {row['cpu_s']:.4f} | {row['peak_bytes'] / 2**20:.0f} "
                f"| {ratio} | {cpu_ratio} | {row['wall_s'] / row['pixels'] * 1e6:.3f} |"
            )
    for method in PEERS:
        rows = [results.get((method, n)) for n in nsides]
        if all(r is not None and "skipped" not in r for r in rows) and len(rows) > 1:
            pixels = np.log([r["pixels"] for r in rows])
            slope = np.polyfit(pixels, np.log([r["cpu_s"] for r in rows]), 1)[0]
            print(f"{method}: CPU time ~ pixels^{slope:.2f} over nside {nsides}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="equivariance,cnn,cost")
    parser.add_argument("--nsides", default="32,64,128")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rotations", type=int, default=4)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "NSIDE"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.channels, args.repeats)
        return
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}")
    sections = args.sections.split(",")
    if "equivariance" in sections:
        bench_equivariance(args.rotations)
    if "cnn" in sections:
        bench_cnn(args.rotations)
    if "cost" in sections:
        bench_cost([int(n) for n in args.nsides.split(",")], args.channels, args.repeats)


if __name__ == "__main__":
    main()
