"""Fields on the sphere: differentiable harmonic transforms, wavelets, scattering statistics.

* :mod:`astrobayes.sphere.transforms`: spherical harmonic transforms (spin 0 and 2) on
  exact grids (Gauss-Legendre, McEwen-Wiaux) and HEALPix, as JAX primitives over ducc0
  with exact transposes, or s2fft's pure-JAX path.
* :mod:`astrobayes.sphere.wavelets`: scale-discretised axisymmetric wavelets (S2LET
  tiling), filters built here.
* :mod:`astrobayes.sphere.scattering`: scattering covariances S1..S4 (Mousset et al. 2024).
"""

from astrobayes.sphere.scattering import (
    ScatteringCovariance,
    flatten_statistics,
    normalise,
    scattering_covariance,
)
from astrobayes.sphere.transforms import (
    METHODS,
    SAMPLINGS,
    SphereGrid,
    alm_index,
    ell_m,
    forward,
    inverse,
    num_alm,
)
from astrobayes.sphere.wavelets import (
    WaveletFilters,
    axisymmetric_filters,
    wavelet_analysis,
    wavelet_synthesis,
)

__all__ = [
    "METHODS",
    "SAMPLINGS",
    "ScatteringCovariance",
    "SphereGrid",
    "WaveletFilters",
    "alm_index",
    "axisymmetric_filters",
    "ell_m",
    "flatten_statistics",
    "forward",
    "inverse",
    "normalise",
    "num_alm",
    "scattering_covariance",
    "wavelet_analysis",
    "wavelet_synthesis",
]
