"""Optional experiment tracking: the metric rows sent to wandb (imported only when asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cytosae.train.config import TrainConfig

__all__ = ["WandbRun", "open_wandb"]


class WandbRun:
    """A wandb run receiving the rows of every SAE as ``sae<i>/<column>``.

    Args:
        project: The wandb project.
        record: The run description (``run.json``), logged as the wandb config.
    """

    def __init__(self, project: str, record: dict[str, Any]) -> None:
        try:
            import wandb  # optional dependency, imported only when asked for
        except ImportError as exc:
            raise ImportError(
                "TrainConfig.wandb_project is set but wandb is not installed (pip install wandb)"
            ) from exc
        self.run = wandb.init(project=project, config=record)

    def log_rows(self, rows: Sequence[dict[str, Any]], step: int) -> None:
        """Log one interval's rows (each with its ``sae`` index) at ``step``."""
        for r in rows:
            self.run.log({f"sae{r['sae']}/{k}": v for k, v in r.items() if k != "sae"}, step=step)

    def finish(self) -> None:
        self.run.finish()


def open_wandb(tcfg: TrainConfig, record: dict[str, Any]) -> WandbRun | None:
    """A :class:`WandbRun` when ``tcfg.wandb_project`` is set, else None."""
    return WandbRun(tcfg.wandb_project, record) if tcfg.wandb_project else None
