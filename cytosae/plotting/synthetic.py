"""Plotting helpers for the synthetic-world notebook.

Every function takes Axes (and data or a seed), draws, and returns ``(ax_or_axes, data)`` where
``data`` holds what was drawn.  Every panel is labelled SYNTHETIC.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytosae.synth.celltypes import CELL_TYPES
from cytosae.synth.cohort import BAG_LABELS, Patient, cohort_composition
from cytosae.synth.render import CONCEPTS, render_scene
from cytosae.synth.stains import DOMAINS

LABEL = "SYNTHETIC"


def render_grid(
    cell_types: Sequence[str], domains: Sequence[str], size: int = 128, seed: int = 0
) -> np.ndarray:
    """(rows*size, cols*size, 3) uint8 mosaic: one render per (cell type, domain)."""
    out = np.full((len(cell_types) * size, len(domains) * size, 3), 255, np.uint8)
    for r, ct in enumerate(cell_types):
        for c, dom in enumerate(domains):
            rng = np.random.default_rng([seed, r, c])
            out[r * size : (r + 1) * size, c * size : (c + 1) * size] = render_scene(
                ct, dom, size, rng
            ).paint()
    return out


def plot_gallery(
    ax: Any,
    cell_types: Sequence[str] = CELL_TYPES,
    domains: Sequence[str] = DOMAINS,
    size: int = 128,
    seed: int = 0,
    transpose: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Mosaic of one render per cell type (rows) and stain domain (columns).

    Args:
        transpose: put cell types in columns and domains in rows instead.
    """
    grid = render_grid(cell_types, domains, size, seed)
    rows, cols = list(cell_types), list(domains)
    if transpose:
        grid = (
            grid.reshape(len(rows), size, len(cols), size, 3)
            .transpose(2, 1, 0, 3, 4)
            .reshape(len(cols) * size, len(rows) * size, 3)
        )
        rows, cols = cols, rows
    ax.imshow(grid)
    ax.set_yticks((np.arange(len(rows)) + 0.5) * size)
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xticks((np.arange(len(cols)) + 0.5) * size)
    ax.set_xticklabels(cols, fontsize=7, rotation=90 if transpose else 0)
    ax.tick_params(length=0)
    ax.set_title(f"{LABEL} cells: type x stain domain (procedural renders, not real cells)")
    return ax, {"image": grid, "rows": rows, "cols": cols}


_OVERLAY_DEFAULT = (
    "nucleus",
    "nucleolus",
    "granule_eosinophilic",
    "granule_neutrophilic",
    "granule_basophilic",
    "granule_azurophilic",
    "granule_abnormal_eosinophil",
    "auer_rod",
    "vacuole",
    "hof",
    "projections",
    "red_cell",
    "platelet",
    "smudge",
)


