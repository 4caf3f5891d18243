r"""LaTeX labels and ΛCDM reference values of the cosmology parameters, for figures.

Labels are GetDist labels: LaTeX without ``$`` (``\Omega_{\rm m}``, ``w_0``). A
:class:`~astrobayes.models.Model` carries its own ``labels``; these are the defaults the
cosmology models use, and a name not listed here is labelled by itself.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["LCDM_VALUES", "PARAMETER_LABELS", "parameter_label"]

PARAMETER_LABELS = MappingProxyType(
    {
        "omega_m": r"\Omega_{\rm m}",
        "omega_k": r"\Omega_{k}",
        "omega_r": r"\Omega_{\rm r}",
        "omega_b": r"\Omega_{\rm b}",
        "h": r"h",
        "h_rd": r"h\,r_{\rm d}\;[{\rm Mpc}]",
        "rd": r"r_{\rm d}\;[{\rm Mpc}]",
        "w": r"w",
        "w0": r"w_0",
        "wa": r"w_a",
        "sigma8": r"\sigma_8",
        "s8": r"S_8",
        "n_s": r"n_{\rm s}",
        "ns": r"n_{\rm s}",
    }
)
"""``{parameter name: LaTeX label}`` for the names the cosmology likelihoods take."""

LCDM_VALUES = MappingProxyType({"w": -1.0, "w0": -1.0, "wa": 0.0, "omega_k": 0.0})
"""Values of the extension parameters at which a model reduces to flat ΛCDM (the
reference lines of a dark-energy triangle plot)."""


def parameter_label(name: str) -> str:
    r"""The LaTeX label of a cosmology parameter, or the name itself when it has none.

    Example:
        >>> parameter_label("omega_m"), parameter_label("my_nuisance")
        ('\\Omega_{\\rm m}', 'my_nuisance')

    """
    return PARAMETER_LABELS.get(name, name)
