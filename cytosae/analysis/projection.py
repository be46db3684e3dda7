"""Seeded UMAP maps: patients by their barcodes, latents by their decoder directions.

``umap.UMAP(random_state=seed, transform_seed=seed, n_jobs=1)``: with a ``random_state`` and one
thread umap-learn is deterministic, so the same inputs give the same coordinates bit for bit
(``tests/test_projection.py`` checks two runs). umap-learn (and numba, which compiles its kernels
on the first call of a process, some seconds) is imported only here.

* :func:`patient_map`: one point per patient, from the barcode over the latents above the concept
  threshold (``log1p`` of the mean counts; the probe's features).
* :func:`latent_map`: one point per latent above the threshold (the latents the expert-review
  KMeans clusters), from its unit decoder direction ``W_dec[s]`` with the cosine metric, labelled
  with the KMeans cluster it was sampled from (:func:`cytosae.analysis.thresholds.review_clusters`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cytosae.analysis.thresholds import above_threshold, review_clusters

__all__ = ["latent_map", "patient_map", "umap_coords"]


def umap_coords(
    X: np.ndarray,
    *,
    seed: int = 42,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
) -> np.ndarray:
    """(n, 2) UMAP coordinates of the rows of ``X``, seeded and single-threaded (deterministic).

    ``n_neighbors`` is capped at ``n - 1``.

    Raises:
        ValueError: fewer than 3 rows.
    """
    import warnings

    import umap

    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {X.shape[0]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notices about n_jobs with a random_state
        reducer = umap.UMAP(
            n_neighbors=min(n_neighbors, X.shape[0] - 1),
            min_dist=min_dist,
            metric=metric,
            random_state=seed,
            transform_seed=seed,
            n_jobs=1,
        )
        return np.asarray(reducer.fit_transform(X), dtype=np.float64)


def patient_map(
    barcodes: np.ndarray,
    patients: pd.DataFrame,
    mean_acts: np.ndarray,
    *,
    threshold: float = -3.0,
    seed: int = 42,
    n_neighbors: int = 10,
) -> pd.DataFrame:
    """UMAP of the patients' barcodes (latents above ``threshold``, ``log1p`` counts).

    Returns:
        ``patients`` with columns ``umap_x``, ``umap_y`` added (same row order).
    """
    keep = above_threshold(mean_acts, threshold)
    if not keep.any():
        raise ValueError(f"no latent above threshold {threshold}")
    X = np.log1p(np.asarray(barcodes, dtype=np.float64)[:, keep])
    xy = umap_coords(X, seed=seed, n_neighbors=n_neighbors, min_dist=0.3)
    out = patients.reset_index(drop=True).copy()
    out["umap_x"], out["umap_y"] = xy[:, 0], xy[:, 1]
    return out


def latent_map(
    decoder: np.ndarray,
    stats: Any,
    *,
    threshold: float = -3.0,
    k: int = 10,
    seed: int = 42,
    sampled: Any = None,
    n_neighbors: int = 15,
) -> pd.DataFrame:
    """UMAP of the decoder directions of the latents the expert-review KMeans clusters.

    Args:
        decoder: ``W_dec`` (d_sae, d_in).
        stats: ``LatentStats`` of the training dataset (``mean_acts``, ``sparsity``).
        threshold: the concept threshold of the sampling.
        k: KMeans clusters (the paper's 10).
        seed: seed of KMeans and UMAP (the paper's sampling seed is 42).
        sampled: latents drawn for review (marked ``sampled``), e.g.
            :func:`~cytosae.analysis.thresholds.sample_latents_for_review`'s ``latent`` column.

    Returns:
        :func:`~cytosae.analysis.thresholds.review_clusters` with ``umap_x``, ``umap_y`` and
        ``sampled`` added.
    """
    clusters = review_clusters(stats, threshold, k=k, seed=seed)
    W = np.asarray(decoder, dtype=np.float64)[clusters["latent"].to_numpy()]
    W = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    xy = umap_coords(W, seed=seed, n_neighbors=n_neighbors, metric="cosine")
    out = clusters.copy()
    out["umap_x"], out["umap_y"] = xy[:, 0], xy[:, 1]
    chosen = set() if sampled is None else {int(s) for s in np.asarray(sampled).ravel()}
    out["sampled"] = out["latent"].isin(chosen)
    return out