def plot_masks(
    axes: Sequence[Any],
    rgb: np.ndarray,
    masks: np.ndarray,
    concepts: Sequence[str] = _OVERLAY_DEFAULT,
) -> tuple[Sequence[Any], dict[str, Any]]:
    """Image (first axes) and its concept masks overlaid in colour (second axes).

    Args:
        axes: two Axes.
        rgb: (H, W, 3) uint8.
        masks: (n_concepts, H, W) bool in :data:`CONCEPTS` order.
        concepts: which concepts to overlay (those present are drawn).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    present = [c for c in concepts if masks[CONCEPTS.index(c)].any()]
    cmap = plt.get_cmap("tab20")
    over = rgb.astype(np.float32) / 255 * 0.35
    for k, c in enumerate(present):
        m = masks[CONCEPTS.index(c)]
        over[m] = over[m] * 0.3 + np.array(cmap(k % 20)[:3], np.float32) * 0.7
    axes[0].imshow(rgb)
    axes[0].set_title(f"{LABEL} image")
    axes[1].imshow(over)
    axes[1].set_title(f"{LABEL} ground-truth concept masks")
    axes[1].legend(
        handles=[Patch(color=cmap(k % 20), label=c) for k, c in enumerate(present)],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=7,
        frameon=False,
    )
    for a in axes[:2]:
        a.axis("off")
    return axes, {"overlay": over, "concepts": present}


def plot_cohort(
    ax: Any, patients: Sequence[Patient] | pd.DataFrame, top: int = 12
) -> tuple[Any, dict[str, Any]]:
    """Stacked bars of the cell-type fractions per patient, grouped by disease.

    Args:
        patients: the cohort (list of :class:`~cytosae.synth.cohort.Patient`) or its
            :func:`~cytosae.synth.cohort.cohort_composition` table.
        top: show the ``top`` most frequent cell types, the rest as "other types".
    """
    import matplotlib.pyplot as plt

    comp = patients if isinstance(patients, pd.DataFrame) else cohort_composition(list(patients))
    order = {b: i for i, b in enumerate(BAG_LABELS)}
    comp = comp.sort_values(
        ["bag_label", "patient_id"], key=lambda s: s.map(order) if s.name == "bag_label" else s
    )
    types = [c for c in comp.columns if c not in ("patient_id", "bag_label", "subtle")]
    types = sorted(types, key=lambda c: -comp[c].mean())
    shown = types[:top]
    frac = comp[shown].copy()
    frac["other types"] = comp[types[top:]].sum(axis=1) if len(types) > top else 0.0
    x = np.arange(len(comp))
    bottom = np.zeros(len(comp))
    cmap = plt.get_cmap("tab20")
    for k, c in enumerate(frac.columns):
        ax.bar(x, frac[c].to_numpy(), bottom=bottom, color=cmap(k % 20), width=0.85, label=c)
        bottom += frac[c].to_numpy()
    labels = comp["bag_label"].to_numpy()
    for b in BAG_LABELS:
        idx = np.flatnonzero(labels == b)
        if len(idx):
            ax.text(idx.mean(), 1.02, b, ha="center", va="bottom", fontsize=8)
            ax.axvline(idx.max() + 0.5, color="k", lw=0.6)
    ticks = [p + ("*" if s else "") for p, s in zip(comp["patient_id"], comp["subtle"])]
    ax.set_xticks(x)
    ax.set_xticklabels(ticks, rotation=90, fontsize=6)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction of the patient's images")
    ax.set_title(f"{LABEL} AML cohort: cell types per patient (* = subtle patient)", pad=16)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    return ax, {
        "fractions": frac,
        "patients": comp["patient_id"].tolist(),
        "bag_labels": labels.tolist(),
    }


#: file name of the real MLL23 eosinophil shipped as package data (source and licence in
#: ``cytosae/plotting/data/README.md``)
REAL_EOSINOPHIL = "mll23-eosinophil-19-6574.PAP.PB~E.1-1232.tif"


def real_eosinophil_path() -> Path:
    """The real MLL23 eosinophil of the paper's Fig. 3, shipped with the package."""
    return Path(__file__).resolve().parent / "data" / REAL_EOSINOPHIL


def plot_realism(
    axes: Sequence[Any],
    real_path: str | Path | None = None,
    seed: int = 0,
    cell_type: str = "eosinophil",
) -> tuple[Sequence[Any], dict[str, Any]]:
    """The real MLL23 eosinophil beside synthetic renders at 288 px.

    Args:
        axes: the first shows the real image (or a note that it is absent), the others renders.
        real_path: the real image; None: the one shipped with the package
            (:func:`real_eosinophil_path`).
        seed: seed of the renders.
        cell_type: cell type of the renders.
    """
    from PIL import Image

    path = Path(real_path) if real_path is not None else real_eosinophil_path()
    real = None
    if path.is_file():
        with Image.open(path) as im:
            real = np.asarray(im.convert("RGB"))
        axes[0].imshow(real)
        axes[0].set_title("REAL MLL23 eosinophil", fontsize=9)
    else:
        axes[0].text(0.5, 0.5, "real reference image\nnot available", ha="center", va="center")
        axes[0].set_title("real image (absent)", fontsize=9)
    renders = []
    for k, a in enumerate(axes[1:]):
        rgb = render_scene(cell_type, "metafer", 288, np.random.default_rng([seed, k])).paint()
        renders.append(rgb)
        a.imshow(rgb)
        a.set_title(f"{LABEL} {cell_type}", fontsize=9)
    for a in axes:
        a.axis("off")
    return axes, {"real": real, "renders": renders, "real_path": path}
