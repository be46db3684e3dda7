"""The pread reader of a token store and the image order: exact bytes, the class mix of a full
shuffle, determinism, read-ahead threads, and memory that stays flat in the store size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import cytosae.store.reader as reader_mod
from cytosae.atomic import atomic_write_text
from cytosae.data.adapters import MANIFEST_COLUMNS
from cytosae.store.layout import (
    STORE_SCHEMA_VERSION,
    csv_text,
    finalize_store,
    json_text,
    shard_path,
    write_shard,
)
from cytosae.store.order import epoch_order
from cytosae.store.reader import TokenStore

#: MLL23's published class counts (41,621 images, 18 classes); manifests sort by image_id, i.e. by
#: class folder, so the store holds the classes one after the other.
MLL23_CLASSES = {
    "basophil": 616, "eosinophil": 2448, "hairy_cell": 3265, "lymphocyte": 5532,
    "lymphocyte_large_granular": 1849, "lymphocyte_neoplastic": 180, "lymphocyte_reactive": 33,
    "metamyelocyte": 483, "monocyte": 2510, "myeloblast": 8606, "myelocyte": 747,
    "neutrophil_band": 687, "neutrophil_segmented": 7170, "normoblast": 2071, "plasma_cell": 1658,
    "promyelocyte": 745, "promyelocyte_atypical": 2033, "smudge_cell": 988,
}  # fmt: skip


def make_store(folder: Path, sizes: list[int], T: int = 3, D: int = 8, seed: int = 0) -> Path:
    """A complete store of random float16 tokens with the given shard sizes."""
    folder.mkdir(parents=True)
    n = sum(sizes)
    man = pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in MANIFEST_COLUMNS})
    atomic_write_text(folder / "input_manifest.csv", csv_text(man))
    req = {
        "schema_version": STORE_SCHEMA_VERSION, "store_key": f"test{seed}", "n_shards": len(sizes),
        "n_tokens": T, "d_model": D, "backbone": {"is_random_init": True},
    }  # fmt: skip
    atomic_write_text(folder / "request.json", json_text(req))
    rng = np.random.default_rng(seed)
    start = 0
    for k, s in enumerate(sizes):
        arr = rng.standard_normal((s, T, D), dtype=np.float32).astype(np.float16)
        rows = list(range(start, start + s))
        write_shard(folder, k, arr, {"shard": k, "rows": rows, "skipped": []})
        start += s
    assert finalize_store(folder)
    return folder


def all_tokens(folder: Path, n_shards: int) -> np.ndarray:
    """The reference: every shard loaded by ``np.load`` and concatenated."""
    return np.concatenate([np.load(shard_path(folder, k, "npy")) for k in range(n_shards)])


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return make_store(tmp_path / "s", [5, 5, 1, 5, 4])


# ------------------------------------------------------------------ the order
def test_full_shuffle_mixes_classes_like_the_paper() -> None:
    """On an MLL23-shaped, class-sorted store the batches hold the classes of a random sample.

    The expected number of distinct classes among 64 images drawn at random without replacement
    is sum_c 1 - C(N - n_c, 64) / C(N, 64) = 13.995 for these counts (several classes are rare:
    33 lymphocyte_reactive images are in one batch in 20); a full shuffle's batches must match it.
    The chunked shuffle this replaced (shard order permuted, images permuted within windows of 4
    shards of 256) gave 3.8 classes per batch (2-9).
    """
    counts = np.array(list(MLL23_CLASSES.values()))
    labels = np.repeat(np.arange(len(counts)), counts)
    N, B = labels.size, 64
    assert N == 41_621
    i = np.arange(B)
    expected = sum(1 - np.prod((N - c - i) / (N - i)) for c in counts)
    assert expected == pytest.approx(13.995, abs=1e-3)
    for epoch in (0, 1):
        order = epoch_order(N, seed=42, epoch=epoch)
        k = np.array([len(np.unique(labels[order[b * B : (b + 1) * B]])) for b in range(N // B)])
        assert abs(k.mean() - expected) < 0.15, k.mean()  # s.e. of the mean over 650 batches: 0.05
        assert k.min() >= 8 and k.max() >= 17
        # the most frequent class, myeloblast (20.7 %), is spread over every batch
        myelo = np.array([(labels[order[b * B : (b + 1) * B]] == 9).sum() for b in range(N // B)])
        assert abs(myelo.mean() - B * counts[9] / N) < 0.3 and myelo.min() >= 3


def test_order_is_a_pure_function_of_n_seed_epoch() -> None:
    a = epoch_order(1000, seed=42, epoch=0)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(1000))  # each image once
    assert np.array_equal(a, epoch_order(1000, seed=42, epoch=0))
    assert not np.array_equal(a, epoch_order(1000, seed=42, epoch=1))
    assert not np.array_equal(a, epoch_order(1000, seed=43, epoch=0))
    assert np.array_equal(epoch_order(7, shuffle=False, seed=3, epoch=5), np.arange(7))
    assert epoch_order(0).size == 0
    # pinned values: a change of numpy's Generator stream would change every training order
    assert epoch_order(10, seed=42, epoch=0).tolist() == [5, 6, 0, 7, 3, 2, 4, 9, 1, 8]


def test_store_order_ignores_the_shard_layout(tmp_path: Path) -> None:
    a = TokenStore(make_store(tmp_path / "a", [10, 10, 10]))
    b = TokenStore(make_store(tmp_path / "b", [3, 27]))
    for e in (0, 1):
        assert np.array_equal(a.epoch_order(seed=7, epoch=e), b.epoch_order(seed=7, epoch=e))


# ------------------------------------------------------------------ exact bytes
def test_pread_reader_returns_the_shard_bytes(store_dir: Path) -> None:
    ref = all_tokens(store_dir, 5)
    store = TokenStore(store_dir)
    assert store.n_images == ref.shape[0] == 20
    rng = np.random.default_rng(0)
    cases = [
        np.arange(20), np.arange(20)[::-1], rng.permutation(20), [4, 5, 10, 11, 19, 0],
        [3, 3, 3, 12, 3], [10], [], rng.integers(0, 20, 57),
    ]  # fmt: skip
    for idx in cases:
        got = store.get_numpy(idx)
        assert got.dtype == np.float16 and np.array_equal(got, ref[np.asarray(idx, dtype=int)])
        t = store.get(idx)
        assert t.dtype == torch.float32
        assert torch.equal(t, torch.from_numpy(ref[np.asarray(idx, dtype=int)].astype(np.float32)))
    with pytest.raises(IndexError):
        store.get([20])
    with pytest.raises(IndexError):
        store.get([-1])


def test_iter_read_in_order_with_threads_and_partial_batches(store_dir: Path) -> None:
    ref = torch.from_numpy(all_tokens(store_dir, 5).astype(np.float32))
    store = TokenStore(store_dir)
    order = store.epoch_order(seed=3)
    batches = [order[i : i + 3] for i in range(0, 20, 3)]  # last one partial
    for workers in (1, 2, 8):
        got = list(store.iter_read(batches, workers=workers))
        assert len(got) == len(batches)
        for idx, t in zip(batches, got):
            assert torch.equal(t, ref[torch.as_tensor(idx)])
    raw = all_tokens(store_dir, 5)
    for t, idx in zip(store.iter_read(batches, as_stored=True), batches):  # float16, no copy
        assert t.dtype == torch.float16 and np.array_equal(t.numpy(), raw[idx])
    seq = list(store.iter_images(6, start=2, stop=17))
    assert [i.tolist() for i, _ in seq] == [list(range(s, min(s + 6, 17))) for s in (2, 8, 14)]
    assert all(torch.equal(t, ref[torch.as_tensor(i)]) for i, t in seq)
    assert sum(len(i) for i, _ in store.iter_images(7)) == 20


def test_few_open_files_and_pickling(store_dir: Path, monkeypatch) -> None:
    import pickle

    ref = all_tokens(store_dir, 5)
    monkeypatch.setattr(reader_mod, "MAX_OPEN_FILES", 1)
    store = TokenStore(store_dir)
    idx = np.random.default_rng(1).permutation(20)
    assert np.array_equal(store.get_numpy(idx), ref[idx])
    assert len(store._fds) == 1  # the others were opened and closed per read
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.get_numpy(idx), ref[idx])
    store.close()
    assert store._fds == {} and np.array_equal(store.get_numpy([7]), ref[[7]])


def test_damaged_shard_is_named(store_dir: Path) -> None:
    npy = shard_path(store_dir, 3, "npy")
    npy.write_bytes(npy.read_bytes()[:-10])
    # opening the store checks every shard's size (cytosae.store.layout.check_shard_files)
    with pytest.raises(ValueError, match=r"shard_00003\.npy is truncated or damaged"):
        TokenStore(store_dir)


def test_abandoned_iterator_stops_its_threads(store_dir: Path) -> None:
    store = TokenStore(store_dir)
    before = threading.active_count()
    it = store.iter_read(([i] for i in range(10**9)), workers=4)  # endless
    next(it)
    assert threading.active_count() > before
    it.close()
    assert threading.active_count() == before
    for _ in store.iter_batches(2, seed=0):
        break  # leaving a for loop closes the generator (CPython refcounting)
    import gc

    gc.collect()
    assert threading.active_count() == before


# ------------------------------------------------------------------ memory
_RSS_CHILD = """
import json, sys, threading, time
import numpy as np
from cytosae.store.reader import TokenStore

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

