"""Token extraction: manifest + backbone -> a resumable token store (and ``cytosae extract``).

Shards are fixed blocks of ``shard_size`` rows of the input manifest; batches never cross a
shard, so the numbers in a shard depend only on the shard (and the batch size), never on
whether the run was interrupted or on which rank computed it. Rank ``r`` of ``world_size``
computes the shards ``k`` with ``k % world_size == r``; whoever finishes last (or
:func:`cytosae.store.reader.finalize_store`) writes the manifest, metadata and completion marker.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from cytosae.atomic import atomic_write_text, is_complete
from cytosae.config import JsonConfig, digest
from cytosae.data.adapters import MANIFEST_COLUMNS, manifest_digest, validate_manifest
from cytosae.data.imageio import ALPHA_MODES, ImageReadError, try_read_rgb
from cytosae.hardware import (
    available_cpus,
    check_device_name,
    cpu_has_fast_bf16,
    resolve_device,
    resolve_precision,
)
from cytosae.model.backbone import (
    ARCHS,
    PREPROCESSING,
    BackboneConfig,
    HookedBackbone,
    load_backbone,
    normalize_uint8,
    resize_224,
    to_uint8_chw,
    weights_digest_for,
)
from cytosae.store.reader import (
    STORE_SCHEMA_VERSION,
    IncompleteStoreError,
    TokenStore,
    csv_text,
    finalize_store,
    json_text,
    n_shards_for,
    shard_done,
    write_shard,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExtractConfig(JsonConfig):
    """How to run an extraction.

    Attributes:
        batch_size: images per forward pass (batches never cross a shard).
        shard_size: images per shard file (part of the store key).
        num_workers: DataLoader decode workers; -1 = :func:`default_workers` (CPU: ``min(2, cpus)``;
            CUDA: every core but one), 0 = in-process.
        device: ``auto`` (cuda if available) | ``cpu`` | ``cuda`` | ``cuda:N``.
        precision: ``auto`` (bf16 only where the hardware runs it fast: CUDA with bf16, or a
            CPU with AMX / AVX512-BF16) | ``fp32`` | ``bf16`` (part of the store key).
        strict: raise :class:`~cytosae.data.imageio.ImageReadError` on an unreadable image
            instead of skipping and listing it.
        alpha: ``drop`` (= ``convert("RGB")``, official) | ``white`` (part of the store key).
        num_threads: torch intra-op threads during extraction; 0 = all available cores.
        rank, world_size: this process's share of the shards (``k % world_size == rank``).
        wait_timeout_s: with ``world_size > 1``, how long rank 0 waits in
            :func:`extract_tokens` for the other ranks before giving up (0 = no wait).
    """

    batch_size: int = 32
    shard_size: int = 256
    num_workers: int = -1
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    strict: bool = False
    alpha: Literal["drop", "white"] = "drop"
    num_threads: int = 0
    rank: int = 0
    world_size: int = 1
    wait_timeout_s: float = 0.0

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"ExtractConfig.batch_size: must be > 0, got {self.batch_size}")
        if self.shard_size <= 0:
            raise ValueError(f"ExtractConfig.shard_size: must be > 0, got {self.shard_size}")
        if self.num_workers < -1:
            raise ValueError(f"ExtractConfig.num_workers: must be >= -1, got {self.num_workers}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"ExtractConfig.precision: 'auto'|'fp32'|'bf16', got {self.precision!r}"
            )
        check_device_name("ExtractConfig.device", self.device)
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"ExtractConfig.alpha: one of {ALPHA_MODES}, got {self.alpha!r}")
        if self.num_threads < 0:
            raise ValueError(f"ExtractConfig.num_threads: must be >= 0, got {self.num_threads}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"ExtractConfig.rank/world_size: need 0 <= rank < world_size, "
                f"got {self.rank}/{self.world_size}"
            )


# --------------------------------------------------------------------------- store key


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
    manifest: pd.DataFrame, backbone: BackboneConfig, cfg: ExtractConfig, precision: str
) -> dict[str, Any]:
    """The store's inputs (everything that changes its bytes) and its key."""
    bb = _backbone_identity(backbone)
    key_inputs = {
        "schema_version": STORE_SCHEMA_VERSION,
        "manifest_digest": manifest_digest(manifest),
        "backbone": bb,
        "preprocessing": dict(PREPROCESSING, img_size=backbone.img_size, alpha=cfg.alpha),
        "precision": precision,
        "dtype": "float16",
        "shard_size": cfg.shard_size,
    }
    key = digest("token-store", key_inputs, length=16)
    return dict(
        key_inputs,
        store_key=key,
        n_input_images=len(manifest),
        n_shards=n_shards_for(len(manifest), cfg.shard_size),
        n_tokens=bb["n_tokens"],
        d_model=bb["d_model"],
        layer=bb["layer_resolved"],
        is_random_init=bb["is_random_init"],
    )


