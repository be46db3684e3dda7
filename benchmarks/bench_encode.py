"""Benchmark of the streaming encode pass (cytosae.analysis.latents.encode_pass).

Reports, within one run (ratios, not absolute numbers):

* tokens/s of ``encode_pass`` vs the bare SAE encoder (``sae.encode`` = matmul + bias + ReLU) on
  the same token batches; target ratio >= 0.8;
* peak RSS increase of ``encode_pass`` at two dataset sizes (each in a fresh subprocess, tokens
  generated on the fly by a seeded streaming store so the dataset is never in memory); they should
  be equal within noise (memory bounded whatever the dataset size).

Usage::

    python benchmarks/bench_encode.py [--d-in 768] [--d-sae 4096] [--batch 16] [--images 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch


class StreamStore:
    """Tokens generated per batch from a seed: nothing grows with n_images except the manifest."""

    def __init__(self, n_images: int, d_in: int, n_tokens: int = 257, seed: int = 0) -> None:
        self.n_images, self.n_tokens, self.d_model, self.seed = n_images, n_tokens, d_in, seed
        self.manifest = pd.DataFrame(
            {"label": [f"c{i % 5}" for i in range(n_images)], "dataset": ["bench"] * n_images}
        )

    def iter_images(self, batch_images: int):
        for s in range(0, self.n_images, batch_images):
            idx = np.arange(s, min(s + batch_images, self.n_images))
            g = torch.Generator().manual_seed(self.seed + s)
            yield idx, torch.randn(len(idx), self.n_tokens, self.d_model, generator=g)


def make_sae(d_in: int, d_sae: int) -> torch.nn.Module:
    try:
        from cytosae.model.sae import SAEConfig, SparseAutoencoder

        cfg = SAEConfig(d_in=d_in, expansion_factor=d_sae // d_in)
        sae = SparseAutoencoder(cfg).eval()
        with torch.no_grad():
            sae.b_enc.fill_(-1.5)  # a sparse code, as after training
        return sae
    except Exception:  # noqa: BLE001 - fall back to a plain ReLU encoder

        class Enc(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.W_enc = torch.nn.Parameter(torch.randn(d_in, d_sae) / d_in**0.5)
                self.b_enc = torch.nn.Parameter(torch.full((d_sae,), -1.5))
                self.cfg = SimpleNamespace(d_sae=d_sae)

            def encode(self, x: torch.Tensor) -> torch.Tensor:
                return torch.relu(x @ self.W_enc + self.b_enc)

        return Enc().eval()


def throughput(args: argparse.Namespace) -> dict[str, float]:
    from cytosae.analysis.latents import encode_pass

    torch.manual_seed(0)
    sae = make_sae(args.d_in, args.d_sae)
    store = StreamStore(args.images, args.d_in)
    batches = [t for _, t in store.iter_images(args.batch)]  # same tokens for both timings
    n_tok = sum(t.shape[0] * t.shape[1] for t in batches)

    class Cached(StreamStore):
        def iter_images(self, b: int):
            for i, t in enumerate(batches):
                yield np.arange(i * args.batch, i * args.batch + t.shape[0]), t

    cached = Cached(args.images, args.d_in)
    with torch.inference_mode():
        sae.encode(batches[0])  # warm-up
    best_bare, best_pass = float("inf"), float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in batches:
                sae.encode(t)
        best_bare = min(best_bare, time.perf_counter() - t0)
        t0 = time.perf_counter()
        encode_pass(sae, cached, batch_images=args.batch, progress=False)
        best_pass = min(best_pass, time.perf_counter() - t0)
    return {
        "tokens": n_tok,
        "bare_tokens_per_s": n_tok / best_bare,
        "pass_tokens_per_s": n_tok / best_pass,
        "ratio": best_bare / best_pass,
    }


def child(args: argparse.Namespace) -> None:
    from cytosae.analysis.latents import encode_pass

    torch.set_num_threads(args.threads)
    sae = make_sae(args.d_in, args.d_sae)
    store = StreamStore(args.child_images, args.d_in)
    base = rss_mib()
    peak = [base]
    done = threading.Event()

    def poll() -> None:  # sample the resident set every 2 ms (ru_maxrss includes import peaks)
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.002)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    stats = encode_pass(sae, store, batch_images=args.batch, progress=False)
    done.set()
    th.join()
    print(
        json.dumps(
            {
                "images": args.child_images,
                "peak_increase_mib": peak[0] - base,
                "counts_nnz": int(stats.counts.nnz),
            }
        )
    )


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--d-in", type=int, default=768)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs=2, default=(64, 256))
    ap.add_argument("--child-images", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_images:
        child(args)
        return
    tp = throughput(args)
    print(
        f"encode pass: d_in={args.d_in} d_sae={args.d_sae} batch={args.batch} images, {tp['tokens']} tokens, "
        f"{args.threads} thread(s)"
    )
    print(f"  bare sae.encode : {tp['bare_tokens_per_s']:,.0f} tokens/s")
    print(f"  encode_pass     : {tp['pass_tokens_per_s']:,.0f} tokens/s")
    print(f"  ratio           : {tp['ratio']:.2f} (target >= 0.80)")
    peaks = []
    for n in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child-images",
            str(n),
            "--d-in",
            str(args.d_in),
            "--d-sae",
            str(args.d_sae),
            "--batch",
            str(args.batch),
            "--threads",
            str(args.threads),
        ]
        out = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        peaks.append(out["peak_increase_mib"])
        print(
            f"  peak RSS increase at {n:>6} images: {out['peak_increase_mib']:.1f} MiB (counts nnz {out['counts_nnz']})"
        )
    print(f"  peak ratio (large/small): {peaks[1] / max(peaks[0], 1e-9):.2f} (bounded memory: ~1)")


if __name__ == "__main__":
    main()
