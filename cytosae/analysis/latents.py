"""One streaming encode pass per (SAE, token store) -> :class:`LatentStats`.

Definitions follow the authors' code (see ``docs``/official-implementation notes):

* image vector ``v_i[s]`` = mean over **all** T tokens (CLS included) of the SAE activations;
* ``sparsity[s]`` (the paper's "activation frequency") = fraction of images with ``v_i[s] > 0``;
* ``mean_acts[s]`` = mean of ``v_i[s]`` over the images where it is > 0 (NaN where it never fired);
* top-k reference images per latent by ``v_i[s]`` (descending; an index is -1 where fewer than k
  images have ``v_i[s] > 0`` -- such slots carry no reference image -- or where n_images < k);
* ``top_entropy[s]`` = natural-log entropy of the per-label sums of the top-k activation values,
  -1 when fewer than k of them are positive;
* patch-count versions: ``patch_frequency[s]`` = fraction of patch tokens (CLS excluded) with
  h > 0, ``patch_mean_acts[s]`` = mean of h over those firing patch tokens (NaN if none);
* ``counts`` (Eq. 2): sparse (n_images, d_sae) matrix, number of patch tokens with h > tau
  (CLS excluded unless ``include_cls_in_counts``).

Activations are taken as ``max(f, 0)`` (a no-op for the ReLU/TopK SAEs of this project).

Memory is bounded by the batch (``(batch_images + 1) * T * d_sae`` floats: the activations and one
per-image comparison buffer) plus
O(d_sae * k) running state; only the sparse ``counts`` output grows with the dataset (by its
non-zeros).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from cytosae.atomic import COMPLETE, atomic_dir, is_complete, mark_complete
from cytosae.config import JsonConfig

log = logging.getLogger(__name__)

__all__ = ["EncodeConfig", "LatentStats", "check_save_target", "encode_pass", "label_entropy"]


@dataclasses.dataclass(frozen=True)
class EncodeConfig(JsonConfig):
    """Settings of one encode pass (the keyword arguments of :func:`encode_pass`).

    Attributes:
        tau: Eq. 2 threshold: a patch counts for a latent when its activation is > tau.
        top_k: reference images kept per latent.
        include_cls_in_counts: count the CLS token too (the authors' code does).
        batch_images: images per encode call; memory ~ (batch_images + 1) * T * d_sae * 4 bytes.
    """

    tau: float = 0.2
    top_k: int = 10
    include_cls_in_counts: bool = False
    batch_images: int = 32

    def validate(self) -> None:
        if not math.isfinite(self.tau) or self.tau < 0:
            raise ValueError(f"EncodeConfig.tau must be a finite number >= 0, got {self.tau}")
        if self.top_k < 1:
            raise ValueError(f"EncodeConfig.top_k must be >= 1, got {self.top_k}")
        if self.batch_images < 1:
            raise ValueError(f"EncodeConfig.batch_images must be >= 1, got {self.batch_images}")


class _Encoder(Protocol):
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclasses.dataclass
class LatentStats:
    """Per-latent statistics of one SAE over one dataset (see module docstring)."""

    sparsity: np.ndarray
    mean_acts: np.ndarray
    patch_frequency: np.ndarray
    patch_mean_acts: np.ndarray
    top_indices: np.ndarray
    top_values: np.ndarray
    top_entropy: np.ndarray
    counts: sp.csr_matrix | None
    label_names: tuple[str, ...]
    labels: np.ndarray
    dataset: str
    n_images: int
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    top_labels: np.ndarray | None = None

    _ARRAYS = (
        "sparsity",
        "mean_acts",
        "patch_frequency",
        "patch_mean_acts",
        "top_indices",
        "top_values",
        "top_entropy",
        "labels",
    )

    @property
    def d_sae(self) -> int:
        return int(self.sparsity.shape[0])

    @property
    def top_label_indices(self) -> np.ndarray:
        """(S, k) label index of each top image, -1 where there is no image.

        Uses ``top_labels`` when set (e.g. the authors' published label indices).
        """
        if self.top_labels is not None:
            return self.top_labels
        out = np.full(self.top_indices.shape, -1, dtype=np.int64)
        ok = self.top_indices >= 0
        if self.labels.size:
            out[ok] = self.labels[self.top_indices[ok]]
        return out

    def save(self, folder: str | Path) -> Path:
        """Write ``arrays.npz``, ``counts.npz`` (scipy sparse), ``meta.json`` and the completion
        marker; no pickle.

        The folder is written whole into a temporary sibling and swapped into place
        (:func:`cytosae.atomic.atomic_dir`): a kill or a full disk leaves the previous result as
        it was, never a mixture. An existing ``folder`` is replaced, so it must be empty or hold
        an earlier result (other files are refused: a wrong ``--out`` never deletes them).
        """
        folder = Path(folder)
        check_save_target(folder)
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        if self.top_labels is not None:
            arrays["top_labels"] = self.top_labels
        info = {
            "label_names": list(self.label_names),
            "dataset": self.dataset,
            "n_images": int(self.n_images),
            "meta": self.meta,
            "format": 1,
        }
        with atomic_dir(folder) as tmp:
            np.savez(tmp / "arrays.npz", **arrays)
            if self.counts is not None:
                sp.save_npz(tmp / "counts.npz", self.counts.tocsr(), compressed=True)
            (tmp / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            mark_complete(tmp, {"format": 1})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LatentStats:
        """Read a folder written by :meth:`save`; a folder without the completion marker (an
        interrupted write, or one from a cytosae that wrote in place) is refused."""
        folder = Path(folder)
        if folder.is_dir() and (folder / "meta.json").is_file() and not is_complete(folder):
            raise ValueError(
                f"could not read LatentStats from {folder}: it has no {COMPLETE} marker, so it "
                "may mix the arrays of two runs (an interrupted write, or a folder written in "
                "place by an older cytosae); compute it again (cytosae latents)"
            )
        try:
            info = json.loads((folder / "meta.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in cls._ARRAYS}
                top_labels = z["top_labels"] if "top_labels" in z.files else None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"could not read LatentStats from {folder}: {exc}") from exc
        counts = None
        if (folder / "counts.npz").exists():
            try:
                counts = sp.load_npz(folder / "counts.npz").tocsr()
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(f"could not read {folder / 'counts.npz'}: {exc}") from exc
        return cls(
            **arrays,
            counts=counts,
            label_names=tuple(info["label_names"]),
            dataset=info["dataset"],
            n_images=int(info["n_images"]),
            meta=info.get("meta", {}),
            top_labels=top_labels,
        )


#: the files :meth:`LatentStats.save` writes (a folder holding others is not replaced)
_SAVED_FILES = frozenset({"arrays.npz", "counts.npz", "meta.json", COMPLETE})


def check_save_target(folder: str | Path) -> None:
    """Refuse a ``folder`` that :meth:`LatentStats.save` must not replace: one holding files
    other than an earlier result (a wrong ``--out`` must never delete them), or a file."""
    folder = Path(folder)
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in _SAVED_FILES)
        if foreign:
            raise ValueError(
                f"{folder} holds files that are not a LatentStats result ({foreign[:5]}); it "
                "would be replaced as a whole: write to a new or empty folder"
            )
    elif folder.exists():
        raise ValueError(f"{folder} exists and is not a folder")


def _check_inputs(sae: Any, store: Any, top_k: int) -> None:
    """Refuse an SAE whose width does not match the store, or whose parameters are not finite;
    warn when ``top_k`` exceeds the number of images (the extra slots stay -1)."""
    d_in = getattr(getattr(sae, "cfg", None), "d_in", None)
    d_model = getattr(store, "d_model", None)
    if d_in is not None and d_model is not None and int(d_in) != int(d_model):
        raise ValueError(
            f"the SAE reads tokens of width d_in={d_in} but the token store "
            f"{getattr(store, 'path', '')} holds width d_model={d_model}: use the SAE trained on "
            "tokens of this backbone and layer"
        )
    if hasattr(sae, "named_parameters"):
        for name, p in sae.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise ValueError(f"the SAE's parameter {name} holds NaN or inf values")
    n = int(getattr(store, "n_images", 0))
    if top_k > n:
        log.warning(
            "top_k=%d exceeds the %d image(s) of the store: each latent keeps at most %d "
            "reference image(s), the other slots are -1",
            top_k,
            n,
            n,
        )


def _nonfinite_message(store: Any, idx: Any, x_BTD: torch.Tensor) -> str:
    bad = (~torch.isfinite(x_BTD)).flatten(1).any(1).nonzero().flatten().cpu().numpy()
    rows = np.asarray(idx, dtype=np.int64)[bad]
    man = getattr(store, "manifest", None)
    ids = (
        [str(man["image_id"].iloc[int(r)]) for r in rows[:5]]
        if man is not None and "image_id" in man
        else []
    )
    where = getattr(store, "path", "")
    return (
        f"non-finite token values in {len(rows)} image(s) of the token store {where}: "
        f"store rows {rows[:5].tolist()}"
        + (f" (image_id {ids})" if ids else "")
        + "; the store is damaged: recompute it"
    )


def label_entropy(
    top_values_SK: np.ndarray, top_labels_SK: np.ndarray, n_labels: int
) -> np.ndarray:
    """Natural-log entropy of per-label sums of the top-k values; -1 where fewer than k are > 0.

    Args:
        top_values_SK: (S, k) activation values.
        top_labels_SK: (S, k) label index of each value (ignored where the value is <= 0).
        n_labels: number of label classes.
    """
    vals = np.asarray(top_values_SK, dtype=np.float64)
    labs = np.asarray(top_labels_SK, dtype=np.int64)
    S, k = vals.shape
    pos = vals > 0
    sums = np.zeros((S, max(n_labels, 1)), dtype=np.float64)
    rows = np.repeat(np.arange(S), k)
    np.add.at(sums, (rows[pos.ravel()], labs.ravel()[pos.ravel()]), vals.ravel()[pos.ravel()])
    total = sums.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, sums / total, 0.0)
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    full = pos.sum(1) >= k
    return np.where(full, h, -1.0).astype(np.float32)


@torch.inference_mode()
def encode_pass(
    sae: _Encoder,
    store: Any,
    *,
    tau: float = 0.2,
    top_k: int = 10,
    include_cls_in_counts: bool = False,
    batch_images: int = 32,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> LatentStats:
    """Stream every image of ``store`` through ``sae.encode`` once and collect :class:`LatentStats`.

    Args:
        sae: module with ``encode(x_ND) -> f_NS`` and ``cfg.d_sae``.
        store: token store with ``iter_images(batch_images)``, ``manifest``, ``n_images``, ``n_tokens``.
        tau: Eq. 2 threshold for ``counts`` (h > tau).
        top_k: reference images kept per latent.
        include_cls_in_counts: count the CLS token (index 0) too (the authors' code does).
        batch_images: images per encode call; memory ~ (batch_images + 1) * T * d_sae * 4 bytes.
        progress: show a tqdm bar.
        device: where to encode (default: the SAE's parameters' device, else CPU).
    """
    EncodeConfig(
        tau=tau, top_k=top_k, include_cls_in_counts=include_cls_in_counts, batch_images=batch_images
    )
    S = int(sae.cfg.d_sae)
    n_images = int(store.n_images)
    if device is None:
        try:
            device = next(iter(sae.parameters())).device  # type: ignore[attr-defined]
        except (AttributeError, StopIteration):
            device = torch.device("cpu")
    dev = torch.device(device)
    _check_inputs(sae, store, top_k)
    manifest: pd.DataFrame = store.manifest
    label_col = manifest["label"].astype(str) if "label" in manifest else pd.Series([""] * n_images)
    label_names = tuple(sorted(label_col.unique()))
    lut = {n: i for i, n in enumerate(label_names)}
    labels = label_col.map(lut).to_numpy(dtype=np.int64)
    dataset = (
        ",".join(sorted(manifest["dataset"].astype(str).unique())) if "dataset" in manifest else ""
    )

    fire_img = torch.zeros(S, dtype=torch.float64, device=dev)
    sum_img = torch.zeros(S, dtype=torch.float64, device=dev)
    fire_patch = torch.zeros(S, dtype=torch.float64, device=dev)
    sum_patch = torch.zeros(S, dtype=torch.float64, device=dev)
    top_v = torch.full((S, top_k), -torch.inf, dtype=torch.float32, device=dev)
    top_i = torch.full((S, top_k), -1, dtype=torch.int64, device=dev)
    rows_l: list[np.ndarray] = []
    cols_l: list[np.ndarray] = []
    vals_l: list[np.ndarray] = []
    n_seen = 0
    n_patch_tokens = 0
    first = 0 if include_cls_in_counts else 1
    buf: torch.Tensor | None = None

    bar = tqdm(total=n_images, desc="encode pass", unit="img", disable=not progress)
    for idx, tokens_BTD in store.iter_images(batch_images):
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=dev)
        x_BTD = tokens_BTD.to(dev, torch.float32, non_blocking=True)
        if not bool(torch.isfinite(x_BTD).all()):
            raise ValueError(_nonfinite_message(store, idx, x_BTD))
        f_BTS = sae.encode(x_BTD).float()
        B, T = f_BTS.shape[0], f_BTS.shape[1]
        if f_BTS.min() < 0:  # generic encoders: only positive activations count as firing
            f_BTS = f_BTS.clamp(min=0)
        if buf is None or buf.shape != f_BTS.shape[1:]:
            buf = torch.empty(f_BTS.shape[1:], dtype=f_BTS.dtype, device=f_BTS.device)
        # image level (all tokens, CLS included); f >= 0 here, so v > 0 <=> fired somewhere
        sum_BS = f_BTS.sum(1)
        v_BS = sum_BS / T
        pos_BS = v_BS > 0
        fire_img += pos_BS.sum(0)
        sum_img += v_BS.sum(0, dtype=torch.float64)
        sum_patch += (sum_BS - f_BTS[:, 0]).sum(0, dtype=torch.float64)
        n_patch_tokens += B * (T - 1)
        # patch firing and Eq. 2 counts, one image at a time through a (T, S) float buffer:
        # cache-sized, and float reductions are much faster than bool ones on CPU
        fire_S = torch.zeros(S, dtype=f_BTS.dtype, device=f_BTS.device)
        c_BS = torch.empty(B, S, dtype=f_BTS.dtype, device=f_BTS.device)
        for b in range(B):
            torch.gt(f_BTS[b], 0, out=buf)
            fire_S += buf[1:].sum(0)
            torch.gt(f_BTS[b], tau, out=buf)
            c_BS[b] = buf[first:].sum(0)
        fire_patch += fire_S.double()
        c_BS = c_BS.round_().to(torch.int32)
        r, c = torch.nonzero(c_BS, as_tuple=True)
        if r.numel():
            rows_l.append(idx_t[r].cpu().numpy().astype(np.int32))
            cols_l.append(c.cpu().numpy().astype(np.int32))
            vals_l.append(c_BS[r, c].to(torch.int16).cpu().numpy())
        # running top-k merge
        cand_v = torch.cat([top_v, v_BS.T.float()], 1)
        cand_i = torch.cat([top_i, idx_t.expand(S, B)], 1)
        top_v, pos = torch.topk(cand_v, top_k, dim=1)
        top_i = torch.gather(cand_i, 1, pos)
        n_seen += B
        bar.update(B)
    bar.close()
    if n_seen != n_images:
        raise ValueError(f"store yielded {n_seen} images but reports n_images={n_images}")

    fire_img_np = fire_img.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_acts = np.where(fire_img_np > 0, sum_img.cpu().numpy() / fire_img_np, np.nan)
        fp = fire_patch.cpu().numpy()
        patch_mean = np.where(fp > 0, sum_patch.cpu().numpy() / fp, np.nan)
    sparsity = fire_img_np / max(n_images, 1)
    patch_frequency = fp / max(n_patch_tokens, 1)
    tv = top_v.cpu().numpy()
    ti = top_i.cpu().numpy()
    no_img = ~(tv > 0)
    ti[no_img] = -1
    tv = np.where(np.isfinite(tv), tv, 0.0).astype(np.float32)
    tv[no_img] = np.minimum(tv[no_img], 0.0)
    tlab = np.zeros_like(ti)
    tlab[ti >= 0] = labels[ti[ti >= 0]]
    ent = label_entropy(tv, tlab, len(label_names))

    if rows_l:
        coo = sp.coo_matrix(
            (np.concatenate(vals_l), (np.concatenate(rows_l), np.concatenate(cols_l))),
            shape=(n_images, S),
        )
    else:
        coo = sp.coo_matrix((n_images, S), dtype=np.int16)
    counts = coo.tocsr()
    counts.sort_indices()
    meta = {
        "tau": float(tau),
        "top_k": int(top_k),
        "include_cls_in_counts": bool(include_cls_in_counts),
        "n_tokens": int(getattr(store, "n_tokens", T if n_seen else 0)),
        "store_digest": str(getattr(store, "digest", "")),
    }
    log.info("encode pass: %d images, %d latents, counts nnz=%d", n_images, S, counts.nnz)
    return LatentStats(
        sparsity=sparsity.astype(np.float32),
        mean_acts=mean_acts.astype(np.float32),
        patch_frequency=patch_frequency.astype(np.float32),
        patch_mean_acts=patch_mean.astype(np.float32),
        top_indices=ti.astype(np.int64),
        top_values=tv,
        top_entropy=ent,
        counts=counts,
        label_names=label_names,
        labels=labels,
        dataset=dataset,
        n_images=n_images,
        meta=meta,
    )
