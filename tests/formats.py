"""Writers of the published file formats, for test fixtures (never used by the library).

Each writes exactly the layout a user downloads, so the loaders are tested on the real format.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_dinobloom_format(vit: nn.Module, path: str | Path, *, with_heads: bool = True) -> Path:
    """Write ``vit`` as a DinoBloom-format checkpoint (``{"teacher": {"backbone.*", heads}}``).

    Used to build test fixtures; heads and ``mask_token`` are filler tensors, as in the
    published files (they are dropped on load).
    """
    sd = {f"backbone.{k}": v.detach().clone() for k, v in vit.state_dict().items()}
    d = int(vit.embed_dim)
    sd["backbone.mask_token"] = torch.zeros(1, d)
    if with_heads:
        sd["dino_head.mlp.0.weight"] = torch.zeros(8, d)
        sd["dino_head.last_layer.weight_g"] = torch.ones(4, 1)
        sd["ibot_head.mlp.0.weight"] = torch.zeros(8, d)
    p = Path(path)
    torch.save({"teacher": sd}, str(p))
    return p
