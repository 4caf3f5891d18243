r"""The "expensive model" of the cosmic-shear analysis: jax-cosmo Limber spectra.

Needs the optional ``cosmo`` extra (``pip install 'astrobayes[cosmo]'``: jax-cosmo, which
imports ``pkg_resources`` and so needs ``setuptools<81``). Only used *forward* to make the
emulator's training set and to check the emulator; its gradient is never taken (it did not
finish compiling in 27 minutes on a 2-core CPU).

Intrinsic alignments follow the NLA model (Hirata & Seljak 2004; Bridle & King 2007) with an
amplitude :math:`A_{IA}` that is constant or, where the survey sets ``ia_pivot_redshift``,
:math:`A_{IA}[(1+z)/(1+z_0)]^{\eta_{IA}}` (Troxel et al. 2018); the kernel is
:math:`W_i = W_i^G + A_{IA} W_i^I(\eta_{IA})`; shear calibration multiplies it by
:math:`(1 + m_i)`. Hence, exactly,

.. math::
    C_{ij} = (1+m_i)(1+m_j)\,[C^{GG}_{ij} + A_{IA}\,C^{GI}_{ij} + A_{IA}^2\,C^{II}_{ij}],

with :math:`C^{GI}_{ij} = \langle G_i I_j\rangle + \langle I_i G_j\rangle` (negative) and
:math:`C^{II}_{ij}`. :func:`spectrum_components` gets the three from one jax-cosmo call with
``2 num_bins`` tracers: the bins' lensing kernels and their NLA kernels alone (amplitude 1),
so that every component is a direct Limber integral (no differences of large numbers).
Where the survey sets ``a_mod_bounds``, the matter power spectrum is
:math:`P_L + A_{mod}(P_{halofit} - P_L)` (Amon & Efstathiou 2022, arXiv:2206.11794),
through jax-cosmo's ``nonlinear_fn`` hook.

References:
    Campagne et al. (2023), jax-cosmo, arXiv:2302.05163; Troxel et al. (2018),
    arXiv:1708.01538; Bridle & King (2007), arXiv:0705.0166.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, ArrayLike, Float

from astrobayes.cosmology.shear_survey import DES_Y1_LIKE, ShearSurvey, emulator_names

if TYPE_CHECKING:
    from astrobayes.cosmology.shear import ShearData

__all__ = [
    "gaussian_covariance",
    "jax_cosmo_log_likelihood",
    "log_evidence_shift",
    "spectra",
    "spectrum_components",
]


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


def _cosmology(jc, values):
    return jc.Cosmology(
        Omega_c=values["omega_m"] - values["omega_b"],
        Omega_b=values["omega_b"],
        h=values["h"],
        n_s=values["n_s"],
        sigma8=values["s8"] / jnp.sqrt(values["omega_m"] / 0.3),
        Omega_k=0.0,
        w0=values["w0"],
        wa=values["wa"],
    )


@functools.cache
def _jax_cosmo_classes():
    """jax-cosmo pytree classes: a photo-z-binned Smail n(z) and an IA-only shear probe."""
    jc = _jax_cosmo()

    @jax.tree_util.register_pytree_node_class
    class PhotoZBin(jc.redshift.redshift_distribution):
        r"""Smail parent times a top-hat in photo-z with Gaussian scatter :math:`s(1+z)`.

        The selection :math:`\Phi(u_{hi}) - \Phi(u_{lo})`, :math:`u = (z_{edge} - z)/
        \sigma_z`, is evaluated from the side where both terms are small, so its far
        tails stay positive (no cancellation).
        """

        def pz_fn(self, z):
            a, b, z0, low, high, scatter = self.params
            width = scatter * (1.0 + z)
            u_low, u_high = (low - z) / width, (high - z) / width
            above = z > 0.5 * (low + high)
            window = jnp.where(above, ndtr(u_high) - ndtr(u_low), ndtr(-u_low) - ndtr(-u_high))
            return z**a * jnp.exp(-((z / z0) ** b)) * window

    @jax.tree_util.register_pytree_node_class
    class IntrinsicAlignmentOnly(jc.probes.WeakLensing):
        """The NLA part of a :class:`jax_cosmo.probes.WeakLensing` kernel alone."""

        def kernel(self, cosmo, z, ell):
            z = jnp.atleast_1d(z)
            pzs, bias = self.params[0], self.params[2]
            return jc.probes.nla_kernel(cosmo, pzs, bias, z, ell)

    return PhotoZBin, IntrinsicAlignmentOnly


def _parent_bins(jc, survey: ShearSurvey) -> list:
    """The survey's unshifted jax-cosmo redshift distributions, one per tomographic bin."""
    if survey.bin_edges:
        photo_z_bin = _jax_cosmo_classes()[0]
        edges = survey.bin_edges
        parents = [
            photo_z_bin(
                survey.smail_a,
                survey.smail_b,
                survey.smail_z0[0],
                edges[i],
                edges[i + 1],
                survey.photo_z_scatter,
                gals_per_arcmin2=survey.galaxies_per_arcmin2,
                zmax=survey.zmax,
            )
            for i in range(survey.num_bins)
        ]
    else:
        parents = [
            jc.redshift.smail_nz(
                survey.smail_a,
                survey.smail_b,
                z0,
                gals_per_arcmin2=survey.galaxies_per_arcmin2,
                zmax=survey.zmax,
            )
            for z0 in survey.smail_z0
        ]
    return parents


