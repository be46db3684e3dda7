"""Ground-truth concept recovery on the synthetic world (beyond the paper).

The synthetic world knows, for every image, the fraction of each 14-px patch of the 224-px image
covered by each concept (``cytosae.synth.load_groundtruth(root).patch_fractions``,
(n_images, C, 16, 16)). A patch *has* concept c when that fraction is >= ``present_at`` (0.5).

Procedure (explicit about memory):

1. One streaming pass over the store encodes the **patch tokens** (CLS dropped). A seeded uniform
   subsample of patches is kept: each patch independently with probability
   ``min(1, max_patches / (n_images * 256))`` (``numpy.random.default_rng(seed)``, drawn batch by
   batch in store order). Their activations are kept as a scipy CSR matrix, so memory is
   ``O(max_patches * L0)`` whatever the dataset size. Every number below is computed on this
   subsample (exact on it; with ``max_patches >= n_images * 256`` it is all patches).
2. Candidates: per concept, the ``n_candidates`` latents with the largest difference of mean
   activation between patches with and without the concept.
3. Patch-level AUROC (Mann-Whitney, ties averaged) of every candidate latent against every concept;
   the best-matching latent of a concept is the candidate with the highest AUROC for it.
4. IoU of the best latent's thresholded patch map vs the concept map, pooled over all subsampled
   patches. The threshold is chosen **on the same data** to maximise IoU among 0 and the 5..95 %
   quantiles of the latent's non-zero activations (``iou``, an optimistic upper bound);
   ``iou_at_zero`` is the IoU of "latent fires" (threshold 0), which involves no choice.
5. ``recovered_fraction`` = fraction of concepts whose best latent has AUROC >= ``auroc_cut`` (0.9),
   among the concepts with at least ``min_positive`` (20) positive sampled patches (rarer concepts
   are reported with ``evaluated=False`` and not counted: an AUROC on a handful of positives is
   noise, and candidates are chosen on the same patches, which favours them).
6. A candidate latent is **monosemantic** when its best concept AUROC is >= ``auroc_cut`` and its
   second-best concept AUROC is < ``second_max`` (0.7): it detects one concept, not a mixture.
   Only candidate latents are examined (others are not a good detector of any concept by step 2).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scipy.stats import rankdata
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

__all__ = [
    "RecoveryResult",
    "align_patch_fractions",
    "collect_patch_sample",
    "concept_recovery",
    "groundtruth_cell_types",
    "linear_ceiling",
    "recover_concepts",
]


@dataclasses.dataclass
class RecoveryResult:
    """Outcome of :func:`recover_concepts` (see module docstring)."""

    per_concept: pd.DataFrame
    latents: pd.DataFrame
    auroc: pd.DataFrame
    recovered_fraction: float
    n_monosemantic: int
    n_patches: int
    params: dict[str, Any]


def align_patch_fractions(
    groundtruth: Any, dataset_root: str | Path, manifest: pd.DataFrame
) -> np.ndarray:
    """Reorder ``groundtruth.patch_fractions`` to the store manifest rows (matched by resolved path)."""
    root = Path(dataset_root)
    key = {str((root / rp).resolve()): i for i, rp in enumerate(groundtruth.index["relpath"])}
    rows = []
    for p in manifest["path"]:
        i = key.get(str(Path(p).resolve()))
        if i is None:
            raise ValueError(f"no ground truth for image {p} under {root}")
        rows.append(i)
    return np.asarray(groundtruth.patch_fractions)[np.asarray(rows, dtype=np.int64)]


def groundtruth_cell_types(
    groundtruth: Any, paths: Sequence[str | Path], missing: str = "?"
) -> list[str]:
    """The ground-truth cell type of each image path (matched by resolved path, as
    :func:`align_patch_fractions`; ``missing`` for an image the ground truth does not know)."""
    root = Path(groundtruth.root)
    cell = {
        str((root / rp).resolve()): str(c)
        for rp, c in zip(groundtruth.index["relpath"], groundtruth.index["cell_type"])
    }
    return [cell.get(str(Path(p).resolve()), missing) for p in paths]


@torch.inference_mode()
def collect_patch_sample(
    sae: Any,
    store: Any,
    patch_fractions_NCGG: np.ndarray,
    *,
    present_at: float = 0.5,
    max_patches: int = 50_000,
    seed: int = 0,
    batch_images: int = 32,
    progress: bool = True,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stream the store; return (M, S) CSR activations of the sampled patches and their (M, C) labels."""
    pf = np.asarray(patch_fractions_NCGG)
    N = int(store.n_images)
    if pf.shape[0] != N:
        raise ValueError(f"patch_fractions has {pf.shape[0]} images, the store {N}")
    C = pf.shape[1]
    P = pf.shape[2] * pf.shape[3]
    p_keep = min(1.0, max_patches / max(N * P, 1))
    rng = np.random.default_rng(seed)
    parts: list[sp.csr_matrix] = []
    labels: list[np.ndarray] = []
    dev = next(iter(sae.parameters())).device if hasattr(sae, "parameters") else torch.device("cpu")
    for idx, tokens in tqdm(
        store.iter_images(batch_images),
        desc="recovery pass",
        disable=not progress,
        total=-(-N // batch_images),
    ):
        idx = np.asarray(idx)
        f = sae.encode(tokens[:, 1:].to(dev, torch.float32))  # (B, P, S)
        if f.shape[1] != P:
            raise ValueError(f"store has {f.shape[1]} patch tokens, ground truth {P} patches")
        y = pf[idx].reshape(len(idx), C, P).transpose(0, 2, 1).reshape(-1, C) >= present_at
        keep = rng.random(len(idx) * P) < p_keep
        if not keep.any():
            continue
        f_sel = f.reshape(-1, f.shape[-1])[torch.as_tensor(np.flatnonzero(keep), device=f.device)]
        r, c = torch.nonzero(f_sel > 0, as_tuple=True)
        vals = f_sel[r, c].float().cpu().numpy()
        parts.append(
            sp.csr_matrix((vals, (r.cpu().numpy(), c.cpu().numpy())), shape=tuple(f_sel.shape))
        )
        labels.append(y[keep])
    S = int(sae.cfg.d_sae)
    A = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, S), dtype=np.float32)
    Y = np.concatenate(labels) if labels else np.zeros((0, C), dtype=bool)
    return A, Y


