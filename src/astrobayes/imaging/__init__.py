"""Radio-interferometric imaging with uncertainty quantification.

Submodules are imported explicitly, e.g. ``from astrobayes.imaging.map import
map_estimate``:

| module | holds |
|---|---|
| ``operators`` | ``MeasurementOperator`` (behaviour as methods), the masked FFT, noise |
| ``nufft`` | the NUFFT operator and uv weights |
| ``operator_norm`` | spectral norm by power iteration |
| ``wavelets`` | orthonormal periodised Daubechies transforms |
| ``priors``, ``crr`` | ``ImagingPrior``: wavelet sparsity, learned convex ridge regulariser |
| ``posterior`` | the imaging posterior ``U = f + g`` |
| ``map`` | MAP by FISTA, the discrepancy-principle strength |
| ``uq``, ``intervals`` | HPD bound and hypothesis tests; local credible intervals |
| ``mcmc`` | ``proximal_mcmc`` (MYULA, SK-ROCK) |
| ``nested``, ``nested_kernel`` | proximal nested sampling: driver; state, init, step |
| ``constraints``, ``prior_sampling``, ``prior_evidence`` | evidence of imaging priors (convex, or known only through a score) |
| ``pipeline``, ``problem`` | ``run_imaging``; the ``astrobayes image`` settings and problems |
| ``toeplitz`` | ``NormalOperator``: ``Phi^H W Phi`` by Toeplitz embedding (NUFFT) or masked FFT |
| ``skies``, ``uv_coverage`` | random training skies; randomised uv-coverages, simulated observations |
| ``learned_uq`` | split-conformal intervals (pixels, super-pixels) for any reconstruction |
| ``networks`` | the one ``UNet`` and ``DnCNN`` of every learned imaging component |
| ``denoisers``, ``galaxies`` | learned denoisers, their Tweedie score; GalSim training galaxies |
| ``pnp`` | PnP-ULA / PnP-MALA posterior sampling with any score |
| ``diffusion`` | diffusion priors (noise-conditional score, VE schedule); annealed Langevin and DPS |
| ``prior_calibration`` | coverage harness on exact Gaussian posteriors |
| ``unrolled`` | the unrolled physics-informed reconstruction network |

Every runner returns a NamedTuple with an :class:`astrobayes._status.Status` and takes
``throw=``. Nothing here reads or writes files (see :mod:`astrobayes.io.imaging_files`).
"""

__all__: list[str] = []
