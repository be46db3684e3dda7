"""Differential latents between two diseases (paper Fig. 5).

For disease barcodes ``a_d1`` and ``a_d2``: the top-N latents of ``a_d1 - a_d2`` (more frequent in
d1) and the top-N of ``a_d2 - a_d1``; ties broken by latent index. Only latents with a strictly
positive difference are returned, so fewer than N may come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cytosae.analysis.retrieval import reference_images

__all__ = ["differential_latents", "differential_reference_images"]


def differential_latents(
    disease_barcodes_DS: np.ndarray, disease_ids: Sequence[str], d1: str, d2: str, n: int = 50
) -> pd.DataFrame:
    """Top-``n`` latents each way.

    Returns:
        DataFrame ``direction`` (``"d1>d2"`` / ``"d2>d1"``), ``rank``, ``latent``, ``diff``
        (favoured minus other), ``value_d1``, ``value_d2``.
    """
    ids = [str(d) for d in disease_ids]
    for d in (d1, d2):
        if d not in ids:
            raise ValueError(f"disease {d!r} not among {ids}")
    X = np.asarray(disease_barcodes_DS, dtype=np.float64)
    a, b = X[ids.index(d1)], X[ids.index(d2)]
    rows = []
    for direction, diff in (("d1>d2", a - b), ("d2>d1", b - a)):
        order = np.lexsort((np.arange(diff.shape[0]), -diff))
        order = [s for s in order[:n] if diff[s] > 0]
        for rank, s in enumerate(order):
            rows.append((direction, rank, int(s), float(diff[s]), float(a[s]), float(b[s])))
    return pd.DataFrame(
        rows, columns=["direction", "rank", "latent", "diff", "value_d1", "value_d2"]
    )


def differential_reference_images(
    diff: pd.DataFrame, stats: Any, n_images: int = 5, manifest: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Reference images of each differential latent (one row per image, ``latent``/``direction`` added)."""
    parts = []
    for row in diff.itertuples():
        ref = reference_images(stats, row.latent, n_images, manifest)
        ref.insert(0, "latent", row.latent)
        ref.insert(0, "direction", row.direction)
        parts.append(ref)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
