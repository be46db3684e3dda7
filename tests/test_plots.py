"""Plot functions return exactly the data they draw; save_figure is byte-stable."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cytosae.analysis.differential import differential_latents
from cytosae.analysis.thresholds import concept_counts
from cytosae.plotting import panels as plots

STATS = SimpleNamespace(
    sparsity=np.array([0.1, 0.0, 1.0, 0.01]),
    mean_acts=np.array([0.01, np.nan, 10.0, 1e-4]),
    top_entropy=np.array([0.5, -1.0, 1.0, 0.0]),
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_landscape(ax) -> None:
    _, d = plots.plot_landscape(ax, STATS, bins=4)
    np.testing.assert_allclose(d["x"], [-1, 0, -2])
    np.testing.assert_allclose(d["y"], [-2, 1, -4])
    np.testing.assert_array_equal(d["latent"], [0, 2, 3])
    np.testing.assert_allclose(d["c"], [0.5, 1.0, 0.0])
    assert d["hist_x"].sum() == 3 and d["hist_y"].sum() == 3
    np.testing.assert_allclose(ax.collections[0].get_offsets(), np.c_[d["x"], d["y"]])


def test_concept_counts_and_sweep(ax) -> None:
    df = concept_counts(STATS.mean_acts, [-3, 0])
    _, d = plots.plot_concept_counts(ax, df)
    assert list(d["n_concepts"]) == [2, 1]
    _, d2 = plots.plot_concept_counts(ax, {"a": df, "b": df})
    assert set(d2) == {"a", "b"}
    sw = pd.DataFrame(
        {
            "threshold": [-3.0, 0.0],
            "n_latents_kept": [5, 1],
            "f1_mean": [0.8, 0.4],
            "f1_sd": [0.1, 0.2],
        }
    )
    _, d3 = plots.plot_probe_sweep(ax, sw)
    np.testing.assert_array_equal(d3["f1_mean"], sw["f1_mean"])
    np.testing.assert_array_equal(d3["twin"].lines[0].get_ydata(), [5, 1])


def test_images_segmentation_barcode_confusion() -> None:
    fig, axes = plt.subplots(1, 4)
    imgs = [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)]
    _, d = plots.plot_reference_images(axes[:3], imgs, ["a", "b"])
    assert len(d["images"]) == 2 and d["titles"] == ["a", "b"] and not axes[2].images
    _, s = plots.plot_segmentation(
        axes[3], np.array([[1.0, 0.0], [0.0, 0.0]]), np.full((4, 4, 3), 80, np.uint8)
    )
    np.testing.assert_array_equal(s["image"][:2, :2, 0], 80)
    assert s["image"][2:, :, 0].max() == 0
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2)
    B = np.arange(6.0).reshape(2, 3)
    _, b = plots.plot_barcode(a1, B, ["p0", "p1"], latents=[2, 0])
    np.testing.assert_array_equal(b["matrix"], [[2, 0], [5, 3]])
    np.testing.assert_array_equal(a1.images[0].get_array(), b["matrix"])
    cm = pd.DataFrame([[3, 1], [0, 4]], index=["A", "B"], columns=["A", "B"])
    _, c = plots.plot_confusion(a2, cm, normalize=True)
    np.testing.assert_allclose(c["matrix"], [[0.75, 0.25], [0, 1]])
    plt.close(fig)


def test_differential_and_recovery(ax) -> None:
    D = np.array([[5.0, 1.0, 3.0], [1.0, 1.0, 4.0]])
    diff = differential_latents(D, ["A", "B"], "A", "B", n=1)
    _, d = plots.plot_differential(ax, D, ["A", "B"], "A", "B", diff)
    np.testing.assert_array_equal(d["x"], D[0])
    assert list(d["top_d1"]) == [0] and list(d["top_d2"]) == [2] and d["diagonal"] == (0.0, 5.0)
    res = SimpleNamespace(
        per_concept=pd.DataFrame(
            {"concept": ["n", "g"], "auroc": [0.95, 0.6], "iou": [0.7, 0.2], "best_latent": [3, 1]}
        ),
        recovered_fraction=0.5,
        n_monosemantic=1,
    )
    _, r = plots.plot_recovery(ax, res)
    np.testing.assert_array_equal(r["auroc"], [0.95, 0.6])
    assert "50%" in ax.get_title()


def test_save_figure_stable(tmp_path) -> None:
    def draw(folder):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        out = plots.save_figure(fig, "f", folder)
        plt.close(fig)
        return [p.read_bytes() for p in out]

    a, b = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert a == b and a[1][:4] == b"%PDF" and b"CreationDate" not in a[1]


def test_landscape_draws_latents_without_entropy_grey(ax) -> None:
    stats = SimpleNamespace(
        sparsity=np.array([0.1, 0.2, 0.3]),
        mean_acts=np.array([0.1, 0.2, 0.3]),
        top_entropy=np.array([-1.0, 0.7, 1.4]),  # -1: fewer than k top images
    )
    _, d = plots.plot_landscape(ax, stats, marginals=False)
    assert d["no_entropy"] == 1
    grey, coloured = ax.collections
    np.testing.assert_allclose(grey.get_offsets(), [[-1.0, -1.0]])
    np.testing.assert_allclose(coloured.get_array(), [0.7, 1.4])
    assert coloured.norm.vmin == 0.0  # the scale starts at zero entropy, not at -1
