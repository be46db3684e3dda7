"""A fair baseline for the barcode probe (Fig. 4B): the same probe on the backbone's own embedding.

The paper compares its barcode probe (weighted F1 0.832 ± 0.044 at threshold -3) with the deep
multiple-instance model of Hehr et al. [12], trained on other folds, which cannot be rerun here.
The stand-in is a logistic probe on each patient's **mean DinoBloom image embedding** (per image
the CLS token, or the mean of its 256 patch tokens, read from the token store the SAE was applied
to), on the SAME patients in the SAME order, hence the SAME stratified folds as the barcode probe
(:func:`cytosae.analysis.probe.cross_validate` splits on the labels only, with the same seed).
Both use the paper's ``C = c * n / 100``; the embedding is standardised inside each fold (its
coordinates have unrelated scales, unlike barcode counts).

On a randomly initialised backbone each block adds its output scaled by LayerScale 1e-5, so the
CLS token's dependence on the image is tiny; standardising each coordinate brings it back up, so
the CLS baseline is not at chance there (on the ``default`` profile it beats the mean patch
token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from cytosae.analysis import probe
from cytosae.analysis.barcodes import patient_barcodes
from cytosae.analysis.thresholds import above_threshold

__all__ = [
    "EMBEDDINGS",
    "PAPER_F1",
    "compare_probes",
    "image_embeddings",
    "majority_rate",
    "patient_embeddings",
]

#: the paper's barcode probe on REAL data at threshold -3 (weighted F1, mean ± sd over 5 folds)
PAPER_F1: tuple[float, float] = (0.832, 0.044)

EMBEDDINGS: tuple[str, ...] = ("cls", "mean_patch")


@torch.inference_mode()
def image_embeddings(
    store: Any, kind: Literal["cls", "mean_patch"] = "cls", *, batch_images: int = 64
) -> np.ndarray:
    """(n_images, D) float64 image embeddings from a token store, in store order.

    ``"cls"``: token 0; ``"mean_patch"``: the mean of tokens 1..T-1.
    """
    if kind not in EMBEDDINGS:
        raise ValueError(f"kind must be one of {EMBEDDINGS}, got {kind!r}")
    out = np.empty((int(store.n_images), int(store.d_model)), dtype=np.float64)
    for idx, tok in store.iter_images(batch_images):
        t = tok.double()
        out[np.asarray(idx)] = (t[:, 0] if kind == "cls" else t[:, 1:].mean(1)).numpy()
    return out


def patient_embeddings(
    embeddings: np.ndarray, manifest: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(P, D) mean embedding per patient and the patient ids, in the order of
    :func:`~cytosae.analysis.barcodes.barcodes_from_stats` (sorted ids; images without one
    dropped)."""
    pats = manifest["patient"].astype(str).to_numpy()
    return patient_barcodes(np.asarray(embeddings, dtype=np.float64), pats)


def majority_rate(y: Sequence[Any]) -> float:
    """Share of the most frequent class (the accuracy of always predicting it)."""
    _, n = np.unique(np.asarray([str(v) for v in y]), return_counts=True)
    return float(n.max() / n.sum())


def compare_probes(
    barcodes: np.ndarray,
    mean_acts: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    y: Sequence[Any],
    *,
    threshold: float = -3.0,
    n_splits: int = 5,
    seed: int = 42,
) -> pd.DataFrame:
    """The barcode probe and the embedding baselines on the same patients and folds.

    Args:
        barcodes: (P, S) patient barcodes.
        mean_acts: (S,) mean activations (latents with log10 <= ``threshold`` are zeroed).
        embeddings: name -> (P, D) patient embeddings, rows in the order of ``barcodes``.
        y: the disease of each patient.
        threshold: the barcode probe's threshold (the paper's -3).
        n_splits: folds.
        seed: the folds' seed (the same for every model).

    Returns:
        One row per model: ``model``, ``features``, ``f1_mean``, ``f1_sd``, ``f1_folds`` (a
        tuple), ``majority_rate``.
    """
    keep = above_threshold(mean_acts, threshold)
    Xb = np.where(keep[None, :], np.asarray(barcodes, dtype=np.float64), 0.0)
    rows = []
    r = probe.cross_validate(Xb, y, n_splits=n_splits, seed=seed)
    rows.append(("barcode probe", f"{int(keep.sum())} latents above {threshold:g}", r))
    for name, E in embeddings.items():
        E = np.asarray(E, dtype=np.float64)
        if E.shape[0] != Xb.shape[0]:
            raise ValueError(f"embedding {name!r} has {E.shape[0]} rows for {Xb.shape[0]} patients")
        r = probe.cross_validate(E, y, n_splits=n_splits, seed=seed, standardize=True)
        rows.append((f"embedding baseline ({name})", f"{E.shape[1]} dims, standardised", r))
    rate = majority_rate(y)
    return pd.DataFrame(
        [
            {
                "model": m,
                "features": f,
                "f1_mean": r["f1_mean"],
                "f1_sd": r["f1_sd"],
                "f1_folds": tuple(float(v) for v in r["f1_folds"]),
                "majority_rate": rate,
            }
            for m, f, r in rows
        ]
    )
