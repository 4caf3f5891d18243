r"""Linear growth of structure, :math:`D(a)` and :math:`f\sigma_8(z)`, by a diffrax ODE.

The background expansion is :func:`astrobayes.cosmology.efunc` (ΛCDM, wCDM, w0waCDM,
curvature); nothing of :math:`H(z)` is re-implemented here. In :math:`x = \ln a` the
linear growth equation of sub-horizon matter perturbations in general relativity is

.. math::

    D'' + \Big(2 + \frac{d\ln E}{d\ln a}\Big) D' - \tfrac32\,\Omega_m(a)\,D = 0,
    \qquad \Omega_m(a) = \frac{\Omega_m a^{-3}}{E(a)^2},

with :math:`' = d/d\ln a`. :math:`d\ln E/d\ln a` is obtained by automatic
differentiation of :func:`~astrobayes.cosmology.efunc`. The growing mode starts in
matter domination, :math:`D = D' = a_i` at :math:`a_i = 10^{-3}` (radiation is not part
of this equation: use ``omega_r = 0``; dark energy must be negligible at :math:`a_i`,
i.e. :math:`w_0 + w_a` well below 0). Then :math:`f = D'/D`,
:math:`\sigma_8(z) = \sigma_8 D(a)/D(1)` and :math:`f\sigma_8(z) = \sigma_8 D'(a)/D(1)`.

Numerics: ``diffrax.Tsit5`` with a PID step-size controller; gradients with respect to the
cosmology are taken through the solver (``diffrax.RecursiveCheckpointAdjoint``,
reverse-mode differentiation of the discretised solve). Against the integral solution of
ΛCDM and an independent ``scipy`` integration for w0waCDM the relative error of
:math:`f\sigma_8` is below 1e-6 in float64 (tests/test_physics_growth.py).

Data: :func:`gold2017_fsigma8` is the "Gold-2017" compilation of redshift-space
distortion measurements (Nesseris, Pantazis & Perivolaropoulos 2017, arXiv:1703.10538,
Table I), with the WiggleZ covariance and the fiducial :math:`\Omega_m` of each survey
for the Alcock–Paczynski correction of Kazantzidis & Perivolaropoulos 2018
(arXiv:1803.01337, eq. 2.4).

References:
    Linder 2005 (arXiv:astro-ph/0507263); Heath 1977 (MNRAS 179, 351) for the integral
    solution in ΛCDM; Nesseris et al. 2017 (arXiv:1703.10538); Kazantzidis &
    Perivolaropoulos 2018 (arXiv:1803.01337); Kidger 2021, "On Neural Differential
    Equations" (arXiv:2202.02435) for diffrax.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike, Bool, Float

from astrobayes._checks import as_float_array, check_finite
from astrobayes.cosmology import (
    Cosmology,
    GaussianLikelihood,
    angular_diameter_distance,
    efunc,
    validate_covariance,
)
from astrobayes.models import Model

__all__ = [
    "FSigma8Data",
    "GrowthSolution",
    "fsigma8",
    "fsigma8_log_likelihood",
    "gold2017_fsigma8",
    "growth_models",
    "solve_growth",
]

#: Scale factor where the matter-era growing mode D = a is imposed.
INITIAL_SCALE_FACTOR = 1e-3


class GrowthSolution(NamedTuple):
    r"""Solution of the growth equation at the requested redshifts.

    Attributes:
        growth_factor: :math:`D(z)/D(z=0)`, shape of ``z``.
        growth_rate: :math:`f = d\ln D/d\ln a`, shape of ``z``.
        growth_today: :math:`D(z=0)` in the normalisation :math:`D = a` at early times
            (about 0.78 for :math:`\Omega_m = 0.3` ΛCDM).
        is_successful: Whether the ODE solver succeeded (a failure gives NaN values).

    """

    growth_factor: Float[Array, "*shape"]
    growth_rate: Float[Array, "*shape"]
    growth_today: Float[Array, ""]
    is_successful: Bool[Array, ""]


def _tolerances(dtype) -> tuple[float, float]:
    return (1e-9, 1e-12) if jnp.dtype(dtype) == jnp.float64 else (1e-6, 1e-8)


def _growth_vector_field(x, y, cosmology: Cosmology):
    """(D, D') -> (D', D'') in x = ln a; module level so that diffrax's compile cache hits."""

    def log_e(log_a):
        return jnp.log(efunc(cosmology, jnp.expm1(-log_a)))

    value, slope = jax.value_and_grad(log_e)(x)
    omega_m_a = cosmology.omega_m * jnp.exp(-3.0 * x - 2.0 * value)
    return jnp.stack([y[1], -(2.0 + slope) * y[1] + 1.5 * omega_m_a * y[0]])


