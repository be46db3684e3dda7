"""Resume state of a run folder: ``run.json`` (what the run is) and ``trainer_state/`` (where it is).

``trainer_state/step_XXXXXXXXX/`` holds, per SAE, ``sae_<i>.safetensors`` (parameters ``param.*``,
Adam moments and step ``adam.<param>.<key>``, dead counters, metric accumulators), plus
``rng.safetensors`` (torch RNG) and ``state.json`` (step, data position, numpy RNG, the scalar
accumulators and Adam's param groups); the folders are written and swapped by
:func:`cytosae.train.checkpoint.save_state_dir`, so nothing is pickled and a crash never leaves a
half-written state. A run resumed from it ends bit-identical (on CPU) to an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cytosae import ddp
from cytosae.atomic import atomic_write_text
from cytosae.model.sae import SAEConfig
from cytosae.train import metrics
from cytosae.train.checkpoint import (
    CheckpointError,
    load_state_dir,
    load_state_into,
    read_tensors,
    sae_state_tensors,
    save_state_dir,
)
from cytosae.train.config import TrainConfig
from cytosae.train.source import TokenSource, data_position
from cytosae.train.trainer import SAETrainer

log = logging.getLogger(__name__)

__all__ = [
    "RESUME_FREE_FIELDS",
    "RUN_FILE",
    "STATE_DIR",
    "begin_run",
    "check_same_run",
    "clear_state",
    "latest_state",
    "load_state",
    "run_record",
    "save_state",
]

STATE_DIR = "trainer_state"
RUN_FILE = "run.json"

#: Fields of TrainConfig that may change between a run and its resumption.
RESUME_FREE_FIELDS = ("stop_after_steps", "checkpoint_every", "wandb_project", "log_every")


# --------------------------------------------------------------------------------------- run.json
def run_record(tcfg: TrainConfig, cfgs: Sequence[SAEConfig], src: TokenSource) -> dict[str, Any]:
    """What ``run.json`` says about a run: the configs and the data's digest and shape."""
    return {
        "schema_version": 1,
        "train": tcfg.to_dict(),
        "saes": [c.to_dict() for c in cfgs],
        "data": {
            "digest": str(getattr(src, "digest", "")),
            "n_images": int(src.n_images),
            "n_tokens": int(src.n_tokens),
            "d_model": int(src.d_model),
        },
    }


def check_same_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless ``out_dir/run.json`` describes the run ``record``.

    The fields in :data:`RESUME_FREE_FIELDS` may differ.
    """
    path = out_dir / RUN_FILE
    old = json.loads(path.read_text())

    def strip(rec: dict[str, Any]) -> dict[str, Any]:
        r = json.loads(json.dumps(rec))
        for k in RESUME_FREE_FIELDS:
            r["train"].pop(k, None)
        return r

    if strip(old) != strip(record):
        diff = [k for k in ("train", "saes", "data") if strip(old)[k] != strip(record)[k]]
        raise CheckpointError(
            f"{path} describes a different run (differs in {diff}); use a new out_dir or delete the old one"
        )


def begin_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Start a fresh run in ``out_dir`` (rank 0): write ``run.json``, drop an old history."""
    if ddp.rank() == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / RUN_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        metrics.clear_history(out_dir)


