"""One plotting function per figure panel.

Every function draws on the Axes it is given (or a small list of Axes) and returns
``(ax, data)``, where ``data`` holds exactly the numbers drawn, so tests and notebooks can check a
figure's content against its inputs. :func:`save_figure` writes PNG and PDF with fixed metadata
(no timestamps), so reruns produce identical files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytosae.analysis.retrieval import segmentation_map
from cytosae.analysis.thresholds import log10_safe

__all__ = [
    "plot_barcode",
    "plot_concept_counts",
    "plot_concept_curves",
    "plot_confusion",
    "plot_differential",
    "plot_landscape",
    "plot_paper_values",
    "plot_probe_comparison",
    "plot_probe_sweep",
    "plot_recovery",
    "plot_reference_images",
    "plot_segmentation",
    "plot_setting_points",
    "plot_umap",
    "save_figure",
]


def plot_landscape(
    ax: Any,
    stats: Any,
    *,
    marginals: bool = True,
    bins: int = 50,
    s: float = 2.0,
    cmap: str = "viridis",
) -> tuple[Any, dict[str, Any]]:
    """Fig. 2A: x = log10 frequency, y = log10 mean activation, colour = label entropy.

    Latents that never fired (NaN / zero) are not drawn; those with fewer than k top images have
    no entropy (-1 in the statistics) and are drawn grey, under the coloured ones. With
    ``marginals`` two inset axes carry the histograms of x (top) and y (right); their counts are
    in ``data["hist_x"]``/``["hist_y"]``.
    """
    x = log10_safe(stats.sparsity)
    y = log10_safe(stats.mean_acts)
    ok = ~np.isnan(x) & ~np.isnan(y)
    latent = np.flatnonzero(ok)
    c = np.asarray(stats.top_entropy, dtype=np.float64)[ok]
    # the entropy is -1 where a latent has fewer than k top images: no entropy, drawn grey
    # (on the colour scale it would read as an entropy below zero)
    none = ~(c >= 0)
    if none.any():
        ax.scatter(x[ok][none], y[ok][none], c="0.72", s=s, linewidths=0, rasterized=True)
    sc = ax.scatter(
        x[ok][~none],
        y[ok][~none],
        c=c[~none],
        s=s,
        cmap=cmap,
        vmin=0.0,
        linewidths=0,
        rasterized=True,
    )
    ax.set_xlabel("log10 activation frequency")
    ax.set_ylabel("log10 mean activation")
    label = "label entropy (nats)" + ("; grey: too few top images" if none.any() else "")
    ax.figure.colorbar(sc, ax=ax, label=label, pad=0.25 if marginals else 0.05)
    data: dict[str, Any] = {
        "x": x[ok],
        "y": y[ok],
        "c": c,
        "latent": latent,
        "no_entropy": int(none.sum()),
    }
    if marginals:
        top = ax.inset_axes((0.0, 1.02, 1.0, 0.18), sharex=ax)
        right = ax.inset_axes((1.02, 0.0, 0.18, 1.0), sharey=ax)
        hx, ex, _ = top.hist(x[ok], bins=bins, color="0.4")
        hy, ey, _ = right.hist(y[ok], bins=bins, color="0.4", orientation="horizontal")
        top.axis("off")
        right.axis("off")
        data.update(
            hist_x=hx, hist_x_edges=ex, hist_y=hy, hist_y_edges=ey, marginal_axes=(top, right)
        )
    return ax, data


def plot_concept_counts(
    ax: Any, counts: pd.DataFrame | Mapping[str, pd.DataFrame], *, log: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Number of concepts vs threshold (Fig. 2A bottom right); one line per entry of a mapping."""
    series = counts if isinstance(counts, Mapping) else {"": counts}
    data: dict[str, Any] = {}
    for name, df in series.items():
        ax.plot(
            df["threshold"].to_numpy(), df["n_concepts"].to_numpy(), marker="o", label=name or None
        )
        data[name] = {
            "threshold": df["threshold"].to_numpy(),
            "n_concepts": df["n_concepts"].to_numpy(),
        }
    if log:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("log10 mean-activation threshold")
    ax.set_ylabel("number of concepts")
    if len(series) > 1:
        ax.legend()
    return ax, data if len(series) > 1 else data[""]


