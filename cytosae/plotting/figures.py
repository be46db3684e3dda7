"""Figure composers: one function per figure of the notebooks.

A composer builds a whole figure (a pyplot figure, so a notebook shows it) from data that is
already loaded, or from small loader callables (``image_loader(path) -> array``,
``patch_map(dataset, image_index, latent) -> activations``), and returns ``(fig, data)`` where
``data`` holds what was drawn. None takes a :class:`~cytosae.workflow.pipeline.Pipeline`, so each
can be drawn from synthetic inputs in a test (``tests/test_figures.py``). Single panels are in
:mod:`cytosae.plotting.panels` (and :mod:`cytosae.plotting.synthetic` for the synthetic world);
composers lay them out.

``tag`` is the run's label (``Pipeline.tag()``, e.g. "SYNTHETIC data, random-init DinoBloom"):
titles end with it in parentheses, and without it they end after the figure's name.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cytosae.plotting import panels

__all__ = [
    "barcode_figure",
    "cohort_figure",
    "differential_figure",
    "gallery_figure",
    "ghost_grads_comparison",
    "landscape_figure",
    "masks_figure",
    "patch_retrieval_figure",
    "probe_figure",
    "realism_figure",
    "recovery_figure",
    "reference_image_grid",
    "training_curves",
]

#: the training metrics drawn by :func:`training_curves`
TRAINING_CURVES = ("mse", "l0", "explained_variance", "dead_frac")


def _title(name: str, tag: str) -> str:
    return f"{name} ({tag})" if tag else name


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _synth_panels() -> Any:
    """:mod:`cytosae.plotting.synthetic`, loaded by the synthetic world's figures only: the real
    path never imports :mod:`cytosae.synth`."""
    from cytosae.plotting import synthetic

    return synthetic


# ---------------------------------------------------------------------- 00: the synthetic world
def gallery_figure(
    *,
    cell_types: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
    size: int = 112,
    seed: int = 0,
    figsize: tuple[float, float] = (7.5, 22),
) -> tuple[Any, dict[str, Any]]:
    """The synthetic gallery: one render per cell type (rows) and stain domain (columns).

    Args:
        cell_types: rows (default: every cell type of the synthetic world).
        domains: columns (default: every stain domain).
        size: pixels per render.
        seed: seed of the renders.
        figsize: figure size in inches.

    Returns:
        The figure and :func:`~cytosae.plotting.synthetic.plot_gallery`'s data (``image``,
        ``rows``, ``cols``).
    """
    from cytosae.synth.celltypes import CELL_TYPES
    from cytosae.synth.stains import DOMAINS

    fig, ax = _plt().subplots(figsize=figsize)
    _, data = _synth_panels().plot_gallery(
        ax,
        CELL_TYPES if cell_types is None else cell_types,
        DOMAINS if domains is None else domains,
        size=size,
        seed=seed,
    )
    return fig, data


def realism_figure(
    real_path: str | Path | None = None,
    *,
    n_renders: int = 3,
    seed: int = 0,
    cell_type: str = "eosinophil",
) -> tuple[Any, dict[str, Any]]:
    """The real MLL23 eosinophil (shipped with the package) beside synthetic renders.

    Args:
        real_path: the real image (None: the packaged one,
            :func:`~cytosae.plotting.synthetic.real_eosinophil_path`).
        n_renders: synthetic renders beside it.
        seed: seed of the renders.
        cell_type: cell type of the renders.

    Returns:
        The figure and :func:`~cytosae.plotting.synthetic.plot_realism`'s data (``real``,
        ``renders``, ``real_path``).
    """
    fig, axes = _plt().subplots(1, 1 + n_renders, figsize=(2.5 * (1 + n_renders), 2.8))
    _, data = _synth_panels().plot_realism(axes, real_path, seed=seed, cell_type=cell_type)
    return fig, data


def masks_figure(rgb: np.ndarray, masks: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """One synthetic image beside its ground-truth concept masks.

    Args:
        rgb: (H, W, 3) uint8 image.
        masks: (n_concepts, H, W) bool masks in :data:`cytosae.synth.render.CONCEPTS` order.

    Returns:
        The figure and :func:`~cytosae.plotting.synthetic.plot_masks`'s data (``overlay``,
        ``concepts``).
    """
    fig, axes = _plt().subplots(1, 2, figsize=(7, 3.6))
    _, data = _synth_panels().plot_masks(axes, rgb, masks)
    return fig, data


def cohort_figure(patients: Any, *, top: int = 12) -> tuple[Any, dict[str, Any]]:
    """The AML Hehr-like cohort: each patient's cell-type make-up, grouped by disease.

    Args:
        patients: the cohort (list of :class:`~cytosae.synth.cohort.Patient`) or its
            composition table.
        top: cell types shown by name (the rest as "other types").

    Returns:
        The figure and :func:`~cytosae.plotting.synthetic.plot_cohort`'s data.
    """
    fig, ax = _plt().subplots(figsize=(11, 3.6))
    _, data = _synth_panels().plot_cohort(ax, patients, top=top)
    return fig, data


# ----------------------------------------------------------------------------- 01: training
def training_curves(
    history: pd.DataFrame,
    columns: Sequence[str] = TRAINING_CURVES,
    *,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Training metrics against the step, one panel per metric.

    Args:
        history: the logged metrics (``step`` and the ``columns``), one row per log step.
        columns: metrics drawn, left to right.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"step": steps, <metric>: values, ...}``.
    """
    fig, axes = _plt().subplots(1, len(columns), figsize=(3 * len(columns), 2.8), squeeze=False)
    step = history["step"].to_numpy()
    data: dict[str, Any] = {"step": step}
    for ax, col in zip(axes[0], columns):
        data[col] = history[col].to_numpy()
        ax.plot(history["step"], history[col])
        ax.set_xlabel("step")
        ax.set_title(col)
    fig.suptitle(_title("SAE training", tag), y=1.05)
    return fig, data


