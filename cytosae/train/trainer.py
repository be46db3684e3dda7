"""One SAE under training: its parameters, Adam, dead-latent counters, one step and the metric sums.

The step is the authors' (see docs/sae.md): decoder rows renormalised at the start of the step,
ghost-grad dead mask from the steps since each latent last fired, backward, gradients averaged over
ranks, gradient parallel to the decoder rows removed, Adam at :meth:`TrainConfig.lr_at`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cytosae import ddp
from cytosae.model.geomedian import init_b_dec
from cytosae.model.sae import SAEConfig, SAELoss, SparseAutoencoder
from cytosae.model.sparse_ops import sparse_relu_losses
from cytosae.train import metrics
from cytosae.train.config import TrainConfig
from cytosae.train.source import TokenSource, b_dec_sample

log = logging.getLogger(__name__)

__all__ = ["NonFiniteError", "SAETrainer", "init_b_dec_", "parameters_finite"]


class NonFiniteError(FloatingPointError):
    """A loss term or a parameter of a trainer is NaN or infinite.

    Attributes:
        step: the 0-based step whose loss was not finite (None for the b_dec init).
        terms: the loss terms of that step (summed over ranks), by name.
    """

    def __init__(self, message: str, step: int | None = None, terms: dict | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.terms = terms or {}


def parameters_finite(sae: torch.nn.Module) -> bool:
    """True when every parameter of ``sae`` is finite (one device reduction, one sync)."""
    flags = [torch.isfinite(p).all() for p in sae.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class SAETrainer:
    """Parameters, optimiser, dead counters and metric accumulators of one SAE.

    Attributes:
        sae: The model being trained.
        opt: Adam over ``sae``'s parameters (fused on CPU and CUDA).
        since_fired: ``(S,)`` steps since each latent last fired.
        last_density: L0 / d_sae of the last step (drives ``sparse_mode="auto"``).
        acc: The :data:`~cytosae.train.metrics.SCALARS` summed since the last log row.
        acc_fire: ``(S,)`` firings since the last log row.
        hist_fire: ``(S,)`` firings over the last ``density_window_steps`` steps of the run.
        hist_tokens: Tokens over the same window.
    """

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
        self.acc: dict[str, float] = dict.fromkeys(metrics.SCALARS, 0.0)
        self.acc_fire = torch.zeros(S, dtype=torch.float64, device=device)
        self.hist_fire = torch.zeros(S, dtype=torch.float64, device=device)
        self.hist_tokens = 0.0

    # ------------------------------------------------------------------ step
    def dead_mask(self) -> Tensor:
        """``(S,)`` True for latents that have not fired for more than ``dead_feature_window`` steps."""
        return self.since_fired > self.cfg.dead_feature_window

    def use_sparse(self) -> bool:
        """Whether the next step takes the sparsity-aware ReLU path."""
        t = self.tcfg
        if self.cfg.activation != "relu" or self.cfg.l1_weighting != "none" or t.autocast != "none":
            return False
        if t.sparse_mode == "sparse":
            return True
        if t.sparse_mode == "dense" or self.device.type != "cpu":
            return False
        return self.last_density < t.sparse_density_threshold

    def step(self, x_ND: Tensor, step: int) -> None:
        """Take the 0-based optimiser step ``step`` on the tokens ``x_ND`` (this rank's share)."""
        sae, cfg, tcfg = self.sae, self.cfg, self.tcfg
        sae.train()
        if cfg.normalize_decoder:
            sae.set_decoder_norm_to_unit_norm()
        dead_mask = None
        if (cfg.activation == "relu" and cfg.use_ghost_grads) or cfg.activation != "relu":
            dead_mask = self.dead_mask()
        for g in self.opt.param_groups:
            g["lr"] = tcfg.lr_at(step)
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
        self._accumulate(x_ND, out, sparse, step)

    @torch.no_grad()
    def _accumulate(self, x_ND: Tensor, out: SAELoss, sparse: bool, step: int) -> None:
        """Add the step's losses and firings (summed over ranks) to the interval and window sums."""
        x64_ND = x_ND.double()
        n = float(x_ND.shape[0])
        sse = (out.x_hat_ND.detach().double() - x64_ND).pow(2).sum()
        head = torch.stack(
            [
                out.loss.detach().double(),
                out.mse.detach().double(),
                out.l1.detach().double(),
                out.ghost.detach().double(),
                out.aux.detach().double(),
                out.l0_sum.double(),
                sse,
                x64_ND.pow(2).sum(),
                torch.tensor(n, dtype=torch.float64, device=x_ND.device),
            ]
        )
        vec = torch.cat([head, x64_ND.sum(0), out.fire_counts_S.double()])
        ddp.all_reduce_sum_(vec)
        w = ddp.world_size()
        loss, mse, l1, ghost, aux, l0_sum, sse_g, s2, n_g = (float(v) for v in vec[:9])
        if not math.isfinite(loss):  # summed over ranks: every rank stops at the same step
            terms = {"loss": loss, "mse": mse, "l1": l1, "ghost": ghost, "aux": aux}
            raise NonFiniteError(
                f"non-finite loss in step {step + 1}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in terms.items()),
                step,
                terms,
            )
        D = x_ND.shape[1]
        s1_D = vec[9 : 9 + D]
        fire_S = vec[9 + D :]
        sst = s2 - float((s1_D * s1_D).sum()) / n_g
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
        self.acc_fire += fire_S
        self.since_fired += 1
        self.since_fired[fire_S > 0] = 0
        self.last_density = l0_sum / (n_g * self.cfg.d_sae)
        if step >= self.tcfg.total_steps - self.tcfg.density_window_steps:
            self.hist_fire += fire_S
            self.hist_tokens += n_g

    def log_row(self, step: int, lr: float) -> dict[str, Any]:
        """The metrics row of the interval since the last one (see :func:`metrics.log_row`); resets it."""
        row = metrics.log_row(
            self.acc, self.acc_fire, self.dead_mask(), self.tcfg.dense_threshold, step, lr
        )
        self.acc = dict.fromkeys(metrics.SCALARS, 0.0)
        self.acc_fire.zero_()
        return row

    def feature_density(self) -> Tensor:
        """``(S,)`` firing frequency per latent over the last ``density_window_steps`` steps."""
        return (self.hist_fire / max(self.hist_tokens, 1.0)).float().cpu()


@torch.no_grad()
def init_b_dec_(
    trainers: Sequence[SAETrainer], src: TokenSource, tcfg: TrainConfig, device: torch.device
) -> None:
    """Set ``b_dec`` of every trainer whose config asks for a data init, from :func:`b_dec_sample`.

    The sample is read only when some config needs it, and each init method runs once however many
    SAEs use it; ``"zeros"`` leaves ``b_dec`` as it is.
    """
    methods = {tr.cfg.b_dec_init for tr in trainers} - {"zeros"}
    if not methods:
        return
    sample_BTD = b_dec_sample(src, tcfg)
    inits = {m: init_b_dec(sample_BTD, m) for m in methods}
    for m, b in inits.items():
        if not bool(torch.isfinite(b).all()):
            raise NonFiniteError(
                f"the b_dec init ({m}) over the first {sample_BTD.shape[0]} images of the data "
                "order is not finite: those tokens hold NaN or inf values"
            )
    for tr in trainers:
        if tr.cfg.b_dec_init in inits:
            tr.sae.b_dec.copy_(inits[tr.cfg.b_dec_init].to(device))
            log.info(
                "b_dec initialised by %s (norm %.4g)", tr.cfg.b_dec_init, float(tr.sae.b_dec.norm())
            )
