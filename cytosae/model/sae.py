"""The sparse autoencoder of CytoSAE (ReLU + L1 as in the paper; TopK family as options).

Definitions follow the authors' code (a PatchSAE / pre-v6 SAELens descendant):

* ``f = ReLU((x - b_dec) @ W_enc + b_enc)``, ``x_hat = f @ W_dec + b_dec``;
* reconstruction loss: element-wise ``(x_hat - x)^2 / ||x||_2`` (the token's L2 norm, not its
  square), then the mean over all (token, feature) elements;
* sparsity loss: ``l1_coefficient * mean_tokens sum_j |f_j|`` (optionally each ``|f_j|`` weighted by
  ``||W_dec[j]||``);
* ghost grads for latents that have not fired for more than ``dead_feature_window`` steps;
* decoder rows kept at unit norm, the gradient parallel to each row removed before the optimiser step.

All losses work on flattened token batches ``x_ND`` (N tokens, D = d_in features).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cytosae import ddp
from cytosae.config import JsonConfig

log = logging.getLogger(__name__)

ACTIVATIONS = ("relu", "topk", "batchtopk")
B_DEC_INITS = ("geometric_median_image", "geometric_median_token", "mean", "zeros")
L1_WEIGHTINGS = ("none", "decoder_norm")
MSE_NORMALISATIONS = ("token_norm", "centred_norm", "none")


@dataclass(frozen=True)
class SAEConfig(JsonConfig):
    """Architecture and loss of one sparse autoencoder.

    Attributes:
        d_in: Width of the input tokens (768 for DinoBloom-B).
        expansion_factor: ``d_sae = d_in * expansion_factor`` (paper: 64) unless ``n_latents``
            is set.
        n_latents: The number of latents ``d_sae`` when > 0, any width (not only a multiple of
            ``d_in``); 0 (default) means ``d_in * expansion_factor``. Left out of ``to_dict``
            when 0, so configs, cache keys and checkpoints from before it are unchanged.
        activation: "relu" (paper) | "topk" | "batchtopk".
        k: Active latents per token for the TopK family (batch average for BatchTopK).
        l1_coefficient: Weight of the L1 sparsity loss (ReLU only; ignored for TopK family).
        l1_weighting: "none" (paper) or "decoder_norm" (``|f_j| * ||W_dec[j]||``, as SAELens v6).
        use_ghost_grads: Ghost-grad loss for dead latents (ReLU).
        dead_feature_window: A latent is dead after this many steps without firing.
        b_dec_init: "geometric_median_image" (authors' code), "geometric_median_token" (paper's
            text), "mean" or "zeros".
        mse_normalisation: "token_norm" (``/||x||``, the authors' definition), "centred_norm"
            (``/||x - mean_batch(x)||``, mats_sae_training) or "none".
        normalize_decoder: Keep decoder rows at unit norm and remove the parallel gradient.
        aux_k: Latents used by the AuxK loss (TopK family); 0 means ``d_in // 2``.
        aux_k_coefficient: Weight of the AuxK loss (Gao et al.: 1/32).
        seed: Seed of the parameter initialisation.
    """

    schema_version: ClassVar[int] = 1

    d_in: int = 768
    expansion_factor: int = 64
    n_latents: int = 0
    activation: Literal["relu", "topk", "batchtopk"] = "relu"
    k: int = 0
    l1_coefficient: float = 8e-5
    l1_weighting: Literal["none", "decoder_norm"] = "none"
    use_ghost_grads: bool = True
    dead_feature_window: int = 64
    b_dec_init: Literal["geometric_median_image", "geometric_median_token", "mean", "zeros"] = (
        "geometric_median_image"
    )
    mse_normalisation: Literal["token_norm", "centred_norm", "none"] = "token_norm"
    normalize_decoder: bool = True
    aux_k: int = 0
    aux_k_coefficient: float = 1.0 / 32.0
    seed: int = 42

    def validate(self) -> None:
        for name in ("d_in", "expansion_factor", "k", "dead_feature_window", "aux_k", "seed"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise ValueError(
                    f"SAEConfig.{name} must be an integer, got {v!r}"
                )  # a TypeError would be apt; ValueError keeps one error type for bad config values
        for name in ("l1_coefficient", "aux_k_coefficient"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"SAEConfig.{name} must be a finite number, got {v!r}")
        if self.d_in <= 0:
            raise ValueError(f"SAEConfig.d_in must be > 0, got {self.d_in}")
        if self.expansion_factor <= 0:
            raise ValueError(f"SAEConfig.expansion_factor must be > 0, got {self.expansion_factor}")
        if self.k < 0:
            raise ValueError(f"SAEConfig.k must be >= 0, got {self.k}")
        if self.n_latents < 0:
            raise ValueError(
                f"SAEConfig.n_latents must be >= 0 (0: d_in * expansion_factor), got {self.n_latents}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"SAEConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.activation != "relu" and not 0 < self.k <= self.d_sae:
            raise ValueError(
                f"SAEConfig.k must be in 1..d_sae={self.d_sae} for {self.activation}, got {self.k}"
            )
        if self.l1_coefficient < 0:
            raise ValueError(f"SAEConfig.l1_coefficient must be >= 0, got {self.l1_coefficient}")
        if self.l1_weighting not in L1_WEIGHTINGS:
            raise ValueError(
                f"SAEConfig.l1_weighting must be one of {L1_WEIGHTINGS}, got {self.l1_weighting!r}"
            )
        if self.dead_feature_window <= 0:
            raise ValueError(
                f"SAEConfig.dead_feature_window must be > 0, got {self.dead_feature_window}"
            )
        if self.b_dec_init not in B_DEC_INITS:
            raise ValueError(
                f"SAEConfig.b_dec_init must be one of {B_DEC_INITS}, got {self.b_dec_init!r}"
            )
        if self.mse_normalisation not in MSE_NORMALISATIONS:
            raise ValueError(
                f"SAEConfig.mse_normalisation must be one of {MSE_NORMALISATIONS}, got {self.mse_normalisation!r}"
            )
        if self.aux_k < 0:
            raise ValueError(f"SAEConfig.aux_k must be >= 0, got {self.aux_k}")
        if self.aux_k_coefficient < 0:
            raise ValueError(
                f"SAEConfig.aux_k_coefficient must be >= 0, got {self.aux_k_coefficient}"
            )

    @property
    def d_sae(self) -> int:
        """The number of latents: ``n_latents`` when set, else ``d_in * expansion_factor``."""
        return self.n_latents or self.d_in * self.expansion_factor

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.n_latents:  # the field's default is not written: older digests stay valid
            out.pop("n_latents")
        return out


@dataclass
class SAELoss:
    """Loss terms of one forward pass (all scalars are 0-d tensors)."""

    loss: Tensor
    mse: Tensor
    l1: Tensor
    ghost: Tensor
    aux: Tensor
    x_hat_ND: Tensor
    fire_counts_S: Tensor  # tokens on which each latent fired (int64, detached)
    l0_sum: Tensor  # total number of (token, latent) activations > 0 (detached)


class SparseAutoencoder(nn.Module):
    """SAE with parameters ``W_enc (d_in, d_sae)``, ``b_enc``, ``W_dec (d_sae, d_in)``, ``b_dec``."""

    def __init__(self, cfg: SAEConfig, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        check_fits(
            [cfg], torch.device("cpu")
        )  # before allocating: a clear error, not the OOM killer
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        w_enc = torch.empty(cfg.d_in, cfg.d_sae)
        nn.init.kaiming_uniform_(w_enc, generator=gen)
        w_dec = torch.empty(cfg.d_sae, cfg.d_in)
        nn.init.kaiming_uniform_(w_dec, generator=gen)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_enc = nn.Parameter(w_enc)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(w_dec)
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        # BatchTopK inference threshold (running mean of the smallest kept activation).
        self.register_buffer("threshold", torch.zeros(()))
        if device is not None:
            self.to(device)

    # ----------------------------------------------------------------------------- forward
    def hidden_pre(self, x: Tensor) -> Tensor:
        """Pre-activations ``(x - b_dec) @ W_enc + b_enc`` for any leading shape ``(..., d_in)``."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Apply the configured activation to pre-activations ``(..., d_sae)``."""
        act = self.cfg.activation
        if act == "relu":
            return F.relu(pre)
        if act == "topk":
            vals, idx = pre.topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, idx, F.relu(vals))
        # batchtopk
        if not self.training and float(self.threshold) > 0:
            return pre * (pre > self.threshold)
        flat = pre.reshape(-1, pre.shape[-1])
        n_keep = min(self.cfg.k * flat.shape[0], flat.numel())
        vals, idx = F.relu(flat).flatten().topk(n_keep)
        out = torch.zeros_like(flat).flatten().scatter(0, idx, vals).reshape(pre.shape)
        if self.training:
            with torch.no_grad():
                pos = vals[vals > 0]
                if pos.numel():
                    m = pos.min().to(self.threshold.dtype)
                    if float(self.threshold) == 0:
                        self.threshold.copy_(m)
                    else:
                        self.threshold.mul_(0.99).add_(0.01 * m)
        return out

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations ``f`` for inputs of shape ``(..., d_in)``."""
        return self.activate(self.hidden_pre(x))

    def decode(self, f: Tensor) -> Tensor:
        """Reconstruction ``f @ W_dec + b_dec``."""
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.encode(x)
        return self.decode(f), f

    # ----------------------------------------------------------------------------- decoder geometry
    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """``grad_j -= (grad_j . W_dec_j) W_dec_j`` for every decoder row (rows are unit norm)."""
        if self.W_dec.grad is None:
            return
        parallel_S = torch.linalg.vecdot(self.W_dec.grad, self.W_dec.data)
        self.W_dec.grad.addcmul_(parallel_S[:, None], self.W_dec.data, value=-1.0)

    # ----------------------------------------------------------------------------- losses
    def losses(self, x_ND: Tensor, dead_mask_S: Tensor | None = None) -> SAELoss:
        """Dense (autograd) loss of a token batch ``x_ND`` (leading dims are flattened);
        ``dead_mask_S`` marks dead latents (ghost grads for ReLU, AuxK for the TopK family)."""
        x_ND = x_ND.reshape(-1, self.cfg.d_in)
        if torch.is_autocast_enabled(x_ND.device.type) or not torch.is_grad_enabled():
            pre_NS = self.hidden_pre(x_ND)
        else:
            pre_NS = _CentredEncoder.apply(x_ND, self.b_dec, self.W_enc, self.b_enc)
        f_NS = self.activate(pre_NS)
        x_hat_ND = f_NS @ self.W_dec + self.b_dec
        if self.cfg.l1_weighting == "decoder_norm":
            l1_tok = (f_NS.abs() * self.W_dec.norm(dim=1)).sum(dim=-1).mean()
        else:
            l1_tok = f_NS.abs().sum(dim=-1).mean()
        dead_idx = _dead_index(dead_mask_S)
        with torch.no_grad():
            fire_counts_S = torch.count_nonzero(f_NS.detach(), dim=0)
            l0_sum = fire_counts_S.sum()
        return self.loss_terms(x_ND, x_hat_ND, l1_tok, pre_NS, dead_idx, fire_counts_S, l0_sum)

    def loss_terms(
        self,
        x_ND: Tensor,
        x_hat_ND: Tensor,
        l1_per_token: Tensor,
        pre_NS_or_dead: Tensor,
        dead_idx: Tensor | None,
        fire_counts_S: Tensor,
        l0_sum: Tensor,
        *,
        pre_is_dead_only: bool = False,
        W_dec_dead: Tensor | None = None,
    ) -> SAELoss:
        """Combine reconstruction, L1, ghost and AuxK terms (shared by dense and sparse paths)."""
        cfg = self.cfg
        x_ND = x_ND.float()
        x_hat_ND = x_hat_ND.float()
        mse_el_ND = (x_hat_ND - x_ND).pow(2) / _mse_norm(x_ND, cfg.mse_normalisation)
        mse = mse_el_ND.mean()
        zero = x_hat_ND.new_zeros(())
        ghost, aux = zero, zero
        l1 = cfg.l1_coefficient * l1_per_token.float() if cfg.activation == "relu" else zero
        has_dead = dead_idx is not None and dead_idx.numel() > 0
        if has_dead and self.training:
            if pre_is_dead_only:
                pre_dead = pre_NS_or_dead.float()
            else:
                pre_dead = pre_NS_or_dead.index_select(-1, dead_idx).float()
            W_dead = self.W_dec.index_select(0, dead_idx) if W_dec_dead is None else W_dec_dead
            if cfg.activation == "relu" and cfg.use_ghost_grads:
                ghost = ghost_grad_loss(x_ND, x_hat_ND, pre_dead, W_dead, mse_el_ND)
            elif cfg.activation != "relu":
                aux = cfg.aux_k_coefficient * auxk_loss(
                    x_ND, x_hat_ND, pre_dead, W_dead, cfg.aux_k or cfg.d_in // 2
                )
        loss = mse + l1 + ghost + aux
        return SAELoss(loss, mse, l1, ghost, aux, x_hat_ND, fire_counts_S, l0_sum)


class _CentredEncoder(torch.autograd.Function):
    """``(x - b_dec) @ W_enc + b_enc`` with ``dL/db_dec = -W_enc @ sum_n dL/dpre_n``.

    Autograd would get ``dL/db_dec`` from ``dL/d(x - b_dec) = dpre @ W_enc^T``, a full
    ``N x d_sae x d_in`` GEMM; summing ``dpre`` over tokens first makes it a matrix-vector product.
    Same forward value, same gradients up to float rounding.
    """

    @staticmethod
    def forward(ctx, x_ND, b_dec_D, W_enc_DS, b_enc_S):  # type: ignore[override]
        xc_ND = x_ND - b_dec_D
        ctx.save_for_backward(xc_ND, W_enc_DS)
        return torch.addmm(b_enc_S, xc_ND, W_enc_DS)

    @staticmethod
    def backward(ctx, g_NS):  # type: ignore[override]
        xc_ND, W_enc_DS = ctx.saved_tensors
        gb_enc_S = g_NS.sum(0)
        return None, -(W_enc_DS @ gb_enc_S), xc_ND.t() @ g_NS, gb_enc_S


def _dead_index(dead_mask_S: Tensor | None) -> Tensor | None:
    if dead_mask_S is None or not bool(dead_mask_S.any()):
        return None
    return dead_mask_S.nonzero().squeeze(1)


def _mse_norm(x_ND: Tensor, how: str) -> Tensor:
    if how == "token_norm":
        return x_ND.norm(dim=-1, keepdim=True)
    if how == "centred_norm":
        return (x_ND - x_ND.mean(dim=0, keepdim=True)).norm(dim=-1, keepdim=True)
    return x_ND.new_ones(())


def ghost_grad_loss(
    x_ND: Tensor, x_hat_ND: Tensor, pre_dead_NK: Tensor, W_dec_dead_KD: Tensor, mse_el_ND: Tensor
) -> Tensor:
    """Ghost-grad term exactly as in the authors' code.

    ``g = exp(pre_dead) @ W_dec[dead]`` rescaled per token by ``||r|| / (2 ||g|| + 1e-6)`` (detached),
    ``ghost = (g - r)^2 / ||r||`` with ``r = x - x_hat`` detached, times
    ``(mse_el / (ghost + 1e-6)).detach()``, mean over elements.
    """
    residual_ND = x_ND - x_hat_ND
    l2_res_N = residual_ND.norm(dim=-1)
    g_ND = torch.exp(pre_dead_NK) @ W_dec_dead_KD
    l2_g_N = g_ND.norm(dim=-1)
    scale_N = l2_res_N / (1e-6 + l2_g_N * 2)
    g_ND = g_ND * scale_N[:, None].detach()
    r_ND = residual_ND.detach()
    ghost_el_ND = (g_ND - r_ND).pow(2) / r_ND.norm(dim=-1, keepdim=True)
    ratio_ND = (mse_el_ND / (ghost_el_ND + 1e-6)).detach()
    return (ratio_ND * ghost_el_ND).mean()


def auxk_loss(
    x_ND: Tensor, x_hat_ND: Tensor, pre_dead_NK: Tensor, W_dec_dead_KD: Tensor, k_aux: int
) -> Tensor:
    """AuxK (Gao et al. 2024): reconstruct the residual from the top ``k_aux`` dead latents,
    normalised by the residual's total variance over the global batch (so that DDP, which averages
    gradients over ranks, equals one process)."""
    e_ND = (x_ND - x_hat_ND).detach()
    k = min(k_aux, pre_dead_NK.shape[-1])
    vals, idx = pre_dead_NK.topk(k, dim=-1)
    acts = torch.zeros_like(pre_dead_NK).scatter(-1, idx, F.relu(vals))
    e_hat_ND = acts @ W_dec_dead_KD
    # total variance of the residual over the GLOBAL batch (all-reduced under DDP; detached)
    e64 = e_ND.double()
    moments = ddp.all_reduce_sum_(
        torch.cat([e64.sum(0), e64.pow(2).sum()[None], e64.new_tensor([e_ND.shape[0]])])
    )
    s1, s2, n = moments[:-2], moments[-2], moments[-1]
    denom = float((s2 - (s1 * s1).sum() / n).clamp_min(1e-12))
    return (e_hat_ND - e_ND).pow(2).sum() * ddp.world_size() / denom


# ----------------------------------------------------------------------------- memory
_GIB = float(1 << 30)


def memory_estimate(
    cfg: SAEConfig, *, tokens_per_step: int = 0, training: bool = False
) -> dict[str, int]:
    """A lower bound of the memory an SAE needs, in bytes (float32).

    ``params``: its parameters; ``state``: with ``training``, their gradients and Adam's two
    moments (3x the parameters); ``activations``: the pre-activations and activations of one
    step of ``tokens_per_step`` tokens (``2 * tokens * d_sae``; the real peak is higher).
    """
    params = 4 * (2 * cfg.d_in * cfg.d_sae + cfg.d_sae + cfg.d_in)
    state = 3 * params if training else 0
    acts = 2 * 4 * tokens_per_step * cfg.d_sae
    return {"params": params, "state": state, "activations": acts, "total": params + state + acts}


def _cgroup_free() -> int | None:
    for limit, used in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            lim = Path(limit).read_text().strip()
            if lim == "max" or int(lim) >= 1 << 60:
                return None
            return int(lim) - int(Path(used).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def available_memory(device: torch.device) -> int | None:
    """Bytes this process can still allocate on ``device`` (None when unknown).

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (or the free pages), capped by a cgroup limit;
    CUDA: the free memory of the device (``torch.cuda.mem_get_info``).
    """
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError, ValueError):  # pragma: no cover
            return None
    free: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        free = None
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            return None
    cg = _cgroup_free()
    return min(free, cg) if cg is not None else free


def check_fits(
    cfgs: Sequence[SAEConfig],
    device: torch.device,
    *,
    tokens_per_step: int = 0,
    training: bool = False,
) -> None:
    """Refuse, before anything is allocated, SAEs that cannot fit in the memory of ``device``.

    The SAEs of a sweep are held together (their parameters and, with ``training``, their
    gradients and Adam moments), the activations of one step one SAE at a time. Only a lower
    bound (:func:`memory_estimate`) is compared, so a refused configuration cannot fit at all.

    Raises:
        ValueError: naming the configuration, the estimate, the memory available and the fix.
    """
    avail = available_memory(device)
    if avail is None or not cfgs:
        return
    est = [memory_estimate(c, tokens_per_step=tokens_per_step, training=training) for c in cfgs]
    held = sum(e["params"] + e["state"] for e in est)
    acts = max(e["activations"] for e in est)
    if held + acts <= avail:
        return
    i_big = max(range(len(cfgs)), key=lambda i: cfgs[i].d_sae)
    big = cfgs[i_big]
    others = held - est[i_big]["params"] - est[i_big]["state"]
    # bytes per unit of expansion factor of the largest SAE (its parameters, state, activations)
    per_factor = big.d_in * (4 * (2 * big.d_in + 1) * (4 if training else 1) + 8 * tokens_per_step)
    fit = int((avail - others) // per_factor) if avail > others else 0
    what = "training " if training else ""
    parts = f"{held / _GIB:.1f} GiB for parameters" + (
        ", gradients and Adam moments" if training else ""
    )
    if acts:
        parts += f" + {acts / _GIB:.1f} GiB of activations per step ({tokens_per_step:,} tokens)"
    fix = (
        f"lower expansion_factor (--expansion-factor; x{fit} would fit)"
        if fit >= 1
        else "use a machine with more memory"
    )
    if training and acts > avail - held > 0:
        fix += " or batch_images (--batch-images)"
    raise ValueError(
        f"{what}{'the SAEs of a sweep, the largest' if len(cfgs) > 1 else 'an SAE'} with "
        f"d_in={big.d_in} x expansion_factor={big.expansion_factor} (d_sae={big.d_sae:,}), "
        f"need{'' if len(cfgs) > 1 else 's'} at least "
        f"{(held + acts) / _GIB:.1f} GiB ({parts}) but {avail / _GIB:.1f} GiB is available on "
        f"{device}; {fix}"
    )


def config_from_dict(data: dict) -> SAEConfig:
    """Build an :class:`SAEConfig` from a dict, ignoring ``schema_version``."""
    data = {k: v for k, v in data.items() if k != "schema_version"}
    return SAEConfig.from_dict(data)


__all__ = [
    "ACTIVATIONS",
    "B_DEC_INITS",
    "SAEConfig",
    "SAELoss",
    "SparseAutoencoder",
    "auxk_loss",
    "available_memory",
    "check_fits",
    "config_from_dict",
    "ghost_grad_loss",
    "memory_estimate",
]
