"""Extraction benchmark: our extractor vs a naive PIL + timm full-forward baseline.

Both see the same N synthetic 288-px TIFFs (MLL23 layout) and the same batch size; model
construction is excluded from both timings, and both get one warm-up batch.

* ours: ``cytosae.store.extract.extract_tokens`` (DataLoader decode workers, truncated forward up to
  ``blocks[-2]``, ``inference_mode``, threads pinned, bf16 only where the hardware is fast),
  writing a float16 token store; run in a fresh child process that also reports its peak RSS.
* baseline: PIL open + torchvision ``Resize((224, 224))``/``ToTensor``/``Normalize`` + timm
  ``forward_features`` (all blocks + final norm) in fp32, one batch at a time, no workers,
  tokens kept in a Python list (what the official code does per step, minus the SAE).

Peak RSS of our extractor is measured at two image counts, each in a fresh process, with a
shard size of ``n_small // 8`` so that both runs write many more shards than the writer keeps in
memory: it should not grow with the number of images.

Stage rates (``--stages``, on by default on CUDA): each stage of our extractor alone, in
images/s -- decoding (our DataLoader and its default workers, no model), the device (forward
from uint8 pixels already in memory, plus the float16 copy back to the host) and the store
write (shards of float16 tokens with fsync) -- and which one bounds the end-to-end rate. The
GPU target of the extraction issue is that decoding, not the GPU, is the bottleneck.

Optional: ``--bf16-check K`` compares bf16-autocast tokens with fp32 tokens on K images.

Usage::

    python benchmarks/bench_extract.py                 # dinobloom-b, random init, 64 images
    python benchmarks/bench_extract.py --arch dinobloom-s --n 128
    python benchmarks/bench_extract.py --bf16-check 4 --skip-speed
    python benchmarks/bench_extract.py --device cuda --n 2048 --batch-size 128 --shard-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(root: Path, n: int, size: int = 288, seed: int = 0) -> Path:
    """Write ``n`` blood-smear-looking RGB TIFFs (LZW) in the MLL23 layout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n):
        cls = ("neutrophil_segmented", "lymphocyte")[i % 2]
        d = root / cls / cls
        d.mkdir(parents=True, exist_ok=True)
        img = np.empty((size, size, 3), np.float32)
        img[:] = (235, 215, 220)  # pale pink background
        for _ in range(6):  # red cells
            cy, cx, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(20, 35)]
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            img[m] = (220, 150, 160)
        cy, cx = size / 2 + rng.normal(0, 8, 2)
        r = rng.uniform(40, 60)
        nuc = ((yy - cy) / r) ** 2 + ((xx - cx) / (0.8 * r)) ** 2 < 1
        img[nuc] = (120, 70, 160)  # purple nucleus
        img += rng.normal(0, 6, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            d / f"{i:05d}.tif", compression="tiff_lzw"
        )
    return root


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def configs(args: argparse.Namespace):
    """The backbone and extraction configs the command line asks for."""
    from cytosae.model.backbone import BackboneConfig
    from cytosae.store.extract import ExtractConfig

    bb = BackboneConfig(arch=args.arch, layer=args.layer, weights=args.weights)
    cfg = ExtractConfig(
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        num_workers=args.workers,
        device=args.device,
        precision=args.precision,
        num_threads=args.threads,
    )
    return bb, cfg


def child(args: argparse.Namespace) -> None:
    """Run our extractor on the first ``args.child_n`` images; print JSON {img_s, rss_mb}."""
    import torch

    from cytosae.data.adapters import load_manifest
    from cytosae.hardware import resolve_device
    from cytosae.model.backbone import load_backbone
    from cytosae.store.extract import extract_tokens

    man = load_manifest("mll23", args.data).iloc[: args.child_n].reset_index(drop=True)
    bb, cfg = configs(args)
    device = resolve_device(cfg.device)
    model = load_backbone(bb, device=device)
    with torch.inference_mode():  # warm-up batch (oneDNN / cuDNN primitive creation)
        model(torch.zeros(min(args.batch_size, 8), 3, 224, 224, device=device))
    rss0 = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        store = extract_tokens(man, bb, Path(runs), cfg, progress=False, model=model)
        dt = time.perf_counter() - t0
        n = store.n_images
        precision = store.metadata["precision"]
    print(
        json.dumps(
            {
                "n": n,
                "img_s": n / dt,
                "rss_mb": _peak_rss_mb(),
                "rss_after_model_mb": rss0,
                "precision": precision,
            }
        )
    )


