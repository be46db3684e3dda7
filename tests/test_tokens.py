"""Token store reader: coverage, determinism, resume mid-epoch, random access (see also\ntests/test_reader.py: the pread reader, the order, memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cytosae.atomic import atomic_write_text
from cytosae.data.adapters import MANIFEST_COLUMNS
from cytosae.store.layout import (
    STORE_SCHEMA_VERSION,
    csv_text,
    finalize_store,
    json_text,
    write_shard,
)
from cytosae.store.reader import IncompleteStoreError, TokenStore

T, D = 5, 4


def _make_store(folder: Path, sizes: list[int], finalize: bool = True) -> Path:
    """A store whose token [i, t, d] = i + t/8 + d/64 (exact in float16 for i < 256)."""
    folder.mkdir(parents=True)
    n = sum(sizes)
    man = pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in MANIFEST_COLUMNS})
    atomic_write_text(folder / "input_manifest.csv", csv_text(man))
    req = {
        "schema_version": STORE_SCHEMA_VERSION,
        "store_key": "testkey",
        "n_shards": len(sizes),
        "n_tokens": T,
        "d_model": D,
        "backbone": {"is_random_init": True},
    }
    atomic_write_text(folder / "request.json", json_text(req))
    start = 0
    for k, s in enumerate(sizes):
        idx = np.arange(start, start + s)
        arr = (
            idx[:, None, None] + np.arange(T)[None, :, None] / 8 + np.arange(D)[None, None, :] / 64
        )
        write_shard(
            folder, k, arr.astype(np.float16), {"shard": k, "rows": idx.tolist(), "skipped": []}
        )
        start += s
    if finalize:
        assert finalize_store(folder)
    return folder


def _ids(batch: torch.Tensor) -> list[int]:
    return batch[:, 0, 0].round().to(torch.int64).tolist()


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(_make_store(tmp_path / "s", [7, 7, 7, 7, 7, 3]))


def test_layout_and_random_access(store: TokenStore) -> None:
    assert (store.n_images, store.n_tokens, store.d_model) == (38, T, D)
    assert list(store.manifest["image_id"]) == [f"image_id{i}" for i in range(38)]
    got = store.get([37, 0, 8, 8, 20])
    assert got.dtype == torch.float32 and got.shape == (5, T, D)
    assert _ids(got) == [37, 0, 8, 8, 20]
    assert got[2, 3, 2].item() == pytest.approx(8 + 3 / 8 + 2 / 64)
    with pytest.raises(IndexError):
        store.get([38])


def test_iter_images_sequential(store: TokenStore) -> None:
    seen = []
    for idx, toks in store.iter_images(batch_images=5):
        assert _ids(toks) == idx.tolist()
        seen.extend(idx.tolist())
    assert seen == list(range(38))


def test_shuffled_batches_cover_each_image_once_and_are_deterministic(store: TokenStore) -> None:
    e0 = [_ids(b) for b in store.iter_batches(4, seed=1, epoch=0, drop_last=False)]
    flat = [i for b in e0 for i in b]
    assert sorted(flat) == list(range(38))  # exactly once
    assert flat != list(range(38))  # shuffled
    assert flat == store.epoch_order(seed=1, epoch=0).tolist()  # batch b = order[4b : 4b + 4]
    again = [_ids(b) for b in store.iter_batches(4, seed=1, epoch=0, drop_last=False)]
    assert again == e0
    e1 = [i for b in store.iter_batches(4, seed=1, epoch=1, drop_last=False) for i in _ids(b)]
    assert sorted(e1) == list(range(38)) and e1 != flat
    dropped = list(store.iter_batches(4, seed=1, epoch=0))
    assert len(dropped) == 9 and all(b.shape[0] == 4 for b in dropped)
    assert [_ids(b) for b in dropped] == e0[:9]
    # full shuffle, not chunked: the first 14 images come from more than 2 of the 6 shards
    order = store.epoch_order(seed=1, epoch=0)
    assert len({int(i) // 7 for i in order[:14]}) > 2


def test_start_batch_resumes_mid_epoch(store: TokenStore) -> None:
    full = [_ids(b) for b in store.iter_batches(3, seed=5, epoch=2)]
    tail = [_ids(b) for b in store.iter_batches(3, seed=5, epoch=2, start_batch=4)]
    assert tail == full[4:] and len(full) == 12


def test_unshuffled_and_errors(tmp_path: Path, store: TokenStore) -> None:
    seq = [i for b in store.iter_batches(10, shuffle=False, drop_last=False) for i in _ids(b)]
    assert seq == list(range(38))
    with pytest.raises(ValueError, match="batch_images"):
        next(store.iter_batches(0))
    partial = _make_store(tmp_path / "p", [3, 3], finalize=False)
    (partial / "shard_00001.json").unlink()
    assert not finalize_store(partial)
    with pytest.raises(IncompleteStoreError, match="no COMPLETE marker"):
        TokenStore(partial)
