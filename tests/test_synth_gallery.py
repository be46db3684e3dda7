"""Notebook plotting helpers of the synthetic world draw what they return and say SYNTHETIC."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cytosae.plotting.synthetic import (
    plot_cohort,
    plot_gallery,
    plot_masks,
    plot_realism,
    real_eosinophil_path,
    render_grid,
)
from cytosae.synth import render_scene
from cytosae.synth.cohort import make_cohort


def test_gallery_mosaic_matches_individual_renders() -> None:
    fig, ax = plt.subplots()
    ax, data = plot_gallery(
        ax, ["eosinophil", "lymphocyte"], ["metafer", "cellavision"], size=32, seed=1
    )
    assert data["image"].shape == (64, 64, 3) and "SYNTHETIC" in ax.get_title()
    one = render_scene("lymphocyte", "cellavision", 32, np.random.default_rng([1, 1, 1])).paint()
    np.testing.assert_array_equal(data["image"][32:, 32:], one)
    np.testing.assert_array_equal(
        render_grid(["eosinophil", "lymphocyte"], ["metafer", "cellavision"], 32, 1), data["image"]
    )
    plt.close(fig)


def test_masks_overlay_and_cohort_bars() -> None:
    scene = render_scene("faggot_cell", "metafer", 48, np.random.default_rng(0))
    fig, axes = plt.subplots(1, 2)
    _, data = plot_masks(axes, scene.paint(), scene.masks())
    assert "auer_rod" in data["concepts"] and "SYNTHETIC" in axes[1].get_title()
    plt.close(fig)
    patients = make_cohort(2, 10, np.random.default_rng(0))
    fig, ax = plt.subplots()
    ax, data = plot_cohort(ax, patients, top=5)
    np.testing.assert_allclose(data["fractions"].sum(axis=1), 1.0)
    assert len(data["patients"]) == 10 and "SYNTHETIC" in ax.get_title()
    plt.close(fig)


def test_realism_panel_uses_the_real_eosinophil_shipped_with_the_package() -> None:
    real = real_eosinophil_path()
    assert real.is_file() and (real.parent / "README.md").is_file()
    fig, axes = plt.subplots(1, 2)
    _, data = plot_realism(axes)
    assert data["real"].shape == (288, 288, 3) and len(data["renders"]) == 1
    assert data["real_path"] == real
    assert "SYNTHETIC" in axes[1].get_title() and "REAL" in axes[0].get_title()
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    _, data = plot_realism(axes, real.parent / "absent.tif")
    assert data["real"] is None and "absent" in axes[0].get_title()
    plt.close(fig)
