"""Intelligible ML: mutual information with error bars and symbolic regression by evidence.

- :mod:`astrobayes.interpret.mutual_info`: GMM-MI (Piras et al. 2023) in JAX, for
  scalar or vector variables, with bootstrap error bars vectorised over replicas.
- :mod:`astrobayes.interpret.symbolic`: exhaustive symbolic regression (ESR, Bartlett et
  al. 2022) fitted in batched JAX, ranked by Laplace evidence and description length.
- :mod:`astrobayes.interpret.saliency`: vanilla gradients, integrated gradients,
  permutation importance and the model-randomisation sanity check.
"""

from astrobayes.interpret.mutual_info import (
    GaussianMixture,
    MIConfig,
    MIResult,
    MIStatus,
    fit_gaussian_mixture,
    mixture_log_density,
    mixture_mutual_information,
    mutual_information,
)
from astrobayes.interpret.saliency import (
    ImportanceResult,
    RandomisationCheck,
    RandomisationStatus,
    integrated_gradients,
    permutation_importance,
    randomisation_check,
    vanilla_gradients,
)
from astrobayes.interpret.symbolic import (
    BINARY_OPERATORS,
    DEFAULT_OPERATORS,
    UNARY_OPERATORS,
    Equation,
    SymbolicConfig,
    SymbolicResult,
    SymbolicStatus,
    enumerate_expressions,
    evaluate_expression,
    symbolic_regression,
    unique_expressions,
)

__all__ = [
    "BINARY_OPERATORS",
    "DEFAULT_OPERATORS",
    "UNARY_OPERATORS",
    "Equation",
    "SymbolicConfig",
    "SymbolicResult",
    "SymbolicStatus",
    "enumerate_expressions",
    "evaluate_expression",
    "symbolic_regression",
    "unique_expressions",
    "GaussianMixture",
    "ImportanceResult",
    "RandomisationCheck",
    "RandomisationStatus",
    "integrated_gradients",
    "permutation_importance",
    "randomisation_check",
    "vanilla_gradients",
    "MIConfig",
    "MIResult",
    "MIStatus",
    "fit_gaussian_mixture",
    "mixture_log_density",
    "mixture_mutual_information",
    "mutual_information",
]
