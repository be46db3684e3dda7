"""A stand-in latent explorer for the browser tier: the shape a real one has, on made-up numbers.

A slider over ranks, a dropdown that picks the ordering of the latents, a caption and a PNG image
(an ``ipywidgets.Image``) that are redrawn whenever either control changes. The drawing is pure
(``caption`` and ``render`` depend only on their arguments), so a test can compute what the page
must show for a given state and compare it byte for byte with what the browser displays.

The widgets carry stable CSS classes (``CLASSES``); the browser tests find them by these, so a real
explorer that adds the same classes can be tested by the same harness.
"""

from __future__ import annotations

import io

import numpy as np

N_LATENTS = 20
# each ordering is a permutation of the latents (rank -> latent) and no two agree at any rank, so
# changing the ordering always changes the latent shown (offsets 0, 7 and 13 modulo 20)
ORDERINGS: dict[str, tuple[int, ...]] = {
    "mean activation": tuple((r + 7) % N_LATENTS for r in range(N_LATENTS)),
    "frequency": tuple((r + 13) % N_LATENTS for r in range(N_LATENTS)),
    "latent index": tuple(range(N_LATENTS)),
}
CLASSES = {
    "root": "cytosae-explorer",
    "slider": "cytosae-rank",
    "ordering": "cytosae-ordering",
    "caption": "cytosae-caption",
    "image": "cytosae-image",
}


def latent_at(rank: int, ordering: str) -> int:
    """The latent shown at ``rank`` under ``ordering``."""
    return ORDERINGS[ordering][rank]


def caption(rank: int, ordering: str) -> str:
    """The caption's text (plain; the widget shows it as HTML without markup in the text)."""
    return f"rank {rank} | latent {latent_at(rank, ordering)} | ordering: {ordering}"


def render(latent: int) -> bytes:
    """PNG bytes of a small figure for ``latent`` (pure: same latent, same bytes)."""
    from matplotlib.figure import Figure

    rng = np.random.default_rng(latent)
    fig = Figure(figsize=(3.2, 2.4), dpi=100)
    ax = fig.subplots()
    ax.imshow(rng.random((12, 16)), cmap="magma", vmin=0, vmax=1)
    ax.set_title(f"latent {latent}", fontsize=10)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class StandinExplorer:
    """Slider + ordering dropdown -> caption + image; observers redraw on every change."""

    def __init__(self, rank: int = 0, ordering: str = "mean activation") -> None:
        import ipywidgets as w

        self.slider = w.IntSlider(value=rank, min=0, max=N_LATENTS - 1, description="rank")
        self.ordering = w.Dropdown(options=list(ORDERINGS), value=ordering, description="ordering")
        self.caption = w.HTML()
        self.image = w.Image(format="png", width=320, height=240)
        for name, widget in (
            ("slider", self.slider),
            ("ordering", self.ordering),
            ("caption", self.caption),
            ("image", self.image),
        ):
            widget.add_class(CLASSES[name])
        self.slider.observe(self._on_change, names="value")
        self.ordering.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.slider, self.ordering]), self.caption, self.image])
        self.widget.add_class(CLASSES["root"])
        self.redraw()

    def redraw(self) -> None:
        rank, ordering = int(self.slider.value), str(self.ordering.value)
        self.image.value = render(latent_at(rank, ordering))
        self.caption.value = caption(rank, ordering)

    def _on_change(self, change: dict) -> None:
        self.redraw()

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook only
        from IPython.display import display

        display(self.widget)
