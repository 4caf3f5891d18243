"""Bayesian neural networks with one predictive interface and one calibration harness.

One entry point, :func:`fit` ``(key, method, model, data) -> Predictive``, for every
method (deep ensemble, MC dropout, Bayes by backprop, last-layer Laplace, SGLD, NUTS);
the :class:`Predictive` gives a :class:`PredictiveMixture` at new inputs, which the
harness (:func:`evaluate`, :func:`fit_recalibration`) scores by NLL, CRPS, quantile
calibration error and interval coverage, before and after isotonic recalibration.
:func:`simulate_photometry` makes the worked problem: photometric redshifts from
simulated ugriz colours. See ``docs/probabilistic.md``.

Example (fitting: see :mod:`astrobayes.bayesnn.methods`):
    >>> import jax, jax.numpy as jnp
    >>> from astrobayes.bayesnn import PredictiveMixture, simulate_photometry
    >>> simulate_photometry(jax.random.key(0), 3).features.shape
    (3, 5)
    >>> mix = PredictiveMixture(jnp.zeros((2, 4)), jnp.ones((2, 4)))
    >>> mix.std().tolist()
    [1.0, 1.0]

"""

from astrobayes.bayesnn.calibration import (
    CalibrationMetrics,
    IsotonicRecalibration,
    evaluate,
    fit_recalibration,
    gaussian_crps,
    interval_coverage,
    mixture_crps,
    quantile_calibration_error,
)
from astrobayes.bayesnn.methods import (
    NUTS,
    SGLD,
    BayesByBackprop,
    BNNMethod,
    DeepEnsemble,
    LastLayerLaplace,
    MCDropout,
    fit,
)
from astrobayes.bayesnn.network import HeteroscedasticMLP, gaussian_nll
from astrobayes.bayesnn.photoz import PhotometryData, rest_frame_sed, simulate_photometry
from astrobayes.bayesnn.predictive import BNNStatus, Predictive, PredictiveMixture

__all__ = [
    "NUTS",
    "SGLD",
    "BNNMethod",
    "BNNStatus",
    "BayesByBackprop",
    "CalibrationMetrics",
    "DeepEnsemble",
    "PredictiveMixture",
    "HeteroscedasticMLP",
    "IsotonicRecalibration",
    "LastLayerLaplace",
    "MCDropout",
    "PhotometryData",
    "Predictive",
    "evaluate",
    "fit",
    "fit_recalibration",
    "gaussian_crps",
    "gaussian_nll",
    "interval_coverage",
    "mixture_crps",
    "quantile_calibration_error",
    "rest_frame_sed",
    "simulate_photometry",
]
