"""Figures: GetDist triangle plots, data against models, model comparison, images, calibration.

Every function returns a matplotlib ``Figure`` in the package style
(:mod:`astrobayes.plots.style`) and never touches a file: the commands save figures
through :mod:`astrobayes.cli._figures`. Submodules (imported on use, since GetDist and
matplotlib are the ``plots`` extra): :mod:`~astrobayes.plots.triangle`,
:mod:`~astrobayes.plots.bao`, :mod:`~astrobayes.plots.predictive`,
:mod:`~astrobayes.plots.comparison`, :mod:`~astrobayes.plots.imaging`,
:mod:`~astrobayes.plots.validation`. See ``docs/figures.md``.
"""

__all__: list[str] = []
