"""Fields on the sphere: differentiable harmonic transforms, wavelets, scattering statistics.

* :mod:`astrobayes.sphere.transforms`: spherical harmonic transforms (spin 0 and 2) on
  exact grids (Gauss-Legendre, McEwen-Wiaux) and HEALPix, as JAX primitives over ducc0
  with exact transposes, or s2fft's pure-JAX path.
"""

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

__all__ = [
    "METHODS",
    "SAMPLINGS",
    "SphereGrid",
    "alm_index",
    "ell_m",
    "forward",
    "inverse",
    "num_alm",
]
