"""SAE checkpoints in our format (safetensors + cfg.json) and trainer-state folders.

Our format (``schema_version`` 1)::

    dir/sae.safetensors   W_enc (d_in, d_sae), b_enc (d_sae), W_dec (d_sae, d_in), b_dec (d_in), threshold ()
    dir/cfg.json          {"schema_version": 1, "kind": "cytosae.SparseAutoencoder", "sae": {SAEConfig fields}}

Trainer states are folders of safetensors + JSON written atomically (temp folder, rename, then an
atomically replaced pointer file ``LATEST``); nothing is pickled, and nothing but the
``.safetensors`` and ``.json`` files named here is ever read: a ``.pt`` or pickle dropped into a
state or SAE folder is ignored, and one renamed to a ``.safetensors`` name is refused by the
safetensors parser (which holds no code) with a :class:`CheckpointError`.

The authors' pickled format is read and written by :mod:`cytosae.interop.official_sae`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from cytosae.atomic import atomic_dir, atomic_path, atomic_write_text, normal_mode
from cytosae.model.sae import SAEConfig, SparseAutoencoder, config_from_dict

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WEIGHTS_FILE = "sae.safetensors"
CFG_FILE = "cfg.json"
KIND = "cytosae.SparseAutoencoder"


#: names of trainer-state folders (a pointer to anything else is refused, e.g. ``../x``)
_STATE_NAME = re.compile(r"step_\d{9}")


class CheckpointError(ValueError):
    """A checkpoint file is missing, malformed or incompatible (the message names the file)."""


# --------------------------------------------------------------------------------------- helpers
def _save_file(
    tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file`` whose I/O failures (a full disk) are an ``OSError`` (the
    atomic writers turn them into a :class:`cytosae.atomic.WriteError` naming the file) and whose
    file gets the ordinary permissions (safetensors creates it ``0o600``)."""
    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(path),
            metadata=metadata,
        )
    except SafetensorError as exc:
        m = re.search(r"os error (\d+)", str(exc))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc
    normal_mode(path)


def atomic_save_tensors(
    tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """``safetensors`` save through :func:`cytosae.atomic.atomic_path`."""
    with atomic_path(path) as tmp:
        _save_file(tensors, tmp, metadata)


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Load a safetensors file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"could not read safetensors file {path}: {exc}") from exc


# --------------------------------------------------------------------------------------- our format
def sae_state_tensors(sae: SparseAutoencoder) -> dict[str, Tensor]:
    """The tensors of our format (no copies): ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``, ``threshold``."""
    return {
        "W_enc": sae.W_enc.data,
        "b_enc": sae.b_enc.data,
        "W_dec": sae.W_dec.data,
        "b_dec": sae.b_dec.data,
        "threshold": sae.threshold,
    }


def expected_shapes(cfg: SAEConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of our format for an SAE of config ``cfg``."""
    return {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "b_enc": (cfg.d_sae,),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_dec": (cfg.d_in,),
        "threshold": (),
    }


def save_sae(sae: SparseAutoencoder, directory: str | Path) -> Path:
    """Write ``sae.safetensors`` and ``cfg.json`` (with ``schema_version``) into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(
        sae_state_tensors(sae), d / WEIGHTS_FILE, metadata={"schema_version": str(SCHEMA_VERSION)}
    )
    cfg = {"schema_version": SCHEMA_VERSION, "kind": KIND, "sae": sae.cfg.to_dict()}
    atomic_write_text(d / CFG_FILE, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return d


def load_sae_config(directory: str | Path) -> SAEConfig:
    """Read and validate ``cfg.json`` of a saved SAE."""
    p = Path(directory) / CFG_FILE
    if not p.is_file():
        raise CheckpointError(f"missing file {p}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is not valid JSON: {exc}") from exc
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{p}: unsupported schema_version {version!r} (this cytosae reads <= {SCHEMA_VERSION})"
        )
    if data.get("kind") != KIND or not isinstance(data.get("sae"), dict):
        raise CheckpointError(f"{p}: not a cytosae SAE config (kind={data.get('kind')!r})")
    try:
        return config_from_dict(data["sae"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{p}: invalid SAE config: {exc}") from exc


def load_state_into(sae: SparseAutoencoder, tensors: dict[str, Tensor], source: Path) -> None:
    """Copy ``tensors`` into ``sae`` after checking keys and shapes; errors name ``source``."""
    want = expected_shapes(sae.cfg)
    missing = sorted(set(want) - set(tensors) - {"threshold"})
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        raise CheckpointError(f"{source}: missing keys {missing}, unexpected keys {extra}")
    for k, shape in want.items():
        if k not in tensors:
            continue
        if tuple(tensors[k].shape) != shape:
            raise CheckpointError(
                f"{source}: {k} has shape {tuple(tensors[k].shape)}, expected {shape} from the config"
            )
    with torch.no_grad():
        for k in want:
            if k in tensors:
                getattr(sae, k).copy_(tensors[k].to(torch.float32))


def load_sae(directory: str | Path, *, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE written by :func:`save_sae` (validates keys and shapes)."""
    d = Path(directory)
    cfg = load_sae_config(d)
    sae = SparseAutoencoder(cfg)
    load_state_into(sae, read_tensors(d / WEIGHTS_FILE), d / WEIGHTS_FILE)
    return sae.to(device).eval()


# --------------------------------------------------------------------------------------- trainer state
def save_state_dir(
    root: Path, name: str, tensors: dict[str, dict[str, Tensor]], meta: dict[str, Any]
) -> Path:
    """Atomically write a trainer state folder ``root/name`` and point ``root/LATEST`` at it.

    ``tensors`` maps a file stem to the tensors stored in ``<stem>.safetensors``; ``meta`` goes to
    ``state.json``. Older state folders are removed after the pointer moved.
    """
    root = Path(root)
    final = root / name
    with atomic_dir(final) as tmp:
        for stem, ts in tensors.items():
            _save_file(ts, tmp / f"{stem}.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    atomic_write_text(root / "LATEST", json.dumps({"state": name}) + "\n")
    for other in root.iterdir():
        if other.is_dir() and other.name != name:
            shutil.rmtree(other, ignore_errors=True)
    return final


def load_state_dir(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """Return ``(folder, meta)`` of the latest trainer state under ``root``, or None if there is none."""
    pointer = Path(root) / "LATEST"
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["state"]
        if not isinstance(name, str) or not _STATE_NAME.fullmatch(name):
            raise KeyError(f"not a state folder name: {name!r}")
        folder = Path(root) / name
        meta = json.loads((folder / "state.json").read_text())
        if not isinstance(meta, dict):
            raise KeyError("state.json does not hold an object")
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"corrupt trainer state pointed to by {pointer}: {exc}; delete {Path(root)} to "
            "restart the run from scratch"
        ) from exc
    return folder, meta


__all__ = [
    "CheckpointError",
    "atomic_save_tensors",
    "expected_shapes",
    "load_sae",
    "load_sae_config",
    "load_state_dir",
    "load_state_into",
    "read_tensors",
    "sae_state_tensors",
    "save_sae",
    "save_state_dir",
]
