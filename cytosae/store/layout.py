"""The on-disk protocol of a token store: file names, key, folder preparation, shards, finalising.

This module is the one owner of what a store folder holds (``docs/token-store.md``). A store is
the folder ``<runs_root>/tokens/<key>/`` holding::

    request.json           inputs of the extraction (hashed into <key>), written first
    input_manifest.csv     the manifest that was asked for
    shard_00000.npy        float16 (n_k, T, D), rows [k*S, (k+1)*S) of the input manifest
    shard_00000.json       which input rows that shard holds, and which were skipped (why)
    ...
    manifest.csv           the images actually extracted; row i = image i of the store
    input_skipped.csv      image_id, path, reason of files the adapter refused (if any)
    skipped.csv            image_id, path, reason of unreadable images, then of refused files
    metadata.json          schema version, backbone, layer, preprocessing, sizes, digests
    COMPLETE               the project-wide completion marker (cytosae.atomic), written last

Every file is written to a temporary name in the same folder and renamed atomically, so a
reader never sees a half-written file, and a killed extraction resumes at the first shard
whose ``.json`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytosae.atomic import atomic_open, atomic_write_text, is_complete, mark_complete
from cytosae.config import digest
from cytosae.data.adapters import MANIFEST_COLUMNS, manifest_digest, skipped_table
from cytosae.model.backbone import ARCHS, PREPROCESSING, BackboneConfig, weights_digest_for

log = logging.getLogger(__name__)

STORE_SCHEMA_VERSION = 1
STORE_DTYPE = np.float16

TOKENS_DIR = "tokens"  # runs_root/tokens/<key>/
REQUEST = "request.json"
INPUT_MANIFEST = "input_manifest.csv"
MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
INPUT_SKIPPED = "input_skipped.csv"  # files the adapter refused (manifest.attrs["skipped"])
METADATA = "metadata.json"


def shard_path(folder: Path, k: int, ext: str) -> Path:
    """``folder/shard_KKKKK.<ext>`` (``ext``: ``npy`` for the tokens, ``json`` for the rows)."""
    return folder / f"shard_{k:05d}.{ext}"


def json_text(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, indent 2, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2) + "\n"


def csv_text(df: pd.DataFrame) -> str:
    """Deterministic CSV text (no index, ``\\n`` line ends)."""
    return df.to_csv(index=False, lineterminator="\n")


# --------------------------------------------------------------------------- key and shards


def n_shards_for(n_rows: int, shard_size: int) -> int:
    """Shards of a manifest of ``n_rows`` rows (at least one, possibly empty)."""
    return max(1, -(-n_rows // shard_size))


def shard_rows(k: int, n_rows: int, shard_size: int) -> range:
    """The input-manifest rows shard ``k`` covers: ``[k*S, (k+1)*S)``, cut at ``n_rows``."""
    return range(k * shard_size, min((k + 1) * shard_size, n_rows))


def _backbone_identity(cfg: BackboneConfig) -> dict[str, Any]:
    wd, random_init = weights_digest_for(cfg)
    spec = ARCHS[cfg.arch]
    return {
        "arch": cfg.arch,
        "arch_timm": spec.timm_name or "VisionTransformer",
        "layer": cfg.layer,
        "layer_resolved": cfg.resolved_layer,
        "blocks_computed": cfg.resolved_layer + 1,
        "img_size": cfg.img_size,
        "init_seed": cfg.init_seed if random_init else None,
        "d_model": spec.embed_dim,
        "n_tokens": cfg.n_tokens,
        "is_random_init": random_init,
        "weights_digest": wd,
    }


def build_request(
    manifest: pd.DataFrame,
    backbone: BackboneConfig,
    *,
    precision: str,
    alpha: str,
    shard_size: int,
) -> dict[str, Any]:
    """The store's inputs (everything that changes its bytes) and its key (``store_key``).

    Args:
        manifest: the images, validated here (the one check, in
            :func:`~cytosae.data.adapters.manifest_digest`).
        backbone: the backbone config.
        precision: the resolved compute precision (``fp32`` | ``bf16``).
        alpha: the alpha rule of the image decoding.
        shard_size: images per shard.

    Raises:
        ValueError: ``manifest`` is not a valid manifest.
    """
    bb = _backbone_identity(backbone)
    key_inputs = {
        "schema_version": STORE_SCHEMA_VERSION,
        "manifest_digest": manifest_digest(manifest),
        "backbone": bb,
        "preprocessing": dict(PREPROCESSING, img_size=backbone.img_size, alpha=alpha),
        "precision": precision,
        "dtype": "float16",
        "shard_size": shard_size,
    }
    # files the adapter refused end up in skipped.csv, so they are part of the key (only when
    # there are any: stores of manifests without refusals keep their keys)
    refused = skipped_table(manifest)
    if len(refused):
        key_inputs["input_skipped_digest"] = hashlib.sha256(csv_text(refused).encode()).hexdigest()
    key = digest("token-store", key_inputs, length=16)
    return dict(
        key_inputs,
        store_key=key,
        n_input_images=len(manifest),
        n_shards=n_shards_for(len(manifest), shard_size),
        n_tokens=bb["n_tokens"],
        d_model=bb["d_model"],
        layer=bb["layer_resolved"],
        is_random_init=bb["is_random_init"],
    )


def store_folder(runs_root: str | Path, store_key: str) -> Path:
    """The folder of the store ``store_key`` under ``runs_root``."""
    return Path(runs_root) / TOKENS_DIR / store_key


# --------------------------------------------------------------------------- writing


def prepare_folder(folder: Path, request: dict[str, Any], manifest: pd.DataFrame) -> None:
    """Create ``folder`` with its ``input_manifest.csv`` and ``request.json`` (written last), or
    check that the ``request.json`` already there is identical.

    Raises:
        ValueError: the folder holds a different request (same key, other inputs).
    """
    folder.mkdir(parents=True, exist_ok=True)
    req_text = json_text(request)
    req_path = folder / REQUEST
    if req_path.is_file():
        if req_path.read_text() != req_text:
            raise ValueError(
                f"{req_path} exists with different inputs than this extraction (same key); "
                "delete the folder to recompute"
            )
    else:
        atomic_write_text(
            folder / INPUT_MANIFEST,
            csv_text(manifest.loc[:, list(MANIFEST_COLUMNS)].astype(str)),
        )
        refused = skipped_table(manifest)
        if len(refused):
            atomic_write_text(folder / INPUT_SKIPPED, csv_text(refused))
        atomic_write_text(req_path, req_text)


def write_shard(folder: Path, k: int, tokens_NTD: np.ndarray, info: dict[str, Any]) -> None:
    """Atomically write ``shard_k.npy`` (float16) then its ``shard_k.json`` (the done flag)."""
    arr = np.ascontiguousarray(tokens_NTD, dtype=STORE_DTYPE)
    with atomic_open(shard_path(folder, k, "npy")) as f:
        np.save(f, arr, allow_pickle=False)
    atomic_write_text(shard_path(folder, k, "json"), json_text(info))


def shard_done(folder: Path, k: int) -> bool:
    """True when shard ``k`` is on disk (its ``.json`` and its ``.npy``)."""
    return shard_path(folder, k, "json").is_file() and shard_path(folder, k, "npy").is_file()


def finalize_store(folder: str | Path) -> bool:
    """Write ``manifest.csv``, ``skipped.csv``, ``metadata.json`` and the completion marker once
    every shard is done (any rank may call it; concurrent calls write identical bytes).

    Returns:
        True when the store is complete after the call, False when shards are still missing.
    """
    folder = Path(folder)
    if is_complete(folder):
        return True
    request = json.loads((folder / REQUEST).read_text())
    n_shards = int(request["n_shards"])
    missing = [k for k in range(n_shards) if not shard_done(folder, k)]
    if missing:
        log.info(
            "store %s: %d shard(s) still missing (first %s)", folder, len(missing), missing[:5]
        )
        return False
    inp = pd.read_csv(folder / INPUT_MANIFEST, dtype=str, keep_default_na=False)
    rows: list[int] = []
    skipped: list[tuple[int, str]] = []
    sizes: list[int] = []
    for k in range(n_shards):
        info = json.loads(shard_path(folder, k, "json").read_text())
        rows.extend(info["rows"])
        skipped.extend((int(r), str(reason)) for r, reason in info["skipped"])
        sizes.append(len(info["rows"]))
        npy = shard_path(folder, k, "npy")
        n_stored = np.load(npy, mmap_mode="r").shape[0]
        if n_stored != len(info["rows"]):
            raise ValueError(f"{npy} has {n_stored} rows, its .json lists {len(info['rows'])}")
    man = inp.iloc[rows].reset_index(drop=True).loc[:, list(MANIFEST_COLUMNS)]
    sk = inp.iloc[[r for r, _ in skipped]].reset_index(drop=True)
    sk_df = pd.DataFrame(
        {
            "image_id": sk["image_id"] if len(sk) else pd.Series(dtype=str),
            "path": sk["path"] if len(sk) else pd.Series(dtype=str),
            "reason": [reason for _, reason in skipped],
        }
    )
    if (folder / INPUT_SKIPPED).is_file():
        refused = pd.read_csv(folder / INPUT_SKIPPED, dtype=str, keep_default_na=False)
        sk_df = pd.concat([sk_df, refused.loc[:, list(sk_df.columns)]], ignore_index=True)
    meta = dict(request)
    meta.update(
        {
            "n_images": len(man),
            "n_skipped": len(sk_df),
            "shard_sizes": sizes,
            "manifest_digest_extracted": hashlib.sha256(csv_text(man).encode()).hexdigest(),
        }
    )
    atomic_write_text(folder / MANIFEST, csv_text(man))
    atomic_write_text(folder / SKIPPED, csv_text(sk_df))
    atomic_write_text(folder / METADATA, json_text(meta))
    mark_complete(folder)
    if len(sk_df):
        log.warning(
            "store %s: %d unreadable image(s) skipped, listed in skipped.csv", folder, len(sk_df)
        )
    return True
