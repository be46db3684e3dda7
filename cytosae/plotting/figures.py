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
    "ablation_figure",
    "barcode_clustermap_figure",
    "barcode_figure",
    "cohort_figure",
    "differential_figure",
    "expansion_figure",
    "gallery_figure",
    "ghost_grads_comparison",
    "landscape_figure",
    "masks_figure",
    "patch_retrieval_figure",
    "probe_baseline_figure",
    "probe_figure",
    "published_landscape_figure",
    "realism_figure",
    "recovery_figure",
    "recovery_limits_figure",
    "reference_image_grid",
    "training_curves",
    "umap_figure",
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
    fig = _plt().figure(figsize=(12.8, 7.8))
    # column 1 is a spacer: room for the image rows' labels, clear of the scatter
    gs = fig.add_gridspec(
        2 * n_show,
        2 + n_images,
        width_ratios=[4, 0.9] + [1] * n_images,
        wspace=0.3,
        hspace=0.5,
        top=0.9,
    )
    ax = fig.add_subplot(gs[:, 0])
    _, scatter = panels.plot_differential(ax, disease_barcodes, diseases, d1, d2, diff)
    ax.set_title(f"Fig. 5A: disease barcodes, {d1} vs {d2}", fontsize=9)
    fig.suptitle(_title("Fig. 5 differential latents", tag), fontsize=11)
    keys = _row_keys(refs, ["direction", "latent"])
    axes = np.array(
        [[fig.add_subplot(gs[r, 2 + j]) for j in range(n_images)] for r in range(len(keys))],
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


# ------------------------------------------------------------------ 02 and 09: sweeps
def expansion_figure(
    stats_by_setting: Mapping[str, Any],
    table: pd.DataFrame,
    *,
    threshold: float | None = None,
    dataset: str = "",
    note: str = "",
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 2A in full: one latent landscape per expansion factor, and the concepts vs threshold
    of every factor (mean ± sd over the seeds).

    Args:
        stats_by_setting: setting label -> ``LatentStats`` of one seed (a landscape each, in order).
        table: the sweep table (:meth:`~cytosae.workflow.pipeline.Pipeline.sweep`) of the
            ``"expansion"`` axis, every seed.
        threshold: the profile's concept threshold, marked on the curves.
        dataset: the dataset's name, for the title.
        note: a line under the title (e.g. which factors and why).
        tag: the run's label, for the title.

    Returns:
        ``{"landscapes": {setting: plot_landscape's data}, "curves": plot_concept_curves's}``.
    """
    from cytosae.analysis.sweep import long_counts

    names = list(stats_by_setting)
    fig = _plt().figure(figsize=(3.3 * len(names) + 4.2, 3.9))
    gs = fig.add_gridspec(1, len(names) + 1, width_ratios=[1] * len(names) + [1.25], wspace=0.75)
    landscapes: dict[str, Any] = {}
    axes = []
    for i, name in enumerate(names):
        ax = fig.add_subplot(gs[0, i])
        _, landscapes[name] = panels.plot_landscape(ax, stats_by_setting[name], marginals=True)
        ax.set_title(f"{name} ({stats_by_setting[name].d_sae} latents)", fontsize=8, y=1.22)
        axes.append(ax)
    _same_limits(axes)
    ax_c = fig.add_subplot(gs[0, -1])
    order = list(dict.fromkeys(table["setting"].astype(str)))
    _, curves = panels.plot_concept_curves(ax_c, long_counts(table), order=order)
    if threshold is not None:
        ax_c.axvline(threshold, color="0.6", ls="--", lw=0.8)
    n = int(table.groupby("setting")["seed"].nunique().min())
    ax_c.set_title(f"concepts vs threshold (mean ± sd, {n} seeds)", fontsize=8)
    ax_c.legend(fontsize=7, title="expansion", title_fontsize=7)
    name = f"Fig. 2A expansion factors, {dataset}" if dataset else "Fig. 2A expansion factors"
    fig.suptitle(_title(name, tag) + (f"\n{note}" if note else ""), fontsize=10, y=1.27)
    return fig, {"landscapes": landscapes, "curves": curves}


def _same_limits(axes: Sequence[Any]) -> None:
    """Give every Axes the union of their x and y limits (landscapes side by side compare)."""
    if not axes:
        return
    xs = np.array([ax.get_xlim() for ax in axes])
    ys = np.array([ax.get_ylim() for ax in axes])
    for ax in axes:
        ax.set_xlim(xs[:, 0].min(), xs[:, 1].max())
        ax.set_ylim(ys[:, 0].min(), ys[:, 1].max())


def published_landscape_figure(
    stats_by_dataset: Mapping[str, Any],
    *,
    threshold: float | None = -3.0,
    source: str = "",
    thresholds: Sequence[float] = tuple(range(-6, 1)),
) -> tuple[Any, dict[str, Any]]:
    """Fig. 2A from the authors' published statistics (REAL data): a landscape per dataset and the
    concepts vs threshold of every dataset.

    Args:
        stats_by_dataset: dataset -> ``LatentStats`` (``published_stats(ds)``), in order.
        threshold: the paper's concept threshold, marked on the counts.
        source: where the numbers come from (a subtitle).
        thresholds: the thresholds of the counts panel.

    Returns:
        ``{"landscapes": {dataset: plot_landscape's data}, "counts": {dataset: plot_concept_counts's},
        "table": the counts (threshold x dataset)}``.
    """
    from cytosae.analysis.thresholds import concept_counts

    names = list(stats_by_dataset)
    fig = _plt().figure(figsize=(3.3 * len(names) + 4.2, 3.9))
    gs = fig.add_gridspec(1, len(names) + 1, width_ratios=[1] * len(names) + [1.25], wspace=0.75)
    landscapes: dict[str, Any] = {}
    counts = {}
    axes = []
    for i, ds in enumerate(names):
        st = stats_by_dataset[ds]
        ax = fig.add_subplot(gs[0, i])
        _, landscapes[ds] = panels.plot_landscape(ax, st, marginals=True, s=1.0)
        ax.set_title(f"{ds} ({st.d_sae} latents)", fontsize=8, y=1.22)
        counts[ds] = concept_counts(st.mean_acts, thresholds)
        axes.append(ax)
    _same_limits(axes)
    ax_c = fig.add_subplot(gs[0, -1])
    _, drawn = panels.plot_concept_counts(ax_c, counts)
    if threshold is not None:
        ax_c.axvline(threshold, color="0.6", ls="--", lw=0.8)
    ax_c.legend(fontsize=7)
    ax_c.set_title("concepts vs threshold", fontsize=8)
    table = pd.DataFrame(
        {ds: c["n_concepts"].to_numpy() for ds, c in counts.items()},
        index=pd.Index([float(t) for t in thresholds], name="threshold"),
    )
    title = "Fig. 2A from the authors' published statistics: REAL data, their x64 SAE"
    fig.suptitle(title + (f"\n{source}" if source else ""), fontsize=10, y=1.27)
    return fig, {"landscapes": landscapes, "counts": drawn, "table": table}


def ablation_figure(
    table: pd.DataFrame,
    axis: str,
    *,
    paper: pd.DataFrame | None = None,
    threshold: float = -3.0,
    note: str = "",
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """One axis of the Sec. 3.4 ablation: concepts vs threshold per setting; concepts at
    ``threshold``, dead fraction and L0 per setting (seeds as dots, mean ± sd); the paper's
    concepts at -3 for the settings ours stand for.

    Args:
        table: the sweep table (every axis or just this one).
        axis: the axis drawn.
        paper: :func:`cytosae.analysis.sweep.paper_ablation` (None: that panel is left out).
        threshold: our concept threshold.
        note: a line under the title (what the default profile used).
        tag: the run's label, for the title.

    Returns:
        ``{"curves", "concepts", "dead_frac", "l0", "diverged", "paper"}``: the panels' data
        (``diverged``: the settings whose every seed diverged, marked on the panels).
    """
    from cytosae.analysis.sweep import PAPER_CHOICE, concept_column, long_counts

    t = table[table["axis"] == axis]
    if not len(t):
        raise ValueError(f"no rows of axis {axis!r} in the sweep table")
    order = list(dict.fromkeys(t["setting"].astype(str)))
    n_panels = 5 if paper is not None else 4
    fig, axes = _plt().subplots(1, n_panels, figsize=(3.1 * n_panels, 3.2))
    data: dict[str, Any] = {}
    _, data["curves"] = panels.plot_concept_curves(axes[0], long_counts(t), order=order)
    axes[0].axvline(threshold, color="0.6", ls="--", lw=0.8)
    axes[0].legend(fontsize=6, title=axis, title_fontsize=6)
    axes[0].set_title("concepts vs threshold", fontsize=8)
    _, data["concepts"] = panels.plot_setting_points(
        axes[1], t, concept_column(threshold), order=order
    )
    axes[1].set_title(f"ours: concepts at {threshold:g}", fontsize=8)
    axes[1].set_ylabel("concepts")
    _, data["dead_frac"] = panels.plot_setting_points(axes[2], t, "dead_frac", order=order)
    axes[2].set_title("ours: dead fraction (end of training)", fontsize=8)
    axes[2].set_ylabel("dead fraction")
    _, data["l0"] = panels.plot_setting_points(axes[3], t, "l0", order=order, log=True)
    axes[3].set_title("ours: L0 (active latents per token)", fontsize=8)
    axes[3].set_ylabel("L0")
    for ax in axes[1:4]:
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    data["diverged"] = []
    if "status" in t.columns:  # settings whose every seed diverged have no numbers: say so
        all_div = t.groupby(t["setting"].astype(str), sort=False)["status"].agg(
            lambda x: bool((x == "diverged").all())
        )
        data["diverged"] = [s for s in order if all_div.get(s, False)]
        for ax in axes[1:4]:
            for s in data["diverged"]:
                ax.text(
                    order.index(s),
                    0.5,
                    "diverged",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="center",
                    rotation=90,
                    fontsize=7,
                    color="C3",
                )
    data["paper"] = None
    if paper is not None:
        settings = t.drop_duplicates("setting")["paper"].astype(str).to_list()
        ref = paper[paper["axis"] == axis].set_index("paper")
        rows = ref.reindex([s for s in settings if s in ref.index]).reset_index()
        if len(rows):
            _, data["paper"] = panels.plot_paper_values(axes[4], rows)
            dead = rows["dead_frac_mean"].to_numpy(dtype=float)
            for i, d in enumerate(dead):
                if np.isfinite(d):
                    axes[4].annotate(f"dead {d:.2f}", (i, 0), xytext=(0, 3), fontsize=6,
                                     textcoords="offset points", ha="center", color="w")  # fmt: skip
        chosen = PAPER_CHOICE.get(axis, "")
        axes[4].set_title(f"paper (REAL data): concepts at -3; * = {chosen}", fontsize=8)
        axes[4].tick_params(axis="x", labelsize=7, rotation=20)
    fig.suptitle(
        _title(f"Sec. 3.4 ablation: {axis}", tag) + (f"\n{note}" if note else ""),
        fontsize=10,
        y=1.08 if note else 1.02,
    )
    fig.tight_layout()
    return fig, data


# ------------------------------------------------------------------ 05: the baseline
def probe_baseline_figure(
    comparison: pd.DataFrame,
    *,
    paper: tuple[float, float] | None = (0.832, 0.044),
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 4B, fair: the barcode probe beside embedding baselines on the same patients and folds,
    the majority-class rate, and the paper's value (REAL data) as a labelled reference.

    Returns:
        The figure and :func:`~cytosae.plotting.panels.plot_probe_comparison`'s data.
    """
    fig, ax = _plt().subplots(figsize=(6.2, 3.6))
    _, data = panels.plot_probe_comparison(ax, comparison, paper=paper)
    ax.set_title(_title("AML-subtype probe vs embedding baseline", tag), fontsize=9)
    return fig, data


def barcode_clustermap_figure(
    patient_barcodes: np.ndarray,
    patients: pd.DataFrame,
    *,
    n_latents: int = 64,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Patient barcodes as a seaborn clustermap: patients and latents (the ``n_latents`` most
    variable) reordered by hierarchical clustering (average linkage, correlation distance), each
    patient's disease as a colour strip; colour = ``log1p`` of the mean count, scaled to 0..1 per
    latent.

    Returns:
        The figure and ``{"matrix" (as drawn, reordered), "patients" (row order), "latents"
        (column order), "disease_colors"}``.
    """
    import seaborn as sns

    X = np.asarray(patient_barcodes, dtype=np.float64)
    top = np.sort(np.argsort(-X.var(0), kind="stable")[:n_latents])
    df = pd.DataFrame(
        np.log1p(X[:, top]), index=patients["patient"].astype(str).to_numpy(), columns=top
    )
    diseases = patients["disease"].astype(str).to_numpy()
    levels = sorted(set(diseases))
    pal = dict(zip(levels, sns.color_palette("tab10", len(levels))))
    colors = pd.Series([pal[d] for d in diseases], index=df.index, name="disease")
    cg = sns.clustermap(
        df,
        method="average",
        metric="correlation",
        standard_scale=1,
        row_colors=colors,
        cmap="magma",
        figsize=(9, 7),
        xticklabels=False,
        yticklabels=True,
        dendrogram_ratio=(0.12, 0.12),
        cbar_pos=(0.02, 0.84, 0.025, 0.12),
    )
    cg.ax_cbar.set_title("log(1 + count),\nscaled per latent", fontsize=6, loc="left")
    cg.ax_heatmap.tick_params(axis="y", labelsize=5)
    cg.ax_heatmap.set_xlabel(f"latent ({n_latents} most variable)")
    from matplotlib.patches import Patch

    cg.figure.legend(  # below the row dendrogram, clear of its branches
        handles=[Patch(color=pal[d], label=d) for d in levels],
        loc="lower left",
        bbox_to_anchor=(0.005, 0.005),
        fontsize=6,
        title="disease",
        title_fontsize=6,
        frameon=False,
    )
    cg.figure.suptitle(_title("Patient barcodes, clustered", tag), fontsize=10, y=1.02)
    rows = cg.dendrogram_row.reordered_ind
    cols = cg.dendrogram_col.reordered_ind
    return cg.figure, {
        "matrix": cg.data2d.to_numpy(),
        "patients": df.index.to_numpy()[rows],
        "latents": top[cols],
        "disease_colors": pal,
    }


# ------------------------------------------------------------------ UMAP
def umap_figure(
    patient_map: pd.DataFrame, latent_map: pd.DataFrame, *, tag: str = ""
) -> tuple[Any, dict[str, Any]]:
    """Two seeded UMAPs: patients by barcode coloured by disease; latents by decoder direction
    coloured by the KMeans cluster of the expert-review sampling (sampled latents ringed).

    Returns:
        ``{"patients": plot_umap's data, "latents": plot_umap's data}``.
    """
    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(11, 4.6))
    _, dp = panels.plot_umap(a1, patient_map, "disease")
    a1.set_title(f"{len(patient_map)} patients by barcode", fontsize=9)
    _, dl = panels.plot_umap(a2, latent_map, "cluster", highlight="sampled", s=10)
    a2.set_title(
        f"{len(latent_map)} latents by decoder direction (KMeans cluster; ringed: sampled)",
        fontsize=9,
    )
    fig.suptitle(_title("UMAP", tag))
    fig.tight_layout()
    return fig, {"patients": dp, "latents": dl}


# ------------------------------------------------------------------ 07: what limits recovery
def recovery_limits_figure(
    curve: pd.DataFrame,
    per_concept: pd.DataFrame,
    *,
    ceiling: Mapping[str, float] | None = None,
    auroc_cut: float = 0.9,
    tag: str = "",
) -> tuple[Any, dict[str, Any]]:
    """What limits concept recovery: the recovered fraction against the SAE's size (or steps),
    and per concept the best latent's AUROC against the best linear direction's.

    Args:
        curve: one row per SAE: ``setting`` (x tick), ``dataset``, ``recovered_fraction``
            (and ``seed`` when several).
        per_concept: ``concept``, ``auroc`` (best latent), ``linear_auroc`` (ceiling),
            ``n_positive`` (evaluated concepts only).
        ceiling: dataset -> fraction of its concepts a linear direction separates at
            ``auroc_cut`` (:func:`~cytosae.analysis.recovery.linear_ceiling`), drawn as a dashed
            line in the dataset's colour (None: not drawn).
        auroc_cut: the recovery criterion.

    Returns:
        ``{"curve": {dataset: (settings, mean fraction)}, "concepts": per_concept drawn,
        "ceiling": ceiling}``.
    """
    import seaborn as sns

    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(10.5, 3.9))
    order = list(dict.fromkeys(curve["setting"].astype(str)))
    c = curve.assign(setting=curve["setting"].astype(str))
    sns.pointplot(
        data=c, x="setting", y="recovered_fraction", hue="dataset", order=order,
        errorbar="sd", ax=a1, markers="o", dodge=0.2,
    )  # fmt: skip
    a1.set_ylim(0, 1.02)
    a1.axhline(0.85, color="0.5", ls=":", lw=1, label="target 0.85")
    colours = {ds: f"C{i}" for i, ds in enumerate(dict.fromkeys(c["dataset"]))}
    for ds, frac in (ceiling or {}).items():
        a1.axhline(frac, color=colours.get(ds, "k"), ls="--", lw=1, label=f"linear ceiling, {ds}")
    a1.set_ylabel(f"concepts with a latent of AUROC >= {auroc_cut}")
    a1.set_xlabel("SAE")
    a1.legend(fontsize=7)
    a1.set_title("recovered fraction vs SAE size", fontsize=9)
    drawn_curve = {
        ds: (order, [float(g.loc[g["setting"] == s, "recovered_fraction"].mean()) for s in order])
        for ds, g in c.groupby("dataset", sort=False)
    }
    pc = per_concept.reset_index(drop=True)
    x = pc["linear_auroc"].to_numpy(dtype=float)
    y = pc["auroc"].to_numpy(dtype=float)
    size = 8 + 30 * np.log10(np.maximum(pc["n_positive"].to_numpy(dtype=float), 1)) / 4
    a2.scatter(x, y, s=size, color="C0", alpha=0.8)
    for xi, yi, name in zip(x, y, pc["concept"].astype(str)):
        if yi < auroc_cut or xi < auroc_cut:
            a2.annotate(name, (xi, yi), fontsize=6, xytext=(3, -2), textcoords="offset points")
    lo = float(np.nanmin(np.r_[x, y, [0.5]]))
    a2.plot([lo, 1], [lo, 1], color="k", lw=0.8, ls="--")
    a2.axhline(auroc_cut, color="0.5", lw=0.8, ls=":")
    a2.axvline(auroc_cut, color="0.5", lw=0.8, ls=":")
    a2.set_xlabel("best linear direction (supervised ceiling), AUROC")
    a2.set_ylabel("best SAE latent, AUROC")
    a2.set_title("per concept (dot size ~ log positives)", fontsize=9)
    fig.suptitle(_title("What limits concept recovery", tag), y=1.02)
    fig.tight_layout()
    return fig, {"curve": drawn_curve, "concepts": pc, "ceiling": dict(ceiling or {})}
