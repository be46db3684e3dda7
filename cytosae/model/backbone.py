"""DinoBloom backbones (DINOv2 ViT/14 in timm) with a truncated, hooked forward.

``load_backbone(BackboneConfig(...))`` builds the timm DINOv2 architecture at 224 px
(257 tokens), loads weights, and keeps only the blocks up to the hooked one: the forward
returns the residual stream after ``blocks[layer]`` (default ``-2``: after block 10 of 12 for
ViT-B, before the final LayerNorm), exactly what a forward hook on the full model sees.

Weights (``BackboneConfig.weights``):

* ``"random"``: seeded random init (``init_seed``); ``is_random_init`` is True.
* a ``.pth``/``.pt`` file in the published DinoBloom format ``{"teacher": {"backbone.*",
  "dino_head.*", "ibot_head.*", "backbone.mask_token"}}`` (read with ``weights_only=True``):
  ``backbone.`` is stripped, heads and ``mask_token`` dropped, loaded with ``strict=True``.
  A plain timm state dict is also accepted.
* a ``.safetensors`` file (DinoBloom or timm key names, same rules).
* ``"env"``: the path in ``$CYTOSAE_DINOBLOOM_WEIGHTS``.
* ``"hf-hub:<id>"``: timm downloads it (network; only when asked). The public timm conversions
  (``1aurent/vit_*_patch14_224.dinobloom``) store a 518-px config whose position embedding timm
  resamples to 224 px, so prefer the Zenodo ``.pth`` for exact numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cytosae.config import JsonConfig, digest
from cytosae.data.imageio import DECODE_RULES

log = logging.getLogger(__name__)

WEIGHTS_ENV = "CYTOSAE_DINOBLOOM_WEIGHTS"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
PATCH_SIZE = 14


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture.

    Attributes:
        timm_name: registered timm model name ("" for an explicit ``VisionTransformer``).
        embed_dim: token width D.
        depth: number of blocks.
        display: human name used in error messages.
        vit_kwargs: extra ``VisionTransformer`` kwargs (only used when ``timm_name`` is "").
    """

    timm_name: str
    embed_dim: int
    depth: int
    display: str
    vit_kwargs: tuple[tuple[str, Any], ...] = ()


ARCHS: dict[str, ArchSpec] = {
    "dinobloom-s": ArchSpec("vit_small_patch14_dinov2", 384, 12, "DinoBloom-S"),
    "dinobloom-b": ArchSpec("vit_base_patch14_dinov2", 768, 12, "DinoBloom-B"),
    "dinobloom-l": ArchSpec("vit_large_patch14_dinov2", 1024, 24, "DinoBloom-L"),
    # timm's DINOv2 giant (SwiGLU, 40 blocks) is registered as vit_giant_patch14_dinov2
    "dinobloom-g": ArchSpec("vit_giant_patch14_dinov2", 1536, 40, "DinoBloom-G"),
    # A tiny ViT with DINOv2 naming (patch 14, LayerScale, qkv bias, eps 1e-6) for tests and
    # smoke runs; it never matches a published checkpoint.
    "tiny-test": ArchSpec(
        "",
        64,
        3,
        "tiny-test ViT",
        (("num_heads", 2), ("mlp_ratio", 4.0), ("init_values", 1e-5)),
    ),
}

_DIM_TO_DISPLAY = {spec.embed_dim: spec.display for k, spec in ARCHS.items() if k != "tiny-test"}


class BackboneWeightsError(ValueError):
    """A weights file is missing, unreadable or does not match the architecture."""


