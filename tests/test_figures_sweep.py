"""Image regression of the sweep, baseline, UMAP and recovery-limit composers (no pipeline).

As ``tests/test_figures.py``: each composer is drawn from small deterministic inputs, saved at a
fixed dpi and compared with ``tests/baseline_images/<name>.png`` (RMS tolerance :data:`TOL`).
Regenerate after an intended change with
``CYTOSAE_UPDATE_BASELINES=1 python -m pytest tests/test_figures_sweep.py`` and look at them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images

from cytosae.analysis import sweep
from cytosae.plotting import figures

BASELINES = Path(__file__).resolve().parent / "baseline_images"
UPDATE = os.environ.get("CYTOSAE_UPDATE_BASELINES") == "1"
DPI = 40
TOL = 2.0
TAG = "SYNTHETIC test data"


@pytest.fixture(autouse=True)
def pinned_style() -> Iterator[None]:
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(
            {"font.family": "DejaVu Sans", "font.size": 9, "figure.dpi": DPI, "savefig.dpi": DPI}
        )
        yield
    plt.close("all")


def check_image(fig: Any, name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    baseline = BASELINES / f"{name}.png"
    if UPDATE:
        baseline.write_bytes(out.read_bytes())
        return
    assert baseline.is_file(), f"no baseline {baseline}; create it with CYTOSAE_UPDATE_BASELINES=1"
    err = compare_images(str(baseline), str(out), tol=TOL)
    assert err is None, err


def stats(n: int, seed: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    mean = 10 ** rng.uniform(-4, 0.5, n)
    mean[:3] = np.nan
    sparsity = np.where(np.isnan(mean), 0.0, 10 ** rng.uniform(-3, 0, n))
    return SimpleNamespace(
        sparsity=sparsity, mean_acts=mean, top_entropy=rng.uniform(0, 2, n), d_sae=n
    )


def table() -> pd.DataFrame:
    rows = []
    for axis, settings in (
        ("expansion", [("x1", "16"), ("x2", "32")]),
        ("l1", [("8e-4", "8e-4"), ("8e-5", "8e-5")]),
    ):
        for i, (setting, paper) in enumerate(settings):
            for seed in (42, 43, 44):
                st = stats(40 * (i + 1), seed)
                v = sweep.Variant(axis, setting, paper, seed, (("sae.seed", seed),))
                h = pd.DataFrame(
                    {
                        "dead_frac": [0.1 * i + 0.01 * seed % 3],
                        "l0": [5.0 + 3 * i + seed % 2],
                        "explained_variance": [0.9],
                    }
                )
                rows.append(sweep.sweep_row(v, st, h))
    return pd.DataFrame(rows)


def test_expansion_figure(tmp_path: Path) -> None:
    t = table()
    t = t[t["axis"] == "expansion"]
    by = {"x1": stats(40, 42), "x2": stats(80, 42)}
    fig, data = figures.expansion_figure(by, t, threshold=-3, dataset="toy", note="a note", tag=TAG)
    assert set(data["landscapes"]) == {"x1", "x2"} and data["curves"]["x2"]["n"].tolist() == [3] * 7
    check_image(fig, "expansion_figure", tmp_path)


def test_published_landscape_figure(tmp_path: Path) -> None:
    fig, data = figures.published_landscape_figure(
        {"a": stats(50, 1), "b": stats(50, 2)}, source="toy source"
    )
    assert data["table"].shape == (7, 2) and data["table"].loc[-6.0, "a"] == 47
    check_image(fig, "published_landscape_figure", tmp_path)


def test_ablation_figure(tmp_path: Path) -> None:
    fig, data = figures.ablation_figure(
        table(), "l1", paper=sweep.paper_ablation(), note="a note", tag=TAG
    )
    np.testing.assert_array_equal(data["paper"]["mean"], [128, 2936])
    check_image(fig, "ablation_figure", tmp_path)


def test_probe_baseline_figure(tmp_path: Path) -> None:
    comp = pd.DataFrame(
        {
            "model": ["barcode probe", "embedding baseline (cls)"],
            "f1_mean": [0.62, 0.41],
            "f1_sd": [0.1, 0.08],
            "f1_folds": [(0.5, 0.6, 0.7, 0.55, 0.75), (0.3, 0.4, 0.5, 0.45, 0.4)],
            "majority_rate": [0.2, 0.2],
        }
    )
    fig, data = figures.probe_baseline_figure(comp, tag=TAG)
    assert data["paper"] == (0.832, 0.044)
    check_image(fig, "probe_baseline_figure", tmp_path)


def test_umap_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pm = pd.DataFrame(
        {"umap_x": rng.normal(size=12), "umap_y": rng.normal(size=12), "disease": list("ABC") * 4}
    )
    lm = pd.DataFrame(
        {
            "umap_x": rng.normal(size=20),
            "umap_y": rng.normal(size=20),
            "cluster": np.arange(20) % 4,
            "sampled": np.arange(20) % 5 == 0,
        }
    )
    fig, data = figures.umap_figure(pm, lm, tag=TAG)
    assert data["latents"]["highlighted"].sum() == 4
    check_image(fig, "umap_figure", tmp_path)


def test_recovery_limits_figure(tmp_path: Path) -> None:
    curve = pd.DataFrame(
        {
            "setting": ["x1", "x2", "x4"] * 2,
            "dataset": ["a"] * 3 + ["b"] * 3,
            "recovered_fraction": [0.6, 0.65, 0.62, 0.5, 0.55, 0.6],
        }
    )
    per = pd.DataFrame(
        {
            "concept": ["u", "v", "w"],
            "auroc": [0.95, 0.6, 0.85],
            "linear_auroc": [0.99, 0.92, 0.8],
            "n_positive": [1000, 200, 30],
        }
    )
    fig, data = figures.recovery_limits_figure(curve, per, ceiling={"a": 0.76}, tag=TAG)
    assert data["ceiling"] == {"a": 0.76}
    check_image(fig, "recovery_limits_figure", tmp_path)


def test_barcode_clustermap_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.gamma(1.0, 2.0, (10, 30))
    patients = pd.DataFrame({"patient": [f"p{i}" for i in range(10)], "disease": list("AB") * 5})
    fig, data = figures.barcode_clustermap_figure(X, patients, n_latents=12, tag=TAG)
    assert data["matrix"].shape == (10, 12)
    check_image(fig, "barcode_clustermap_figure", tmp_path)