def plot_reference_images(
    axes: Sequence[Any], images: Sequence[np.ndarray], titles: Sequence[str] | None = None
) -> tuple[Sequence[Any], dict[str, Any]]:
    """Reference images in a row of Axes (extra Axes are blanked)."""
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    drawn = []
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            img = np.asarray(images[i])
            ax.imshow(img)
            ax.set_title(titles[i], fontsize=7)
            drawn.append(img)
    return axes, {"images": drawn, "titles": titles[: len(drawn)]}


def plot_segmentation(
    ax: Any, acts_T: np.ndarray, image: Any, *, mode: str = "scaled", title: str = ""
) -> tuple[Any, dict[str, Any]]:
    """A latent's segmentation map over one image (Fig. 3C)."""
    seg = segmentation_map(acts_T, image, mode=mode)
    ax.imshow(seg)
    ax.axis("off")
    ax.set_title(title, fontsize=7)
    return ax, {"image": seg, "mode": mode}


def plot_barcode(
    ax: Any,
    barcodes: np.ndarray,
    row_labels: Sequence[str],
    *,
    latents: Sequence[int] | None = None,
    cmap: str = "magma",
) -> tuple[Any, dict[str, Any]]:
    """Patient or disease barcodes as a heatmap (rows = patients/diseases, columns = latents)."""
    X = np.asarray(barcodes, dtype=np.float64)
    cols = np.arange(X.shape[1]) if latents is None else np.asarray(latents, dtype=np.int64)
    M = X[:, cols]
    if M.shape[0] != len(row_labels):
        raise ValueError(f"{len(row_labels)} row labels for {M.shape[0]} barcodes")
    im = ax.imshow(M, aspect="auto", interpolation="nearest", cmap=cmap)
    ax.set_yticks(range(len(row_labels)), labels=list(row_labels), fontsize=6)
    ax.set_xlabel("latent")
    ax.figure.colorbar(im, ax=ax, label="mean count")
    return ax, {"matrix": M, "rows": list(row_labels), "latents": cols}


