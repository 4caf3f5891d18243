"""Plots: corner plots, evidence diagnostics, coverage curves, image + uncertainty maps."""

from astrobayes.plots.corner import corner_plot, evidence_diagnostics_plot

__all__ = ["corner_plot", "evidence_diagnostics_plot"]