@dataclasses.dataclass(frozen=True)
class BackboneConfig(JsonConfig):
    """Which backbone, weights and hooked layer.

    Attributes:
        arch: ``dinobloom-s|b|l|g`` (or ``tiny-test``).
        weights: ``"random"`` | a ``.pth``/``.safetensors`` path | ``"hf-hub:<id>"`` | ``"env"``.
        layer: hooked block index (python indexing, ``-2`` = second to last).
        img_size: input side in pixels (224 for DinoBloom: 257 tokens).
        init_seed: seed of the random init (used only when ``weights == "random"``).
    """

    arch: str = "dinobloom-b"
    weights: str = "random"
    layer: int = -2
    img_size: int = 224
    init_seed: int = 0

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"BackboneConfig.arch: unknown {self.arch!r}; known: {sorted(ARCHS)}")
        depth = ARCHS[self.arch].depth
        if not -depth <= self.layer < depth:
            raise ValueError(
                f"BackboneConfig.layer: {self.layer} out of range for {self.arch} (depth {depth})"
            )
        if self.img_size <= 0 or self.img_size % PATCH_SIZE:
            raise ValueError(
                f"BackboneConfig.img_size: {self.img_size} is not a positive multiple of 14"
            )
        if not self.weights:
            raise ValueError(
                "BackboneConfig.weights: empty; use 'random', a path, 'env' or 'hf-hub:<id>'"
            )

    @property
    def resolved_layer(self) -> int:
        """Non-negative block index."""
        return self.layer % ARCHS[self.arch].depth

    @property
    def n_tokens(self) -> int:
        return (self.img_size // PATCH_SIZE) ** 2 + 1


# --------------------------------------------------------------------------- preprocessing


def resize_224(img: Image.Image, size: int = 224) -> Image.Image:
    """``.convert("RGB")`` then the square bilinear resize of ``transforms.Resize((size, size))``."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img.resize((size, size), Image.BILINEAR)


def to_uint8_chw(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W) (no copy of the numbers, no scaling)."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def normalize_uint8(pixels_B3HW: torch.Tensor) -> torch.Tensor:
    """uint8 (…, 3, H, W) -> float32 ``ToTensor`` + ImageNet ``Normalize`` (same op order)."""
    x = pixels_B3HW.to(torch.float32).div(255)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return x.sub_(mean).div_(std)


def preprocess(img: Image.Image, img_size: int = 224) -> torch.Tensor:
    """The official preprocessing: RGB, square bilinear resize, ToTensor, ImageNet Normalize.

    Returns:
        float32 tensor (3, img_size, img_size), bit-identical to torchvision's
        ``Compose([Resize((224, 224)), ToTensor(), Normalize(mean, std)])`` on PIL images.
    """
    return normalize_uint8(to_uint8_chw(resize_224(img, img_size)))


PREPROCESSING: dict[str, Any] = {
    "convert": "RGB",
    "resize": "square bilinear (PIL, = torchvision Resize((s, s)))",
    "to_tensor": "uint8/255",
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    # how files become RGB before all this (EXIF orientation, 16-bit, formats, minimum size):
    # part of every store key, so a change of the rules never reuses tokens made under others
    "decode": DECODE_RULES,
}


# --------------------------------------------------------------------------- model


def build_vit(arch: str, img_size: int = 224) -> nn.Module:
    """The (randomly initialised, using torch's global RNG) timm ViT for ``arch``."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    spec = ARCHS[arch]
    if spec.timm_name:
        return timm.create_model(spec.timm_name, pretrained=False, img_size=img_size, num_classes=0)
    return VisionTransformer(
        img_size=img_size,
        patch_size=PATCH_SIZE,
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_classes=0,
        **dict(spec.vit_kwargs),
    )


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_weights(weights: str) -> str:
    """``"env"`` -> the path in ``$CYTOSAE_DINOBLOOM_WEIGHTS``; anything else unchanged."""
    if weights == "env":
        val = os.environ.get(WEIGHTS_ENV, "").strip()
        if not val:
            raise BackboneWeightsError(
                f"weights='env' but ${WEIGHTS_ENV} is not set; set it to a DinoBloom .pth or .safetensors file"
            )
        return val
    return weights


# sentences of torch's unpickling errors that advise loading the file unsafely (re-running with
# ``weights_only=False``, allow-listing globals): never passed on to the user
_UNSAFE_ADVICE = (
    "weights_only",
    "safe_globals",
    "add_safe_globals",
    "trusted source",
    "arbitrary code",
    "file an issue",
    "check the documentation",
    "check the recommended steps",
    "you have two options",
    "pytorch.org/docs",
    "weights only load failed",
)


def _safe_detail(exc: BaseException) -> str:
    """The factual part of a load error (what was refused), without torch's advice to load the
    file unsafely."""
    text = str(exc).replace("WeightsUnpickler error:", "\n")
    parts = []
    for line in text.replace(". ", ".\n").splitlines():
        line = line.strip()
        if line and not any(a in line.lower() for a in _UNSAFE_ADVICE):
            parts.append(line)
    detail = " ".join(parts).strip() or type(exc).__name__
    return detail[:500]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running any code from it.

    ``.pth``/``.pt`` files (zip or legacy torch format) are read by torch's restricted
    unpickler (``weights_only``): a file whose pickle names anything but tensors and plain
    containers is refused before anything in it runs, and the error never suggests loading it
    unrestricted.
    """
    import pickle

    expected = (
        "a DinoBloom checkpoint: torch.save({'teacher': {'backbone.*': ...}}) as .pth, "
        "or a .safetensors file of the backbone"
    )
    if not path.is_file():
        raise BackboneWeightsError(f"weights file {path} does not exist (expected {expected})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BackboneWeightsError(
            f"could not read {path}: refused, it is not a plain tensor checkpoint that can be read "
            f"without running code from it ({_safe_detail(exc)}). A weights file needs nothing "
            "more, so this one is damaged, in another format, or not what it claims to be; "
            "cytosae never unpickles arbitrary objects. Get the published file again "
            f"(expected {expected})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated, not a torch file, ...
        raise BackboneWeightsError(
            f"could not read {path} as {expected}: {type(exc).__name__}: {_safe_detail(exc)}"
        ) from None
    if isinstance(obj, dict) and "teacher" in obj and isinstance(obj["teacher"], dict):
        obj = obj["teacher"]
    elif isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict) and not isinstance(obj[key], torch.Tensor):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BackboneWeightsError(
            f"{path} does not hold a tensor state dict (expected {expected})"
        )
    return obj


def convert_dinobloom_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DinoBloom teacher keys -> timm keys: strip ``backbone.``, drop heads and ``mask_token``."""
    has_prefix = any(k.startswith("backbone.") for k in sd)
    out = {}
    for k, v in sd.items():
        if k.startswith(("dino_head.", "ibot_head.")):
            continue
        if has_prefix:
            if not k.startswith("backbone."):
                continue
            k = k[len("backbone.") :]
        if k == "mask_token":
            continue
        out[k] = v
    return out


def _check_dims(sd: dict[str, torch.Tensor], arch: str, path: Path) -> None:
    """Embedding width and depth of a converted state dict vs ``arch`` (before building it)."""
    spec = ARCHS[arch]
    want = f"{arch} ({spec.embed_dim})"
    for key in ("cls_token", "pos_embed", "norm.weight"):
        if key in sd:
            dim = int(sd[key].shape[-1])
            if dim != spec.embed_dim:
                looks = (
                    f"{_DIM_TO_DISPLAY[dim]} ({dim})"
                    if dim in _DIM_TO_DISPLAY
                    else f"a {dim}-dim model"
                )
                raise BackboneWeightsError(f"{path}: this looks like {looks} but arch is {want}")
            break
    else:
        raise BackboneWeightsError(
            f"{path}: no cls_token/pos_embed found after stripping 'backbone.'; expected a DinoBloom "
            f"teacher state dict ('backbone.cls_token', 'backbone.blocks.0...', ...) for {spec.display}"
        )
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}
    if blocks and len(blocks) != spec.depth:
        raise BackboneWeightsError(
            f"{path}: checkpoint has {len(blocks)} blocks but arch {arch} has {spec.depth}"
        )


def _check_shapes(sd: dict[str, torch.Tensor], model: nn.Module, arch: str, path: Path) -> None:
    spec = ARCHS[arch]
    _check_dims(sd, arch, path)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise BackboneWeightsError(
            f"{path}: keys do not match {spec.display} ({spec.timm_name or 'VisionTransformer'}, img 224): "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''} ({len(unexpected)}); "
            "expected a DinoBloom teacher state dict with 'backbone.' keys"
        )
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            hint = ""
            if k == "pos_embed":
                hint = f" (the checkpoint's {v.shape[1]} positions do not fit img_size's {own[k].shape[1]})"
            raise BackboneWeightsError(
                f"{path}: tensor {k} has shape {tuple(v.shape)}, {arch} expects {tuple(own[k].shape)}{hint}"
            )


