"""Where the training tokens come from and in which order: the token-source protocol, an
in-memory source, and the stream of ``(step, batch)`` pairs a run consumes.

The order is the authors': one shuffle seeded by ``TrainConfig.data_seed``, repeated at every pass
unless ``reshuffle_each_epoch``; step ``s`` reads batch ``s % per_epoch`` of pass ``s // per_epoch``,
so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

from cytosae.train.config import TrainConfig

__all__ = [
    "TensorTokens",
    "TokenSource",
    "as_source",
    "b_dec_sample",
    "batch_position",
    "step_batches",
]


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
        """Image indices of one pass: ``arange`` or a permutation seeded by ``(seed, epoch)``."""
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


def batch_position(src: TokenSource, batch_images: int, step: int) -> tuple[int, int]:
    """``(epoch, batch)`` read by the 0-based ``step`` (full batches of ``batch_images`` only)."""
    per_epoch = src.n_images // batch_images
    if per_epoch == 0:
        raise ValueError(
            f"the data has {src.n_images} images, fewer than batch_images={batch_images}"
        )
    epoch, batch = divmod(step, per_epoch)
    return epoch, batch


def step_batches(
    src: TokenSource, tcfg: TrainConfig, start_step: int, stop_step: int
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(step, batch_BTD)`` for the steps ``start_step .. stop_step - 1``, passes chained."""
    step = start_step
    while step < stop_step:
        epoch, b = batch_position(src, tcfg.batch_images, step)
        got = False
        for batch_BTD in src.iter_batches(
            tcfg.batch_images, shuffle=True, seed=tcfg.data_seed,
            epoch=epoch if tcfg.reshuffle_each_epoch else 0, start_batch=b, drop_last=True,
        ):  # fmt: skip
            got = True
            yield step, batch_BTD
            step += 1
            if step == stop_step:
                return
        if not got:
            raise RuntimeError(
                f"the token source yielded no batch for epoch {epoch}, start_batch {b}"
            )


def b_dec_sample(src: TokenSource, tcfg: TrainConfig) -> Tensor:
    """The first ``b_dec_init_images`` images of the first pass's order, ``(B, T, D)``."""
    return next(
        iter(
            src.iter_batches(
                tcfg.b_dec_init_images, shuffle=True, seed=tcfg.data_seed, epoch=0, drop_last=False
            )
        )
    )
