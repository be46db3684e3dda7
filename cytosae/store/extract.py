"""The extraction driver: manifest + backbone -> a resumable token store (and ``cytosae extract``).

Shards are fixed blocks of ``shard_size`` rows of the input manifest; batches never cross a
shard, so the numbers in a shard depend only on the shard (and the batch size), never on
whether the run was interrupted or on which rank computed it. Rank ``r`` of ``world_size``
computes the shards ``k`` with ``k % world_size == r``; whoever finishes last (or
:func:`cytosae.store.layout.finalize_store`) writes the manifest, metadata and completion marker.

The stages have one module each: the folder protocol (:mod:`cytosae.store.layout`), decoding
(:mod:`cytosae.store.loader`), the forward and host copy (:mod:`cytosae.store.device`) and the
shard writer thread (:mod:`cytosae.store.writer`); this module plans the shards and runs them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from cytosae.atomic import is_complete
from cytosae.config import JsonConfig
from cytosae.data.adapters import is_deliberate_skip
from cytosae.data.imageio import ALPHA_MODES, UnreadableImagesError
from cytosae.hardware import (
    available_cpus,
    check_device_name,
    cpu_has_fast_bf16,
    resolve_device,
    resolve_precision,
)
from cytosae.locks import remove_stale_lock
from cytosae.model.backbone import BackboneConfig, HookedBackbone, load_backbone
from cytosae.store.device import HostCopy, forward_to_host, strict_fp32
from cytosae.store.layout import (
    INPUT_MANIFEST,
    INPUT_SKIPPED,
    REQUEST,
    build_request,
    drop_damaged_shards,
    finalize_store,
    prepare_folder,
    shard_done,
    shard_path,
    shard_problem,
    shard_rows,
    store_folder,
    store_lock,
    unmark_complete,
)
from cytosae.store.loader import default_workers, image_loader
from cytosae.store.reader import IncompleteStoreError, TokenStore
from cytosae.store.writer import ShardWriter

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
        strict: fail instead of skipping and listing unusable images: the run raises
            :class:`~cytosae.data.imageio.UnreadableImagesError` naming every one of them (files
            the adapter refused, except the deliberate ones, before anything is computed;
            unreadable images at the end of the run, whose shards are then not written while
            every other shard is; the skipped images of a store it would reuse, at once).
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
        if not self.wait_timeout_s >= 0 or self.wait_timeout_s == float("inf"):
            raise ValueError(
                f"ExtractConfig.wait_timeout_s: must be a finite number of seconds >= 0, "
                f"got {self.wait_timeout_s}"
            )


def store_path(
    manifest: pd.DataFrame,
    backbone: BackboneConfig,
    runs_root: str | Path,
    cfg: ExtractConfig = ExtractConfig(),
) -> Path:
    """Where :func:`extract_tokens` would put this store (computes no tokens)."""
    device = resolve_device(cfg.device)
    return store_folder(runs_root, _request(manifest, backbone, cfg, device)["store_key"])


def _request(
    manifest: pd.DataFrame, backbone: BackboneConfig, cfg: ExtractConfig, device: torch.device
) -> dict[str, Any]:
    """The store request of an extraction on ``device`` (validates the manifest)."""
    return build_request(
        manifest,
        backbone,
        precision=resolve_precision(cfg.precision, device),
        alpha=cfg.alpha,
        shard_size=cfg.shard_size,
    )


@dataclasses.dataclass
class _InFlight:
    """One batch between its forward and its shard."""

    rows: list[int]
    skipped: list[list[Any]]
    tokens: HostCopy | None

    @property
    def first_row(self) -> int:
        """The batch's first input row, read or skipped (batches never cross a shard)."""
        return self.rows[0] if self.rows else self.skipped[0][0]

    @property
    def n(self) -> int:
        """Images of the batch, read or skipped."""
        return len(self.rows) + len(self.skipped)


