"""SAE definitions: init, forward, each loss term and the gradients, re-derived independently."""

from __future__ import annotations

import math

import pytest
import torch

from cytosae.model.geomedian import geometric_median, init_b_dec
from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.model.sparse_ops import sparse_relu_losses


def _sae(**kw) -> SparseAutoencoder:
    cfg = SAEConfig(**{"d_in": 8, "expansion_factor": 4, "seed": 3, **kw})
    sae = SparseAutoencoder(cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        sae.b_enc.copy_(0.3 * torch.randn(cfg.d_sae, generator=g) - 0.2)
        sae.b_dec.copy_(0.5 * torch.randn(cfg.d_in, generator=g))
    return sae


def _x(n: int = 40, d: int = 8, seed: int = 5) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def test_init_matches_official_definition() -> None:
    torch.set_num_threads(1)
    cfg = SAEConfig(d_in=16, expansion_factor=8, seed=7)
    sae = SparseAutoencoder(cfg)
    assert sae.W_enc.shape == (16, 128) and sae.W_dec.shape == (128, 16)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(128), atol=1e-6)
    assert torch.count_nonzero(sae.b_enc) == 0 and torch.count_nonzero(sae.b_dec) == 0
    # Kaiming-uniform (a=0, fan_in = size(1) of a 2-D tensor): bound sqrt(6 / fan_in)
    bound = math.sqrt(6.0 / 128)
    assert sae.W_enc.abs().max() <= bound and sae.W_enc.abs().max() > 0.9 * bound
    again = SparseAutoencoder(cfg)
    assert torch.equal(again.W_enc, sae.W_enc) and torch.equal(again.W_dec, sae.W_dec)
    assert not torch.equal(SparseAutoencoder(cfg.replace(seed=8)).W_enc, sae.W_enc)
    assert cfg.d_sae == 128
    with pytest.raises(ValueError, match="activation"):
        SAEConfig(activation="gelu")
    with pytest.raises(ValueError, match="k must be"):
        SAEConfig(activation="topk", k=0)


def test_forward_and_any_leading_shape() -> None:
    sae = _sae()
    x = _x()
    f = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    x_hat = f @ sae.W_dec + sae.b_dec
    got_hat, got_f = sae(x)
    assert torch.allclose(got_f, f) and torch.allclose(got_hat, x_hat)
    f3 = sae.encode(x.reshape(4, 10, 8))
    assert f3.shape == (4, 10, 32) and torch.allclose(f3.reshape(40, 32), f)


def _reference_loss(W_enc, b_enc, W_dec, b_dec, x, dead, l1_coef):
    """Independent plain-torch re-derivation of the authors' loss (with ghost grads)."""
    pre = (x - b_dec) @ W_enc + b_enc
    f = torch.clamp(pre, min=0)
    x_hat = f @ W_dec + b_dec
    xnorm = torch.sqrt((x * x).sum(-1, keepdim=True))
    mse_el = (x_hat - x) ** 2 / xnorm
    mse = mse_el.sum() / mse_el.numel()
    l1 = l1_coef * f.abs().sum(1).sum() / x.shape[0]
    res = x - x_hat
    rnorm = torch.sqrt((res * res).sum(-1))
    g = torch.exp(pre[:, dead]) @ W_dec[dead]
    gnorm = torch.sqrt((g * g).sum(-1))
    g = g * (rnorm / (2 * gnorm + 1e-6)).detach()[:, None]
    r = res.detach()
    gh_el = (g - r) ** 2 / torch.sqrt((r * r).sum(-1, keepdim=True))
    gh = ((mse_el / (gh_el + 1e-6)).detach() * gh_el).sum() / gh_el.numel()
    return mse, l1, gh


@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_each_loss_term_and_gradients_after_parallel_removal(path: str) -> None:
    torch.set_num_threads(1)
    sae = _sae(l1_coefficient=0.01)
    x = _x()
    dead = torch.zeros(32, dtype=torch.bool)
    dead[[1, 4, 9, 20, 31]] = True
    sae.set_decoder_norm_to_unit_norm()
    out = sae.losses(x, dead) if path == "dense" else sparse_relu_losses(sae, x, dead)
    out.loss.backward()
    sae.remove_gradient_parallel_to_decoder_directions()

    leaves = [
        p.detach().clone().double().requires_grad_(True)
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
    ]
    mse, l1, gh = _reference_loss(*leaves, x.double(), dead, 0.01)
    assert out.mse.item() == pytest.approx(mse.item(), rel=1e-5)
    assert out.l1.item() == pytest.approx(l1.item(), rel=1e-5)
    assert out.ghost.item() == pytest.approx(gh.item(), rel=1e-5)
    assert gh.item() > 0 and out.loss.item() == pytest.approx((mse + l1 + gh).item(), rel=1e-5)
    (mse + l1 + gh).backward()
    W_dec = leaves[2].detach()
    gW = leaves[2].grad
    gW = gW - (gW * W_dec).sum(1, keepdim=True) * W_dec  # parallel component removed by hand
    expect = {
        "W_enc": leaves[0].grad,
        "b_enc": leaves[1].grad,
        "W_dec": gW,
        "b_dec": leaves[3].grad,
    }
    for name, g in expect.items():
        got = getattr(sae, name).grad.double()
        assert torch.allclose(got, g, rtol=1e-4, atol=1e-7), name
    # after removal every decoder-row gradient is orthogonal to its row
    assert (sae.W_dec.grad * sae.W_dec).sum(1).abs().max() < 1e-6