def solve_growth(
    cosmology: Cosmology,
    z: Float[ArrayLike, "*shape"],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> GrowthSolution:
    r"""Integrate the linear growth equation from :math:`a = 10^{-3}` to today.

    Pure JAX: jit-, vmap- and grad-compatible in the cosmology (gradients flow through
    the solver).

    Args:
        cosmology: Background parameters (:class:`~astrobayes.cosmology.Cosmology`;
            ``omega_r`` should be 0, see the module notes).
        z: Redshifts, any shape, :math:`0 \le z < 999`.
        rtol: Relative tolerance of the PID controller (default 1e-9 in float64,
            1e-6 in float32).
        atol: Absolute tolerance (default 1e-12 in float64, 1e-8 in float32).
        max_steps: Cap on solver steps; exceeding it marks the solution unsuccessful.

    Returns:
        :class:`GrowthSolution`.

    Example:
        >>> from astrobayes.cosmology import Cosmology
        >>> out = solve_growth(Cosmology(omega_m=1.0), [0.0, 1.0])
        >>> [round(float(v), 4) for v in out.growth_factor]  # Einstein-de Sitter: D = a
        [1.0, 0.5]

    """
    z = jnp.asarray(z)
    shape = z.shape
    z_flat = jnp.ravel(z)
    dtype = jnp.result_type(z_flat.dtype, jnp.float32)
    # Array leaves (not Python floats, which diffrax's jit would treat as static), so
    # that eager calls with new parameter values reuse the compiled solver.
    cosmology = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), cosmology)
    default_rtol, default_atol = _tolerances(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    log_a = -jnp.log1p(z_flat).astype(dtype)
    order = jnp.argsort(log_a)
    times = jnp.concatenate([log_a[order], jnp.zeros((1,), dtype)])

    x0 = jnp.asarray(np.log(INITIAL_SCALE_FACTOR), dtype)
    y0 = jnp.full((2,), INITIAL_SCALE_FACTOR, dtype)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_growth_vector_field),
        diffrax.Tsit5(),
        t0=x0,
        t1=jnp.zeros((), dtype),
        dt0=jnp.asarray(0.05, dtype),
        y0=y0,
        args=cosmology,
        saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
        max_steps=max_steps,
        throw=False,
    )
    ys = solution.ys
    today = ys[-1, 0]
    inverse = jnp.argsort(order)
    values = ys[:-1][inverse]
    is_successful = solution.result == diffrax.RESULTS.successful
    growth = jnp.where(is_successful, values[:, 0] / today, jnp.nan).reshape(shape)
    rate = jnp.where(is_successful, values[:, 1] / values[:, 0], jnp.nan).reshape(shape)
    return GrowthSolution(
        growth_factor=growth,
        growth_rate=rate,
        growth_today=jnp.where(is_successful, today, jnp.nan),
        is_successful=is_successful,
    )


