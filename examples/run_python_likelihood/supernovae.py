"""A user's likelihood module in plain NumPy/SciPy, for ``astrobayes run`` with SMC.

Distance moduli of 40 supernovae (``supernovae.txt``: redshift, distance modulus, error)
against flat LCDM and flat wCDM. The luminosity distance is integrated with SciPy
(``scipy.integrate.cumulative_simpson`` on a redshift grid), which JAX cannot trace or
differentiate, as a likelihood calling CAMB or CLASS could not be: the config names it
``python_likelihood``, and SMC samples it without gradients.

The absolute magnitude is degenerate with H0; both are absorbed in one offset ``M``
(``mu = 5 log10(H0 d_L / c) + 25 + M`` with H0 = 70 km/s/Mpc), sampled with the others.
"""

import numpy as np
from scipy.integrate import cumulative_simpson

C_KM_S = 299792.458
H0 = 70.0
Z_GRID = np.linspace(0.0, 1.5, 301)


def _distance_modulus(z, omega_m, w):
    e = np.sqrt(omega_m * (1 + Z_GRID) ** 3 + (1 - omega_m) * (1 + Z_GRID) ** (3 * (1 + w)))
    comoving = cumulative_simpson(1.0 / e, x=Z_GRID, initial=0.0) * C_KM_S / H0  # Mpc
    d_l = (1 + z) * np.interp(z, Z_GRID, comoving)
    return 5 * np.log10(d_l) + 25


def _gaussian(mu_model, data):
    z, mu, sigma = data["sn"].T
    r = (mu - mu_model) / sigma
    return float(-0.5 * r @ r - np.sum(np.log(np.sqrt(2 * np.pi) * sigma)))


def lcdm(params, data):
    """ln L of flat LCDM: parameters Om and M."""
    z = data["sn"][:, 0]
    return _gaussian(_distance_modulus(z, params["Om"], -1.0) + params["M"], data)


def wcdm(params, data):
    """ln L of flat wCDM: parameters Om, w and M."""
    z = data["sn"][:, 0]
    return _gaussian(_distance_modulus(z, params["Om"], params["w"]) + params["M"], data)


def omega_lambda(params):
    """Derived: the dark-energy density of a flat universe."""
    return 1.0 - params["Om"]
