"""astrobayes: fast, trustworthy Bayesian inference for astrophysics, in JAX.

Entry points:
    * :func:`astrobayes.evidence.estimate` -- evidence from posterior samples (learned
      harmonic mean).
    * :class:`astrobayes.chains.Chains` -- posterior samples from any sampler.
"""

from astrobayes.chains import Chains, chains_from_list

__version__ = "0.1.0"
__all__ = ["Chains", "__version__", "chains_from_list"]
