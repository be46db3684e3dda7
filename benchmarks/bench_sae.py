"""SAE training speed: our trainer vs a plain dense PyTorch step vs the dense-GEMM roofline.

The paper's formulation (d = 768, ReLU + L1, ghost grads on, unit-norm decoder, Adam) at expansion
16 and 64, in two regimes:

* dense: ``b_enc = 0``, about half the live latents fire on a token;
* sparse: ``b_enc`` set per latent so that L0 is a given fraction of the latents (default 0.5%).

In both regimes a fraction of the latents (default 0.5, the paper reports 0.57) is dead (never
fires; their ghost-grad term is computed by both implementations).  All numbers are ratios measured
within one run; absolute tokens/s depend on the machine and its load.

Usage::

    python benchmarks/bench_sae.py --quick          # a few minutes on 2 idle cores
    python benchmarks/bench_sae.py --images 8 --steps 5
    python benchmarks/bench_sae.py --device cuda --images 64 --steps 10 --expansions 64 --bf16-expansion 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from cytosae.model.sae import SAEConfig
from cytosae.train import TrainConfig
from cytosae.train.trainer import SAETrainer

DEVICE = torch.device("cpu")  # set by --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


# --------------------------------------------------------------------------------------- baseline
class PlainSAE:
    """The same math, written straightforwardly with autograd (the baseline)."""

    def __init__(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1: float, window: int,
                 since_fired: Tensor) -> None:  # fmt: skip
        self.W_enc = W_enc.clone().requires_grad_(True)
        self.b_enc = b_enc.clone().requires_grad_(True)
        self.W_dec = W_dec.clone().requires_grad_(True)
        self.b_dec = b_dec.clone().requires_grad_(True)
        self.params = [self.W_enc, self.b_enc, self.W_dec, self.b_dec]
        self.opt = torch.optim.Adam(self.params, lr=4e-4)
        self.l1, self.window = l1, window
        self.since_fired = since_fired.clone()

    def step(self, x: Tensor, step: int) -> float:
        with torch.no_grad():
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)
        for g in self.opt.param_groups:
            g["lr"] = 4e-4 * min(1.0, (step + 1) / 500)
        self.opt.zero_grad()
        dead = self.since_fired > self.window
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        f = torch.relu(pre)
        x_hat = f @ self.W_dec + self.b_dec
        mse_el = (x_hat - x).pow(2) / x.norm(dim=-1, keepdim=True)
        loss = mse_el.mean() + self.l1 * f.abs().sum(-1).mean()
        if dead.any():
            res = x - x_hat
            g_ = torch.exp(pre[:, dead]) @ self.W_dec[dead]
            g_ = g_ * (res.norm(dim=-1) / (2 * g_.norm(dim=-1) + 1e-6))[:, None].detach()
            r = res.detach()
            gh = (g_ - r).pow(2) / r.norm(dim=-1, keepdim=True)
            loss = loss + ((mse_el / (gh + 1e-6)).detach() * gh).mean()
        loss.backward()
        with torch.no_grad():
            par = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad -= par * self.W_dec
        self.opt.step()
        fired = (f > 0).sum(0) > 0
        self.since_fired += 1
        self.since_fired[fired] = 0
        return float(loss.detach())


# --------------------------------------------------------------------------------------- helpers
def timeit_alternating(*fns: Callable[[int], object], steps: int, warm: int = 1) -> list[float]:
    """Median seconds per call of each ``fn(step)``, the functions timed in turn within every step
    (fair under varying load), after ``warm`` untimed rounds."""
    for s in range(warm):
        for fn in fns:
            fn(s)
    times: list[list[float]] = [[] for _ in fns]
    for s in range(warm, warm + steps):
        for fn, ts in zip(fns, times):
            _sync()
            t0 = time.perf_counter()
            fn(s)
            _sync()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def timeit(fn: Callable[[int], object], steps: int, warm: int = 1) -> float:
    """Median seconds per call of ``fn(step)`` after ``warm`` untimed calls."""
    return timeit_alternating(fn, steps=steps, warm=warm)[0]


def timeit_pair(
    fa: Callable[[int], object], fb: Callable[[int], object], steps: int, warm: int = 1
) -> tuple[float, float]:
    """Median seconds per call of two step functions timed alternately."""
    ta, tb = timeit_alternating(fa, fb, steps=steps, warm=warm)
    return ta, tb


def gemm_roofline(
    N: int, d: int, S: int, steps: int, dtype: torch.dtype = torch.float32
) -> tuple[float, float]:
    """Seconds of the 5 GEMMs of a dense step, and of the encoder GEMM alone."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, d, generator=g).to(DEVICE, dtype)
    We = torch.randn(d, S, generator=g).to(DEVICE, dtype) * 0.01
    Wd = torch.randn(S, d, generator=g).to(DEVICE, dtype) * 0.01
    f = torch.relu(x @ We)
    gx = torch.randn(N, d, generator=g).to(DEVICE, dtype)
    enc = timeit(lambda _: x @ We, steps)
    dec = timeit(lambda _: f @ Wd, steps)
    gf = timeit(lambda _: gx @ Wd.T, steps)
    gwd = timeit(lambda _: f.T @ gx, steps)
    gwe = timeit(lambda _: x.T @ f, steps)
    return enc + dec + gf + gwd + gwe, enc


