"""The latent explorer: an ipywidgets dashboard per latent, driven by a slider (notebook 10).

:class:`LatentExplorer` only wires controls: every number comes from
:meth:`ExplorerData.view <cytosae.analysis.explorer.ExplorerData.view>` and every pixel from the
pure functions of :mod:`cytosae.plotting.dashboard`. It is made of ``Image`` widgets holding PNG
bytes and ``HTML`` widgets (no ``Output`` widget), so it renders the same in JupyterLab, in a
plain notebook and in Voila, and its state can be asserted on without a front end.

Controls: the ordering (dropdown), the two filters (above the threshold; hide the latents that
fire everywhere), the segmentation-map overlay, a slider over the ranks of the listed latents
(its handle takes the arrow, Page and Home/End keys in the front end), ``-``/``+`` buttons, a
text box for a latent's index (any latent, listed or not) and "next interesting" (see
:mod:`cytosae.analysis.explorer` for the definition). The explorer opens on the first
interesting latent of the default ordering: never one that fires everywhere.

The widgets carry stable CSS classes (:data:`CLASSES`), by which the browser tests find them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from cytosae.analysis.explorer import ExplorerData, LatentView
from cytosae.plotting import dashboard

log = logging.getLogger(__name__)

__all__ = ["CLASSES", "LatentExplorer"]

CLASSES = {
    "root": "cytosae-explorer",
    "slider": "cytosae-rank",
    "ordering": "cytosae-ordering",
    "caption": "cytosae-caption",
    "image": "cytosae-image",
    "latent": "cytosae-latent",
    "minus": "cytosae-minus",
    "plus": "cytosae-plus",
    "next": "cytosae-next",
    "threshold": "cytosae-filter-threshold",
    "everywhere": "cytosae-filter-everywhere",
    "overlay": "cytosae-overlay",
    "side": "cytosae-side",
    "cohort": "cytosae-cohort",
}


class LatentExplorer:
    """A dashboard per latent with a slider, orderings, filters and "next interesting".

    Args:
        data: the explorer's data (``Pipeline.explorer_data()``, or
            :meth:`ExplorerData.from_stats <cytosae.analysis.explorer.ExplorerData.from_stats>`
            for statistics alone).
        ordering: the opening ordering (default: :meth:`ExplorerData.default_ordering`).
        n_images: top images shown per dataset.
        overlay: draw Fig. 3's segmentation map over the images.
        latent: the opening latent (default: the first interesting one of the ordering).

    Attributes:
        latents: the listed latents, in the current ordering and filters (slider rank -> latent).
        view: the :class:`~cytosae.analysis.explorer.LatentView` shown.
        seen: the latents shown so far ("next interesting" skips them).
        last_render_s: seconds the last redraw took (look-up and drawing).
    """

    def __init__(
        self,
        data: ExplorerData,
        *,
        ordering: str | None = None,
        n_images: int = 5,
        overlay: bool = True,
        latent: int | None = None,
    ) -> None:
        import ipywidgets as w

        self.data = data
        self.n_images = int(n_images)
        self.seen: set[int] = set()
        self.view: LatentView | None = None
        self.notice = ""
        self.last_render_s = 0.0
        self._quiet_depth = 0
        f = data.filters
        ordering = ordering or data.default_ordering()
        if ordering not in data.orderings():
            raise ValueError(f"unknown ordering {ordering!r}; this explorer has {data.orderings()}")

        self.ordering = w.Dropdown(
            options=[(data.ordering_label(o), o) for o in data.orderings()],
            value=ordering,
            description="order by",
            layout=w.Layout(width="300px"),
        )
        thr = "threshold off" if f.threshold is None else f"log10 mean activation > {f.threshold:g}"
        self.threshold_filter = w.Checkbox(
            value=True, description=thr, indent=False, layout=w.Layout(width="auto")
        )
        self.everywhere_filter = w.Checkbox(
            value=True,
            description="hide latents that fire everywhere",
            indent=False,
            layout=w.Layout(width="auto"),
        )
        self.overlay = w.Checkbox(
            value=bool(overlay),
            description="segmentation map (Fig. 3)",
            indent=False,
            layout=w.Layout(width="auto"),
        )
        self.minus = w.Button(description="\u2212", tooltip="previous latent (rank - 1)")
        self.plus = w.Button(description="+", tooltip="next latent (rank + 1)")
        for b in (self.minus, self.plus):
            b.layout = w.Layout(width="36px")
        self.slider = w.IntSlider(
            value=0,
            min=0,
            max=0,
            description="rank",
            continuous_update=False,
            layout=w.Layout(width="420px"),
        )
        self.latent_box = w.IntText(
            value=0,
            description="latent",
            layout=w.Layout(width="170px"),
        )
        self.next_button = w.Button(
            description="next interesting \u25b6",
            tooltip="the next latent in this ordering that passes both filters and has a full "
            "set of reference images, not shown yet",
            layout=w.Layout(width="170px"),
        )
        self.caption = w.HTML()
        self.image = w.Image(format="png")
        self.side = w.HTML()
        self.cohort = w.HTML()
        for name, widget in (
            ("slider", self.slider),
            ("ordering", self.ordering),
            ("caption", self.caption),
            ("image", self.image),
            ("latent", self.latent_box),
            ("minus", self.minus),
            ("plus", self.plus),
            ("next", self.next_button),
            ("threshold", self.threshold_filter),
            ("everywhere", self.everywhere_filter),
            ("overlay", self.overlay),
            ("side", self.side),
            ("cohort", self.cohort),
        ):
            widget.add_class(CLASSES[name])

        controls = w.VBox(
            [
                w.HBox(
                    [self.ordering, self.threshold_filter, self.everywhere_filter, self.overlay],
                    layout=w.Layout(flex_flow="row wrap", align_items="center"),
                ),
                w.HBox(
                    [self.minus, self.slider, self.plus, self.latent_box, self.next_button],
                    layout=w.Layout(flex_flow="row wrap", align_items="center"),
                ),
            ]
        )
        body = w.HBox(
            [self.side, self.image, self.cohort],
            layout=w.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        self.widget = w.VBox([controls, self.caption, body])
        self.widget.add_class(CLASSES["root"])

        self.latents = np.zeros(0, dtype=np.int64)
        self._relist(keep=None)
        start = self._opening_rank() if latent is None else None
        if latent is not None:
            self.show_latent(int(latent))
        else:
            self._set_rank(start if start is not None else 0)

        self.slider.observe(self._on_slider, names="value")
        self.ordering.observe(self._on_ordering, names="value")
        self.threshold_filter.observe(self._on_filter, names="value")
        self.everywhere_filter.observe(self._on_filter, names="value")
        self.overlay.observe(self._on_overlay, names="value")
        self.latent_box.observe(self._on_latent_box, names="value")
        self.minus.on_click(lambda _b: self.step(-1))
        self.plus.on_click(lambda _b: self.step(+1))
        self.next_button.on_click(lambda _b: self.next_interesting())

    # ------------------------------------------------------------------------- state
    @property
    def latent(self) -> int | None:
        """The latent shown (None before anything was)."""
        return None if self.view is None else int(self.view.latent)

    @property
    def rank(self) -> int | None:
        """The slider's rank of the latent shown, None when it is not in the list."""
        if self.view is None:
            return None
        hits = np.flatnonzero(self.latents == self.view.latent)
        return int(hits[0]) if hits.size else None

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _relist(self, keep: int | None) -> None:
        """Recompute the listed latents; stay on ``keep`` when it is still listed."""
        self.latents = self.data.ordered(
            self.ordering.value,
            threshold=bool(self.threshold_filter.value),
            everywhere=bool(self.everywhere_filter.value),
        )
        n = len(self.latents)
        with self._quiet():
            self.slider.max = max(n - 1, 0)
            self.slider.disabled = n == 0
            for b in (self.minus, self.plus, self.next_button):
                b.disabled = n == 0
        if keep is not None and n:
            hits = np.flatnonzero(self.latents == keep)
            if hits.size:
                with self._quiet():
                    self.slider.value = int(hits[0])

    def _opening_rank(self) -> int | None:
        """The first interesting latent's rank (None: none is; the explorer opens on rank 0)."""
        return self.data.next_interesting(self.latents, -1)

    @property
    def position(self) -> str:
        """Where the latent shown is: its rank, the ordering and the filters applied."""
        label = self.data.ordering_label(self.ordering.value)
        on = [
            name
            for name, box in (
                ("threshold", self.threshold_filter),
                ("not everywhere", self.everywhere_filter),
            )
            if box.value
        ]
        filt = f"filters: {', '.join(on)}" if on else "no filter"
        r = self.rank
        if r is None:
            return f"not in the list ({len(self.latents)} latents by {label}, {filt})"
        return f"rank {r} of {len(self.latents)} by {label} ({filt})"

    # ------------------------------------------------------------------------ drawing
    def _draw(self, latent: int) -> None:
        t0 = time.perf_counter()
        view = self.data.view(latent, self.n_images)
        self.view = view
        if view.ok:
            self.seen.add(int(view.latent))
        png = dashboard.mosaic_png(view, self.n_images, overlay=bool(self.overlay.value))
        caption = dashboard.caption_html(view, self.position)
        if self.notice:
            caption += f"<div style='color:#8a6d00'>{self.notice}</div>"
            self.notice = ""
        self.image.value = png
        self.caption.value = caption
        self.side.value = dashboard.side_html(view)
        self.cohort.value = dashboard.cohort_html(view)
        with self._quiet():
            self.latent_box.value = int(view.latent)
        self.last_render_s = time.perf_counter() - t0

    def _draw_empty(self) -> None:
        t0 = time.perf_counter()
        self.view = None
        f = self.data.filters
        msg = (
            "no latent passes the filters (log10 mean activation > "
            f"{f.threshold:g}, not firing everywhere) on this run; untick a filter to list them"
        )
        self.image.value = dashboard.notice_png("no latent listed", msg)
        self.caption.value = f"<b>no latent listed</b><br><span style='color:#c62828'>{msg}</span>"
        self.side.value = self.cohort.value = ""
        self.last_render_s = time.perf_counter() - t0

    def _set_rank(self, rank: int) -> None:
        """Move the slider to ``rank`` (clamped) and draw its latent."""
        if not len(self.latents):
            self._draw_empty()
            return
        rank = int(np.clip(rank, 0, len(self.latents) - 1))
        with self._quiet():
            self.slider.value = rank
        self._draw(int(self.latents[rank]))

    # ------------------------------------------------------------------------ actions
    def show_latent(self, latent: int) -> None:
        """Show ``latent`` (any index: listed, filtered out, dead or out of range)."""
        hits = np.flatnonzero(self.latents == latent)
        if hits.size:
            with self._quiet():
                self.slider.value = int(hits[0])
        self._draw(int(latent))

    def step(self, delta: int) -> None:
        """Move ``delta`` ranks from the latent shown (clamped to the list)."""
        if not len(self.latents):
            return
        r = self.rank if self.rank is not None else int(self.slider.value) - (delta > 0)
        self._set_rank(r + delta)

    def next_interesting(self) -> int | None:
        """Jump to the next interesting latent not shown yet; returns it (None: none left)."""
        r = self.rank if self.rank is not None else int(self.slider.value) - 1
        nxt = self.data.next_interesting(self.latents, r, self.seen)
        if nxt is None:
            self.notice = "no further interesting latent in this ordering (all shown)"
            if self.view is not None:
                self._draw(int(self.view.latent))
            return None
        self._set_rank(nxt)
        return int(self.latents[nxt])

    def show(self) -> Any:
        """The root widget, for display (the last expression of a cell, or ``display``)."""
        return self.widget

    def figure(self, *, pyplot: bool = True) -> tuple[Any, dict[str, Any]]:
        """The static dashboard of the latent shown (:func:`~cytosae.plotting.dashboard.dashboard_figure`)."""
        if self.view is None:
            raise ValueError("no latent is shown")
        return dashboard.dashboard_figure(
            self.view, n_images=self.n_images, overlay=bool(self.overlay.value), pyplot=pyplot
        )

    # ---------------------------------------------------------------------- observers
    def _on_slider(self, change: dict[str, Any]) -> None:
        if self._quiet_depth or not len(self.latents):
            return
        self._draw(int(self.latents[int(change["new"])]))

    def _on_ordering(self, change: dict[str, Any]) -> None:
        self._relist(keep=None)
        self._set_rank(0)  # a new ordering opens at its top latent

    def _on_filter(self, change: dict[str, Any]) -> None:
        keep = self.latent
        self._relist(keep=keep)
        if not len(self.latents):
            self._draw_empty()
        elif keep is not None and self.rank is not None:
            self._draw(keep)  # still listed: same latent, new position
        else:
            self._set_rank(0)

    def _on_overlay(self, change: dict[str, Any]) -> None:
        if self.view is not None:
            self._draw(int(self.view.latent))

    def _on_latent_box(self, change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        self.show_latent(int(change["new"]))

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.widget)
