"""Intelligible ML: mutual information with error bars and symbolic regression by evidence.

- :mod:`astrobayes.interpret.mutual_info`: GMM-MI (Piras et al. 2023) in JAX, for
  scalar or vector variables, with bootstrap error bars vectorised over replicas.
- :mod:`astrobayes.interpret.symbolic`: exhaustive symbolic regression (ESR, Bartlett et
  al. 2022) fitted in batched JAX, ranked by Laplace evidence and description length.
- :mod:`astrobayes.interpret.saliency`: vanilla gradients, integrated gradients,
  permutation importance and the model-randomisation sanity check.
- :mod:`astrobayes.interpret.halos`: a halo-profile laboratory (Wechsler et al. 2002
  concentrations, Diemer & Kravtsov 2014 profiles, More et al. 2015 splashback radii)
  with its known generating factors.
- :mod:`astrobayes.interpret.vae`: the interpretable variational encoder (β-VAE with a
  radius-conditioned decoder, Lucie-Smith et al. 2022, 2024) and its latent–factor MI.
- :mod:`astrobayes.interpret.ica`: an unsupervised ICA rotation of the encoder's latents
  (β-VAE + ICA), fitted on training latents.
"""

from astrobayes.interpret.halos import (
    FACTOR_NAMES,
    HaloProfiles,
    default_radii,
    halo_log_density,
    halo_profiles,
    splashback_radius,
    wechsler_concentration,
)
from astrobayes.interpret.ica import LatentRotation, RotationStatus, ica_rotation
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
    function_codelength,
    symbolic_regression,
    unique_expressions,
)
from astrobayes.interpret.vae import (
    LatentMIResult,
    LatentMIStatus,
    ProfileVAE,
    VAEConfig,
    active_latents,
    encode_profiles,
    gaussian_kl,
    latent_factor_mi,
    latent_traversal,
    reconstruction_rms,
    train_profile_vae,
    vae_loss,
)

__all__ = [
    "FACTOR_NAMES",
    "HaloProfiles",
    "default_radii",
    "halo_log_density",
    "halo_profiles",
    "splashback_radius",
    "wechsler_concentration",
    "LatentMIResult",
    "LatentMIStatus",
    "LatentRotation",
    "RotationStatus",
    "ica_rotation",
    "ProfileVAE",
    "VAEConfig",
    "active_latents",
    "encode_profiles",
    "gaussian_kl",
    "latent_factor_mi",
    "latent_traversal",
    "reconstruction_rms",
    "train_profile_vae",
    "vae_loss",
    "BINARY_OPERATORS",
    "DEFAULT_OPERATORS",
    "UNARY_OPERATORS",
    "Equation",
    "SymbolicConfig",
    "SymbolicResult",
    "SymbolicStatus",
    "enumerate_expressions",
    "evaluate_expression",
    "function_codelength",
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
