"""Pure denoising with our learned convex prior (CRR) and db8 wavelets on M31 and Cygnus A.

Issue 16 item 5: isolates the prior from the uv coverage. The operator is the orthonormal
FFT with every coefficient measured (``Phi^H Phi = I``), so the MAP is a denoiser of the
image at pixel noise ``sigma`` (default the CRR's training noise 5/255). Both priors with
positivity, each at a grid of strengths ``centre * 2**k`` (CRR: centre = the ``trained``
strength; wavelets: ``sqrt(2 ln N) / sigma``, the universal threshold), warm-started along
the grid, FISTA tolerance 1e-7. Images as the QuantifAI study loads them
(``imaging_vs_quantifai.load``: flipped, Cygnus A resized to 256x512, scaled to [0, 1]).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/imaging_denoising.py \\
        [--images M31 CYN] [--crr-k -2 -1 0 1 2 3] [--wavelet-k -3 -2 -1 0 1]

Needs ../shared/data/imaging.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from imaging_vs_quantifai import DATA, load

from astrobayes.imaging.map import map_estimate, snr_db, with_strength
from astrobayes.imaging.operators import add_complex_noise, fourier_mask_operator
from astrobayes.imaging.pipeline import ImagingConfig, build_prior
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.io.imaging_files import read_convex_ridge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="+", default=["M31", "CYN"])
    parser.add_argument("--sigma", type=float, default=None, help="pixel noise (default 5/255)")
    parser.add_argument("--crr-k", nargs="+", type=float, default=[-2, -1, 0, 1, 2, 3])
    parser.add_argument("--wavelet-k", nargs="+", type=float, default=[-3, -2, -1, 0, 1])
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (needs ../shared/data/imaging)")
        return
    crr = read_convex_ridge()
    sigma = crr.sigma_train if args.sigma is None else args.sigma
    trained = float(crr.regulariser.strength) / crr.sigma_train**2
    print(f"pixel noise {sigma:.4g}; CRR trained strength {trained:.4g}")
    print(
        f"{'image':5s} {'prior':8s} {'noisy':>6s} {'best':>6s} {'at k':>5s}  SNR per k (dB)  CPU s"
    )
    for name in args.images:
        truth, _ = load(name)
        op = fourier_mask_operator(np.ones(truth.shape, bool))
        # every mode measured at k and -k: Phi^H y = x + white noise of std sigma per pixel
        data = add_complex_noise(jax.random.key(0), op(jnp.asarray(truth, jnp.float32)), sigma)
        noisy = snr_db(truth, op.adjoint(data))
        universal = np.sqrt(2 * np.log(truth.size)) / sigma
        for kind, centre, ks in (
            ("crr", trained, args.crr_k),
            ("wavelets", universal, args.wavelet_k),
        ):
            config = ImagingConfig(prior=kind, positivity=True)
            prior = build_prior(config, truth.shape, centre, crr=crr)
            post = imaging_posterior(op, data, sigma, prior, positivity=True)
            cpu = time.process_time()
            start, curve = None, {}
            for k in ks:
                result = map_estimate(
                    with_strength(post, centre * 2.0**k), initial_image=start, tolerance=1e-7
                )
                start = result.image
                curve[k] = snr_db(truth, result.image)
            best = max(curve, key=curve.get)
            text = " ".join(f"{k:+g}:{v:.2f}" for k, v in curve.items())
            print(
                f"{name:5s} {kind:8s} {noisy:6.2f} {curve[best]:6.2f} {best:+5g}  {text}  "
                f"{time.process_time() - cpu:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
