"""Models: the ``Model`` contract and problems with a known evidence."""

from astrobayes.models.model import (
    Model,
    PriorSupport,
    UnconstrainedDensity,
    UnconstrainedPrior,
    check_model,
    constrained_samples,
    prior_ranges,
    prior_supports,
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
from astrobayes.models.python_likelihood import PythonLikelihood, PythonLikelihoodStatus

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
    "normal_gamma",
    "PriorSupport",
    "PythonLikelihood",
    "PythonLikelihoodStatus",
    "prior_ranges",
    "prior_supports",
    "radiata_pine",
    "rosenbrock",
    "skewed_gumbel",
    "unconstrained_density",
    "unconstrained_prior",
]