def plot_probe_sweep(ax: Any, sweep: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """Fig. 4A: weighted F1 (mean ± sd) vs threshold; number of latents kept on a twin axis."""
    t = sweep["threshold"].to_numpy(dtype=float)
    m = sweep["f1_mean"].to_numpy(dtype=float)
    sd = sweep["f1_sd"].to_numpy(dtype=float)
    n = sweep["n_latents_kept"].to_numpy()
    ax.errorbar(t, m, yerr=sd, marker="o", capsize=3, color="C0")
    ax.set_xlabel("log10 mean-activation threshold")
    ax.set_ylabel("weighted F1 (5-fold CV)", color="C0")
    ax2 = ax.twinx()
    ax2.plot(t, n, marker="s", ls="--", color="C1")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_ylabel("latents kept", color="C1")
    return ax, {"threshold": t, "f1_mean": m, "f1_sd": sd, "n_latents_kept": n, "twin": ax2}


def plot_confusion(
    ax: Any, confusion: pd.DataFrame, *, normalize: bool = False
) -> tuple[Any, dict[str, Any]]:
    """Fig. 4B: confusion matrix (rows true, columns predicted); optionally row-normalised."""
    M = confusion.to_numpy(dtype=np.float64)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            M = np.nan_to_num(M / M.sum(1, keepdims=True))
    ax.imshow(M, cmap="Blues")
    labels = [str(c) for c in confusion.columns]
    ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(confusion.index)), labels=[str(c) for c in confusion.index], fontsize=7)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(
                j,
                i,
                f"{M[i, j]:.2f}" if normalize else f"{int(M[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax, {"matrix": M, "labels": labels}


def plot_differential(
    ax: Any,
    disease_barcodes: np.ndarray,
    disease_ids: Sequence[str],
    d1: str,
    d2: str,
    diff: pd.DataFrame,
) -> tuple[Any, dict[str, Any]]:
    """Fig. 5A: disease barcode of d1 (x) vs d2 (y), y = x line, top latents each way highlighted."""
    ids = [str(d) for d in disease_ids]
    X = np.asarray(disease_barcodes, dtype=np.float64)
    x, y = X[ids.index(d1)], X[ids.index(d2)]
    top1 = diff.loc[diff["direction"] == "d1>d2", "latent"].to_numpy(dtype=np.int64)
    top2 = diff.loc[diff["direction"] == "d2>d1", "latent"].to_numpy(dtype=np.int64)
    ax.scatter(x, y, s=3, color="0.7", linewidths=0, rasterized=True)
    ax.scatter(x[top1], y[top1], s=8, color="C0", label=f"more in {d1}")
    ax.scatter(x[top2], y[top2], s=8, color="C3", label=f"more in {d2}")
    hi = float(max(x.max(initial=0), y.max(initial=0))) or 1.0
    ax.plot([0, hi], [0, hi], ls="--", color="k", lw=0.8)
    ax.set_xlabel(f"mean count, {d1}")
    ax.set_ylabel(f"mean count, {d2}")
    ax.legend(fontsize=7)
    return ax, {"x": x, "y": y, "top_d1": top1, "top_d2": top2, "diagonal": (0.0, hi)}


def plot_recovery(ax: Any, result: Any, *, auroc_cut: float = 0.9) -> tuple[Any, dict[str, Any]]:
    """Concept recovery: best-latent AUROC and IoU per ground-truth concept."""
    per = result.per_concept
    concepts = per["concept"].astype(str).to_list()
    au = per["auroc"].to_numpy(dtype=float)
    iou = per["iou"].to_numpy(dtype=float)
    pos = np.arange(len(concepts))
    ax.bar(pos - 0.2, au, width=0.4, label="AUROC")
    ax.bar(pos + 0.2, iou, width=0.4, label="IoU")
    ax.axhline(auroc_cut, ls="--", color="k", lw=0.8)
    ax.set_xticks(pos, labels=concepts, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"{100 * result.recovered_fraction:.0f}% concepts recovered; {result.n_monosemantic} monosemantic latents",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    return ax, {
        "concept": concepts,
        "auroc": au,
        "iou": iou,
        "latent": per["best_latent"].to_numpy(),
    }


def save_figure(fig: Any, name: str, folder: str | Path, *, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.png`` and ``.pdf`` with fixed metadata (no dates), for stable reruns."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    fig.savefig(
        pdf,
        metadata={"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
        bbox_inches="tight",
    )
    return png, pdf


# ------------------------------------------------------------------ sweeps, baselines, UMAP
def plot_concept_curves(
    ax: Any,
    long: pd.DataFrame,
    *,
    hue: str = "setting",
    order: Sequence[str] | None = None,
    log: bool = True,
    palette: str = "viridis",
) -> tuple[Any, dict[str, Any]]:
    """Concepts vs threshold, one line per ``hue`` value: the mean over seeds with a ± sd band.

    Args:
        long: :func:`cytosae.analysis.sweep.long_counts` rows (``threshold``, ``n_concepts``,
            ``hue``, ``seed``).
        hue: the column naming the lines.
        order: line order (default: order of appearance).

    Returns:
        ``{value: {"threshold", "mean", "sd", "n"}}`` per line (sd with ``ddof=1``; NaN for one seed).
    """
    import seaborn as sns

    order = list(dict.fromkeys(long[hue].astype(str))) if order is None else list(order)
    df = long.assign(**{hue: long[hue].astype(str)})
    sns.lineplot(
        data=df,
        x="threshold",
        y="n_concepts",
        hue=hue,
        hue_order=order,
        errorbar="sd",
        marker="o",
        palette=palette,
        ax=ax,
    )
    if log:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)  # counts; a mean - sd band below 0 is cut
    ax.set_xlabel("log10 mean-activation threshold")
    ax.set_ylabel("number of concepts")
    data: dict[str, Any] = {}
    for v in order:
        g = df[df[hue] == v].groupby("threshold")["n_concepts"]
        data[v] = {
            "threshold": g.mean().index.to_numpy(dtype=float),
            "mean": g.mean().to_numpy(dtype=float),
            "sd": g.std(ddof=1).to_numpy(dtype=float),
            "n": g.size().to_numpy(),
        }
    return ax, data


def plot_setting_points(
    ax: Any,
    table: pd.DataFrame,
    column: str,
    *,
    order: Sequence[str] | None = None,
    log: bool = False,
    color: str = "C0",
    label: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """One sweep metric per setting: every seed as a dot, the mean ± sd (over seeds) as a bar.

    Returns:
        ``{setting: {"values", "mean", "sd"}}``.
    """
    import seaborn as sns

    order = list(dict.fromkeys(table["setting"].astype(str))) if order is None else list(order)
    df = table.assign(setting=table["setting"].astype(str))
    sns.pointplot(
        data=df,
        x="setting",
        y=column,
        order=order,
        errorbar="sd",
        color=color,
        linestyle="none",
        capsize=0.2,
        marker="_",
        markersize=14,
        ax=ax,
        label=label,
    )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("")
    # every setting keeps its place, also one without numbers (seaborn narrows the axis to the
    # categories that have data)
    ax.set_xticks(range(len(order)), order)
    ax.set_xlim(-0.5, len(order) - 0.5)
    data = {}
    for i, v in enumerate(order):
        vals = df.loc[df["setting"] == v, column].to_numpy(dtype=float)
        jitter = np.linspace(-0.12, 0.12, vals.size) if vals.size > 1 else np.zeros(vals.size)
        fin = np.isfinite(vals)  # NaN: a seed without this number (a diverged run)
        if fin.any():  # the seeds (no random jitter)
            ax.scatter((i + jitter)[fin], vals[fin], s=14, color=color, zorder=3)
        vals = vals[fin]
        sd = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        data[v] = {"values": vals, "mean": float(vals.mean()) if vals.size else np.nan, "sd": sd}
    return ax, data


def plot_paper_values(
    ax: Any,
    paper: pd.DataFrame,
    *,
    mean: str = "concepts_mean",
    sd: str = "concepts_sd",
    color: str = "0.45",
) -> tuple[Any, dict[str, Any]]:
    """The paper's published values per setting as bars ± sd; where it published no number, its
    note (e.g. "unstable training") or "n/p".

    Args:
        paper: rows of :func:`cytosae.analysis.sweep.paper_ablation` (``paper``, ``mean``, ``sd``,
            ``note``), in the order drawn.

    Returns:
        ``{"setting", "mean", "sd", "text"}`` (NaN where not published; ``text``: what is written
        in place of a bar, per setting, "" where there is a bar).
    """
    import textwrap

    labels = paper["paper"].astype(str).to_list()
    m = paper[mean].to_numpy(dtype=float)
    s = paper[sd].to_numpy(dtype=float)
    notes = paper["note"].astype(str).to_list() if "note" in paper else [""] * len(labels)
    pos = np.arange(len(labels))
    ax.bar(pos, np.nan_to_num(m), yerr=np.nan_to_num(s), color=color, capsize=3)
    top = np.nanmax(m + np.nan_to_num(s)) if np.isfinite(m).any() else 1.0
    text = [""] * len(labels)
    for i in np.flatnonzero(~np.isfinite(m)):
        text[i] = textwrap.fill(notes[i] or "n/p", 14)
        ax.text(pos[i], 0.02 * top, text[i], ha="center", va="bottom", fontsize=6, color="0.3")
    ax.set_xticks(pos, labels=labels)
    return ax, {"setting": labels, "mean": m, "sd": s, "text": text}


def plot_probe_comparison(
    ax: Any,
    comparison: pd.DataFrame,
    *,
    paper: tuple[float, float] | None = None,
    paper_label: str = "paper, barcode probe (REAL data)",
) -> tuple[Any, dict[str, Any]]:
    """Weighted F1 per model (mean ± sd over the folds, folds as dots), the majority-class rate,
    and the paper's value as a labelled reference band.

    Args:
        comparison: :func:`cytosae.analysis.baseline.compare_probes` (``model``, ``f1_mean``,
            ``f1_sd``, ``f1_folds``, ``majority_rate``).
        paper: ``(mean, sd)`` drawn as a line and band (None: not drawn).

    Returns:
        ``{"model", "f1_mean", "f1_sd", "folds", "majority_rate", "paper"}``.
    """
    models = comparison["model"].astype(str).to_list()
    m = comparison["f1_mean"].to_numpy(dtype=float)
    s = comparison["f1_sd"].to_numpy(dtype=float)
    pos = np.arange(len(models))
    ax.bar(pos, m, yerr=s, capsize=4, color=[f"C{i}" for i in range(len(models))], alpha=0.8)
    folds = [np.asarray(f, dtype=float) for f in comparison["f1_folds"]]
    for i, f in enumerate(folds):
        jitter = np.linspace(-0.15, 0.15, f.size) if f.size > 1 else np.zeros(1)
        ax.scatter(pos[i] + jitter, f, s=10, color="k", zorder=3)
    rate = float(comparison["majority_rate"].iloc[0])
    ax.axhline(rate, ls=":", color="k", lw=1, label=f"majority-class rate {rate:.2f}")
    if paper is not None:
        ax.axhspan(paper[0] - paper[1], paper[0] + paper[1], color="C3", alpha=0.15, lw=0)
        ax.axhline(
            paper[0], color="C3", ls="--", lw=1, label=f"{paper_label}: {paper[0]} ± {paper[1]}"
        )
    ax.set_xticks(pos, labels=models, rotation=15, ha="right", fontsize=7)
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("weighted F1 (5-fold CV, same folds)")
    ax.legend(fontsize=7, loc="upper right")
    return ax, {
        "model": models,
        "f1_mean": m,
        "f1_sd": s,
        "folds": folds,
        "majority_rate": rate,
        "paper": paper,
    }


def plot_umap(
    ax: Any,
    coords: pd.DataFrame,
    hue: str,
    *,
    highlight: str | None = None,
    palette: str = "tab10",
    s: float = 18,
) -> tuple[Any, dict[str, Any]]:
    """A 2-D map (``umap_x``, ``umap_y``) coloured by ``hue``; rows where the boolean column
    ``highlight`` is True are ringed.

    Returns:
        ``{"x", "y", "hue", "highlighted"}``.
    """
    import seaborn as sns

    df = coords.assign(**{hue: coords[hue].astype(str)})
    order = sorted(df[hue].unique(), key=lambda v: (len(v), v))
    sns.scatterplot(
        data=df,
        x="umap_x",
        y="umap_y",
        hue=hue,
        hue_order=order,
        palette=palette,
        s=s,
        linewidth=0,
        ax=ax,
    )
    hl = np.zeros(len(df), dtype=bool)
    if highlight is not None:
        hl = df[highlight].to_numpy(dtype=bool)
        ax.scatter(
            df["umap_x"][hl], df["umap_y"][hl], s=s * 3, facecolors="none", edgecolors="k", lw=0.8
        )
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.legend(fontsize=6, markerscale=0.7, title=hue, title_fontsize=7, loc="best")
    return ax, {
        "x": df["umap_x"].to_numpy(),
        "y": df["umap_y"].to_numpy(),
        "hue": df[hue].to_numpy(),
        "highlighted": hl,
    }
