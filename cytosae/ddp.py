"""Helpers for data-parallel SAE training under ``torchrun`` (gloo on CPU, NCCL on GPU).

The trainer does not wrap the SAE in ``DistributedDataParallel``: it averages the gradients itself
with one flat ``all_reduce`` per SAE and step (what DDP does, but also covering the custom sparse
backward), and all-reduces the per-latent firing counts so that the ghost-grad dead masks, the
sparse/dense switch and the metrics are identical on every rank.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

log = logging.getLogger(__name__)


def is_distributed() -> bool:
    """True when a process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def maybe_init_from_env(device_type: str = "cpu") -> bool:
    """Initialise the default process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Returns:
        True when running distributed.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    log.info(
        "initialised %s process group: rank %d of %d",
        backend,
        dist.get_rank(),
        dist.get_world_size(),
    )
    return True


def all_reduce_sum_(t: Tensor) -> Tensor:
    """In-place sum over ranks (no-op when not distributed)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_gradients_(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` of ``params`` over ranks with a single flat all-reduce."""
    if not is_distributed():
        return
    ps = [p for p in params if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in ps])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p in ps:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(n: int, r: int, w: int) -> slice:
    """The slice of a global batch of ``n`` items held by rank ``r`` of ``w`` (``n % w == 0``)."""
    if n % w:
        raise ValueError(f"global batch of {n} images does not split evenly over {w} ranks")
    per = n // w
    return slice(r * per, (r + 1) * per)


__all__ = [
    "all_reduce_sum_",
    "average_gradients_",
    "barrier",
    "is_distributed",
    "local_rank",
    "maybe_init_from_env",
    "rank",
    "shard",
    "world_size",
]
