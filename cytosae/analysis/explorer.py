"""The per-latent data of the latent explorer (notebook 10): one cached pass, pure look-ups.

The explorer shows one latent at a time. Everything it draws is looked up in arrays computed once
per (SAE, token store, statistics), so moving the slider never encodes anything:

* ``acts``: image-level activations ``v_i[s]`` (mean over all T tokens, CLS included: the
  definition of :mod:`cytosae.analysis.latents`) of every image and latent, a sparse CSC matrix
  (n_images, S) holding only the positive entries. It gives each latent's activation histogram.
* ``maps``: the 16 x 16 patch activations (CLS excluded) of each latent over its top ``n_maps``
  reference images (``stats.top_indices[:, :n_maps]``), float16 (S, n_maps, 256); NaN where a
  slot has no image. They are Fig. 3's segmentation maps (:func:`~cytosae.analysis.retrieval.segmentation_map`).
* ``thumbs``: the reference images themselves, square-resized (as the backbone sees them) to
  ``thumb_px`` pixels, uint8, for the images that are someone's top image (``thumb_index``).
* on the synthetic world, ``auroc``: the patch-level AUROC of every latent against every
  ground-truth concept (C, S), on the same seeded patch subsample as
  :func:`~cytosae.analysis.recovery.collect_patch_sample` (same ``seed``, ``max_patches``,
  ``batch_images``), computed exactly for all latents by :func:`auroc_all_latents`.

:func:`build_explorer_cache` computes all of it in ONE encode pass over the store;
:class:`ExplorerCache` reads it back (memory-mapped). :class:`ExplorerData` joins the caches of
several datasets with their :class:`~cytosae.analysis.latents.LatentStats`, the cohort's barcodes
and the concept match, and answers, for one latent, a :class:`LatentView`: every number the
dashboard draws (:mod:`cytosae.plotting.dashboard` draws it; the widget only wires controls).

An explorer can be built from statistics alone (:meth:`ExplorerData.from_stats`, e.g. the
authors' published statistics, :func:`cytosae.interop.published.published_stats`): the parts
that need images, per-image activations, barcodes or ground truth are then absent.

Definitions used by the explorer (all on the *reference* dataset, the first of
``ExplorerData.stats``: the SAE's training dataset for a pipeline):

* **above threshold**: ``log10(mean activation) > threshold`` (the paper's -3; Fig. 2A);
* **fires everywhere**: activation frequency > ``max_frequency`` (0.99), or fraction of patch
  tokens where it fires > ``max_patch_frequency`` (0.1, Fig. 3's filter in notebook 04; skipped
  where unknown, e.g. published statistics);
* **dead**: never fired on any image of any dataset of the explorer;
* **interesting**: above threshold, not firing everywhere, and with a full set of top-k reference
  images (label entropy defined, i.e. at least k images activate it). "Next interesting" walks the
  current ordering from the current rank on (wrapping around) to the first interesting latent not
  yet shown: the orderings are sorted by their score, highest first, so that is the latent with
  the highest remaining score.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from cytosae.analysis.thresholds import log10_safe

log = logging.getLogger(__name__)

__all__ = [
    "ORDERINGS",
    "ExplorerCache",
    "ExplorerData",
    "Filters",
    "LatentView",
    "TopImage",
    "auroc_all_latents",
    "build_explorer_cache",
    "disease_name",
    "fingerprint",
]

GRID = 16
FORMAT = 1

#: the orderings an explorer may offer, in the order of its dropdown (each: highest score first)
ORDERINGS = (
    "concept AUROC",
    "mean activation",
    "frequency",
    "d1 > d2",
    "d2 > d1",
    "latent index",
)


def disease_name(disease: str) -> str:
    """A fusion written as haematologists do: ``CBFB_MYH11`` -> ``CBFB::MYH11``."""
    return str(disease).replace("_", "::") if "_" in str(disease) else str(disease)


def fingerprint(*arrays_or_modules: Any) -> str:
    """Short sha256 of arrays, or of a torch module's state dict (names, dtypes, shapes, bytes).

    Used to key the explorer's cache by content: an SAE is identified by its weights whoever
    trained it (the pipeline, or a pretrained checkpoint).
    """
    h = hashlib.sha256()
    for obj in arrays_or_modules:
        if isinstance(obj, torch.nn.Module):
            for name, t in sorted(obj.state_dict().items()):
                t = t.detach().cpu().contiguous()
                h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            a = np.ascontiguousarray(np.asarray(obj))
            h.update(f"{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- concept AUROC
def auroc_all_latents(A_MS: sp.spmatrix, Y_MC: np.ndarray) -> np.ndarray:
    """Patch-level AUROC (C, S) of every latent against every concept, exactly, from sparse A.

    ``A`` holds the (non-negative) activations of M sampled patches, zeros implicit; ``Y`` their
    concept labels. Ranks are those of :func:`scipy.stats.rankdata` (ties averaged) over each
    column: the zeros share the average rank ``(z + 1) / 2``, a positive value gets ``z`` plus
    its average rank among the column's positive values. The rank sums of the positives then
    come from two sparse products, so memory stays ``O(nnz + C * S)`` (the dense ranks that
    :func:`~cytosae.analysis.recovery.recover_concepts` builds for its candidates would be M x S).
    Equal to that function's AUROC on its candidates; NaN where a concept has no positive or no
    negative patch.
    """
    from scipy.stats import rankdata

    A = sp.csc_matrix(A_MS, dtype=np.float64)
    A.sort_indices()
    Y = np.asarray(Y_MC, dtype=np.float64)
    M, S = A.shape
    if Y.shape[0] != M:
        raise ValueError(f"{Y.shape[0]} label rows for {M} patches")
    data = A.data.copy()
    if (data < 0).any():
        raise ValueError("activations must be non-negative")
    nnz = np.diff(A.indptr)
    zeros = (M - nnz).astype(np.float64)
    ranks = np.empty_like(data)
    for s in range(S):
        lo, hi = A.indptr[s], A.indptr[s + 1]
        if hi > lo:
            ranks[lo:hi] = zeros[s] + rankdata(data[lo:hi], method="average")
    R = sp.csc_matrix((ranks, A.indices, A.indptr), shape=A.shape)
    ind = sp.csc_matrix((np.ones_like(data), A.indices, A.indptr), shape=A.shape)
    npos = Y.sum(0)  # (C,)
    rank_nz = np.asarray(R.T @ Y).T  # (C, S): rank sum of the positives on non-zero entries
    pos_nz = np.asarray(ind.T @ Y).T  # (C, S): positives with a non-zero entry
    rank_sum = rank_nz + (npos[:, None] - pos_nz) * ((zeros + 1) / 2)[None, :]
    nneg = M - npos
    with np.errstate(divide="ignore", invalid="ignore"):
        au = (rank_sum - (npos * (npos + 1) / 2)[:, None]) / (npos * nneg)[:, None]
    return np.where(((npos > 0) & (nneg > 0))[:, None], au, np.nan).astype(np.float32)


# ------------------------------------------------------------------------------- the cache
def _thumbnail(path: Any, px: int) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((px, px), Image.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        log.warning("explorer: no thumbnail for %s (%s)", path, exc)
        return None


@torch.inference_mode()
def build_explorer_cache(
    sae: Any,
    store: Any,
    stats: Any,
    folder: str | Path,
    *,
    n_maps: int = 5,
    thumb_px: int = 112,
    patch_fractions: np.ndarray | None = None,
    concepts: Sequence[str] | None = None,
    present_at: float = 0.5,
    max_patches: int = 50_000,
    seed: int = 0,
    batch_images: int = 32,
    progress: bool = True,
) -> Path:
    """One encode pass over ``store``: write the explorer's arrays for one dataset to ``folder``.

    Args:
        sae: module with ``encode(x_ND) -> f_NS`` and ``cfg.d_sae`` (``Pipeline.sae``, or a
            pretrained SAE).
        store: the token store the statistics were computed on.
        stats: its ``LatentStats`` (the top images whose patch maps are kept).
        folder: output folder (created).
        n_maps: reference images per latent whose patch maps are kept.
        thumb_px: side of the cached thumbnails (a multiple of 16 keeps patches whole).
        patch_fractions: ground truth (n_images, C, 16, 16) in store order (synthetic world; None:
            no concept AUROC).
        concepts: the concept names of ``patch_fractions``.
        present_at, max_patches, seed, batch_images: as
            :func:`~cytosae.analysis.recovery.collect_patch_sample`, whose patch subsample this
            reproduces draw for draw.
        progress: show a progress bar.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    S = int(sae.cfg.d_sae)
    N = int(store.n_images)
    if stats.d_sae != S or int(stats.n_images) != N:
        raise ValueError(
            f"statistics ({stats.n_images} images, {stats.d_sae} latents) do not belong to this "
            f"store and SAE ({N} images, {S} latents)"
        )
    try:
        dev = next(iter(sae.parameters())).device
    except (AttributeError, StopIteration):
        dev = torch.device("cpu")
    n_maps = int(min(n_maps, stats.top_indices.shape[1]))
    top = np.asarray(stats.top_indices[:, :n_maps], dtype=np.int64)  # (S, n)
    maps = np.full((S, n_maps, GRID * GRID), np.nan, dtype=np.float16)
    flat = top.ravel()
    pair_lat, pair_slot = np.divmod(np.arange(flat.size), max(n_maps, 1))
    has = flat >= 0
    order = np.argsort(flat[has], kind="stable")
    p_img, p_lat, p_slot = flat[has][order], pair_lat[has][order], pair_slot[has][order]

    pf = None
    if patch_fractions is not None:
        pf = np.asarray(patch_fractions)
        if pf.shape[0] != N:
            raise ValueError(f"patch_fractions has {pf.shape[0]} images, the store {N}")
        if concepts is None or len(concepts) != pf.shape[1]:
            raise ValueError("concepts must name every channel of patch_fractions")
        C, P = pf.shape[1], pf.shape[2] * pf.shape[3]
        p_keep = min(1.0, max_patches / max(N * P, 1))
        rng = np.random.default_rng(seed)
        sample_parts: list[sp.csr_matrix] = []
        sample_labels: list[np.ndarray] = []

    rows_l: list[np.ndarray] = []
    cols_l: list[np.ndarray] = []
    vals_l: list[np.ndarray] = []
    bar = tqdm(total=N, desc="explorer pass", unit="img", disable=not progress)
    for idx, tokens_BTD in store.iter_images(batch_images):
        idx = np.asarray(idx, dtype=np.int64)
        f = sae.encode(tokens_BTD.to(dev, torch.float32)).float()
        if f.min() < 0:  # as encode_pass: only positive activations count as firing
            f = f.clamp(min=0)
        v = f.mean(1)  # (B, S) image level, all tokens
        r, c = torch.nonzero(v > 0, as_tuple=True)
        rows_l.append(idx[r.cpu().numpy()].astype(np.int32))
        cols_l.append(c.cpu().numpy().astype(np.int32))
        vals_l.append(v[r, c].cpu().numpy().astype(np.float32))
        lo, hi = np.searchsorted(p_img, [idx[0], idx[-1] + 1])
        if hi > lo:
            b = torch.as_tensor(p_img[lo:hi] - idx[0], device=f.device)
            s = torch.as_tensor(p_lat[lo:hi], device=f.device)
            maps[p_lat[lo:hi], p_slot[lo:hi]] = f[b, 1:, s].cpu().numpy().astype(np.float16)
        if pf is not None:
            y = pf[idx].reshape(len(idx), C, P).transpose(0, 2, 1).reshape(-1, C) >= present_at
            keep = rng.random(len(idx) * P) < p_keep
            if keep.any():
                f_sel = f[:, 1:].reshape(-1, S)[torch.as_tensor(np.flatnonzero(keep), device=dev)]
                rr, cc = torch.nonzero(f_sel > 0, as_tuple=True)
                sample_parts.append(
                    sp.csr_matrix(
                        (f_sel[rr, cc].cpu().numpy(), (rr.cpu().numpy(), cc.cpu().numpy())),
                        shape=tuple(f_sel.shape),
                    )
                )
                sample_labels.append(y[keep])
        bar.update(len(idx))
    bar.close()

    acts = sp.csc_matrix(
        (np.concatenate(vals_l), (np.concatenate(rows_l), np.concatenate(cols_l))), shape=(N, S)
    )
    acts.sort_indices()
    sp.save_npz(folder / "acts.npz", acts, compressed=True)
    np.save(folder / "maps.npy", maps)

    thumb_index = np.unique(flat[flat >= 0])
    paths = store.manifest["path"].to_numpy()
    thumbs = np.full((thumb_index.size, thumb_px, thumb_px, 3), 235, dtype=np.uint8)
    thumb_ok = np.zeros(thumb_index.size, dtype=bool)
    for k, i in enumerate(thumb_index):
        t = _thumbnail(paths[i], thumb_px)
        if t is not None:
            thumbs[k], thumb_ok[k] = t, True
    np.save(folder / "thumbs.npy", thumbs)
    np.savez(folder / "index.npz", thumb_index=thumb_index, thumb_ok=thumb_ok)

    meta: dict[str, Any] = {
        "format": FORMAT,
        "n_images": N,
        "d_sae": S,
        "n_maps": n_maps,
        "thumb_px": int(thumb_px),
        "grid": GRID,
        "dataset": str(stats.dataset),
        "top_indices": fingerprint(top),
        "acts_nnz": int(acts.nnz),
        "thumbnails_missing": int((~thumb_ok).sum()),
    }
    if pf is not None:
        A = sp.vstack(sample_parts).tocsr() if sample_parts else sp.csr_matrix((0, S))
        Y = np.concatenate(sample_labels) if sample_labels else np.zeros((0, C), dtype=bool)
        auroc = auroc_all_latents(A, Y)
        np.savez(folder / "concepts.npz", auroc=auroc, n_positive=Y.sum(0).astype(np.int64))
        meta["concepts"] = {
            "names": list(concepts),
            "n_patches": int(A.shape[0]),
            "present_at": present_at,
            "max_patches": max_patches,
            "seed": seed,
            "batch_images": batch_images,
        }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    log.info("explorer cache: %d images, %d latents, acts nnz %d", N, S, acts.nnz)
    return folder


