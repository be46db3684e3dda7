"""The device side of extraction: the forward pass, its precision, and the copy back to the host.

Which device and precision to use is decided in :mod:`cytosae.hardware`; this module runs a
batch under that choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from cytosae.model.backbone import HookedBackbone, normalize_uint8


@contextmanager
def strict_fp32(enabled: bool = True) -> Iterator[None]:
    """Turn TF32 off for CUDA matmuls and cuDNN convolutions while active.

    PyTorch runs cuDNN convolutions (the patch embedding) in TF32 by default on Ampere and
    newer GPUs; ``precision="fp32"`` means float32 throughout, as on a CPU. Restores the flags.
    """
    if not enabled:
        yield
        return
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast context of a resolved ``precision`` (``bf16``: torch.autocast; else none)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


class HostCopy:
    """Tokens of one batch on their way to the host as float16.

    On CUDA the copy goes into pinned memory without blocking and is waited for only in
    :meth:`result`, one batch later, so the GPU computes the next batch meanwhile. The finite
    check runs on the device and travels with the copy (no extra synchronisation).
    """

    def __init__(self, tokens_BTD: torch.Tensor) -> None:
        t16 = tokens_BTD.float().to(torch.float16)
        finite = torch.isfinite(t16).all()
        self._event: torch.cuda.Event | None = None
        if t16.device.type == "cuda":
            self._host = torch.empty(t16.shape, dtype=torch.float16, pin_memory=True)
            self._finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            self._host.copy_(t16, non_blocking=True)
            self._finite.copy_(finite, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host, self._finite = t16.cpu(), finite

    def result(self) -> np.ndarray | None:
        """The (B, T, D) float16 array, or None when a value is not finite."""
        if self._event is not None:
            self._event.synchronize()
        return self._host.numpy() if bool(self._finite) else None


def forward_to_host(
    model: HookedBackbone, pixels_B3HW: torch.Tensor, device: torch.device, precision: str
) -> HostCopy:
    """The device half of extraction: uint8 pixels go to the device (4x less than float32), are
    normalised there, run through the backbone, and start their float16 copy back to the host."""
    pixels = normalize_uint8(pixels_B3HW.to(device, non_blocking=True))
    with autocast_for(precision, device):
        return HostCopy(model(pixels))
