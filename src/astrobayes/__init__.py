"""astrobayes: fast, trustworthy Bayesian inference for astrophysics, in JAX.

Entry points:
    * :func:`astrobayes.evidence.estimate` -- evidence from posterior samples (learned
      harmonic mean).
    * :class:`astrobayes.chains.Chains` -- posterior samples from any sampler.
    * :mod:`astrobayes.io` -- every file read or written (chains, JSON, data sets,
      emulators); the rest of the package takes arrays.

Every result carries a ``status`` (:class:`Status`, severity as data); runners called with
``throw=True`` raise :class:`UnreliableResultError`, which carries the partial result, on
a failure status. See ``docs/architecture.md``.
"""

from astrobayes._status import Severity, Status, UnreliableResultError

__version__ = "0.1.0"
__all__ = [
    "Chains",
    "Severity",
    "Status",
    "UnreliableResultError",
    "__version__",
    "chains_from_list",
]


def __getattr__(name: str):
    # Chains (and with it JAX) on first use: a worker process that unpickles a function of
    # astrobayes._workers imports this package, and should not pay ~1 s for JAX
    if name in ("Chains", "chains_from_list"):
        from astrobayes import chains

        return getattr(chains, name)
    raise AttributeError(f"module 'astrobayes' has no attribute {name!r}")