def store_path(
    manifest: pd.DataFrame,
    backbone: BackboneConfig,
    runs_root: str | Path,
    cfg: ExtractConfig = ExtractConfig(),
) -> Path:
    """Where :func:`extract_tokens` would put this store (computes no tokens)."""
    device = resolve_device(cfg.device)
    req = build_request(manifest, backbone, cfg, resolve_precision(cfg.precision, device))
    return Path(runs_root) / "tokens" / req["store_key"]


# --------------------------------------------------------------------------- data loading


class _ImageDataset(Dataset):
    """Decode + resize to uint8 (3, S, S) in workers; normalisation happens batched later."""

    def __init__(self, paths: list[str], img_size: int, alpha: str) -> None:
        self.paths = paths
        self.img_size = img_size
        self.alpha = alpha

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        img, reason = try_read_rgb(self.paths[i], alpha=self.alpha)
        if img is None:
            return i, None, reason
        return i, to_uint8_chw(resize_224(img, self.img_size)), ""


def _collate(items: list[tuple[int, torch.Tensor | None, str]]) -> dict[str, Any]:
    kept = [(i, t) for i, t, _ in items if t is not None]
    return {
        "rows": [i for i, _ in kept],
        "pixels": torch.stack([t for _, t in kept]) if kept else None,
        "skipped": [(i, r) for i, t, r in items if t is None],
    }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def image_loader(
    paths: list[str],
    batches: list[list[int]],
    *,
    img_size: int = 224,
    alpha: str = "drop",
    workers: int = 0,
    device: torch.device | str = "cpu",
) -> DataLoader:
    """The decoding half of extraction: batches of ``{"rows", "pixels" (B, 3, S, S) uint8, "skipped"}``.

    ``batches`` lists the row indices of each batch; unreadable images come back in
    ``skipped`` as ``(row, reason)``. Used by :func:`extract_rank` and the benchmark.
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


def default_workers(device: torch.device) -> int:
    """Decode workers for ``num_workers=-1``.

    On CUDA every core but one decodes, at most 32 (the GPU outruns decoding, so decoding sets
    the pace); on a CPU two workers overlap decoding with a forward that needs the cores itself.
    """
    cpus = available_cpus()
    if device.type == "cuda":
        return max(1, min(cpus - 1, 32))
    return min(2, cpus)


class _HostCopy:
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


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast context of a resolved ``precision`` (``bf16``: torch.autocast; else none)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def forward_to_host(
    model: HookedBackbone, pixels_B3HW: torch.Tensor, device: torch.device, precision: str
) -> _HostCopy:
    """The device half of extraction: uint8 pixels go to the device (4x less than float32), are
    normalised there, run through the backbone, and start their float16 copy back to the host."""
    pixels = normalize_uint8(pixels_B3HW.to(device, non_blocking=True))
    with autocast_for(precision, device):
        return _HostCopy(model(pixels))


@dataclasses.dataclass
class _InFlight:
    """One batch between its forward and its shard."""

    k: int
    rows: list[int]
    skipped: list[list[Any]]
    tokens: _HostCopy | None

    @property
    def n(self) -> int:
        """Images of the batch, read or skipped."""
        return len(self.rows) + len(self.skipped)


class _ShardWriter:
    """Writes completed shards on a background thread, in order, so that decoding and the next
    forward overlap the write and its fsync; at most ``depth`` shards wait in memory.

    The first error (including one raised by ``on_written``) stops the writer: no later shard is
    written, and the error is raised in the caller at its next :meth:`put` or at :meth:`close`.
    """

    def __init__(
        self, folder: Path, on_written: Callable[[int], None] | None, depth: int = 2
    ) -> None:
        self._folder, self._on_written = folder, on_written
        self._queue: queue.Queue[tuple[int, np.ndarray, dict[str, Any]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cytosae-shard-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain without writing after a failure
            k, arr, info = item
            try:
                write_shard(self._folder, k, arr, info)
                if self._on_written is not None:
                    self._on_written(k)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def put(self, k: int, arr: np.ndarray, info: dict[str, Any]) -> None:
        self._raise()
        self._queue.put((k, arr, info))

    def close(self, *, reraise: bool = True) -> None:
        """Wait until every queued shard is written (or dropped after an error)."""
        self._queue.put(None)
        self._thread.join()
        if reraise:
            self._raise()


# --------------------------------------------------------------------------- extraction


def _prepare_folder(folder: Path, request: dict[str, Any], manifest: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    req_text = json_text(request)
    req_path = folder / "request.json"
    if req_path.is_file():
        if req_path.read_text() != req_text:
            raise ValueError(
                f"{req_path} exists with different inputs than this extraction (same key); "
                "delete the folder to recompute"
            )
    else:
        atomic_write_text(
            folder / "input_manifest.csv",
            csv_text(manifest.loc[:, list(MANIFEST_COLUMNS)].astype(str)),
        )
        atomic_write_text(req_path, req_text)


def extract_rank(
    manifest: pd.DataFrame,
    backbone: BackboneConfig,
    runs_root: str | Path,
    cfg: ExtractConfig = ExtractConfig(),
    *,
    progress: bool = True,
    on_shard_written: Callable[[int], None] | None = None,
    model: HookedBackbone | None = None,
) -> Path:
    """Compute this rank's missing shards; finalise the store if every shard is then done.

    Args:
        manifest: the images (columns :data:`~cytosae.data.adapters.MANIFEST_COLUMNS`).
        backbone: the backbone config.
        runs_root: cache root; the store goes to ``runs_root/tokens/<key>``.
        cfg: extraction settings (``rank``/``world_size`` select the shards).
        progress: show a progress bar (images/s, ETA).
        on_shard_written: called with the shard index after each shard is on disk (tests
            use it to inject a crash).
        model: an already loaded backbone for ``backbone`` (optional).

    Returns:
        The store folder (complete or not).
    """
    from tqdm.auto import tqdm

    validate_manifest(manifest)
    manifest = manifest.reset_index(drop=True)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    request = build_request(manifest, backbone, cfg, precision)
    folder = Path(runs_root) / "tokens" / request["store_key"]
    if is_complete(folder):
        log.info("token store %s is complete; reusing it", folder)
        return folder
    _prepare_folder(folder, request, manifest)

    n, S = len(manifest), cfg.shard_size
    todo = [
        k
        for k in range(request["n_shards"])
        if k % cfg.world_size == cfg.rank and not shard_done(folder, k)
    ]
    if not todo:
        finalize_store(folder)
        return folder
    if len(todo) < len(range(cfg.rank, request["n_shards"], cfg.world_size)):
        log.info(
            "resuming %s at shard %d (%d shard(s) left for rank %d)",
            folder,
            todo[0],
            len(todo),
            cfg.rank,
        )

    if model is None:
        model = load_backbone(backbone, device=device)
    elif model.weights_digest != request["backbone"]["weights_digest"]:
        raise ValueError(
            "model passed to extract_rank does not match the backbone config's weights"
        )
    model = model.to(device).eval()
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("bf16 on a CPU without AMX/AVX512-BF16 is emulated and slow")

    batches: list[list[int]] = []
    rows_in_shard: dict[int, int] = {}
    for k in todo:
        lo, hi = k * S, min((k + 1) * S, n)
        rows_in_shard[k] = hi - lo
        batches.extend(
            list(range(b, min(b + cfg.batch_size, hi))) for b in range(lo, hi, cfg.batch_size)
        )
    n_todo = sum(rows_in_shard.values())
    workers = default_workers(device) if cfg.num_workers < 0 else cfg.num_workers
    loader = image_loader(
        manifest["path"].astype(str).tolist(),
        batches,
        img_size=backbone.img_size,
        alpha=cfg.alpha,
        workers=workers,
        device=device,
    )
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads or available_cpus())
    log.info(
        "extracting %d image(s) in %d shard(s) to %s (%s, %s, %s, batch %d, %d worker(s), %d thread(s))",
        n_todo,
        len(todo),
        folder,
        backbone.arch,
        device,
        precision,
        cfg.batch_size,
        workers,
        torch.get_num_threads(),
    )
    t0 = time.perf_counter()
    n_skipped = 0
    shard: dict[str, Any] = {"k": None, "tokens": [], "rows": [], "skipped": [], "seen": 0}
    bar = tqdm(
        total=n_todo, unit="img", desc=f"extract {request['store_key'][:8]}", disable=not progress
    )
    writer = _ShardWriter(folder, on_shard_written)

    def finish(item: _InFlight) -> None:
        """Collect a batch whose tokens are on the host; hand a completed shard to the writer."""
        nonlocal shard
        if shard["k"] != item.k:
            shard = {"k": item.k, "tokens": [], "rows": [], "skipped": [], "seen": 0}
        shard["skipped"].extend(item.skipped)
        if item.tokens is not None:
            t16 = item.tokens.result()
            if t16 is None:
                raise FloatingPointError(
                    f"non-finite tokens (fp16 overflow?) in shard {item.k} of {folder}"
                )
            shard["tokens"].append(t16)
            shard["rows"].extend(item.rows)
        shard["seen"] += item.n
        bar.update(item.n)
        if shard["seen"] == rows_in_shard[item.k]:
            arr = (
                np.concatenate(shard["tokens"])
                if shard["tokens"]
                else np.zeros((0, model.n_tokens, model.d_model), np.float16)
            )
            writer.put(
                item.k, arr, {"shard": item.k, "rows": shard["rows"], "skipped": shard["skipped"]}
            )

    in_flight: _InFlight | None = (
        None  # the previous batch: its copy to the host overlaps this forward
    )
    try:
        with torch.inference_mode(), strict_fp32(precision == "fp32"):
            for batch in loader:
                first = batch["rows"][0] if batch["rows"] else batch["skipped"][0][0]
                skipped = []
                for row, reason in batch["skipped"]:
                    if cfg.strict:
                        raise ImageReadError(manifest.at[row, "path"], reason)
                    log.warning(
                        "skipping unreadable image %s: %s", manifest.at[row, "path"], reason
                    )
                    skipped.append([int(row), reason])
                    n_skipped += 1
                tokens = (
                    forward_to_host(model, batch["pixels"], device, precision)
                    if batch["pixels"] is not None
                    else None
                )
                item = _InFlight(
                    k=first // S,
                    rows=[int(r) for r in batch["rows"]],
                    skipped=skipped,
                    tokens=tokens,
                )
                if in_flight is not None:
                    previous, in_flight = in_flight, None
                    finish(previous)
                in_flight = item
            if in_flight is not None:
                previous, in_flight = in_flight, None
                finish(previous)
    except BaseException:
        # nothing already done is lost: the batch before the failure and every completed shard
        # still reach the disk (a failure inside finish() has already cleared in_flight)
        if in_flight is not None:
            with suppress(BaseException):
                finish(in_flight)
        writer.close(reraise=False)
        raise
    else:
        writer.close()
    finally:
        bar.close()
        torch.set_num_threads(prev_threads)
    dt = time.perf_counter() - t0
    log.info(
        "rank %d: %d image(s) in %.1f s (%.2f img/s), %d skipped",
        cfg.rank,
        n_todo,
        dt,
        n_todo / max(dt, 1e-9),
        n_skipped,
    )
    finalize_store(folder)
    return folder


def extract_tokens(
    manifest: pd.DataFrame,
    backbone: BackboneConfig,
    runs_root: str | Path,
    cfg: ExtractConfig = ExtractConfig(),
    *,
    progress: bool = True,
    on_shard_written: Callable[[int], None] | None = None,
    model: HookedBackbone | None = None,
) -> TokenStore:
    """Extract (or reuse, or resume) the token store of ``manifest`` under ``runs_root``.

    With ``world_size > 1`` this rank computes its shards; the store is returned once every
    rank has finished (rank 0 waits up to ``cfg.wait_timeout_s``).

    Raises:
        IncompleteStoreError: other ranks' shards are still missing.
        ImageReadError: an unreadable image with ``cfg.strict``.
    """
    folder = extract_rank(
        manifest,
        backbone,
        runs_root,
        cfg,
        progress=progress,
        on_shard_written=on_shard_written,
        model=model,
    )
    deadline = time.monotonic() + (cfg.wait_timeout_s if cfg.rank == 0 else 0.0)
    while not finalize_store(folder):
        if time.monotonic() >= deadline:
            raise IncompleteStoreError(
                f"{folder}: shards of other ranks are missing; run the remaining ranks, then "
                "cytosae.store.reader.finalize_store(folder) (or rerun any rank)"
            )
        time.sleep(2.0)
    return TokenStore(folder)