# --------------------------------------------------------------------------------------- trainer state
def _trainer_tensors(tr: SAETrainer) -> dict[str, Tensor]:
    t: dict[str, Tensor] = {f"param.{k}": v for k, v in sae_state_tensors(tr.sae).items()}
    t["since_fired"] = tr.since_fired
    t["acc_fire"] = tr.acc_fire
    t["hist_fire"] = tr.hist_fire
    names = [n for n, _ in tr.sae.named_parameters()]
    sd = tr.opt.state_dict()
    for i, st in sd["state"].items():
        for k, v in st.items():
            t[f"adam.{names[i]}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
    return t


def _trainer_meta(tr: SAETrainer) -> dict[str, Any]:
    pg = tr.opt.state_dict()["param_groups"]
    return {
        "last_density": tr.last_density,
        "acc": tr.acc,
        "hist_tokens": tr.hist_tokens,
        "param_groups": json.loads(json.dumps(pg, default=str)),
    }


def _restore_trainer(
    tr: SAETrainer, tensors: dict[str, Tensor], meta: dict[str, Any], source: Path
) -> None:
    params = {k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")}
    load_state_into(tr.sae, params, source)
    tr.since_fired.copy_(tensors["since_fired"])
    tr.acc_fire.copy_(tensors["acc_fire"])
    tr.hist_fire.copy_(tensors["hist_fire"])
    tr.last_density = float(meta["last_density"])
    tr.acc = {k: float(v) for k, v in meta["acc"].items()}
    tr.hist_tokens = float(meta["hist_tokens"])
    names = [n for n, _ in tr.sae.named_parameters()]
    state: dict[int, dict[str, Tensor]] = {}
    for i, name in enumerate(names):
        st = {k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(f"adam.{name}.")}
        if st:
            state[i] = st
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    tr.opt.load_state_dict({"state": state, "param_groups": groups})


def save_state(
    out_dir: Path,
    trainers: Sequence[SAETrainer],
    step: int,
    src: TokenSource,
    tcfg: TrainConfig,
) -> None:
    """Write the state after ``step`` steps (rank 0; every rank waits for it)."""
    if ddp.rank() == 0:
        np_state = np.random.get_state()  # noqa: NPY002 - the legacy global RNG, saved for resume
        meta = {
            "step": step,
            "data_position": data_position(src, tcfg, step),
            "numpy_rng": [
                np_state[0],
                np_state[1].tolist(),
                *[x.item() if hasattr(x, "item") else x for x in np_state[2:]],
            ],
            "saes": [_trainer_meta(tr) for tr in trainers],
        }
        tensors = {f"sae_{i}": _trainer_tensors(tr) for i, tr in enumerate(trainers)}
        tensors["rng"] = {"torch": torch.get_rng_state()}
        save_state_dir(out_dir / STATE_DIR, f"step_{step:09d}", tensors, meta)
    ddp.barrier()


def load_state(out_dir: Path, trainers: Sequence[SAETrainer], record: dict[str, Any]) -> int | None:
    """Resume from the latest state in ``out_dir``, if there is one.

    Checks that ``run.json`` describes ``record``, loads every trainer, restores the torch and numpy
    RNGs and (rank 0) cuts the history back to the state's step.

    Returns:
        The steps already done, or None when ``out_dir`` holds no trainer state.
    """
    found = load_state_dir(out_dir / STATE_DIR)
    if found is None:
        return None
    folder, meta = found
    check_same_run(out_dir, record)
    for i, tr in enumerate(trainers):
        _restore_trainer(tr, read_tensors(folder / f"sae_{i}.safetensors"), meta["saes"][i], folder)
    step = int(meta["step"])
    torch.set_rng_state(read_tensors(folder / "rng.safetensors")["torch"])
    np_state = meta["numpy_rng"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))  # noqa: NPY002
    log.info("resuming %s at step %d", out_dir, step)
    if ddp.rank() == 0:
        metrics.truncate_history(out_dir, step)
    return step


def latest_state(out_dir: Path) -> tuple[Path, int] | None:
    """``(folder, step)`` of the trainer state a resume would start from, or None."""
    try:
        found = load_state_dir(out_dir / STATE_DIR)
    except CheckpointError:
        return None
    if found is None:
        return None
    folder, meta = found
    return folder, int(meta.get("step", -1))


def clear_state(out_dir: Path) -> None:
    """Remove ``trainer_state/`` (once the run's final files are written)."""
    shutil.rmtree(out_dir / STATE_DIR, ignore_errors=True)
