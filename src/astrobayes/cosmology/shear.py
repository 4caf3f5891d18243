r"""Cosmic shear, LCDM vs w0waCDM with 14 and 16 parameters, on an emulated likelihood.

A DES-Y1-like tomographic cosmic-shear analysis (4 bins, 10 spectra at 12 multipoles in
[30, 2000], Gaussian covariance with shape noise; see
:mod:`astrobayes.cosmology.shear_survey`) where the expensive model, jax-cosmo's Limber
spectra, is replaced by a CosmoPower-style emulator shipped with the package. The emulator
maps ``(omega_m, s8, omega_b, h, n_s, w0, wa, delta_z_1..4)`` to the GG, GI and II spectra
(log, PCA); intrinsic alignment (NLA amplitude ``a_ia``) and shear calibration ``m_i``
enter exactly:

.. math::
    C_{ij} = (1+m_i)(1+m_j)\,[C^{GG}_{ij} + A_{IA} C^{GI}_{ij} + A_{IA}^2 C^{II}_{ij}].

Priors (Troxel et al. 2018 widths for the nuisances, centred on the synthetic truth):
cosmology uniform on :data:`~astrobayes.cosmology.shear_survey.COSMOLOGY_BOUNDS` (LCDM fixes
``w0 = -1``, ``wa = 0``); ``a_ia ~ U(-5, 5)``; ``delta_z_i ~ N(0, sigma_i)`` truncated to
[-0.1, 0.1] (the emulator's range) with ``sigma = (0.016, 0.013, 0.011, 0.022)``;
``m_i ~ N(0, 0.023)``.

Quick start::

    import jax
    from astrobayes.comparison import compare
    from astrobayes.cosmology.shear import shear_models
    from astrobayes.io import des_y1_like_data, des_y1_like_emulator
    from astrobayes.sampling import NUTSConfig

    models = shear_models(des_y1_like_emulator(), des_y1_like_data())
    out = compare(jax.random.key(0), models, reference="lcdm",
                  sampling=NUTSConfig(num_chains=8, num_warmup=500, num_samples=1000))

The shipped files (``shear_data/``) were made by ``scripts/make_shear_training_set.py``
and ``scripts/train_shear_emulator.py``; see ``docs/cosmic_shear.md``. They are read by
:func:`astrobayes.io.des_y1_like_data` and :func:`astrobayes.io.des_y1_like_emulator`
(only ``io/`` touches files); the functions here take the emulator and the data.

References:
    Piras et al. (2024), arXiv:2405.12965; Troxel et al. (2018), arXiv:1708.01538;
    Spurio Mancini et al. (2022), arXiv:2106.03846; Campagne et al. (2023),
    arXiv:2302.05163; Chevallier & Polarski (2001), Linder (2003) (CPL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from astrobayes._checks import as_float_array, check_finite
from astrobayes.cosmology.gaussian import GaussianLikelihood
from astrobayes.cosmology.shear_survey import (
    DES_Y1_LIKE,
    ShearSurvey,
    emulator_names,
    parameter_names,
)
from astrobayes.emulators import Emulator
from astrobayes.models.model import Model

__all__ = [
    "LCDM_NAMES",
    "MULTIPLICATIVE_BIAS_SIGMA",
    "PHOTO_Z_SIGMA",
    "W0WACDM_NAMES",
    "ShearData",
    "ShearProblem",
    "make_shear_log_likelihood",
    "shear_models",
    "shear_problems",
    "shear_spectra",
]

PHOTO_Z_SIGMA = DES_Y1_LIKE.photo_z_sigma
"""Prior widths of the DES-Y1-like photo-z shifts (metacalibration, Troxel et al. 2018)."""

MULTIPLICATIVE_BIAS_SIGMA = DES_Y1_LIKE.multiplicative_bias_sigma
"""Prior width of each DES-Y1-like shear calibration m_i (DES-Y1 metacalibration)."""

LCDM_NAMES = parameter_names(DES_Y1_LIKE, "lcdm")
"""The 14 parameters of the DES-Y1-like LCDM model, in vector order."""
W0WACDM_NAMES = parameter_names(DES_Y1_LIKE, "w0wacdm")
"""The 16 parameters of the DES-Y1-like w0waCDM model, in vector order."""

_MODELS = ("lcdm", "w0wacdm")


class ShearData(NamedTuple):
    """A cosmic-shear data vector with its Gaussian covariance.

    Attributes:
        ell: Multipoles ``(num_ell,)``.
        data_vector: Band powers, pair-major ``(num_pairs * num_ell,)``.
        covariance: Covariance ``(num_data, num_data)`` (float64).

    """

    ell: Float[np.ndarray, " num_ell"]
    data_vector: Float[np.ndarray, " num_data"]
    covariance: Float[np.ndarray, "num_data num_data"]


def shear_spectra(
    components: Float[ArrayLike, "3 num_pairs num_ell"],
    a_ia: Float[ArrayLike, ""],
    multiplicative_bias: Float[ArrayLike, " num_bins"],
    survey: ShearSurvey = DES_Y1_LIKE,
) -> Float[Array, "num_pairs num_ell"]:
    """Observed spectra from GG, GI and II components, IA amplitude and shear calibration.

    ``C_ij = (1 + m_i)(1 + m_j) (GG_ij + a_ia GI_ij + a_ia^2 II_ij)`` (exact for the NLA
    model with a constant amplitude; jit/grad friendly).

    Args:
        components: ``(3, num_pairs, num_ell)``: GG, GI (negative), II.
        a_ia: NLA amplitude.
        multiplicative_bias: ``m_i`` per bin.
        survey: Survey settings (for the bin pairs).

    Returns:
        ``(num_pairs, num_ell)``.

    """
    components = jnp.asarray(components)
    m = jnp.asarray(multiplicative_bias)
    first = jnp.asarray([i for i, _ in survey.pairs])
    second = jnp.asarray([j for _, j in survey.pairs])
    calibration = (1.0 + m[first]) * (1.0 + m[second])
    signal = components[0] + a_ia * components[1] + a_ia**2 * components[2]
    return calibration[:, None] * signal


def _check_emulator(emulator: Emulator, survey: ShearSurvey) -> None:
    if not isinstance(emulator, Emulator):
        raise TypeError(
            f"emulator must be an astrobayes.emulators.Emulator; got {type(emulator).__name__}"
        )
    expected = 3 * survey.num_data
    names = emulator_names(survey)
    if emulator.num_parameters != len(names) or emulator.num_outputs != expected:
        raise ValueError(
            f"emulator must map {len(names)} parameters {names} to "
            f"{expected} outputs (GG, -GI, II for {survey.num_pairs} pairs x "
            f"{survey.num_ell} multipoles); got {emulator.num_parameters} -> "
            f"{emulator.num_outputs}"
        )
    if not emulator.log_outputs:
        raise ValueError(
            "emulator must emulate log spectra (log_outputs=True), so that its outputs are positive"
        )


def _check_data(data: ShearData, survey: ShearSurvey) -> GaussianLikelihood:
    if not isinstance(data, ShearData):
        raise TypeError(f"data must be a ShearData; got {type(data).__name__}")
    ell = as_float_array(data.ell, "data.ell", ndim=1)
    if ell.shape != (survey.num_ell,) or not np.allclose(ell, survey.ell, rtol=1e-6):
        raise ValueError(
            f"data.ell must be the survey's {survey.num_ell} multipoles "
            f"{np.round(survey.ell, 2).tolist()}; got {np.round(ell, 2).tolist()}"
        )
    vector = as_float_array(data.data_vector, "data.data_vector", ndim=1)
    if vector.shape != (survey.num_data,):
        raise ValueError(
            f"data.data_vector must have {survey.num_data} entries ({survey.num_pairs} "
            f"pairs x {survey.num_ell} multipoles); got shape {vector.shape}"
        )
    check_finite(vector, "data.data_vector")
    return GaussianLikelihood(vector, data.covariance, name="data.covariance")


def make_shear_log_likelihood(
    emulator: Emulator,
    data: ShearData,
    survey: ShearSurvey = DES_Y1_LIKE,
) -> Callable[[Mapping[str, Array]], Float[Array, ""]]:
    """Normalised Gaussian cosmic-shear log-likelihood with emulated spectra.

    Args:
        emulator: Emulator of ``[GG, -GI, II]``, e.g. the shipped
            :func:`astrobayes.io.des_y1_like_emulator`.
        data: Data vector and covariance, e.g. :func:`astrobayes.io.des_y1_like_data`.
        survey: Survey settings matching both.

    Returns:
        ``log_likelihood_fn(parameters)`` with ``parameters`` a mapping holding every name
        of :data:`W0WACDM_NAMES` (``w0``, ``wa`` may be omitted: LCDM ``-1``, ``0``); pure
        and jit/vmap/grad friendly (gradients through the emulator only).

    Raises:
        TypeError: If ``emulator`` or ``data`` has the wrong type.
        ValueError: If their shapes do not match the survey, the emulator does not emulate
            log spectra, or the covariance is not symmetric positive definite.

    Example:
        >>> import jax.numpy as jnp
        >>> from astrobayes.cosmology.shear_survey import FIDUCIAL
        >>> from astrobayes.io import des_y1_like_data, des_y1_like_emulator
        >>> fn = make_shear_log_likelihood(des_y1_like_emulator(), des_y1_like_data())
        >>> bool(jnp.isfinite(fn({k: jnp.asarray(v) for k, v in FIDUCIAL.items()})))
        True

    """
    if not isinstance(survey, ShearSurvey):
        raise TypeError(f"survey must be a ShearSurvey; got {type(survey).__name__}")
    _check_emulator(emulator, survey)
    likelihood = _check_data(data, survey)
    shape = (3, survey.num_pairs, survey.num_ell)
    lcdm_defaults = {"w0": -1.0, "wa": 0.0}
    inputs = emulator_names(survey)
    num_bins = survey.num_bins

    def log_likelihood_fn(parameters: Mapping[str, Array]) -> Float[Array, ""]:
        values = {**lcdm_defaults, **parameters}
        theta = jnp.stack([jnp.asarray(values[name], dtype=float) for name in inputs])
        positive = emulator(theta).reshape(shape)
        components = positive * jnp.asarray([1.0, -1.0, 1.0])[:, None, None]
        m = jnp.stack([values[f"m_{i + 1}"] for i in range(num_bins)])
        prediction = shear_spectra(components, values["a_ia"], m, survey)
        return likelihood(prediction.reshape(-1))

    return log_likelihood_fn


def _prior_spec(name: str, survey: ShearSurvey) -> tuple[int, float, float, float]:
    """``(kind, low, high, sigma)``: kind 0 uniform, 1 truncated normal, 2 normal."""
    uniform = {row[0]: row[1:] for row in survey.cosmology_bounds}
    uniform["a_ia"] = survey.a_ia_bounds
    uniform["eta_ia"] = survey.eta_ia_bounds
    if survey.a_mod_bounds is not None:
        uniform["a_mod"] = survey.a_mod_bounds
    if name in uniform:
        low, high = uniform[name]
        return 0, float(low), float(high), 1.0
    index = int(name.rsplit("_", 1)[1]) - 1
    if name.startswith("delta_z_"):
        bound = survey.photo_z_bound
        return 1, -bound, bound, survey.photo_z_sigma[index]
    return 2, 0.0, 0.0, survey.multiplicative_bias_sigma  # m_i


def _priors(names: tuple[str, ...], survey: ShearSurvey) -> dict[str, dist.Distribution]:
    priors: dict[str, dist.Distribution] = {}
    for name in names:
        kind, low, high, sigma = _prior_spec(name, survey)
        if kind == 0:
            priors[name] = dist.Uniform(low, high)
        elif kind == 1:
            priors[name] = dist.TruncatedNormal(0.0, sigma, low=low, high=high)
        else:
            priors[name] = dist.Normal(0.0, sigma)
    return priors


def _prior_transform(names: tuple[str, ...], survey: ShearSurvey) -> Callable[[Array], Array]:
    """Unit cube -> parameters by inverse CDFs (jax.numpy, traceable)."""
    specs = np.asarray([_prior_spec(name, survey) for name in names], dtype=np.float64)
    kind_a, low_a, high_a, sigma_a = specs.T
    cdf_low = np.asarray(ndtr(low_a / sigma_a))
    cdf_high = np.asarray(ndtr(high_a / sigma_a))

    def prior_transform_fn(unit: Float[Array, " dim"]) -> Float[Array, " dim"]:
        unit = jnp.asarray(unit)
        uniform = low_a + (high_a - low_a) * unit
        truncated = sigma_a * ndtri(cdf_low + unit * (cdf_high - cdf_low))
        normal = sigma_a * ndtri(unit)
        return jnp.where(kind_a == 0, uniform, jnp.where(kind_a == 1, truncated, normal))

    return prior_transform_fn


class ShearProblem(NamedTuple):
    """One model of the shear comparison as flat-vector functions (for any sampler).

    Attributes:
        name: ``"lcdm"`` or ``"w0wacdm"``.
        names: Parameter names in vector order.
        log_likelihood_fn: ``theta (dim,) -> ln L`` (JAX, differentiable).
        prior_transform_fn: Unit cube ``(dim,) -> theta`` (JAX inverse CDFs; for nested
            samplers).
        priors: ``{name: numpyro distribution}`` (the same prior).

    """

    name: str
    names: tuple[str, ...]
    log_likelihood_fn: Callable[[Array], Array]
    prior_transform_fn: Callable[[Array], Array]
    priors: dict[str, dist.Distribution]


def shear_problems(
    emulator: Emulator,
    data: ShearData,
    survey: ShearSurvey = DES_Y1_LIKE,
) -> list[ShearProblem]:
    """LCDM and w0waCDM as :class:`ShearProblem` s (14 and 16 parameters for DES-Y1-like).

    Args:
        emulator: As in :func:`make_shear_log_likelihood`.
        data: As in :func:`make_shear_log_likelihood`.
        survey: As in :func:`make_shear_log_likelihood`.

    Returns:
        ``[lcdm, w0wacdm]``.

    Raises:
        TypeError, ValueError: As :func:`make_shear_log_likelihood`.

    Example:
        >>> from astrobayes.io import des_y1_like_data, des_y1_like_emulator
        >>> problems = shear_problems(des_y1_like_emulator(), des_y1_like_data())
        >>> [(p.name, len(p.names)) for p in problems]
        [('lcdm', 14), ('w0wacdm', 16)]

    """
    fn = make_shear_log_likelihood(emulator, data, survey)
    problems = []
    for name in _MODELS:
        names = parameter_names(survey, name)

        def log_likelihood_fn(theta, _names=names):
            theta = jnp.asarray(theta)
            return fn({n: theta[i] for i, n in enumerate(_names)})

        problems.append(
            ShearProblem(
                name=name,
                names=names,
                log_likelihood_fn=log_likelihood_fn,
                prior_transform_fn=_prior_transform(names, survey),
                priors=_priors(names, survey),
            )
        )
    return problems


def shear_models(
    emulator: Emulator,
    data: ShearData,
    survey: ShearSurvey = DES_Y1_LIKE,
) -> list[Model]:
    """LCDM and w0waCDM cosmic-shear models for :func:`astrobayes.compare`.

    Args:
        emulator: Emulator of ``[GG, -GI, II]``, e.g. the shipped
            :func:`astrobayes.io.des_y1_like_emulator`.
        data: Data vector and covariance, e.g. :func:`astrobayes.io.des_y1_like_data`.
        survey: Survey settings matching both.

    Returns:
        ``[lcdm, w0wacdm]`` as :class:`~astrobayes.models.Model` (14 and 16 parameters
        for :data:`~astrobayes.cosmology.shear_survey.DES_Y1_LIKE`, 28 and 30 for
        :data:`~astrobayes.cosmology.shear_survey.LSST_Y1_LIKE`).

    Raises:
        TypeError: If ``emulator``, ``data`` or ``survey`` has the wrong type.
        ValueError: If their shapes disagree or the covariance is invalid.

    Example:
        >>> from astrobayes.io import des_y1_like_data, des_y1_like_emulator
        >>> [m.name for m in shear_models(des_y1_like_emulator(), des_y1_like_data())]
        ['lcdm', 'w0wacdm']

    """
    fn = make_shear_log_likelihood(emulator, data, survey)
    return [
        Model.from_priors(name, fn, _priors(parameter_names(survey, name), survey))
        for name in _MODELS
    ]
