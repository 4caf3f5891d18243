"""Simulation-based inference: simulators, NPE / NLE / NRE, embeddings, sequential rounds.

Layout (mirroring the method): ``simulators`` (running a simulator), ``priors``,
``estimators`` (the NPE / NLE / NRE Modules and their losses), ``training`` (training
them through the package's one loop), ``posterior`` (sampling one observation, with the
``importance``, ``mcmc`` and ``smc`` building blocks), ``calibration`` (batched draws for
the checks of :mod:`astrobayes.validation`), ``sequential`` (truncated rounds),
``evidence`` (model comparison with a learned likelihood) and ``pipeline`` (the
configuration shared by the Python API and ``astrobayes sbi``).

Typical use::

    prior = Prior.uniform([0.1, 0.6], [0.5, 1.0], names=("omega_m", "s8"))
    sims = simulate_for_prior(key, prior, simulate, 10_000, sink=SimulationStore("sims"))
    npe, info = train_npe(key, prior, sims.theta, sims.x, embedding=CNN2dEmbedding(...))
    posterior = sample_posterior(key, npe, x_obs, 10_000)
    draws = calibration_draws(key, npe, theta_test, x_test)   # -> validation report
"""

from astrobayes._training import TrainingInfo, TrainingStatus
from astrobayes.sbi.calibration import CalibrationDraws, calibration_draws
from astrobayes.sbi.embeddings import (
    AbstractEmbedding,
    CNN1dEmbedding,
    CNN2dEmbedding,
    IdentityEmbedding,
    MLPEmbedding,
)
from astrobayes.sbi.estimators import NLE, NPE, NRE, AbstractEstimator, FlowConfig
from astrobayes.sbi.likelihood_check import (
    LikelihoodCheckResult,
    LikelihoodCheckStatus,
    local_likelihood_check,
)
from astrobayes.sbi.pipeline import (
    SBIConfig,
    SBIResult,
    build_simulator,
    config_from_dict,
    load_simulator,
    run_sbi,
)
from astrobayes.sbi.posterior import MCMCConfig, PosteriorSamples, PosteriorStatus, sample_posterior
from astrobayes.sbi.priors import Prior, prior_from_config
from astrobayes.sbi.sequential import RoundInfo, TruncatedPrior, truncate_prior
from astrobayes.sbi.simulators import (
    FailureLocations,
    JaxSimulator,
    PythonSimulator,
    SimulationResult,
    SimulationStatus,
    failure_locations,
    run_simulations,
    simulate_for_prior,
)
from astrobayes.sbi.training import SBITrainingConfig, train_nle, train_npe, train_nre

__all__ = [
    "NLE",
    "NPE",
    "NRE",
    "AbstractEmbedding",
    "AbstractEstimator",
    "CNN1dEmbedding",
    "CNN2dEmbedding",
    "CalibrationDraws",
    "FlowConfig",
    "IdentityEmbedding",
    "JaxSimulator",
    "LikelihoodCheckResult",
    "LikelihoodCheckStatus",
    "MCMCConfig",
    "MLPEmbedding",
    "PosteriorSamples",
    "PosteriorStatus",
    "Prior",
    "PythonSimulator",
    "RoundInfo",
    "SBIConfig",
    "SBIResult",
    "build_simulator",
    "SBITrainingConfig",
    "SimulationResult",
    "SimulationStatus",
    "FailureLocations",
    "failure_locations",
    "TrainingInfo",
    "TrainingStatus",
    "TruncatedPrior",
    "calibration_draws",
    "config_from_dict",
    "load_simulator",
    "local_likelihood_check",
    "prior_from_config",
    "run_sbi",
    "run_simulations",
    "sample_posterior",
    "simulate_for_prior",
    "train_nle",
    "train_npe",
    "train_nre",
    "truncate_prior",
]
