"""Fields on the sphere: astrobayes.sphere vs ducc0, healpy, s2fft (and s2scat if installed).

Side by side in one process, single-threaded (``OMP_NUM_THREADS=1``, ducc0 ``nthreads=1``):

* ``transforms``: forward + inverse spherical harmonic transform on the MW grid at each
  band limit L: ducc0 directly (``synthesis_2d`` + ``analysis_2d``), astrobayes (the same
  ducc0 calls as JAX primitives, jitted), and astrobayes with gradients
  (``value_and_grad`` of a loss through inverse and forward, which adds the two transposed
  transforms). On HEALPix (nside = L / 2): healpy ``alm2map`` + ``map2alm(iter=3)`` and
  astrobayes with 8 refinement steps, with their round-trip errors. s2fft's pure-JAX
  recursion (``method="jax"``) at L <= ``--max-pure-jax`` with its compile time.
* ``scattering``: compile and run time of the scattering covariances (astrobayes); s2scat
  if it is importable (it is not installed by default: ``pip install --no-deps s2scat``).

Prints wall and CPU seconds (median of ``--repeats``) and ratios to ducc0 / healpy.

Usage: OMP_NUM_THREADS=1 python benchmarks/sphere_vs_peers.py
       [--sections transforms,scattering] [--band-limits 64,128,256,512]
       [--max-pure-jax 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.sphere import SphereGrid, ell_m, forward, inverse, num_alm

jax.config.update("jax_enable_x64", True)


def _timed(fn, repeats, *args):
    """Median wall and CPU seconds of ``fn(*args)`` over ``repeats`` calls, and the first call."""
    first = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - first
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), first


def _random_alm(rng, band_limit):
    _, ms = ell_m(band_limit)
    alm = rng.normal(size=num_alm(band_limit)) + 1j * rng.normal(size=num_alm(band_limit))
    return np.where(ms == 0, alm.real, alm)


def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def bench_transforms(band_limits, max_pure_jax, repeats):
    import ducc0.sht.experimental as sht

    rng = np.random.default_rng(0)
    print("\n== transforms: forward + inverse, MW grid, 1 thread ==")
    print(
        f"{'L':>5} {'ducc0 s':>9} {'ours s':>9} {'ours+grad s':>11} {'ratio':>6} "
        f"{'grad ratio':>10} {'rt ducc0':>9} {'rt ours':>9} {'compile s':>9}"
    )
    for band_limit in band_limits:
        alm = _random_alm(rng, band_limit)
        grid = SphereGrid(band_limit, "mw")
        lmax = band_limit - 1

        def ducc_pair(alm=alm, band_limit=band_limit, lmax=lmax):
            f = sht.synthesis_2d(
                alm=alm[None],
                spin=0,
                lmax=lmax,
                geometry="MW",
                ntheta=band_limit,
                nphi=2 * band_limit - 1,
            )
            return sht.analysis_2d(map=f, spin=0, lmax=lmax, geometry="MW")

        ours_pair = jax.jit(lambda a, grid=grid: forward(inverse(a, grid), grid))
        loss = jax.jit(
            jax.value_and_grad(
                lambda a, grid=grid: jnp.sum(jnp.abs(forward(inverse(a, grid), grid)) ** 2)
            )
        )
        a = jnp.asarray(alm)
        t_ducc = _timed(ducc_pair, repeats)
        t_ours = _timed(ours_pair, repeats, a)
        t_grad = _timed(loss, repeats, a)
        rt_ducc = _relative(ducc_pair()[0], alm)
        rt_ours = _relative(ours_pair(a), alm)
        print(
            f"{band_limit:>5} {t_ducc[1]:>9.4f} {t_ours[1]:>9.4f} {t_grad[1]:>11.4f} "
            f"{t_ours[1] / t_ducc[1]:>6.2f} {t_grad[1] / t_ducc[1]:>10.2f} {rt_ducc:>9.1e} "
            f"{rt_ours:>9.1e} {t_grad[2]:>9.2f}"
        )

    try:
        import healpy
    except ImportError:
        print("healpy not installed: HEALPix comparison skipped")
        healpy = None
    if healpy is not None:
        print("\n== HEALPix, nside = L/2: healpy alm2map + map2alm(iter=3) vs ours (8 steps) ==")
        print(
            f"{'L':>5} {'healpy s':>9} {'ours s':>9} {'ours+grad s':>11} {'ratio':>6} {'rt healpy':>9} {'rt ours':>9}"
        )
        for band_limit in band_limits:
            nside = band_limit // 2
            alm = _random_alm(rng, band_limit)
            grid = SphereGrid(band_limit, "healpix", nside=nside)

            def healpy_pair(alm=alm, nside=nside, lmax=band_limit - 1):
                return healpy.map2alm(healpy.alm2map(alm, nside, lmax=lmax), lmax=lmax, iter=3)

            ours_pair = jax.jit(lambda a, grid=grid: forward(inverse(a, grid), grid))
            loss = jax.jit(
                jax.value_and_grad(
                    lambda a, grid=grid: jnp.sum(jnp.abs(forward(inverse(a, grid), grid)) ** 2)
                )
            )
            a = jnp.asarray(alm)
            t_hp = _timed(healpy_pair, repeats)
            t_ours = _timed(ours_pair, repeats, a)
            t_grad = _timed(loss, repeats, a)
            print(
                f"{band_limit:>5} {t_hp[1]:>9.4f} {t_ours[1]:>9.4f} {t_grad[1]:>11.4f} "
                f"{t_ours[1] / t_hp[1]:>6.2f} {_relative(healpy_pair(), alm):>9.1e} "
                f"{_relative(ours_pair(a), alm):>9.1e}"
            )

    print(f"\n== s2fft pure-JAX recursion (method='jax'), MW, L <= {max_pure_jax} ==")
    print(f"{'L':>5} {'s2fft s':>9} {'compile s':>9} {'rt':>9}")
    import s2fft

    for band_limit in [b for b in band_limits if b <= max_pure_jax]:
        alm = _random_alm(rng, band_limit)
        grid = SphereGrid(band_limit, "mw", method="jax")
        pair = jax.jit(lambda a, grid=grid: forward(inverse(a, grid), grid))
        a = jnp.asarray(alm)
        t = _timed(pair, repeats, a)
        print(f"{band_limit:>5} {t[1]:>9.4f} {t[2]:>9.2f} {_relative(pair(a), alm):>9.1e}")
    del s2fft


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="transforms,scattering")
    parser.add_argument("--band-limits", default="64,128,256,512")
    parser.add_argument("--max-pure-jax", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sections = args.sections.split(",")
    band_limits = [int(b) for b in args.band_limits.split(",")]
    if "transforms" in sections:
        bench_transforms(band_limits, args.max_pure_jax, args.repeats)
    if "scattering" in sections:
        bench_scattering(args.repeats)


def bench_scattering(repeats):
    """Compile and step cost of the scattering-covariance loss with its gradient."""
    from astrobayes.sphere import (
        axisymmetric_filters,
        flatten_statistics,
        normalise,
        scattering_covariance,
    )

    rng = np.random.default_rng(1)
    print("\n== scattering covariances: loss + gradient, HEALPix, L = 2 nside, iterations = 1 ==")
    print(
        f"{'nside':>6} {'maps':>5} {'stats':>6} {'compile s':>9} {'step CPU s':>10} {'step wall s':>11}"
    )
    for nside in (16, 32, 64):
        band_limit = 2 * nside
        grid = SphereGrid(band_limit, "healpix", nside=nside, iterations=1)
        filters = axisymmetric_filters(band_limit)
        target = jnp.exp(jnp.asarray(rng.normal(size=grid.map_shape)))
        reference = scattering_covariance(target, grid, filters)
        goal = flatten_statistics(normalise(reference, reference))
        for num_maps in (1, 4):
            x = jnp.asarray(rng.normal(size=(num_maps, *grid.map_shape)))

            def loss(x, grid=grid, filters=filters, reference=reference, goal=goal):
                stats = normalise(scattering_covariance(x, grid, filters), reference)
                return jnp.sum((flatten_statistics(stats) - goal) ** 2)

            step = jax.jit(jax.value_and_grad(loss))
            wall, cpu, first = _timed(step, repeats, x)
            print(
                f"{nside:>6} {num_maps:>5} {goal.shape[0]:>6} {first - wall:>9.2f} {cpu:>10.3f} {wall:>11.3f}"
            )
    try:
        import s2scat  # noqa: F401
    except Exception as error:  # noqa: BLE001 - any import failure skips the peer
        print(
            f"s2scat not importable ({type(error).__name__}): peer skipped; issue 11 records "
            "its cost here as 0.14 CPU-s per Adam step at L = 64 after a 222-373 s configure"
        )


if __name__ == "__main__":
    main()