store = TokenStore(sys.argv[1])
peak = [0.0]
done = threading.Event()
def poll():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb()); time.sleep(0.001)
th = threading.Thread(target=poll, daemon=True); th.start()
def passes(n):
    order = store.epoch_order(seed=1)
    for _ in store.iter_read(order[i : i + 64] for i in range(0, n, 64)):
        pass
    for _ in store.iter_images(64, stop=n):
        pass
passes(1024)  # an eighth of the store: threads, buffers, allocator warmed up
warm = peak[0]
passes(store.n_images)
full = peak[0]
# the reader this replaced: shards memory-mapped (np.load(mmap_mode="r")) and kept open
maps = [np.load(f"{sys.argv[1]}/shard_{k:05d}.npy", mmap_mode="r") for k in range(8)]
total = sum(float(m[i].astype(np.float32).sum()) for m in maps for i in range(m.shape[0]))
done.set(); th.join()
print(json.dumps({"peak_first_eighth_mb": warm, "peak_all_mb": full, "peak_mmap_mb": peak[0]}))
"""


def test_reading_memory_stays_flat_in_store_size(tmp_path: Path) -> None:
    """Peak RSS of a random and a sequential pass over a 256 MiB store is that of the same passes
    over its first eighth (memory-mapped shards would add up to the whole store)."""
    T, D = 16, 1024  # 32 KB records
    folder = make_store(tmp_path / "big", [1024] * 8, T=T, D=D)  # 8192 images, 256 MiB
    code = textwrap.dedent(_RSS_CHILD)
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], check=True, capture_output=True, text=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # reading 8x the data (224 MiB more) adds little (allocator noise; one float32 batch is 4 MiB)
    assert r["peak_all_mb"] - r["peak_first_eighth_mb"] < 48, r
    # while the mapped pages of a pass over memory-mapped shards stay in RSS
    assert r["peak_mmap_mb"] - r["peak_all_mb"] > 160, r
