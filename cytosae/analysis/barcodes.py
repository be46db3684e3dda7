"""Patient and disease barcodes (paper Eq. 2-3, Fig. 1B).

* Eq. 2: ``a_ij[s] = I(h_ij[s] > tau)``; image count ``a_i[s] = sum_j a_ij[s]`` -- this is
  ``LatentStats.counts`` (patch tokens only by default).
* Eq. 3 (paper, ``variant="paper"``): patient barcode ``a_p = mean_i a_i`` over the patient's
  images; disease barcode ``a_d = mean_p a_p`` over the disease's patients.
* The authors' code (``variant="official"``): counts over all 257 tokens including CLS at tau 0.2
  (compute the stats with ``encode_pass(..., tau=0.2, include_cls_in_counts=True)``) and the
  patient row **summed** and divided by the constant 49152 instead of the image count, so
  barcodes scale with the number of images per patient.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)

__all__ = [
    "OFFICIAL_DIVISOR",
    "barcodes_from_stats",
    "disease_barcodes",
    "image_counts",
    "patient_barcodes",
]

OFFICIAL_DIVISOR = 49152


def image_counts(stats_or_counts: Any) -> sp.csr_matrix:
    """The (n_images, S) sparse Eq. 2 counts of a ``LatentStats`` (or a matrix passed through)."""
    counts = getattr(stats_or_counts, "counts", stats_or_counts)
    if counts is None:
        raise ValueError(
            "these statistics have no per-image counts (e.g. the authors' published stats)"
        )
    return sp.csr_matrix(counts)


def _group_matrix(keys: Sequence[Any]) -> tuple[sp.csr_matrix, np.ndarray]:
    keys_arr = np.asarray([str(k) for k in keys])
    uniq, inv = np.unique(keys_arr, return_inverse=True)
    n = keys_arr.shape[0]
    G = sp.csr_matrix((np.ones(n), (inv, np.arange(n))), shape=(uniq.shape[0], n))
    return G, uniq


def patient_barcodes(
    counts: Any,
    patients: Sequence[Any],
    *,
    variant: str = "paper",
    divisor: float = OFFICIAL_DIVISOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Patient barcodes (P, S) and the sorted patient ids (P,).

    Args:
        counts: (n_images, S) image counts (sparse or dense) or a ``LatentStats``.
        patients: patient id of each image row; rows with an empty id are dropped.
        variant: ``"paper"`` (mean over the patient's images) or ``"official"`` (sum / divisor).
        divisor: the constant of the official variant (49152).
    """
    if variant not in ("paper", "official"):
        raise ValueError(f"variant must be 'paper' or 'official', got {variant!r}")
    C = image_counts(counts).astype(np.float64)
    pats = np.asarray([str(p) for p in patients])
    if pats.shape[0] != C.shape[0]:
        raise ValueError(f"{pats.shape[0]} patient ids for {C.shape[0]} image rows")
    keep = pats != ""
    if not keep.all():
        log.warning("dropping %d images without a patient id", int((~keep).sum()))
        C, pats = C[np.flatnonzero(keep)], pats[keep]
    G, ids = _group_matrix(pats)
    sums = np.asarray((G @ C).todense())
    if variant == "paper":
        n_per = np.asarray(G.sum(1)).ravel()
        return sums / n_per[:, None], ids
    return sums / float(divisor), ids


def disease_barcodes(
    patient_barcodes_PS: np.ndarray, patient_disease: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Disease barcodes (D, S) = mean of the patient barcodes per disease, and the sorted disease ids."""
    X = np.asarray(patient_barcodes_PS, dtype=np.float64)
    dis = np.asarray([str(d) for d in patient_disease])
    if dis.shape[0] != X.shape[0]:
        raise ValueError(f"{dis.shape[0]} disease labels for {X.shape[0]} patient barcodes")
    G, ids = _group_matrix(dis)
    n_per = np.asarray(G.sum(1)).ravel()
    return np.asarray(G @ X) / n_per[:, None], ids


def barcodes_from_stats(
    stats: Any, manifest: pd.DataFrame, *, variant: str = "paper"
) -> tuple[np.ndarray, pd.DataFrame]:
    """Patient barcodes from ``stats.counts`` and a manifest (row i = image i).

    Returns:
        (P, S) barcodes and a DataFrame ``patient``, ``disease``, ``n_images`` in the same row order.
    """
    if variant == "official" and not stats.meta.get("include_cls_in_counts", True):
        log.warning(
            "official barcode variant on counts without CLS: compute with include_cls_in_counts=True"
        )
    pats = manifest["patient"].astype(str).to_numpy()
    X, ids = patient_barcodes(stats, pats, variant=variant)
    sub = manifest[manifest["patient"].astype(str) != ""]
    info = sub.groupby(sub["patient"].astype(str)).agg(
        disease=("disease", lambda s: s.astype(str).mode().iloc[0]), n_images=("disease", "size")
    )
    info = info.reindex(ids).reset_index().rename(columns={"index": "patient"})
    info.columns = ["patient", "disease", "n_images"]
    return X, info
