"""Stage 4, training: the SAE training loop, its state, metrics, checkpoints and data parallelism."""

from cytosae.train.loop import (
    TensorTokens,
    TokenSource,
    TrainConfig,
    TrainResult,
    train_many,
    train_sae,
)

__all__ = ["TensorTokens", "TokenSource", "TrainConfig", "TrainResult", "train_many", "train_sae"]
