"""Models: the ``Model`` contract and problems with a known evidence."""

from astrobayes.models.problems import (
    EvidenceProblem,
    bimodal_gaussian,
    gaussian_gaussian_prior,
    gaussian_uniform_prior,
    normal_gamma,
    radiata_pine,
    rosenbrock,
)

__all__ = [
    "EvidenceProblem",
    "bimodal_gaussian",
    "gaussian_gaussian_prior",
    "gaussian_uniform_prior",
    "normal_gamma",
    "radiata_pine",
    "rosenbrock",
]
