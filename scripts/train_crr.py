"""Train the convex ridge regulariser shipped in ``astrobayes/imaging/weights/``.

Denoising training (Goujon et al. 2022, arXiv:2211.12461, section 4): the regulariser
defines the denoiser ``argmin_x ||x - y||^2 / 2 + lam R_mu(x)``, approximated during
training by ``num_steps`` gradient steps (the "t-step denoiser"), and its parameters
minimise the mean squared error to clean patches. Training images are offline only:

* the Hubble Deep Field image shipped with scikit-image (grey, rescaled, two scales);
* simulated radio skies: point sources, elliptical Gaussian components and power-law
  (Gaussian random field, exponentiated) extended emission, each rescaled to [0, 1].

The test images of the benchmarks (M31, Cygnus A) are never used.

Usage (about 10 CPU-minutes on 2 cores):

    .venv/bin/python scripts/train_crr.py --out src/astrobayes/imaging/weights/crr_default.npz

The defaults make the shipped weights. ``--kernel``, ``--channels``, ``--knots``,
``--t-steps`` and ``--images`` train other architectures and data mixes, e.g. one
closer to the QuantifAI study's network (Liaudat et al. 2024, arXiv:2312.00125: a
two-layer [1, 8, 32]-channel CRR, 21 knots, t = 5, natural images):

    .venv/bin/python scripts/train_crr.py --kernel 13 --channels 32 --knots 21 --t-steps 5
        --out /tmp/crr_k13c32t5.npz        # (one command line)

A single layer of larger kernels stands in for the study's two layers: the CRR's
convolution layers have no nonlinearity between them (Goujon et al. 2022,
arXiv:2211.12461), and a composition of linear convolutions is one linear convolution
whose kernel is the composed kernel (two 7x7 layers give a 13x13 one). So each of the
study's 22-32 ridge directions ``h_c`` is a 13x13 kernel, representable by a single
13x13 layer with as many filters (a superset of the two-layer family); only the
parametrisation the optimiser sees differs, not the regularisers that can be reached.
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from astrobayes.imaging.crr import ConvexRidgePrior, init_convex_ridge
from astrobayes.io.imaging_files import write_convex_ridge


def hubble_images() -> list[np.ndarray]:
    """Hubble Deep Field (scikit-image), grey, in [0, 1], at two scales."""
    from skimage.data import hubble_deep_field
    from skimage.transform import rescale

    image = hubble_deep_field().astype(np.float64).mean(axis=2)
    image = (image - image.min()) / (image.max() - image.min())
    return [image, rescale(image, 0.5, anti_aliasing=True)]


def radio_sky(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One simulated radio sky in [0, 1]: extended emission, Gaussians, point sources."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    sky = np.zeros((size, size))
    # power-law extended emission
    k = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    k[0, 0] = np.inf
    beta = rng.uniform(2.5, 4.0)
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * k ** (-beta / 2)))
    field = (field - field.mean()) / field.std()
    envelope = np.exp(
        -((xx - rng.uniform(32, 96)) ** 2 + (yy - rng.uniform(32, 96)) ** 2)
        / (2 * rng.uniform(15, 40) ** 2)
    )
    sky += rng.uniform(0.2, 1.0) * envelope * np.exp(rng.uniform(0.5, 1.5) * field)
    # elliptical Gaussian components (lobes, jets)
    for _ in range(rng.integers(1, 6)):
        cx, cy = rng.uniform(10, size - 10, 2)
        sx, sy = rng.uniform(1.0, 10.0, 2)
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        sky += rng.uniform(0.1, 1.0) * np.exp(-(u**2 / (2 * sx**2) + v**2 / (2 * sy**2)))
    # point sources convolved with a small beam
    for _ in range(rng.integers(0, 30)):
        cx, cy = rng.uniform(0, size, 2)
        sky += rng.pareto(1.5) * 0.05 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.8**2))
    sky -= sky.min()
    return sky / sky.max()


def sample_patches(rng, images, num, size):
    """Random patches with random flips and transposes."""
    patches = np.empty((num, size, size), np.float32)
    for i in range(num):
        image = images[rng.integers(len(images))]
        r = rng.integers(0, image.shape[0] - size + 1)
        c = rng.integers(0, image.shape[1] - size + 1)
        patch = image[r : r + size, c : c + size]
        if rng.random() < 0.5:
            patch = patch[::-1]
        if rng.random() < 0.5:
            patch = patch.T
        patches[i] = patch
    return patches


def fft_gradient(regulariser, images):
    """``grad R`` at strength 1 with the circular convolutions done by FFT (same operator).

    ``regulariser.convolve`` pads circularly by ``k // 2`` and cross-correlates: a circular
    convolution with the flipped kernel rolled so that its centre sits at the origin.
    Much cheaper than the direct convolution for large kernels (13x13: ~20 times).
    """
    kernels = regulariser.kernels()
    size = kernels.shape[-1]
    shape = images.shape[-2:]
    placed = jnp.zeros((kernels.shape[0],) + shape).at[:, :size, :size].set(kernels[:, ::-1, ::-1])
    shift = size - 1 - size // 2
    spectra = jnp.fft.rfft2(jnp.roll(placed, (-shift, -shift), axis=(1, 2)))
    mu = regulariser.mu
    coefficients = jnp.fft.irfft2(jnp.fft.rfft2(images)[:, None] * spectra, s=shape)
    activation = regulariser.activation(mu * jnp.moveaxis(coefficients, 1, -1))
    spectrum = jnp.fft.rfft2(jnp.moveaxis(activation, -1, 1)) * jnp.conj(spectra)
    return jnp.fft.irfft2(jnp.sum(spectrum, axis=1), s=shape) / mu


def t_step_denoise(regulariser, noisy, num_steps, conv="direct"):
    """``num_steps`` gradient steps on ``|x - y|^2 / 2 + lam R(x)`` from ``x = y``."""
    regulariser = regulariser.normalised()
    prior = ConvexRidgePrior(1.0, regulariser)
    strength = regulariser.strength
    step = 1.0 / (1.0 + strength)

    def gradient(x):
        if conv == "fft":
            return fft_gradient(regulariser, x)
        return jax.vmap(prior.gradient)(x)

    def body(_, x):
        return x - step * (x - noisy + strength * gradient(x))

    return jax.lax.fori_loop(0, num_steps, body, noisy)


def main() -> None:
    """Train and save the regulariser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="src/astrobayes/imaging/weights/crr_default.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-steps-train", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--knots", type=int, default=41, help="spline knots (odd)")
    parser.add_argument("--t-steps", type=int, default=12, help="denoising steps t")
    parser.add_argument(
        "--conv",
        choices=["direct", "fft"],
        default="direct",
        help="how the circular convolutions are evaluated (the same operator; fft: faster "
        "for large kernels; the shipped weights were made with direct)",
    )
    parser.add_argument(
        "--images",
        choices=["mix", "hubble", "radio"],
        default="mix",
        help="training images: Hubble Deep Field + simulated skies, or one of the two",
    )
    parser.add_argument("--sigma", type=float, default=5.0 / 255.0)
    parser.add_argument("--num-skies", type=int, default=64)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    skies = [radio_sky(rng) for _ in range(args.num_skies)]  # drawn always: same rng stream
    images = {"mix": hubble_images() + skies, "hubble": hubble_images(), "radio": skies}[
        args.images
    ]
    key = jax.random.key(args.seed)
    key, init_key = jax.random.split(key)
    model = init_convex_ridge(
        init_key, num_channels=args.channels, kernel_size=args.kernel, num_knots=args.knots
    )
    model = eqx.tree_at(lambda m: m.log_mu, model, jnp.log(jnp.asarray(4.0)))
    model = eqx.tree_at(lambda m: m.log_strength, model, jnp.log(jnp.asarray(2.0)))
    schedule = optax.cosine_decay_schedule(1e-2, args.num_steps_train, alpha=0.05)
    optimiser = optax.adam(schedule)
    state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def update(model, state, clean, noise):
        def loss_fn(m):
            denoised = t_step_denoise(m, clean + noise, args.t_steps, args.conv)
            return jnp.mean((denoised - clean) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, state = optimiser.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, loss

    start = time.time()
    history = []
    for step in range(args.num_steps_train):
        clean = jnp.asarray(sample_patches(rng, images, args.batch, args.patch))
        key, noise_key = jax.random.split(key)
        noise = args.sigma * jax.random.normal(noise_key, clean.shape)
        model, state, loss = update(model, state, clean, noise)
        history.append(float(loss))
        if step % 50 == 0 or step == args.num_steps_train - 1:
            psnr = 10 * np.log10(1.0 / np.mean(history[-50:]))
            print(
                f"step {step:4d}  loss {np.mean(history[-50:]):.3e}  PSNR {psnr:.2f} dB  "
                f"lam {float(model.strength):.3f} mu {float(model.mu):.3f}  {time.time() - start:.0f} s",
                flush=True,
            )
    noisy_psnr = 10 * np.log10(1.0 / args.sigma**2)
    write_convex_ridge(
        args.out,
        model,
        sigma_train=args.sigma,
        t_steps=args.t_steps,
        num_train_steps=args.num_steps_train,
        seed=args.seed,
        final_denoising_psnr_db=10 * np.log10(1.0 / np.mean(history[-50:])),
        noisy_psnr_db=noisy_psnr,
        training_data={
            "mix": "skimage hubble_deep_field (2 scales) + simulated radio skies",
            "hubble": "skimage hubble_deep_field (2 scales)",
            "radio": "simulated radio skies",
        }[args.images],
        script="scripts/train_crr.py",
    )
    print(f"saved {args.out} after {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