def fsigma8(
    cosmology: Cosmology,
    sigma8: Float[ArrayLike, ""],
    z: Float[ArrayLike, "*shape"],
    **solver_options,
) -> Float[Array, "*shape"]:
    r""":math:`f\sigma_8(z) = \sigma_8\, D'(a)/D(1)` from the growth ODE.

    Args:
        cosmology: Background parameters.
        sigma8: :math:`\sigma_8` today (amplitude of linear fluctuations in 8 Mpc/h spheres).
        z: Redshifts, any shape.
        **solver_options: ``rtol``, ``atol``, ``max_steps`` of :func:`solve_growth`.

    Returns:
        :math:`f\sigma_8(z)`, shape of ``z`` (NaN if the solver failed).

    Example:
        >>> from astrobayes.cosmology import Cosmology
        >>> round(float(fsigma8(Cosmology(omega_m=1.0), 0.8, 0.5)), 4)  # EdS: 0.8 a
        0.5333

    """
    solution = solve_growth(cosmology, z, **solver_options)
    return sigma8 * solution.growth_factor * solution.growth_rate


class FSigma8Data(NamedTuple):
    r"""Published :math:`f\sigma_8` measurements with their covariance.

    Attributes:
        redshift: Effective redshifts, shape ``(n,)``.
        fsigma8: Measured :math:`f\sigma_8`, shape ``(n,)``.
        covariance: Covariance, shape ``(n, n)``.
        omega_m_fiducial: Fiducial :math:`\Omega_m` (flat ΛCDM) each measurement
            assumed, for the Alcock–Paczynski correction; shape ``(n,)``.
        surveys: Survey label of each point.
        name: Name of the compilation.
        reference: Citation.

    """

    redshift: np.ndarray
    fsigma8: np.ndarray
    covariance: np.ndarray
    omega_m_fiducial: np.ndarray
    surveys: tuple[str, ...]
    name: str
    reference: str


# Nesseris, Pantazis & Perivolaropoulos 2017 (arXiv:1703.10538), Table I ("Gold-2017"):
# (survey, z, f sigma8, error, fiducial Omega_m, original reference). Checked row by row
# against two public transcriptions (github.com/Tilek-Zhumabek/GCDM
# data/data_growth_2016_main.txt; github.com/franciscotln/cosmology-model-fit
# y2018fs8/raw/fs8.csv and fs8_cov.dat for the WiggleZ block): all agree.
_GOLD_2017 = (
    ("6dFGS+SnIa", 0.02, 0.428, 0.0465, 0.3, "Huterer et al. 2017, arXiv:1611.09862"),
    ("SnIa+IRAS", 0.02, 0.398, 0.065, 0.3, "Turnbull et al. 2012; Hudson & Turnbull 2012"),
    ("2MASS", 0.02, 0.314, 0.048, 0.266, "Davis et al. 2011; Hudson & Turnbull 2012"),
    ("SDSS-veloc", 0.10, 0.370, 0.130, 0.3, "Feix, Nusser & Branchini 2015"),
    ("SDSS-MGS", 0.15, 0.490, 0.145, 0.31, "Howlett et al. 2015"),
    ("2dFGRS", 0.17, 0.510, 0.060, 0.3, "Song & Percival 2009"),
    ("GAMA", 0.18, 0.360, 0.090, 0.27, "Blake et al. 2013"),
    ("GAMA", 0.38, 0.440, 0.060, 0.27, "Blake et al. 2013"),
    ("SDSS-LRG-200", 0.25, 0.3512, 0.0583, 0.25, "Samushia et al. 2012"),
    ("SDSS-LRG-200", 0.37, 0.4602, 0.0378, 0.25, "Samushia et al. 2012"),
    ("BOSS-LOWZ", 0.32, 0.384, 0.095, 0.274, "Sanchez et al. 2014"),
    ("SDSS-CMASS", 0.59, 0.488, 0.060, 0.307115, "Chuang et al. 2016"),
    ("WiggleZ", 0.44, 0.413, 0.080, 0.27, "Blake et al. 2012"),
    ("WiggleZ", 0.60, 0.390, 0.063, 0.27, "Blake et al. 2012"),
    ("WiggleZ", 0.73, 0.437, 0.072, 0.27, "Blake et al. 2012"),
    ("Vipers PDR-2", 0.60, 0.550, 0.120, 0.3, "Pezzotta et al. 2017"),
    ("Vipers PDR-2", 0.86, 0.400, 0.110, 0.3, "Pezzotta et al. 2017"),
    ("FastSound", 1.40, 0.482, 0.116, 0.27, "Okumura et al. 2016"),
)
# WiggleZ covariance (Blake et al. 2012, as used in arXiv:1703.10538 eq. 2.7), x 1e-3.
_WIGGLEZ_COVARIANCE = 1e-3 * np.array(
    [[6.400, 2.570, 0.000], [2.570, 3.969, 2.540], [0.000, 2.540, 5.184]]
)
_WIGGLEZ_ROWS = (12, 13, 14)


