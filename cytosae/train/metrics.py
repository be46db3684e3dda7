"""What a run reports: the metric rows (``metrics.jsonl`` / ``TrainResult.history``) and the
latent-density files written at the end.

A row summarises one log interval from the trainer's accumulators (sums over the interval's steps,
float64); see docs/sae.md for the meaning of every column. At the end each SAE folder gets
``feature_density.safetensors`` (firing frequency per latent over the last
``density_window_steps`` steps) and ``density_histogram.json`` (:func:`density_histogram`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from cytosae.atomic import atomic_write_text
from cytosae.train.checkpoint import atomic_save_tensors, read_tensors

__all__ = [
    "HIST_BINS",
    "METRICS_FILE",
    "SCALARS",
    "append_rows",
    "clear_history",
    "density_histogram",
    "load_feature_density",
    "log_row",
    "read_history",
    "sae_history",
    "save_feature_density",
    "truncate_history",
]

METRICS_FILE = "metrics.jsonl"
FEATURE_DENSITY_FILE = "feature_density.safetensors"
DENSITY_HISTOGRAM_FILE = "density_histogram.json"
HIST_BINS = np.arange(
    -8.0, 0.5, 0.5
)  # log10 firing-frequency bin edges; never-fired latents counted apart

#: Scalar sums a trainer accumulates over a log interval.
SCALARS = (
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


# --------------------------------------------------------------------------------------- rows
def log_row(
    acc: dict[str, float],
    fire_S: Tensor,
    dead_S: Tensor,
    dense_threshold: float,
    step: int,
    lr: float,
) -> dict[str, Any]:
    """One metrics row from a log interval's sums.

    Args:
        acc: The :data:`SCALARS` summed over the interval.
        fire_S: Tokens each latent fired on during the interval.
        dead_S: Latents dead now (no firing for more than the dead-feature window).
        dense_threshold: A latent firing on more than this fraction of the tokens is "dense".
        step: Steps done.
        lr: Learning rate of the last step.
    """
    steps = max(acc["steps"], 1.0)
    n = max(acc["n_tokens"], 1.0)
    nmse = acc["sse"] / acc["sst"] if acc["sst"] > 0 else float("nan")
    return {
        "step": step,
        "loss": acc["loss"] / steps,
        "mse": acc["mse"] / steps,
        "l1": acc["l1"] / steps,
        "ghost": acc["ghost"] / steps,
        "aux": acc["aux"] / steps,
        "l0": acc["l0_sum"] / n,
        "nmse": nmse,
        "explained_variance": 1.0 - nmse,
        "dead_frac": float(dead_S.double().mean()),
        "dense_frac": float((fire_S / n > dense_threshold).double().mean()),
        "sparse_step_frac": acc["sparse_steps"] / steps,
        "lr": lr,
    }


def append_rows(out_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append ``rows`` to ``metrics.jsonl``, one JSON object a line."""
    with open(out_dir / METRICS_FILE, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)


def read_history(out_dir: Path, max_step: int | None = None) -> pd.DataFrame:
    """The rows of ``metrics.jsonl`` (those with ``step <= max_step`` when given); empty if absent."""
    p = out_dir / METRICS_FILE
    rows = (
        [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        if p.is_file()
        else []
    )
    if max_step is not None:
        rows = [r for r in rows if r["step"] <= max_step]
    return pd.DataFrame(rows)


def truncate_history(out_dir: Path, step: int) -> None:
    """Keep the rows of ``metrics.jsonl`` up to ``step`` (a resumed run logs the rest again)."""
    hist = read_history(out_dir, step)
    rows = hist.to_dict("records") if len(hist) else []
    atomic_write_text(out_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def clear_history(out_dir: Path) -> None:
    """Remove ``metrics.jsonl`` (a fresh run)."""
    (out_dir / METRICS_FILE).unlink(missing_ok=True)


def sae_history(history: pd.DataFrame, index: int) -> pd.DataFrame:
    """The rows of SAE ``index`` of a run's history, without the ``sae`` column."""
    if not len(history):
        return history
    return history[history["sae"] == index].drop(columns="sae").reset_index(drop=True)


# --------------------------------------------------------------------------------------- density
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


def save_feature_density(freq_S: Tensor, directory: Path) -> None:
    """Write ``feature_density.safetensors`` and ``density_histogram.json`` into ``directory``."""
    atomic_save_tensors({"density": freq_S}, directory / FEATURE_DENSITY_FILE)
    atomic_write_text(
        directory / DENSITY_HISTOGRAM_FILE,
        json.dumps(density_histogram(freq_S), indent=1) + "\n",
    )


def load_feature_density(directory: Path) -> Tensor:
    """The per-latent firing frequency written by :func:`save_feature_density`."""
    return read_tensors(directory / FEATURE_DENSITY_FILE)["density"]
