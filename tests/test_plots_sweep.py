"""The sweep, baseline and UMAP plot functions return exactly the data they draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cytosae.analysis import sweep
from cytosae.plotting import figures
from cytosae.plotting import panels as plots


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def sweep_table() -> pd.DataFrame:
    rows = []
    for i, (setting, paper) in enumerate((("x1", "16"), ("x2", "32"))):
        for seed in (0, 1, 2):
            rows.append(
                {
                    "axis": "expansion",
                    "setting": setting,
                    "paper": paper,
                    "seed": seed,
                    "concepts_-4": 100 * (i + 1) + seed,
                    "concepts_-3": 10 * (i + 1) + seed,
                    "dead_frac": 0.1 * seed,
                    "l0": 5.0 + i,
                }
            )
    return pd.DataFrame(rows)


def test_concept_curves(ax):
    _, d = plots.plot_concept_curves(ax, sweep.long_counts(sweep_table()))
    assert list(d) == ["x1", "x2"]
    np.testing.assert_array_equal(d["x1"]["threshold"], [-4, -3])
    np.testing.assert_allclose(d["x1"]["mean"], [101, 11])
    np.testing.assert_allclose(d["x2"]["sd"], [1, 1])
    assert d["x2"]["n"].tolist() == [3, 3]
    ys = [line.get_ydata() for line in ax.lines if len(line.get_ydata()) == 2]
    assert any(np.allclose(y, [101, 11]) for y in ys)


def test_setting_points_and_paper_values(ax):
    _, d = plots.plot_setting_points(ax, sweep_table(), "concepts_-3")
    assert d["x2"]["values"].tolist() == [20, 21, 22]
    assert d["x2"]["mean"] == 21 and d["x2"]["sd"] == 1
    paper = sweep.paper_ablation()
    rows = paper[paper["axis"] == "l1"]
    fig, ax2 = plt.subplots()
    _, p = plots.plot_paper_values(ax2, rows)
    assert p["setting"] == ["8e-4", "8e-5", "8e-6"]
    np.testing.assert_array_equal(p["mean"][:2], [128, 2936])
    assert np.isnan(p["mean"][2])
    assert [b.get_height() for b in ax2.patches] == [128, 2936, 0]
    assert p["text"][:2] == ["", ""] and "orders" in p["text"][2]  # its note, not a bar
    assert any("orders" in t.get_text() for t in ax2.texts)
    plt.close(fig)


def test_probe_comparison(ax):
    comp = pd.DataFrame(
        {
            "model": ["barcode probe", "embedding baseline (cls)"],
            "f1_mean": [0.6, 0.3],
            "f1_sd": [0.1, 0.05],
            "f1_folds": [(0.5, 0.7), (0.25, 0.35)],
            "majority_rate": [0.2, 0.2],
        }
    )
    _, d = plots.plot_probe_comparison(ax, comp, paper=(0.832, 0.044))
    assert d["model"] == ["barcode probe", "embedding baseline (cls)"]
    assert [b.get_height() for b in ax.patches[:2]] == [0.6, 0.3]
    assert d["majority_rate"] == 0.2 and d["paper"] == (0.832, 0.044)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("0.832 ± 0.044" in t and "REAL" in t for t in labels)
    assert any("majority-class rate 0.20" in t for t in labels)


def test_umap_panel(ax):
    df = pd.DataFrame(
        {"umap_x": [0.0, 1, 2], "umap_y": [1.0, 0, 2], "disease": ["A", "B", "A"], "hl": [1, 0, 0]}
    )
    _, d = plots.plot_umap(ax, df, "disease", highlight="hl")
    np.testing.assert_array_equal(d["x"], [0, 1, 2])
    assert d["hue"].tolist() == ["A", "B", "A"] and d["highlighted"].tolist() == [
        True,
        False,
        False,
    ]
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.c_[d["x"], d["y"]])


def test_ablation_and_recovery_figures_draw_their_inputs():
    t = sweep_table()
    fig, d = figures.ablation_figure(t, "expansion", paper=sweep.paper_ablation(), threshold=-3)
    assert d["concepts"]["x1"]["values"].tolist() == [10, 11, 12]
    np.testing.assert_array_equal(d["paper"]["mean"], [1748, 2170])
    with pytest.raises(ValueError, match="no rows of axis 'lr'"):
        figures.ablation_figure(t, "lr")
    plt.close(fig)
    curve = pd.DataFrame(
        {
            "setting": ["x1", "x2", "x1"],
            "dataset": ["a", "a", "b"],
            "recovered_fraction": [0.5, 0.7, 0.6],
        }
    )
    per = pd.DataFrame(
        {
            "concept": ["u", "v"],
            "auroc": [0.95, 0.6],
            "linear_auroc": [0.99, 0.8],
            "n_positive": [100, 20],
        }
    )
    fig, d = figures.recovery_limits_figure(curve, per, ceiling={"a": 0.8})
    assert d["curve"]["a"] == (["x1", "x2"], [0.5, 0.7]) and d["ceiling"] == {"a": 0.8}
    assert np.isnan(d["curve"]["b"][1][1])
    plt.close(fig)


def test_barcode_clustermap_reorders_but_keeps_the_data():
    rng = np.random.default_rng(0)
    X = rng.poisson(2, (8, 30)).astype(float)
    patients = pd.DataFrame({"patient": [f"p{i}" for i in range(8)], "disease": ["A", "B"] * 4})
    fig, d = figures.barcode_clustermap_figure(X, patients, n_latents=10)
    rows = [int(p[1:]) for p in d["patients"]]
    M = np.log1p(X[np.ix_(rows, d["latents"])])
    lo, hi = M.min(0), M.max(0)
    np.testing.assert_allclose(d["matrix"], (M - lo) / (hi - lo))  # scaled per latent
    assert sorted(rows) == list(range(8)) and len(set(d["latents"])) == 10
    plt.close(fig)
