"""The sections of ``benchmarks/gpu_check.sh`` (one GPU session), each writing ``<out>/<name>.json``.

    python benchmarks/gpu_check.py SECTION --out DIR [--device cuda] [sizes...]

Sections (run in this order by gpu_check.sh):

* ``env``     : GPU, driver, torch/timm versions, CPU count.
* ``matmul``  : (f) the GPU's bf16 (and fp32 / tf32) GEMM rate, a large square GEMM in a loop.
* ``store``   : (a) a random-token store of real size (MLL23: 41,621 images x 257 x 768 float16,
  16.4 GB) written directly (``benchmarks/bench_scale.py``'s writer, no backbone); the training
  reader's rate on it, cold (pages evicted) and warm.
* ``extract`` : (b) DinoBloom-B (random init: the weights do not change the speed) to
  ``blocks[-2]`` in fp32 and bf16: end-to-end images/s of ``extract_tokens`` and the decode /
  device / write stage rates (``benchmarks/bench_extract.py``'s ``stage_rates``).
* ``sae``     : (c) the paper SAE (x64 = 49,152 latents, 64 images = 16,448 tokens per step),
  fp32 and bf16 autocast: ``train_sae`` on the store (the real loop and data stream) for as many
  steps as ``--sae-seconds`` allows, tokens/s, the loss difference bf16 vs fp32 at identical
  parameters, and the step as a fraction of the bf16 GEMM rate; (e) peak GPU memory.
* ``encode``  : (d) ``encode_pass`` of the x64 SAE (b_enc set for L0 = 0.5 % of the latents) over a
  timed subset of the store, extrapolated to the five datasets' sizes; (e) peak GPU memory.
* ``project`` : (g) the projected wall time of the paper's full run (MLL23 extraction + 15,625
  steps + statistics on the five datasets) beside the official code's approach (the ViT rerun for
  every batch: ~1M ViT-B forwards), from the numbers above.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_scale, bench_extract

#: images of the paper's five datasets (MLL23 trains the SAE; statistics on all five)
DATASETS = {"mll23": 41_621, "acevedo": 17_092, "matek": 18_365, "bmc": 171_373, "hehr": 81_214}
PAPER_STEPS, PAPER_BATCH, T, D = 15_625, 64, 257, 768


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gb(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 1e9 if dev.type == "cuda" else None


def save(out: Path, name: str, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"[{name}] " + json.dumps(data, default=float), flush=True)


def load(out: Path, name: str) -> dict[str, Any] | None:
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


# --------------------------------------------------------------------------------------- sections
def sec_env(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    import timm

    info: dict[str, Any] = {
        "torch": torch.__version__, "timm": timm.__version__, "cpus": os.cpu_count(),
        "device": str(dev), "cuda": torch.version.cuda,
    }  # fmt: skip
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=p.name, gpu_memory_gb=p.total_memory / 1e9, bf16=torch.cuda.is_bf16_supported()
        )
    return info


def gemm_rate(
    n: int, dtype: torch.dtype, dev: torch.device, seconds: float, tf32: bool = False
) -> float:
    """TFLOP/s of ``n x n @ n x n`` repeated for about ``seconds``."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(n, n, generator=g).to(dev, dtype)
        y = torch.randn(n, n, generator=g).to(dev, dtype)
        for _ in range(3):
            x @ y
        sync(dev)
        reps, t0 = 0, time.perf_counter()
        while True:
            for _ in range(10):
                x @ y
            reps += 10
            sync(dev)
            if time.perf_counter() - t0 > seconds:
                break
        return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def sec_matmul(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    n = a.gemm_n
    res = {"n": n, "bf16_tflops": gemm_rate(n, torch.bfloat16, dev, a.gemm_seconds),
           "fp32_tflops": gemm_rate(n, torch.float32, dev, a.gemm_seconds)}  # fmt: skip
    if dev.type == "cuda":
        res["tf32_tflops"] = gemm_rate(n, torch.float32, dev, a.gemm_seconds, tf32=True)
    return res


def store_folder(a: argparse.Namespace) -> Path:
    return Path(a.store_dir) / f"store_{a.store_images}"


def sec_store(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    import bench_scale

    from cytosae.store.reader import TokenStore
    from cytosae.train.config import TrainConfig
    from cytosae.train.source import step_batches

    folder = store_folder(a)
    t0 = time.perf_counter()
    bench_scale.write_store(folder, a.store_images, seed=1)
    write_s = time.perf_counter() - t0
    store = TokenStore(folder)
    gb = store.n_images * bench_scale.RECORD / 1e9
    tcfg = TrainConfig(batch_images=PAPER_BATCH, total_images=PAPER_BATCH * a.read_steps)
    rates = {}
    for label in ("cold", "warm"):
        if label == "cold":
            rates["resident_before_cold"] = bench_scale.evict(folder)
        t0 = time.perf_counter()
        for _ in step_batches(store, tcfg, 0, a.read_steps):
            pass
        dt = time.perf_counter() - t0
        rates[f"read_{label}_MB_s"] = a.read_steps * PAPER_BATCH * bench_scale.RECORD / 1e6 / dt
        rates[f"read_{label}_steps_s"] = a.read_steps / dt
    return {"images": store.n_images, "gb": gb, "write_s": write_s, "write_GB_s": gb / write_s,
            "folder": str(folder), "read_steps": a.read_steps, **rates}  # fmt: skip


def sec_extract(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    import bench_extract

    from cytosae.data.adapters import load_manifest
    from cytosae.model.backbone import BackboneConfig, load_backbone
    from cytosae.store.extract import ExtractConfig, extract_tokens

    res: dict[str, Any] = {"n_images": a.extract_images, "batch_size": a.extract_batch}
    with tempfile.TemporaryDirectory(dir=a.store_dir) as tmp:
        t0 = time.perf_counter()
        data = bench_extract.make_images(Path(tmp) / "mll23", a.extract_images)
        res["make_images_s"] = time.perf_counter() - t0
        man = load_manifest("mll23", data)
        bb = BackboneConfig(arch="dinobloom-b", layer=-2, weights="random")
        model = load_backbone(bb, device=dev)
        with torch.inference_mode():
            model(torch.zeros(8, 3, 224, 224, device=dev))
        for prec in ("fp32", "bf16"):
            cfg = ExtractConfig(batch_size=a.extract_batch, shard_size=256, num_workers=-1,
                                device=str(dev), precision=prec)  # fmt: skip
            reset_peak(dev)
            with tempfile.TemporaryDirectory(dir=a.store_dir) as runs:
                extract_tokens(man, bb, Path(runs), cfg, progress=False, model=model)  # warm-up
            with tempfile.TemporaryDirectory(dir=a.store_dir) as runs:
                t0 = time.perf_counter()
                st = extract_tokens(man, bb, Path(runs), cfg, progress=False, model=model)
                e2e = st.n_images / (time.perf_counter() - t0)
            ns = argparse.Namespace(batch_size=a.extract_batch, workers=-1, precision=prec,
                                    shard_size=256)  # fmt: skip
            stages = bench_extract.stage_rates(ns, man, model, dev)
            res[prec] = {"end_to_end_img_s": e2e, "decode_img_s": stages["decode"],
                         "device_img_s": stages["device"], "write_img_s": stages["write"],
                         "decode_workers": stages["decode_workers"],
                         "device_precision": stages["device_precision"],
                         "bound": min(("decode", "device", "write"), key=lambda k: stages[k]),
                         "peak_gpu_gb": peak_gb(dev)}  # fmt: skip
    return res


def paper_sae_cfg(expansion: int):
    from cytosae.model.sae import SAEConfig

    return SAEConfig(d_in=D, expansion_factor=expansion)  # the paper's defaults otherwise


def sec_sae(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    from cytosae.store.reader import TokenStore
    from cytosae.train import TrainConfig, train_sae
    from cytosae.train.trainer import SAETrainer

    store = TokenStore(store_folder(a))
    cfg = paper_sae_cfg(a.expansion)
    B = a.sae_batch  # images per step (paper 64; smaller only for a CPU dry run)
    res: dict[str, Any] = {"expansion": a.expansion, "d_sae": cfg.d_sae, "batch_images": B,
                           "tokens_per_step": B * T}  # fmt: skip
    # loss difference bf16 vs fp32 at identical parameters, on one batch of the store
    x = store.get(np.arange(B)).reshape(-1, D).to(dev)
    tr = SAETrainer(cfg, TrainConfig(device=str(dev)), dev)
    with torch.no_grad():
        dead = torch.zeros(cfg.d_sae, dtype=torch.bool, device=dev)
        dead[: cfg.d_sae // 2] = True  # half dead: the ghost-grad term is exercised too
        l32 = tr.sae.losses(x, dead)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            l16 = tr.sae.losses(x, dead)
    res["loss_rel_diff_bf16"] = abs(float(l16.loss) - float(l32.loss)) / abs(float(l32.loss))
    res["mse_rel_diff_bf16"] = abs(float(l16.mse) - float(l32.mse)) / abs(float(l32.mse))
    del x, tr
    # the 5 GEMMs of a dense step (encoder, decoder, dL/df, dW_dec, dW_enc; b_dec's gradient needs
    # none), 2 N D S flops each; ghost grads add 4 GEMMs over the dead latents (not counted)
    flops = 10 * B * T * D * cfg.d_sae
    res["gemm_flop_per_step_5"] = flops
    mm = load(Path(a.out), "matmul")
    for prec in ("fp32", "bf16"):
        # runs of n0 and 2 n0 steps estimate the step; a third run fills --sae-seconds of
        # stepping; the step = (its time - the first's) / (its steps - n0), i.e. without the fixed
        # costs (SAE creation, b_dec init, first reads, final files)
        def timed_run(steps: int, prec: str = prec) -> float:
            tcfg = TrainConfig(batch_images=B, total_images=B * steps,
                               device=str(dev), autocast="bf16" if prec == "bf16" else "none",
                               log_every=max(1, steps), checkpoint_every=0)  # fmt: skip
            reset_peak(dev)
            with tempfile.TemporaryDirectory(dir=a.store_dir) as run:
                t = time.perf_counter()
                train_sae(store, cfg, tcfg, run, progress=False)
                sync(dev)
                return time.perf_counter() - t

        n0 = a.sae_probe_steps
        t0_ = timed_run(n0)
        t_2 = timed_run(2 * n0)
        # (noise can make the difference tiny or negative: at least 1/20 of the whole per-step)
        guess = max((t_2 - t0_) / n0, t_2 / (2 * n0) / 20)
        n1 = int(max(3 * n0, min(a.sae_max_steps, n0 + a.sae_seconds / guess)))
        t1_ = timed_run(n1)
        step_s = (t1_ - t0_) / (n1 - n0)
        how = "marginal: (t(n1) - t(n0)) / (n1 - n0)"
        if step_s <= 0:  # timing noise larger than the stepping (tiny dry runs)
            step_s, how = t1_ / n1, "t(n1) / n1, fixed costs included"
        row = {"steps": n1, "seconds": t1_, "probe_steps": n0, "probe_seconds": t0_,
               "s_per_step": step_s, "s_per_step_estimate": how, "fixed_s": t1_ - n1 * step_s,
               "tokens_per_s": B * T / step_s, "peak_gpu_gb": peak_gb(dev)}  # fmt: skip
        if mm:
            rate = mm["bf16_tflops"] if prec == "bf16" else mm.get("fp32_tflops")
            row["fraction_of_gemm_rate"] = flops / step_s / 1e12 / rate if rate else None
            row["fraction_of_bf16_gemm_rate"] = flops / step_s / 1e12 / mm["bf16_tflops"]
        res[prec] = row
    return res


def sec_encode(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    from bench_scale import _Head

    from cytosae.analysis.latents import encode_pass
    from cytosae.model.sae import SparseAutoencoder
    from cytosae.store.reader import TokenStore

    store = TokenStore(store_folder(a))
    sae = SparseAutoencoder(paper_sae_cfg(a.expansion)).to(dev).eval()
    with torch.no_grad():  # b_enc per latent at the (1 - 0.5 %) quantile: L0 = 0.5 % of the latents
        x = store.get(np.arange(8)).reshape(-1, D).to(dev)
        pre = (x - sae.b_dec) @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre[:2048].float(), 0.995, dim=0))
    res: dict[str, Any] = {"d_sae": sae.cfg.d_sae, "batch_images": a.encode_batch}
    head = _Head(store, a.encode_images)
    encode_pass(
        sae, _Head(store, min(64, a.encode_images)), batch_images=a.encode_batch, progress=False
    )
    reset_peak(dev)
    t0 = time.perf_counter()
    stats = encode_pass(sae, head, batch_images=a.encode_batch, progress=False)
    sync(dev)
    dt = time.perf_counter() - t0
    rate = stats.n_images / dt
    res.update(images=stats.n_images, seconds=dt, images_per_s=rate, peak_gpu_gb=peak_gb(dev),
               counts_nnz_per_image=stats.counts.nnz / stats.n_images,
               l0_img_frac=float(np.mean(stats.sparsity)))  # fmt: skip
    res["extrapolated_s"] = {k: n / rate for k, n in DATASETS.items()}
    res["extrapolated_note"] = f"timed on the first {stats.n_images} images, scaled linearly"
    return res


def sec_project(a: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    out = Path(a.out)
    ex, sae, enc = load(out, "extract"), load(out, "sae"), load(out, "encode")
    if not (ex and sae and enc):
        return {"error": "needs extract.json, sae.json and encode.json in the same folder"}
    p: dict[str, Any] = {}
    n_mll, n_all = DATASETS["mll23"], sum(DATASETS.values())
    for prec in ("fp32", "bf16"):
        e2e, fwd = ex[prec]["end_to_end_img_s"], ex[prec]["device_img_s"]
        step = sae[prec]["s_per_step"] * PAPER_BATCH / sae["batch_images"]
        enc_s = sum(enc["extrapolated_s"].values())
        ours = {
            "extract_mll23_s": n_mll / e2e,
            "train_15625_steps_s": PAPER_STEPS * step,
            "extract_other_four_s": (n_all - n_mll) / e2e,
            "encode_pass_five_s": enc_s,
        }
        ours["total_s"] = sum(ours.values())
        # official: the ViT runs for every training batch (and the b_dec batch), then once per
        # image of each dataset for the statistics; the SAE work is the same
        vit_train = (PAPER_STEPS + 1) * PAPER_BATCH
        official = {
            "vit_forwards_train": vit_train,
            "vit_train_s": vit_train / fwd,
            "sae_15625_steps_s": PAPER_STEPS * step,
            "vit_stats_s": n_all / fwd,
            "encode_pass_five_s": enc_s,
        }
        official["total_s"] = official["vit_train_s"] + official["sae_15625_steps_s"] + official["vit_stats_s"] + enc_s  # fmt: skip
        p[prec] = {"ours": ours, "official_approach": official,
                   "speedup": official["total_s"] / ours["total_s"]}  # fmt: skip
    h = 3600.0
    print("projected paper run (hours)                     fp32      bf16")
    for who, rows in (
        ("ours", (("extract_mll23_s", "extract MLL23 (41,621 images)"),
                  ("train_15625_steps_s", "15,625 SAE steps (store reads incl.)"),
                  ("extract_other_four_s", "extract the other four datasets"),
                  ("encode_pass_five_s", "encode pass, five datasets"), ("total_s", "total"))),
        ("official_approach", (("vit_train_s", "ViT on 1,000,064 training images"),
                               ("sae_15625_steps_s", "15,625 SAE steps"),
                               ("vit_stats_s", "ViT on the five datasets (statistics)"),
                               ("encode_pass_five_s", "SAE over the five datasets"),
                               ("total_s", "total"))),
    ):  # fmt: skip
        print(f"  {who}")
        for key, label in rows:
            v = [p[q][who][key] / h for q in ("fp32", "bf16")]
            print(f"    {label:42s} {v[0]:8.2f}  {v[1]:8.2f}")
    print(f"  speed-up of ours: fp32 {p['fp32']['speedup']:.2f}x, bf16 {p['bf16']['speedup']:.2f}x")
    p["notes"] = (
        "ViT rate = our truncated forward to blocks[-2] from uint8 pixels in memory (the official "
        "code also decodes every image each time and runs the whole ViT, so its real cost is "
        "higher); extraction = end-to-end extract_tokens (decode-bound or device-bound, whichever "
        "is slower); SAE step = train_sae on the store incl. data reading; encode pass extrapolated "
        "from a timed subset; the official per-step SAE work is taken equal to ours."
    )
    return p


SECTIONS = {"env": sec_env, "matmul": sec_matmul, "store": sec_store, "extract": sec_extract,
            "sae": sec_sae, "encode": sec_encode, "project": sec_project}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("section", choices=sorted(SECTIONS))
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--store-dir", default=tempfile.gettempdir())
    p.add_argument("--store-images", type=int, default=DATASETS["mll23"])
    p.add_argument("--read-steps", type=int, default=200)
    p.add_argument("--gemm-n", type=int, default=8192)
    p.add_argument("--gemm-seconds", type=float, default=3.0)
    p.add_argument("--extract-images", type=int, default=2048)
    p.add_argument("--extract-batch", type=int, default=128)
    p.add_argument("--expansion", type=int, default=64)
    p.add_argument("--sae-batch", type=int, default=PAPER_BATCH, help="images per step")
    p.add_argument("--sae-seconds", type=float, default=30.0, help="per precision, timed run")
    p.add_argument("--sae-probe-steps", type=int, default=10)
    p.add_argument("--sae-max-steps", type=int, default=2000)
    p.add_argument("--encode-images", type=int, default=4096)
    p.add_argument("--encode-batch", type=int, default=32)
    a = p.parse_args()
    dev = torch.device(a.device)
    t0 = time.perf_counter()
    res = SECTIONS[a.section](a, dev)
    res["section_wall_s"] = time.perf_counter() - t0
    save(Path(a.out), a.section, res)


if __name__ == "__main__":
    main()
