"""Where the training tokens come from and in which order: the token-source protocol, an
in-memory source, and the stream of ``(step, batch)`` pairs a run consumes.

The stream is the authors' (``docs/sae.md``, "Data order"): the images in the order of one pass
(:func:`cytosae.store.order.epoch_order`: a full shuffle seeded by ``TrainConfig.data_seed``, or
the plain order with ``shuffle=False``), that order repeated pass after pass (reshuffled per pass
only with ``reshuffle_each_epoch``), read as one endless sequence. The b_dec init reads its head,
stream images ``0 .. b_dec_init_images - 1``; step ``s`` then reads the next ``batch_images``:
stream images ``b_dec_init_images + s * batch_images`` onwards. Batches run across pass ends (a
batch may hold the last images of one pass and the first of the next), so no image is dropped.
Everything is a pure function of the step, so a resumed run reads exactly what an uninterrupted
one would.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from cytosae.hardware import resolve_device
from cytosae.store.order import epoch_order
from cytosae.train.config import TrainConfig

__all__ = [
    "DataStream",
    "TensorTokens",
    "TokenSource",
    "as_source",
    "b_dec_sample",
    "data_position",
    "step_batches",
]


class TokenSource(Protocol):
    """What the trainer needs from a token store (cytosae.store.reader.TokenStore satisfies it)."""

    n_images: int
    n_tokens: int
    d_model: int
    digest: str

    def iter_read(
        self, index_batches: Iterable[np.ndarray], *, as_stored: bool = False
    ) -> Iterator[Tensor]:
        """Float32 ``(len(idx), T, D)`` of each index array, in order (may read ahead); with
        ``as_stored`` the source may return its storage dtype instead (same values)."""
        ...


class TensorTokens:
    """In-memory tokens ``(N, T, D)`` (or ``(N, D)``, one token per "image") with the store protocol.

    Orders and batches are the store's (:func:`cytosae.store.order.epoch_order`): the same tokens
    as a tensor or as a :class:`~cytosae.store.reader.TokenStore` train identically.
    """

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

    def epoch_order(self, *, shuffle: bool = True, seed: int = 42, epoch: int = 0) -> np.ndarray:
        """Image indices of one pass (the store's :func:`~cytosae.store.order.epoch_order`)."""
        return epoch_order(self.n_images, shuffle=shuffle, seed=seed, epoch=epoch)

    def iter_read(
        self, index_batches: Iterable[Sequence[int] | np.ndarray], *, as_stored: bool = False
    ) -> Iterator[Tensor]:
        """The tokens of each index array (float32, which is also how they are stored here)."""
        for idx in index_batches:
            i = torch.as_tensor(np.asarray(idx, dtype=np.int64).reshape(-1))
            if i.numel() and (int(i.min()) < 0 or int(i.max()) >= self.n_images):
                raise IndexError(f"image index out of range [0, {self.n_images})")
            yield self.tokens[i]

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
        """One pass's batches, as :meth:`cytosae.store.reader.TokenStore.iter_batches`."""
        if batch_images <= 0:
            raise ValueError(f"batch_images must be positive, got {batch_images}")
        order = self.epoch_order(shuffle=shuffle, seed=seed, epoch=epoch)
        n_b = self.n_images // batch_images if drop_last else -(-self.n_images // batch_images)
        yield from self.iter_read(
            order[b * batch_images : (b + 1) * batch_images] for b in range(start_batch, n_b)
        )


def as_source(data: Any) -> TokenSource:
    """Wrap a tensor into :class:`TensorTokens`; pass a store through."""
    if isinstance(data, Tensor):
        return TensorTokens(data)
    for attr in ("iter_read", "n_images", "n_tokens", "d_model"):
        if not hasattr(data, attr):
            raise TypeError(
                f"training data must be a Tensor or a TokenStore-like object; {type(data).__name__} lacks {attr}"
            )
    return data


class DataStream:
    """The training stream of a run over ``n_images`` images: stream position -> image index.

    Position ``p`` is image ``order(p // n_images)[p % n_images]``, where ``order(q)`` is
    :func:`~cytosae.store.order.epoch_order` with ``shuffle=tcfg.shuffle``,
    ``seed=tcfg.data_seed`` and ``epoch=q`` if ``tcfg.reshuffle_each_epoch`` else 0.
    """

    def __init__(self, n_images: int, tcfg: TrainConfig) -> None:
        if n_images <= 0:
            raise ValueError(f"the data has no images (n_images={n_images})")
        self.n_images, self.tcfg = int(n_images), tcfg
        self._orders: dict[int, np.ndarray] = {}

    def order(self, pass_index: int) -> np.ndarray:
        """The image order of pass ``pass_index`` (the last two are cached)."""
        t = self.tcfg
        key = pass_index if (t.shuffle and t.reshuffle_each_epoch) else 0
        o = self._orders.get(key)
        if o is None:
            o = epoch_order(self.n_images, shuffle=t.shuffle, seed=t.data_seed, epoch=key)
            if len(self._orders) >= 2:
                self._orders.pop(next(iter(self._orders)))
            self._orders[key] = o
        return o

    def images(self, start: int, stop: int) -> np.ndarray:
        """Image indices of the stream positions ``start .. stop - 1`` (int64)."""
        parts, p = [], int(start)
        while p < stop:
            q, i = divmod(p, self.n_images)
            take = min(stop - p, self.n_images - i)
            parts.append(self.order(q)[i : i + take])
            p += take
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def step_start(self, step: int) -> int:
        """Stream position of the first image read by the 0-based ``step``."""
        return self.tcfg.b_dec_init_images + int(step) * self.tcfg.batch_images

    def step_images(self, step: int) -> np.ndarray:
        """Image indices of the batch of ``step``."""
        s = self.step_start(step)
        return self.images(s, s + self.tcfg.batch_images)

    def b_dec_images(self) -> np.ndarray:
        """Image indices read by the b_dec init: the stream's first ``b_dec_init_images``."""
        return self.images(0, self.tcfg.b_dec_init_images)


def data_position(src: TokenSource, tcfg: TrainConfig, step: int) -> dict[str, int]:
    """Where the stream stands after ``step`` steps (recorded in trainer states).

    ``stream_image``: stream position of the next image to read; ``pass``: its pass (0-based);
    ``image``: its position within that pass's order.
    """
    pos = DataStream(src.n_images, tcfg).step_start(step)
    q, i = divmod(pos, int(src.n_images))
    return {"stream_image": pos, "pass": q, "image": i}


def step_batches(
    src: TokenSource, tcfg: TrainConfig, start_step: int, stop_step: int
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(step, batch_BTD)`` for the steps ``start_step .. stop_step - 1`` (see the module
    docstring); the source reads ahead, never past ``stop_step``.

    Batches are float32, except when training on CUDA: then a token store's batches come as
    stored (float16: half the bytes to copy, converted on the GPU by the loop's ``.float()``;
    the values are the same).
    """
    stream = DataStream(src.n_images, tcfg)
    steps = range(start_step, stop_step)
    index_batches = (stream.step_images(s) for s in steps)
    if resolve_device(tcfg.device).type == "cuda":
        reader = src.iter_read(index_batches, as_stored=True)
    else:
        reader = src.iter_read(index_batches)
    with contextlib.closing(reader) as batches:
        yield from zip(steps, batches)


def b_dec_sample(src: TokenSource, tcfg: TrainConfig) -> Tensor:
    """The images the b_dec init reads, ``(b_dec_init_images, T, D)``: the stream's head."""
    if tcfg.b_dec_init_images <= 0:
        raise ValueError(
            "a data-dependent b_dec init needs TrainConfig.b_dec_init_images > 0 "
            "(0 is only for b_dec_init='zeros')"
        )
    with contextlib.closing(src.iter_read([DataStream(src.n_images, tcfg).b_dec_images()])) as it:
        return next(it)