def ghost_grads_comparison(
    with_ghost: pd.DataFrame, without_ghost: pd.DataFrame, *, tag: str = ""
) -> tuple[Any, dict[str, Any]]:
    """Dead fraction against the step, with and without ghost grads.

    Args:
        with_ghost: training history of the run with ghost grads (the paper's).
        without_ghost: the same run without them.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{label: (steps, dead fractions)}`` per line.
    """
    fig, ax = _plt().subplots(figsize=(4.5, 3))
    data: dict[str, Any] = {}
    for label, h in (("ghost grads (paper)", with_ghost), ("no ghost grads", without_ghost)):
        ax.plot(h["step"], h["dead_frac"], label=label)
        data[label] = (h["step"].to_numpy(), h["dead_frac"].to_numpy())
    ax.set_xlabel("step")
    ax.set_ylabel("dead fraction")
    ax.legend()
    ax.set_title(_title("dead latents", tag), fontsize=9)
    return fig, data


# ---------------------------------------------------------------------- 02: the landscape
def landscape_figure(
    stats: Any,
    counts: pd.DataFrame,
    *,
    threshold: float | None = None,
    dataset: str = "",
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 2A: the latent landscape with marginals, and the number of concepts per threshold.

    Args:
        stats: ``LatentStats`` (``sparsity``, ``mean_acts``, ``top_entropy``).
        counts: :func:`~cytosae.analysis.thresholds.concept_counts` (``threshold``,
            ``n_concepts``).
        threshold: the profile's concept threshold, marked on the counts (None: not marked).
        dataset: the dataset's name, for the title.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"landscape": plot_landscape's data, "counts": plot_concept_counts's}``.
    """
    fig, (ax, ax_counts) = _plt().subplots(
        1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.4, 1], "wspace": 0.55}
    )
    _, landscape = panels.plot_landscape(ax, stats, marginals=True)
    _, drawn_counts = panels.plot_concept_counts(ax_counts, counts)
    if threshold is not None:
        ax_counts.axvline(threshold, color="0.6", ls="--", lw=0.8)
    name = f"Fig. 2A latent landscape, {dataset}" if dataset else "Fig. 2A latent landscape"
    fig.suptitle(_title(name, tag), fontsize=10, y=1.08)
    return fig, {"landscape": landscape, "counts": drawn_counts}


# ------------------------------------------------------------------- 03 and 06: references
def _row_keys(refs: pd.DataFrame, rows: str | Sequence[str]) -> list[Any]:
    """The distinct values of the ``rows`` column(s) of ``refs``, in order of appearance."""
    cols = [rows] if isinstance(rows, str) else list(rows)
    if not len(refs):
        return []
    keys = refs[cols].drop_duplicates()
    return [k[0] if isinstance(rows, str) else tuple(k) for k in keys.itertuples(index=False)]


def _select(refs: pd.DataFrame, rows: str | Sequence[str], key: Any) -> pd.DataFrame:
    """The rows of ``refs`` whose ``rows`` column(s) equal ``key`` (a tuple for several)."""
    if not len(refs):
        return refs
    cols = [rows] if isinstance(rows, str) else list(rows)
    vals = [key] if isinstance(rows, str) else list(key)
    keep = np.ones(len(refs), dtype=bool)
    for c, v in zip(cols, vals):
        keep &= (refs[c] == v).to_numpy()
    return refs[keep]


def reference_image_grid(
    refs: pd.DataFrame,
    image_loader: Callable[[Any], np.ndarray],
    *,
    n_images: int,
    rows: str | Sequence[str] = "latent",
    row_order: Sequence[Any] | None = None,
    groups: str | None = "dataset",
    group_order: Sequence[str] | None = None,
    row_label: Callable[[Any], str] = "latent {}".format,
    row_label_style: Literal["vertical", "left"] = "vertical",
    label_chars: int | None = 14,
    activations: bool = True,
    group_titles: bool = True,
    title: str | None = None,
    axes: np.ndarray | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Reference images in a grid: one row per latent, ``n_images`` columns per group (dataset).

    Fig. 2B (notebook 03) draws it on a figure of its own; Fig. 5 (notebook 06) on the right part
    of its grid (``axes``).

    Args:
        refs: one row per reference image, in rank order within a (row, group): the ``rows``
            column(s), the ``groups`` column, ``path``, ``label`` and ``activation`` (e.g.
            :func:`~cytosae.analysis.retrieval.reference_table`).
        image_loader: ``path -> (H, W, 3) array``.
        n_images: image slots per group (extra slots are blanked).
        rows: the column(s) whose values make the rows (several: tuples).
        row_order: the rows drawn, top to bottom (default: their order in ``refs``); a row with
            no image is drawn blank.
        groups: the column of the column groups (None: one group).
        group_order: the groups, left to right (default: their order in ``refs``).
        row_label: ``row key -> text`` written left of each row.
        row_label_style: ``"vertical"`` (rotated, Fig. 2B) or ``"left"`` (right-aligned, Fig. 5).
        label_chars: truncate image labels to this many characters (None: whole).
        activations: add each image's activation to its title.
        group_titles: put the group's name above the first image of the first row.
        title: the figure's title (None: none).
        axes: (n_rows, n_groups * n_images) Axes to draw on (None: a new figure).

    Returns:
        The figure and ``{"rows", "groups", "cells", "axes"}``; ``cells`` has one row per image
        drawn: ``row``, ``group``, ``slot``, ``path``, ``title``.
    """
    row_keys = list(row_order) if row_order is not None else _row_keys(refs, rows)
    if groups is None:
        group_keys: list[Any] = [None]
    elif group_order is not None:
        group_keys = list(group_order)
    else:
        group_keys = list(pd.unique(refs[groups])) if len(refs) else []
    n_cols = len(group_keys) * n_images
    if axes is None:
        fig, axes = _plt().subplots(
            len(row_keys), n_cols, figsize=(1.1 * n_cols, 1.3 * len(row_keys)), squeeze=False
        )
    else:
        axes = np.asarray(axes, dtype=object).reshape(len(row_keys), n_cols)
        fig = axes[0, 0].figure
    if row_label_style == "vertical":
        label_style: dict[str, Any] = {"rotation": 90, "fontsize": 8}
        label_x = -0.25
    elif row_label_style == "left":
        label_style, label_x = {"ha": "right", "fontsize": 6}, -0.15
    else:
        raise ValueError(f"row_label_style must be 'vertical' or 'left', got {row_label_style!r}")
    cells = []
    for r, key in enumerate(row_keys):
        of_row = _select(refs, rows, key)
        for c, g in enumerate(group_keys):
            sub = of_row if groups is None else of_row[(of_row[groups] == g).to_numpy()]
            sub = sub.head(n_images)
            titles = []
            for j, (lab, act) in enumerate(zip(sub["label"], sub["activation"])):
                parts = []
                if group_titles:  # the group's name over its first image of the first row
                    parts.append(str(g) if r == 0 and j == 0 else "")
                parts.append(str(lab) if label_chars is None else str(lab)[:label_chars])
                if activations:
                    parts.append(f"{act:.2f}")
                titles.append("\n".join(parts))
            imgs = [np.asarray(image_loader(p)) for p in sub["path"]]
            panels.plot_reference_images(axes[r, c * n_images : (c + 1) * n_images], imgs, titles)
            cells += [
                {"row": key, "group": g, "slot": j, "path": p, "title": t}
                for j, (p, t) in enumerate(zip(sub["path"], titles))
            ]
        axes[r, 0].text(
            label_x,
            0.5,
            row_label(key),
            transform=axes[r, 0].transAxes,
            va="center",
            **label_style,
        )
    if title is not None:
        fig.suptitle(title, y=1.02)
    return fig, {
        "rows": row_keys,
        "groups": group_keys,
        "cells": pd.DataFrame(cells, columns=["row", "group", "slot", "path", "title"]),
        "axes": axes,
    }


# ------------------------------------------------------------------------ 04: retrieval
def patch_retrieval_figure(
    query_image: Any,
    patch: int,
    refs: pd.DataFrame,
    patch_map: Callable[[str, int, int], np.ndarray],
    image_loader: Callable[[Any], np.ndarray],
    *,
    latents: Sequence[int],
    datasets: Sequence[str],
    n_images: int,
    mode: str = "scaled",
    grid: int = 16,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 3: the query patch, then each latent's segmentation maps over its reference images.

    One row per latent: the query image with its patch outlined, then ``n_images`` segmentation
    maps per dataset (:func:`~cytosae.plotting.panels.plot_segmentation`).

    Args:
        query_image: the query image (PIL image or (H, W, 3) array).
        patch: the query patch, 0-based row-major on the ``grid`` x ``grid`` grid.
        refs: reference images, one row per image in rank order: ``latent``, ``dataset``,
            ``image_index``, ``label``, ``path`` (:func:`~cytosae.analysis.retrieval.reference_table`).
        patch_map: ``(dataset, image_index, latent) -> (T,) activations`` of the latent over the
            image's tokens (CLS first; e.g. :func:`~cytosae.analysis.retrieval.latent_patch_map`).
        image_loader: ``path -> image``.
        latents: the rows, top to bottom.
        datasets: the column groups, left to right.
        n_images: maps per dataset (extra slots blanked).
        mode: ``"scaled"`` (paper) or ``"binary"`` (the official code), see
            :func:`~cytosae.analysis.retrieval.segmentation_map`.
        grid: patches per side.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"latents", "datasets", "query", "maps"}``; ``maps`` has one row per
        map drawn: ``latent``, ``dataset``, ``slot``, ``image_index``, ``path``, ``image``.
    """
    from matplotlib.patches import Rectangle

    latents = [int(s) for s in latents]
    n_cols = 1 + len(datasets) * n_images
    fig, axes = _plt().subplots(
        len(latents), n_cols, figsize=(1.25 * n_cols, 1.5 * len(latents)), squeeze=False
    )
    img = np.asarray(query_image)
    h, w = img.shape[0] / grid, img.shape[1] / grid
    maps = []
    for r, latent in enumerate(latents):
        ax = axes[r, 0]
        ax.imshow(img)
        ax.add_patch(
            Rectangle(
                ((patch % grid) * w, (patch // grid) * h), w, h, fill=False, ec="yellow", lw=1.5
            )
        )
        ax.set_title(f"query patch {patch}\nlatent {latent}", fontsize=7)
        ax.axis("off")
        for c, d in enumerate(datasets):
            sub = _select(refs, ["latent", "dataset"], (latent, d)).head(n_images)
            for j, row in enumerate(sub.itertuples(index=False)):
                acts = patch_map(d, int(row.image_index), latent)
                _, seg = panels.plot_segmentation(
                    axes[r, 1 + c * n_images + j],
                    acts,
                    image_loader(row.path),
                    mode=mode,
                    title=f"{d}\n{str(row.label)[:14]}",
                )
                maps.append(
                    {
                        "latent": latent,
                        "dataset": d,
                        "slot": j,
                        "image_index": int(row.image_index),
                        "path": row.path,
                        "image": seg["image"],
                    }
                )
            for j in range(len(sub), n_images):
                axes[r, 1 + c * n_images + j].axis("off")
    fig.suptitle(_title("Fig. 3 patch retrieval", tag), y=1.03)
    return fig, {
        "latents": latents,
        "datasets": list(datasets),
        "query": {"image": img, "patch": int(patch)},
        "maps": pd.DataFrame(
            maps, columns=["latent", "dataset", "slot", "image_index", "path", "image"]
        ),
    }


# ------------------------------------------------------------------ 05: barcodes and probe
def barcode_figure(
    patient_barcodes: np.ndarray,
    patients: pd.DataFrame,
    disease_barcodes: np.ndarray,
    diseases: Sequence[str],
    *,
    n_latents: int = 64,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 4 barcodes: patients (sorted by disease) and diseases over the most variable latents.

    Args:
        patient_barcodes: (n_patients, n_latents) barcodes.
        patients: one row per barcode: ``patient``, ``disease``.
        disease_barcodes: (n_diseases, n_latents) barcodes.
        diseases: the disease of each row of ``disease_barcodes``.
        n_latents: how many latents to draw: those of largest variance over the patients.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"order": patient row order, "latents": latents drawn, "patients":
        plot_barcode's data, "diseases": plot_barcode's data}``.
    """
    X = np.asarray(patient_barcodes)
    order = np.argsort(patients["disease"].to_numpy(), kind="stable")
    top = np.argsort(-X.var(0), kind="stable")[:n_latents]
    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1.2]})
    _, drawn_p = panels.plot_barcode(
        a1,
        X[order],
        [f"{p} ({d})" for p, d in patients[["patient", "disease"]].to_numpy()[order]],
        latents=top,
    )
    a1.set_title(f"patient barcodes ({n_latents} most variable latents)", fontsize=9)
    _, drawn_d = panels.plot_barcode(a2, disease_barcodes, [str(d) for d in diseases], latents=top)
    a2.set_title("disease barcodes", fontsize=9)
    fig.suptitle(_title("Barcodes", tag))
    return fig, {"order": order, "latents": top, "patients": drawn_p, "diseases": drawn_d}


