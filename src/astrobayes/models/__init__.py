"""Models: the ``Model`` contract and problems with a known evidence."""

from astrobayes.models.model import (
    Model,
    UnconstrainedDensity,
    UnconstrainedPrior,
    check_model,
    constrained_samples,
    log_uniform_parameters,
    prior_ranges,
    unconstrained_density,
    unconstrained_prior,
)
from astrobayes.models.problems import (
    EvidenceProblem,
    bimodal_gaussian,
    gaussian_gaussian_prior,
    gaussian_uniform_prior,
    normal_gamma,
    radiata_pine,
    rosenbrock,
    skewed_gumbel,
)

__all__ = [
    "EvidenceProblem",
    "Model",
    "UnconstrainedDensity",
    "UnconstrainedPrior",
    "bimodal_gaussian",
    "check_model",
    "constrained_samples",
    "gaussian_gaussian_prior",
    "gaussian_uniform_prior",
    "log_uniform_parameters",
    "normal_gamma",
    "prior_ranges",
    "radiata_pine",
    "rosenbrock",
    "skewed_gumbel",
    "unconstrained_density",
    "unconstrained_prior",
]
