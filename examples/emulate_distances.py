"""Emulate expensive BAO distances and plug the emulator into the DESI DR2 likelihood.

The "expensive physics": D_M/r_d and D_H/r_d of flat w0waCDM on a fine redshift grid,
each D_M by adaptive quadrature (scipy.integrate.quad, one call per redshift, in plain
Python; slow on purpose). Parameters theta = (omega_m, h_rd, w0, wa) over the box of the
model-comparison demo. The script

1. designs a Sobol training set and a Latin-hypercube test set,
2. runs the expensive code on them (timed),
3. trains an Emulator (log outputs, PCA), validates it on the held-out test set,
4. saves/loads it, and compares per-call cost and the DESI DR2 log-likelihood of the
   emulator against (a) the expensive code and (b) astrobayes' own JAX quadrature.

Run:  .venv/bin/python examples/emulate_distances.py --num-train 2048 --num-test 256
(about 5-10 minutes on 2 CPU cores; smaller numbers for a quick look).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import quad

from astrobayes.cosmology import (
    desi_dr2_bao,
    make_bao_log_likelihood,
    make_emulated_bao_log_likelihood,
)
from astrobayes.emulators import design, train_emulator, validate_emulator
from astrobayes.io import load_emulator, save_emulator

HUBBLE_DISTANCE_H1 = 2997.92458  # c / (100 km/s/Mpc) in Mpc
BOUNDS = np.array([[0.01, 0.99], [50.0, 150.0], [-3.0, 1.0], [-3.0, 2.0]])  # Om, h rd, w0, wa
NAMES = ("omega_m", "h_rd", "w0", "wa")
REDSHIFT_GRID = np.linspace(0.1, 2.5, 241)  # step 0.01


def expensive_distances(theta: np.ndarray) -> np.ndarray:
    """[D_M/r_d, D_H/r_d] on REDSHIFT_GRID by adaptive quadrature, one redshift at a time."""
    omega_m, h_rd, w0, wa = (float(v) for v in theta)

    def efunc(z):
        de = (1 + z) ** (3 * (1 + w0 + wa)) * np.exp(-3 * wa * z / (1 + z))
        return np.sqrt(omega_m * (1 + z) ** 3 + (1 - omega_m) * de)

    unit = HUBBLE_DISTANCE_H1 / h_rd
    dm = [
        unit * quad(lambda x: 1.0 / efunc(x), 0.0, z, epsabs=0.0, epsrel=1e-10)[0]
        for z in REDSHIFT_GRID
    ]
    dh = [unit / efunc(z) for z in REDSHIFT_GRID]
    return np.concatenate([dm, dh])


def expensive_log_likelihood_fn(data):
    """The same likelihood with the expensive physics (linear interpolation on the grid)."""
    fn = make_emulated_bao_log_likelihood(_Table(), data, REDSHIFT_GRID)
    jitted = jax.jit(lambda outputs: fn(outputs))
    return lambda theta: float(jitted(jnp.asarray(expensive_distances(theta))))


class _Table:
    """Adapter: 'emulator' whose input already is the output vector."""

    num_outputs = 2 * REDSHIFT_GRID.size

    def __call__(self, outputs):
        return outputs


def _time_per_call(fn, thetas, repeats=1):
    fn(thetas[0])  # compile / warm up
    start = time.perf_counter()
    for _ in range(repeats):
        for theta in thetas:
            value = fn(theta)
            if hasattr(value, "block_until_ready"):
                value.block_until_ready()
    return (time.perf_counter() - start) / (repeats * len(thetas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=2048)
    parser.add_argument("--num-test", type=int, default=256)
    parser.add_argument("--num-epochs", type=int, default=1500)
    parser.add_argument("--output", type=Path, default=None, help="where to save the emulator")
    args = parser.parse_args()

    key = jax.random.key(2025)
    design_key, test_key, train_key = jax.random.split(key, 3)
    train_x = design(design_key, BOUNDS, args.num_train, method="sobol")
    test_x = design(test_key, BOUNDS, args.num_test, method="lhs")

    start = time.perf_counter()
    train_y = np.stack([expensive_distances(t) for t in train_x])
    seconds_expensive = (time.perf_counter() - start) / args.num_train
    test_y = np.stack([expensive_distances(t) for t in test_x])
    print(
        f"expensive physics: {1e3 * seconds_expensive:.1f} ms per parameter point "
        f"({REDSHIFT_GRID.size} quad calls)"
    )

    start = time.perf_counter()
    emulator, info = train_emulator(
        train_key,
        train_x,
        train_y,
        pca_components=24,
        hidden=(128, 128, 128),
        log_outputs=True,
        num_epochs=args.num_epochs,
        batch_size=128,
        learning_rate=2e-3,
        patience=200,
    )
    print(
        f"training: {time.perf_counter() - start:.0f} s, {info.num_epochs} epochs, "
        f"best {info.best_epoch}, validation loss {info.validation_losses.min():.2e}"
    )

    report = validate_emulator(emulator, test_x, test_y)
    print(
        f"held-out ({report.num_points} LHS points over the whole box): max relative error "
        f"{report.max_relative_error:.2e}, 99th percentile {report.percentile_99_relative_error:.2e}, "
        f"median {report.median_relative_error:.2e}"
    )

    output = args.output or Path(tempfile.mkdtemp()) / "bao_distances.eqx"
    save_emulator(output, emulator)
    emulator = load_emulator(output)
    print(f"saved and reloaded: {output} ({output.stat().st_size / 1024:.0f} KiB)")

    data = desi_dr2_bao()
    emulated = jax.jit(make_emulated_bao_log_likelihood(emulator, data, REDSHIFT_GRID))
    direct = jax.jit(make_bao_log_likelihood(data, NAMES))
    expensive = expensive_log_likelihood_fn(data)

    # Accuracy of ln L where the posterior lives (and over the whole box).
    near = np.array([[0.25, 0.36], [96.0, 107.0], [-1.3, -0.3], [-2.5, 0.8]])
    near_x = design(jax.random.key(7), near, 256, method="lhs")
    exact = np.array([float(direct(jnp.asarray(t))) for t in near_x])
    approx = np.array([float(emulated(jnp.asarray(t))) for t in near_x])
    delta = np.abs(approx - exact)
    good = exact > exact.max() - 10  # within the bulk of the posterior
    print(
        f"|Delta ln L| emulator vs exact, posterior region ({len(near_x)} LHS points): "
        f"median {np.median(delta):.3f}, max {delta.max():.3f}; "
        f"where ln L > max - 10 ({good.sum()} points): max {delta[good].max():.3f}"
    )
    slow = np.array([expensive(t) for t in near_x[:16]])
    fast = np.array([float(direct(jnp.asarray(t))) for t in near_x[:16]])
    print(
        f"|Delta ln L| expensive (grid + interpolation) vs JAX quadrature: max {np.abs(slow - fast).max():.1e}"
    )

    thetas = [jnp.asarray(t) for t in near_x[:64]]
    t_emulated = _time_per_call(emulated, thetas, repeats=5)
    t_direct = _time_per_call(direct, thetas, repeats=5)
    t_expensive = _time_per_call(expensive, list(near_x[:8]))
    batch = jnp.asarray(near_x)
    batched_emulated = jax.jit(jax.vmap(emulated))
    batched_direct = jax.jit(jax.vmap(direct))
    t_batch_emulated = _time_per_call(batched_emulated, [batch], repeats=10) / len(batch)
    t_batch_direct = _time_per_call(batched_direct, [batch], repeats=10) / len(batch)
    print(
        f"per likelihood call: expensive {1e3 * t_expensive:.1f} ms, emulator {1e6 * t_emulated:.0f} us "
        f"(speed-up x{t_expensive / t_emulated:.0f}), JAX quadrature {1e6 * t_direct:.0f} us"
    )
    print(
        f"vmapped over {len(batch)} points, per point: emulator {1e6 * t_batch_emulated:.1f} us, "
        f"JAX quadrature {1e6 * t_batch_direct:.1f} us"
    )
    grad = jax.jit(
        jax.grad(lambda t: make_emulated_bao_log_likelihood(emulator, data, REDSHIFT_GRID)(t))
    )
    print("gradient at the DESI best fit:", np.asarray(grad(jnp.array([0.3, 101.5, -0.8, -0.6]))))


if __name__ == "__main__":
    main()
