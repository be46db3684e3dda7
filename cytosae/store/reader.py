"""The token store: sharded float16 token arrays on disk, and their reader.

The on-disk protocol is documented in ``docs/token-store.md``. In short, a store is a folder
``<runs_root>/tokens/<key>/`` holding::

    request.json           inputs of the extraction (hashed into <key>), written first
    input_manifest.csv     the manifest that was asked for
    shard_00000.npy        float16 (n_k, T, D), rows [k*S, (k+1)*S) of the input manifest
    shard_00000.json       which input rows that shard holds, and which were skipped (why)
    ...
    manifest.csv           the images actually extracted; row i = image i of the store
    skipped.csv            image_id, path, reason of unreadable images
    metadata.json          schema version, backbone, layer, preprocessing, sizes, digests
    COMPLETE               marker, written last

Every file is written to a temporary name in the same folder and renamed atomically, so a
reader never sees a half-written file, and a killed extraction resumes at the first shard
whose ``.json`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cytosae.atomic import COMPLETE, atomic_open, atomic_write_text, is_complete, mark_complete
from cytosae.data.adapters import MANIFEST_COLUMNS

log = logging.getLogger(__name__)

STORE_SCHEMA_VERSION = 1
STORE_DTYPE = np.float16


class IncompleteStoreError(FileNotFoundError):
    """The folder is not a complete token store (names it and says how to finish it)."""


# --------------------------------------------------------------------------- writing helpers


def shard_name(k: int) -> str:
    return f"shard_{k:05d}"


def json_text(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, indent 2, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2) + "\n"


def csv_text(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def write_shard(folder: Path, k: int, tokens_NTD: np.ndarray, info: dict[str, Any]) -> None:
    """Atomically write ``shard_k.npy`` (float16) then its ``shard_k.json`` (the done flag)."""
    arr = np.ascontiguousarray(tokens_NTD, dtype=STORE_DTYPE)
    with atomic_open(folder / f"{shard_name(k)}.npy") as f:
        np.save(f, arr, allow_pickle=False)
    atomic_write_text(folder / f"{shard_name(k)}.json", json_text(info))


def shard_done(folder: Path, k: int) -> bool:
    return (folder / f"{shard_name(k)}.json").is_file() and (
        folder / f"{shard_name(k)}.npy"
    ).is_file()


def n_shards_for(n_rows: int, shard_size: int) -> int:
    return max(1, -(-n_rows // shard_size))


def finalize_store(folder: str | Path) -> bool:
    """Write ``manifest.csv``, ``skipped.csv``, ``metadata.json`` and ``COMPLETE`` once every
    shard is done (any rank may call it; concurrent calls write identical bytes).

    Returns:
        True when the store is complete after the call, False when shards are still missing.
    """
    folder = Path(folder)
    if is_complete(folder):
        return True
    request = json.loads((folder / "request.json").read_text())
    n_shards = int(request["n_shards"])
    missing = [k for k in range(n_shards) if not shard_done(folder, k)]
    if missing:
        log.info(
            "store %s: %d shard(s) still missing (first %s)", folder, len(missing), missing[:5]
        )
        return False
    inp = pd.read_csv(folder / "input_manifest.csv", dtype=str, keep_default_na=False)
    rows: list[int] = []
    skipped: list[tuple[int, str]] = []
    sizes: list[int] = []
    for k in range(n_shards):
        info = json.loads((folder / f"{shard_name(k)}.json").read_text())
        rows.extend(info["rows"])
        skipped.extend((int(r), str(reason)) for r, reason in info["skipped"])
        sizes.append(len(info["rows"]))
        shape = np.load(folder / f"{shard_name(k)}.npy", mmap_mode="r").shape
        if shape[0] != len(info["rows"]):
            raise ValueError(
                f"{folder}/{shard_name(k)}.npy has {shape[0]} rows, its .json lists {len(info['rows'])}"
            )
    man = inp.iloc[rows].reset_index(drop=True).loc[:, list(MANIFEST_COLUMNS)]
    sk = inp.iloc[[r for r, _ in skipped]].reset_index(drop=True)
    sk_df = pd.DataFrame(
        {
            "image_id": sk["image_id"] if len(sk) else pd.Series(dtype=str),
            "path": sk["path"] if len(sk) else pd.Series(dtype=str),
            "reason": [reason for _, reason in skipped],
        }
    )
    meta = dict(request)
    meta.update(
        {
            "n_images": len(man),
            "n_skipped": len(sk_df),
            "shard_sizes": sizes,
            "manifest_digest_extracted": hashlib.sha256(csv_text(man).encode()).hexdigest(),
        }
    )
    atomic_write_text(folder / "manifest.csv", csv_text(man))
    atomic_write_text(folder / "skipped.csv", csv_text(sk_df))
    atomic_write_text(folder / "metadata.json", json_text(meta))
    mark_complete(folder)
    if len(sk_df):
        log.warning(
            "store %s: %d unreadable image(s) skipped, listed in skipped.csv", folder, len(sk_df)
        )
    return True


# --------------------------------------------------------------------------- reading


class TokenStore:
    """Read side of a complete token store.

    Attributes:
        path: the store folder.
        metadata: the parsed ``metadata.json``.
        manifest: DataFrame of the extracted images (row i = image i).
        n_images, n_tokens, d_model: sizes.
        digest: the store key (folder name: hash of its inputs).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not is_complete(self.path):
            raise IncompleteStoreError(
                f"{self.path} is not a complete token store (no {COMPLETE} marker); "
                "run the extraction again to resume it, or finalize_store() after all ranks finished"
            )
        self.metadata: dict[str, Any] = json.loads((self.path / "metadata.json").read_text())
        if self.metadata.get("schema_version") != STORE_SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}/metadata.json: schema_version {self.metadata.get('schema_version')} "
                f"!= supported {STORE_SCHEMA_VERSION}"
            )
        self.manifest: pd.DataFrame = pd.read_csv(
            self.path / "manifest.csv", dtype=str, keep_default_na=False
        )
        self.n_images = int(self.metadata["n_images"])
        self.n_tokens = int(self.metadata["n_tokens"])
        self.d_model = int(self.metadata["d_model"])
        self.digest = str(self.metadata["store_key"])
        self._sizes = np.asarray(self.metadata["shard_sizes"], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)])
        self._mmaps: dict[int, np.ndarray] = {}
        if len(self.manifest) != self.n_images or self._offsets[-1] != self.n_images:
            raise ValueError(
                f"{self.path}: manifest rows / shard sizes disagree with n_images={self.n_images}"
            )

    def __len__(self) -> int:
        return self.n_images

    def __repr__(self) -> str:
        return (
            f"TokenStore({str(self.path)!r}, n_images={self.n_images}, n_tokens={self.n_tokens}, "
            f"d_model={self.d_model})"
        )

    @property
    def skipped(self) -> pd.DataFrame:
        """Unreadable images of the extraction (image_id, path, reason)."""
        return pd.read_csv(self.path / "skipped.csv", dtype=str, keep_default_na=False)

    @property
    def is_random_init(self) -> bool:
        return bool(self.metadata["backbone"]["is_random_init"])

    def _shard(self, k: int) -> np.ndarray:
        m = self._mmaps.get(k)
        if m is None:
            m = np.load(self.path / f"{shard_name(k)}.npy", mmap_mode="r")
            if m.shape[1:] != (self.n_tokens, self.d_model):
                raise ValueError(f"{self.path}/{shard_name(k)}.npy has shape {m.shape}")
            self._mmaps[k] = m
        return m

    def get_numpy(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """float16 array (k, T, D) of the images ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_images):
            raise IndexError(f"image index out of range [0, {self.n_images}) in {self.path}")
        out = np.empty((idx.size, self.n_tokens, self.d_model), dtype=STORE_DTYPE)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for k in np.unique(shard_of):
            sel = np.nonzero(shard_of == k)[0]
            local = idx[sel] - self._offsets[k]
            order = np.argsort(local, kind="stable")
            out[sel[order]] = self._shard(int(k))[local[order]]
        return out

    def get(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Random access: float32 tensor (k, T, D) of the images ``indices``."""
        return torch.from_numpy(self.get_numpy(indices).astype(np.float32))

    def epoch_order(
        self, *, shuffle: bool = True, seed: int = 42, epoch: int = 0, window_shards: int = 4
    ) -> np.ndarray:
        """The image order of one epoch (a permutation of ``range(n_images)``).

        Chunked shuffle: shard order is permuted, shards are grouped into windows of
        ``window_shards`` consecutive (permuted) shards, and images are permuted within each
        window. Deterministic in (seed, epoch).
        """
        if not shuffle:
            return np.arange(self.n_images, dtype=np.int64)
        rng = np.random.default_rng([int(seed), int(epoch)])
        perm = rng.permutation(len(self._sizes))
        parts = []
        for w in range(0, len(perm), max(1, window_shards)):
            window = perm[w : w + window_shards]
            idx = np.concatenate(
                [np.arange(self._offsets[k], self._offsets[k + 1]) for k in window]
            )
            parts.append(rng.permutation(idx))
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def n_batches(self, batch_images: int, *, drop_last: bool = True) -> int:
        return self.n_images // batch_images if drop_last else -(-self.n_images // batch_images)

    def iter_batches(
        self,
        batch_images: int,
        *,
        shuffle: bool = True,
        seed: int = 42,
        epoch: int = 0,
        start_batch: int = 0,
        drop_last: bool = True,
        window_shards: int = 4,
    ) -> Iterator[torch.Tensor]:
        """Batches of float32 tokens (B, T, D) for training.

        Memory is bounded by one batch (shards are memory-mapped). Each image appears exactly
        once per epoch (the last partial batch is dropped when ``drop_last``). ``start_batch``
        resumes mid-epoch: the batches are those of an uninterrupted epoch from that index on.
        """
        if batch_images <= 0:
            raise ValueError(f"batch_images must be positive, got {batch_images}")
        order = self.epoch_order(
            shuffle=shuffle, seed=seed, epoch=epoch, window_shards=window_shards
        )
        for b in range(start_batch, self.n_batches(batch_images, drop_last=drop_last)):
            yield self.get(order[b * batch_images : (b + 1) * batch_images])

    def iter_images(self, batch_images: int = 64) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Sequential pass over all images: ``(indices (B,) int64, tokens (B, T, D) float32)``."""
        for start in range(0, self.n_images, batch_images):
            idx = np.arange(start, min(start + batch_images, self.n_images), dtype=np.int64)
            yield idx, self.get(idx)
