"""Training one or several SAEs over a token store or an in-memory tensor.

Several SAEs (a sweep) are trained on one pass over the data: each batch is read once and fed to
every SAE (:class:`~cytosae.train.trainer.SAETrainer`). Trainer states are written every
``checkpoint_every`` steps (:mod:`cytosae.train.state`); calling :func:`train_sae` again on the
same ``out_dir`` resumes and ends bit-identical (on CPU) to an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from cytosae import ddp
from cytosae.atomic import is_complete, mark_complete
from cytosae.hardware import resolve_device
from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.train import metrics, state
from cytosae.train.checkpoint import load_sae, load_state_into, save_sae
from cytosae.train.config import TrainConfig
from cytosae.train.pretrained import init_digest, init_tensors
from cytosae.train.source import as_source, step_batches
from cytosae.train.tracking import open_wandb
from cytosae.train.trainer import SAETrainer, init_b_dec_

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "train_many", "train_sae"]


@dataclass
class TrainResult:
    """Outcome of training one SAE."""

    sae: SparseAutoencoder
    history: pd.DataFrame
    path: Path
    feature_density: Tensor | None = None  # (d_sae,) firing frequency over the last density window
    finished: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _sae_dirs(out_dir: Path, n: int, single: bool) -> list[Path]:
    return [out_dir] if single else [out_dir / f"sae_{i:02d}" for i in range(n)]


def _load_finished(out_dir: Path, dirs: Sequence[Path]) -> list[TrainResult]:
    """The results of a finished run folder, read from its files."""
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
    for tr, d in zip(trainers, dirs):
        save_sae(tr.sae, d)
        metrics.save_feature_density(tr.feature_density(), d)
    mark_complete(out_dir, {"steps": total_steps})
    state.clear_state(out_dir)


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
    """
    cfgs = list(sae_cfgs)
    if not cfgs:
        raise ValueError("train_many needs at least one SAEConfig")
    if single_layout and len(cfgs) != 1:
        raise ValueError("single_layout needs exactly one SAEConfig")
    src = as_source(data)
    for c in cfgs:
        if c.d_in != src.d_model:
            raise ValueError(
                f"SAEConfig.d_in={c.d_in} does not match the data's d_model={src.d_model}"
            )
    out = Path(out_dir)
    dirs = _sae_dirs(out, len(cfgs), single_layout)
    inits = _init_sets(init, cfgs)
    record = state.run_record(train_cfg, cfgs, src)
    if any(t is not None for t in inits):  # the record of a run without init is unchanged
        record["init"] = [None if t is None else init_digest(t) for t in inits]

    if is_complete(out):
        state.check_same_run(out, record)
        return _load_finished(out, dirs)

    ddp.maybe_init_from_env(resolve_device(train_cfg.device).type)
    device = resolve_device(train_cfg.device)  # again: under torchrun "cuda" is this rank's GPU
    rank = ddp.rank()
    trainers = [SAETrainer(c, train_cfg, device) for c in cfgs]
    start_step = state.load_state(out, trainers, record)
    if start_step is None:
        state.begin_run(out, record)
        for tr, t in zip(trainers, inits):
            if t is not None:
                load_state_into(tr.sae, t, Path("init"))
        # given weights keep their b_dec; the others get the configured data init
        init_b_dec_([tr for tr, t in zip(trainers, inits) if t is None], src, train_cfg, device)
        start_step = 0

    total, stop = train_cfg.total_steps, train_cfg.stop_step
    tok_per_step = train_cfg.batch_images * src.n_tokens
    wandb_run = open_wandb(train_cfg, record) if rank == 0 else None
    bar = tqdm(
        total=total * tok_per_step, initial=start_step * tok_per_step, unit="tok", unit_scale=True,
        disable=not progress or rank != 0, desc="train SAE" if len(cfgs) == 1 else f"train {len(cfgs)} SAEs",
    )  # fmt: skip
    shard = ddp.shard(train_cfg.batch_images, rank, ddp.world_size())
    try:
        for step, batch_BTD in step_batches(src, train_cfg, start_step, stop):
            x_ND = batch_BTD[shard].to(device, non_blocking=True).reshape(-1, src.d_model).float()
            for tr in trainers:
                tr.step(x_ND, step)
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
            every = train_cfg.checkpoint_every
            if done < total and (done == stop or (every and done % every == 0)):
                state.save_state(out, trainers, done, src, train_cfg)
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
