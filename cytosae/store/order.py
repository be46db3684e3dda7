"""The image order of one pass over a token store: a pure function of ``(n_images, seed, epoch)``.

One owner for the order, shared by :class:`cytosae.store.reader.TokenStore`, the in-memory
:class:`cytosae.train.source.TensorTokens` and the training stream (:mod:`cytosae.train.source`),
so that a store and a tensor holding the same tokens give the same batches. numpy only (no torch,
no pandas), so importing it costs nothing.

The shuffle is a full permutation of the images (every ordering equally likely, as the authors'
``datasets.Dataset.shuffle``), not a chunked one: a manifest sorted by class (MLL23's 18 classes in
image_id order) gives 64-image batches with the class mix of a random sample (about 16 of 18
classes; ``tests/test_reader.py::test_full_shuffle_mixes_classes_like_the_paper``). The shard
layout does not enter the order; the reader gathers each batch's rows from wherever they lie.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_order"]


def epoch_order(
    n_images: int, *, shuffle: bool = True, seed: int = 42, epoch: int = 0
) -> np.ndarray:
    """The image indices of pass ``epoch``: a permutation of ``range(n_images)`` (int64).

    ``shuffle=False`` gives ``arange(n_images)`` for every epoch. Otherwise the permutation is
    ``np.random.default_rng([seed, epoch]).permutation(n_images)``: deterministic in
    ``(n_images, seed, epoch)`` (for one numpy version: numpy does not promise identical
    ``Generator`` streams across releases), independent of the shard sizes, the batch size and the
    reader.
    """
    n = int(n_images)
    if n < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)
