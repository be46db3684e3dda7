"""Bring your own SAE and weights: either format anywhere an SAE is read, any width, init=.

A new user's calls, as docs/run-on-your-data.md writes them: ``train_sae(..., init=...)`` from an
SAE, a state dict or a file of either format; ``SAEConfig(n_latents=...)``; ``load_official`` of
any width; ``cytosae train --init``; ``cytosae latents --sae`` with a folder or the authors'
``.pt``; a profile with ``pretrained_sae`` (checked when the Pipeline is built).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cytosae.cli import main
from cytosae.interop.official_sae import export_official, load_official
from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.train import TrainConfig, train_sae
from cytosae.train.checkpoint import CheckpointError, load_sae, save_sae
from cytosae.train.pretrained import init_tensors, load_any_sae, sae_file

TINY = TrainConfig(
    batch_images=8, total_images=64, lr_warmup_steps=2, log_every=2, checkpoint_every=0
)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _tokens(n: int = 64, t: int = 5, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, t, d, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ any width
def test_n_latents_sets_any_width_and_leaves_old_configs_unchanged():
    cfg = SAEConfig(d_in=16, n_latents=50)
    assert cfg.d_sae == 50 and SAEConfig(d_in=16, expansion_factor=3).d_sae == 48
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["n_latents"] == 50
    # the default is not written: every digest and cfg.json from before the field is the same
    assert "n_latents" not in SAEConfig().to_dict()
    with pytest.raises(ValueError, match="n_latents"):
        SAEConfig(n_latents=-1)
    sae = SparseAutoencoder(cfg)
    assert sae.W_enc.shape == (16, 50) and sae.W_dec.shape == (50, 16)


def test_load_official_accepts_a_width_that_is_not_a_multiple(tmp_path: Path):
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=50, seed=1))
    back, cfg = load_official(export_official(sae, tmp_path / "odd.pt"))
    assert back.cfg.d_sae == 50 and cfg["d_sae"] == 50
    torch.testing.assert_close(back.W_enc, sae.W_enc, rtol=0, atol=0)
    # a multiple still loads as before, without n_latents
    x4, _ = load_official(
        export_official(
            SparseAutoencoder(SAEConfig(d_in=16, expansion_factor=4)), tmp_path / "x4.pt"
        )
    )
    assert x4.cfg.expansion_factor == 4 and x4.cfg.n_latents == 0


# ------------------------------------------------------------------------------ init=
def test_train_sae_on_your_activations_from_another_sae(tmp_path: Path):
    other = SparseAutoencoder(SAEConfig(d_in=16, n_latents=50, seed=3))
    with torch.no_grad():
        other.b_dec.fill_(0.25)
    slow = TINY.replace(lr=1e-9)  # so the end is still the start
    res = train_sae(
        _tokens(), SAEConfig(d_in=16, n_latents=50), slow, tmp_path / "run", init=other,
        progress=False,
    )  # fmt: skip
    assert res.sae.cfg.d_sae == 50 and len(res.history) == 4
    torch.testing.assert_close(res.sae.W_enc.detach(), other.W_enc.detach(), atol=1e-5, rtol=0)
    # given weights keep their b_dec (no geometric-median init)
    torch.testing.assert_close(res.sae.b_dec.detach(), other.b_dec.detach(), atol=1e-5, rtol=0)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(record["init"]) == 1 and len(record["init"][0]) == 12
    # the finished run loads again only with the same init
    again = train_sae(
        _tokens(), SAEConfig(d_in=16, n_latents=50), slow, tmp_path / "run", init=other,
        progress=False,
    )  # fmt: skip
    torch.testing.assert_close(again.sae.W_enc, res.sae.W_enc)
    with pytest.raises(CheckpointError, match="different run"):
        train_sae(
            _tokens(), SAEConfig(d_in=16, n_latents=50), slow, tmp_path / "run", progress=False
        )


def test_init_from_files_of_both_formats_and_a_state_dict(tmp_path: Path):
    src = SparseAutoencoder(SAEConfig(d_in=16, expansion_factor=2, seed=5))
    folder = save_sae(src, tmp_path / "ours")
    pt = export_official(src, tmp_path / "theirs.pt")
    sd = {k: getattr(src, k).detach() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    cfg = SAEConfig(d_in=16, expansion_factor=2)
    got = [init_tensors(x, cfg) for x in (src, folder, pt, str(pt), sd)]
    for t in got[1:]:
        for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
            torch.testing.assert_close(t[k], got[0][k], rtol=0, atol=0)
    res = train_sae(_tokens(), cfg, TINY, tmp_path / "run", init=pt, progress=False)
    assert res.sae.cfg == cfg and np.isfinite(res.history["mse"]).all()


def test_init_that_does_not_fit_names_the_shapes(tmp_path: Path):
    wrong = SparseAutoencoder(SAEConfig(d_in=16, expansion_factor=3))
    with pytest.raises(CheckpointError, match=r"W_enc has shape \(16, 48\).*needs \(16, 32\)"):
        train_sae(
            _tokens(), SAEConfig(d_in=16, expansion_factor=2), TINY, tmp_path / "r", init=wrong,
            progress=False,
        )  # fmt: skip
    with pytest.raises(CheckpointError, match="missing"):
        init_tensors({"W_enc": torch.zeros(16, 32)}, SAEConfig(d_in=16, expansion_factor=2))
    with pytest.raises(TypeError, match="init must be"):
        init_tensors(3, SAEConfig(d_in=16))


# ------------------------------------------------------------------------------ files
def test_sae_file_tells_the_formats_apart_and_hashes_the_content(tmp_path: Path, monkeypatch):
    sae = SparseAutoencoder(SAEConfig(d_in=16, expansion_factor=2))
    pt = export_official(sae, tmp_path / "final_sparse_autoencoder.pt")
    f = sae_file(pt)
    assert f.kind == "official" and f.digest == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert sae_file(save_sae(sae, tmp_path / "ours")).kind == "folder"
    monkeypatch.setenv("CYTOSAE_SAE", str(pt))
    assert sae_file("env").path == pt
    torch.testing.assert_close(load_any_sae("env").W_dec, load_sae(tmp_path / "ours").W_dec)
    with pytest.raises(FileNotFoundError, match="no SAE at"):
        sae_file(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"lacks cfg\.json, sae\.safetensors"):
        sae_file(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not an SAE checkpoint"):
        sae_file(tmp_path / "notes.txt")
    monkeypatch.delenv("CYTOSAE_SAE")
    with pytest.raises(FileNotFoundError, match="CYTOSAE_SAE is not set"):
        sae_file("env")


# ------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A real token store of 6 images through the tiny-test ViT (d = 64)."""
    from cytosae.data.adapters import load_manifest
    from cytosae.model.backbone import BackboneConfig
    from cytosae.store.extract import ExtractConfig, extract_tokens

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cells")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                root / label / f"{i}.png"
            )
    cfg = ExtractConfig(batch_size=3, num_workers=0, device="cpu", precision="fp32", num_threads=1)
    return extract_tokens(
        load_manifest("imagefolder", root, name="mycells"),
        BackboneConfig(arch="tiny-test", layer=-2),
        tmp_path_factory.mktemp("runs"),
        cfg,
        progress=False,
    )