def gold2017_fsigma8() -> FSigma8Data:
    r"""The "Gold-2017" growth-rate compilation: 18 :math:`f\sigma_8` measurements.

    Diagonal errors from Table I of Nesseris et al. 2017, except the three WiggleZ points,
    which carry their published 3x3 covariance.

    Returns:
        A fresh :class:`FSigma8Data` (name ``"Gold-2017"``).

    References:
        Nesseris, Pantazis & Perivolaropoulos 2017, "Tension and constraints on modified
        gravity parametrizations of Geff(z) from growth rate and Planck data", PRD 96,
        023542, arXiv:1703.10538 (Table I); Blake et al. 2012 (arXiv:1204.3674) for the
        WiggleZ covariance.

    Example:
        >>> data = gold2017_fsigma8()
        >>> len(data.redshift), data.surveys[-1]
        (18, 'FastSound')

    """
    redshift = np.array([row[1] for row in _GOLD_2017])
    values = np.array([row[2] for row in _GOLD_2017])
    errors = np.array([row[3] for row in _GOLD_2017])
    covariance = np.diag(errors**2)
    rows = np.array(_WIGGLEZ_ROWS)
    covariance[np.ix_(rows, rows)] = _WIGGLEZ_COVARIANCE
    return FSigma8Data(
        redshift=redshift,
        fsigma8=values,
        covariance=covariance,
        omega_m_fiducial=np.array([row[4] for row in _GOLD_2017]),
        surveys=tuple(row[0] for row in _GOLD_2017),
        name="Gold-2017",
        reference="Nesseris, Pantazis & Perivolaropoulos 2017, arXiv:1703.10538, Table I",
    )


def _check_data(data: FSigma8Data) -> GaussianLikelihood:
    if not isinstance(data, FSigma8Data):
        raise TypeError(f"data must be an FSigma8Data; got {type(data).__name__}")
    redshift = as_float_array(data.redshift, "data.redshift", ndim=1)
    check_finite(redshift, "data.redshift")
    if np.any(redshift < 0):
        raise ValueError(f"data.redshift must be >= 0; got min {redshift.min()}")
    for field in ("fsigma8", "omega_m_fiducial"):
        array = as_float_array(getattr(data, field), f"data.{field}", ndim=1)
        if array.shape != redshift.shape:
            raise ValueError(
                f"data.{field} must have the shape of data.redshift {redshift.shape}; "
                f"got {array.shape}"
            )
    covariance = validate_covariance(data.covariance, "data.covariance", size=redshift.size)
    return GaussianLikelihood(data.fsigma8, covariance, "data.covariance")


def _alcock_paczynski_ratio(cosmology: Cosmology, data: FSigma8Data) -> Array:
    r""":math:`q = H D_A / (H^{fid} D_A^{fid})` (flat ΛCDM fiducials); h cancels."""
    z = jnp.asarray(data.redshift)

    def product(c: Cosmology, redshift):
        return efunc(c, redshift) * angular_diameter_distance(c, redshift)

    def fiducial(omega_m, redshift):
        return product(Cosmology(h=cosmology.h, omega_m=omega_m), redshift)

    theirs = jax.vmap(fiducial)(jnp.asarray(data.omega_m_fiducial, z.dtype), z)
    return product(cosmology, z) / theirs