def test_no_ghost_term_without_dead_latents_or_when_disabled() -> None:
    sae = _sae()
    x = _x()
    assert sae.losses(x, torch.zeros(32, dtype=torch.bool)).ghost.item() == 0.0
    dead = torch.ones(32, dtype=torch.bool)
    off = SparseAutoencoder(sae.cfg.replace(use_ghost_grads=False))
    assert off.losses(x, dead).ghost.item() == 0.0
    assert sae.losses(x, dead).ghost.item() > 0


def test_sparse_path_equals_dense_with_no_active_latent() -> None:
    sae = _sae()
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)
    x = _x()
    dead = torch.ones(32, dtype=torch.bool)
    grads = []
    for fn in (sae.losses, lambda a, b: sparse_relu_losses(sae, a, b)):
        sae.zero_grad()
        out = fn(x, dead)
        out.loss.backward()
        assert out.l0_sum.item() == 0
        grads.append([p.grad.clone() for p in sae.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_decoder_norm_weighted_l1() -> None:
    sae = _sae(l1_weighting="decoder_norm", l1_coefficient=0.1)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 32)[:, None])
    x = _x()
    f = sae.encode(x)
    expect = 0.1 * (f * sae.W_dec.norm(dim=1)).sum(1).mean()
    assert sae.losses(x).l1.item() == pytest.approx(expect.item(), rel=1e-6)


def test_topk_and_batchtopk_counts_and_auxk() -> None:
    torch.set_num_threads(1)
    x = _x()
    topk = _sae(activation="topk", k=3)
    f = topk.encode(x)
    assert ((f > 0).sum(1) <= 3).all() and (f > 0).sum(1).float().mean() > 2
    pre = topk.hidden_pre(x)
    assert torch.allclose(f.max(1).values, pre.max(1).values.clamp(min=0))
    bt = _sae(activation="batchtopk", k=3)
    fb = bt.encode(x)
    assert (fb > 0).sum() <= 3 * 40 and (fb > 0).sum() > 100
    kth = torch.relu(bt.hidden_pre(x)).flatten().topk(120).values.min()
    assert fb[fb > 0].min() >= kth - 1e-6 and bt.threshold.item() > 0
    # AuxK: the top-2 dead latents reconstruct the residual, normalised by its total variance
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:10] = True
    out = topk.losses(x, dead)
    k_aux = 2
    topk2 = SparseAutoencoder(topk.cfg.replace(aux_k=k_aux))
    topk2.load_state_dict(topk.state_dict())
    out = topk2.losses(x, dead)
    e = (x - out.x_hat_ND).detach()
    pd_ = topk2.hidden_pre(x)[:, :10]
    v, i = pd_.topk(k_aux, dim=1)
    acts = torch.zeros_like(pd_).scatter(1, i, v.clamp(min=0))
    e_hat = acts @ topk2.W_dec[:10]
    expect = ((e_hat - e) ** 2).sum() / ((e - e.mean(0)) ** 2).sum() / 32
    assert out.aux.item() == pytest.approx(expect.item(), rel=1e-5)
    assert out.l1.item() == 0.0 and out.ghost.item() == 0.0


def test_geometric_median_collinear_and_symmetric() -> None:
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    assert torch.allclose(geometric_median(pts), torch.tensor([1.0, 0.0]), atol=1e-4)
    sq = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]) + 3
    assert torch.allclose(geometric_median(sq), torch.tensor([3.0, 3.0]), atol=1e-6)


def test_b_dec_inits_match_independent_computations() -> None:
    g = torch.Generator().manual_seed(0)
    toks = torch.randn(6, 3, 4, generator=g) + torch.arange(4.0)
    toks[0] += 50.0  # an outlier image: the median ignores it, the mean does not
    assert torch.allclose(init_b_dec(toks, "mean"), toks.reshape(-1, 4).mean(0), atol=1e-6)
    assert torch.equal(init_b_dec(toks, "zeros"), torch.zeros(4))
    # independent Weiszfeld over whole images (each 3x4 grid one point), then mean over positions
    p = toks.reshape(6, -1).double()
    m = p.mean(0)
    for _ in range(1000):
        w = 1 / (p - m).norm(dim=1).clamp(min=1e-6)
        m = (w[:, None] * p).sum(0) / w.sum()
    expect_img = m.reshape(3, 4).mean(0).float()
    assert torch.allclose(init_b_dec(toks, "geometric_median_image"), expect_img, atol=1e-4)
    # per-token median: first-order optimality, sum of unit vectors ~ 0
    med = init_b_dec(toks, "geometric_median_token").double()
    pts = toks.reshape(-1, 4).double()
    u = (pts - med) / (pts - med).norm(dim=1, keepdim=True)
    assert u.sum(0).norm() < 1e-2
    assert (init_b_dec(toks, "geometric_median_image") - init_b_dec(toks, "mean")).norm() > 5
