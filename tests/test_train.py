"""Trainer: kill-and-resume bit-identity (also across a pass end), the data stream, sweeps on one
pass, metrics, sparse switch, planted dictionary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cytosae.atomic import is_complete
from cytosae.model.sae import SAEConfig
from cytosae.store.order import epoch_order
from cytosae.train import TensorTokens, TrainConfig, density_histogram, train_many, train_sae
from cytosae.train.checkpoint import CheckpointError, load_sae
from cytosae.train.source import DataStream, b_dec_sample, data_position, step_batches


def _tokens(n: int = 48, t: int = 5, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, d, generator=g) * torch.linspace(0.5, 2.0, d) + 1.0


SAE = SAEConfig(d_in=16, expansion_factor=8, dead_feature_window=2, l1_coefficient=0.3)
TRAIN = TrainConfig(batch_images=8, total_images=8 * 15, lr=3e-2, lr_warmup_steps=4, log_every=2,
                    checkpoint_every=4, b_dec_init_images=16)  # fmt: skip


def _params(sae) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sae.state_dict().items()}


def test_kill_and_resume_is_bit_identical(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    x = _tokens()
    tcfg = TRAIN.replace(total_images=8 * 20)  # 20 steps: dead latents (ghost grads) after 14
    full = train_sae(x, SAE, tcfg, tmp_path / "full", progress=False)
    assert full.finished and is_complete(tmp_path / "full")
    assert (full.history["ghost"] > 0).any()  # ghost grads were exercised
    killed = train_sae(x, SAE, tcfg.replace(stop_after_steps=6), tmp_path / "run", progress=False)
    assert not killed.finished and not is_complete(tmp_path / "run")
    state = json.loads(
        (tmp_path / "run" / "trainer_state" / "step_000000006" / "state.json").read_text()
    )
    # the b_dec init read stream images 0..15, steps 0..5 images 16..63: 64 = pass 1, image 16
    assert state["step"] == 6
    assert state["data_position"] == {"stream_image": 64, "pass": 1, "image": 16}
    resumed = train_sae(x, SAE, tcfg, tmp_path / "run", progress=False)
    a, b = _params(full.sae), _params(resumed.sae)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history.drop(columns=[]).equals(full.history)
    assert not (tmp_path / "run" / "trainer_state").exists()
    # a finished folder only loads
    mtime = (tmp_path / "run" / "sae.safetensors").stat().st_mtime_ns
    again = train_sae(x, SAE, tcfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "sae.safetensors").stat().st_mtime_ns == mtime
    assert torch.equal(again.sae.W_enc, full.sae.W_enc) and len(again.history) == len(full.history)
    with pytest.raises(CheckpointError, match=r"run.json.*different run"):
        train_sae(x, SAE.replace(l1_coefficient=1.0), tcfg, tmp_path / "run", progress=False)


def test_stream_is_the_epoch_order_repeated_after_the_b_dec_batch() -> None:
    """The authors' stream: the b_dec init reads the head, training the rest; batches run across
    pass ends without dropping an image; shuffle=False is the plain order."""
    x = _tokens(n=44, seed=6)  # 44 images, batches of 8: pass ends fall inside batches
    src = TensorTokens(x)
    tcfg = TRAIN.replace(total_images=8 * 40)
    order = epoch_order(44, seed=tcfg.data_seed, epoch=0)
    assert torch.equal(b_dec_sample(src, tcfg), x[order[:16]])
    stream = np.concatenate([order] * 8)  # the same order every pass (reshuffle_each_epoch=False)
    got = dict(step_batches(src, tcfg, 0, 40))
    assert sorted(got) == list(range(40))
    for s, batch in got.items():
        assert torch.equal(batch, x[stream[16 + 8 * s : 24 + 8 * s]]), s
    # step 3 reads stream images 40..47: the last 4 of pass 0, then the first 4 of pass 1
    assert torch.equal(got[3], x[np.r_[order[40:44], order[0:4]]])
    # over 7.3 passes' worth of steps every image is read equally often (nothing dropped)
    seen = np.concatenate([stream[16 + 8 * s : 24 + 8 * s] for s in range(40)])
    counts = np.bincount(seen, minlength=44)
    assert counts.sum() == 320 and counts.max() - counts.min() <= 1
    # resuming at any step reads the same batches
    assert all(torch.equal(b, got[s]) for s, b in step_batches(src, tcfg, 3, 9))
    # a TokenStore-like source with the same tokens gives the same stream (order is shared)
    assert np.array_equal(src.epoch_order(seed=5, epoch=2), epoch_order(44, seed=5, epoch=2))
    # reshuffled passes and the plain order
    re = DataStream(44, tcfg.replace(reshuffle_each_epoch=True))
    assert np.array_equal(re.images(40, 48), np.r_[order[40:44], epoch_order(44, epoch=1)[:4]])
    plain = DataStream(44, tcfg.replace(shuffle=False))
    assert np.array_equal(plain.step_images(3), np.r_[40:44, 0:4])
    assert np.array_equal(plain.b_dec_images(), np.arange(16))
    # b_dec_init_images=0: training starts at the head (a data init is refused)
    zero = tcfg.replace(b_dec_init_images=0)
    assert np.array_equal(DataStream(44, zero).step_images(0), order[:8])
    with pytest.raises(ValueError, match="b_dec_init_images > 0"):
        b_dec_sample(src, zero)
    # fewer images than a batch: the batch wraps around the passes
    assert np.array_equal(
        DataStream(3, tcfg.replace(shuffle=False)).step_images(0), [1, 2, 0] * 2 + [1, 2]
    )
    assert data_position(src, tcfg, 3) == {"stream_image": 40, "pass": 0, "image": 40}


def test_kill_and_resume_across_a_pass_end(tmp_path: Path) -> None:
    """Killed at the step whose batch straddles the end of pass 0 (and of pass 1), resumed: equal
    to an uninterrupted run, on a tensor and on a token store."""
    torch.set_num_threads(1)
    x = _tokens(n=44, seed=7)
    tcfg = TRAIN.replace(total_images=8 * 12, checkpoint_every=0)  # 16 + 96 images: 2.5 passes
    full = train_sae(x, SAE, tcfg, tmp_path / "full", progress=False)
    # step 3 reads stream images 40..47 (pass 0 -> 1); step 9 starts pass 2 (image 88)
    for stop in (3, 4, 9):
        run = tmp_path / f"run{stop}"
        train_sae(x, SAE, tcfg.replace(stop_after_steps=stop), run, progress=False)
        state = json.loads((run / "trainer_state" / f"step_{stop:09d}" / "state.json").read_text())
        pos = 16 + 8 * stop
        assert state["data_position"] == {"stream_image": pos, "pass": pos // 44, "image": pos % 44}
        resumed = train_sae(x, SAE, tcfg, run, progress=False)
        a, b = _params(full.sae), _params(resumed.sae)
        assert all(torch.equal(a[k], b[k]) for k in a), stop
        assert resumed.history.equals(full.history)
    # the same tokens as a token store train to the same parameters
    from test_reader import make_store

    from cytosae.store.reader import TokenStore

    folder = make_store(tmp_path / "store", [10, 10, 10, 14], T=5, D=16)
    store = TokenStore(folder)
    as_tensor = store.get(np.arange(44))
    on_store = train_sae(store, SAE, tcfg, tmp_path / "on_store", progress=False)
    on_tensor = train_sae(as_tensor, SAE, tcfg, tmp_path / "on_tensor", progress=False)
    a, b = _params(on_store.sae), _params(on_tensor.sae)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sweep_on_one_pass_equals_separate_runs(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    x = _tokens(seed=1)
    cfgs = [SAE, SAE.replace(expansion_factor=2, use_ghost_grads=False, b_dec_init="mean"),
            SAE.replace(activation="topk", k=3, seed=5)]  # fmt: skip
    tcfg = TRAIN.replace(total_images=8 * 6)
    many = train_many(x, cfgs, tcfg, tmp_path / "sweep", progress=False)
    for i, c in enumerate(cfgs):
        one = train_sae(x, c, tcfg, tmp_path / f"one{i}", progress=False)
        assert all(
            torch.equal(u, v)
            for u, v in zip(_params(one.sae).values(), _params(many[i].sae).values())
        )
        assert many[i].history.equals(one.history)
        assert load_sae(tmp_path / "sweep" / f"sae_{i:02d}").cfg == c


def test_metrics_history_and_density_histogram(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    x = _tokens(seed=2)
    tcfg = TRAIN.replace(total_images=8 * 10, log_every=5, density_window_steps=4, lr=0.05)
    res = train_sae(
        x, SAE.replace(l1_coefficient=1.0, expansion_factor=4), tcfg, tmp_path / "m", progress=False
    )
    h = res.history
    assert list(h["step"]) == [5, 10] and list(h["tokens"]) == [200, 400]
    for col in (
        "mse",
        "nmse",
        "explained_variance",
        "l1",
        "l0",
        "dead_frac",
        "dense_frac",
        "ghost",
    ):
        assert np.isfinite(h[col]).all(), col
    assert np.allclose(h["explained_variance"], 1 - h["nmse"])
    assert h["l0"].iloc[-1] < 0.5 * h["l0"].iloc[0] and h["mse"].iloc[-1] < h["mse"].iloc[0]
    lines = (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["step"] == 10
    hist = json.loads((tmp_path / "m" / "density_histogram.json").read_text())
    assert sum(hist["counts"]) + hist["never_fired"] + hist["below_range"] == 64
    assert res.feature_density is not None and res.feature_density.shape == (64,)
    # hand-made frequencies -> known bins
    hd = density_histogram(torch.tensor([0.0, 1e-3, 1e-3, 0.5, 1e-9]))
    assert hd["never_fired"] == 1 and hd["below_range"] == 1
    edges = hd["bin_edges_log10"]
    assert hd["counts"][edges.index(-3.0)] == 2 and hd["counts"][-1] == 1  # log10(0.5) in [-0.5, 0)


def test_sparse_step_matches_dense_training(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    x = _tokens(seed=3)
    tcfg = TRAIN.replace(total_images=8 * 8)
    dense = train_sae(x, SAE, tcfg.replace(sparse_mode="dense"), tmp_path / "d", progress=False)
    auto = train_sae(x, SAE, tcfg.replace(sparse_mode="auto", sparse_density_threshold=1.01), tmp_path / "s",
                     progress=False)  # fmt: skip
    assert (
        auto.history["sparse_step_frac"].iloc[-1] == 1.0
        and dense.history["sparse_step_frac"].max() == 0.0
    )
    for k, v in _params(dense.sae).items():
        assert torch.allclose(v, _params(auto.sae)[k], atol=1e-5, rtol=1e-4), k


def test_two_dimensional_tensor_and_store_protocol(tmp_path: Path) -> None:
    x = _tokens(n=32, t=1, seed=4)[:, 0, :]
    src = TensorTokens(x)
    assert (src.n_images, src.n_tokens, src.d_model) == (32, 1, 16)
    b1 = list(src.iter_batches(8, seed=1))
    assert len(b1) == 4 and torch.equal(torch.cat(b1).sort(0).values, src.tokens.sort(0).values)
    assert torch.equal(next(src.iter_batches(8, seed=1, start_batch=2)), b1[2])
    res = train_sae(x, SAE.replace(b_dec_init="geometric_median_token"),
                    TRAIN.replace(total_images=8 * 3, log_every=1), tmp_path / "t", progress=False)  # fmt: skip
    assert len(res.history) == 3
    with pytest.raises(ValueError, match="d_in=8 does not match"):
        train_sae(x, SAE.replace(d_in=8), TRAIN, tmp_path / "bad", progress=False)


def test_planted_dictionary_is_recovered(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    d, atoms, k, n = 32, 64, 3, 8192
    D = torch.randn(atoms, d, generator=g)
    D /= D.norm(dim=1, keepdim=True)
    idx = torch.rand(n, atoms, generator=g).argsort(1)[:, :k]
    s = torch.zeros(n, atoms).scatter(1, idx, 1 + torch.rand(n, k, generator=g))
    x = s @ D + 0.01 * torch.randn(n, d, generator=g)
    sae_cfg = SAEConfig(d_in=d, expansion_factor=2, l1_coefficient=3e-3, b_dec_init="zeros",
                        dead_feature_window=50, seed=0)  # fmt: skip
    tcfg = TrainConfig(batch_images=256, total_images=256 * 800, lr=1e-2, lr_warmup_steps=20, log_every=100,
                       checkpoint_every=0)  # fmt: skip
    res = train_sae(x, sae_cfg, tcfg, tmp_path / "p", progress=False)
    W = res.sae.W_dec.detach()
    cos = (D @ (W / W.norm(dim=1, keepdim=True)).T).max(dim=1).values
    assert cos.mean() > 0.9
    assert res.history["mse"].iloc[-1] < 0.2 * res.history["mse"].iloc[0]


def test_dead_window_ghost_grads_and_dense_fraction() -> None:
    from cytosae.train.trainer import SAETrainer

    torch.set_num_threads(1)
    x = _tokens(seed=5).reshape(-1, 16)
    tcfg = TRAIN.replace(lr=1e-9)
    tr = SAETrainer(SAE.replace(expansion_factor=2), tcfg, torch.device("cpu"))
    with torch.no_grad():
        tr.sae.b_enc.fill_(-1e3)  # nothing fires ...
        tr.sae.b_enc[:3] = 1e3  # ... except three latents that fire on every token
    ghost = []
    for step in range(4):
        tr.step(x, step)
        ghost.append(tr.acc["ghost"])
    # dead = more than 2 steps without firing: the mask is first non-empty at the 4th step (index 3)
    assert ghost[2] == 0.0 and ghost[3] > 0.0
    row = tr.log_row(4, 0.0)
    assert row["dead_frac"] == pytest.approx(29 / 32) and row["dense_frac"] == pytest.approx(3 / 32)
    assert row["l0"] == pytest.approx(3.0)
    # explained variance accumulated in float64 matches a direct computation on a frozen SAE
    tr2 = SAETrainer(
        SAE.replace(expansion_factor=2),
        TRAIN.replace(lr=1e-30, lr_warmup_steps=0),
        torch.device("cpu"),
    )
    before = tr2.sae(x)[0].detach().double()
    tr2.step(x, 0)
    xd = x.double()
    expect = ((before - xd) ** 2).sum() / ((xd - xd.mean(0)) ** 2).sum()
    assert tr2.log_row(1, 0.0)["nmse"] == pytest.approx(expect.item(), rel=1e-6)