class _ShardAssembler:
    """Collects batches into shards and hands each completed shard to the writer.

    The newest batch stays in flight (its float16 copy to the host still running) while the next
    one is computed: :meth:`add` collects the batch before it, :meth:`flush` the last one. A
    batch whose collection fails is lost with every batch after it, so after an error no later
    shard reaches the writer.

    Args:
        folder: the store folder (named in errors).
        writer: where completed shards go.
        rows_in_shard: input rows of each shard to compute (read or skipped).
        shard_size: images per shard (``first_row // shard_size`` is a batch's shard).
        shape_TD: the tokens' shape per image, for a shard without readable images.
        on_batch: called with the number of images of each collected batch (progress).
        strict: a shard with a skipped image is not written (strict mode: it is computed again
            once its files are fixed); ``bad`` collects the skipped rows either way.
    """

    def __init__(
        self,
        folder: Path,
        writer: ShardWriter,
        rows_in_shard: dict[int, int],
        shard_size: int,
        shape_TD: tuple[int, int],
        on_batch: Callable[[int], None],
        strict: bool = False,
    ) -> None:
        self._folder, self._writer, self._on_batch = folder, writer, on_batch
        self._strict = strict
        self._rows_in_shard, self._shard_size, self._shape_TD = rows_in_shard, shard_size, shape_TD
        self._in_flight: _InFlight | None = None
        self._k: int | None = None
        self._tokens: list[np.ndarray] = []
        self._rows: list[int] = []
        self._skipped: list[list[Any]] = []
        self._seen = 0
        self.n_skipped = 0
        self.bad: list[tuple[int, str]] = []  # (input row, reason) of every skipped image
        self.written = 0  # shards handed to the writer
        self.withheld: list[int] = []  # strict: shards not written because of a skipped image

    def add(self, item: _InFlight) -> None:
        """Collect the batch in flight, then keep ``item`` in flight."""
        self.flush()
        self._in_flight = item

    def flush(self) -> None:
        """Collect the batch in flight, if any."""
        item, self._in_flight = self._in_flight, None
        if item is not None:
            self._collect(item)

    def _collect(self, item: _InFlight) -> None:
        k = item.first_row // self._shard_size
        if k != self._k:
            self._k, self._tokens, self._rows, self._skipped, self._seen = k, [], [], [], 0
        self._skipped.extend(item.skipped)
        self.n_skipped += len(item.skipped)
        self.bad.extend((int(r), str(reason)) for r, reason in item.skipped)
        if item.tokens is not None:
            tokens_BTD = item.tokens.result()
            if tokens_BTD is None:
                raise FloatingPointError(
                    f"non-finite tokens (fp16 overflow?) in shard {k} of {self._folder}"
                )
            self._tokens.append(tokens_BTD)
            self._rows.extend(item.rows)
        self._seen += item.n
        self._on_batch(item.n)
        if self._seen == self._rows_in_shard[k]:
            if self._strict and self._skipped:
                self.withheld.append(k)
                return
            tokens_NTD = (
                np.concatenate(self._tokens)
                if self._tokens
                else np.zeros((0, *self._shape_TD), np.float16)
            )
            self._writer.put(
                k, tokens_NTD, {"shard": k, "rows": self._rows, "skipped": self._skipped}
            )
            self.written += 1


def _skipped_rows(skipped: list[tuple[int, str]], paths: list[str]) -> list[list[Any]]:
    """``[row, reason]`` of a batch's unreadable images, each logged."""
    out = []
    for row, reason in skipped:
        log.warning("skipping image %s: %s", paths[row], reason)
        out.append([int(row), reason])
    return out


def _strict_check_inputs(refused: list[tuple[str, str]]) -> None:
    """Strict mode: the files the adapter refused (except the deliberate ones) are an error."""
    bad = [(p, r) for p, r in refused if not is_deliberate_skip(r)]
    if bad:
        raise UnreadableImagesError(
            bad,
            "They were refused while reading the dataset folder; nothing was computed. Fix or "
            "remove them (--allow-outside-root where paths outside the root are meant), or run "
            "without --strict to skip them and list them in skipped.csv.",
            what=f"{len(bad)} file(s) of the dataset cannot be used",
        )


def _strict_check_reused(folder: Path, paths: list[str], n_shards: int) -> None:
    """Strict mode: the shards already on disk (a store it would reuse or resume) must not list
    skipped images."""
    bad: list[tuple[str, str]] = []
    shards: list[str] = []
    for k in range(n_shards):
        if not shard_done(folder, k):
            continue
        info = json.loads(shard_path(folder, k, "json").read_text())
        if info["skipped"]:
            shards.append(shard_path(folder, k, "json").name)
            bad.extend((paths[int(r)], str(reason)) for r, reason in info["skipped"])
    if bad:
        done = "store" if is_complete(folder) else "partial store"
        raise UnreadableImagesError(
            bad,
            f"The {done} {folder}, which this run would reuse, was computed without --strict and "
            f"skipped them ({len(shards)} shard(s): {', '.join(shards[:5])}"
            f"{' ...' if len(shards) > 5 else ''}). Delete the folder (or those shards) to "
            "compute it again in strict mode, or run without --strict.",
            what=f"{len(bad)} image(s) of the store it would reuse were skipped",
        )