@dataclasses.dataclass
class ConceptMatch:
    """Patch-level AUROC of every latent against every ground-truth concept (synthetic world)."""

    concepts: tuple[str, ...]
    auroc: np.ndarray  # (C, S)
    n_positive: np.ndarray  # (C,)
    dataset: str
    n_patches: int
    min_positive: int = 20

    @property
    def evaluated(self) -> np.ndarray:
        """Concepts with at least ``min_positive`` positive patches (as notebook 07 counts them)."""
        return self.n_positive >= self.min_positive

    def best_auroc(self) -> np.ndarray:
        """(S,) each latent's highest AUROC over the evaluated concepts (NaN: none)."""
        au = np.where(self.evaluated[:, None], self.auroc, np.nan)
        out = np.full(au.shape[1], np.nan)
        ok = ~np.all(np.isnan(au), axis=0)
        out[ok] = np.nanmax(au[:, ok], axis=0)
        return out

    def ranked(self, latent: int, n: int = 3) -> pd.DataFrame:
        """The ``n`` evaluated concepts a latent matches best: ``concept``, ``auroc``."""
        col = np.where(self.evaluated, self.auroc[:, latent], np.nan)
        ok = np.flatnonzero(~np.isnan(col))
        ok = ok[np.lexsort((ok, -col[ok]))][:n]
        return pd.DataFrame(
            {"concept": [self.concepts[c] for c in ok], "auroc": col[ok].astype(float)}
        )


