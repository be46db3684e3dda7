"""The decoding side of extraction: images to uint8 pixel batches, in DataLoader workers.

Each image is read by :func:`cytosae.data.imageio.try_read_rgb` (formats, checks, conversions)
and then checked by :func:`cytosae.data.imageio.geometry_check`: an image smaller than one patch
is skipped with its reason, an extreme aspect ratio is kept and reported as a note.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cytosae.data.imageio import geometry_check, try_read_rgb
from cytosae.hardware import available_cpus
from cytosae.model.backbone import resize_224, to_uint8_chw


class _ImageDataset(Dataset):
    """Decode + resize to uint8 (3, S, S) in workers; normalisation happens batched later."""

    def __init__(self, paths: list[str], img_size: int, alpha: str) -> None:
        self.paths = paths
        self.img_size = img_size
        self.alpha = alpha

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str, str]:
        img, reason = try_read_rgb(self.paths[i], alpha=self.alpha)
        if img is None:
            return i, None, reason, ""
        reason, note = geometry_check(img.width, img.height)
        if reason:
            return i, None, reason, ""
        return i, to_uint8_chw(resize_224(img, self.img_size)), "", note


def _collate(items: list[tuple[int, torch.Tensor | None, str, str]]) -> dict[str, Any]:
    kept = [(i, t) for i, t, _, _ in items if t is not None]
    return {
        "rows": [i for i, _ in kept],
        "pixels": torch.stack([t for _, t in kept]) if kept else None,
        "skipped": [(i, r) for i, t, r, _ in items if t is None],
        "notes": [(i, n) for i, t, _, n in items if t is not None and n],
    }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def default_workers(device: torch.device) -> int:
    """Decode workers for ``num_workers=-1``.

    On CUDA every core but one decodes, at most 32 (the GPU outruns decoding, so decoding sets
    the pace); on a CPU two workers overlap decoding with a forward that needs the cores itself.
    """
    cpus = available_cpus()
    if device.type == "cuda":
        return max(1, min(cpus - 1, 32))
    return min(2, cpus)


def image_loader(
    paths: list[str],
    batches: list[list[int]],
    *,
    img_size: int = 224,
    alpha: str = "drop",
    workers: int = 0,
    device: torch.device | str = "cpu",
) -> DataLoader:
    """The decoding half of extraction: batches of
    ``{"rows", "pixels" (B, 3, S, S) uint8, "skipped", "notes"}``.

    ``batches`` lists the row indices of each batch; unreadable (or too small) images come back
    in ``skipped`` as ``(row, reason)``; ``pixels`` is None when no image of the batch was
    readable; ``notes`` lists ``(row, warning)`` of kept images with an extreme aspect ratio.
    Used by :func:`cytosae.store.extract.extract_rank` and the benchmark.
    """
    return DataLoader(
        _ImageDataset(paths, img_size, alpha),
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if workers > 0 else None,
        pin_memory=torch.device(device).type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )
