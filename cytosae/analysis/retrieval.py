"""Patch retrieval and segmentation maps (paper Fig. 3).

Patch indexing (one convention everywhere): ``patch_index`` is 0-based in the 16x16 grid,
row-major (``row = patch_index // 16``, ``col = patch_index % 16``); its token is
``patch_index + 1`` because token 0 is CLS. The authors' code drops CLS first and then reads the
token one position off from the tile it highlights; we do not (``test_retrieval`` checks that the
tile drawn by :func:`highlight_patch` is the tile whose token :func:`patch_latents` reads).

Segmentation maps: the 16x16 patch activations upsampled by nearest neighbour to the image size.
``mode="scaled"`` (paper) multiplies each patch by its activation normalised by the map maximum;
``mode="binary"`` (code) keeps patches where the activation is > 0 and darkens the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

log = logging.getLogger(__name__)

__all__ = [
    "GRID",
    "highlight_patch",
    "latent_patch_map",
    "load_image",
    "patch_cell",
    "patch_latents",
    "patch_to_token",
    "query_patch",
    "reference_images",
    "reference_table",
    "retrieval_latents",
    "segmentation_map",
]

GRID = 16


def patch_to_token(patch_index: int, grid: int = GRID) -> int:
    """Token index of a 0-based row-major grid patch (token 0 is CLS)."""
    if not 0 <= patch_index < grid * grid:
        raise ValueError(f"patch_index must be in [0, {grid * grid}), got {patch_index}")
    return patch_index + 1


def patch_cell(patch_index: int, grid: int = GRID) -> tuple[int, int]:
    """(row, col) of a patch in the grid."""
    patch_to_token(patch_index, grid)
    return divmod(patch_index, grid)


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (``store.manifest["path"]``) exactly as the extraction read it
    (:func:`cytosae.data.imageio.read_rgb`: EXIF orientation applied, 16-bit scaled), so that
    patch maps line up with the tokens."""
    from cytosae.data.imageio import ImageReadError, read_rgb

    try:
        return read_rgb(path)
    except ImageReadError as exc:
        raise ValueError(f"could not open image {path}: {exc.reason}") from exc


@torch.inference_mode()
def patch_latents(
    sae: Any,
    tokens_TD: torch.Tensor,
    patch_index: int,
    *,
    stats: Any = None,
    max_mean_act: float | None = 0.1,
    max_sparsity: float | None = None,
    max_patch_frequency: float | None = None,
    top_n: int = 2,
) -> pd.DataFrame:
    """Latents activated by one patch token, with the "fires everywhere" filter and the top-n.

    Args:
        sae: module with ``encode``.
        tokens_TD: (T, D) tokens of one image (T = 1 + grid**2, CLS first).
        patch_index: 0-based row-major grid index (token ``patch_index + 1``).
        stats: ``LatentStats`` of a reference dataset for the filter (None: no filtering).
        max_mean_act: drop latents whose dataset mean activation is > this (the code: 0.1).
        max_sparsity: drop latents whose activation frequency is > this (None: off; 1.0 drops
            only those that fire on every image... use e.g. 0.99).
        max_patch_frequency: drop latents that fire on more than this fraction of all patch
            tokens of the dataset (``stats.patch_frequency``; None: off). Scale-free, so it also
            works where activations are not on the paper's scale (e.g. a random-init backbone).
        top_n: how many of the remaining latents to mark as top (paper 2, code 5).

    Returns:
        DataFrame ``latent``, ``activation``, ``dropped``, ``top`` for every latent with activation
        > 0, sorted by activation descending (ties by latent index).
    """
    tok = patch_to_token(patch_index, round((tokens_TD.shape[0] - 1) ** 0.5))
    f_S = sae.encode(tokens_TD[tok : tok + 1].float())[0].cpu().numpy()
    act = np.flatnonzero(f_S > 0)
    vals = f_S[act]
    order = np.lexsort((act, -vals))
    act, vals = act[order], vals[order]
    dropped = np.zeros(act.shape[0], dtype=bool)
    if stats is not None:
        if max_mean_act is not None:
            ma = np.nan_to_num(np.asarray(stats.mean_acts, dtype=np.float64)[act], nan=0.0)
            dropped |= ma > max_mean_act
        if max_sparsity is not None:
            dropped |= np.asarray(stats.sparsity, dtype=np.float64)[act] > max_sparsity
        if max_patch_frequency is not None:
            dropped |= (
                np.asarray(stats.patch_frequency, dtype=np.float64)[act] > max_patch_frequency
            )
    top = np.zeros_like(dropped)
    top[np.flatnonzero(~dropped)[:top_n]] = True
    return pd.DataFrame(
        {"latent": act.astype(np.int64), "activation": vals, "dropped": dropped, "top": top}
    )


