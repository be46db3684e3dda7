"""Load the authors' published latent statistics into a :class:`~cytosae.analysis.latents.LatentStats`.

Folder format (one per dataset): ``sae_sparsity.pt``, ``sae_mean_acts.pt``,
``max_activating_image_indices.pt`` (float32 -> int64), ``max_activating_image_values.pt``,
``max_activating_image_label_indices.pt`` and optionally ``top_entropy.pt``. Plain tensors saved on
CUDA: read with ``torch.load(weights_only=True, map_location="cpu")`` (no code execution).

The top-image indices index the authors' dataset *after a seeded shuffle*, not our manifest, so
they are kept as published; ``labels`` is empty and ``counts`` is None (not published).
Patch-level statistics are not published either: they are NaN.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cytosae.analysis.latents import LatentStats, label_entropy

log = logging.getLogger(__name__)

__all__ = ["REQUIRED_FILES", "load_official_stats"]

REQUIRED_FILES = (
    "sae_sparsity.pt",
    "sae_mean_acts.pt",
    "max_activating_image_indices.pt",
    "max_activating_image_values.pt",
    "max_activating_image_label_indices.pt",
)


def _load(path: Path) -> np.ndarray:
    from cytosae.interop.official_sae import refusal_reason

    try:
        t = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # any failure: report which file it was (never torch's hint)
        raise ValueError(f"could not read tensor file {path}: {refusal_reason(exc)}") from exc
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{path} does not hold a tensor (got {type(t).__name__})")
    return t.detach().cpu().numpy()


def load_official_stats(
    folder: str | Path, dataset: str | None = None, label_names: tuple[str, ...] = ()
) -> LatentStats:
    """Read one ``cytosae-official-stats/<dataset>/`` folder.

    Args:
        folder: the folder with the ``.pt`` files.
        dataset: name to record (default: the folder name).
        label_names: class names in the authors' alphabetical folder order, if known (the label
            indices of the top images index them).
    """
    folder = Path(folder)
    missing = [f for f in REQUIRED_FILES if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {missing}")
    sparsity = _load(folder / "sae_sparsity.pt").astype(np.float32)
    mean_acts = _load(folder / "sae_mean_acts.pt").astype(np.float32)
    idx_f = _load(folder / "max_activating_image_indices.pt")
    top_indices = np.rint(idx_f).astype(np.int64)
    top_values = _load(folder / "max_activating_image_values.pt").astype(np.float32)
    top_labels = _load(folder / "max_activating_image_label_indices.pt").astype(np.int64)
    S = sparsity.shape[0]
    for name, arr in (("mean_acts", mean_acts), ("indices", top_indices), ("values", top_values)):
        if arr.shape[0] != S:
            raise ValueError(f"{folder}: {name} has {arr.shape[0]} latents, sparsity has {S}")
    if (folder / "top_entropy.pt").exists():
        top_entropy = _load(folder / "top_entropy.pt").astype(np.float32)
    else:
        n_labels = int(top_labels.max()) + 1 if top_labels.size else 1
        top_entropy = label_entropy(top_values, top_labels, n_labels)
    nan = np.full(S, np.nan, dtype=np.float32)
    return LatentStats(
        sparsity=sparsity,
        mean_acts=mean_acts,
        patch_frequency=nan.copy(),
        patch_mean_acts=nan.copy(),
        top_indices=top_indices,
        top_values=top_values,
        top_entropy=top_entropy,
        counts=None,
        label_names=tuple(label_names),
        labels=np.zeros(0, dtype=np.int64),
        dataset=dataset or folder.name,
        n_images=-1,
        meta={"source": "official", "folder": str(folder)},
        top_labels=top_labels,
    )
