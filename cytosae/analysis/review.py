"""Expert review sheet: sampled latents with their reference images, ready to annotate.

The authors sampled 50 latents (KMeans, 5 per cluster, :func:`cytosae.analysis.thresholds.sample_latents_for_review`)
and showed an expert cytomorphologist the top reference images of each in every dataset. This writes
the same thing as one self-contained HTML file (thumbnails embedded as base64 PNG, no external
files, no timestamps so reruns are byte-identical) and a CSV with one row per latent and empty
``is_concept`` / ``annotation`` columns for the expert to fill in.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytosae.analysis.retrieval import load_image, reference_images

log = logging.getLogger(__name__)

__all__ = ["review_rows", "thumbnail_b64", "write_review_sheet"]


def thumbnail_b64(path: str | Path, size: int = 96) -> str:
    """A square PNG thumbnail of an image, base64-encoded."""
    img = load_image(path).resize((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def review_rows(
    sample: pd.DataFrame, refs: Mapping[str, tuple[Any, pd.DataFrame]], n_images: int = 5
) -> pd.DataFrame:
    """One row per sampled latent with its reference images in each dataset.

    Args:
        sample: output of ``sample_latents_for_review`` (needs ``latent``; ``cluster`` optional).
        refs: dataset name -> (LatentStats, manifest) of that dataset.
        n_images: reference images per dataset.

    Returns:
        DataFrame ``latent``, ``cluster``, ``mean_act``, ``sparsity``, ``entropy`` (of the first
        dataset), ``images`` (list of dicts: dataset, image_index, activation, label, path),
        ``is_concept`` and ``annotation`` (empty).
    """
    first = next(iter(refs.values()))[0]
    rows = []
    for r in sample.itertuples(index=False):
        s = int(r.latent)
        imgs = []
        for ds, (stats, man) in refs.items():
            ref = reference_images(stats, s, n_images, man)
            for x in ref.itertuples(index=False):
                imgs.append(
                    {
                        "dataset": ds,
                        "image_index": int(x.image_index),
                        "activation": float(x.activation),
                        "label": str(x.label),
                        "path": str(getattr(x, "path", "")),
                    }
                )
        rows.append(
            {
                "latent": s,
                "cluster": int(getattr(r, "cluster", -1)),
                "mean_act": float(first.mean_acts[s]),
                "sparsity": float(first.sparsity[s]),
                "entropy": float(first.top_entropy[s]),
                "images": imgs,
                "is_concept": "",
                "annotation": "",
            }
        )
    return pd.DataFrame(rows)


def write_review_sheet(
    sample: pd.DataFrame,
    refs: Mapping[str, tuple[Any, pd.DataFrame]],
    out_dir: str | Path,
    *,
    n_images: int = 5,
    thumb_px: int = 96,
    title: str = "CytoSAE latent review",
    stem: str = "review",
) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.csv`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = review_rows(sample, refs, n_images)
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #aaa;padding:4px;vertical-align:top}figure{display:inline-block;margin:2px;"
        "font-size:10px;text-align:center}td.note{min-width:200px}</style></head><body>",
        f"<h1>{esc(title)}</h1><p>Fill in the CSV of the same name (columns is_concept, annotation).</p>",
        "<table><tr><th>latent</th><th>cluster</th><th>log10 mean act</th><th>log10 freq</th><th>entropy</th>"
        "<th>reference images</th><th>is concept?</th><th>annotation</th></tr>",
    ]
    for r in rows.itertuples(index=False):
        figs = []
        for im in r.images:
            src = thumbnail_b64(im["path"], thumb_px) if im["path"] else ""
            figs.append(
                f"<figure><img src='data:image/png;base64,{src}' width='{thumb_px}' height='{thumb_px}'>"
                f"<figcaption>{esc(im['dataset'])} | {esc(im['label'])}<br>{im['activation']:.3g}</figcaption></figure>"
            )
        lm = np.log10(r.mean_act) if np.isfinite(r.mean_act) and r.mean_act > 0 else float("nan")
        lf = np.log10(r.sparsity) if r.sparsity > 0 else float("nan")
        parts.append(
            f"<tr><td>{r.latent}</td><td>{r.cluster}</td><td>{lm:.2f}</td><td>{lf:.2f}</td>"
            f"<td>{r.entropy:.2f}</td><td>{''.join(figs)}</td><td class='note'></td><td class='note'></td></tr>"
        )
    parts.append("</table></body></html>\n")
    html_path = out / f"{stem}.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")
    flat = rows.drop(columns=["images"]).copy()
    for key in ("dataset", "image_index", "activation", "label", "path"):
        flat[f"ref_{key}s"] = [";".join(str(im[key]) for im in ims) for ims in rows["images"]]
    csv_path = out / f"{stem}.csv"
    flat.to_csv(csv_path, index=False)
    log.info("review sheet: %s (%d latents)", html_path, len(rows))
    return html_path, csv_path
