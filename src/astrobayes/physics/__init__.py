r"""Physics-informed learning: differentiable ODE models, PINNs and stiff networks.

- :mod:`astrobayes.physics.growth`: linear growth :math:`D(a)`, :math:`f\sigma_8(z)` by
  a diffrax ODE on the background of :mod:`astrobayes.cosmology`, the Gold-2017
  :math:`f\sigma_8` compilation and ΛCDM / w0waCDM growth models for NUTS and
  :func:`astrobayes.comparison.compare`.
- :mod:`astrobayes.physics.pinn`: a physics-informed network for the Lane–Emden equation
  (boundary conditions by construction, residual-based adaptive collocation, deep
  ensemble, measured coverage) and a conventional Dopri8 solution.
- :mod:`astrobayes.physics.chemistry`: a stiff primordial-chemistry and cooling network
  (9 species + temperature, 18 reactions from the literature) solved with diffrax
  Kvaerno5, its invariants, an equilibrium root solve and a trajectory generator.

See ``docs/physics.md``.
"""

from astrobayes.physics.growth import (
    FSigma8Data,
    GrowthSolution,
    fsigma8,
    fsigma8_log_likelihood,
    gold2017_fsigma8,
    growth_models,
    solve_growth,
)

__all__ = [
    "FSigma8Data",
    "GrowthSolution",
    "fsigma8",
    "fsigma8_log_likelihood",
    "gold2017_fsigma8",
    "growth_models",
    "solve_growth",
]