def _discard_unstarted(folder: Path) -> None:
    """Remove a folder this call prepared when not one shard reached it (a refused run leaves
    no half-made store behind)."""
    if any(folder.glob("shard_*.json")):
        return
    for name in (REQUEST, INPUT_SKIPPED, INPUT_MANIFEST):
        with suppress(OSError):
            (folder / name).unlink(missing_ok=True)
    with suppress(OSError):
        folder.rmdir()


def _ready_model(
    model: HookedBackbone | None,
    backbone: BackboneConfig,
    request: dict[str, Any],
    device: torch.device,
    precision: str,
) -> HookedBackbone:
    """``model`` (checked against the request's weights) or a freshly loaded backbone, on
    ``device`` in eval mode."""
    if model is None:
        model = load_backbone(backbone, device=device)
    elif model.weights_digest != request["backbone"]["weights_digest"]:
        raise ValueError(
            "model passed to extract_rank does not match the backbone config's weights"
        )
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("bf16 on a CPU without AMX/AVX512-BF16 is emulated and slow")
    return model.to(device).eval()


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
    refused = list(manifest.attrs.get("skipped") or [])
    manifest = manifest.reset_index(drop=True)
    device = resolve_device(cfg.device)
    request = _request(manifest, backbone, cfg, device)
    folder = store_folder(runs_root, request["store_key"])
    if cfg.strict:
        _strict_check_inputs(refused)
        _strict_check_reused(folder, manifest["path"].astype(str).tolist(), request["n_shards"])
    mine = range(cfg.rank, request["n_shards"], cfg.world_size)
    if is_complete(folder) and not _damaged(folder, mine):
        log.info("token store %s is complete; reusing it", folder)
        # the lock file a job killed after finishing left behind
        remove_stale_lock(folder, f"rank{cfg.rank}of{cfg.world_size}.")
        return folder
    precision = request["precision"]
    if any(not shard_done(folder, k) for k in mine):
        # the backbone is loaded before the folder is made: refused weights leave nothing behind
        model = _ready_model(model, backbone, request, device, precision)
    created = not (folder / REQUEST).is_file()
    # ---- one writer per store (each rank its own lock): fault handling, docs/token-store.md
    folder.mkdir(parents=True, exist_ok=True)
    with store_lock(folder, cfg.rank, cfg.world_size):
        if is_complete(folder):
            damaged = _damaged(folder, mine)
            if not damaged:
                return folder  # finished by another job meanwhile
            log.warning(
                "token store %s is complete but shard(s) %s are damaged; recomputing them",
                folder,
                damaged,
            )
            unmark_complete(folder)
        prepare_folder(folder, request, manifest)
        drop_damaged_shards(folder, mine, checksum=True)  # sizes and sha256 of a resume
        # ---- end of the fault-handling block
        todo = [k for k in mine if not shard_done(folder, k)]
        if todo:
            if len(todo) < len(mine):
                log.info(
                    "resuming %s at shard %d (%d shard(s) left for rank %d)",
                    folder,
                    todo[0],
                    len(todo),
                    cfg.rank,
                )
            model = _ready_model(model, backbone, request, device, precision)
            try:
                _compute_shards(
                    folder,
                    manifest,
                    todo,
                    model,
                    backbone,
                    cfg,
                    device=device,
                    precision=precision,
                    progress=progress,
                    on_shard_written=on_shard_written,
                )
            except BaseException:
                if created and cfg.world_size == 1:
                    _discard_unstarted(folder)
                raise
        finalize_store(folder)
    return folder


def _damaged(folder: Path, shards: range) -> list[int]:
    """The shards among ``shards`` whose files are missing or have the wrong size."""
    return [k for k in shards if shard_problem(folder, k) is not None]