def test_cli_latents_takes_either_format_with_the_same_result(store, tmp_path: Path, capsys):
    from cytosae.analysis.latents import LatentStats

    sae = SparseAutoencoder(SAEConfig(d_in=64, n_latents=70, seed=2))
    folder = save_sae(sae, tmp_path / "ours")
    pt = export_official(sae, tmp_path / "theirs.pt")
    for name, src in (("a", folder), ("b", pt)):
        argv = [
            "latents",
            "--sae",
            str(src),
            "--store",
            str(store.path),
            "--out",
            str(tmp_path / name),
            "--top-k",
            "2",
        ]
        assert main(argv) == 0
    a, b = LatentStats.load(tmp_path / "a"), LatentStats.load(tmp_path / "b")
    assert len(a.mean_acts) == 70 and a.n_images == 6
    np.testing.assert_array_equal(a.sparsity, b.sparsity)
    wide = export_official(
        SparseAutoencoder(SAEConfig(d_in=384, expansion_factor=1)), tmp_path / "w.pt"
    )
    capsys.readouterr()
    argv = ["latents", "--sae", str(wide), "--store", str(store.path), "--out", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "d_in=384" in err and "d_model=64" in err and "Traceback" not in err


def test_cli_train_init_continues_from_the_authors_file(store, tmp_path: Path):
    pt = export_official(
        SparseAutoencoder(SAEConfig(d_in=64, n_latents=70, seed=4)), tmp_path / "theirs.pt"
    )
    argv = ["train", "--store", str(store.path), "--out", str(tmp_path / "run"), "--init", str(pt),
            "--total-images", "6", "--batch-images", "3", "--warmup", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    sae = load_sae(tmp_path / "run")
    assert sae.cfg.d_sae == 70  # the width follows the file
    assert json.loads((tmp_path / "run" / "run.json").read_text())["init"][0]


# ------------------------------------------------------------------------------ the profile
def _paper(**extra):
    from cytosae.workflow.pipeline import Pipeline

    return Pipeline("paper", progress=False, overrides={"backbone.arch": "tiny-test", **extra})


def test_pretrained_sae_in_a_profile(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CYTOSAE_RUNS", str(tmp_path / "runs"))
    pt = export_official(SparseAutoencoder(SAEConfig(d_in=64, n_latents=96)), tmp_path / "sae.pt")
    pipe = _paper(pretrained_sae=str(pt))
    assert pipe.pretrained and pipe.sae.cfg.d_sae == 96 and pipe.sae_config.d_sae == 96
    assert pipe.sae_key == "pretrained-" + hashlib.sha256(pt.read_bytes()).hexdigest()[:16]
    assert "sae.pt (authors' .pt, sha256" in pipe.banner() and "not trained here" in pipe.banner()
    assert "authors' SAE" in pipe.tag()
    with pytest.raises(RuntimeError, match="no training history"):
        pipe.train_history()
    # "env" reads $CYTOSAE_SAE; a folder works as well
    monkeypatch.setenv("CYTOSAE_SAE", str(save_sae(pipe.sae, tmp_path / "ours")))
    ours = _paper(pretrained_sae="env")
    assert ours.sae_source.kind == "folder" and ours.sae_dir() == tmp_path / "ours"
    # the errors come first, before any extraction, and say what is wrong
    with pytest.raises(FileNotFoundError, match="no SAE at"):
        _paper(pretrained_sae=str(tmp_path / "nope.pt"))
    vit_like = tmp_path / "DinoBloom-B.pth"
    torch.save({"teacher": {"backbone.cls_token": torch.zeros(1, 1, 64)}}, vit_like)
    with pytest.raises(CheckpointError, match="is not an SAE checkpoint"):
        _paper(pretrained_sae=str(vit_like))
    with pytest.raises(ValueError, match=r"d_in=64 tokens, but backbone.arch='dinobloom-s'"):
        _paper(pretrained_sae=str(pt), **{"backbone.arch": "dinobloom-s"})