def reference_images(
    stats: Any, latent: int, n: int | None = None, manifest: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Top reference images of a latent (empty slots skipped).

    Returns:
        DataFrame ``rank``, ``image_index``, ``activation``, ``label`` (and ``path``, ``dataset``
        when ``manifest`` is given).
    """
    idx = np.asarray(stats.top_indices[latent])
    val = np.asarray(stats.top_values[latent])
    labs = np.asarray(stats.top_label_indices[latent])
    ok = idx >= 0
    names = list(stats.label_names)
    rows = pd.DataFrame(
        {
            "rank": np.arange(idx.shape[0])[ok],
            "image_index": idx[ok],
            "activation": val[ok],
            "label": [names[i] if 0 <= i < len(names) else str(i) for i in labs[ok]],
        }
    )
    if n is not None:
        rows = rows.head(n)
    if manifest is not None and len(rows):
        sub = manifest.iloc[rows["image_index"].to_numpy()]
        rows["path"] = sub["path"].to_numpy()
        rows["dataset"] = sub["dataset"].to_numpy()
    return rows.reset_index(drop=True)


def reference_table(
    sources: Mapping[str, tuple[Any, pd.DataFrame]],
    latents: Sequence[int],
    n: int | None = None,
) -> pd.DataFrame:
    """Reference images of several latents in several datasets, one row per image.

    Args:
        sources: dataset name -> (``LatentStats``, manifest) of that dataset.
        latents: the latents, in the order wanted.
        n: reference images per latent and dataset (None: all kept).

    Returns:
        DataFrame ``latent``, ``dataset`` (the key in ``sources``), then the columns of
        :func:`reference_images` (``rank``, ``image_index``, ``activation``, ``label``, ``path``),
        latent-major in the order of ``latents``, then of ``sources``, then by rank.
    """
    columns = ["latent", "dataset", "rank", "image_index", "activation", "label", "path"]
    parts = []
    for s in latents:
        for name, (stats, manifest) in sources.items():
            ref = reference_images(stats, int(s), n, manifest)
            if len(ref):
                parts.append(ref.assign(latent=int(s), dataset=name))
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True).reindex(columns=columns)


def query_patch(
    labels: Sequence[str] | np.ndarray | pd.Series,
    fractions: np.ndarray | None = None,
    *,
    cell_type: str = "eosinophil",
    patch: int = 57,
) -> tuple[int, int]:
    """The query of Fig. 3: an image of ``cell_type`` and one of its patches.

    Args:
        labels: the label of every image (``manifest["label"]``).
        fractions: per image, the fraction of every patch covered by the concept to query, shape
            (n_images, grid, grid) or (n_images, grid * grid), e.g. the eosinophilic-granule
            column of :func:`cytosae.analysis.recovery.align_patch_fractions` (ground truth of the
            synthetic world). None: the paper's example.
        cell_type: the label of the query image.
        patch: the patch of the paper's example (used without ``fractions``).

    Returns:
        ``(image_index, patch_index)``: with ``fractions``, the ``cell_type`` image whose best
        patch is the most covered, and that patch (first on ties); without, ``patch`` of the
        first ``cell_type`` image.

    Raises:
        ValueError: when no image is labelled ``cell_type``.
    """
    lab = np.asarray(labels)
    candidates = np.flatnonzero(lab == cell_type)
    if candidates.size == 0:
        raise ValueError(f"no image labelled {cell_type!r}")
    if fractions is None:
        return int(candidates[0]), int(patch)
    f = np.asarray(fractions).reshape(lab.shape[0], -1)
    image = int(candidates[np.argmax(f[candidates].max(1))])
    return image, int(np.argmax(f[image]))


def retrieval_latents(hits: pd.DataFrame, top_n: int) -> tuple[np.ndarray, bool]:
    """The latents Fig. 3 draws from :func:`patch_latents`'s table.

    Returns:
        ``(latents, fallback)``: the latents marked ``top`` and False; or, when every active
        latent was dropped as firing everywhere (tiny runs), the ``top_n`` most active and True.
    """
    top = hits.loc[hits["top"], "latent"].to_numpy()
    if len(top):
        return top, False
    return hits["latent"].to_numpy()[:top_n], True


@torch.inference_mode()
def latent_patch_map(sae: Any, tokens_TD: torch.Tensor, latent: int) -> np.ndarray:
    """(T,) activations of one latent over all tokens of one image (CLS first)."""
    return sae.encode(tokens_TD.float())[:, latent].cpu().numpy()


def _grid(acts: np.ndarray) -> np.ndarray:
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim == 2:
        return a
    n = a.shape[0]
    g = round(n**0.5)
    if g * g == n:
        return a.reshape(g, g)
    g = round((n - 1) ** 0.5)
    if g * g == n - 1:
        return a[1:].reshape(g, g)  # drop CLS
    raise ValueError(f"cannot arrange {n} activations on a square grid (with or without CLS)")


def _upsample(grid_GG: np.ndarray, H: int, W: int) -> np.ndarray:
    g = grid_GG.shape[0]
    rows = np.minimum(np.arange(H) * g // H, g - 1)
    cols = np.minimum(np.arange(W) * g // W, g - 1)
    return grid_GG[rows][:, cols]


def segmentation_map(
    acts_T: np.ndarray, image: Image.Image | np.ndarray, mode: str = "scaled", dim: float = 0.25
) -> np.ndarray:
    """Concept map of one latent over one image.

    Args:
        acts_T: (257,) with CLS, (256,) or (16, 16) activations of the latent.
        image: PIL image or (H, W, 3) uint8 array.
        mode: ``"scaled"`` (each patch times its activation / max) or ``"binary"`` (patches with
            activation 0 multiplied by ``dim``).
        dim: darkening factor of the binary mode.

    Returns:
        (H, W, 3) uint8 image.
    """
    img = np.asarray(
        image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64
    )
    H, W = img.shape[:2]
    up = _upsample(_grid(acts_T), H, W)
    if mode == "scaled":
        m = up.max()
        w = np.clip(up / m, 0, 1) if m > 0 else np.zeros_like(up)
    elif mode == "binary":
        w = np.where(up > 0, 1.0, dim)
    else:
        raise ValueError(f"mode must be 'scaled' or 'binary', got {mode!r}")
    return np.clip(np.rint(img * w[..., None]), 0, 255).astype(np.uint8)


def highlight_patch(image_shape: tuple[int, int], patch_index: int, grid: int = GRID) -> np.ndarray:
    """(H, W) bool mask of the pixels of one grid patch (same nearest mapping as the maps)."""
    r, c = patch_cell(patch_index, grid)
    H, W = image_shape
    cell = np.zeros((grid, grid))
    cell[r, c] = 1
    return _upsample(cell, H, W) > 0