def stage_rates(args: argparse.Namespace, man, model, device) -> dict[str, float]:
    """Images/s of decoding, device compute and store writing, each measured alone."""
    import torch

    from cytosae.hardware import resolve_precision
    from cytosae.store.device import forward_to_host
    from cytosae.store.layout import write_shard
    from cytosae.store.loader import default_workers, image_loader

    paths = man["path"].astype(str).tolist()
    n, B = len(paths), args.batch_size
    batches = [list(range(s, min(s + B, n))) for s in range(0, n, B)]
    workers = default_workers(device) if args.workers < 0 else args.workers
    rates: dict[str, float] = {"decode_workers": float(workers)}

    t0 = time.perf_counter()
    seen = sum(len(b["rows"]) for b in image_loader(paths, batches, workers=workers, device=device))
    rates["decode"] = seen / (time.perf_counter() - t0)

    precision = resolve_precision(args.precision, device)
    x = torch.randint(0, 256, (B, 3, 224, 224), dtype=torch.uint8)
    if device.type == "cuda":
        x = x.pin_memory()
    n_batches = max(2, -(-min(n, 8 * B) // B)) if device.type == "cpu" else max(4, -(-n // B))

    def one_batch():
        return forward_to_host(model, x, device, precision)

    with torch.inference_mode():
        one_batch().result()  # warm-up
        t0 = time.perf_counter()
        pending = None
        for _ in range(n_batches):  # the extractor's overlap: wait for batch i-1 while i runs
            cur = one_batch()
            if pending is not None:
                pending.result()
            pending = cur
        pending.result()
        rates["device"] = n_batches * B / (time.perf_counter() - t0)
        rates["device_precision"] = precision

    arr = np.zeros((args.shard_size, model.n_tokens, model.d_model), np.float16)
    with tempfile.TemporaryDirectory() as tmp:
        k_max = max(2, -(-n // args.shard_size))
        t0 = time.perf_counter()
        for k in range(k_max):
            write_shard(Path(tmp), k, arr, {"shard": k})
        rates["write"] = k_max * args.shard_size / (time.perf_counter() - t0)
    return rates


def print_stages(rates: dict[str, float], end_to_end: float) -> None:
    stages = {k: rates[k] for k in ("decode", "device", "write")}
    bound = min(stages, key=stages.get)
    print(
        f"stages   : decode {stages['decode']:.1f} img/s ({rates['decode_workers']:.0f} workers), "
        f"device {stages['device']:.1f} img/s ({rates['device_precision']}, forward + fp16 copy to host), "
        f"store write {stages['write']:.1f} img/s"
    )
    print(
        f"bottleneck: {bound} ({stages[bound]:.1f} img/s); end-to-end {end_to_end:.1f} img/s = "
        f"{end_to_end / stages[bound]:.2f} of the slowest stage"
    )
    if bound != "device":
        print("           the device is not the bottleneck (decoding or writing sets the pace)")


def make_baseline(arch: str, device: str):
    """The naive pipeline: PIL + torchvision transforms + timm full ``forward_features`` (fp32)."""
    import timm
    import torch
    from torchvision import transforms

    from cytosae.model.backbone import ARCHS

    torch.manual_seed(0)
    model = timm.create_model(ARCHS[arch].timm_name, img_size=224, num_classes=0).eval().to(device)
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )

    def run(paths: list[str], batch_size: int) -> float:
        out = []
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, len(paths), batch_size):
                x = torch.stack(
                    [tf(Image.open(p).convert("RGB")) for p in paths[s : s + batch_size]]
                )
                out.append(model.forward_features(x.to(device)).cpu())
        return len(paths) / (time.perf_counter() - t0)

    with torch.no_grad():  # warm-up
        model.forward_features(torch.zeros(8, 3, 224, 224, device=device))
    return run


def bf16_check(
    arch: str,
    k: int,
    data: Path,
    layerscale: float | None = None,
    layer: int = -2,
    weights: str = "random",
) -> dict[str, float]:
    """Relative error of bf16-autocast tokens vs fp32 tokens (same random-init model, K images).

    A random init has LayerScale gammas of 1e-5, so its blocks are near the identity; with
    ``layerscale`` every gamma is set to that value, so that each block adds its full output
    to the residual stream (a harsher case than trained weights, whose gammas are learned).
    """
    import torch

    from cytosae.data.adapters import load_manifest
    from cytosae.data.imageio import read_rgb
    from cytosae.model.backbone import BackboneConfig, load_backbone, preprocess

    paths = load_manifest("mll23", data)["path"].tolist()[:k]
    x = torch.stack([preprocess(read_rgb(p)) for p in paths])
    model = load_backbone(BackboneConfig(arch=arch, layer=layer, weights=weights))
    if layerscale is not None:
        with torch.no_grad():
            for blk in model.vit.blocks:
                blk.ls1.gamma.fill_(layerscale)
                blk.ls2.gamma.fill_(layerscale)
    with torch.inference_mode():
        t0 = time.perf_counter()
        ref = model(x)
        t_fp32 = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x).float()
        t_bf16 = time.perf_counter() - t0
    rel = (low - ref).abs() / ref.abs().clamp_min(1e-6)
    tok_rel = (low - ref).norm(dim=-1) / ref.norm(dim=-1)
    return {
        "max_abs_err": float((low - ref).abs().max()),
        "max_elem_rel_err_|x|>0.1": float(rel[ref.abs() > 0.1].max()),
        "mean_elem_rel_err": float((low - ref).abs().mean() / ref.abs().mean()),
        "max_token_rel_l2_err": float(tok_rel.max()),
        "mean_token_rel_l2_err": float(tok_rel.mean()),
        "fp32_img_s": k / t_fp32,
        "bf16_img_s": k / t_bf16,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="dinobloom-b")
    p.add_argument(
        "--layer", type=int, default=-2, help="hooked block (paper -2; default profile 1)"
    )
    p.add_argument(
        "--weights", default="random", help="random | PATH | env | hf-hub:ID (as cytosae extract)"
    )
    p.add_argument("--n", type=int, default=64, help="images for the speed comparison")
    p.add_argument("--n-small", type=int, default=32, help="smaller image count for the RSS check")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=-1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--bf16-check", type=int, default=0, metavar="K")
    p.add_argument(
        "--bf16-layerscale",
        type=float,
        default=None,
        metavar="G",
        help="bf16 check with every LayerScale gamma set to G (random init: 1e-5)",
    )
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument(
        "--stages",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-stage rates (default: on for CUDA, off for CPU)",
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating timing repeats")
    p.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_n:
        child(args)
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        data = make_images(Path(tmp) / "mll23", max(args.n, args.n_small, args.bf16_check))
        print(
            f"arch {args.arch} (weights: {args.weights}), tokens of blocks[{args.layer}], {args.n} TIFFs 288 px, batch {args.batch_size}, "
            f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
            f"cpu capability {torch.backends.cpu.get_cpu_capability()}"
        )
        if args.bf16_check:
            gamma = (
                f"LayerScale gammas = {args.bf16_layerscale}"
                if args.bf16_layerscale is not None
                else "random-init gammas (1e-5)"
                if args.weights == "random"
                else "gammas as loaded"
            )
            print(
                f"bf16 check, blocks[{args.layer}] ({gamma}):",
                json.dumps(
                    bf16_check(
                        args.arch,
                        args.bf16_check,
                        data,
                        args.bf16_layerscale,
                        args.layer,
                        args.weights,
                    ),
                    indent=1,
                ),
            )
        if args.skip_speed:
            return
        # peak RSS of our extractor at two image counts, each in a fresh process
        rss = {}
        # shards small enough that both runs hold many more shards than the writer's queue
        # (2) plus the one being filled: peak memory is then at its bound in both
        rss_shard = min(args.shard_size, max(1, args.n_small // 8))
        for n in (args.n_small, args.n):
            cmd = [sys.executable, __file__, "--data", str(data), "--child-n", str(n)] + [
                f"--{k}={v}"
                for k, v in (
                    ("arch", args.arch),
                    ("layer", args.layer),
                    ("weights", args.weights),
                    ("batch-size", args.batch_size),
                    ("shard-size", rss_shard),
                    ("workers", args.workers),
                    ("threads", args.threads),
                    ("device", args.device),
                    ("precision", args.precision),
                )
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rss[n] = json.loads(out.strip().splitlines()[-1])
        # speed: ours and the baseline alternate in this process, best and median of the repeats
        from cytosae.data.adapters import load_manifest
        from cytosae.hardware import resolve_device
        from cytosae.model.backbone import load_backbone
        from cytosae.store.extract import extract_tokens

        man = load_manifest("mll23", data).iloc[: args.n].reset_index(drop=True)
        bb, cfg = configs(args)
        device = resolve_device(cfg.device)
        model = load_backbone(bb, device=device)
        with torch.inference_mode():
            model(torch.zeros(8, 3, 224, 224, device=device))
        base_run = make_baseline(args.arch, str(device))
        ours, base = [], []
        for rep in range(args.repeats):
            with tempfile.TemporaryDirectory() as runs:
                t0 = time.perf_counter()
                store = extract_tokens(man, bb, Path(runs), cfg, progress=False, model=model)
                ours.append(store.n_images / (time.perf_counter() - t0))
                precision = store.metadata["precision"]
            base.append(base_run(man["path"].tolist(), args.batch_size))
            print(
                f"  repeat {rep}: ours {ours[-1]:.2f} img/s, baseline {base[-1]:.2f} img/s",
                flush=True,
            )
        print(
            f"ours     : best {max(ours):7.2f}  median {np.median(ours):7.2f} img/s ({precision}, n={args.n})"
        )
        print(
            f"baseline : best {max(base):7.2f}  median {np.median(base):7.2f} img/s (fp32 full forward, no workers)"
        )
        print(
            f"ratio    : best/best {max(ours) / max(base):.2f}x, median/median {np.median(ours) / np.median(base):.2f}x"
        )
        if args.stages or (args.stages is None and device.type == "cuda"):
            print_stages(stage_rates(args, man, model, device), float(np.median(ours)))
        for n in (args.n_small, args.n):
            print(
                f"peak RSS ours @ {n:4d} images ({n // rss_shard} shards of {rss_shard}): {rss[n]['rss_mb']:.0f} MB "
                f"(after model load + warm-up: {rss[n]['rss_after_model_mb']:.0f} MB)"
            )
        print(f"load average during the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
