"""Is dark energy evolving? Flat LCDM, wCDM and w0waCDM on DESI DR2 BAO.

The settings are fixed so that others can check the numbers: flat, radiation neglected;
priors ``Omega_m ~ U(0.01, 0.99)``, ``h r_d [Mpc] ~ U(50, 150)`` (so ``c / (H0 r_d) =
2997.92458 / (h r_d)``), ``w ~ U(-3, 1)``, ``w0 ~ U(-3, 1)``, ``wa ~ U(-3, 2)`` with
``w0 + wa < 0`` (uniform on that part of the box and normalised over it: area 15.5);
Gaussian likelihood with the published covariance, including its normalisation.

References:
    DESI Collaboration (2025), arXiv:2503.14738 (DR2 BAO); Chevallier & Polarski (2001),
    Linder (2003) (CPL); Piras et al. (2024), arXiv:2405.12965.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist

from astrobayes.cosmology.data import BAOData, desi_dr2_bao
from astrobayes.cosmology.labels import PARAMETER_LABELS
from astrobayes.cosmology.likelihoods import make_bao_log_likelihood
from astrobayes.models.model import Model

__all__ = ["W0WA_PRIOR_AREA", "dark_energy_models"]

#: Area of {w0 in [-3, 1], wa in [-3, 2], w0 + wa < 0}: 5 (w0 < -2) + 10.5 (w0 > -2).
W0WA_PRIOR_AREA = 15.5


def _wa_upper(w0):
    return jnp.minimum(2.0, -w0)


def dark_energy_models(data: BAOData | None = None) -> list[Model]:
    """Flat LCDM, wCDM and w0waCDM models on BAO data (DESI DR2 by default).

    Args:
        data: BAO data; :func:`~astrobayes.cosmology.desi_dr2_bao` when ``None``.

    Returns:
        ``[lcdm, wcdm, w0wacdm]`` as :class:`~astrobayes.models.Model`.

    Example:
        >>> [m.name for m in dark_energy_models()]
        ['lcdm', 'wcdm', 'w0wacdm']
    """
    data = desi_dr2_bao() if data is None else data
    base = {"omega_m": dist.Uniform(0.01, 0.99), "h_rd": dist.Uniform(50.0, 150.0)}

    def likelihood(names):
        fn = make_bao_log_likelihood(data, names)
        return lambda p: fn(jnp.stack([p[n] for n in names]))

    labels = dict(PARAMETER_LABELS)
    lcdm = Model.from_priors("lcdm", likelihood(("omega_m", "h_rd")), base, labels=labels)
    wcdm_ll = make_bao_log_likelihood(data, ("omega_m", "h_rd", "w0"))
    wcdm = Model.from_priors(
        "wcdm",
        lambda p: wcdm_ll(jnp.stack([p["omega_m"], p["h_rd"], p["w"]])),
        {**base, "w": dist.Uniform(-3.0, 1.0)},
        labels=labels,
    )
    w0wa_priors = {
        **base,
        "w0": dist.Uniform(-3.0, 1.0),
        "wa": lambda values: dist.Uniform(-3.0, _wa_upper(values["w0"])),
    }

    def uniform_on_region(p):
        # p(w0) p(wa | w0) = 1 / (4 (wa_max(w0) + 3)); make it 1 / area.
        return jnp.log(4.0 * (_wa_upper(p["w0"]) + 3.0) / W0WA_PRIOR_AREA)

    w0wacdm = Model.from_priors(
        "w0wacdm",
        likelihood(("omega_m", "h_rd", "w0", "wa")),
        w0wa_priors,
        log_prior_correction_fn=uniform_on_region,
        labels=labels,
    )
    return [lcdm, wcdm, w0wacdm]
