"""Training loop for one or several SAEs over a token store or an in-memory tensor.

The step is the authors' (see docs/sae.md): decoder rows renormalised at the start of the step,
ghost-grad dead mask from the steps since each latent last fired, backward, gradient parallel to
the decoder rows removed, Adam with a linear warm-up ``lr * min(1, (step + 1) / warmup)``.

Several SAEs (a sweep) are trained on one pass over the data: each batch is read once and fed to
every SAE. Trainer states are written every ``checkpoint_every`` steps; calling :func:`train_sae`
again on the same ``out_dir`` resumes and ends bit-identical (on CPU) to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cytosae import ddp
from cytosae.atomic import atomic_write_text, is_complete, mark_complete
from cytosae.config import JsonConfig
from cytosae.hardware import check_device_name, resolve_device
from cytosae.model.geomedian import init_b_dec
from cytosae.model.sae import SAEConfig, SAELoss, SparseAutoencoder
from cytosae.model.sparse_ops import sparse_relu_losses
from cytosae.train.checkpoint import (
    CheckpointError,
    atomic_save_tensors,
    load_sae,
    load_state_dir,
    load_state_into,
    read_tensors,
    save_sae,
    save_state_dir,
)

log = logging.getLogger(__name__)

STATE_DIR = "trainer_state"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
HIST_BINS = np.arange(
    -8.0, 0.5, 0.5
)  # log10 firing-frequency bin edges; never-fired latents counted apart

# Fields of TrainConfig that may change between a run and its resumption.
_RESUME_FREE_FIELDS = ("stop_after_steps", "checkpoint_every", "wandb_project", "log_every")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Optimisation, data order, logging and checkpointing of a training run.

    Attributes:
        lr: Adam learning rate (paper 4e-4); betas (0.9, 0.999), no weight decay.
        lr_warmup_steps: Linear warm-up: the LR multiplier at step s (0-based) is ``min(1, (s+1)/W)``.
        batch_images: Images per global step (paper 64; all T tokens of each image are used).
        total_images: Images seen in the run (paper "1,000,000 training tokens" = images);
            ``total_images // batch_images`` steps.
        data_seed: Seed of the data order (the store's ``iter_batches(seed=...)``).
        reshuffle_each_epoch: False (authors): every pass uses the same shuffled order.
        b_dec_init_images: Images of the first shuffled batch used for the b_dec init (authors 64).
        log_every: Steps per metrics row.
        checkpoint_every: Steps between trainer-state checkpoints (0: only at the end).
        dense_threshold: A latent is "dense" when it fires on more than this fraction of the tokens
            of a log interval.
        density_window_steps: The latent-density histogram counts firings over the last this many steps.
        sparse_mode: "auto" (switch to the sparse step when the last step's density is below
            ``sparse_density_threshold``; CPU only), "dense" or "sparse".
        sparse_density_threshold: Density (L0 / d_sae) below which "auto" uses the sparse step.
        autocast: "none" or "bf16" (``torch.autocast``; loss terms in float32; never a GradScaler).
        device: "auto" | "cpu" | "cuda".
        stop_after_steps: Stop (without finishing) after this many steps in total; 0 = run to the end.
        wandb_project: Log to wandb when non-empty (wandb imported only then).
    """

    schema_version: ClassVar[int] = 1

    lr: float = 4e-4
    lr_warmup_steps: int = 500
    adam_betas: tuple[float, float] = (0.9, 0.999)
    batch_images: int = 64
    total_images: int = 1_000_000
    data_seed: int = 42
    reshuffle_each_epoch: bool = False
    b_dec_init_images: int = 64
    log_every: int = 50
    checkpoint_every: int = 1000
    dense_threshold: float = 0.1
    density_window_steps: int = 100
    sparse_mode: Literal["auto", "dense", "sparse"] = "auto"
    sparse_density_threshold: float = 0.02
    autocast: Literal["none", "bf16"] = "none"
    device: str = "auto"
    stop_after_steps: int = 0
    wandb_project: str = ""

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.lr_warmup_steps < 0:
            raise ValueError(
                f"TrainConfig.lr_warmup_steps must be >= 0, got {self.lr_warmup_steps}"
            )
        if self.batch_images <= 0:
            raise ValueError(f"TrainConfig.batch_images must be > 0, got {self.batch_images}")
        if self.total_images < self.batch_images:
            raise ValueError(
                f"TrainConfig.total_images ({self.total_images}) must be >= batch_images ({self.batch_images})"
            )
        if self.log_every <= 0:
            raise ValueError(f"TrainConfig.log_every must be > 0, got {self.log_every}")
        if self.checkpoint_every < 0:
            raise ValueError(
                f"TrainConfig.checkpoint_every must be >= 0, got {self.checkpoint_every}"
            )
        if self.sparse_mode not in ("auto", "dense", "sparse"):
            raise ValueError(
                f"TrainConfig.sparse_mode must be auto|dense|sparse, got {self.sparse_mode!r}"
            )
        if self.autocast not in ("none", "bf16"):
            raise ValueError(f"TrainConfig.autocast must be none|bf16, got {self.autocast!r}")
        check_device_name("TrainConfig.device", self.device)
        if self.stop_after_steps < 0:
            raise ValueError(
                f"TrainConfig.stop_after_steps must be >= 0, got {self.stop_after_steps}"
            )

    @property
    def total_steps(self) -> int:
        return self.total_images // self.batch_images


