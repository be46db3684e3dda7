"""An SAE from a file, in either format: read it, name it by its content, start training from it.

Two formats hold an SAE:

* **ours**: a folder with ``sae.safetensors`` and ``cfg.json`` (:func:`cytosae.train.checkpoint.save_sae`;
  every run folder of ``cytosae train`` and ``runs/sae/<key>/`` of the pipeline is one);
* **the authors'**: one ``.pt`` file (``final_sparse_autoencoder_dinov2_vitb14_-2_resid_49152.pt``
  is their release), read without executing its pickle by
  :func:`cytosae.interop.official_sae.load_official`.

:func:`sae_file` tells them apart, checks the file(s) and hashes them (:attr:`SAEFile.digest`,
sha256 of the content, which is what the pipeline's cache keys use for a pretrained SAE);
:func:`load_any_sae` loads either; :func:`init_tensors` turns anything a user may hold (an SAE,
a state dict, a path of either format) into the tensors :func:`cytosae.train.train_sae` starts
from (``init=``). ``"env"`` names the path in ``$CYTOSAE_SAE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.train.checkpoint import (
    CFG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_sae,
    load_sae_config,
    sae_state_tensors,
)

__all__ = [
    "SAE_ENV",
    "SAEFile",
    "init_digest",
    "init_tensors",
    "load_any_sae",
    "resolve_sae_path",
    "sae_config_of",
    "sae_file",
]

#: the variable ``"env"`` reads (``pretrained_sae="env"``, ``--init env``)
SAE_ENV = "CYTOSAE_SAE"

#: file endings read as the authors' format
OFFICIAL_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")

_PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


@dataclasses.dataclass(frozen=True)
class SAEFile:
    """A checked SAE file or folder.

    Attributes:
        path: the folder (ours) or the ``.pt`` file (the authors').
        kind: ``"folder"`` (ours) or ``"official"`` (the authors' ``.pt``).
        digest: sha256 (hex) of the content: the ``.pt`` file, or ``cfg.json`` then
            ``sae.safetensors`` of a folder (each preceded by its name).
        size: bytes on disk.
    """

    path: Path
    kind: Literal["folder", "official"]
    digest: str
    size: int

    @property
    def short(self) -> str:
        """The first 12 hex digits of :attr:`digest`."""
        return self.digest[:12]

    def describe(self) -> str:
        """``<name> (authors' .pt, sha256 1a2b3c4d5e6f)``."""
        what = "authors' .pt" if self.kind == "official" else "cytosae folder"
        return f"{self.path.name} ({what}, sha256 {self.short})"

    def load(self, *, device: str | torch.device = "cpu") -> SparseAutoencoder:
        """The SAE (eval mode); the authors' file through the restricted unpickler."""
        return load_any_sae(self.path, device=device)


def resolve_sae_path(spec: str | os.PathLike[str]) -> Path:
    """``"env"`` -> ``$CYTOSAE_SAE``; anything else as a path (``~`` expanded).

    Raises:
        FileNotFoundError: ``"env"`` without ``$CYTOSAE_SAE``.
    """
    text = os.fspath(spec)
    if text == "env":
        val = os.environ.get(SAE_ENV, "").strip()
        if not val:
            raise FileNotFoundError(
                f"pretrained SAE 'env' but ${SAE_ENV} is not set; set it to the authors' .pt "
                "or to a cytosae SAE folder (sae.safetensors + cfg.json)"
            )
        text = val
    return Path(text).expanduser()


def _sha256(files: list[Path], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    for f in files:
        if len(files) > 1:
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def sae_file(spec: str | os.PathLike[str]) -> SAEFile:
    """Check that ``spec`` names an SAE in one of the two formats and hash it (no weights loaded).

    Args:
        spec: a folder with ``sae.safetensors`` + ``cfg.json``, an authors' ``.pt`` file, or
            ``"env"`` (``$CYTOSAE_SAE``).

    Raises:
        FileNotFoundError: nothing at the path.
        CheckpointError: a folder without our two files, or a file of another kind.
    """
    path = resolve_sae_path(spec)
    if path.is_dir():
        files = [path / CFG_FILE, path / WEIGHTS_FILE]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(
                f"{path} is a folder but not a cytosae SAE: it lacks {', '.join(missing)} "
                f"(expected {CFG_FILE} + {WEIGHTS_FILE}, as written by cytosae.train.checkpoint.save_sae, "
                "or pass the authors' .pt file itself)"
            )
        kind: Literal["folder", "official"] = "folder"
    elif path.is_file():
        if path.suffix.lower() not in OFFICIAL_SUFFIXES:
            raise CheckpointError(
                f"{path}: not an SAE checkpoint (expected the authors' {'/'.join(OFFICIAL_SUFFIXES)} "
                f"file or a folder with {CFG_FILE} + {WEIGHTS_FILE})"
            )
        files, kind = [path], "official"
    else:
        raise FileNotFoundError(
            f"no SAE at {path}: expected the authors' .pt file "
            "(final_sparse_autoencoder_dinov2_vitb14_-2_resid_49152.pt) or a cytosae SAE folder"
        )
    return SAEFile(path, kind, _sha256(files), sum(f.stat().st_size for f in files))


def load_any_sae(
    spec: str | os.PathLike[str] | SAEFile, *, device: str | torch.device = "cpu"
) -> SparseAutoencoder:
    """Load an SAE of either format (eval mode): our folder, or the authors' ``.pt`` (restricted).

    Raises:
        FileNotFoundError, CheckpointError: as :func:`sae_file`, or the file does not hold an SAE
        (the message names the file).
    """
    f = sae_file(spec) if not isinstance(spec, SAEFile) else spec
    if f.kind == "folder":
        return load_sae(f.path, device=device)
    from cytosae.interop.official_sae import load_official  # interop reads the authors' format

    sae, _ = load_official(f.path, device=device)
    return sae


def sae_config_of(spec: str | os.PathLike[str]) -> SAEConfig:
    """The config of an SAE file or folder (a folder's ``cfg.json`` only; a ``.pt`` is loaded)."""
    f = sae_file(spec)
    if f.kind == "folder":
        return load_sae_config(f.path)
    return load_any_sae(f.path).cfg


def init_tensors(init: Any, cfg: SAEConfig) -> dict[str, Tensor]:
    """The parameters a run starts from, checked against ``cfg``'s shapes.

    Args:
        init: a :class:`~cytosae.model.sae.SparseAutoencoder`, a state dict (``W_enc``, ``b_enc``,
            ``W_dec``, ``b_dec``; ``threshold`` optional; the authors' ``state_dict`` is one), or a
            path (``str``/``Path``/``"env"``) to either SAE format.
        cfg: the config of the SAE being trained.

    Returns:
        ``{"W_enc", "b_enc", "W_dec", "b_dec"[, "threshold"]}`` as float32 CPU tensors.

    Raises:
        CheckpointError: missing keys, or a shape that disagrees with ``cfg`` (``d_in``, ``d_sae``).
        TypeError: ``init`` is none of these.
    """
    if isinstance(init, SparseAutoencoder):
        tensors, source = dict(sae_state_tensors(init)), "the given SAE"
    elif isinstance(init, Mapping):
        tensors, source = dict(init), "the given state dict"
    elif isinstance(init, (str, os.PathLike)):
        path = resolve_sae_path(init)
        tensors, source = dict(sae_state_tensors(load_any_sae(path))), str(path)
    else:
        raise TypeError(
            "init must be a SparseAutoencoder, a state dict or a path to an SAE "
            f"(folder or authors' .pt), got {type(init).__name__}"
        )
    missing = [k for k in _PARAMS if k not in tensors]
    if missing:
        raise CheckpointError(f"init from {source}: missing {missing} (has {sorted(tensors)})")
    want = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "b_enc": (cfg.d_sae,),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_dec": (cfg.d_in,),
    }
    for k, shape in want.items():
        got = tuple(tensors[k].shape)
        if got != shape:
            raise CheckpointError(
                f"init from {source}: {k} has shape {got}, the SAE being trained "
                f"(d_in={cfg.d_in}, d_sae={cfg.d_sae}) needs {shape}"
            )
    keep = (*_PARAMS, "threshold") if "threshold" in tensors else _PARAMS
    return {k: torch.as_tensor(tensors[k]).detach().to("cpu", torch.float32).clone() for k in keep}


def init_digest(tensors: Mapping[str, Tensor]) -> str:
    """sha256 (12 hex digits) of initial parameters, recorded in the run's ``run.json``."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu", torch.float32).contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).numpy().tobytes())
    return h.hexdigest()[:12]
