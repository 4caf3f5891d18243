"""Every image figure has a title, units on its colour bar and pixel axes (one style)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import AxesImage

from astrobayes.cli._figures import write_imaging_figures
from astrobayes.plots.imaging import hypothesis_test_figure, lci_figure, reconstruction_figure
from astrobayes.plots.style import PALETTE, color_cycle, figure_style, image_panel, new_figure


def _check_every_image_has_units(fig):
    images = [im for ax in fig.axes for im in ax.get_images() if isinstance(im, AxesImage)]
    assert images
    for im in images:
        assert im.colorbar is not None, f"no colour bar on {im.axes.get_title()!r}"
        label = im.colorbar.ax.get_ylabel()
        assert "[" in label or "code" in label, label
        assert im.axes.get_title()
        assert "[" in im.axes.get_xlabel()
    return len(images)


def test_imaging_figures_have_colour_bars_with_units():
    rng = np.random.default_rng(0)
    truth = rng.random((8, 8))
    fig = reconstruction_figure(truth + 0.1, truth * 0.9, truth=truth, snr_db=12.0, unit="Jy/beam")
    assert _check_every_image_has_units(fig) == 4
    assert any("Jy/beam" in a.get_ylabel() for a in fig.axes)
    intervals = SimpleNamespace(
        superpixel_size=4,
        map_mean=rng.random((2, 2)),
        length=rng.random((2, 2)),
        lower_status=np.zeros((2, 2), int),
        upper_status=np.ones((2, 2), int),
    )
    assert _check_every_image_has_units(lci_figure(intervals)) == 3
    result = SimpleNamespace(reject_null=True, potential_surrogate=2.0, gamma_alpha=1.0)
    fig = hypothesis_test_figure(truth, truth * 0.5, result)
    assert _check_every_image_has_units(fig) == 3
    assert "reject H0" in fig.texts[0].get_text()
    plt.close("all")


def test_signed_images_are_centred_and_units_are_required():
    with figure_style():
        fig, axes = new_figure(1, 1)
        im = image_panel(
            fig, axes[0, 0], np.array([[-1.0, 3.0]]), title="d", unit="x [m]", signed=True
        )
        assert im.get_clim() == (-3.0, 3.0)
        with pytest.raises(ValueError, match="unit"):
            image_panel(fig, axes[0, 0], np.eye(2), title="t", unit="")
        with pytest.raises(ValueError, match="2-d"):
            image_panel(fig, axes[0, 0], np.ones(3), title="t", unit="x [m]")
    plt.close("all")
    assert color_cycle(9)[8] == PALETTE[0]


def test_no_plots_writes_nothing(tmp_path):
    assert write_imaging_figures(tmp_path, None, no_plots=True) == []
    assert not list(tmp_path.iterdir())