def _auroc(R_MU: np.ndarray, Y_MC: np.ndarray) -> np.ndarray:
    """AUROC (C, U) from column ranks R (average ties) and boolean labels Y."""
    npos = Y_MC.sum(0).astype(np.float64)
    nneg = Y_MC.shape[0] - npos
    rs = Y_MC.T.astype(np.float64) @ R_MU
    with np.errstate(divide="ignore", invalid="ignore"):
        au = (rs - (npos * (npos + 1) / 2)[:, None]) / (npos * nneg)[:, None]
    return np.where(((npos > 0) & (nneg > 0))[:, None], au, np.nan)


def _best_iou(a: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    nz = a[a > 0]
    ths = np.unique(
        np.concatenate([[0.0], np.quantile(nz, np.linspace(0.05, 0.95, 19)) if nz.size else []])
    )
    best = (-1.0, 0.0)
    iou0 = 0.0
    for t in ths:
        pred = a > t
        union = np.logical_or(pred, y).sum()
        iou = float(np.logical_and(pred, y).sum() / union) if union else 0.0
        if t == 0.0:
            iou0 = iou
        if iou > best[0]:
            best = (iou, float(t))
    return best[0], best[1], iou0


def recover_concepts(
    A_MS: sp.spmatrix | np.ndarray,
    Y_MC: np.ndarray,
    concepts: Sequence[str],
    *,
    n_candidates: int = 32,
    auroc_cut: float = 0.9,
    second_max: float = 0.7,
    min_positive: int = 20,
) -> RecoveryResult:
    """Best-matching latent per concept, AUROC, IoU, recovered fraction, monosemantic latents."""
    A = sp.csr_matrix(A_MS, dtype=np.float64)
    Y = np.asarray(Y_MC, dtype=bool)
    M, S = A.shape
    C = Y.shape[1]
    if len(concepts) != C:
        raise ValueError(f"{len(concepts)} concept names for {C} label columns")
    npos = Y.sum(0)
    nneg = M - npos
    with np.errstate(divide="ignore", invalid="ignore"):
        mpos = np.asarray(A.T @ Y.astype(np.float64)).T / npos[:, None]
        mneg = np.asarray(A.T @ (~Y).astype(np.float64)).T / nneg[:, None]
    diff = np.nan_to_num(mpos - mneg, nan=-np.inf)  # (C, S)
    k = min(n_candidates, S)
    cand = np.unique(np.argsort(-diff, axis=1, kind="stable")[:, :k])
    D = A[:, cand].toarray()
    R = rankdata(D, axis=0, method="average") if M else D
    au = _auroc(R, Y)  # (C, U)
    au_df = pd.DataFrame(au, index=pd.Index(list(concepts), name="concept"), columns=cand)
    rows = []
    for c, name in enumerate(concepts):
        if np.all(np.isnan(au[c])):
            rows.append((name, -1, np.nan, np.nan, np.nan, np.nan, int(npos[c])))
            continue
        j = int(np.nanargmax(au[c]))
        iou, thr, iou0 = _best_iou(D[:, j], Y[:, c])
        rows.append((name, int(cand[j]), float(au[c, j]), iou, thr, iou0, int(npos[c])))
    per = pd.DataFrame(
        rows,
        columns=[
            "concept",
            "best_latent",
            "auroc",
            "iou",
            "iou_threshold",
            "iou_at_zero",
            "n_positive",
        ],
    )
    per["evaluated"] = per["auroc"].notna() & (per["n_positive"] >= min_positive)
    lat_rows = []
    for j, s in enumerate(cand):
        col = au[:, j]
        if np.all(np.isnan(col)):
            continue
        order = np.argsort(-np.nan_to_num(col, nan=-1.0), kind="stable")
        b = order[0]
        second = float(col[order[1]]) if C > 1 else np.nan
        mono = bool(col[b] >= auroc_cut and (C == 1 or np.nan_to_num(second, nan=0.0) < second_max))
        lat_rows.append((int(s), concepts[b], float(col[b]), second, mono))
    lat = pd.DataFrame(
        lat_rows, columns=["latent", "best_concept", "best_auroc", "second_auroc", "monosemantic"]
    )
    valid = per["evaluated"]
    frac = float((per.loc[valid, "auroc"] >= auroc_cut).mean()) if valid.any() else 0.0
    return RecoveryResult(
        per_concept=per,
        latents=lat,
        auroc=au_df,
        recovered_fraction=frac,
        n_monosemantic=int(lat["monosemantic"].sum()) if len(lat) else 0,
        n_patches=M,
        params={
            "n_candidates": n_candidates,
            "auroc_cut": auroc_cut,
            "second_max": second_max,
            "min_positive": min_positive,
        },
    )


def concept_recovery(
    sae: Any,
    store: Any,
    patch_fractions_NCGG: np.ndarray,
    concepts: Sequence[str],
    *,
    present_at: float = 0.5,
    max_patches: int = 50_000,
    seed: int = 0,
    n_candidates: int = 32,
    auroc_cut: float = 0.9,
    second_max: float = 0.7,
    min_positive: int = 20,
    batch_images: int = 32,
    progress: bool = True,
) -> RecoveryResult:
    """Streaming pass + :func:`recover_concepts` (patch_fractions rows in store-manifest order)."""
    A, Y = collect_patch_sample(
        sae,
        store,
        patch_fractions_NCGG,
        present_at=present_at,
        max_patches=max_patches,
        seed=seed,
        batch_images=batch_images,
        progress=progress,
    )
    res = recover_concepts(
        A,
        Y,
        concepts,
        n_candidates=n_candidates,
        auroc_cut=auroc_cut,
        second_max=second_max,
        min_positive=min_positive,
    )
    res.params.update({"present_at": present_at, "max_patches": max_patches, "seed": seed})
    log.info(
        "concept recovery: %.0f%% of concepts with AUROC >= %.2f; %d monosemantic latents",
        100 * res.recovered_fraction,
        auroc_cut,
        res.n_monosemantic,
    )
    return res


@torch.inference_mode()
def linear_ceiling(
    store: Any,
    patch_fractions_NCGG: np.ndarray,
    concepts: Sequence[str],
    *,
    present_at: float = 0.5,
    max_patches: int = 50_000,
    seed: int = 0,
    min_positive: int = 20,
    auroc_cut: float = 0.9,
    ridges: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
    held_out: bool = True,
    batch_images: int = 32,
) -> pd.DataFrame:
    """How well a linear direction of the tokens separates each concept: a ceiling for a latent.

    A latent's patch activation is ``ReLU(w . x + b)`` of the token ``x``: a monotone function of
    one linear direction, so its AUROC for a concept is at most that of the best direction. This
    looks for the best direction WITH supervision, on the same seeded patch subsample as
    :func:`collect_patch_sample` (the same ``max_patches``, ``seed`` and ``batch_images`` give the
    same patches): Fisher's linear discriminant ``w = (Sigma + r * tr(Sigma) / D * I)^-1 (mu_pos -
    mu_neg)`` per concept (``Sigma`` the tokens' covariance), fitted on the patches of the even
    images and scored on the odd ones, then the other way round (the mean of the two held-out
    AUROCs), for every ridge ``r`` of ``ridges``; the ceiling is the best ridge's, chosen per
    concept on the held-out AUROC (which flatters the ceiling a little: the right side to err on).
    ``held_out=False`` fits and scores on all patches (much flattered for rare concepts, whose
    few positives a 768-d direction can fit). A concept whose ceiling is below ``auroc_cut`` is
    not linearly separable in these tokens, so no SAE latent recovers it, however wide or
    long-trained the SAE.

    Returns:
        One row per concept: ``concept``, ``linear_auroc`` (NaN without positives or negatives in
        a half), ``ridge`` (the best), ``n_positive``, ``evaluated`` (as :func:`recover_concepts`:
        at least ``min_positive`` positive patches), ``separable`` (``linear_auroc >= auroc_cut``).
    """
    pf = np.asarray(patch_fractions_NCGG)
    N = int(store.n_images)
    if pf.shape[0] != N:
        raise ValueError(f"patch_fractions has {pf.shape[0]} images, the store {N}")
    C = pf.shape[1]
    P = pf.shape[2] * pf.shape[3]
    if len(concepts) != C:
        raise ValueError(f"{len(concepts)} concept names for {C} ground-truth concepts")
    p_keep = min(1.0, max_patches / max(N * P, 1))
    rng = np.random.default_rng(seed)
    xs, ys, imgs = [], [], []
    for idx, tokens in store.iter_images(batch_images):
        idx = np.asarray(idx)
        x = tokens[:, 1:].reshape(-1, tokens.shape[-1]).numpy()
        if x.shape[0] != len(idx) * P:
            raise ValueError(f"store has {tokens.shape[1] - 1} patch tokens, ground truth {P}")
        y = pf[idx].reshape(len(idx), C, P).transpose(0, 2, 1).reshape(-1, C) >= present_at
        keep = rng.random(len(idx) * P) < p_keep
        xs.append(x[keep].astype(np.float64))
        ys.append(y[keep])
        imgs.append(np.repeat(idx, P)[keep])
    X = np.concatenate(xs)
    Y = np.concatenate(ys)
    half = np.concatenate(imgs) % 2
    splits = [(half != k, half == k) for k in (0, 1)] if held_out else [(slice(None),) * 2]
    ridges = [float(r) for r in ridges]
    au = np.full((len(ridges), len(splits), C), np.nan)
    for k, (tr, te) in enumerate(splits):
        Xtr, Ytr = X[tr], Y[tr]
        mu = Xtr.mean(0)
        Sigma = np.cov(Xtr - mu, rowvar=False)
        for j, r in enumerate(ridges):
            W, ok = _fisher_directions(Sigma, Xtr, Ytr, r)
            R = rankdata(X[te] @ W, axis=0, method="average")
            a = _auroc(R, Y[te])  # (C, C): row = concept, column = direction
            au[j, k] = np.where(ok, np.diag(a), np.nan)
    per_ridge = np.where(np.isnan(au).any(1), np.nan, np.nan_to_num(au).mean(1))  # (ridges, C)
    best = np.argmax(np.nan_to_num(per_ridge, nan=-1.0), axis=0)
    lin = per_ridge[best, np.arange(C)]
    out = pd.DataFrame(
        {
            "concept": list(concepts),
            "linear_auroc": lin,
            "ridge": np.asarray(ridges)[best],
            "n_positive": Y.sum(0).astype(int),
        }
    )
    out["evaluated"] = out["linear_auroc"].notna() & (out["n_positive"] >= min_positive)
    out["separable"] = out["linear_auroc"] >= auroc_cut
    return out


def _fisher_directions(
    Sigma: np.ndarray, X: np.ndarray, Y: np.ndarray, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """(D, C) Fisher directions of the concepts and a mask of those with positives and negatives."""
    D = Sigma.shape[0]
    S = Sigma + ridge * np.trace(Sigma) / D * np.eye(D)
    npos = Y.sum(0)
    ok = (npos > 1) & (npos < Y.shape[0] - 1)
    Yf = Y.astype(np.float64)
    mpos = (Yf.T @ X) / np.maximum(npos, 1)[:, None]
    mneg = ((1 - Yf).T @ X) / np.maximum(Y.shape[0] - npos, 1)[:, None]
    return np.linalg.solve(S, (mpos - mneg).T), ok
