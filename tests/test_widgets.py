"""LatentBrowser: render is pure; moving the slider updates the output."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from cytosae.plotting.widget import LatentBrowser, sorted_latents

STATS = SimpleNamespace(
    sparsity=np.array([0.5, 0.0, 0.2]),
    mean_acts=np.array([0.1, np.nan, 2.0]),
    top_entropy=np.array([0.3, -1.0, 0.0]),
    top_indices=np.array([[1, 0], [-1, -1], [0, -1]]),
    top_values=np.array([[0.2, 0.1], [0, 0], [3.0, 0]]),
    top_label_indices=np.array([[1, 0], [-1, -1], [0, -1]]),
    label_names=("a", "b"),
)


def loader(i: int) -> np.ndarray:
    return np.full((4, 4, 3), 50 * (i + 1), dtype=np.uint8)


def test_sorted_latents() -> None:
    np.testing.assert_array_equal(sorted_latents(STATS), [2, 0])
    np.testing.assert_array_equal(sorted_latents(STATS, threshold=0.0), [2])


def test_render_and_slider() -> None:
    b = LatentBrowser(STATS, loader, n_images=2)
    assert b.last_latent is None and b.slider.max == 1  # nothing drawn before display
    assert b.show() is b.widget and b.last_latent == 2
    fig = b.render(0)
    shown = [ax.images[0].get_array()[0, 0, 0] for ax in fig.axes if ax.images]
    assert shown == [100, 50]  # images 1 then 0, by activation
    assert "latent 0" in fig.get_suptitle() and fig.texts[0].get_fontsize() == 9
    tagged = b.render(0, tag="SYNTHETIC data")
    assert tagged.get_suptitle() == f"{fig.get_suptitle()} (SYNTHETIC data)"
    first = b.last_figure
    b.slider.value = 1
    assert b.last_latent == 0 and b.last_figure is not first
    with pytest.raises(ValueError, match="no latents"):
        LatentBrowser(STATS, loader, threshold=5.0)
