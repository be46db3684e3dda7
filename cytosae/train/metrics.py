"""What a run reports: the metric rows (``metrics.jsonl`` / ``TrainResult.history``) and the
latent-density files written at the end.

A row summarises one log interval from the trainer's accumulators (sums over the interval's steps,
float64); see docs/sae.md for the meaning of every column. At the end each SAE folder gets
``feature_density.safetensors`` (firing frequency per latent over the last
``density_window_steps`` steps) and ``density_histogram.json`` (:func:`density_histogram`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from cytosae.atomic import atomic_write_text
from cytosae.train.checkpoint import atomic_save_tensors, read_tensors

log = logging.getLogger(__name__)

__all__ = [
    "DIVERGENCE_LOSS_FACTOR",
    "DIVERGENCE_MIN_EV",
    "DIVERGENCE_PATIENCE",
    "HIST_BINS",
    "METRICS_FILE",
    "SCALARS",
    "DivergenceWatch",
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


def _parse_rows(p: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``; a torn last line (a run killed while appending) is
    dropped with a warning, a damaged line elsewhere is an error naming the file and line."""
    text = p.read_text()
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1 and not text.endswith("\n"):
                log.warning(
                    "%s: dropping its torn last line %d (the run was killed while writing it)",
                    p,
                    i + 1,
                )
                break
            raise ValueError(
                f"{p}, line {i + 1}: not a JSON metrics row ({exc}); delete the damaged line "
                "(or the run folder) and rerun"
            ) from exc
    return rows


def read_history(out_dir: Path, max_step: int | None = None) -> pd.DataFrame:
    """The rows of ``metrics.jsonl`` (those with ``step <= max_step`` when given); empty if absent.

    A torn last line (a run killed while appending it) is dropped with a warning.
    """
    p = out_dir / METRICS_FILE
    rows = _parse_rows(p) if p.is_file() else []
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


# --------------------------------------------------------------------------------------- divergence
#: The divergence rule (docs/sae.md, "When a run diverges"), checked at every log row on every
#: rank alike: a run is stopped when, for DIVERGENCE_PATIENCE consecutive log rows, the
#: explained variance is below DIVERGENCE_MIN_EV (the reconstruction error is more than 11 times
#: the variance of the data: an untrained SAE is near -1, a healthy one between 0 and 1) or the
#: row's loss exceeds DIVERGENCE_LOSS_FACTOR times the lowest row loss of the run so far. A
#: non-finite loss (any step) or parameter (any log row or save) stops it at once.
DIVERGENCE_MIN_EV = -10.0
DIVERGENCE_PATIENCE = 3
DIVERGENCE_LOSS_FACTOR = 1e4


class DivergenceWatch:
    """Applies the divergence rule to one SAE's log rows (see :data:`DIVERGENCE_MIN_EV`).

    Attributes:
        streak: consecutive log rows breaking the rule (0: the last row was healthy).
    """

    def __init__(self) -> None:
        self.streak = 0
        self.best_loss = math.inf

    def update(self, row: dict[str, Any]) -> str | None:
        """Take one log row; return why the run diverged, or None."""
        loss, ev = float(row["loss"]), float(row["explained_variance"])
        if not math.isfinite(loss):
            return f"the loss of the log row at step {row['step']} is {loss}"
        bad = []
        if math.isfinite(ev) and ev < DIVERGENCE_MIN_EV:
            bad.append(f"explained variance {ev:.4g} < {DIVERGENCE_MIN_EV:g}")
        if loss > DIVERGENCE_LOSS_FACTOR * self.best_loss:
            bad.append(
                f"loss {loss:.4g} > {DIVERGENCE_LOSS_FACTOR:g} x the lowest {self.best_loss:.4g}"
            )
        self.best_loss = min(self.best_loss, loss)
        self.streak = self.streak + 1 if bad else 0
        if self.streak >= DIVERGENCE_PATIENCE:
            return (
                f"{' and '.join(bad)} for {self.streak} consecutive log rows "
                f"(up to step {row['step']})"
            )
        return None


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