def _redshift_bins(jc, survey: ShearSurvey, shifts):
    return [
        jc.redshift.systematic_shift(
            parent, shift, gals_per_arcmin2=survey.galaxies_per_arcmin2, zmax=survey.zmax
        )
        for parent, shift in zip(_parent_bins(jc, survey), shifts, strict=True)
    ]


def _ia_bias(jc, survey: ShearSurvey, amplitude, values):
    if survey.ia_pivot_redshift is None:
        return jc.bias.constant_linear_bias(amplitude)
    return jc.bias.des_y1_ia_bias(amplitude, values["eta_ia"], survey.ia_pivot_redshift)


def _nonlinear_fn(jc, survey: ShearSurvey, values):
    """halofit, or P_L + A_mod (P_halofit - P_L) (Amon & Efstathiou 2022) with baryons."""
    if survey.a_mod_bounds is None:
        return jc.power.halofit
    a_mod = values["a_mod"]

    def modified(cosmo, k, a, transfer_fn):
        linear = jc.power.linear_matter_power(cosmo, k, a, transfer_fn=transfer_fn)
        nonlinear = jc.power.halofit(cosmo, k, a, transfer_fn=transfer_fn)
        return linear + a_mod * (nonlinear - linear)

    return modified


def _setup(parameters, survey: ShearSurvey):
    """jax-cosmo, the cosmology, shifted bins, and the named inputs of one parameter vector."""
    jc = _jax_cosmo()
    theta = jnp.asarray(parameters)
    names = emulator_names(survey)
    if theta.shape != (len(names),):
        raise ValueError(
            f"parameters must be the {len(names)} inputs {names} of survey "
            f"{survey.name!r}; got shape {theta.shape}"
        )
    values = {name: theta[i] for i, name in enumerate(names)}
    shifts = [values[f"delta_z_{i + 1}"] for i in range(survey.num_bins)]
    return jc, _cosmology(jc, values), _redshift_bins(jc, survey, shifts), values


def spectrum_components(
    parameters: Float[ArrayLike, " num_inputs"], survey: ShearSurvey = DES_Y1_LIKE
) -> Float[Array, "3 num_pairs num_ell"]:
    """GG, GI and II Limber spectra of every bin pair from one jax-cosmo call.

    Args:
        parameters: The survey's emulator inputs
            (:func:`~astrobayes.cosmology.shear_survey.emulator_names`, e.g.
            ``(omega_m, s8, omega_b, h, n_s, w0, wa, delta_z_1..4)`` for DES-Y1-like);
            traceable, so the call can be ``jit``-ed and ``vmap``-ed over points.
        survey: The survey settings.

    Returns:
        ``(3, num_pairs, num_ell)``: :math:`C^{GG}`, :math:`C^{GI}` (negative) and
        :math:`C^{II}` for :math:`A_{IA} = 1`, no shear calibration.

    Raises:
        ImportError: Without jax-cosmo.
        ValueError: If ``parameters`` does not have the survey's number of inputs.

    """
    jc, cosmo, bins, values = _setup(parameters, survey)
    shear = jc.probes.WeakLensing(bins, sigma_e=survey.sigma_e)
    intrinsic = _jax_cosmo_classes()[1](
        bins, ia_bias=_ia_bias(jc, survey, 1.0, values), sigma_e=survey.sigma_e
    )
    ell = jnp.asarray(survey.ell)
    cl = jc.angular_cl.angular_cl(
        cosmo, ell, [shear, intrinsic], nonlinear_fn=_nonlinear_fn(jc, survey, values)
    )  # (2n (2n + 1) / 2, num_ell): G_1..G_n, I_1..I_n
    n = survey.num_bins
    index = {}
    for i in range(2 * n):
        for j in range(i, 2 * n):
            index[(i, j)] = len(index)

    def c(a, b):
        return cl[index[(min(a, b), max(a, b))]]

    gg = [c(i, j) for i, j in survey.pairs]
    gi = [c(i, n + j) + c(n + i, j) for i, j in survey.pairs]  # <G_i I_j> + <I_i G_j>
    ii = [c(n + i, n + j) for i, j in survey.pairs]
    return jnp.stack([jnp.stack(gg), jnp.stack(gi), jnp.stack(ii)])