def make_state(
    d: int, expansion: int, N: int, regime: str, density: float, dead_frac: float, seed: int = 0
):
    cfg = SAEConfig(d_in=d, expansion_factor=expansion, b_dec_init="zeros", seed=seed)
    S = cfg.d_sae
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.randn(N, d, generator=g) + 0.1).to(DEVICE)
    tr = SAETrainer(cfg, TrainConfig(device=str(DEVICE)), DEVICE)
    n_dead = int(dead_frac * S)
    with torch.no_grad():
        if regime == "sparse":
            pre = x @ tr.sae.W_enc
            tr.sae.b_enc.copy_(-torch.quantile(pre[: min(N, 2048)], 1 - density, dim=0))
        tr.sae.b_enc[:n_dead] = -30.0  # never fire
    tr.since_fired[:n_dead] = 10_000
    return cfg, tr, x


def bench_expansion(expansion: int, args: argparse.Namespace) -> list[dict]:
    d, N = args.d, args.images * 257
    rows = []
    roof, enc = gemm_roofline(N, d, d * expansion, args.steps)
    for regime in ("dense", "sparse"):
        cfg, tr, x = make_state(d, expansion, N, regime, args.density, args.dead_frac)
        base = PlainSAE(tr.sae.W_enc.data, tr.sae.b_enc.data, tr.sae.W_dec.data, tr.sae.b_dec.data,
                        cfg.l1_coefficient, cfg.dead_feature_window, tr.since_fired)  # fmt: skip
        t_base, t_ours = timeit_pair(
            lambda s, base=base, x=x: base.step(x, s),
            lambda s, tr=tr, x=x: tr.step(x, s),
            args.steps,
        )
        l0 = tr.acc["l0_sum"] / max(tr.acc["n_tokens"], 1)
        row = {
            "expansion": expansion, "regime": regime, "tokens_per_step": N,
            "l0_pct_of_latents": 100 * l0 / cfg.d_sae, "sparse_step": tr.use_sparse(),
            "ours_tok_s": N / t_ours, "baseline_tok_s": N / t_base, "ratio_vs_baseline": t_base / t_ours,
            "roofline5_tok_s": N / roof, "ours_vs_roofline5": roof / t_ours, "encoder_gemm_tok_s": N / enc,
        }  # fmt: skip
        rows.append(row)
        print(
            f"e={expansion:<3} {regime:<6} L0={row['l0_pct_of_latents']:6.2f}% sparse_step={row['sparse_step']!s:<5} "
            f"ours {row['ours_tok_s']:9.0f} tok/s  baseline {row['baseline_tok_s']:9.0f}  "
            f"ratio {row['ratio_vs_baseline']:5.2f}x  | 5-GEMM roofline {row['roofline5_tok_s']:9.0f} "
            f"(ours/roofline {row['ours_vs_roofline5']:4.2f})  encoder-GEMM only {row['encoder_gemm_tok_s']:9.0f}",
            flush=True,
        )
    return rows