class HookedBackbone(nn.Module):
    """A ViT truncated after the hooked block. ``forward(pixels_B3HW) -> tokens_BTD``.

    Attributes:
        cfg: the :class:`BackboneConfig`.
        d_model: token width D.
        n_tokens: T (257 at 224 px).
        layer: the non-negative hooked block index.
        is_random_init: True when no weights were loaded.
        weights_digest: ``sha256:<hex>`` of the weights file, or ``random:<hex>`` of
            (``"random"``, arch, seed, img_size).
        weights_source: where the weights came from (path, hf-hub id or "random").
    """

    def __init__(
        self,
        vit: nn.Module,
        cfg: BackboneConfig,
        *,
        is_random_init: bool,
        weights_digest: str,
        weights_source: str,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer = cfg.resolved_layer
        # Truncate: keep only blocks[: layer + 1]; the final norm and head are never used.
        vit.blocks = nn.Sequential(*list(vit.blocks.children())[: self.layer + 1])
        vit.norm = nn.Identity()
        vit.head = nn.Identity()
        self.vit = vit
        self.d_model = int(vit.embed_dim)
        self.n_tokens = cfg.n_tokens
        self.is_random_init = is_random_init
        self.weights_digest = weights_digest
        self.weights_source = weights_source
        self.eval()

    def forward(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, D) after ``blocks[layer]`` (same ops as timm's ``forward_features``)."""
        v = self.vit
        x = v.patch_embed(pixels_B3HW)
        x = v._pos_embed(x)
        x = v.patch_drop(x)
        x = v.norm_pre(x)
        return v.blocks(x)

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for store metadata)."""
        return {
            "config": self.cfg.to_dict(),
            "arch_timm": ARCHS[self.cfg.arch].timm_name or "VisionTransformer",
            "layer_resolved": self.layer,
            "blocks_computed": len(self.vit.blocks),
            "d_model": self.d_model,
            "n_tokens": self.n_tokens,
            "is_random_init": self.is_random_init,
            "weights_digest": self.weights_digest,
        }


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def weights_digest_for(cfg: BackboneConfig) -> tuple[str, bool]:
    """``(weights_digest, is_random_init)`` of ``cfg`` without building the model.

    ``sha256:<hex>`` of a weights file (cached per path, size and mtime), ``random:<hex>`` of
    ("random", arch, seed, img_size), or ``hf-hub:<id>`` (hub revisions are not pinned).
    """
    weights = resolve_weights(cfg.weights)
    if weights == "random":
        return "random:" + digest("random", cfg.arch, cfg.init_seed, cfg.img_size, length=16), True
    if weights.startswith("hf-hub:"):
        return weights, False
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneWeightsError(
            f"weights file {path} does not exist (expected a DinoBloom .pth or a .safetensors file)"
        )
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = "sha256:" + file_sha256(path)
    return _SHA_CACHE[key], False


def load_backbone(cfg: BackboneConfig, *, device: str | torch.device = "cpu") -> HookedBackbone:
    """Build, load and truncate the backbone described by ``cfg`` (eval mode, no grads).

    Raises:
        BackboneWeightsError: missing/unreadable/mismatched weights (says what was expected).
    """
    weights = resolve_weights(cfg.weights)
    wd, random_init = weights_digest_for(cfg)
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            vit = build_vit(cfg.arch, cfg.img_size)
        source = "random"
        log.warning(
            "backbone %s is RANDOMLY INITIALISED (seed %d): tokens are not DinoBloom's",
            cfg.arch,
            cfg.init_seed,
        )
    elif weights.startswith("hf-hub:"):
        import timm

        vit = timm.create_model(weights, pretrained=True, img_size=cfg.img_size, num_classes=0)
        with torch.random.fork_rng(devices=[]):
            _check_shapes(
                vit.state_dict(), build_vit(cfg.arch, cfg.img_size), cfg.arch, Path(weights)
            )
        source = weights
    else:
        path = Path(weights).expanduser()
        sd = convert_dinobloom_state_dict(_read_state_dict(path))
        _check_dims(sd, cfg.arch, path)
        with torch.random.fork_rng(devices=[]):
            vit = build_vit(cfg.arch, cfg.img_size)
        _check_shapes(sd, vit, cfg.arch, path)
        vit.load_state_dict(sd, strict=True)
        source = str(path.resolve())
    vit.eval()
    model = HookedBackbone(
        vit, cfg, is_random_init=random_init, weights_digest=wd, weights_source=source
    )
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)
