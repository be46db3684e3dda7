"""Backbone: preprocessing == torchvision, DinoBloom-format loading == timm hooked output."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import save_dinobloom_format
from PIL import Image

from cytosae.model.backbone import (
    ARCHS,
    WEIGHTS_ENV,
    BackboneConfig,
    BackboneWeightsError,
    build_vit,
    load_backbone,
    preprocess,
)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _timm_tiny(seed: int = 3) -> torch.nn.Module:
    """A tiny ViT with DINOv2 naming, built straight from timm (independently of our loader)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    vit = VisionTransformer(
        img_size=224,
        patch_size=14,
        embed_dim=64,
        depth=3,
        num_heads=2,
        mlp_ratio=4.0,
        init_values=1e-5,
        num_classes=0,
    )
    # LayerScale init 1e-5 makes blocks near-identity: give them weight so a wrong block shows
    with torch.no_grad():
        for blk in vit.blocks:
            blk.ls1.gamma.normal_(0, 0.5)
            blk.ls2.gamma.normal_(0, 0.5)
    return vit.eval()


def _hooked_reference(vit: torch.nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    out = {}
    h = vit.blocks[layer].register_forward_hook(
        lambda m, i, o: out.setdefault("t", o.detach().clone())
    )
    with torch.inference_mode():
        vit.forward_features(x)
    h.remove()
    return out["t"]


def test_preprocess_matches_torchvision() -> None:
    from torchvision import transforms

    tv = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )
    rng = np.random.default_rng(0)
    imgs = [
        Image.fromarray(rng.integers(0, 256, (363, 360, 3), dtype=np.uint8)),  # Acevedo size
        Image.fromarray(rng.integers(0, 256, (288, 288, 3), dtype=np.uint8)),  # MLL23
        Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)),  # upsampling
        Image.fromarray(rng.integers(0, 256, (144, 144, 4), dtype=np.uint8), mode="RGBA"),
        Image.fromarray(rng.integers(0, 256, (50, 40), dtype=np.uint8), mode="L"),
    ]
    for img in imgs:
        ours = preprocess(img)
        ref = tv(img.convert("RGB"))
        assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
        assert torch.equal(ours, ref)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_dinobloom_format_equivalence(tmp_path: Path, fmt: str) -> None:
    vit = _timm_tiny()
    pth = save_dinobloom_format(vit, tmp_path / "DinoBloom-tiny.pth")
    raw = torch.load(pth, weights_only=True)
    assert set(raw) == {"teacher"} and "backbone.mask_token" in raw["teacher"]
    assert any(k.startswith("dino_head.") for k in raw["teacher"])
    path = pth
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "DinoBloom-tiny.safetensors"
        save_file({k: v.contiguous() for k, v in raw["teacher"].items()}, str(path))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for layer in (-2, 0, -1):
        model = load_backbone(BackboneConfig(arch="tiny-test", weights=str(path), layer=layer))
        assert len(model.vit.blocks) == layer % 3 + 1  # truncated forward
        with torch.inference_mode():
            got = model(x)
        ref = _hooked_reference(vit, x, layer)
        assert got.shape == (2, 257, 64)
        assert torch.equal(got, ref), (layer, (got - ref).abs().max())
    assert not model.is_random_init and model.d_model == 64 and model.n_tokens == 257
    assert model.weights_digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_random_init_seeded_and_labelled() -> None:
    state = torch.random.get_rng_state()
    a = load_backbone(BackboneConfig(arch="tiny-test", init_seed=1))
    b = load_backbone(BackboneConfig(arch="tiny-test", init_seed=1))
    c = load_backbone(BackboneConfig(arch="tiny-test", init_seed=2))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert a.is_random_init and a.weights_digest == b.weights_digest != c.weights_digest
    assert a.weights_digest.startswith("random:")


def test_weight_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # wrong embedding width: say what it looks like
    small = {
        "teacher": {
            "backbone.cls_token": torch.zeros(1, 1, 384),
            "backbone.pos_embed": torch.zeros(1, 257, 384),
        }
    }
    torch.save(small, tmp_path / "s.pth")
    with pytest.raises(
        BackboneWeightsError,
        match=r"looks like DinoBloom-S \(384\) but arch is dinobloom-b \(768\)",
    ):
        load_backbone(BackboneConfig(arch="dinobloom-b", weights=str(tmp_path / "s.pth")))
    # missing keys
    vit = _timm_tiny()
    save_dinobloom_format(vit, tmp_path / "t.pth")
    sd = torch.load(tmp_path / "t.pth", weights_only=True)
    del sd["teacher"]["backbone.blocks.1.mlp.fc1.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(BackboneWeightsError, match=r"missing \['blocks.1.mlp.fc1.weight'\]"):
        load_backbone(BackboneConfig(arch="tiny-test", weights=str(tmp_path / "missing.pth")))
    # corrupt / truncated file
    data = (tmp_path / "t.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BackboneWeightsError, match=r"could not read .*trunc.pth as a DinoBloom checkpoint"
    ):
        load_backbone(BackboneConfig(arch="tiny-test", weights=str(tmp_path / "trunc.pth")))
    # arbitrary pickles are refused (weights_only)
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Path("/"), protocol=2))
    with pytest.raises(BackboneWeightsError, match="could not read"):
        load_backbone(BackboneConfig(arch="tiny-test", weights=str(tmp_path / "evil.pth")))
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        load_backbone(BackboneConfig(arch="tiny-test", weights=str(tmp_path / "nope.pth")))
    # env
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(BackboneWeightsError, match=WEIGHTS_ENV):
        load_backbone(BackboneConfig(arch="tiny-test", weights="env"))
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "t.pth"))
    m = load_backbone(BackboneConfig(arch="tiny-test", weights="env"))
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(m(x), _hooked_reference(vit, x, -2))
    with pytest.raises(ValueError, match=r"BackboneConfig.layer"):
        BackboneConfig(arch="tiny-test", layer=3)
    with pytest.raises(ValueError, match=r"BackboneConfig.arch"):
        BackboneConfig(arch="dinobloom-xl")


def test_arch_table_matches_timm() -> None:
    """The registry's dims/depths are those of timm's DINOv2 models (built on the meta device)."""
    for name, spec in ARCHS.items():
        if not spec.timm_name or name == "dinobloom-g":
            continue
        with torch.device("meta"):
            vit = build_vit(name)
        assert vit.embed_dim == spec.embed_dim and len(vit.blocks) == spec.depth
        assert tuple(vit.pos_embed.shape) == (1, 257, spec.embed_dim)
        assert "mask_token" not in vit.state_dict()


@pytest.mark.slow
def test_dinobloom_s_format_roundtrip(tmp_path: Path) -> None:
    """A real-size DinoBloom-S checkpoint in the published format loads strictly."""
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch14_dinov2", img_size=224, num_classes=0).eval()
    save_dinobloom_format(vit, tmp_path / "DinoBloom-S.pth")
    model = load_backbone(
        BackboneConfig(arch="dinobloom-s", weights=str(tmp_path / "DinoBloom-S.pth"))
    )
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(x), _hooked_reference(vit, x, -2))
    assert len(model.vit.blocks) == 11