# --------------------------------------------------------------------------------------- data
class TokenSource(Protocol):
    """What the trainer needs from a token store (cytosae.store.reader.TokenStore satisfies it)."""

    n_images: int
    n_tokens: int
    d_model: int
    digest: str

    def iter_batches(
        self,
        batch_images: int,
        *,
        shuffle: bool = True,
        seed: int = 42,
        epoch: int = 0,
        start_batch: int = 0,
        drop_last: bool = True,
    ) -> Iterator[Tensor]: ...


class TensorTokens:
    """In-memory tokens ``(N, T, D)`` (or ``(N, D)``, one token per "image") with the store protocol."""

    def __init__(self, tokens: Tensor) -> None:
        if tokens.ndim == 2:
            tokens = tokens[:, None, :]
        if tokens.ndim != 3:
            raise ValueError(f"tokens must be (N, T, D) or (N, D), got shape {tuple(tokens.shape)}")
        self.tokens = tokens.detach().float().contiguous()
        self.n_images, self.n_tokens, self.d_model = (int(s) for s in self.tokens.shape)
        h = hashlib.sha256(str(tuple(self.tokens.shape)).encode())
        h.update(memoryview(self.tokens.cpu().numpy()).cast("B"))
        self.digest = h.hexdigest()[:12]

    def order(self, shuffle: bool, seed: int, epoch: int) -> Tensor:
        if not shuffle:
            return torch.arange(self.n_images)
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        return torch.randperm(self.n_images, generator=g)

    def iter_batches(
        self,
        batch_images: int,
        *,
        shuffle: bool = True,
        seed: int = 42,
        epoch: int = 0,
        start_batch: int = 0,
        drop_last: bool = True,
    ) -> Iterator[Tensor]:
        idx = self.order(shuffle, seed, epoch)
        n_batches = (
            self.n_images // batch_images if drop_last else math.ceil(self.n_images / batch_images)
        )
        for b in range(start_batch, n_batches):
            yield self.tokens[idx[b * batch_images : (b + 1) * batch_images]]


def as_source(data: Any) -> TokenSource:
    """Wrap a tensor into :class:`TensorTokens`; pass a store through."""
    if isinstance(data, Tensor):
        return TensorTokens(data)
    for attr in ("iter_batches", "n_images", "n_tokens", "d_model"):
        if not hasattr(data, attr):
            raise TypeError(
                f"training data must be a Tensor or a TokenStore-like object; {type(data).__name__} lacks {attr}"
            )
    return data


