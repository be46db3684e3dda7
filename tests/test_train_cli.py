"""``cytosae train`` over a token store (a tiny fake store with the TokenStore protocol)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

from cytosae.cli import main
from cytosae.train import TensorTokens
from cytosae.train.checkpoint import load_sae


class _FakeStore(TensorTokens):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(torch.load(self.path / "tokens.pt", weights_only=True))


def test_cli_trains_from_a_store_folder(tmp_path: Path, monkeypatch) -> None:
    torch.set_num_threads(1)
    store = tmp_path / "store"
    store.mkdir()
    torch.save(
        torch.randn(24, 3, 8, generator=torch.Generator().manual_seed(0)), store / "tokens.pt"
    )
    fake = types.ModuleType("cytosae.store.reader")
    fake.TokenStore = _FakeStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cytosae.store.reader", fake)
    argv = (
        ["train", "--store", str(store), "--out", str(tmp_path / "run"), "--expansion", "2", "--l1", "1e-3",
         "--total-images", "40", "--batch-images", "8", "--no-ghost-grads", "--b-dec-init", "mean",
         "--activation", "topk", "--k", "2", "--log-every", "1", "--quiet"]
    )  # fmt: skip
    assert main(argv) == 0
    sae = load_sae(tmp_path / "run")
    assert (
        sae.cfg.d_in == 8
        and sae.cfg.d_sae == 16
        and sae.cfg.activation == "topk"
        and sae.cfg.k == 2
    )
    assert not sae.cfg.use_ghost_grads and sae.cfg.b_dec_init == "mean"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 5