def bench_bf16(expansion: int, args: argparse.Namespace) -> dict:
    d, N = args.d, args.bf16_images * 257
    cfg, tr32, x = make_state(d, expansion, N, "dense", args.density, args.dead_frac)
    _, tr16, _ = make_state(d, expansion, N, "dense", args.density, args.dead_frac)
    tr16.tcfg = tr16.tcfg.replace(autocast="bf16")
    dead = tr32.since_fired > cfg.dead_feature_window
    with torch.no_grad():
        l32 = tr32.sae.losses(x, dead)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            l16 = tr16.sae.losses(x, dead)
    t32, t16 = timeit_pair(lambda s: tr32.step(x, s), lambda s: tr16.step(x, s), args.bf16_steps)
    row = {
        "expansion": expansion, "fp32_tok_s": N / t32, "bf16_tok_s": N / t16, "bf16_speedup": t32 / t16,
        "loss_rel_diff_same_params": abs(l16.loss.item() - l32.loss.item()) / l32.loss.item(),
        "mse_rel_diff_same_params": abs(l16.mse.item() - l32.mse.item()) / l32.mse.item(),
    }  # fmt: skip
    print(
        f"bf16 e={expansion}: fp32 {row['fp32_tok_s']:.0f} tok/s, bf16 autocast {row['bf16_tok_s']:.0f} tok/s "
        f"(x{row['bf16_speedup']:.2f}); loss rel. diff same params {row['loss_rel_diff_same_params']:.2e}, "
        f"mse {row['mse_rel_diff_same_params']:.2e} ({N} tokens)",
        flush=True,
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="2 images (514 tokens) per step, 2 timed steps"
    )
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--expansions", type=int, nargs="+", default=[16, 64])
    p.add_argument("--images", type=int, default=8, help="images (x 257 tokens) per step")
    p.add_argument("--steps", type=int, default=4, help="timed steps (median)")
    p.add_argument(
        "--density", type=float, default=0.005, help="L0 / d_sae of the live latents, sparse regime"
    )
    p.add_argument(
        "--dead-frac", type=float, default=0.5, help="fraction of dead latents (ghost grads)"
    )
    p.add_argument(
        "--bf16-expansion", type=int, default=16, help="expansion for the bf16 line (0: skip)"
    )
    p.add_argument(
        "--bf16-images", type=int, default=0, help="images per step for the bf16 line (0: --images)"
    )
    p.add_argument(
        "--bf16-steps", type=int, default=0, help="timed steps for the bf16 line (0: --steps)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", default="", help="write the rows to this file")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    args = p.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.quick:
        args.images, args.steps = 2, 2
        args.bf16_images, args.bf16_steps = args.bf16_images or 1, args.bf16_steps or 1
    args.bf16_images = args.bf16_images or args.images
    args.bf16_steps = args.bf16_steps or args.steps
    if args.threads:
        torch.set_num_threads(args.threads)
    where = (
        torch.cuda.get_device_name(DEVICE)
        if DEVICE.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(f"torch {torch.__version__}, {where}, d={args.d}, "
          f"{args.images * 257} tokens/step, dead fraction {args.dead_frac}", flush=True)  # fmt: skip
    rows = []
    for e in args.expansions:
        rows += bench_expansion(e, args)
    bf = bench_bf16(args.bf16_expansion, args) if args.bf16_expansion else None
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "bf16": bf}, fh, indent=1)


if __name__ == "__main__":
    main()
