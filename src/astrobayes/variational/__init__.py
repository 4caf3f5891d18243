"""Variational inference with measured calibration, and variational mass mapping.

- families: :class:`MeanFieldGaussian`, :class:`LowRankGaussian`, :class:`FlowFamily`;
- :func:`fit_variational`: stochastic ELBO through the package's one training loop;
- mass mapping: Kaiser-Squires forward model on a masked flat patch with a Gaussian
  power-spectrum prior and its exact Wiener-filter posterior (:func:`wiener_posterior`);
  a shifted lognormal prior (:func:`lognormal_logdensity`) whose reference is MCMC.
"""

from astrobayes.variational.families import FlowFamily, LowRankGaussian, MeanFieldGaussian
from astrobayes.variational.fit import VIConfig, VIResult, VIStatus, fit_variational
from astrobayes.variational.massmap import (
    MassMapProblem,
    WienerPosterior,
    gaussian_field,
    kaiser_squires_shear,
    lognormal_convergence,
    lognormal_logdensity,
    make_problem,
    mass_map_logdensity,
    simulate_lognormal_shear,
    simulate_shear,
    wiener_posterior,
)

__all__ = [
    "FlowFamily",
    "LowRankGaussian",
    "MassMapProblem",
    "MeanFieldGaussian",
    "VIConfig",
    "VIResult",
    "VIStatus",
    "WienerPosterior",
    "fit_variational",
    "gaussian_field",
    "kaiser_squires_shear",
    "lognormal_convergence",
    "lognormal_logdensity",
    "make_problem",
    "mass_map_logdensity",
    "simulate_lognormal_shear",
    "simulate_shear",
    "wiener_posterior",
]