def _compute_shards(
    folder: Path,
    manifest: pd.DataFrame,
    todo: list[int],
    model: HookedBackbone,
    backbone: BackboneConfig,
    cfg: ExtractConfig,
    *,
    device: torch.device,
    precision: str,
    progress: bool,
    on_shard_written: Callable[[int], None] | None,
) -> None:
    """Decode, forward and write the shards ``todo``: the three stages overlap (decoding in
    workers, the host copy one batch behind the forward, writing on a thread). On any error the
    batch in flight and every completed shard still reach the disk, and the error propagates."""
    from tqdm.auto import tqdm

    rows = {k: shard_rows(k, len(manifest), cfg.shard_size) for k in todo}
    B = cfg.batch_size
    batches = [list(r[i : i + B]) for r in rows.values() for i in range(0, len(r), B)]
    n_todo = sum(len(r) for r in rows.values())
    workers = default_workers(device) if cfg.num_workers < 0 else cfg.num_workers
    paths = manifest["path"].astype(str).tolist()
    loader = image_loader(
        paths, batches, img_size=backbone.img_size, alpha=cfg.alpha, workers=workers, device=device
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
        B,
        workers,
        torch.get_num_threads(),
    )
    t0 = time.perf_counter()
    bar = tqdm(total=n_todo, unit="img", desc=f"extract {folder.name[:8]}", disable=not progress)
    writer = ShardWriter(folder, on_shard_written)
    shards = _ShardAssembler(
        folder,
        writer,
        {k: len(r) for k, r in rows.items()},
        cfg.shard_size,
        (model.n_tokens, model.d_model),
        on_batch=bar.update,
        strict=cfg.strict,
    )
    notes: list[tuple[str, str]] = []
    try:
        with torch.inference_mode(), strict_fp32(precision == "fp32"):
            for batch in loader:
                skipped = _skipped_rows(batch["skipped"], paths)
                for row, note in batch["notes"]:
                    log.info("%s: %s", paths[row], note)
                    notes.append((paths[row], note))
                pixels = batch["pixels"]
                tokens = (
                    None if pixels is None else forward_to_host(model, pixels, device, precision)
                )
                shards.add(_InFlight([int(r) for r in batch["rows"]], skipped, tokens))
            shards.flush()
    except BaseException:
        # nothing already done is lost: the batch in flight and every completed shard still
        # reach the disk (a batch whose collection failed is dropped, with all after it)
        with suppress(BaseException):
            shards.flush()
        writer.close(reraise=False)
        raise
    else:
        writer.close()
    finally:
        bar.close()
        torch.set_num_threads(prev_threads)
    dt = time.perf_counter() - t0
    if notes:
        log.warning(
            "%d image(s) kept with an extreme aspect ratio, squashed by the square resize: %s%s",
            len(notes),
            "; ".join(f"{p}: {n}" for p, n in notes[:3]),
            " ..." if len(notes) > 3 else "",
        )
    if cfg.strict and shards.bad:
        kept = (
            f"{shards.written} completed shard(s) without them were written to {folder} and "
            "are kept"
            if shards.written
            else "every shard of this run holds one of them"
        )
        raise UnreadableImagesError(
            [(paths[r], reason) for r, reason in shards.bad],
            f"Strict mode writes no shard that holds one of them ({len(shards.withheld)} "
            f"shard(s) not written); {kept}. Fix or remove these files and run again (only the "
            "missing shards are computed), or run without --strict to skip them and list them "
            "in skipped.csv.",
            what=f"{len(shards.bad)} image(s) cannot be read",
        )
    log.info(
        "rank %d: %d image(s) in %.1f s (%.2f img/s), %d skipped",
        cfg.rank,
        n_todo,
        dt,
        n_todo / max(dt, 1e-9),
        shards.n_skipped,
    )


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
        UnreadableImagesError: unusable images with ``cfg.strict`` (a ``ValueError`` and an
            :class:`~cytosae.data.imageio.ImageReadError`; names every one, see
            :class:`ExtractConfig`).
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
    if not finalize_store(folder):
        with store_lock(folder, cfg.rank, cfg.world_size):  # still this rank's writer
            while not finalize_store(folder):
                if time.monotonic() >= deadline:
                    raise IncompleteStoreError(
                        f"{folder}: shards of other ranks are missing; run the remaining ranks, "
                        "then cytosae.store.finalize_store(folder) (or rerun any rank)"
                    )
                time.sleep(2.0)
    return TokenStore(folder)