def fsigma8_log_likelihood(data: FSigma8Data, *, alcock_paczynski: bool = True, **solver_options):
    r"""Gaussian log-likelihood ``f(cosmology, sigma8) -> ln L`` of :math:`f\sigma_8` data.

    The model prediction is :math:`f\sigma_8(z_i)/q(z_i)` with the Alcock–Paczynski
    ratio :math:`q = H(z) D_A(z) / [H^{fid}(z) D_A^{fid}(z)]` of each survey's fiducial
    flat ΛCDM (Kazantzidis & Perivolaropoulos 2018, arXiv:1803.01337, eq. 2.4), or
    :math:`f\sigma_8(z_i)` without the correction. The normalisation
    :math:`-\tfrac12\ln\det 2\pi C` is included (evidences compare). A failed ODE solve
    gives :math:`-\infty`.

    Args:
        data: :class:`FSigma8Data` (e.g. :func:`gold2017_fsigma8`).
        alcock_paczynski: Apply the fiducial-cosmology correction.
        **solver_options: Passed to :func:`solve_growth`.

    Returns:
        ``log_likelihood_fn(cosmology, sigma8)``, jit/grad friendly.

    Raises:
        TypeError: If ``data`` is not an :class:`FSigma8Data`.
        ValueError: If its arrays disagree in shape, redshifts are negative or the
            covariance is invalid.

    Example:
        >>> from astrobayes.cosmology import Cosmology
        >>> log_likelihood_fn = fsigma8_log_likelihood(gold2017_fsigma8())
        >>> bool(log_likelihood_fn(Cosmology(omega_m=0.3), 0.75) > 0)
        True

    """
    likelihood = _check_data(data)
    z = np.asarray(data.redshift, dtype=float)

    def log_likelihood_fn(cosmology: Cosmology, sigma8) -> Array:
        solution = solve_growth(cosmology, z, **solver_options)
        prediction = sigma8 * solution.growth_factor * solution.growth_rate
        if alcock_paczynski:
            prediction = prediction / _alcock_paczynski_ratio(cosmology, data)
        value = likelihood(prediction)
        return jnp.where(solution.is_successful & jnp.isfinite(value), value, -jnp.inf)

    return log_likelihood_fn


def growth_models(data: FSigma8Data | None = None, **likelihood_options) -> list[Model]:
    r"""Flat ΛCDM and w0waCDM growth models on :math:`f\sigma_8` data (Gold-2017 default).

    Priors: :math:`\Omega_m \sim U(0.05, 0.7)`, :math:`\sigma_8 \sim U(0.4, 1.2)`; for
    w0waCDM also :math:`w_0 \sim U(-1.5, -0.5)`, :math:`w_a \sim U(-1.5, 0)` (so that
    :math:`w_0 + w_a \le -0.5` and dark energy is negligible where the growing mode is
    imposed). :math:`h` does not enter (:math:`f\sigma_8` and the AP ratio are
    independent of it).

    Args:
        data: :class:`FSigma8Data`; :func:`gold2017_fsigma8` when ``None``.
        **likelihood_options: Passed to :func:`fsigma8_log_likelihood`.

    Returns:
        ``[lcdm_growth, w0wacdm_growth]`` as :class:`~astrobayes.models.Model`.

    Example:
        >>> [m.name for m in growth_models()]
        ['lcdm_growth', 'w0wacdm_growth']

    """
    data = gold2017_fsigma8() if data is None else data
    log_likelihood_fn = fsigma8_log_likelihood(data, **likelihood_options)
    base = {"omega_m": dist.Uniform(0.05, 0.7), "sigma8": dist.Uniform(0.4, 1.2)}
    lcdm = Model.from_priors(
        "lcdm_growth",
        lambda p: log_likelihood_fn(Cosmology(omega_m=p["omega_m"]), p["sigma8"]),
        base,
    )
    w0wa = Model.from_priors(
        "w0wacdm_growth",
        lambda p: log_likelihood_fn(
            Cosmology(omega_m=p["omega_m"], w0=p["w0"], wa=p["wa"]), p["sigma8"]
        ),
        {**base, "w0": dist.Uniform(-1.5, -0.5), "wa": dist.Uniform(-1.5, 0.0)},
    )
    return [lcdm, w0wa]
