"""Token stores larger than memory: training and encode-pass reads at 30 GB vs 1 GB.

Writes two token stores DIRECTLY in the store's own format (``cytosae.store.layout``:
``prepare_folder`` / ``write_shard`` / ``finalize_store``; a synthetic class-sorted MLL23-shaped
manifest, DinoBloom-B shapes: 257 tokens x 768 float16 = 395 KB per image, shards of 256 images;
no backbone): a large one (``--size-gb``, default 30 GiB, more than this machine's page cache can
hold) and a small one (``--small-gb``, default 1 GiB, which sits in the page cache). The tokens
are random normal float16: each shard is a random selection of 512 random records, with the image
index written exactly into its first three values, so every batch read is checked to be the
images the stream asked for.

Then, on each store and each in a fresh subprocess (so peak RSS is that run's), with the store's
pages evicted from the page cache first (``posix_fadvise(DONTNEED)`` on every shard; the global
``/proc/sys/vm/drop_caches`` is tried too and reported):

* ``train``: ``--steps`` steps (default 200) of the paper's data stream
  (``cytosae.train.source.step_batches``: full shuffle, seed 42, 64 images per step, after the
  b_dec batch) feeding a SMALL SAE (``--sae small``: ReLU + L1, d_sae = ``--d-sae`` (64), Adam,
  plain torch; ``--sae project``: cytosae's SAETrainer at expansion 1): the paper's x64 SAE is far
  too slow on 2 CPU cores and would hide the data path. Reports tokens/s and the share of the time
  spent waiting for data;
* ``read``: the same stream without any compute (the reader alone): MB/s from disk;
* ``seqread``: a sequential pass (``iter_images``) over the first ``--encode-images`` images
  (default 2500, at most the small store's size, so both stores read the same count): MB/s;
* ``encode``: ``cytosae.analysis.latents.encode_pass`` over the same images (a small ReLU
  encoder, d_sae 256);
* ``mmap``: the same images read through ``np.load(mmap_mode="r")`` shards kept mapped (what the
  reader did before), to show how its RSS grows with what is read.

Prints ratios (large vs small) measured in one run. Cleans up the stores unless ``--keep`` (a kept
store is reused by the next run with the same ``--dir``).

Usage::

    python benchmarks/bench_scale.py                       # 30 GiB + 1 GiB, ~30 min on 2 busy cores
    python benchmarks/bench_scale.py --size-gb 2 --small-gb 0.5 --steps 40 --encode-images 500
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

T, D, SHARD = 257, 768, 256
RECORD = T * D * 2  # bytes of one image, float16
GIB = 2**30
POOL = 512  # random records per pool


# --------------------------------------------------------------------------------------- helpers
def status_mb() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(line.split()[1]) / 1024
    return out


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard_*.npy"))


def evict(folder: Path) -> float:
    """Evict the store's pages from the page cache (its shards were fsynced when written) with
    ``posix_fadvise(DONTNEED)``, which needs no privilege and leaves other files cached; returns
    the fraction still resident (``mincore``)."""
    for p in shard_files(folder):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return resident_fraction(folder)


def global_drop_caches() -> str:
    """Try ``echo 3 > /proc/sys/vm/drop_caches`` (root only); say whether it worked."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return "worked"
    except OSError as exc:
        return f"did not work ({exc.strerror or exc})"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]  # fmt: skip
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_fraction(folder: Path) -> float:
    """Fraction of the store's shard bytes in the page cache (``mincore``; touches no page)."""
    page = os.sysconf("SC_PAGE_SIZE")
    res = tot = 0
    for p in shard_files(folder):
        size = p.stat().st_size
        if size == 0:
            continue
        fd = os.open(p, os.O_RDONLY)
        try:
            addr = _libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
            if addr in (None, ctypes.c_void_p(-1).value):
                return float("nan")
            n = -(-size // page)
            vec = (ctypes.c_ubyte * n)()
            if _libc.mincore(ctypes.c_void_p(addr), size, vec) == 0:
                res += int(np.frombuffer(vec, dtype=np.uint8).__and__(1).sum())
            _libc.munmap(ctypes.c_void_p(addr), size)
            tot += n
        finally:
            os.close(fd)
    return res / max(tot, 1)


def decode_marks(batch) -> np.ndarray:
    """The image indices written into the first three values of each record."""
    m = batch[:, 0, :3].double().round().long().numpy()
    return m[:, 0] + 2048 * m[:, 1] + 2048 * 2048 * m[:, 2]


# --------------------------------------------------------------------------------------- writing
def mll23_like_manifest(n: int):
    """A class-sorted manifest of n images with MLL23's class proportions."""
    import pandas as pd

    from cytosae.data.adapters import MANIFEST_COLUMNS

    counts = {
        "basophil": 616, "eosinophil": 2448, "hairy_cell": 3265, "lymphocyte": 5532,
        "lymphocyte_large_granular": 1849, "lymphocyte_neoplastic": 180, "lymphocyte_reactive": 33,
        "metamyelocyte": 483, "monocyte": 2510, "myeloblast": 8606, "myelocyte": 747,
        "neutrophil_band": 687, "neutrophil_segmented": 7170, "normoblast": 2071,
        "plasma_cell": 1658, "promyelocyte": 745, "promyelocyte_atypical": 2033, "smudge_cell": 988,
    }  # fmt: skip
    names = list(counts)
    p = np.array(list(counts.values()), dtype=float)
    edges = np.round(np.cumsum(p) / p.sum() * n).astype(int)
    labels = np.repeat(names, np.diff(np.r_[0, edges]))
    df = pd.DataFrame({c: [""] * n for c in MANIFEST_COLUMNS})
    df["image_id"] = [f"{lab}/{i:07d}" for i, lab in enumerate(labels)]
    df["path"] = [f"/synthetic/{lab}/{i:07d}.tif" for i, lab in enumerate(labels)]
    df["dataset"], df["label"], df["split"] = "bench", labels, "train"
    return df


def write_store(folder: Path, n_images: int, seed: int) -> Path:
    """Write a complete store of ``n_images`` random records (resumes a partial one)."""
    from cytosae.atomic import is_complete
    from cytosae.model.backbone import BackboneConfig
    from cytosae.store.layout import (
        build_request,
        finalize_store,
        prepare_folder,
        shard_done,
        shard_rows,
        write_shard,
    )

    if is_complete(folder):
        print(f"  reusing the complete store {folder}", flush=True)
        return folder
    man = mll23_like_manifest(n_images)
    req = build_request(man, BackboneConfig(arch="dinobloom-b"), precision="fp32", alpha="drop",
                        shard_size=SHARD)  # fmt: skip
    prepare_folder(folder, req, man)
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((POOL, T, D), dtype=np.float32).astype(np.float16)
    n_shards = int(req["n_shards"])
    t0, written = time.perf_counter(), 0
    for k in range(n_shards):
        rows = list(shard_rows(k, n_images, SHARD))
        if shard_done(folder, k):
            continue
        arr = pool[rng.permutation(POOL)[: len(rows)]]
        idx = np.asarray(rows)
        arr[:, 0, 0] = idx % 2048
        arr[:, 0, 1] = (idx // 2048) % 2048
        arr[:, 0, 2] = idx // 2048**2
        write_shard(folder, k, arr, {"shard": k, "rows": rows, "skipped": []})
        written += arr.nbytes
        if k % 20 == 0 or k == n_shards - 1:
            dt = time.perf_counter() - t0
            print(f"  shard {k + 1}/{n_shards}: {written / GIB:.1f} GiB in {dt:.0f} s "
                  f"({written / 1e6 / max(dt, 1e-9):.0f} MB/s)", flush=True)  # fmt: skip
    assert finalize_store(folder)
    return folder


# --------------------------------------------------------------------------------------- children
class _SmallSAE:
    """ReLU SAE with L1 and Adam, plain torch (the small SAE of ``--sae small``)."""

    def __init__(self, d_sae: int, b_dec):
        import torch

        g = torch.Generator().manual_seed(0)
        self.W_enc = (torch.randn(D, d_sae, generator=g) / D**0.5).requires_grad_()
        self.b_enc = torch.zeros(d_sae, requires_grad=True)
        W = torch.randn(d_sae, D, generator=g)
        self.W_dec = (W / W.norm(dim=1, keepdim=True)).requires_grad_()
        self.b_dec = b_dec.clone().requires_grad_()
        self.opt = torch.optim.Adam([self.W_enc, self.b_enc, self.W_dec, self.b_dec], lr=4e-4)

    def step(self, x) -> float:
        import torch

        self.opt.zero_grad(set_to_none=True)
        f = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        x_hat = f @ self.W_dec + self.b_dec
        loss = (x_hat - x).pow(2).mean() + 8e-5 * f.sum(-1).mean()
        loss.backward()
        self.opt.step()
        return float(loss)


def child_train(args: argparse.Namespace, compute: bool) -> dict[str, Any]:
    import torch

    from cytosae.store.reader import TokenStore
    from cytosae.train.config import TrainConfig
    from cytosae.train.source import DataStream, b_dec_sample, step_batches

    base = status_mb()
    store = TokenStore(args.store)
    tcfg = TrainConfig(batch_images=64, total_images=64 * args.steps, data_seed=42,
                       b_dec_init_images=64, lr_warmup_steps=1)  # fmt: skip
    stream = DataStream(store.n_images, tcfg)
    labels = store.manifest["label"].to_numpy()
    t0 = time.perf_counter()
    sample = b_dec_sample(store, tcfg)
    assert np.array_equal(decode_marks(sample), stream.b_dec_images())
    sae: Any = None
    if compute and args.sae == "small":
        sae = _SmallSAE(args.d_sae, sample.reshape(-1, D).mean(0))
    elif compute:
        from cytosae.model.sae import SAEConfig
        from cytosae.train.trainer import SAETrainer

        cfg = SAEConfig(d_in=D, expansion_factor=1, b_dec_init="zeros")
        sae = SAETrainer(cfg, tcfg, torch.device("cpu"))
    del sample
    wait, classes, n_img = 0.0, [], 0
    it = step_batches(store, tcfg, 0, args.steps)
    t_first = time.perf_counter()
    for _ in range(args.steps):
        tw = time.perf_counter()
        step, batch = next(it)
        wait += time.perf_counter() - tw
        idx = decode_marks(batch)
        assert np.array_equal(idx, stream.step_images(step)), f"step {step}: wrong images"
        classes.append(len(np.unique(labels[idx])))
        n_img += batch.shape[0]
        if compute:
            x = batch.reshape(-1, D)
            if args.sae == "small":
                sae.step(x)
            else:
                sae.step(x, step)
        del batch
    it.close()
    dt = time.perf_counter() - t_first
    end = status_mb()
    return {
        "steps": args.steps, "seconds": dt, "first_read_s": t_first - t0,
        "tokens_per_s": n_img * T / dt, "images_per_s": n_img / dt,
        "read_MB_per_s": n_img * RECORD / 1e6 / dt, "wait_fraction": wait / dt,
        "classes_per_batch_mean": float(np.mean(classes)), "classes_per_batch_min": int(np.min(classes)),
        "classes_per_batch_max": int(np.max(classes)),
        "rss_base_mb": base["VmRSS"], "peak_rss_mb": end["VmHWM"],
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


class _Head:
    """The first ``n`` images of a store, as ``encode_pass`` sees a store."""

    def __init__(self, store: Any, n: int, mmap: bool = False) -> None:
        self.store, self.n_images, self.mmap = store, min(n, store.n_images), mmap
        self.n_tokens, self.d_model, self.digest = store.n_tokens, store.d_model, store.digest
        self.manifest = store.manifest.iloc[: self.n_images].reset_index(drop=True)
        self._maps: dict[int, np.ndarray] = {}

    def iter_images(self, batch_images: int):
        import torch

        if not self.mmap:
            yield from self.store.iter_images(batch_images, stop=self.n_images)
            return
        for s in range(0, self.n_images, batch_images):  # the previous reader: shards kept mapped
            idx = np.arange(s, min(s + batch_images, self.n_images))
            out = np.empty((idx.size, T, D), np.float16)
            for j, i in enumerate(idx):
                k, r = divmod(int(i), SHARD)
                if k not in self._maps:
                    self._maps[k] = np.load(self.store.path / f"shard_{k:05d}.npy", mmap_mode="r")
                out[j] = self._maps[k][r]
            yield idx, torch.from_numpy(out.astype(np.float32))


def child_encode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    import torch

    from cytosae.store.reader import TokenStore

    base = status_mb()
    store = TokenStore(args.store)
    head = _Head(store, args.encode_images, mmap=(mode == "mmap"))
    t0 = time.perf_counter()
    if mode == "seqread":
        n = 0
        for idx, toks in head.iter_images(32):
            assert np.array_equal(decode_marks(toks), idx)
            n += idx.size
    else:
        from cytosae.analysis.latents import encode_pass

        class Enc(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                g = torch.Generator().manual_seed(0)
                self.W_enc = torch.nn.Parameter(torch.randn(D, 256, generator=g) / D**0.5)
                self.b_enc = torch.nn.Parameter(torch.full((256,), -1.5))
                self.cfg = SimpleNamespace(d_sae=256)

            def encode(self, x: torch.Tensor) -> torch.Tensor:
                return torch.relu(x @ self.W_enc + self.b_enc)

        stats = encode_pass(Enc(), head, batch_images=32, progress=False)
        n = stats.n_images
    dt = time.perf_counter() - t0
    end = status_mb()
    return {"images": n, "seconds": dt, "images_per_s": n / dt, "read_MB_per_s": n * RECORD / 1e6 / dt,
            "rss_base_mb": base["VmRSS"], "peak_rss_mb": end["VmHWM"],
            "rss_growth_mb": end["VmHWM"] - base["VmRSS"]}  # fmt: skip


def run_child(mode: str, store: Path, args: argparse.Namespace) -> dict[str, Any]:
    ev: dict[str, Any] = {}
    if args.global_drop:
        ev["global_drop_caches"] = global_drop_caches()
    ev["resident_before"] = evict(store)
    cmd = [sys.executable, __file__, "--child", mode, "--store", str(store), "--steps",
           str(args.steps if mode == "train" else args.read_steps), "--d-sae", str(args.d_sae),
           "--sae", args.sae, "--encode-images", str(args.encode_images)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(ev)
    return res


# --------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--size-gb", type=float, default=30.0, help="large store, GiB (default 30)")
    p.add_argument("--small-gb", type=float, default=1.0, help="small store, GiB (default 1)")
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the stores (reused by a rerun)")
    p.add_argument("--steps", type=int, default=200, help="training steps per store")
    p.add_argument("--read-steps", type=int, default=200, help="steps of the reader-alone run")
    p.add_argument(
        "--encode-images", type=int, default=2500, help="images of the encode pass (<= small store)"
    )
    p.add_argument("--sae", choices=("small", "project"), default="small")
    p.add_argument("--d-sae", type=int, default=64, help="latents of the small SAE")
    p.add_argument("--reserve-gb", type=float, default=5.0, help="disk space to leave free (GiB)")
    p.add_argument("--json", default="", help="write every run's numbers to this file")
    p.add_argument("--repeats", type=int, default=2, help="runs per (store, mode), interleaved")
    p.add_argument(
        "--global-drop",
        action="store_true",
        help="also drop the whole page cache before every run (root; default: once, at the start)",
    )
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if args.child in ("train", "read"):
            res = child_train(args, compute=args.child == "train")
        else:
            res = child_encode(args, args.child)
        print(json.dumps(res))
        return

    root = args.dir or Path(tempfile.gettempdir()) / "cytosae-bench-scale"
    root.mkdir(parents=True, exist_ok=True)
    sizes = {"large": args.size_gb, "small": args.small_gb}
    n_img = {k: math.ceil(v * GIB / RECORD) for k, v in sizes.items()}
    folders = {k: root / f"store_{k}_{n_img[k]}" for k in sizes}
    if args.encode_images > n_img["small"]:  # the same images on both stores
        print(f"--encode-images {args.encode_images} -> {n_img['small']} (the small store's size)")
        args.encode_images = n_img["small"]
    need = sum(
        n * (RECORD + 200) for k, n in n_img.items() if not (folders[k] / "COMPLETE").exists()
    )
    free = shutil.disk_usage(root).free
    if free < need + args.reserve_gb * GIB:
        sys.exit(f"bench_scale: not enough disk space in {root}: {free / GIB:.1f} GiB free, the "
                 f"stores need {need / GIB:.1f} GiB plus {args.reserve_gb:g} GiB kept free "
                 "(--size-gb / --small-gb / --dir / --reserve-gb)")  # fmt: skip
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"bench_scale: {root}, free disk {free / GIB:.1f} GiB, RAM {mem / GIB:.1f} GiB, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    t_all = time.perf_counter()
    try:
        for k in ("large", "small"):
            print(f"writing the {k} store: {n_img[k]} images x {RECORD} B = "
                  f"{n_img[k] * RECORD / GIB:.2f} GiB", flush=True)  # fmt: skip
            t0 = time.perf_counter()
            write_store(folders[k], n_img[k], seed=1 if k == "large" else 2)
            results[k] = {"write_s": time.perf_counter() - t0, "images": n_img[k],
                          "gib": n_img[k] * RECORD / GIB}  # fmt: skip
        results["global_drop_caches"] = global_drop_caches()  # once, to say whether it works
        for mode in ("train", "read", "seqread", "encode", "mmap"):
            for rep in range(args.repeats if mode != "mmap" else 1):
                for k in ("large", "small") if mode != "mmap" else ("large",):
                    res = run_child(mode, folders[k], args)
                    speed = res.get("tokens_per_s", res.get("images_per_s", 0.0))
                    print(f"  {k}: {mode} run {rep + 1}: {speed:,.0f} "
                          f"{'tokens' if 'tokens_per_s' in res else 'images'}/s, "
                          f"peak RSS {res['peak_rss_mb']:,.0f} MB, page cache before "
                          f"{res['resident_before']:.1%}", flush=True)  # fmt: skip
                    results[k].setdefault(f"{mode}_runs", []).append(res)
        for k in ("large", "small"):  # the fastest run of each mode (others were loaded more)
            for mode in ("train", "read", "seqread", "encode", "mmap"):
                runs = results[k].get(f"{mode}_runs")
                if runs:
                    key = "tokens_per_s" if "tokens_per_s" in runs[0] else "images_per_s"
                    results[k][mode] = max(runs, key=lambda r: r[key])
        report(results, args, mem)
    finally:
        if not args.keep:
            for f in folders.values():
                shutil.rmtree(f, ignore_errors=True)
            if args.dir is None:
                shutil.rmtree(root, ignore_errors=True)
        print(f"total wall time {time.perf_counter() - t_all:.0f} s; stores "
              f"{'kept in ' + str(root) if args.keep else 'removed'}", flush=True)  # fmt: skip


def report(r: dict[str, Any], args: argparse.Namespace, mem: int) -> None:
    L, S = r["large"], r["small"]
    sae = (f"small SAE (ReLU + L1, d_sae {args.d_sae}, Adam, plain torch)" if args.sae == "small"
           else "cytosae SAETrainer, expansion 1 (768 latents)")  # fmt: skip
    print("\n=== bench_scale report ===")
    print(f"stores: large {L['gib']:.2f} GiB ({L['images']} images, written in {L['write_s']:.0f} s), "
          f"small {S['gib']:.2f} GiB ({S['images']} images); RAM {mem / GIB:.1f} GiB")  # fmt: skip
    tr = L["train"]
    res_l = max(
        x["resident_before"] for m in ("train", "read", "seqread", "encode") for x in L[f"{m}_runs"]
    )
    res_s = max(
        x["resident_before"] for m in ("train", "read", "seqread", "encode") for x in S[f"{m}_runs"]
    )
    print(f"page cache: echo 3 > /proc/sys/vm/drop_caches {r['global_drop_caches']}; before every "
          f"run the store's pages were evicted with posix_fadvise(DONTNEED): at most {res_l:.1%} "
          f"(large) / {res_s:.1%} (small) of them still resident (mincore)")  # fmt: skip
    print(
        f"each number: the fastest of {args.repeats} runs, stores interleaved, each run a fresh process"
    )
    print(
        f"training: {args.steps} steps x 64 images x 257 tokens, paper stream (full shuffle, "
        f"seed 42, after the b_dec batch), {sae}, torch threads {tr['torch_threads']}"
    )
    rows = [("train tokens/s", "tokens_per_s", "train", "{:,.0f}"),
            ("train wait-for-data share", "wait_fraction", "train", "{:.1%}"),
            ("train peak RSS MB", "peak_rss_mb", "train", "{:,.0f}"),
            ("classes per batch (mean)", "classes_per_batch_mean", "train", "{:.2f}"),
            ("reader alone MB/s (random)", "read_MB_per_s", "read", "{:,.0f}"),
            ("reader alone peak RSS MB", "peak_rss_mb", "read", "{:,.0f}"),
            ("sequential read MB/s", "read_MB_per_s", "seqread", "{:,.0f}"),
            ("encode pass images/s", "images_per_s", "encode", "{:,.1f}"),
            ("encode pass peak RSS MB", "peak_rss_mb", "encode", "{:,.0f}")]  # fmt: skip
    print(f"{'':32s} {'large':>12s} {'small':>12s} {'large/small':>12s}")
    for name, key, mode, fmt in rows:
        a, b = L[mode][key], S[mode][key]
        print(f"{name:32s} {fmt.format(a):>12s} {fmt.format(b):>12s} {a / b:>12.2f}")
    mm = L["mmap"]
    print(f"encode-pass reads of {mm['images']} images through kept memory maps (the previous "
          f"reader): peak RSS {mm['peak_rss_mb']:,.0f} MB (+{mm['rss_growth_mb']:,.0f} MB; the data "
          f"read is {mm['images'] * RECORD / 1e6:,.0f} MB) vs pread {L['encode']['peak_rss_mb']:,.0f} MB "
          f"(+{L['encode']['rss_growth_mb']:,.0f} MB)")  # fmt: skip
    speed = L["train"]["tokens_per_s"] / S["train"]["tokens_per_s"]
    peak = max(L[m]["peak_rss_mb"] for m in ("train", "read", "seqread", "encode"))
    grow = max(
        L[m]["peak_rss_mb"] - S[m]["peak_rss_mb"] for m in ("train", "read", "seqread", "encode")
    )
    print(
        f"CHECK training tokens/s large/small = {speed:.2f} (target >= 0.8): {'PASS' if speed >= 0.8 else 'FAIL'}"
    )
    print(f"CHECK peak RSS {peak:,.0f} MB (target < 4096): {'PASS' if peak < 4096 else 'FAIL'}")
    print(f"CHECK peak RSS growth large - small = {grow:+,.0f} MB (target: flat, < 256): "
          f"{'PASS' if grow < 256 else 'FAIL'}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=float) + "\n")
        print(f"all runs: {args.json}")


if __name__ == "__main__":
    main()
