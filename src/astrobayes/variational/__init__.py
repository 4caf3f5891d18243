"""Variational inference with measured calibration, and variational mass mapping.

- families: :class:`MeanFieldGaussian`, :class:`LowRankGaussian`;
- :func:`fit_variational`: stochastic ELBO through the package's one training loop;
- mass mapping: Kaiser-Squires forward model on a masked flat patch with a Gaussian
  power-spectrum prior and its exact Wiener-filter posterior (:func:`wiener_posterior`).
"""

from astrobayes.variational.families import LowRankGaussian, MeanFieldGaussian
from astrobayes.variational.fit import VIConfig, VIResult, VIStatus, fit_variational
from astrobayes.variational.massmap import (
    MassMapProblem,
    WienerPosterior,
    kaiser_squires_shear,
    make_problem,
    mass_map_logdensity,
    simulate_shear,
    wiener_posterior,
)

__all__ = [
    "LowRankGaussian",
    "MassMapProblem",
    "MeanFieldGaussian",
    "VIConfig",
    "VIResult",
    "VIStatus",
    "WienerPosterior",
    "fit_variational",
    "kaiser_squires_shear",
    "make_problem",
    "mass_map_logdensity",
    "simulate_shear",
    "wiener_posterior",
]
