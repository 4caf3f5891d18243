"""Fields on the sphere: differentiable harmonic transforms, wavelets, scattering statistics.

* :mod:`astrobayes.sphere.transforms`: spherical harmonic transforms (spin 0 and 2) on
  exact grids (Gauss-Legendre, McEwen-Wiaux) and HEALPix, as JAX primitives over ducc0
  with exact transposes, or s2fft's pure-JAX path.
* :mod:`astrobayes.sphere.wavelets`: scale-discretised wavelets (S2LET tiling),
  axisymmetric and directional steerable (``DIRECTIONS``; analysis, synthesis and
  steering to any orientation), filters built here.
* :mod:`astrobayes.sphere.scattering`: scattering covariances S1..S4 (Mousset et al. 2024).
* :mod:`astrobayes.sphere.textures`: new maps from one target by microcanonical gradient
  descent on those statistics, and their validation
  (:mod:`astrobayes.sphere.validation`: spectra, moments, Minkowski functionals).
* :mod:`astrobayes.sphere.disco`: DISCO spherical convolutions on HEALPix (Ocampo, Price &
  McEwen 2023), a small spherical CNN, rotations through harmonic space and an
  equivariance measurement.
* :mod:`astrobayes.sphere.inference`: simulation-based inference of field parameters
  from maps (a shifted lognormal simulator, scattering-covariance and DISCO-CNN
  compressions for NPE, calibration with an over-confident control).
"""

from astrobayes.sphere.disco import (
    DiscoCNN,
    DiscoConv,
    DiscoStencil,
    disco_stencil,
    equivariance_error,
    pixel_scale,
    planar_control_conv,
    radial_basis_spectrum,
    random_rotations,
    rotate_map,
)
from astrobayes.sphere.inference import (
    DiscoEmbedding,
    LognormalSimulator,
    ScatteringCompression,
    SkySBIResult,
    SkySBIStatus,
    lognormal_prior,
    overconfident_draws,
    run_sky_sbi,
)
from astrobayes.sphere.scattering import (
    ScatteringCovariance,
    flatten_statistics,
    normalise,
    scattering_covariance,
)
from astrobayes.sphere.textures import (
    TextureConfig,
    TextureResult,
    TextureStatus,
    comparison_field,
    gaussian_field,
    generate_textures,
    validate_textures,
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
from astrobayes.sphere.validation import (
    Minkowski,
    band_powers,
    gaussian_minkowski,
    minkowski_functionals,
    pixel_moments,
    power_spectrum,
)
from astrobayes.sphere.wavelets import (
    DIRECTIONS,
    WaveletFilters,
    axisymmetric_filters,
    directional_analysis,
    directional_filters,
    directional_maps_from_alm,
    directional_synthesis,
    orientations,
    steer,
    wavelet_analysis,
    wavelet_synthesis,
)

__all__ = [
    "DIRECTIONS",
    "METHODS",
    "SAMPLINGS",
    "DiscoCNN",
    "DiscoConv",
    "DiscoEmbedding",
    "LognormalSimulator",
    "DiscoStencil",
    "Minkowski",
    "ScatteringCompression",
    "ScatteringCovariance",
    "SkySBIResult",
    "SkySBIStatus",
    "SphereGrid",
    "TextureConfig",
    "TextureResult",
    "TextureStatus",
    "WaveletFilters",
    "alm_index",
    "axisymmetric_filters",
    "band_powers",
    "comparison_field",
    "directional_analysis",
    "directional_filters",
    "directional_maps_from_alm",
    "directional_synthesis",
    "disco_stencil",
    "ell_m",
    "equivariance_error",
    "flatten_statistics",
    "forward",
    "gaussian_field",
    "gaussian_minkowski",
    "generate_textures",
    "inverse",
    "lognormal_prior",
    "minkowski_functionals",
    "normalise",
    "num_alm",
    "orientations",
    "overconfident_draws",
    "pixel_moments",
    "pixel_scale",
    "planar_control_conv",
    "power_spectrum",
    "radial_basis_spectrum",
    "random_rotations",
    "rotate_map",
    "run_sky_sbi",
    "scattering_covariance",
    "steer",
    "validate_textures",
    "wavelet_analysis",
    "wavelet_synthesis",
]
