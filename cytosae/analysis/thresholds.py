"""Concept counts versus the log10 mean-activation threshold, and KMeans sampling for review.

"Concepts at threshold t" (paper Sec. 3, Fig. 2A) = latents with ``log10(mean activation) > t``.
A latent that never fired (NaN mean activation) or has mean activation <= 0 never counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "above_threshold",
    "check_threshold",
    "concept_counts",
    "log10_safe",
    "review_clusters",
    "sample_latents_for_review",
]


def log10_safe(x: np.ndarray) -> np.ndarray:
    """log10 of ``x`` with NaN where ``x`` is NaN or <= 0 (no warnings)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = np.log10(x[ok])
    return out


def check_threshold(threshold: float, where: str = "threshold") -> float:
    """``threshold`` as a float; NaN (which would silently keep no latent) is an error."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where} must be a number (log10 mean activation), got {threshold!r}"
        ) from None
    if np.isnan(t):
        raise ValueError(f"{where} must be a number (log10 mean activation), got NaN")
    return t


def above_threshold(mean_acts: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of latents with log10(mean act) > threshold (NaN never counts)."""
    threshold = check_threshold(threshold)
    lm = log10_safe(mean_acts)
    return np.where(np.isnan(lm), False, lm > threshold)


def concept_counts(
    mean_acts: np.ndarray, thresholds: Iterable[float] = range(-6, 1)
) -> pd.DataFrame:
    """Number of latents whose log10 mean activation exceeds each threshold.

    Returns:
        DataFrame with columns ``threshold`` and ``n_concepts``.
    """
    ts = [check_threshold(t) for t in thresholds]
    return pd.DataFrame(
        {"threshold": ts, "n_concepts": [int(above_threshold(mean_acts, t).sum()) for t in ts]}
    )


def _arrays(stats_or_arrays: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(stats_or_arrays, tuple):
        mean_acts, sparsity = stats_or_arrays
    else:
        mean_acts, sparsity = stats_or_arrays.mean_acts, stats_or_arrays.sparsity
    return np.asarray(mean_acts, dtype=np.float64), np.asarray(sparsity, dtype=np.float64)


def review_clusters(
    stats_or_arrays: Any, threshold: float = -3.0, k: int = 10, seed: int = 42, n_init: int = 10
) -> pd.DataFrame:
    """The KMeans clusters of the paper's expert-review sampling, for every latent clustered.

    Features are (log10 mean activation, log10 frequency) of latents with log10 mean act >
    ``threshold`` (and frequency > 0); ``KMeans(n_clusters=k, random_state=seed, n_init=n_init)``.

    Returns:
        DataFrame (latent, cluster, log10_mean_act, log10_frequency), by latent.
    """
    from sklearn.cluster import KMeans

    mean_acts, sparsity = _arrays(stats_or_arrays)
    lm, lf = log10_safe(mean_acts), log10_safe(sparsity)
    keep = above_threshold(mean_acts, threshold) & ~np.isnan(lf)
    latents = np.flatnonzero(keep)
    if latents.size < k:
        raise ValueError(
            f"only {latents.size} latents above threshold {threshold}; need at least k={k}"
        )
    X = np.stack([lm[latents], lf[latents]], 1)
    km = KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit(X)
    return pd.DataFrame(
        {
            "latent": latents,
            "cluster": km.labels_.astype(np.int64),
            "log10_mean_act": lm[latents],
            "log10_frequency": lf[latents],
        }
    )


def sample_latents_for_review(
    stats_or_arrays: Any,
    threshold: float = -3.0,
    k: int = 10,
    per_cluster: int = 5,
    seed: int = 42,
    n_init: int = 10,
) -> pd.DataFrame:
    """The paper's expert-review sampling: KMeans on latents above ``threshold``, ``per_cluster`` each.

    Features are (log10 mean activation, log10 frequency) of latents with log10 mean act > threshold
    (and frequency > 0). ``KMeans(n_clusters=k, random_state=seed, n_init=n_init)``
    (:func:`review_clusters`); then from each cluster ``min(per_cluster, size)`` latents are drawn
    without replacement by ``np.random.default_rng(seed)`` (clusters visited in label order).

    Args:
        stats_or_arrays: a ``LatentStats``-like object (``mean_acts``, ``sparsity``) or a tuple
            ``(mean_acts, sparsity)``.

    Returns:
        DataFrame (latent, cluster, log10_mean_act, log10_frequency), sorted by (cluster, latent).
    """
    clusters = review_clusters(stats_or_arrays, threshold, k, seed, n_init)
    latents = clusters["latent"].to_numpy()
    labels = clusters["cluster"].to_numpy()
    lm = clusters["log10_mean_act"].to_numpy()
    lf = clusters["log10_frequency"].to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(latents[members], size=min(per_cluster, members.size), replace=False)
        pos = {int(s): int(i) for s, i in zip(latents[members], members)}
        for s in np.sort(chosen):
            i = pos[int(s)]
            rows.append((int(s), c, float(lm[i]), float(lf[i])))
    return pd.DataFrame(rows, columns=["latent", "cluster", "log10_mean_act", "log10_frequency"])
