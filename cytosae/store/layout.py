"""The on-disk protocol of a token store: file names, key, folder preparation, shards, finalising.

This module is the one owner of what a store folder holds (``docs/token-store.md``). A store is
the folder ``<runs_root>/tokens/<key>/`` holding::

    request.json           inputs of the extraction (hashed into <key>), written first
    input_manifest.csv     the manifest that was asked for
    shard_00000.npy        float16 (n_k, T, D), rows [k*S, (k+1)*S) of the input manifest
    shard_00000.json       which input rows that shard holds, which were skipped (why), and
                           the byte size and sha256 of its .npy
    ...
    manifest.csv           the images actually extracted; row i = image i of the store
    input_skipped.csv      image_id, path, reason of files the adapter refused (if any)
    skipped.csv            image_id, path, reason of unreadable images, then of refused files
    metadata.json          schema version, backbone, layer, preprocessing, sizes, digests
    COMPLETE               the project-wide completion marker (cytosae.atomic), written last

Every file is written to a temporary name in the same folder and renamed atomically, so a
reader never sees a half-written file, and a killed extraction resumes at the first shard
whose ``.json`` is missing. A shard whose ``.npy`` does not have the size (on every resume and
every open) or the sha256 (on resume and in :func:`verify_store`) its ``.json`` records is
damaged and is recomputed by the next extraction. One extraction writes a store at a time
(:func:`store_lock`; the ranks of one distributed extraction each hold their own lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from cytosae.atomic import (
    COMPLETE,
    atomic_open,
    atomic_write_text,
    is_complete,
    is_temp_name,
    mark_complete,
    remove_stale_temps,
)
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


class _HashingWriter:
    """A binary file wrapper that counts and hashes what goes through it (sha256)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self.sha256, self.n_bytes = f, hashlib.sha256(), 0

    def write(self, b: bytes | memoryview) -> int:
        self.sha256.update(b)
        self.n_bytes += len(b)
        return self._f.write(b)


def write_shard(folder: Path, k: int, tokens_NTD: np.ndarray, info: dict[str, Any]) -> None:
    """Atomically write ``shard_k.npy`` (float16) then its ``shard_k.json`` (the done flag),
    which records the ``.npy``'s byte size (``npy_bytes``) and sha256 (``npy_sha256``)."""
    arr = np.ascontiguousarray(tokens_NTD, dtype=STORE_DTYPE)
    with atomic_open(shard_path(folder, k, "npy")) as f:
        hw = _HashingWriter(f)
        np.save(hw, arr, allow_pickle=False)  # type: ignore[arg-type]
    info = dict(info, npy_bytes=hw.n_bytes, npy_sha256=hw.sha256.hexdigest())
    atomic_write_text(shard_path(folder, k, "json"), json_text(info))


