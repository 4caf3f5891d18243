r"""A stiff primordial-chemistry and cooling network in JAX, solved with diffrax.

Nine species, H, H⁺, H⁻, H₂, H₂⁺, He, He⁺, He⁺⁺ and e⁻, plus the gas temperature, at
fixed total density (isochoric). The state is ``y = (x_1..x_9, ln T)`` with
:math:`x_i = n_i / n_H` (abundances per hydrogen nucleus) and :math:`n_H` the total
hydrogen-nuclei density. Twenty reactions, rates :math:`r_j = k_j(T)\,n_a n_b`
(:math:`k_j n_a` for photo-processes), enter through one stoichiometry matrix
:math:`S`, :math:`dx/dt = S\,r / n_H`; every column of :math:`S` conserves hydrogen nuclei,
helium nuclei and charge, so those are linear invariants of the ODE (and implicit
Runge–Kutta steps with Newton iterations keep them to rounding:
:func:`conserved_quantities`).

Rate coefficients (cm³ s⁻¹, :math:`T` in K, :math:`T_n = T/10^n`,
:math:`T_{eV} = T/11604.5`):

====  =====================  ====================================================  ==================================
 #    reaction               :math:`k(T)`                                            source
====  =====================  ====================================================  ==================================
 1    H + e → H⁺ + 2e        5.85e-11 T^½ e^{-157809.1/T} / (1+T_5^½)              Cen 1992; KWH96 Table 2
 2    H⁺ + e → H + γ         8.40e-11 T^-½ T_3^-0.2 / (1+T_6^0.7)                  Cen 1992; KWH96
 3    He + e → He⁺ + 2e      2.38e-11 T^½ e^{-285335.4/T} / (1+T_5^½)              Cen 1992; KWH96
 4    He⁺ + e → He + γ       1.50e-10 T^-0.6353 + 1.9e-3 T^-1.5 e^{-470000/T}       Cen 1992; KWH96 (radiative +
                             (1 + 0.3 e^{-94000/T})                                 dielectronic)
 5    He⁺ + e → He⁺⁺ + 2e    5.68e-12 T^½ e^{-631515/T} / (1+T_5^½)                Cen 1992; KWH96
 6    He⁺⁺ + e → He⁺ + γ     3.36e-10 T^-½ T_3^-0.2 / (1+T_6^0.7)                  Cen 1992; KWH96
 7    H + e → H⁻ + γ         1.4e-18 T^0.928 e^{-T/16200}                           Galli & Palla 1998
 8    H⁻ + H → H₂ + e        1.3e-9                                                 Tegmark et al. 1997
 9    H + H⁺ → H₂⁺ + γ       1.85e-23 T^1.8 (T ≤ 6700); 5.81e-16 (T/56200)^          Abel et al. 1997 (k9)
                             {-0.6657 log10(T/56200)} (T > 6700)
 10   H₂⁺ + H → H₂ + H⁺      6.4e-10                                                Abel et al. 1997 (k10)
 11   H₂ + H⁺ → H₂⁺ + H      3.0e-10 e^{-21050/T} (T < 10⁴); 1.5e-10 e^{-14000/T}   Shapiro & Kang 1987, via
                                                                                    Galli & Palla 1998
 12   H₂ + e → 2H + e        5.6e-11 T^½ e^{-102124/T}                              Donahue & Shull 1991 (Abel k12)
 13   H₂ + H → 3H            1.067e-10 T_eV^2.012 e^{-4.463/T_eV}/(1+0.2472 T_eV)^3.512  Dove & Mandy 1986 (Abel k13)
 14   H⁻ + H⁺ → 2H           7e-8 (T/100)^-½                                        Dalgarno & Lepp 1987 (Abel k16)
 15   H⁻ + H⁺ → H₂⁺ + e      2.291e-10 T_eV^-0.4 (T_eV < 1.719);                    Abel et al. 1997 (k17)
                             8.4258e-10 T_eV^-1.4 e^{-1.301/T_eV}
 16   H₂⁺ + e → 2H           1e-8 (T ≤ 617); 1.32e-6 T^-0.76                        Abel et al. 1997 (k18)
 17   H₂⁺ + H⁻ → H₂ + H      5e-6 T^-½                                              Dalgarno & Lepp 1987 (Abel k19)
 18   H₂ + γ_LW → 2H         1.38e-12 J₂₁ s⁻¹                                       Machacek, Bryan & Abel 2001
 19   H⁻ + γ → H + e         (not included: no ionising/optical field)              —
 20   He⁺ + H → He + H⁺      (not included: slow below 10⁴ K)                       —
====  =====================  ====================================================  ==================================

(Rows 19–20 are listed to say what is left out; the network has reactions 1–18.)

Cooling (erg cm⁻³ s⁻¹; Cen 1992 and Katz, Weinberg & Hernquist 1996 Table 1,
arXiv:astro-ph/9509107): collisional excitation of H and He⁺, collisional ionisation of
H, He, He⁺ (13.6, 24.6, 54.4 eV per event), recombination of H⁺, He⁺, He⁺⁺, dielectronic
recombination of He⁺, free–free emission with the Gaunt factor of KWH96, Compton cooling
off the CMB at redshift ``z`` (5.65e-36 (1+z)^4 (T − T_CMB) n_e), and H₂ ro-vibrational
cooling in the low-density limit of Galli & Palla 1998 (their fit, valid for
10 ≤ T ≤ 10⁴ K; the fit's temperature is clamped to that range). Chemical heating and
cooling (H₂ formation energy) are left out. The gas is ideal with γ = 5/3 and
:math:`T = (\gamma-1)\,u / (k_B n_{tot})`, so :math:`d\ln T/dt = -(\gamma-1)\Lambda/(k_B
n_{tot} T) - d\ln n_{tot}/dt`.

Solver: ``diffrax.Kvaerno5`` (ESDIRK, L-stable) with a PID step-size controller, in
float64 (the network spans 30 orders of magnitude in time scale; float32 is refused).

References:
    Abel, Anninos, Zhang & Norman 1997 (arXiv:astro-ph/9608040); Galli & Palla 1998
    (arXiv:astro-ph/9803315); Cen 1992 (ApJS 78, 341); Katz, Weinberg & Hernquist 1996
    (arXiv:astro-ph/9509107); Tegmark et al. 1997 (arXiv:astro-ph/9603007); Machacek,
    Bryan & Abel 2001 (arXiv:astro-ph/0007198); Glover & Abel 2008 (arXiv:0803.1768) for a
    review of the rates; Kværnø 2004 (BIT 44, 489) for the solver.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float
from scipy.optimize import root

__all__ = [
    "HELIUM_PER_HYDROGEN",
    "ConditionBox",
    "NUM_REACTIONS",
    "REACTIONS",
    "SPECIES",
    "STOICHIOMETRY",
    "NetworkSolution",
    "conserved_quantities",
    "cooling_rate",
    "equilibrium_abundances",
    "initial_state",
    "network_rhs",
    "rate_coefficients",
    "sample_conditions",
    "simulate_trajectories",
    "solve_network",
]

SPECIES = ("H", "H+", "H-", "H2", "H2+", "He", "He+", "He++", "e-")
"""Species order of the abundance vector."""

#: Helium nuclei per hydrogen nucleus for a helium mass fraction Y = 0.24.
HELIUM_PER_HYDROGEN = 0.24 / (4.0 * 0.76)

_BOLTZMANN = 1.380649e-16  # erg/K
_GAMMA = 5.0 / 3.0
_T_CMB0 = 2.7255  # K, Fixsen 2009

# (reactants, products) by species name; "g" = photon, omitted.
REACTIONS = (
    (("H", "e-"), ("H+", "e-", "e-")),
    (("H+", "e-"), ("H",)),
    (("He", "e-"), ("He+", "e-", "e-")),
    (("He+", "e-"), ("He",)),
    (("He+", "e-"), ("He++", "e-", "e-")),
    (("He++", "e-"), ("He+",)),
    (("H", "e-"), ("H-",)),
    (("H-", "H"), ("H2", "e-")),
    (("H", "H+"), ("H2+",)),
    (("H2+", "H"), ("H2", "H+")),
    (("H2", "H+"), ("H2+", "H")),
    (("H2", "e-"), ("H", "H", "e-")),
    (("H2", "H"), ("H", "H", "H")),
    (("H-", "H+"), ("H", "H")),
    (("H-", "H+"), ("H2+", "e-")),
    (("H2+", "e-"), ("H", "H")),
    (("H2+", "H-"), ("H2", "H")),
    (("H2",), ("H", "H")),  # Lyman-Werner photodissociation, rate per H2
)
"""Reactions ``(reactants, products)``; the last is photodissociation by J21."""

NUM_REACTIONS = len(REACTIONS)


def _stoichiometry() -> np.ndarray:
    matrix = np.zeros((len(SPECIES), NUM_REACTIONS))
    for j, (reactants, products) in enumerate(REACTIONS):
        for name in reactants:
            matrix[SPECIES.index(name), j] -= 1
        for name in products:
            matrix[SPECIES.index(name), j] += 1
    return matrix


STOICHIOMETRY = _stoichiometry()
"""``(num_species, num_reactions)`` net change of each species per reaction event."""

_FIRST = np.array([SPECIES.index(r[0][0]) for r in REACTIONS])
_SECOND = np.array([SPECIES.index(r[0][1]) if len(r[0]) == 2 else -1 for r in REACTIONS])
# Rows of the conservation matrix: H nuclei, He nuclei, charge.
_CONSERVATION = np.array(
    [
        [1, 1, 1, 2, 2, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 1, 1, 0],
        [0, 1, -1, 0, 1, 0, 1, 2, -1],
    ],
    dtype=float,
)


def rate_coefficients(
    temperature: Float[ArrayLike, ""], j21: Float[ArrayLike, ""] = 0.0
) -> Float[Array, " num_reactions"]:
    """Rate coefficients of the 18 reactions at one temperature (table in the module notes).

    Args:
        temperature: Gas temperature in K.
        j21: Lyman–Werner intensity in units of 1e-21 erg s⁻¹ cm⁻² Hz⁻¹ sr⁻¹.

    Returns:
        ``(18,)`` coefficients: cm³ s⁻¹ for two-body reactions, s⁻¹ for the last.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     k = rate_coefficients(1e4)
        >>> f"{float(k[1]):.3e}"  # case-A H recombination at 10^4 K
        '5.097e-13'

    """
    t = jnp.asarray(temperature)
    sqrt_t = jnp.sqrt(t)
    t3, t5, t6 = t / 1e3, t / 1e5, t / 1e6
    t_ev = t / 11604.5
    hot = 1.0 + jnp.sqrt(t5)
    k1 = 5.85e-11 * sqrt_t * jnp.exp(-157809.1 / t) / hot
    k2 = 8.40e-11 / sqrt_t * t3**-0.2 / (1.0 + t6**0.7)
    k3 = 2.38e-11 * sqrt_t * jnp.exp(-285335.4 / t) / hot
    k4 = 1.50e-10 * t**-0.6353 + 1.9e-3 * t**-1.5 * jnp.exp(-470000.0 / t) * (
        1.0 + 0.3 * jnp.exp(-94000.0 / t)
    )
    k5 = 5.68e-12 * sqrt_t * jnp.exp(-631515.0 / t) / hot
    k6 = 3.36e-10 / sqrt_t * t3**-0.2 / (1.0 + t6**0.7)
    k7 = 1.4e-18 * t**0.928 * jnp.exp(-t / 16200.0)
    k8 = jnp.full_like(t, 1.3e-9)
    log_ratio = jnp.log10(t / 56200.0)
    k9 = jnp.where(
        t <= 6700.0, 1.85e-23 * t**1.8, 5.81e-16 * (t / 56200.0) ** (-0.6657 * log_ratio)
    )
    k10 = jnp.full_like(t, 6.4e-10)
    k11 = jnp.where(t < 1e4, 3.0e-10 * jnp.exp(-21050.0 / t), 1.5e-10 * jnp.exp(-14000.0 / t))
    k12 = 5.6e-11 * sqrt_t * jnp.exp(-102124.0 / t)
    k13 = 1.067e-10 * t_ev**2.012 * jnp.exp(-4.463 / t_ev) / (1.0 + 0.2472 * t_ev) ** 3.512
    k14 = 7e-8 * (t / 100.0) ** -0.5
    k15 = jnp.where(
        t_ev < 1.719,
        2.291e-10 * t_ev**-0.4,
        8.4258e-10 * t_ev**-1.4 * jnp.exp(-1.301 / t_ev),
    )
    k16 = jnp.where(t <= 617.0, 1e-8, 1.32e-6 * t**-0.76)
    k17 = 5e-6 / sqrt_t
    k18 = 1.38e-12 * jnp.asarray(j21) * jnp.ones_like(t)
    return jnp.stack(
        [k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15, k16, k17, k18]
    )


def cooling_rate(
    abundances: Float[ArrayLike, " 9"],
    temperature: Float[ArrayLike, ""],
    density: Float[ArrayLike, ""],
    redshift: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, ""]:
    r"""Net cooling rate :math:`\Lambda` in erg cm⁻³ s⁻¹ (positive cools).

    Args:
        abundances: ``(9,)`` abundances per hydrogen nucleus, order :data:`SPECIES`.
        temperature: K.
        density: Hydrogen-nuclei density :math:`n_H` in cm⁻³.
        redshift: Redshift of the CMB for Compton cooling/heating.

    Returns:
        :math:`\Lambda`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.array([0.9, 0.1, 0, 0, 0, 0.08, 0, 0, 0.1])
        >>> with jax.enable_x64(True):
        ...     bool(cooling_rate(x, 1e4, 1.0) > 0)
        True

    """
    n = jnp.asarray(abundances) * density
    h, hp, _, h2, _, he, hep, hepp, e = (n[i] for i in range(9))
    t = jnp.asarray(temperature)
    sqrt_t = jnp.sqrt(t)
    t3, t5, t6 = t / 1e3, t / 1e5, t / 1e6
    hot = 1.0 + jnp.sqrt(t5)
    k = rate_coefficients(t)
    excitation = (
        7.50e-19 * jnp.exp(-118348.0 / t) / hot * e * h
        + 5.54e-17 * t**-0.397 * jnp.exp(-473638.0 / t) / hot * e * hep
    )
    ionisation = (2.18e-11 * k[0] * h + 3.94e-11 * k[2] * he + 8.72e-11 * k[4] * hep) * e
    recombination = e * (
        8.70e-27 * sqrt_t * t3**-0.2 / (1.0 + t6**0.7) * hp
        + 1.55e-26 * t**0.3647 * hep
        + 3.48e-26 * sqrt_t * t3**-0.2 / (1.0 + t6**0.7) * hepp
    )
    dielectronic = (
        1.24e-13 * t**-1.5 * jnp.exp(-470000.0 / t) * (1.0 + 0.3 * jnp.exp(-94000.0 / t)) * e * hep
    )
    gaunt = 1.1 + 0.34 * jnp.exp(-((5.5 - jnp.log10(t)) ** 2) / 3.0)
    free_free = 1.42e-27 * gaunt * sqrt_t * (hp + hep + 4.0 * hepp) * e
    compton = 5.65e-36 * (1.0 + redshift) ** 4 * (t - _T_CMB0 * (1.0 + redshift)) * e
    log_t = jnp.log10(jnp.clip(t, 10.0, 1e4))
    log_h2 = -103.0 + 97.59 * log_t - 48.05 * log_t**2 + 10.80 * log_t**3 - 0.9032 * log_t**4
    molecular = 10.0**log_h2 * h * h2
    return excitation + ionisation + recombination + dielectronic + free_free + compton + molecular


class _Args(NamedTuple):
    density: Array
    j21: Array
    redshift: Array
    is_isothermal: Array


def network_rhs(t, y: Float[Array, " 10"], args) -> Float[Array, " 10"]:
    r"""Right-hand side :math:`d(x_1..x_9, \ln T)/dt` in s⁻¹ (diffrax signature).

    Args:
        t: Time in s (unused: the network is autonomous).
        y: ``(10,)`` state: abundances per H nucleus, then :math:`\ln T`.
        args: ``(density, j21, redshift, is_isothermal)`` as arrays; with
            ``is_isothermal`` true the temperature is held fixed.

    Returns:
        ``(10,)`` time derivative.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> with jax.enable_x64(True):
        ...     y = initial_state(1e-3, 1e-6, 8000.0)
        ...     dy = network_rhs(0.0, y, (1.0, 0.0, 0.0, False))
        >>> dy.shape
        (10,)

    """
    density, j21, redshift, is_isothermal = args
    x = y[:9]
    temperature = jnp.exp(y[9])
    k = rate_coefficients(temperature, j21)
    first = x[_FIRST]
    second = jnp.where(_SECOND >= 0, x[_SECOND] * density, 1.0)
    rates = k * first * second  # per H nucleus per second
    dx = jnp.asarray(STOICHIOMETRY, dtype=y.dtype) @ rates
    n_total = density * jnp.sum(x)
    dlog_n_total = jnp.sum(dx) / jnp.sum(x)
    cooling = cooling_rate(x, temperature, density, redshift)
    dlog_t = -(_GAMMA - 1.0) * cooling / (_BOLTZMANN * n_total * temperature) - dlog_n_total
    dlog_t = jnp.where(is_isothermal, 0.0, dlog_t)
    return jnp.concatenate([dx, dlog_t[None]])


def conserved_quantities(abundances: Float[ArrayLike, "*batch 9"]) -> Float[Array, "*batch 3"]:
    """Hydrogen nuclei, helium nuclei and net charge per hydrogen nucleus.

    Args:
        abundances: ``(..., 9)`` abundances (or the ``(..., 10)`` state; ln T is ignored).

    Returns:
        ``(..., 3)``: (H nuclei, He nuclei, charge); charge is 0 for a neutral gas.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     print(conserved_quantities(initial_state(0.1, 1e-4, 1e4)))
        [1.         0.07894737 0.        ]

    """
    x = jnp.asarray(abundances)[..., :9]
    return x @ jnp.asarray(_CONSERVATION.T, dtype=x.dtype)


def initial_state(
    ionised_fraction: Float[ArrayLike, ""],
    molecular_fraction: Float[ArrayLike, ""],
    temperature: Float[ArrayLike, ""],
    *,
    helium_ionised_fraction: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, " 10"]:
    """A neutral-charge initial state with one H nucleus and ``HELIUM_PER_HYDROGEN`` He.

    Args:
        ionised_fraction: Share of H nuclei in H⁺ (electrons follow).
        molecular_fraction: Share of H nuclei in H₂ (so ``x_H2 = fraction / 2``).
        temperature: K.
        helium_ionised_fraction: Share of He nuclei in He⁺.

    Returns:
        ``(10,)`` state (abundances, ln T); H⁻, H₂⁺ and He⁺⁺ start at zero.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     y = initial_state(0.5, 0.0, 1e4)
        >>> float(y[1]), float(y[8])
        (0.5, 0.5)

    """
    xp = jnp.asarray(ionised_fraction)
    fm = jnp.asarray(molecular_fraction)
    fhe = jnp.asarray(helium_ionised_fraction)
    he = HELIUM_PER_HYDROGEN
    zero = jnp.zeros_like(xp)
    x = jnp.stack(
        [1.0 - xp - fm, xp, zero, fm / 2.0, zero, he * (1.0 - fhe), he * fhe, zero, xp + he * fhe]
    )
    return jnp.concatenate([x, jnp.log(jnp.asarray(temperature, x.dtype))[None]])


class NetworkSolution(NamedTuple):
    """Output of :func:`solve_network`.

    Attributes:
        times: Save times in s, ``(num_times,)``.
        states: ``(num_times, 10)`` abundances and ln T.
        num_steps: Accepted solver steps.
        is_successful: Whether diffrax finished without error.

    """

    times: Float[Array, " num_times"]
    states: Float[Array, "num_times 10"]
    num_steps: Array
    is_successful: Bool[Array, ""]


def solve_network(
    initial: Float[ArrayLike, " 10"],
    times: Float[ArrayLike, " num_times"],
    *,
    density: Float[ArrayLike, ""],
    j21: Float[ArrayLike, ""] = 0.0,
    redshift: Float[ArrayLike, ""] = 0.0,
    is_isothermal: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-20,
    max_steps: int = 20_000,
) -> NetworkSolution:
    """Integrate the network with ``diffrax.Kvaerno5`` (Newton) and a PID controller.

    Pure JAX (vmap over initial states and parameters for batches).

    Args:
        initial: ``(10,)`` initial state (:func:`initial_state`).
        times: Increasing save times in s, the first > 0 (the solve starts at 0).
        density: Hydrogen-nuclei density in cm⁻³.
        j21: Lyman–Werner intensity (1e-21 erg s⁻¹ cm⁻² Hz⁻¹ sr⁻¹).
        redshift: Redshift (Compton cooling off the CMB).
        is_isothermal: Hold the temperature fixed.
        rtol: Relative tolerance.
        atol: Absolute tolerance on abundances per H nucleus (and on ln T).
        max_steps: Step cap; reaching it marks the solution unsuccessful.

    Returns:
        :class:`NetworkSolution`.

    Raises:
        ValueError: Without float64 (``jax_enable_x64``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> with jax.enable_x64(True):
        ...     out = solve_network(initial_state(0.1, 0.0, 1e4), jnp.array([1e10]),
        ...                         density=1.0, is_isothermal=True)
        >>> bool(out.is_successful)
        True

    """
    if not jax.config.jax_enable_x64:
        raise ValueError(
            "solve_network needs float64: enable it with jax.enable_x64(True) or "
            "jax.config.update('jax_enable_x64', True); got float32 mode"
        )
    initial = jnp.asarray(initial, jnp.float64)
    times = jnp.asarray(times, jnp.float64)
    args = _Args(
        jnp.asarray(density, jnp.float64),
        jnp.asarray(j21, jnp.float64),
        jnp.asarray(redshift, jnp.float64),
        jnp.asarray(is_isothermal),
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(network_rhs),
        # Newton (fresh Jacobian each iteration) rather than the default chord method:
        # near equilibrium, steps of 1e14 s with |lambda| ~ 1e-7 /s stall the chord.
        diffrax.Kvaerno5(root_finder=optx.Newton(rtol=rtol, atol=1e-14)),
        t0=0.0,
        t1=times[-1],
        dt0=1e-2,
        y0=initial,
        args=args,
        saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4),
        max_steps=max_steps,
        throw=False,
    )
    return NetworkSolution(
        times=times,
        states=solution.ys,
        num_steps=solution.stats["num_accepted_steps"],
        is_successful=solution.result == diffrax.RESULTS.successful,
    )


def _log_balance(log_x, k, density, helium):
    """Equilibrium conditions in logs: ln P - ln D per species, then the three invariants."""
    x = jnp.exp(log_x)
    second = jnp.where(_SECOND >= 0, x[_SECOND] * density, 1.0)
    rates = k * x[_FIRST] * second
    production = jnp.asarray(np.maximum(STOICHIOMETRY, 0.0)) @ rates
    destruction = jnp.asarray(np.maximum(-STOICHIOMETRY, 0.0)) @ rates
    balanced = jnp.array([1, 2, 3, 4, 6, 7])  # H+, H-, H2, H2+, He+, He++
    positive = x[1] + x[4] + x[6] + 2.0 * x[7]
    negative = x[2] + x[8]
    invariants = jnp.stack(
        [
            jnp.log(jnp.asarray(_CONSERVATION[0]) @ x),
            jnp.log(jnp.asarray(_CONSERVATION[1]) @ x / helium),
            jnp.log(positive) - jnp.log(negative),
        ]
    )
    return jnp.concatenate(
        [jnp.log(production[balanced]) - jnp.log(destruction[balanced]), invariants]
    )


def equilibrium_abundances(
    temperature: float, density: float, *, j21: float = 0.0, tolerance: float = 1e-15
) -> np.ndarray:
    """Chemical equilibrium at fixed temperature by a root solve (independent of time steps).

    Solves production = destruction for H⁺, H⁻, H₂, H₂⁺, He⁺, He⁺⁺ together with the three
    invariants (one H nucleus, ``HELIUM_PER_HYDROGEN`` He nuclei, zero charge), in log
    abundances, with Levenberg–Marquardt (``scipy.optimize.root``) and the JAX Jacobian,
    from a start where H and He are in collisional-ionisation balance.

    Args:
        temperature: K.
        density: Hydrogen-nuclei density in cm⁻³.
        j21: Lyman–Werner intensity.
        tolerance: ``xtol``/``ftol`` of the solver.

    Returns:
        ``(9,)`` abundances per H nucleus (order :data:`SPECIES`).

    Raises:
        ValueError: Without float64, or if the root solve does not converge.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     x = equilibrium_abundances(2e4, 100.0)
        >>> f"{x[1]:.4f}"
        '0.8745'

    """
    if not jax.config.jax_enable_x64:
        raise ValueError("equilibrium_abundances needs float64 (jax_enable_x64); got float32 mode")
    k = rate_coefficients(jnp.asarray(temperature, jnp.float64), j21)
    kk = np.asarray(k)
    helium = HELIUM_PER_HYDROGEN
    hydrogen_ionised = kk[0] / (kk[0] + kk[1])
    helium_ionised = kk[2] / (kk[2] + kk[3])
    electrons = hydrogen_ionised + helium * helium_ionised
    start = np.array(
        [
            1.0 - hydrogen_ionised,
            hydrogen_ionised,
            kk[6] * electrons / kk[7],
            1e-6,
            1e-10,
            helium * (1.0 - helium_ionised),
            helium * helium_ionised,
            helium * helium_ionised * kk[4] / kk[5] + 1e-300,
            electrons,
        ]
    )
    fun = jax.jit(lambda u: _log_balance(u, k, density, helium))
    jacobian = jax.jit(jax.jacfwd(fun))
    solution = root(
        lambda u: np.asarray(fun(u)),
        np.log(start),
        jac=lambda u: np.asarray(jacobian(u)),
        method="lm",
        options={"xtol": tolerance, "ftol": tolerance},
    )
    residual = float(np.max(np.abs(np.asarray(fun(solution.x)))))
    if not solution.success or residual > 1e-10:
        raise ValueError(
            f"the equilibrium root solve did not converge at T={temperature}, n_H={density} "
            f"(max log residual {residual:.2e}: {solution.message})"
        )
    return np.exp(solution.x)


@dataclass(frozen=True)
class ConditionBox:
    """Box of initial conditions for training trajectories (log10 bounds, uniform in logs).

    Attributes:
        log_density: Hydrogen-nuclei density range, log10 cm⁻³.
        log_temperature: Initial temperature range, log10 K.
        log_ionised_fraction: Share of H in H⁺ (and of He in He⁺, the same draw / 10).
        log_molecular_fraction: Share of H nuclei in H₂.
        log_j21: Lyman–Werner intensity range.

    """

    log_density: tuple[float, float] = (0.0, 4.0)
    log_temperature: tuple[float, float] = (2.0, 4.3)
    log_ionised_fraction: tuple[float, float] = (-5.0, -1.0)
    log_molecular_fraction: tuple[float, float] = (-7.0, -3.0)
    log_j21: tuple[float, float] = (-3.0, 1.0)

    def __post_init__(self) -> None:
        for name in (
            "log_density",
            "log_temperature",
            "log_ionised_fraction",
            "log_molecular_fraction",
            "log_j21",
        ):
            low, high = getattr(self, name)
            if not (np.isfinite(low) and np.isfinite(high) and low <= high):
                raise ValueError(
                    f"{name} must be a finite (low, high) with low <= high; got "
                    f"{getattr(self, name)!r}"
                )
        if self.log_ionised_fraction[1] > 0 or self.log_molecular_fraction[1] > 0:
            raise ValueError("fractions must be <= 1 (log10 <= 0)")

    @property
    def bounds(self) -> np.ndarray:
        """``(5, 2)`` bounds in the order of the fields."""
        return np.array(
            [
                self.log_density,
                self.log_temperature,
                self.log_ionised_fraction,
                self.log_molecular_fraction,
                self.log_j21,
            ],
            dtype=float,
        )


def sample_conditions(key, indices: ArrayLike, box: ConditionBox) -> Float[Array, "num 5"]:
    """Initial conditions number ``indices`` (each from ``fold_in(key, index)``; resumable).

    Args:
        key: JAX PRNG key.
        indices: Integer indices of the draws (a chunk of a long run).
        box: :class:`ConditionBox`.

    Returns:
        ``(num, 5)`` log10 (density, temperature, ionised fraction, molecular fraction, J21).

    Example:
        >>> import jax
        >>> conditions = sample_conditions(jax.random.key(0), range(3), ConditionBox())
        >>> conditions.shape
        (3, 5)

    """
    bounds = jnp.asarray(box.bounds)
    indices = jnp.asarray(np.asarray(list(indices), dtype=np.int64))
    unit = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (5,)))(indices)
    return bounds[:, 0] + unit * (bounds[:, 1] - bounds[:, 0])


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps"))
def _simulate(conditions, times, rtol, atol, max_steps):
    def one(row):
        density, temperature, ionised, molecular, j21 = (10.0 ** row[i] for i in range(5))
        y0 = initial_state(ionised, molecular, temperature, helium_ionised_fraction=ionised / 10.0)
        return solve_network(
            y0, times, density=density, j21=j21, rtol=rtol, atol=atol, max_steps=max_steps
        )

    return jax.vmap(one)(conditions)


def simulate_trajectories(
    conditions: Float[ArrayLike, "num 5"],
    times: Float[ArrayLike, " num_times"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-20,
    max_steps: int = 20_000,
) -> NetworkSolution:
    """Solve the network for a batch of :func:`sample_conditions` rows (vmapped, float64).

    One compiled program per batch shape and tolerances (cached across calls).

    Args:
        conditions: ``(num, 5)`` log10 conditions (density, temperature, ionised fraction,
            molecular fraction, J21); He starts with a tenth of the H ionised fraction.
        times: Save times in s.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        max_steps: Step cap per trajectory.

    Returns:
        :class:`NetworkSolution` with a leading batch axis on every field.

    Raises:
        ValueError: Without float64.

    """
    if not jax.config.jax_enable_x64:
        raise ValueError("simulate_trajectories needs float64 (jax_enable_x64); got float32 mode")
    return _simulate(
        jnp.asarray(conditions, jnp.float64), jnp.asarray(times, jnp.float64), rtol, atol, max_steps
    )
