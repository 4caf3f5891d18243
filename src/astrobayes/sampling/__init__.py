"""Gradient MCMC: NUTS for many chains, checkpointed and resumable."""

from astrobayes.sampling.nuts import Checkpoint, NUTSConfig, SamplingResult, run_nuts

__all__ = ["Checkpoint", "NUTSConfig", "SamplingResult", "run_nuts"]
