r"""The "expensive model" of the cosmic-shear analysis: jax-cosmo Limber spectra.

Needs the optional ``cosmo`` extra (``pip install 'astrobayes[cosmo]'``: jax-cosmo, which
imports ``pkg_resources`` and so needs ``setuptools<81``). Only used *forward* to make the
emulator's training set and to check the emulator; its gradient is never taken (it did not
finish compiling in 27 minutes on a 2-core CPU).

Intrinsic alignments follow the NLA model with a redshift-independent amplitude
:math:`A_{IA}` (Hirata & Seljak 2004; Bridle & King 2007), whose lensing kernel is
:math:`W_i = W_i^G + A_{IA} W_i^I`; shear calibration multiplies the kernel by
:math:`(1 + m_i)`. Hence, exactly,

.. math::
    C_{ij} = (1+m_i)(1+m_j)\,[C^{GG}_{ij} + A_{IA}\,C^{GI}_{ij} + A_{IA}^2\,C^{II}_{ij}],

with :math:`C^{GI}_{ij} = \langle G_i I_j\rangle + \langle I_i G_j\rangle` (negative) and
:math:`C^{II}_{ij}`. :func:`spectrum_components` gets the three from one jax-cosmo call with
eight tracers (the four bins without IA and with :math:`A_{IA} = 1`).

References:
    Campagne et al. (2023), jax-cosmo, arXiv:2302.05163; Troxel et al. (2018),
    arXiv:1708.01538; Bridle & King (2007), arXiv:0705.0166.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from astrobayes.cosmology.shear_survey import DES_Y1_LIKE, ShearSurvey

__all__ = ["gaussian_covariance", "spectra", "spectrum_components"]


def _jax_cosmo():
    try:
        import jax_cosmo
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the jax-cosmo forward model needs the optional 'cosmo' extra: "
            "pip install 'astrobayes[cosmo]' (jax-cosmo>=0.1 with setuptools<81); "
            f"import failed with: {error}"
        ) from error
    return jax_cosmo


def _cosmology(jc, theta):
    omega_m, s8, omega_b, h, n_s, w0, wa = (theta[i] for i in range(7))
    return jc.Cosmology(
        Omega_c=omega_m - omega_b,
        Omega_b=omega_b,
        h=h,
        n_s=n_s,
        sigma8=s8 / jnp.sqrt(omega_m / 0.3),
        Omega_k=0.0,
        w0=w0,
        wa=wa,
    )


def _redshift_bins(jc, survey: ShearSurvey, shifts):
    bins = []
    for z0, shift in zip(survey.smail_z0, shifts, strict=True):
        parent = jc.redshift.smail_nz(
            survey.smail_a,
            survey.smail_b,
            z0,
            gals_per_arcmin2=survey.galaxies_per_arcmin2,
            zmax=survey.zmax,
        )
        bins.append(
            jc.redshift.systematic_shift(
                parent,
                shift,
                gals_per_arcmin2=survey.galaxies_per_arcmin2,
                zmax=survey.zmax,
            )
        )
    return bins


def _cosmology_and_bins(parameters, survey: ShearSurvey):
    """jax-cosmo, its cosmology and the shifted redshift bins for one parameter vector."""
    jc = _jax_cosmo()
    theta = jnp.asarray(parameters)
    shifts = [theta[7 + i] for i in range(survey.num_bins)]
    return jc, _cosmology(jc, theta), _redshift_bins(jc, survey, shifts)


def spectrum_components(
    parameters: Float[ArrayLike, " 11"], survey: ShearSurvey = DES_Y1_LIKE
) -> Float[Array, "3 num_pairs num_ell"]:
    """GG, GI and II Limber spectra of every bin pair from one 8-tracer jax-cosmo call.

    Args:
        parameters: ``(omega_m, s8, omega_b, h, n_s, w0, wa, delta_z_1..4)``
            (:data:`~astrobayes.cosmology.shear_survey.EMULATOR_NAMES`); traceable, so the
            call can be ``jit``-ed and ``vmap``-ed over points.
        survey: The survey settings.

    Returns:
        ``(3, num_pairs, num_ell)``: :math:`C^{GG}`, :math:`C^{GI}` (negative) and
        :math:`C^{II}` for :math:`A_{IA} = 1`, no shear calibration.

    Raises:
        ImportError: Without jax-cosmo.

    """
    jc, cosmo, bins = _cosmology_and_bins(parameters, survey)
    shear = jc.probes.WeakLensing(bins, sigma_e=survey.sigma_e)
    shear_ia = jc.probes.WeakLensing(
        bins, ia_bias=jc.bias.constant_linear_bias(1.0), sigma_e=survey.sigma_e
    )
    ell = jnp.asarray(survey.ell)
    cl = jc.angular_cl.angular_cl(cosmo, ell, [shear, shear_ia])  # (36, num_ell)
    n = survey.num_bins
    tracers = 2 * n
    index = {}
    for i in range(tracers):
        for j in range(i, tracers):
            index[(i, j)] = len(index)

    def c(a, b):
        return cl[index[(min(a, b), max(a, b))]]

    gg, gi, ii = [], [], []
    for i, j in survey.pairs:
        g_g = c(i, j)
        g_i = c(i, n + j) - g_g  # <G_i I_j>
        i_g = c(j, n + i) - g_g  # <I_i G_j>
        gg.append(g_g)
        gi.append(g_i + i_g)
        ii.append(c(n + i, n + j) - g_g - g_i - i_g)
    return jnp.stack([jnp.stack(gg), jnp.stack(gi), jnp.stack(ii)])


def spectra(
    parameters: Float[ArrayLike, " 11"],
    a_ia: float | Float[Array, ""],
    multiplicative_bias: Float[ArrayLike, " num_bins"],
    survey: ShearSurvey = DES_Y1_LIKE,
) -> Float[Array, "num_pairs num_ell"]:
    """Full shear spectra (GG + GI + II, calibrated) from one direct jax-cosmo call.

    Independent of the GG/GI/II decomposition: used as the "true" model against which the
    emulated likelihood is checked.

    Args:
        parameters: As in :func:`spectrum_components`.
        a_ia: NLA amplitude.
        multiplicative_bias: ``m_i`` per bin.
        survey: The survey settings.

    Returns:
        ``(num_pairs, num_ell)`` spectra in data-vector order.

    Raises:
        ImportError: Without jax-cosmo.

    """
    jc, cosmo, bins = _cosmology_and_bins(parameters, survey)
    m = jnp.asarray(multiplicative_bias)
    probe = jc.probes.WeakLensing(
        bins,
        ia_bias=jc.bias.constant_linear_bias(a_ia),
        multiplicative_bias=[m[i] for i in range(survey.num_bins)],  # a list (jax 0.10)
        sigma_e=survey.sigma_e,
    )
    return jc.angular_cl.angular_cl(cosmo, jnp.asarray(survey.ell), [probe])


def gaussian_covariance(
    signal: Float[ArrayLike, "num_pairs num_ell"], survey: ShearSurvey = DES_Y1_LIKE
) -> np.ndarray:
    r"""Gaussian (Knox) covariance of the band powers, with shape noise.

    :math:`\mathrm{Cov}[C_{ij}(\ell), C_{mn}(\ell')] = \delta_{\ell\ell'}
    [\hat C_{im}\hat C_{jn} + \hat C_{in}\hat C_{jm}] / [(2\ell+1)\,\Delta\ell\, f_{sky}]`,
    :math:`\hat C_{ij} = C_{ij} + \delta_{ij}\sigma_e^2/\bar n`, with
    :math:`\Delta\ell` the ``numpy.gradient`` of the multipoles (as jax-cosmo's
    ``gaussian_cl_covariance``). Pure NumPy, float64.

    Args:
        signal: Signal spectra ``(num_pairs, num_ell)`` in data-vector order.
        survey: The survey settings.

    Returns:
        ``(num_data, num_data)`` covariance of the flattened data vector (pair-major).

    References:
        Knox (1995), astro-ph/9504054; Hu & Jain (2004), astro-ph/0312395.

    """
    signal = np.asarray(signal, dtype=np.float64)
    ell = np.asarray(survey.ell)
    n = survey.num_bins
    steradian_per_arcmin2 = (np.pi / 180.0 / 60.0) ** 2
    noise = survey.sigma_e**2 / (survey.galaxies_per_arcmin2 / steradian_per_arcmin2)
    full = np.zeros((n, n, ell.size))
    for k, (i, j) in enumerate(survey.pairs):
        full[i, j] = full[j, i] = signal[k]
    full += noise * np.eye(n)[:, :, None]
    norm = (2.0 * ell + 1.0) * np.gradient(ell) * survey.f_sky
    pairs = survey.pairs
    covariance = np.zeros((len(pairs), ell.size, len(pairs), ell.size))
    for a, (i, j) in enumerate(pairs):
        for b, (m, q) in enumerate(pairs):
            block = (full[i, m] * full[j, q] + full[i, q] * full[j, m]) / norm
            covariance[a, :, b, :] = np.diag(block)
    size = len(pairs) * ell.size
    return covariance.reshape(size, size)