class ExplorerCache:
    """The explorer's arrays of one dataset (:func:`build_explorer_cache`), read back."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.folder} is not an explorer cache: {exc}") from exc
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{self.folder}: explorer cache format {self.meta.get('format')}")
        self.acts: sp.csc_matrix = sp.load_npz(self.folder / "acts.npz").tocsc()
        self.maps: np.ndarray = np.load(self.folder / "maps.npy", mmap_mode="r")
        self.thumbs: np.ndarray = np.load(self.folder / "thumbs.npy", mmap_mode="r")
        with np.load(self.folder / "index.npz") as z:
            self.thumb_index = z["thumb_index"]
            self.thumb_ok = z["thumb_ok"]
        self._row = {int(i): k for k, i in enumerate(self.thumb_index)}
        self.concepts: ConceptMatch | None = None
        if "concepts" in self.meta:
            with np.load(self.folder / "concepts.npz") as z:
                self.concepts = ConceptMatch(
                    concepts=tuple(self.meta["concepts"]["names"]),
                    auroc=z["auroc"],
                    n_positive=z["n_positive"],
                    dataset=self.meta["dataset"],
                    n_patches=int(self.meta["concepts"]["n_patches"]),
                )

    @property
    def n_maps(self) -> int:
        return int(self.meta["n_maps"])

    def activations(self, latent: int) -> np.ndarray:
        """The positive image-level activations of one latent (one per image where it fired)."""
        a = self.acts
        return np.asarray(a.data[a.indptr[latent] : a.indptr[latent + 1]])

    def thumbnail(self, image_index: int) -> np.ndarray | None:
        """The cached (px, px, 3) image, or None where it was not at hand."""
        k = self._row.get(int(image_index))
        if k is None or not self.thumb_ok[k]:
            return None
        return np.array(self.thumbs[k])

    def patch_map(self, latent: int, slot: int) -> np.ndarray:
        """(16, 16) patch activations of a latent over its ``slot``-th top image."""
        return np.asarray(self.maps[latent, slot], dtype=np.float32).reshape(GRID, GRID)


# ------------------------------------------------------------------------------ the data
@dataclasses.dataclass(frozen=True)
class Filters:
    """Which latents the explorer lists (see the module docstring for the definitions).

    Attributes:
        threshold: keep latents with log10 mean activation above it (None: off).
        max_frequency: "fires everywhere" above this activation frequency (None: off).
        max_patch_frequency: "fires everywhere" above this fraction of patch tokens (None: off).
        everywhere: drop the latents that fire everywhere.
    """

    threshold: float | None = -3.0
    max_frequency: float | None = 0.99
    max_patch_frequency: float | None = 0.1
    everywhere: bool = True


@dataclasses.dataclass
class Cohort:
    """Patient and disease barcodes of the cohort (Eq. 2-3) and the two diseases compared."""

    patient_barcodes: np.ndarray  # (P, S)
    patients: pd.DataFrame  # patient, disease, n_images
    disease_barcodes: np.ndarray  # (D, S)
    diseases: np.ndarray  # (D,)
    dataset: str = "hehr"
    d1: str = "CBFB_MYH11"
    d2: str = "PML_RARA"

    @classmethod
    def from_stats(cls, stats: Any, manifest: pd.DataFrame, **kw: Any) -> Cohort:
        from cytosae.analysis.barcodes import barcodes_from_stats, disease_barcodes

        X, patients = barcodes_from_stats(stats, manifest)
        D, ids = disease_barcodes(X, patients["disease"].to_numpy())
        return cls(X, patients, D, ids, **kw)

    @property
    def has_pair(self) -> bool:
        ids = [str(d) for d in self.diseases]
        return self.d1 in ids and self.d2 in ids

    def difference(self) -> np.ndarray:
        """(S,) disease barcode of d1 minus that of d2 (Fig. 5)."""
        ids = [str(d) for d in self.diseases]
        return self.disease_barcodes[ids.index(self.d1)] - self.disease_barcodes[ids.index(self.d2)]


@dataclasses.dataclass
class TopImage:
    """One reference image of a latent in one dataset."""

    dataset: str
    rank: int
    image_index: int
    label: str
    activation: float
    image: np.ndarray | None  # (px, px, 3) uint8, None where not at hand
    patch_map: np.ndarray | None  # (16, 16), None without a cache


@dataclasses.dataclass
class LatentView:
    """Everything the dashboard shows for one latent (pure data; see :meth:`ExplorerData.view`).

    ``status`` is ``"ok"``, ``"dead"`` (never fired) or ``"out of range"``; ``message`` says why
    there is nothing to show (empty when ``ok``).
    """

    latent: int
    d_sae: int
    status: str
    message: str
    reference: str
    tag: str
    stats: pd.DataFrame  # one row per dataset
    above_threshold: bool = False
    fires_everywhere: bool = False
    everywhere_reason: str = ""
    interesting: bool = False
    filters: Filters = Filters()
    histogram: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # counts per ds
    histogram_edges: np.ndarray | None = None  # log10 activation bin edges
    n_zero: dict[str, int] = dataclasses.field(default_factory=dict)
    top: dict[str, list[TopImage]] = dataclasses.field(default_factory=dict)
    label_mix: dict[str, pd.Series] = dataclasses.field(default_factory=dict)
    diseases: pd.DataFrame | None = None  # disease, value (hehr)
    patients: pd.DataFrame | None = None  # top patients: patient, disease, value
    difference: float | None = None  # d1 - d2 disease barcode
    difference_rank: int | None = None  # rank of |d1 - d2| among all latents (0 = largest)
    pair: tuple[str, str] | None = None
    concepts: pd.DataFrame | None = None  # best concepts: concept, auroc (synthetic)
    concept_dataset: str = ""
    landscape: dict[str, Any] | None = None  # density image and this latent's point

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self, dataset: str | None = None) -> pd.Series:
        """The statistics of ``dataset`` (default: the reference dataset)."""
        return self.stats.set_index("dataset").loc[dataset or self.reference]


class ExplorerData:
    """Statistics (and, where computed, the explorer caches) of several datasets for one SAE.

    Args:
        stats: dataset name -> ``LatentStats``; the first is the reference dataset, on which the
            filters and the orderings are computed.
        caches: dataset name -> :class:`ExplorerCache` (images, maps, activations); any subset.
        cohort: the cohort's barcodes (None: hidden).
        concepts: the concept match (synthetic world; None: hidden).
        filters: the default filters.
        tag: the run's label for titles (``Pipeline.tag()``).
    """

    def __init__(
        self,
        stats: Mapping[str, Any],
        caches: Mapping[str, ExplorerCache] | None = None,
        *,
        cohort: Cohort | None = None,
        concepts: ConceptMatch | None = None,
        filters: Filters = Filters(),
        tag: str = "",
    ) -> None:
        if not stats:
            raise ValueError("an explorer needs the statistics of at least one dataset")
        self.stats = dict(stats)
        self.caches = dict(caches or {})
        sizes = {name: int(s.d_sae) for name, s in self.stats.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"the datasets' statistics disagree on the number of latents: {sizes}")
        for name, c in self.caches.items():
            if name not in self.stats or int(c.meta["d_sae"]) != next(iter(sizes.values())):
                raise ValueError(f"explorer cache of {name!r} does not match the statistics")
        self.cohort = cohort
        self.concepts = concepts
        self.filters = filters
        self.tag = tag
        self.reference = next(iter(self.stats))
        ref = self.stats[self.reference]
        self._mean = np.asarray(ref.mean_acts, dtype=np.float64)
        self._freq = np.asarray(ref.sparsity, dtype=np.float64)
        self._pfreq = np.asarray(ref.patch_frequency, dtype=np.float64)
        self._entropy = np.asarray(ref.top_entropy, dtype=np.float64)
        fired = np.zeros(self.d_sae, dtype=bool)
        for s in self.stats.values():
            fired |= np.asarray(s.sparsity) > 0
        self._fired = fired
        self._landscape: dict[str, Any] | None = None
        self._difference = cohort.difference() if cohort is not None and cohort.has_pair else None
        self._diff_rank = None
        if self._difference is not None:
            order = np.lexsort((np.arange(self.d_sae), -np.abs(self._difference)))
            self._diff_rank = np.empty(self.d_sae, dtype=np.int64)
            self._diff_rank[order] = np.arange(self.d_sae)
        self._best_auroc = concepts.best_auroc() if concepts is not None else None

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], *, tag: str = "", **kw: Any) -> ExplorerData:
        """An explorer of statistics alone (no images, no per-image activations)."""
        return cls(stats, None, tag=tag, **kw)

    # ------------------------------------------------------------------ per-latent masks
    @property
    def d_sae(self) -> int:
        return int(next(iter(self.stats.values())).d_sae)

    def above_threshold(self, threshold: float | None = None) -> np.ndarray:
        t = self.filters.threshold if threshold is None else threshold
        lm = log10_safe(self._mean)
        return np.where(np.isnan(lm), False, lm > t) if t is not None else ~np.isnan(lm)

    def fires_everywhere(self, filters: Filters | None = None) -> np.ndarray:
        f = filters or self.filters
        out = np.zeros(self.d_sae, dtype=bool)
        if f.max_frequency is not None:
            out |= self._freq > f.max_frequency
        if f.max_patch_frequency is not None:
            out |= np.nan_to_num(self._pfreq, nan=0.0) > f.max_patch_frequency
        return out

    def dead(self) -> np.ndarray:
        """Latents that never fired on any image of any dataset."""
        return ~self._fired

    def interesting(self, filters: Filters | None = None) -> np.ndarray:
        """Above threshold, not firing everywhere, a full set of top-k reference images."""
        f = filters or self.filters
        return (
            self.above_threshold(f.threshold if f.threshold is not None else -np.inf)
            & ~self.fires_everywhere(f)
            & (self._entropy >= 0)
        )

    # ------------------------------------------------------------------------ orderings
    def orderings(self) -> list[str]:
        """The orderings this explorer offers (the cohort's and the concepts' only with them)."""
        out = []
        for name in ORDERINGS:
            if name == "concept AUROC" and self._best_auroc is None:
                continue
            if name in ("d1 > d2", "d2 > d1") and self._difference is None:
                continue
            out.append(name)
        return out

    def ordering_label(self, name: str) -> str:
        """How the dropdown writes an ordering (the diseases spelled out)."""
        if self.cohort is not None and name in ("d1 > d2", "d2 > d1"):
            a, b = disease_name(self.cohort.d1), disease_name(self.cohort.d2)
            return f"{a} > {b}" if name == "d1 > d2" else f"{b} > {a}"
        return name

    def default_ordering(self) -> str:
        """Concept AUROC where ground truth exists, else mean activation."""
        return self.orderings()[0]

    def score(self, ordering: str) -> np.ndarray:
        """(S,) the score an ordering sorts by, highest first (NaN last)."""
        if ordering not in self.orderings():
            raise ValueError(f"unknown ordering {ordering!r}; this explorer has {self.orderings()}")
        if ordering == "latent index":
            return -np.arange(self.d_sae, dtype=np.float64)
        if ordering == "mean activation":
            return self._mean
        if ordering == "frequency":
            return self._freq
        if ordering == "concept AUROC":
            return self._best_auroc
        return self._difference if ordering == "d1 > d2" else -self._difference

    def ordered(
        self, ordering: str, *, threshold: bool = True, everywhere: bool = True
    ) -> np.ndarray:
        """The latents listed under ``ordering``, highest score first (ties: lower index first).

        Args:
            threshold: keep only latents above the threshold (``filters.threshold``).
            everywhere: drop the latents that fire everywhere.
        """
        score = np.nan_to_num(np.asarray(self.score(ordering), dtype=np.float64), nan=-np.inf)
        keep = np.ones(self.d_sae, dtype=bool)
        if threshold and self.filters.threshold is not None:
            keep &= self.above_threshold()
        if everywhere:
            keep &= ~self.fires_everywhere()
        idx = np.flatnonzero(keep)
        return idx[np.lexsort((idx, -score[idx]))]

    def next_interesting(
        self, latents: np.ndarray, rank: int, seen: set[int] | frozenset[int] = frozenset()
    ) -> int | None:
        """The first rank after ``rank`` (wrapping) whose latent is interesting and not in ``seen``."""
        n = len(latents)
        if n == 0:
            return None
        mask = self.interesting()
        for step in range(1, n + 1):
            r = (rank + step) % n
            s = int(latents[r])
            if mask[s] and s not in seen:
                return r
        return None

    def example_latent(self, ordering: str | None = None) -> int:
        """The latent to show as an example: the first interesting one of ``ordering``.

        Falls back to the first one listed with the filters, then to the first one that fired
        (tiny runs where every latent fires everywhere).
        """
        ordering = ordering or self.default_ordering()
        for kw in ({}, {"threshold": False, "everywhere": False}):
            latents = self.ordered(ordering, **kw)
            r = self.next_interesting(latents, -1)
            if r is not None:
                return int(latents[r])
        listed = self.ordered(ordering)
        if len(listed):
            return int(listed[0])
        fired = self.ordered(ordering, threshold=False, everywhere=False)
        fired = fired[~self.dead()[fired]]
        return int(fired[0]) if len(fired) else 0

    # ------------------------------------------------------------------------- one latent
    def landscape(self, bins: int = 60) -> dict[str, Any]:
        """Fig. 2A of the reference dataset as a 2D histogram (computed once)."""
        if self._landscape is None:
            x, y = log10_safe(self._freq), log10_safe(self._mean)
            ok = ~np.isnan(x) & ~np.isnan(y)
            xr = (min(float(x[ok].min()), -0.05) - 0.1, 0.1) if ok.any() else (-4.0, 0.1)
            yr = (float(y[ok].min()) - 0.2, float(y[ok].max()) + 0.2) if ok.any() else (-6.0, 1.0)
            yr = (min(yr[0], (self.filters.threshold or -3) - 0.5), yr[1])
            H, xe, ye = np.histogram2d(x[ok], y[ok], bins=bins, range=(xr, yr))
            self._landscape = {"density": H.T, "x_edges": xe, "y_edges": ye, "n": int(ok.sum())}
        return self._landscape

    def _stats_table(self, latent: int) -> pd.DataFrame:
        rows = []
        for name, st in self.stats.items():
            m = float(st.mean_acts[latent])
            rows.append(
                {
                    "dataset": name,
                    "frequency": float(st.sparsity[latent]),
                    "mean_act": m,
                    "log10_mean_act": float(log10_safe(np.array([m]))[0]),
                    "entropy": float(st.top_entropy[latent]),
                    "patch_frequency": float(st.patch_frequency[latent]),
                    "n_images": int(st.n_images),
                }
            )
        return pd.DataFrame(rows)

    def view(self, latent: Any, n_images: int = 5) -> LatentView:
        """Every number the dashboard draws for ``latent`` (never raises for a bad index)."""
        try:
            s = int(latent)
            valid = s == latent and 0 <= s < self.d_sae
        except (TypeError, ValueError):
            s, valid = -1, False
        base = {"d_sae": self.d_sae, "reference": self.reference, "tag": self.tag}
        if not valid:
            return LatentView(
                latent=s,
                status="out of range",
                message=(
                    f"latent {latent} is out of range: this SAE has {self.d_sae} latents "
                    f"(0 to {self.d_sae - 1})"
                ),
                stats=pd.DataFrame(),
                **base,
            )
        table = self._stats_table(s)
        if not self._fired[s]:
            return LatentView(
                latent=s,
                status="dead",
                message=(
                    f"latent {s} is dead: it never fired on any image of "
                    f"{', '.join(self.stats)}; there is nothing to show"
                ),
                stats=table,
                **base,
            )
        f = self.filters
        reasons = []
        if f.max_frequency is not None and self._freq[s] > f.max_frequency:
            reasons.append(f"frequency {self._freq[s]:.3g} > {f.max_frequency:g}")
        if f.max_patch_frequency is not None and np.nan_to_num(self._pfreq[s]) > (
            f.max_patch_frequency
        ):
            reasons.append(f"patch frequency {self._pfreq[s]:.3g} > {f.max_patch_frequency:g}")
        view = LatentView(
            latent=s,
            status="ok",
            message="",
            stats=table,
            above_threshold=bool(self.above_threshold()[s]),
            fires_everywhere=bool(reasons),
            everywhere_reason="; ".join(reasons),
            interesting=bool(self.interesting()[s]),
            filters=f,
            **base,
        )
        lscape = self.landscape()
        view.landscape = {
            **lscape,
            "x": float(log10_safe(self._freq[s : s + 1])[0]),
            "y": float(log10_safe(self._mean[s : s + 1])[0]),
            "threshold": f.threshold,
        }
        # activation histograms: log10 image-level activation, shared edges over the datasets
        vals = {name: c.activations(s) for name, c in self.caches.items()}
        pos = [np.log10(v[v > 0]) for v in vals.values() if (v > 0).any()]
        if pos:
            lo = min(float(p.min()) for p in pos)
            hi = max(float(p.max()) for p in pos)
            if hi - lo < 1e-6:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, 31)
            view.histogram_edges = edges
            for name, v in vals.items():
                v = v[v > 0]
                view.histogram[name] = np.histogram(np.log10(v), bins=edges)[0]
                view.n_zero[name] = int(self.stats[name].n_images) - int(v.size)
        # top images, their maps and their label mix
        for name, st in self.stats.items():
            idx = np.asarray(st.top_indices[s])
            if idx.size == 0:
                continue
            vals_k = np.asarray(st.top_values[s])
            labs = np.asarray(st.top_label_indices[s])
            names = list(st.label_names)
            ok = np.flatnonzero(idx >= 0)
            labels = [names[labs[j]] if 0 <= labs[j] < len(names) else str(labs[j]) for j in ok]
            if labels:
                mix = pd.Series(labels).value_counts()
                view.label_mix[name] = mix.iloc[np.lexsort((mix.index, -mix.to_numpy()))]
            cache = self.caches.get(name)
            items = []
            for j, lab in zip(ok[:n_images], labels):
                i = int(idx[j])
                has_map = cache is not None and j < cache.n_maps
                items.append(
                    TopImage(
                        dataset=name,
                        rank=int(j),
                        image_index=i,
                        label=lab,
                        activation=float(vals_k[j]),
                        image=cache.thumbnail(i) if cache is not None else None,
                        patch_map=cache.patch_map(s, int(j)) if has_map else None,
                    )
                )
            view.top[name] = items
        # the cohort
        c = self.cohort
        if c is not None:
            view.diseases = pd.DataFrame(
                {"disease": [str(d) for d in c.diseases], "value": c.disease_barcodes[:, s]}
            )
            col = c.patient_barcodes[:, s]
            top_p = np.lexsort((np.arange(col.size), -col))[:5]
            view.patients = pd.DataFrame(
                {
                    "patient": c.patients["patient"].to_numpy()[top_p],
                    "disease": c.patients["disease"].to_numpy()[top_p],
                    "value": col[top_p],
                }
            )
            if self._difference is not None:
                view.difference = float(self._difference[s])
                view.difference_rank = int(self._diff_rank[s])
                view.pair = (c.d1, c.d2)
        if self.concepts is not None:
            view.concepts = self.concepts.ranked(s, 3)
            view.concept_dataset = self.concepts.dataset
        return view
