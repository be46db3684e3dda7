"""An ipywidgets latent browser with a pure render function (testable headlessly)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cytosae.analysis.retrieval import reference_images
from cytosae.analysis.thresholds import log10_safe

log = logging.getLogger(__name__)

__all__ = ["LatentBrowser", "sorted_latents"]


def sorted_latents(stats: Any, threshold: float | None = None) -> np.ndarray:
    """Latents sorted by mean activation (descending); NaN dropped; optional log10 threshold."""
    m = np.asarray(stats.mean_acts, dtype=np.float64)
    lm = log10_safe(m)
    keep = ~np.isnan(lm)
    if threshold is not None:
        keep &= np.where(keep, lm, -np.inf) > threshold
    idx = np.flatnonzero(keep)
    return idx[np.lexsort((idx, -m[idx]))]


class LatentBrowser:
    """Browse latents: a slider over the sorted latents; each value renders reference images + stats.

    Args:
        stats: ``LatentStats``.
        images_loader: ``image_index -> (H, W, 3) array`` (e.g. ``lambda i: np.asarray(load_image(paths[i]))``).
        n_images: reference images shown.
        threshold: only latents with log10 mean act above it (None: all that fired).
    """

    def __init__(
        self,
        stats: Any,
        images_loader: Callable[[int], np.ndarray],
        *,
        n_images: int = 5,
        threshold: float | None = None,
        latents: Sequence[int] | None = None,
    ) -> None:
        import ipywidgets as w

        self.stats = stats
        self.loader = images_loader
        self.n_images = n_images
        self.latents = np.asarray(
            latents if latents is not None else sorted_latents(stats, threshold), dtype=np.int64
        )
        if self.latents.size == 0:
            raise ValueError("no latents to browse (none fired above the threshold)")
        self.slider = w.IntSlider(
            value=0, min=0, max=int(self.latents.size - 1), description="rank"
        )
        self.output = w.Output()
        self.last_figure: Any = None
        self.last_latent: int | None = None
        self.slider.observe(self._on_change, names="value")
        self.widget = w.VBox([self.slider, self.output])
        # nothing is drawn until the browser is displayed: drawing into an Output widget where no
        # front end is listening (papermill, nbval) would leak into the creating cell's outputs

    def show(self) -> Any:
        """Draw the current latent into the widget and return the widget, for display."""
        self._show(int(self.slider.value))
        return self.widget

    def render(self, latent: int, *, tag: str | None = None) -> Any:
        """A matplotlib Figure with the latent's reference images and statistics (pure).

        Args:
            latent: the latent drawn.
            tag: the run's label (``Pipeline.tag()``); when given, the title ends with it in
                parentheses and is set at the figure-title size above the images, as in the
                saved example figure.
        """
        from matplotlib.figure import Figure

        from cytosae.plotting.panels import plot_reference_images

        st = self.stats
        ref = reference_images(st, int(latent), self.n_images)
        fig = Figure(figsize=(2 * max(self.n_images, 1), 2.6))
        axes = fig.subplots(1, max(self.n_images, 1), squeeze=False)[0]
        imgs = [np.asarray(self.loader(int(i))) for i in ref["image_index"]]
        titles = [f"{lab}\n{a:.3g}" for lab, a in zip(ref["label"], ref["activation"])]
        plot_reference_images(axes, imgs, titles)
        title = (
            f"latent {latent}: freq {float(st.sparsity[latent]):.3g}, mean act {float(st.mean_acts[latent]):.3g}, "
            f"entropy {float(st.top_entropy[latent]):.2f}"
        )
        if tag is None:
            fig.suptitle(title, fontsize=9)
        else:
            fig.suptitle(f"{title} ({tag})", y=1.02)
        return fig

    def _show(self, rank: int) -> None:
        latent = int(self.latents[rank])
        fig = self.render(latent)
        self.last_figure, self.last_latent = fig, latent
        self.output.clear_output(wait=True)
        with self.output:
            try:
                from IPython.display import display

                display(fig)
            except ImportError:  # pragma: no cover
                log.info("IPython not available; figure for latent %d rendered", latent)

    def _on_change(self, change: dict[str, Any]) -> None:
        self._show(int(change["new"]))

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.show())
