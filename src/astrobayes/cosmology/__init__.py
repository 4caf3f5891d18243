"""Differentiable background cosmology, BAO and SN Ia likelihoods, published data tables.

Quick start (DESI DR2 BAO, flat ΛCDM, parameters ``(omega_m, h_rd)``)::

    import jax, jax.numpy as jnp
    from astrobayes.cosmology import desi_dr2_bao, make_bao_log_likelihood

    log_likelihood_fn = jax.jit(make_bao_log_likelihood(desi_dr2_bao(), ("omega_m", "h_rd")))
    log_likelihood_fn(jnp.array([0.3, 101.0]))

The SN Ia file readers (``read_union3``, ``read_pantheon_binned``, ...) and the shipped
shear data are in :mod:`astrobayes.io` (only ``io/`` touches files). See
``docs/cosmology.md``.
"""

from astrobayes.cosmology.background import (
    SPEED_OF_LIGHT_KM_S,
    Cosmology,
    angular_diameter_distance,
    comoving_distance,
    distance_modulus,
    dv,
    efunc,
    hubble,
    hubble_distance,
    luminosity_distance,
    transverse_comoving_distance,
)
from astrobayes.cosmology.bao_ratios import dh_over_rd, dm_over_rd, dv_over_rd
from astrobayes.cosmology.data import (
    BAO_QUANTITIES,
    BAOData,
    SNData,
    desi_dr1_bao,
    desi_dr2_bao,
)
from astrobayes.cosmology.emulated import make_emulated_bao_log_likelihood
from astrobayes.cosmology.gaussian import (
    GaussianLikelihood,
    gaussian_log_likelihood,
    validate_covariance,
)
from astrobayes.cosmology.labels import LCDM_VALUES, PARAMETER_LABELS, parameter_label
from astrobayes.cosmology.likelihoods import (
    COSMOLOGY_PARAMETERS,
    bao_log_likelihood,
    bao_log_likelihood_from_predictions,
    bao_predictions,
    make_bao_log_likelihood,
    make_sn_log_likelihood,
    sn_distance_moduli,
    sn_log_likelihood,
    sn_log_likelihood_from_moduli,
)

__all__ = [
    "BAO_QUANTITIES",
    "COSMOLOGY_PARAMETERS",
    "LCDM_VALUES",
    "PARAMETER_LABELS",
    "SPEED_OF_LIGHT_KM_S",
    "BAOData",
    "Cosmology",
    "GaussianLikelihood",
    "SNData",
    "angular_diameter_distance",
    "bao_log_likelihood",
    "bao_log_likelihood_from_predictions",
    "bao_predictions",
    "comoving_distance",
    "desi_dr1_bao",
    "desi_dr2_bao",
    "dh_over_rd",
    "distance_modulus",
    "dm_over_rd",
    "dv",
    "dv_over_rd",
    "efunc",
    "gaussian_log_likelihood",
    "hubble",
    "hubble_distance",
    "luminosity_distance",
    "make_bao_log_likelihood",
    "make_emulated_bao_log_likelihood",
    "make_sn_log_likelihood",
    "parameter_label",
    "sn_distance_moduli",
    "sn_log_likelihood",
    "sn_log_likelihood_from_moduli",
    "transverse_comoving_distance",
    "validate_covariance",
]
