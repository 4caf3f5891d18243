r"""Physics-informed learning: differentiable ODE models, PINNs and stiff networks.

- :mod:`astrobayes.physics.growth`: linear growth :math:`D(a)`, :math:`f\sigma_8(z)` by
  a diffrax ODE on the background of :mod:`astrobayes.cosmology`, the Gold-2017
  :math:`f\sigma_8` compilation and ΛCDM / w0waCDM growth models for NUTS and
  :func:`astrobayes.comparison.compare`.
- :mod:`astrobayes.physics.pinn`: physics-informed networks for the Lane–Emden and the
  Friedmann equations (boundary conditions by construction, residual-based adaptive
  collocation, vmapped deep ensembles, Student-t and split-conformal intervals with
  measured coverage, residual-based error estimates) and conventional Dopri8 solutions.
- :mod:`astrobayes.physics.chemistry`: a stiff primordial-chemistry and cooling network
  (9 species + temperature, 18 reactions from the literature) solved with diffrax
  Kvaerno5, its invariants, an equilibrium root solve and a trajectory generator.
- :mod:`astrobayes.physics.surrogates`: learned surrogates of that network (MLP,
  DeepONet, latent neural ODE) with deep-ensemble error bars, their errors in dex,
  calibration and roll-outs.
- :mod:`astrobayes.physics.rates`: rate-coefficient multipliers of a reduced chemistry
  sub-network recovered by NUTS through the diffrax solve, with interval coverage over
  simulated data sets and a free-vs-fixed model comparison.
- :mod:`astrobayes.physics.augmentation`: redshift augmentation (Boone 2019) of simulated
  supernova-like light curves and a small classifier to measure its gain at high z.

See ``docs/physics.md``.
"""

from astrobayes.physics.augmentation import (
    LightCurves,
    SurveyConfig,
    TransientClassifier,
    classification_accuracy,
    redshift_augment,
    redshift_augment_latent,
    simulate_transients,
    train_classifier,
)
from astrobayes.physics.growth import (
    FSigma8Data,
    GrowthSolution,
    fsigma8,
    fsigma8_log_likelihood,
    gold2017_fsigma8,
    growth_models,
    solve_growth,
)
from astrobayes.physics.pinn import (
    FriedmannConfig,
    FriedmannPINN,
    LaneEmdenConfig,
    LaneEmdenPINN,
    PINNEnsemble,
    ScreenedCalibration,
    conformal_scales,
    ensemble_coverage,
    ensemble_predict,
    friedmann_error_estimate,
    friedmann_exact,
    lane_emden_error_estimate,
    lane_emden_exact,
    screened_conformal_scales,
    solve_friedmann,
    solve_lane_emden,
    student_t_scales,
    train_friedmann_ensemble,
    train_lane_emden_ensemble,
)
from astrobayes.physics.rates import (
    RATE_PARAMETERS,
    RateDrawsCheck,
    RateDrawsStatus,
    RateNetworkConfig,
    RateProblem,
    check_rate_draws,
    posterior_interval_coverage,
    rate_logdensity,
    rate_models,
    sample_rate_posteriors,
    simulate_rate_data,
    solve_rate_network,
    solve_stiff_subnetwork,
)
from astrobayes.physics.surrogates import (
    DeepONetSurrogate,
    LatentODESurrogate,
    MLPSurrogate,
    SurrogateConfig,
    SurrogateData,
    SurrogateEnsemble,
    fit_variance_scale,
    interval_coverage,
    rollout,
    surrogate_data,
    surrogate_errors,
    surrogate_predict,
    train_surrogate_ensemble,
)

__all__ = [
    "DeepONetSurrogate",
    "FSigma8Data",
    "FriedmannConfig",
    "FriedmannPINN",
    "GrowthSolution",
    "LaneEmdenConfig",
    "LaneEmdenPINN",
    "LatentODESurrogate",
    "LightCurves",
    "MLPSurrogate",
    "PINNEnsemble",
    "RATE_PARAMETERS",
    "RateDrawsCheck",
    "RateDrawsStatus",
    "RateNetworkConfig",
    "RateProblem",
    "ScreenedCalibration",
    "SurrogateConfig",
    "SurrogateData",
    "SurrogateEnsemble",
    "SurveyConfig",
    "TransientClassifier",
    "check_rate_draws",
    "classification_accuracy",
    "conformal_scales",
    "ensemble_coverage",
    "ensemble_predict",
    "fit_variance_scale",
    "friedmann_error_estimate",
    "friedmann_exact",
    "fsigma8",
    "fsigma8_log_likelihood",
    "gold2017_fsigma8",
    "growth_models",
    "interval_coverage",
    "lane_emden_error_estimate",
    "lane_emden_exact",
    "posterior_interval_coverage",
    "rate_logdensity",
    "rate_models",
    "redshift_augment",
    "redshift_augment_latent",
    "rollout",
    "sample_rate_posteriors",
    "screened_conformal_scales",
    "simulate_rate_data",
    "simulate_transients",
    "solve_friedmann",
    "solve_growth",
    "solve_lane_emden",
    "solve_rate_network",
    "solve_stiff_subnetwork",
    "student_t_scales",
    "surrogate_data",
    "surrogate_errors",
    "surrogate_predict",
    "train_classifier",
    "train_friedmann_ensemble",
    "train_lane_emden_ensemble",
    "train_surrogate_ensemble",
]
