"""Where computation runs: the one device resolver, precision choice and CPU facts.

Every stage that computes (extraction, training, the encode pass) resolves its ``device``
setting here, with one rule: ``auto`` is CUDA when available, else the CPU; a plain ``cuda``
under ``torchrun`` means this process's GPU (``cuda:$LOCAL_RANK``); asking for CUDA where there is
none is an error that says so.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import torch

from cytosae import ddp

__all__ = [
    "available_cpus",
    "check_device_name",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_precision",
]


def check_device_name(where: str, name: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return
    raise ValueError(f"{where}: 'auto' | 'cpu' | 'cuda' | 'cuda:N', got {name!r}")


def resolve_device(name: str = "auto") -> torch.device:
    """The :class:`torch.device` for a device setting (see the module docstring)."""
    check_device_name("device", name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    if name == "cuda" and ddp.is_distributed():
        name = f"cuda:{ddp.local_rank()}"
    return torch.device(name)


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 (from /proc/cpuinfo flags).

    On CPUs without them (e.g. AVX2-only) bf16 autocast is emulated and several times
    slower than fp32, so ``precision="auto"`` keeps fp32 there.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA with bf16 support or a CPU with AMX/AVX512-BF16, else ``fp32``."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"