def spectra(
    parameters: Float[ArrayLike, " num_inputs"],
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
    jc, cosmo, bins, values = _setup(parameters, survey)
    m = jnp.asarray(multiplicative_bias)
    probe = jc.probes.WeakLensing(
        bins,
        ia_bias=_ia_bias(jc, survey, a_ia, values),
        multiplicative_bias=[m[i] for i in range(survey.num_bins)],  # a list (jax 0.10)
        sigma_e=survey.sigma_e,
    )
    return jc.angular_cl.angular_cl(
        cosmo, jnp.asarray(survey.ell), [probe], nonlinear_fn=_nonlinear_fn(jc, survey, values)
    )


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


def jax_cosmo_log_likelihood(
    data: ShearData, survey: ShearSurvey = DES_Y1_LIKE
) -> Callable[[Mapping[str, Array]], Float[Array, ""]]:
    """The "true" log-likelihood: direct jax-cosmo spectra (:func:`spectra`), no emulator.

    Args:
        data: Data vector and covariance of the survey.
        survey: The survey settings.

    Returns:
        ``log_likelihood_fn(parameters)`` of a mapping holding the names of
        ``parameter_names(survey, "w0wacdm")`` (``w0``, ``wa`` may be omitted: LCDM),
        traceable (``jit``, ``lax.map``); forward only.

    Raises:
        ImportError: Without jax-cosmo (when called).

    """
    from astrobayes.cosmology.gaussian import GaussianLikelihood

    likelihood = GaussianLikelihood(data.data_vector, data.covariance, name="data.covariance")
    inputs = emulator_names(survey)

    def log_likelihood_fn(parameters: Mapping[str, Array]) -> Float[Array, ""]:
        values = {"w0": -1.0, "wa": 0.0, **parameters}
        theta = jnp.stack([jnp.asarray(values[n], dtype=float) for n in inputs])
        m = jnp.stack([values[f"m_{i + 1}"] for i in range(survey.num_bins)])
        return likelihood(spectra(theta, values["a_ia"], m, survey).reshape(-1))

    return log_likelihood_fn


def log_evidence_shift(delta_log_likelihood: Float[ArrayLike, " n"]) -> tuple[float, float]:
    r"""The ln z shift of replacing the emulated likelihood by the true one, and its error.

    Importance reweighting of posterior draws of the emulated model:
    :math:`\ln z_{true} - \ln z_{emu} = \ln E_{post}[\exp(\ln L_{true} - \ln L_{emu})]`,
    with the Monte Carlo error of the mean weight (delta method).

    Args:
        delta_log_likelihood: ``ln L_true - ln L_emu`` at independent posterior draws.

    Returns:
        ``(shift, error)``.

    Example:
        >>> shift, error = log_evidence_shift([0.0, 0.0, 0.0])
        >>> float(shift), float(error)
        (0.0, 0.0)

    """
    delta = np.asarray(delta_log_likelihood, dtype=np.float64).reshape(-1)
    if delta.size < 2 or not np.all(np.isfinite(delta)):
        raise ValueError(
            f"delta_log_likelihood must hold >= 2 finite values; got {delta.size} values"
        )
    peak = delta.max()
    weights = np.exp(delta - peak)
    shift = float(np.log(weights.mean()) + peak)
    return shift, float(weights.std() / weights.mean() / np.sqrt(delta.size))
