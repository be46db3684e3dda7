"""Stage 4, training: the SAE training loop, its state, metrics, checkpoints and data parallelism.

Modules: :mod:`~cytosae.train.config` (``TrainConfig``, the LR schedule), :mod:`~cytosae.train.source`
(token sources and the step -> batch order), :mod:`~cytosae.train.trainer` (one SAE's step),
:mod:`~cytosae.train.metrics` (log rows, density files), :mod:`~cytosae.train.state` (resume),
:mod:`~cytosae.train.tracking` (wandb), :mod:`~cytosae.train.loop` (``train_many``, ``train_sae``)
and :mod:`~cytosae.train.checkpoint` (our SAE format, trainer-state folders).
"""

from cytosae.train.config import TrainConfig
from cytosae.train.loop import TrainResult, train_many, train_sae
from cytosae.train.metrics import density_histogram
from cytosae.train.source import TensorTokens, TokenSource

__all__ = [
    "TensorTokens",
    "TokenSource",
    "TrainConfig",
    "TrainResult",
    "density_histogram",
    "train_many",
    "train_sae",
]
