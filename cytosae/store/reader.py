"""The read side of a token store: :class:`TokenStore` over a complete store folder.

The folder's files and how they are written are owned by :mod:`cytosae.store.layout`
(``docs/token-store.md``); this module only reads them.

Reading never memory-maps the shards: a file-backed mapping keeps every page it touched in the
process's resident set (RSS) for as long as the mapping lives, so a pass over a 67 GB store
would show up to 67 GB of RSS. Instead each image record (``T * D`` float16 values, contiguous
in its shard) is read with ``os.preadv`` straight into a reused float16 buffer, the records of
one batch sorted by (shard, row) and runs of consecutive rows coalesced into one call. Memory
is then a few batches whatever the store size; caching is left to the OS page cache (which is
not RSS and which the kernel shrinks under pressure).

Batches are read ahead by a small pool of threads (``os.preadv`` and the float16 -> float32
copy release the GIL): ``workers`` batches are in flight at once, each read by one thread, so
the disk sees several requests at a time (a cold virtio disk here: about 0.3 GB/s with one
request in flight, about 1.1 GB/s for random 395 KB records with 4-8, 1.5 GB/s sequential).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from cytosae.store.order import epoch_order

__all__ = ["IncompleteStoreError", "TokenStore", "epoch_order"]

#: Batches in flight (one reader thread each) by default.
DEFAULT_WORKERS = 4
#: Shard files kept open; reads of further shards open and close their file.
MAX_OPEN_FILES = 256
_IOV_MAX = 1024
with contextlib.suppress(AttributeError, ValueError, OSError):  # pragma: no cover - platform
    _IOV_MAX = max(1, int(os.sysconf("SC_IOV_MAX")))


class IncompleteStoreError(FileNotFoundError):
    """The folder is not a complete token store (names it and says how to finish it)."""


def _preadv_full(fd: int, views: list[memoryview], offset: int, path: Path) -> None:
    """Fill ``views`` (byte views, in order) from ``fd`` at ``offset``; retries short reads."""
    for i in range(0, len(views), _IOV_MAX):
        chunk = views[i : i + _IOV_MAX]
        want = sum(v.nbytes for v in chunk)
        got = os.preadv(fd, chunk, offset)
        while got < want:  # short read: continue after the bytes already filled
            if got <= 0:
                raise OSError(f"{path}: unexpected end of file at byte {offset} (truncated shard?)")
            done, rest = got, []
            for v in chunk:
                if done >= v.nbytes:
                    done -= v.nbytes
                    continue
                rest.append(v[done:])
                done = 0
            offset, want, chunk = offset + got, want - got, rest
            got = os.preadv(fd, chunk, offset)
        offset += got


class TokenStore:
    """Read side of a complete token store.

    Attributes:
        path: the store folder.
        metadata: the parsed ``metadata.json``.
        manifest: DataFrame of the extracted images (row i = image i).
        n_images, n_tokens, d_model: sizes.
        digest: the store key (folder name: hash of its inputs).

    The store holds open file descriptors (at most :data:`MAX_OPEN_FILES`); :meth:`close` (or
    ``with TokenStore(...) as store:``) releases them, as does garbage collection.
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
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)]).astype(np.int64)
        self._record = self.n_tokens * self.d_model * np.dtype(STORE_DTYPE).itemsize
        self._data_start: dict[int, int] = {}  # shard -> byte offset of row 0 (after the header)
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()
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

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"], state["_lock"] = {}, None  # file descriptors and locks stay here
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the shard files kept open (the store stays usable: they reopen on demand)."""
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)

    @property
    def skipped(self) -> pd.DataFrame:
        """Unreadable images of the extraction (image_id, path, reason)."""
        return pd.read_csv(self.path / SKIPPED, dtype=str, keep_default_na=False)

    @property
    def is_random_init(self) -> bool:
        return bool(self.metadata["backbone"]["is_random_init"])

    # ------------------------------------------------------------------ files
    def _open_shard(self, k: int) -> tuple[int, int, bool]:
        """``(fd, byte offset of row 0, whether the caller must close fd)`` of shard ``k``."""
        with self._lock:
            fd = self._fds.get(k)
            start = self._data_start.get(k)
            if fd is not None and start is not None:
                return fd, start, False
        npy = shard_path(self.path, k, "npy")
        if start is None:
            start = self._parse_header(k, npy)
        fd = os.open(npy, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        with self._lock:
            self._data_start[k] = start
            if k in self._fds:  # another thread opened it meanwhile
                os.close(fd)
                return self._fds[k], start, False
            if len(self._fds) < MAX_OPEN_FILES:
                self._fds[k] = fd
                return fd, start, False
        return fd, start, True

    def _parse_header(self, k: int, npy: Path) -> int:
        """Check shard ``k``'s ``.npy`` header (shape, dtype, C order, size); its data offset."""
        fmt = np.lib.format
        with open(npy, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:  # pragma: no cover - np.save writes 1.0 (2.0 for huge headers)
                raise ValueError(f"{npy}: unsupported .npy version {version}")
            start = f.tell()
        want = (int(self._sizes[k]), self.n_tokens, self.d_model)
        if (
            tuple(shape) != want
            or fortran
            or np.dtype(dtype) != np.dtype(STORE_DTYPE).newbyteorder("<")
        ):
            raise ValueError(
                f"{npy} holds {'Fortran' if fortran else 'C'}-order {np.dtype(dtype)} {tuple(shape)}, "
                f"metadata.json says C-order float16 {want}"
            )
        size = os.path.getsize(npy)
        if size != start + want[0] * self._record:
            raise ValueError(
                f"{npy} is {size} bytes, its header says {start + want[0] * self._record} "
                "(truncated or damaged shard)"
            )
        return start

    # ------------------------------------------------------------------ reading
    def _check(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_images):
            raise IndexError(f"image index out of range [0, {self.n_images}) in {self.path}")
        return idx

    def _read_into(self, idx: np.ndarray, out: np.ndarray) -> None:
        """Read the records ``idx`` into ``out[: len(idx)]`` (float16, C-contiguous), in order.

        Records are visited sorted by (shard, row); a run of consecutive rows of one shard is one
        ``preadv`` whose buffers are the destination rows (merged where they are adjacent).
        """
        n = idx.size
        if n == 0:
            return
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        local = idx - self._offsets[shard_of]
        order = np.lexsort((local, shard_of))
        s_sorted, l_sorted = shard_of[order], local[order]
        # a new run starts where the shard changes or the row is not the previous row + 1
        brk = np.ones(n, dtype=bool)
        brk[1:] = (s_sorted[1:] != s_sorted[:-1]) | (l_sorted[1:] != l_sorted[:-1] + 1)
        starts = np.flatnonzero(brk).tolist()
        ends = [*starts[1:], n]
        rec = self._record
        for a, b in zip(starts, ends):
            k = int(s_sorted[a])
            fd, data_start, temp = self._open_shard(k)
            try:
                views: list[memoryview] = []
                dest = order[a:b]
                i = 0
                while i < b - a:  # merge runs of adjacent destination rows into one buffer
                    j = i + 1
                    while j < b - a and dest[j] == dest[j - 1] + 1:
                        j += 1
                    views.append(memoryview(out[dest[i] : dest[i] + (j - i)]).cast("B"))
                    i = j
                _preadv_full(
                    fd, views, data_start + int(l_sorted[a]) * rec, shard_path(self.path, k, "npy")
                )
            finally:
                if temp:
                    os.close(fd)

    def get_numpy(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """float16 array (k, T, D) of the images ``indices`` (any order, repeats allowed)."""
        idx = self._check(indices)
        out = np.empty((idx.size, self.n_tokens, self.d_model), dtype=STORE_DTYPE)
        self._read_into(idx, out)
        return out

    def get(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Random access: float32 tensor (k, T, D) of the images ``indices``."""
        return torch.from_numpy(self.get_numpy(indices).astype(np.float32))

    def iter_read(
        self,
        index_batches: Iterable[Sequence[int] | np.ndarray],
        *,
        workers: int = DEFAULT_WORKERS,
        as_stored: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Float32 tensors ``(len(idx), T, D)`` of each index array of ``index_batches``, in order
        (float16 as stored with ``as_stored``: read straight into the new tensor, half the bytes
        to move, e.g. to a GPU that converts them; the values are the same).

        ``index_batches`` is consumed lazily, at most ``workers`` arrays ahead of the batch last
        yielded: that many batches are read at once, each by one thread, into one of ``workers``
        reused float16 buffers, then copied into a new float32 tensor (the caller owns it).
        Memory: ``workers`` float16 batches plus at most ``workers + 1`` float32 batches alive
        here, whatever the store size. Every buffer is allocated by the calling thread (memory a
        short-lived thread allocates and another frees piles up in glibc's per-thread arenas).
        Closing the iterator (or leaving a ``for`` loop over it) stops the threads; an error of a
        read (an index out of range, a damaged shard) is raised here, at its batch.
        """
        workers = max(1, int(workers))
        T, D = self.n_tokens, self.d_model
        free: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()

        def read(idx: np.ndarray, buf: np.ndarray | None, out: torch.Tensor) -> torch.Tensor:
            if buf is None:  # as stored: straight into the caller's tensor
                self._read_into(idx, out.numpy())
                return out
            try:
                self._read_into(idx, buf)
                np.copyto(out.numpy(), buf[: idx.size])  # releases the GIL, one thread
            finally:
                free.put(buf)
            return out

        it = iter(index_batches)
        pending: deque[Future[torch.Tensor]] = deque()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenstore-read")

        def submit(indices: Sequence[int] | np.ndarray) -> None:
            try:
                idx = self._check(indices)
            except IndexError as exc:
                failed: Future[torch.Tensor] = Future()
                failed.set_exception(exc)
                pending.append(failed)
                return
            buf: np.ndarray | None = None
            if as_stored:
                out = torch.empty((idx.size, T, D), dtype=torch.float16)
            else:
                try:  # at most workers - 1 reads run now: a buffer is free or not made yet
                    buf = free.get_nowait()
                except queue.Empty:
                    buf = np.empty((idx.size, T, D), dtype=STORE_DTYPE)
                if buf.shape[0] < idx.size:
                    buf = np.empty((idx.size, T, D), dtype=STORE_DTYPE)
                out = torch.empty((idx.size, T, D), dtype=torch.float32)
            pending.append(pool.submit(read, idx, buf, out))

        try:
            for nxt in itertools.islice(it, workers):
                submit(nxt)
            while pending:
                batch = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
                yield batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)

    # ------------------------------------------------------------------ orders and passes
    def epoch_order(self, *, shuffle: bool = True, seed: int = 42, epoch: int = 0) -> np.ndarray:
        """The image order of one pass: :func:`cytosae.store.order.epoch_order` (full shuffle)."""
        return epoch_order(self.n_images, shuffle=shuffle, seed=seed, epoch=epoch)

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
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[torch.Tensor]:
        """The batches of one pass (float32 ``(B, T, D)``): batch ``b`` holds the images
        ``epoch_order(...)[b * B : (b + 1) * B]`` in that order.

        Each image appears exactly once per pass (the last partial batch is dropped when
        ``drop_last``); ``start_batch`` resumes mid-pass with the same batches. Training does not
        use this (its stream runs across pass ends: :func:`cytosae.train.source.step_batches`).
        """
        if batch_images <= 0:
            raise ValueError(f"batch_images must be positive, got {batch_images}")
        order = self.epoch_order(shuffle=shuffle, seed=seed, epoch=epoch)
        n_b = self.n_batches(batch_images, drop_last=drop_last)
        yield from self.iter_read(  # yield from closes it when this generator is closed
            (order[b * batch_images : (b + 1) * batch_images] for b in range(start_batch, n_b)),
            workers=workers,
        )

    def iter_images(
        self,
        batch_images: int = 64,
        *,
        start: int = 0,
        stop: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Sequential pass over the images ``start .. stop - 1`` (default: all):
        ``(indices (B,) int64, tokens (B, T, D) float32)``, read ahead like :meth:`iter_read`."""
        if batch_images <= 0:
            raise ValueError(f"batch_images must be positive, got {batch_images}")
        stop = self.n_images if stop is None else min(int(stop), self.n_images)
        starts = range(int(start), stop, batch_images)

        def idx(s: int) -> np.ndarray:
            return np.arange(s, min(s + batch_images, stop), dtype=np.int64)

        with contextlib.closing(self.iter_read((idx(s) for s in starts), workers=workers)) as it:
            for s, toks in zip(starts, it):
                yield idx(s), toks
