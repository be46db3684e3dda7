"""Image regression of the figure composers, drawn from small deterministic inputs (no pipeline).

Each test renders one composer, saves a PNG at a fixed dpi and compares it with the committed
baseline in ``tests/baseline_images/`` (``matplotlib.testing.compare.compare_images``, RMS
tolerance :data:`TOL`). Regenerate every baseline after an intended change with::

    CYTOSAE_UPDATE_BASELINES=1 python -m pytest tests/test_figures.py

and look at the new images before committing them.
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

from cytosae.analysis.differential import differential_latents
from cytosae.analysis.thresholds import concept_counts
from cytosae.plotting import figures

BASELINES = Path(__file__).resolve().parent / "baseline_images"
UPDATE = os.environ.get("CYTOSAE_UPDATE_BASELINES") == "1"
DPI = 40
TOL = 2.0
TAG = "SYNTHETIC test data"


@pytest.fixture(autouse=True)
def pinned_style() -> Iterator[None]:
    """Matplotlib's defaults with the font pinned (DejaVu Sans ships with matplotlib)."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(
            {
                "font.family": "DejaVu Sans",
                "font.size": 9,
                "figure.dpi": DPI,
                "savefig.dpi": DPI,
                "svg.hashsalt": "cytosae",
            }
        )
        yield
    plt.close("all")


def check_image(fig: Any, name: str, tmp_path: Path) -> None:
    """Save ``fig`` and compare it with ``baseline_images/<name>.png`` (or rewrite the baseline)."""
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    baseline = BASELINES / f"{name}.png"
    if UPDATE:
        BASELINES.mkdir(exist_ok=True)
        baseline.write_bytes(out.read_bytes())
        return
    assert baseline.is_file(), (
        f"no baseline {baseline}; create it with CYTOSAE_UPDATE_BASELINES=1 "
        "python -m pytest tests/test_figures.py"
    )
    err = compare_images(str(baseline), str(out), tol=TOL)
    assert err is None, err


