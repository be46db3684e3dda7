"""The settings of a training run (:class:`TrainConfig`) and the learning-rate schedule they define."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar, Literal

from cytosae.config import JsonConfig
from cytosae.hardware import check_device_name

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Optimisation, data order, logging and checkpointing of a training run.

    Attributes:
        lr: Adam learning rate (paper 4e-4); betas (0.9, 0.999), no weight decay.
        lr_warmup_steps: Linear warm-up: the LR multiplier at step s (0-based) is ``min(1, (s+1)/W)``.
        batch_images: Images per global step (paper 64; all T tokens of each image are used).
        total_images: Images seen in the run (paper "1,000,000 training tokens" = images);
            ``total_images // batch_images`` steps.
        data_seed: Seed of the data order (:func:`cytosae.store.order.epoch_order`).
        shuffle: True (authors): each pass is a full shuffle of the images; False: the plain
            store order (image 0, 1, ...), e.g. to compare with another implementation.
        reshuffle_each_epoch: False (authors): every pass uses the same shuffled order.
        b_dec_init_images: Images at the head of the data stream that the b_dec init reads (authors:
            one batch, 64); training starts after them, so step 0 reads the stream's images
            ``b_dec_init_images ..`` (the authors' init consumes its batch). They are skipped even
            for ``b_dec_init="zeros"``; 0 starts training at the head (no data init possible).
            See ``docs/sae.md``, "Data order".
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
    shuffle: bool = True
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
        ints = ("lr_warmup_steps", "batch_images", "total_images", "data_seed")
        ints += ("b_dec_init_images", "log_every", "checkpoint_every", "density_window_steps")
        for name in (*ints, "stop_after_steps"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise ValueError(
                    f"TrainConfig.{name} must be an integer, got {v!r}"
                )  # a TypeError would be apt; ValueError keeps one error type for bad config values
        for name in ("lr", "dense_threshold", "sparse_density_threshold"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        betas = tuple(self.adam_betas)
        if len(betas) != 2 or not all(
            isinstance(b, numbers.Real) and math.isfinite(b) and 0 <= b < 1 for b in betas
        ):
            raise ValueError(
                f"TrainConfig.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}"
            )
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
        if self.data_seed < 0:
            raise ValueError(f"TrainConfig.data_seed must be >= 0, got {self.data_seed}")
        if self.b_dec_init_images < 0:
            raise ValueError(
                f"TrainConfig.b_dec_init_images must be >= 0, got {self.b_dec_init_images}"
            )
        if self.density_window_steps <= 0:
            raise ValueError(
                f"TrainConfig.density_window_steps must be > 0, got {self.density_window_steps}"
            )
        for name in ("dense_threshold", "sparse_density_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
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
        """Steps of the whole run: ``total_images // batch_images``."""
        return self.total_images // self.batch_images

    @property
    def stop_step(self) -> int:
        """Steps done when this call stops: ``stop_after_steps`` if set and sooner, else the end."""
        if self.stop_after_steps:
            return min(self.total_steps, self.stop_after_steps)
        return self.total_steps

    def lr_at(self, step: int) -> float:
        """The learning rate of the 0-based step ``step``: ``lr * min(1, (step + 1) / lr_warmup_steps)``."""
        w = self.lr_warmup_steps
        return self.lr * (min(1.0, (step + 1) / w) if w > 0 else 1.0)
