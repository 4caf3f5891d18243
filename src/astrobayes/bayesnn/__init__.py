"""Bayesian neural networks with one predictive interface and one calibration harness.

One entry point, :func:`fit` ``(key, method, model, data) -> Predictive``, for every
method (deep ensemble, MC dropout, Bayes by backprop, last-layer Laplace, SGLD, NUTS);
the :class:`Predictive` gives a :class:`GaussianMixture` at new inputs, which the
harness (:func:`evaluate`, :func:`fit_recalibration`) scores by NLL, CRPS, quantile
calibration error and interval coverage, before and after isotonic recalibration.
:func:`simulate_photometry` makes the worked problem: photometric redshifts from
simulated ugriz colours. See ``docs/probabilistic.md``.

Example:
    >>> import jax
    >>> from astrobayes.bayesnn import HeteroscedasticMLP, MCDropout, fit, simulate_photometry
    >>> from astrobayes._training import TrainingConfig
    >>> data = simulate_photometry(jax.random.key(0), 64)
    >>> net = HeteroscedasticMLP(5, width=8, key=jax.random.key(1))
    >>> method = MCDropout(num_samples=10, training=TrainingConfig(max_epochs=3))
    >>> pred = fit(jax.random.key(2), method, net, (data.features, data.redshift))
    >>> pred(data.features[:3]).means.shape
    (3, 10)

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
from astrobayes.bayesnn.predictive import BNNStatus, GaussianMixture, Predictive

__all__ = [
    "NUTS",
    "SGLD",
    "BNNMethod",
    "BNNStatus",
    "BayesByBackprop",
    "CalibrationMetrics",
    "DeepEnsemble",
    "GaussianMixture",
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