# ---------------------------------------------------------------------------------- inputs
def image(i: int, size: int = 32) -> np.ndarray:
    """A small deterministic RGB image, different for every ``i``."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([(x * 8 + 40 * i) % 256, (y * 8) % 256, np.full_like(x, (60 * i) % 256)], -1)
    return rgb.astype(np.uint8)


IMAGES = {f"img{i}.png": image(i) for i in range(12)}


def loader(path: str) -> np.ndarray:
    return IMAGES[path]


def stats(n: int = 60) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    mean = 10 ** rng.uniform(-4, 0.5, n)
    mean[:3] = np.nan
    sparsity = np.where(np.isnan(mean), 0.0, 10 ** rng.uniform(-3, 0, n))
    return SimpleNamespace(sparsity=sparsity, mean_acts=mean, top_entropy=rng.uniform(0, 2, n))


def history(dead_end: float = 0.3) -> pd.DataFrame:
    step = np.arange(0, 100, 10)
    return pd.DataFrame(
        {
            "step": step,
            "mse": 1 / (1 + step / 20),
            "l0": 40 - step / 5,
            "explained_variance": 1 - 1 / (1 + step / 30),
            "dead_frac": dead_end * step / 90,
        }
    )


def references(latents: list[int], datasets: list[str], n: int) -> pd.DataFrame:
    rows = []
    for s in latents:
        for d in datasets:
            for k in range(n):
                i = (3 * s + 5 * len(d) + k) % len(IMAGES)
                rows.append(
                    {
                        "latent": s,
                        "dataset": d,
                        "rank": k,
                        "image_index": i,
                        "activation": 1.0 / (k + 1) + s / 10,
                        "label": f"celltype_{i}_long_name",
                        "path": f"img{i}.png",
                    }
                )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- tests
def test_training_curves(tmp_path: Path) -> None:
    h = history()
    fig, data = figures.training_curves(h, tag=TAG)
    np.testing.assert_array_equal(data["l0"], h["l0"])
    assert fig.get_suptitle() == f"SAE training ({TAG})"
    check_image(fig, "training_curves", tmp_path)


def test_ghost_grads_comparison(tmp_path: Path) -> None:
    fig, data = figures.ghost_grads_comparison(history(0.3), history(0.9), tag=TAG)
    assert data["no ghost grads"][1][-1] == pytest.approx(0.9)
    check_image(fig, "ghost_grads_comparison", tmp_path)


def test_landscape_figure(tmp_path: Path) -> None:
    st = stats()
    counts = concept_counts(st.mean_acts, thresholds=range(-4, 1))
    fig, data = figures.landscape_figure(st, counts, threshold=-2, dataset="toy", tag=TAG)
    assert len(data["landscape"]["latent"]) == 57
    np.testing.assert_array_equal(data["counts"]["n_concepts"], counts["n_concepts"])
    check_image(fig, "landscape_figure", tmp_path)


def test_reference_image_grid(tmp_path: Path) -> None:
    refs = references([3, 7], ["acevedo", "bmc"], 2).iloc[:-1]  # one slot left blank
    fig, data = figures.reference_image_grid(
        refs, loader, n_images=3, row_order=[3, 7], group_order=["acevedo", "bmc"], title=TAG
    )
    cells = data["cells"]
    assert len(cells) == 7 and cells["title"].iloc[0].startswith("acevedo\ncelltype_")
    assert cells["title"].iloc[1].startswith("\n")  # the group name only over its first image
    assert not data["axes"][0, 2].images  # the third slot of a group is blank
    check_image(fig, "reference_image_grid", tmp_path)


def test_patch_retrieval_figure(tmp_path: Path) -> None:
    refs = references([3, 7], ["mll23", "bmc"], 2)

    def patch_map(dataset: str, image_index: int, latent: int) -> np.ndarray:
        return np.sin(np.arange(257) * (image_index + 1) / 17.0 + latent).clip(0)

    fig, data = figures.patch_retrieval_figure(
        image(0, 64),
        patch=37,
        refs=refs,
        patch_map=patch_map,
        image_loader=loader,
        latents=[3, 7],
        datasets=["mll23", "bmc"],
        n_images=3,
        tag=TAG,
    )
    assert len(data["maps"]) == 8 and data["query"]["patch"] == 37
    check_image(fig, "patch_retrieval_figure", tmp_path)


def test_barcode_and_probe_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.gamma(1.0, 1.0, (6, 20))
    patients = pd.DataFrame(
        {"patient": [f"p{i}" for i in range(6)], "disease": ["B", "A", "C", "A", "B", "C"]}
    )
    D = np.stack([X[patients["disease"] == d].mean(0) for d in "ABC"])
    fig, data = figures.barcode_figure(X, patients, D, list("ABC"), n_latents=8, tag=TAG)
    assert data["patients"]["rows"][:2] == ["p1 (A)", "p3 (A)"] and len(data["latents"]) == 8
    check_image(fig, "barcode_figure", tmp_path)
    sweep = pd.DataFrame(
        {
            "threshold": [-3.0, -2.0, -1.0, 0.0],
            "f1_mean": [0.8, 0.75, 0.6, 0.3],
            "f1_sd": [0.05, 0.1, 0.1, 0.2],
            "n_latents_kept": [20, 12, 5, 1],
        }
    )
    confusion = pd.DataFrame(
        [[2, 0, 0], [1, 1, 0], [0, 0, 2]], index=list("ABC"), columns=list("ABC")
    )
    fig, data = figures.probe_figure(sweep, confusion, threshold=-2, tag=TAG)
    np.testing.assert_array_equal(data["confusion"]["matrix"], confusion.to_numpy())
    check_image(fig, "probe_figure", tmp_path)


def test_differential_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    D = rng.gamma(1.0, 1.0, (2, 30))
    diff = differential_latents(D, ["A", "B"], "A", "B", n=10)
    shown = diff.groupby("direction").head(2)
    refs = pd.concat(
        [
            references([s], ["hehr"], 3).assign(direction=d)
            for d, s in zip(shown["direction"], shown["latent"])
        ],
        ignore_index=True,
    )
    fig, data = figures.differential_figure(
        D, ["A", "B"], "A", "B", diff, refs, loader, n_show=2, n_images=3, tag=TAG
    )
    assert data["references"]["rows"] == list(zip(shown["direction"], shown["latent"]))
    assert len(data["scatter"]["top_d1"]) == (diff["direction"] == "d1>d2").sum()
    check_image(fig, "differential_figure", tmp_path)


def test_recovery_figure(tmp_path: Path) -> None:
    def result(shift: float) -> SimpleNamespace:
        per = pd.DataFrame(
            {
                "concept": ["nucleus", "granule", "auer_rod", "vacuole"],
                "auroc": [0.97 - shift, 0.92, 0.7, 0.5 + shift],
                "iou": [0.8, 0.5 - shift, 0.2, 0.1],
                "best_latent": [4, 9, 1, 0],
            }
        )
        return SimpleNamespace(per_concept=per, recovered_fraction=0.5, n_monosemantic=2)

    fig, data = figures.recovery_figure({"mll23": result(0.0), "bmc": result(0.1)}, tag=TAG)
    assert list(data) == ["mll23", "bmc"]
    check_image(fig, "recovery_figure", tmp_path)


def test_synthetic_world_figures(tmp_path: Path) -> None:
    fig, data = figures.gallery_figure(
        cell_types=["eosinophil", "lymphocyte"],
        domains=["metafer", "cellavision"],
        size=32,
        figsize=(3, 3),
    )
    assert data["image"].shape == (64, 64, 3)
    check_image(fig, "gallery_figure", tmp_path)
    fig, data = figures.realism_figure(n_renders=1)
    assert data["real"].shape == (288, 288, 3) and data["real_path"].is_file()
    check_image(fig, "realism_figure", tmp_path)
