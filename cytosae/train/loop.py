"""Training one or several SAEs over a token store or an in-memory tensor.

Several SAEs (a sweep) are trained on one pass over the data: each batch is read once and fed to
every SAE (:class:`~cytosae.train.trainer.SAETrainer`). Trainer states are written every
``checkpoint_every`` steps (:mod:`cytosae.train.state`); calling :func:`train_sae` again on the
same ``out_dir`` resumes and ends bit-identical (on CPU) to an uninterrupted run.

Faults (docs/sae.md, "When a run fails"): one process trains into a folder at a time
(:mod:`cytosae.locks`); an SAE too large for the memory is refused before anything is allocated;
non-finite tokens (named by image), a non-finite loss or parameter, or the divergence rule of
:mod:`cytosae.train.metrics` stop the run with :class:`TrainingDiverged`, keeping the last good
trainer state and writing no completion marker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cytosae import ddp
from cytosae.atomic import is_complete, mark_complete, remove_stale_temps
from cytosae.hardware import resolve_device
from cytosae.locks import FolderLock, FolderLocked, remove_stale_lock
from cytosae.model.sae import SAEConfig, SparseAutoencoder, check_fits
from cytosae.train import metrics, state
from cytosae.train.checkpoint import (
    CheckpointError,
    load_sae,
    load_sae_config,
    load_state_into,
    save_sae,
)
from cytosae.train.config import TrainConfig
from cytosae.train.pretrained import init_digest, init_tensors
from cytosae.train.source import DataStream, as_source, b_dec_sample, step_batches
from cytosae.train.tracking import open_wandb
from cytosae.train.trainer import NonFiniteError, SAETrainer, init_b_dec_, parameters_finite

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "TrainingDiverged", "train_many", "train_sae"]


@dataclass
class TrainResult:
    """Outcome of training one SAE."""

    sae: SparseAutoencoder
    history: pd.DataFrame
    path: Path
    feature_density: Tensor | None = None  # (d_sae,) firing frequency over the last density window
    finished: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingDiverged(RuntimeError):
    """A run stopped because it diverged (non-finite tokens, loss or parameters, or the
    divergence rule of :mod:`cytosae.train.metrics`); its last good trainer state is kept.

    Attributes:
        step: the step at which it was detected.
        reason: what broke, without the run's paths (e.g. ``"explained variance -14.13 < -10
            for 3 consecutive log rows (up to step 115)"``).
    """

    def __init__(self, message: str, *, step: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


def _sae_dirs(out_dir: Path, n: int, single: bool) -> list[Path]:
    return [out_dir] if single else [out_dir / f"sae_{i:02d}" for i in range(n)]


def _load_finished(
    out_dir: Path, dirs: Sequence[Path], cfgs: Sequence[SAEConfig]
) -> list[TrainResult]:
    """The results of a finished run folder, read from its files (each SAE's ``cfg.json`` must
    be the requested config: a folder whose files disagree with its ``run.json`` is an error)."""
    for d, c in zip(dirs, cfgs):
        have = load_sae_config(d)
        if have != c:
            diff = sorted(k for k, v in c.to_dict().items() if have.to_dict().get(k) != v)
            raise CheckpointError(
                f"{d / 'cfg.json'} describes another SAE than the one requested and recorded in "
                f"{out_dir / state.RUN_FILE} (differs in {diff}); the folder is inconsistent "
                "(two runs wrote it?): use a new out_dir or delete this one"
            )
    hist = metrics.read_history(out_dir)
    results = [
        TrainResult(load_sae(d), metrics.sae_history(hist, i), d, metrics.load_feature_density(d))
        for i, d in enumerate(dirs)
    ]
    log.info("%s is finished; loaded %d SAE(s)", out_dir, len(results))
    return results


def _write_final(
    out_dir: Path, trainers: Sequence[SAETrainer], dirs: Sequence[Path], total_steps: int
) -> None:
    """Write every SAE and its density files, mark the run complete, drop the trainer state."""
    for i, tr in enumerate(trainers):
        if not parameters_finite(tr.sae):
            raise _diverged(out_dir, total_steps, f"SAE {i} has non-finite parameters")
    for tr, d in zip(trainers, dirs):
        save_sae(tr.sae, d)
        metrics.save_feature_density(tr.feature_density(), d)
    mark_complete(out_dir, {"steps": total_steps})
    state.clear_state(out_dir)


# ------------------------------------------------------------------------- faults (docs/sae.md)
def _diverged(
    out_dir: Path, step: int, reason: str, tcfg: TrainConfig | None = None
) -> TrainingDiverged:
    """The error to raise: what stopped the run, what was kept, and what to change."""
    last = state.latest_state(out_dir)
    if last is not None:
        kept = (
            f"its last good trainer state (step {last[1]}, {last[0]}) was kept: fix the cause and "
            "rerun the same command to resume from it"
        )
    else:
        kept = "no trainer state had been written yet (see checkpoint_every)"
    hint = ""
    if tcfg is not None:
        hint = (
            f"; if the tokens are fine, lower the learning rate (lr={tcfg.lr:g}) or the L1 "
            "coefficient"
        )
    message = (
        f"{out_dir}: training diverged at step {step}: {reason}. The run stopped without a "
        f"completion marker; {kept}{hint}"
    )
    return TrainingDiverged(message, step=step, reason=reason)


def _image_rows(src: Any, tcfg: TrainConfig, step: int | None) -> list[int] | None:
    """The store rows the stream reads at ``step`` (``None``: the b_dec init's images), or None
    when the source cannot tell."""
    try:
        stream = DataStream(int(src.n_images), tcfg)
        rows = stream.b_dec_images() if step is None else stream.step_images(step)
        return [int(i) for i in rows]
    except Exception:  # noqa: BLE001 - only a diagnosis
        return None


def _describe_images(src: Any, rows: Sequence[int]) -> str:
    """``image 'x' (store row 12, shard_00002.npy)`` for each store row (as far as known)."""
    man = getattr(src, "manifest", None)
    sizes = (getattr(src, "metadata", None) or {}).get("shard_sizes")
    out = []
    for r in rows[:5]:
        text = f"store row {r}"
        if sizes is not None:
            k = int(np.searchsorted(np.cumsum(sizes), r, side="right"))
            text += f", shard_{k:05d}.npy"
        if man is not None and "image_id" in man:
            text = f"image {str(man['image_id'].iloc[r])!r} ({text})"
        out.append(text)
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ", ".join(out) + more


def _nonfinite_images(src: Any, tcfg: TrainConfig, step: int | None, batch: Tensor) -> str:
    """Which images of ``batch`` (the stream's batch of ``step``; ``None``: the b_dec init's
    images) hold NaN or inf, in words ("" when every token is finite)."""
    bad = (~torch.isfinite(batch)).flatten(1).any(1).nonzero().flatten().tolist()
    if not bad:
        return ""
    rows = _image_rows(src, tcfg, step)
    if rows is not None and len(rows) != batch.shape[0]:
        rows = None
    where = getattr(src, "path", None)
    store = f" of the token store {where}" if where is not None else ""
    if rows is not None:
        cand = [rows[i] for i in bad]
        try:  # confirm from the source itself that these images are the non-finite ones
            ok = not bool(torch.isfinite(src.get(cand)).flatten(1).all(1).any())
        except Exception:  # noqa: BLE001
            ok = hasattr(src, "order")
        if ok:
            return f"non-finite token values in {_describe_images(src, cand)}{store}"
    return f"non-finite token values in {len(bad)} image(s) of the batch{store}"


def _check_tokens_after(
    exc: NonFiniteError, src: Any, tcfg: TrainConfig, step: int, batch_BTD: Tensor
) -> str:
    found = _nonfinite_images(src, tcfg, step, batch_BTD)
    return f"{found} (the token store is damaged: recompute it)" if found else str(exc)


def _lock_run(out: Path, device: torch.device) -> FolderLock | None:
    """Rank 0 takes the lock of the run folder; every rank learns whether it could."""
    lock, err = None, None
    if ddp.rank() == 0:
        try:
            lock = FolderLock(out, "training run folder").acquire()
        except (FolderLocked, OSError) as exc:  # every rank must learn of it
            err = exc
    if ddp.is_distributed():
        flag = torch.tensor([0.0 if err else 1.0], device=device)
        ddp.all_reduce_sum_(flag)
        if float(flag) < ddp.world_size():  # rank 0 holds the only vote that can fail
            if err is not None:
                raise err
            raise FolderLocked(f"{out}: rank 0 could not lock the run folder (see its log)")
    elif err is not None:
        raise err
    return lock


def train_many(
    data: Any,
    sae_cfgs: Sequence[SAEConfig],
    train_cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    single_layout: bool = False,
    init: Sequence[Any] | None = None,
) -> list[TrainResult]:
    """Train several SAEs on one pass over ``data`` (each batch read once, fed to every SAE).

    Args:
        data: ``Tensor (N, T, D)`` / ``(N, D)`` or a TokenStore-like object.
        sae_cfgs: One config per SAE; all need ``d_in == data.d_model``.
        train_cfg: Optimisation/data/logging settings shared by all SAEs.
        out_dir: Run folder: ``run.json``, ``metrics.jsonl`` (column ``sae`` = index), ``trainer_state/``
            while running, ``sae_XX/`` (or the folder itself when ``single_layout``) with
            ``sae.safetensors``, ``cfg.json``, ``density_histogram.json``, ``feature_density.safetensors``,
            and the completion marker (:data:`cytosae.atomic.COMPLETE`) at the end.
        progress: Show a tqdm bar (tokens/s).
        single_layout: Write the one SAE's files directly into ``out_dir``.
        init: Initial weights, one entry per config (``None``: the usual initialisation): an
            SAE, a state dict or a path to either SAE format (see :func:`train_sae`).

    Returns:
        One :class:`TrainResult` per config, in order.

    Raises:
        FolderLocked: another process is training into ``out_dir``.
        TrainingDiverged: non-finite tokens, loss or parameters, or the divergence rule
            (:data:`cytosae.train.metrics.DIVERGENCE_MIN_EV`); the last good state is kept.
        ValueError: a config that does not match the data or cannot fit in memory.
    """
    cfgs = list(sae_cfgs)
    if not cfgs:
        raise ValueError("train_many needs at least one SAEConfig")
    if single_layout and len(cfgs) != 1:
        raise ValueError("single_layout needs exactly one SAEConfig")
    src = as_source(data)
    where = getattr(src, "path", None)
    for c in cfgs:
        if c.d_in != src.d_model:
            raise ValueError(
                f"SAEConfig.d_in={c.d_in} does not match the data's d_model={src.d_model}"
                + (f" (token store {where})" if where is not None else "")
            )
    out = Path(out_dir)
    dirs = _sae_dirs(out, len(cfgs), single_layout)
    inits = _init_sets(init, cfgs)
    record = state.run_record(train_cfg, cfgs, src)
    if any(t is not None for t in inits):  # the record of a run without init is unchanged
        record["init"] = [None if t is None else init_digest(t) for t in inits]

    if is_complete(out):
        state.check_same_run(out, record)
        results = _load_finished(out, dirs, cfgs)
        if (out / state.STATE_DIR).exists() and ddp.rank() == 0:
            with contextlib.suppress(FolderLocked), FolderLock(out, "training run folder"):
                state.clear_state(out)  # left by a run killed between its last two writes
        if ddp.rank() == 0:
            remove_stale_lock(out)  # left by a run killed after it finished
        return results

    ddp.maybe_init_from_env(resolve_device(train_cfg.device).type)
    device = resolve_device(train_cfg.device)  # again: under torchrun "cuda" is this rank's GPU
    rank = ddp.rank()
    per_rank = train_cfg.batch_images // max(ddp.world_size(), 1)
    check_fits(cfgs, device, tokens_per_step=per_rank * src.n_tokens, training=True)
    lock = _lock_run(out, device)
    try:
        if rank == 0 and out.is_dir():
            remove_stale_temps(out, recursive=True)  # left by a killed run (we hold the lock)
        return _train_locked(src, cfgs, train_cfg, out, dirs, record, device, progress, inits)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(
    src: Any,
    cfgs: list[SAEConfig],
    train_cfg: TrainConfig,
    out: Path,
    dirs: list[Path],
    record: dict[str, Any],
    device: torch.device,
    progress: bool,
    inits: list[Any],
) -> list[TrainResult]:
    rank = ddp.rank()
    trainers = [SAETrainer(c, train_cfg, device) for c in cfgs]
    start_step = state.load_state(out, trainers, record)
    if start_step is None:
        state.begin_run(out, record)
        for tr, t in zip(trainers, inits):
            if t is not None:
                load_state_into(tr.sae, t, Path("init"))
        # given weights keep their b_dec; the others get the configured data init
        fresh = [tr for tr, t in zip(trainers, inits) if t is None]
        try:
            init_b_dec_(fresh, src, train_cfg, device)
        except NonFiniteError as exc:
            found = _nonfinite_images(src, train_cfg, None, b_dec_sample(src, train_cfg))
            reason = f"{found} (the token store is damaged: recompute it)" if found else str(exc)
            raise _diverged(out, 0, reason) from exc
        start_step = 0

    total, stop = train_cfg.total_steps, train_cfg.stop_step
    tok_per_step = train_cfg.batch_images * src.n_tokens
    wandb_run = open_wandb(train_cfg, record) if rank == 0 else None
    bar = tqdm(
        total=total * tok_per_step, initial=start_step * tok_per_step, unit="tok", unit_scale=True,
        disable=not progress or rank != 0, desc="train SAE" if len(cfgs) == 1 else f"train {len(cfgs)} SAEs",
    )  # fmt: skip
    shard = ddp.shard(train_cfg.batch_images, rank, ddp.world_size())
    watches = [metrics.DivergenceWatch() for _ in trainers]
    try:
        for step, batch_BTD in step_batches(src, train_cfg, start_step, stop):
            x_ND = batch_BTD[shard].to(device, non_blocking=True).reshape(-1, src.d_model).float()
            try:
                for tr in trainers:
                    tr.step(x_ND, step)
            except NonFiniteError as exc:  # steps are counted from 1 in messages, as in metrics
                reason = _check_tokens_after(exc, src, train_cfg, step, batch_BTD)
                raise _diverged(out, step + 1, reason, train_cfg) from exc
            done = step + 1
            bar.update(tok_per_step)
            if done % train_cfg.log_every == 0 or done == total:
                lr = train_cfg.lr_at(step)
                rows = [
                    {"sae": i, **tr.log_row(done, lr), "tokens": done * tok_per_step}
                    for i, tr in enumerate(trainers)
                ]
                if rank == 0:
                    metrics.append_rows(out, rows)
                    bar.set_postfix(mse=f"{rows[0]['mse']:.3g}", l0=f"{rows[0]['l0']:.1f}")
                    if wandb_run is not None:
                        wandb_run.log_rows(rows, done)
                _check_divergence(out, trainers, watches, rows, done, train_cfg)
            every = train_cfg.checkpoint_every
            if done < total and (done == stop or (every and done % every == 0)):
                _save_state_if_good(out, trainers, watches, done, src, train_cfg)
    finally:
        bar.close()
        if wandb_run is not None:
            wandb_run.finish()

    finished = stop == total
    if finished and rank == 0:
        _write_final(out, trainers, dirs, total)
    ddp.barrier()
    hist = metrics.read_history(out)
    results = []
    for i, (tr, d) in enumerate(zip(trainers, dirs)):
        tr.sae.eval()
        results.append(
            TrainResult(
                tr.sae, metrics.sae_history(hist, i), d, tr.feature_density(), finished=finished
            )
        )
    return results


def _check_divergence(
    out: Path,
    trainers: Sequence[SAETrainer],
    watches: Sequence[metrics.DivergenceWatch],
    rows: Sequence[dict[str, Any]],
    done: int,
    tcfg: TrainConfig,
) -> None:
    """Apply the divergence rule to the log rows just written (same result on every rank)."""
    for i, (tr, watch, row) in enumerate(zip(trainers, watches, rows)):
        reason = watch.update(row)
        if reason is None and not parameters_finite(tr.sae):
            reason = "non-finite parameters"
        if reason is not None:
            who = f"SAE {i}: " if len(trainers) > 1 else ""
            raise _diverged(out, done, who + reason, tcfg)


def _save_state_if_good(
    out: Path,
    trainers: Sequence[SAETrainer],
    watches: Sequence[metrics.DivergenceWatch],
    done: int,
    src: Any,
    tcfg: TrainConfig,
) -> None:
    """Write the trainer state unless a parameter is not finite (an error) or a log row broke
    the divergence rule since the last healthy row (then the older state is kept)."""
    for i, tr in enumerate(trainers):
        if not parameters_finite(tr.sae):
            raise _diverged(out, done, f"SAE {i} has non-finite parameters", tcfg)
    if any(w.streak for w in watches):
        log.warning(
            "%s: not writing the trainer state at step %d: the last log row broke the "
            "divergence rule; the previous state is kept",
            out,
            done,
        )
        return
    state.save_state(out, trainers, done, src, tcfg)


def train_sae(
    data: Any,
    sae_cfg: SAEConfig | Sequence[SAEConfig],
    train_cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    init: Any = None,
) -> TrainResult | list[TrainResult]:
    """Train one SAE (files directly in ``out_dir``) or, given a list of configs, several on one pass.

    Resumes from the trainer state in ``out_dir`` when there is one; on a finished ``out_dir`` it
    only loads. See :func:`train_many` for the layout.

    Args:
        data: Your activations as a ``Tensor`` ``(N, T, D)`` (N images of T tokens) or ``(N, D)``
            (one token each), or a token store (:class:`cytosae.store.TokenStore`).
        sae_cfg: One :class:`~cytosae.model.sae.SAEConfig` (``d_in`` = D; any width with
            ``n_latents``), or a list of them.
        train_cfg: The :class:`~cytosae.train.config.TrainConfig`.
        out_dir: The run folder.
        progress: Show a progress bar.
        init: Initial weights instead of the random init and data-initialised ``b_dec``, e.g. to
            continue from the authors' release or to start from another implementation's
            weights: a :class:`~cytosae.model.sae.SparseAutoencoder`, a state dict (``W_enc``
            ``(D, d_sae)``, ``b_enc``, ``W_dec`` ``(d_sae, D)``, ``b_dec``), or a path to either SAE
            format (our folder or the authors' ``.pt``; ``"env"``: ``$CYTOSAE_SAE``). Shapes must
            match ``sae_cfg``. Its digest is recorded in ``run.json``. With several configs, a
            list with one entry (or ``None``) per config.

    Example:
        >>> res = train_sae(torch.randn(64, 5, 16), SAEConfig(d_in=16, n_latents=50),
        ...                 TrainConfig(batch_images=8, total_images=64), "out", init=other_sae)
    """
    if isinstance(sae_cfg, SAEConfig):
        return train_many(
            data,
            [sae_cfg],
            train_cfg,
            out_dir,
            progress=progress,
            single_layout=True,
            init=None if init is None else [init],
        )[0]
    return train_many(data, list(sae_cfg), train_cfg, out_dir, progress=progress, init=init)


def _init_sets(init: Sequence[Any] | None, cfgs: Sequence[SAEConfig]) -> list[Any]:
    """One checked tensor dict (or None) per config."""
    if init is None:
        return [None] * len(cfgs)
    if isinstance(init, (str, Path)) or not isinstance(init, Sequence):
        raise TypeError(
            "train_many(init=...) takes one entry per SAE config (a list); "
            "train_sae(init=...) takes a single SAE, state dict or path"
        )
    if len(init) != len(cfgs):
        raise ValueError(f"init has {len(init)} entries for {len(cfgs)} SAE configs")
    return [None if x is None else init_tensors(x, c) for x, c in zip(init, cfgs)]
