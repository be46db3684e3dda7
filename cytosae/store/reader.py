"""The read side of a token store: :class:`TokenStore` over a complete store folder.

The folder's files and how they are written are owned by :mod:`cytosae.store.layout`
(``docs/token-store.md``); this module only reads them. Shards are memory-mapped, so memory is
one batch whatever the dataset size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cytosae.atomic import COMPLETE, is_complete
from cytosae.store.layout import (
    MANIFEST,
    METADATA,
    SKIPPED,
    STORE_DTYPE,
    STORE_SCHEMA_VERSION,
    check_shard_files,
    shard_path,
)


class IncompleteStoreError(FileNotFoundError):
    """The folder is not a complete token store (names it and says how to finish it)."""


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
        self.metadata: dict[str, Any] = json.loads((self.path / METADATA).read_text())
        if self.metadata.get("schema_version") != STORE_SCHEMA_VERSION:
            raise ValueError(
                f"{self.path / METADATA}: schema_version {self.metadata.get('schema_version')} "
                f"!= supported {STORE_SCHEMA_VERSION}"
            )
        self.manifest: pd.DataFrame = pd.read_csv(
            self.path / MANIFEST, dtype=str, keep_default_na=False
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
        # every shard's header and byte size (no data read): a truncated shard is named here
        check_shard_files(self.path, self._sizes, self.n_tokens, self.d_model)

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
        return pd.read_csv(self.path / SKIPPED, dtype=str, keep_default_na=False)

    @property
    def is_random_init(self) -> bool:
        return bool(self.metadata["backbone"]["is_random_init"])

    def _shard(self, k: int) -> np.ndarray:
        m = self._mmaps.get(k)
        if m is None:
            npy = shard_path(self.path, k, "npy")
            m = np.load(npy, mmap_mode="r")
            if m.shape[1:] != (self.n_tokens, self.d_model):
                raise ValueError(f"{npy} has shape {m.shape}")
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
