"""Two gloo CPU processes with a split global batch == one process with the same global batch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cytosae.model.sae import SAEConfig
from cytosae.train import TrainConfig, train_many
from cytosae.train.checkpoint import load_sae

CFGS = [
    SAEConfig(d_in=12, expansion_factor=4, dead_feature_window=2, l1_coefficient=0.3, seed=1),
    SAEConfig(d_in=12, expansion_factor=4, activation="topk", k=3, dead_feature_window=2, seed=2),
]
TCFG = TrainConfig(batch_images=8, total_images=8 * 10, lr=0.03, lr_warmup_steps=3, log_every=5,
                   checkpoint_every=4, b_dec_init_images=16, device="cpu")  # fmt: skip


def _data() -> torch.Tensor:
    return torch.randn(40, 3, 12, generator=torch.Generator().manual_seed(0)) + 0.5


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train_many(_data(), CFGS, TCFG, Path(out), progress=False)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_equals_single_process(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single = train_many(_data(), CFGS, TCFG, tmp_path / "single", progress=False)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2, join=True)
    for i, res in enumerate(single):
        other = load_sae(tmp_path / "ddp" / f"sae_{i:02d}")
        for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
            assert torch.allclose(getattr(res.sae, k), getattr(other, k), atol=2e-5, rtol=1e-4), (
                i,
                k,
            )
    import pandas as pd

    h = pd.read_json(tmp_path / "ddp" / "metrics.jsonl", lines=True)
    for i, col in [
        (i, c) for i in (0, 1) for c in ("mse", "l0", "dead_frac", "nmse", "ghost", "aux")
    ]:
        h0 = h[h["sae"] == i].reset_index(drop=True)
        assert torch.allclose(torch.tensor(h0[col].values, dtype=torch.float64),
                              torch.tensor(single[i].history[col].values, dtype=torch.float64),
                              rtol=1e-4, atol=1e-6), (i, col)  # fmt: skip
    assert (single[1].history["aux"] > 0).any()  # the dead masks (all-reduced) were exercised
