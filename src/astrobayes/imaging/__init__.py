"""Radio-interferometric imaging with uncertainty quantification.

Operators (masked FFT, NUFFT) with exact adjoints, orthonormal wavelets, convex priors
(wavelet sparsity, learned convex ridge regulariser), MAP by FISTA, MAP-based
uncertainty (HPD bound, local credible intervals, hypothesis tests), proximal MCMC and
proximal nested sampling. Submodules are imported explicitly, e.g.
``from astrobayes.imaging.map import map_estimate``.
"""