def _npy_expected_bytes(npy: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, expected file size)`` from the header of a ``.npy`` file."""
    with open(npy, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    return tuple(shape), dtype, offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def shard_problem(folder: Path, k: int, *, checksum: bool = False) -> str | None:
    """Why shard ``k`` is not a complete, intact shard (None when it is).

    Checks that its ``.json`` and ``.npy`` exist, that the ``.npy`` has the byte size its
    ``.json`` records (and that its header's shape agrees with the size and the rows), and with
    ``checksum`` its sha256. Shards written before sizes were recorded are checked against their
    own header only.
    """
    js, npy = shard_path(folder, k, "json"), shard_path(folder, k, "npy")
    if not js.is_file():
        return "missing"
    if not npy.is_file():
        return f"{npy.name} is missing"
    try:
        info = json.loads(js.read_text())
        rows = info["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{js.name} is unreadable ({exc})"
    size = npy.stat().st_size
    want = info.get("npy_bytes")
    if want is not None and size != int(want):
        return f"{npy.name} has {size} bytes, its .json records {want} (truncated or replaced)"
    try:
        shape, _, expected = _npy_expected_bytes(npy)
    except (OSError, ValueError, EOFError) as exc:
        return f"{npy.name} has no valid .npy header ({exc})"
    if size != expected:
        return f"{npy.name} has {size} bytes, its header {shape} needs {expected} (truncated)"
    if shape and shape[0] != len(rows):
        return f"{npy.name} holds {shape[0]} images, its .json lists {len(rows)}"
    if checksum and info.get("npy_sha256") is not None:
        got = _file_sha256(npy)
        if got != info["npy_sha256"]:
            return f"{npy.name} has sha256 {got[:16]}..., its .json records {info['npy_sha256'][:16]}..."
    return None


def shard_done(folder: Path, k: int) -> bool:
    """True when shard ``k`` is on disk: its ``.json`` and a ``.npy`` of the size it records."""
    return shard_problem(folder, k) is None


def drop_damaged_shards(folder: Path, shards: range | list[int], *, checksum: bool) -> list[int]:
    """Delete the files of the shards among ``shards`` that exist but are damaged (wrong size,
    or with ``checksum`` wrong sha256), so that the extraction recomputes them; each is logged.
    Call it only while holding the store's lock. Returns the shards dropped."""
    dropped = []
    for k in shards:
        if not shard_path(folder, k, "json").is_file():
            continue
        problem = shard_problem(folder, k, checksum=checksum)
        if problem is None:
            continue
        log.warning("store %s: shard %d is damaged (%s); recomputing it", folder, k, problem)
        shard_path(folder, k, "json").unlink(missing_ok=True)  # the done flag goes first
        shard_path(folder, k, "npy").unlink(missing_ok=True)
        dropped.append(k)
    return dropped


def check_shard_files(folder: Path, shard_sizes: Any, n_tokens: int, d_model: int) -> None:
    """Check, from their headers and sizes alone (no data read), that every shard of a complete
    store holds ``shard_sizes[k]`` images of ``(n_tokens, d_model)`` float16 and is not truncated.

    Raises:
        ValueError: naming the shard, what is wrong and how to recompute it.
    """
    for k, n in enumerate(shard_sizes):
        npy = shard_path(folder, k, "npy")
        fix = "rerun the same extraction: it recomputes damaged shards"
        try:
            shape, dtype, expected = _npy_expected_bytes(npy)
            size = npy.stat().st_size
        except FileNotFoundError:
            raise ValueError(f"{npy} is missing from the token store; {fix}") from None
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{npy} is not a readable .npy file ({exc}); {fix}") from exc
        if size != expected:
            raise ValueError(
                f"{npy} is truncated or damaged: {size} bytes, its header {shape} needs "
                f"{expected}; {fix}"
            )
        if shape != (int(n), n_tokens, d_model) or dtype != STORE_DTYPE:
            raise ValueError(
                f"{npy} holds {shape} {dtype}, the store's metadata says "
                f"({int(n)}, {n_tokens}, {d_model}) float16; {fix}"
            )


def verify_store(folder: str | Path, *, finite: bool = True) -> list[str]:
    """Every problem of a token store folder, one line each (empty when it is intact).

    Reads every shard: its size and sha256 against its ``.json``, its header against the
    metadata and, with ``finite``, that every value is finite (a non-finite value names the
    image: ``image_id`` and row of ``manifest.csv``).
    """
    folder = Path(folder)
    problems: list[str] = []
    if not (folder / REQUEST).is_file():
        return [f"{folder}: no {REQUEST}: not a token store"]
    request = json.loads((folder / REQUEST).read_text())
    for k in range(int(request["n_shards"])):
        p = shard_problem(folder, k, checksum=True)
        if p is not None:
            problems.append(f"{folder}: shard {k}: {p}")
    if not is_complete(folder):
        problems.append(f"{folder}: no {COMPLETE} marker (unfinished extraction)")
        return problems
    meta = json.loads((folder / METADATA).read_text())
    try:
        check_shard_files(folder, meta["shard_sizes"], int(meta["n_tokens"]), int(meta["d_model"]))
    except ValueError as exc:
        problems.append(str(exc))
        return problems
    if finite:
        man = pd.read_csv(folder / MANIFEST, dtype=str, keep_default_na=False)
        offset = 0
        for k, n in enumerate(meta["shard_sizes"]):
            arr = np.load(shard_path(folder, k, "npy"), mmap_mode="r")
            for i in range(0, int(n), 64):
                block = np.asarray(arr[i : i + 64])
                bad = np.flatnonzero(~np.isfinite(block).reshape(block.shape[0], -1).all(1))
                for b in bad:
                    row = offset + i + int(b)
                    problems.append(
                        f"{shard_path(folder, k, 'npy')}: non-finite tokens of image "
                        f"{man['image_id'][row]!r} (store row {row})"
                    )
            offset += int(n)
    return problems


# --------------------------------------------------------------------------- one writer


@contextmanager
def store_lock(folder: Path, rank: int = 0, world_size: int = 1) -> Iterator[None]:
    """Hold the lock of a store being written by rank ``rank`` of ``world_size``.

    Each rank of one distributed extraction holds its own lock (they write disjoint shards); a
    second extraction of the same store (the same rank, or another world size) is refused with
    :class:`cytosae.locks.FolderLocked` naming the folder and the holder. Temporary files a
    killed run left behind are removed: all of them with a single writer, those of this rank's
    shards otherwise. Re-entrant within one thread.
    """
    from cytosae.locks import FolderLock, lock_path

    lock = FolderLock(folder, "token store", tag=f"rank{rank}of{world_size}.")
    lock.acquire()
    try:
        stem = lock_path(folder).name[: -len("lock")]  # ".<key>."
        for other in folder.parent.glob(f"{stem}rank*of*.lock"):
            if other.name.endswith(f"of{world_size}.lock"):
                continue  # a rank of this extraction (or this very lock)
            peer = FolderLock(folder, "token store", tag=other.name[len(stem) : -len("lock")])
            if peer.is_held_elsewhere():
                raise peer.locked_error()
        if folder.is_dir():
            _remove_stale_temps_of_rank(folder, rank, world_size)
        yield
    finally:
        lock.release()


def _remove_stale_temps_of_rank(folder: Path, rank: int, world_size: int) -> None:
    if world_size == 1:
        remove_stale_temps(folder)
        return
    for p in list(folder.iterdir()):
        name = p.name
        is_shard_temp = is_temp_name(name) and name.startswith(".shard_") and name[7:12].isdigit()
        if is_shard_temp and int(name[7:12]) % world_size == rank:
            p.unlink(missing_ok=True)


def unmark_complete(folder: Path) -> None:
    """Remove the completion marker of a store found damaged (call it under the store's lock)."""
    (folder / COMPLETE).unlink(missing_ok=True)


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
            "store %s: %d shard(s) still missing or damaged (first %s)",
            folder,
            len(missing),
            missing[:5],
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