# --------------------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """Outcome of training one SAE."""

    sae: SparseAutoencoder
    history: pd.DataFrame
    path: Path
    feature_density: Tensor | None = None  # (d_sae,) firing frequency over the last density window
    finished: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- one SAE
_SCALARS = (
    "loss",
    "mse",
    "l1",
    "ghost",
    "aux",
    "l0_sum",
    "sse",
    "sst",
    "n_tokens",
    "steps",
    "sparse_steps",
)


class _SAETrainer:
    """Parameters, optimiser, dead counters and metric accumulators of one SAE."""

    def __init__(self, cfg: SAEConfig, tcfg: TrainConfig, device: torch.device) -> None:
        self.cfg, self.tcfg, self.device = cfg, tcfg, device
        self.sae = SparseAutoencoder(cfg).to(device)
        fused = device.type in ("cpu", "cuda")
        self.opt = torch.optim.Adam(
            self.sae.parameters(), lr=tcfg.lr, betas=tuple(tcfg.adam_betas), fused=fused
        )
        S = cfg.d_sae
        self.since_fired = torch.zeros(S, dtype=torch.long, device=device)
        self.last_density = 1.0
        self.acc: dict[str, float] = dict.fromkeys(_SCALARS, 0.0)
        self.acc_fire = torch.zeros(S, dtype=torch.float64, device=device)
        self.hist_fire = torch.zeros(S, dtype=torch.float64, device=device)
        self.hist_tokens = 0.0

    # ------------------------------------------------------------------ step
    def use_sparse(self) -> bool:
        t = self.tcfg
        if self.cfg.activation != "relu" or self.cfg.l1_weighting != "none" or t.autocast != "none":
            return False
        if t.sparse_mode == "sparse":
            return True
        if t.sparse_mode == "dense" or self.device.type != "cpu":
            return False
        return self.last_density < t.sparse_density_threshold

    def step(self, x_ND: Tensor, step: int) -> None:
        sae, cfg, tcfg = self.sae, self.cfg, self.tcfg
        sae.train()
        if cfg.normalize_decoder:
            sae.set_decoder_norm_to_unit_norm()
        dead_mask = None
        if (cfg.activation == "relu" and cfg.use_ghost_grads) or cfg.activation != "relu":
            dead_mask = self.since_fired > cfg.dead_feature_window
        mult = min(1.0, (step + 1) / tcfg.lr_warmup_steps) if tcfg.lr_warmup_steps > 0 else 1.0
        for g in self.opt.param_groups:
            g["lr"] = tcfg.lr * mult
        self.opt.zero_grad(set_to_none=True)
        sparse = self.use_sparse()
        if tcfg.autocast == "bf16":
            ctx: Any = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            out: SAELoss = (
                sparse_relu_losses(sae, x_ND, dead_mask) if sparse else sae.losses(x_ND, dead_mask)
            )
        out.loss.backward()
        ddp.average_gradients_(sae.parameters())
        if cfg.normalize_decoder:
            sae.remove_gradient_parallel_to_decoder_directions()
        self.opt.step()
        self._update_stats(x_ND, out, sparse, step)

    @torch.no_grad()
    def _update_stats(self, x_ND: Tensor, out: SAELoss, sparse: bool, step: int) -> None:
        x64 = x_ND.double()
        n = float(x_ND.shape[0])
        sse = (out.x_hat_ND.detach().double() - x64).pow(2).sum()
        head = torch.stack(
            [
                out.loss.detach().double(),
                out.mse.detach().double(),
                out.l1.detach().double(),
                out.ghost.detach().double(),
                out.aux.detach().double(),
                out.l0_sum.double(),
                sse,
                x64.pow(2).sum(),
                torch.tensor(n, dtype=torch.float64, device=x_ND.device),
            ]
        )
        vec = torch.cat([head, x64.sum(0), out.fire_counts_S.double()])
        ddp.all_reduce_sum_(vec)
        w = ddp.world_size()
        loss, mse, l1, ghost, aux, l0_sum, sse_g, s2, n_g = (float(v) for v in vec[:9])
        D = x_ND.shape[1]
        s1 = vec[9 : 9 + D]
        fire = vec[9 + D :]
        sst = s2 - float((s1 * s1).sum()) / n_g
        a = self.acc
        a["loss"] += loss / w
        a["mse"] += mse / w
        a["l1"] += l1 / w
        a["ghost"] += ghost / w
        a["aux"] += aux / w
        a["l0_sum"] += l0_sum
        a["sse"] += sse_g
        a["sst"] += sst
        a["n_tokens"] += n_g
        a["steps"] += 1
        a["sparse_steps"] += float(sparse)
        self.acc_fire += fire
        self.since_fired += 1
        self.since_fired[fire > 0] = 0
        self.last_density = l0_sum / (n_g * self.cfg.d_sae)
        if step >= self.tcfg.total_steps - self.tcfg.density_window_steps:
            self.hist_fire += fire
            self.hist_tokens += n_g

    def log_row(self, step: int, lr: float) -> dict[str, Any]:
        a = self.acc
        steps = max(a["steps"], 1.0)
        n = max(a["n_tokens"], 1.0)
        nmse = a["sse"] / a["sst"] if a["sst"] > 0 else float("nan")
        row = {
            "step": step,
            "loss": a["loss"] / steps,
            "mse": a["mse"] / steps,
            "l1": a["l1"] / steps,
            "ghost": a["ghost"] / steps,
            "aux": a["aux"] / steps,
            "l0": a["l0_sum"] / n,
            "nmse": nmse,
            "explained_variance": 1.0 - nmse,
            "dead_frac": float((self.since_fired > self.cfg.dead_feature_window).double().mean()),
            "dense_frac": float((self.acc_fire / n > self.tcfg.dense_threshold).double().mean()),
            "sparse_step_frac": a["sparse_steps"] / steps,
            "lr": lr,
        }
        self.acc = dict.fromkeys(_SCALARS, 0.0)
        self.acc_fire.zero_()
        return row

    # ------------------------------------------------------------------ state
    def state_tensors(self) -> dict[str, Tensor]:
        t: dict[str, Tensor] = {f"param.{k}": v for k, v in _sae_tensors(self.sae).items()}
        t["since_fired"] = self.since_fired
        t["acc_fire"] = self.acc_fire
        t["hist_fire"] = self.hist_fire
        names = [n for n, _ in self.sae.named_parameters()]
        sd = self.opt.state_dict()
        for i, st in sd["state"].items():
            for k, v in st.items():
                t[f"adam.{names[i]}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
        return t

    def state_meta(self) -> dict[str, Any]:
        pg = self.opt.state_dict()["param_groups"]
        return {
            "last_density": self.last_density,
            "acc": self.acc,
            "hist_tokens": self.hist_tokens,
            "param_groups": json.loads(json.dumps(pg, default=str)),
        }

    def restore(self, tensors: dict[str, Tensor], meta: dict[str, Any], source: Path) -> None:
        params = {k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")}
        load_state_into(self.sae, params, source)
        self.since_fired.copy_(tensors["since_fired"])
        self.acc_fire.copy_(tensors["acc_fire"])
        self.hist_fire.copy_(tensors["hist_fire"])
        self.last_density = float(meta["last_density"])
        self.acc = {k: float(v) for k, v in meta["acc"].items()}
        self.hist_tokens = float(meta["hist_tokens"])
        names = [n for n, _ in self.sae.named_parameters()]
        state: dict[int, dict[str, Tensor]] = {}
        for i, name in enumerate(names):
            st = {k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(f"adam.{name}.")}
            if st:
                state[i] = st
        groups = meta["param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        self.opt.load_state_dict({"state": state, "param_groups": groups})

    def feature_density(self) -> Tensor:
        return (self.hist_fire / max(self.hist_tokens, 1.0)).float().cpu()


def _sae_tensors(sae: SparseAutoencoder) -> dict[str, Tensor]:
    return {"W_enc": sae.W_enc.data, "b_enc": sae.b_enc.data, "W_dec": sae.W_dec.data, "b_dec": sae.b_dec.data,
            "threshold": sae.threshold}  # fmt: skip


def density_histogram(freq_S: Tensor) -> dict[str, Any]:
    """Histogram of log10 firing frequencies (bins ``HIST_BINS``) plus the count of never-fired latents."""
    f = freq_S.double().numpy()
    alive = f[f > 0]
    counts, edges = (
        np.histogram(np.log10(alive), bins=HIST_BINS)
        if alive.size
        else (np.zeros(len(HIST_BINS) - 1), HIST_BINS)
    )
    below = int((np.log10(alive) < HIST_BINS[0]).sum()) if alive.size else 0
    return {
        "bin_edges_log10": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "below_range": below,
        "never_fired": int((f == 0).sum()),
        "n_latents": int(f.size),
    }


# --------------------------------------------------------------------------------------- driver
def _sae_dirs(out_dir: Path, n: int, single: bool) -> list[Path]:
    return [out_dir] if single else [out_dir / f"sae_{i:02d}" for i in range(n)]


def _run_record(tcfg: TrainConfig, cfgs: Sequence[SAEConfig], src: TokenSource) -> dict[str, Any]:
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


def _check_same_run(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    def strip(rec: dict[str, Any]) -> dict[str, Any]:
        r = json.loads(json.dumps(rec))
        for k in _RESUME_FREE_FIELDS:
            r["train"].pop(k, None)
        return r

    if strip(old) != strip(new):
        diff = [k for k in ("train", "saes", "data") if strip(old)[k] != strip(new)[k]]
        raise CheckpointError(
            f"{path} describes a different run (differs in {diff}); use a new out_dir or delete the old one"
        )


def _read_history(out_dir: Path, max_step: int | None = None) -> pd.DataFrame:
    p = out_dir / METRICS_FILE
    rows = (
        [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        if p.is_file()
        else []
    )
    if max_step is not None:
        rows = [r for r in rows if r["step"] <= max_step]
    return pd.DataFrame(rows)


def _batches(src: TokenSource, tcfg: TrainConfig, start_step: int) -> Iterator[tuple[int, Tensor]]:
    B = tcfg.batch_images
    per_epoch = src.n_images // B
    if per_epoch == 0:
        raise ValueError(f"the data has {src.n_images} images, fewer than batch_images={B}")
    step = start_step
    while True:
        epoch, b = divmod(step, per_epoch)
        got = False
        for batch in src.iter_batches(
            B, shuffle=True, seed=tcfg.data_seed, epoch=epoch if tcfg.reshuffle_each_epoch else 0,
            start_batch=b, drop_last=True,
        ):  # fmt: skip
            got = True
            yield step, batch
            step += 1
        if not got:
            raise RuntimeError(
                f"the token source yielded no batch for epoch {epoch}, start_batch {b}"
            )


def train_many(
    data: Any,
    sae_cfgs: Sequence[SAEConfig],
    train_cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    single_layout: bool = False,
) -> list[TrainResult]:
    """Train several SAEs on one pass over ``data`` (each batch read once, fed to every SAE).

    Args:
        data: ``Tensor (N, T, D)`` / ``(N, D)`` or a TokenStore-like object.
        sae_cfgs: One config per SAE; all need ``d_in == data.d_model``.
        train_cfg: Optimisation/data/logging settings shared by all SAEs.
        out_dir: Run folder: ``run.json``, ``metrics.jsonl`` (column ``sae`` = index), ``trainer_state/``
            while running, ``sae_XX/`` (or the folder itself when ``single_layout``) with
            ``sae.safetensors``, ``cfg.json``, ``density_histogram.json``, ``feature_density.safetensors``,
            and a ``done`` marker at the end.
        progress: Show a tqdm bar (tokens/s).
        single_layout: Write the one SAE's files directly into ``out_dir``.

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
    record = _run_record(train_cfg, cfgs, src)
    run_file = out / RUN_FILE

    if is_complete(out):
        old = json.loads(run_file.read_text())
        _check_same_run(old, record, run_file)
        hist = _read_history(out)
        results = []
        for i, d in enumerate(dirs):
            h = (
                hist[hist["sae"] == i].drop(columns="sae").reset_index(drop=True)
                if len(hist)
                else hist
            )
            dens = read_tensors(d / "feature_density.safetensors")["density"]
            results.append(TrainResult(load_sae(d), h, d, dens))
        log.info("%s is finished; loaded %d SAE(s)", out, len(results))
        return results

    ddp.maybe_init_from_env(resolve_device(train_cfg.device).type)
    device = resolve_device(train_cfg.device)
    rank, world = ddp.rank(), ddp.world_size()
    trainers = [_SAETrainer(c, train_cfg, device) for c in cfgs]
    state = load_state_dir(out / STATE_DIR)
    start_step = 0
    if state is not None:
        folder, meta = state
        _check_same_run(json.loads(run_file.read_text()), record, run_file)
        for i, tr in enumerate(trainers):
            tr.restore(read_tensors(folder / f"sae_{i}.safetensors"), meta["saes"][i], folder)
        start_step = int(meta["step"])
        rng = read_tensors(folder / "rng.safetensors")
        torch.set_rng_state(rng["torch"])
        np_state = meta["numpy_rng"]
        np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
        log.info("resuming %s at step %d", out, start_step)
    else:
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_file, json.dumps(record, indent=1, sort_keys=True) + "\n")
            (out / METRICS_FILE).unlink(missing_ok=True)
        _init_b_dec(trainers, src, train_cfg, device)

    total = train_cfg.total_steps
    stop = min(total, train_cfg.stop_after_steps) if train_cfg.stop_after_steps else total
    tok_per_step = train_cfg.batch_images * src.n_tokens
    wandb_run = _maybe_wandb(train_cfg, record) if rank == 0 else None
    if rank == 0 and state is not None:
        hist = _read_history(out, start_step)
        rows = hist.to_dict("records") if len(hist) else []
        atomic_write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    bar = tqdm(
        total=total * tok_per_step, initial=start_step * tok_per_step, unit="tok", unit_scale=True,
        disable=not progress or rank != 0, desc="train SAE" if len(cfgs) == 1 else f"train {len(cfgs)} SAEs",
    )  # fmt: skip
    shard = ddp.shard(train_cfg.batch_images, rank, world)
    step = start_step
    try:
        if start_step < stop:
            for step, batch in _batches(src, train_cfg, start_step):
                x_ND = batch[shard].to(device, non_blocking=True).reshape(-1, src.d_model).float()
                for tr in trainers:
                    tr.step(x_ND, step)
                done_steps = step + 1
                bar.update(tok_per_step)
                if done_steps % train_cfg.log_every == 0 or done_steps == total:
                    lr = train_cfg.lr * min(1.0, done_steps / max(train_cfg.lr_warmup_steps, 1))
                    rows = []
                    for i, tr in enumerate(trainers):
                        row = {"sae": i, **tr.log_row(done_steps, lr)}
                        row["tokens"] = done_steps * tok_per_step
                        rows.append(row)
                    if rank == 0:
                        with open(out / METRICS_FILE, "a") as fh:
                            fh.writelines(json.dumps(r) + "\n" for r in rows)
                        bar.set_postfix(mse=f"{rows[0]['mse']:.3g}", l0=f"{rows[0]['l0']:.1f}")
                        if wandb_run is not None:
                            for r in rows:
                                wandb_run.log(
                                    {f"sae{r['sae']}/{k}": v for k, v in r.items() if k != "sae"},
                                    step=done_steps,
                                )
                if done_steps == stop or (
                    train_cfg.checkpoint_every
                    and done_steps % train_cfg.checkpoint_every == 0
                    and done_steps < total
                ):
                    if done_steps < total:
                        _save_state(out, trainers, done_steps, src, train_cfg)
                if done_steps >= stop:
                    break
    finally:
        bar.close()
        if wandb_run is not None:
            wandb_run.finish()

    finished = stop == total
    if finished and rank == 0:
        for tr, d in zip(trainers, dirs):
            save_sae(tr.sae, d)
            dens = tr.feature_density()
            atomic_save_tensors({"density": dens}, d / "feature_density.safetensors")
            atomic_write_text(
                d / "density_histogram.json", json.dumps(density_histogram(dens), indent=1) + "\n"
            )
        mark_complete(out, {"steps": total})
        import shutil

        shutil.rmtree(out / STATE_DIR, ignore_errors=True)
    ddp.barrier()
    hist = _read_history(out) if (out / METRICS_FILE).is_file() else pd.DataFrame()
    results = []
    for i, (tr, d) in enumerate(zip(trainers, dirs)):
        h = hist[hist["sae"] == i].drop(columns="sae").reset_index(drop=True) if len(hist) else hist
        tr.sae.eval()
        results.append(TrainResult(tr.sae, h, d, tr.feature_density(), finished=finished))
    return results


def _save_state(
    out: Path, trainers: list[_SAETrainer], step: int, src: TokenSource, tcfg: TrainConfig
) -> None:
    if ddp.rank() == 0:
        per_epoch = src.n_images // tcfg.batch_images
        epoch, batch = divmod(step, per_epoch)
        np_state = np.random.get_state()
        meta = {
            "step": step,
            "data_position": {"epoch": epoch, "batch": batch},
            "numpy_rng": [
                np_state[0],
                np_state[1].tolist(),
                *[x.item() if hasattr(x, "item") else x for x in np_state[2:]],
            ],
            "saes": [tr.state_meta() for tr in trainers],
        }
        tensors = {f"sae_{i}": tr.state_tensors() for i, tr in enumerate(trainers)}
        tensors["rng"] = {"torch": torch.get_rng_state()}
        save_state_dir(out / STATE_DIR, f"step_{step:09d}", tensors, meta)
    ddp.barrier()


@torch.no_grad()
def _init_b_dec(
    trainers: list[_SAETrainer], src: TokenSource, tcfg: TrainConfig, device: torch.device
) -> None:
    methods = {tr.cfg.b_dec_init for tr in trainers} - {"zeros"}
    if not methods:
        return
    sample = next(
        iter(
            src.iter_batches(
                tcfg.b_dec_init_images, shuffle=True, seed=tcfg.data_seed, epoch=0, drop_last=False
            )
        )
    )
    inits = {m: init_b_dec(sample, m) for m in methods}
    for tr in trainers:
        if tr.cfg.b_dec_init in inits:
            tr.sae.b_dec.copy_(inits[tr.cfg.b_dec_init].to(device))
            log.info(
                "b_dec initialised by %s (norm %.4g)", tr.cfg.b_dec_init, float(tr.sae.b_dec.norm())
            )


def _maybe_wandb(tcfg: TrainConfig, record: dict[str, Any]) -> Any:
    if not tcfg.wandb_project:
        return None
    try:
        import wandb  # optional dependency, imported only when asked for
    except ImportError as exc:
        raise ImportError(
            "TrainConfig.wandb_project is set but wandb is not installed (pip install wandb)"
        ) from exc
    return wandb.init(project=tcfg.wandb_project, config=record)


def train_sae(
    data: Any,
    sae_cfg: SAEConfig | Sequence[SAEConfig],
    train_cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> TrainResult | list[TrainResult]:
    """Train one SAE (files directly in ``out_dir``) or, given a list of configs, several on one pass.

    Resumes from the trainer state in ``out_dir`` when there is one; on a finished ``out_dir`` it
    only loads. See :func:`train_many` for the layout.
    """
    if isinstance(sae_cfg, SAEConfig):
        return train_many(
            data, [sae_cfg], train_cfg, out_dir, progress=progress, single_layout=True
        )[0]
    return train_many(data, list(sae_cfg), train_cfg, out_dir, progress=progress)


__all__ = ["TensorTokens", "TokenSource", "TrainConfig", "TrainResult", "density_histogram",
           "train_many", "train_sae"]  # fmt: skip