def probe_figure(
    sweep: pd.DataFrame, confusion: pd.DataFrame, *, threshold: float, tag: str = ""
) -> tuple[Any, dict[str, Any]]:
    """Fig. 4A-B: the probe's weighted F1 against the threshold, and its confusion matrix.

    Args:
        sweep: :func:`~cytosae.analysis.probe.sweep` (``threshold``, ``f1_mean``, ``f1_sd``,
            ``n_latents_kept``).
        confusion: confusion matrix at ``threshold`` (rows true, columns predicted).
        threshold: the threshold of the confusion matrix, for its title.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"sweep": plot_probe_sweep's data, "confusion": plot_confusion's}``.
    """
    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(10, 3.6))
    _, drawn_s = panels.plot_probe_sweep(a1, sweep)
    a1.set_title("Fig. 4A weighted F1 vs threshold", fontsize=9)
    _, drawn_c = panels.plot_confusion(a2, confusion)
    a2.set_title(f"Fig. 4B confusion at {threshold}", fontsize=9)
    fig.suptitle(_title("AML-subtype probe on barcodes", tag), y=1.02)
    fig.tight_layout()
    return fig, {"sweep": drawn_s, "confusion": drawn_c}


# ---------------------------------------------------------------------- 06: differential
def differential_figure(
    disease_barcodes: np.ndarray,
    diseases: Sequence[str],
    d1: str,
    d2: str,
    diff: pd.DataFrame,
    refs: pd.DataFrame,
    image_loader: Callable[[Any], np.ndarray],
    *,
    n_show: int,
    n_images: int,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 5: d1 against d2 barcodes (left), the differential latents' reference images (right).

    Args:
        disease_barcodes: (n_diseases, n_latents) barcodes.
        diseases: the disease of each row.
        d1: the disease on x.
        d2: the disease on y.
        diff: :func:`~cytosae.analysis.differential.differential_latents`.
        refs: reference images of the latents drawn, one row per image:
            ``direction``, ``latent``, ``path``, ``label``
            (:func:`~cytosae.analysis.differential.differential_reference_images`); one row of
            images per (direction, latent), in order.
        image_loader: ``path -> (H, W, 3) array``.
        n_show: latents each way the grid has room for (it has ``2 * n_show`` rows).
        n_images: reference images per latent.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{"scatter": plot_differential's data, "references":
        reference_image_grid's data}``.
    """
    fig = _plt().figure(figsize=(12, 7.5))
    gs = fig.add_gridspec(
        2 * n_show, 1 + n_images, width_ratios=[4] + [1] * n_images, wspace=0.3, hspace=0.5
    )
    ax = fig.add_subplot(gs[:, 0])
    _, scatter = panels.plot_differential(ax, disease_barcodes, diseases, d1, d2, diff)
    ax.set_title(_title("Fig. 5A disease barcodes", tag), fontsize=9)
    keys = _row_keys(refs, ["direction", "latent"])
    axes = np.array(
        [[fig.add_subplot(gs[r, 1 + j]) for j in range(n_images)] for r in range(len(keys))],
        dtype=object,
    ).reshape(len(keys), n_images)

    def label(key: tuple[str, int]) -> str:
        return f"{key[1]}\nmore in {d1 if key[0] == 'd1>d2' else d2}"

    grid: dict[str, Any] = {"rows": [], "groups": [None], "cells": pd.DataFrame(), "axes": axes}
    if keys:  # (none: no latent differs, so no images)
        _, grid = reference_image_grid(
            refs,
            image_loader,
            n_images=n_images,
            rows=["direction", "latent"],
            row_order=keys,
            groups=None,
            row_label=label,
            row_label_style="left",
            label_chars=None,
            activations=False,
            group_titles=False,
            axes=axes,
        )
    return fig, {"scatter": scatter, "references": grid}


# -------------------------------------------------------------------------- 07: recovery
def recovery_figure(results: Mapping[str, Any], *, tag: str = "") -> tuple[Any, dict[str, Any]]:
    """Concept recovery per dataset: best-latent AUROC and IoU per ground-truth concept.

    Args:
        results: dataset name -> :class:`~cytosae.analysis.recovery.RecoveryResult`, one panel
            each, left to right.
        tag: the run's label, for the title.

    Returns:
        The figure and ``{dataset: plot_recovery's data}``.
    """
    names = list(results)
    fig, axes = _plt().subplots(1, len(names), figsize=(6 * len(names), 3.6), squeeze=False)
    data: dict[Hashable, Any] = {}
    for ax, ds in zip(axes[0], names):
        _, data[ds] = panels.plot_recovery(ax, results[ds])
        ax.set_ylabel(ds)
    fig.suptitle(_title("Concept recovery against pixel ground truth", tag), y=1.04)
    return fig, data
