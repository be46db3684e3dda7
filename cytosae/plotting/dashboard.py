"""The latent dashboard: pure drawing of one :class:`~cytosae.analysis.explorer.LatentView`.

A view holds every number and pixel the dashboard shows, so nothing here reads files or
encodes, and each function's output depends on its arguments only (a test, a notebook, Voila and
the saved figure draw the same thing). Two renderers share the view:

* the **widget's** parts, made to redraw in a few tens of milliseconds: :func:`caption_html`
  (the latent, its statistics, the two filters), :func:`mosaic_png` (its top images in every
  dataset with Fig. 3's segmentation map, titled, one PNG drawn with PIL), :func:`side_html`
  (the activation histogram, the label mix of its top images and its place in the latent
  landscape, as inline SVG and HTML bars) and :func:`cohort_html` (the cohort's disease
  barcodes, the patients that use it most and, on the synthetic world, the ground-truth concepts
  it detects); :func:`message_png` is the card shown for a dead or out-of-range latent;
* the **static** figure, :func:`dashboard_figure` (matplotlib; the same panels and the same
  mosaic), which the notebook saves to ``figures/``.

matplotlib is not used by the widget: a figure of this size takes about a second to draw on a
small CPU, far from the half second a slider step may take (``benchmarks/bench_explorer.py``).
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from cytosae.analysis.explorer import LatentView, disease_name
from cytosae.analysis.retrieval import segmentation_map

__all__ = [
    "caption_html",
    "caption_text",
    "cohort_html",
    "dashboard_figure",
    "message_png",
    "mosaic_image",
    "mosaic_png",
    "notice_png",
    "side_html",
    "stats_table_html",
]

FIGSIZE = (14.0, 8.6)
OK_COLOR = "#1a7f37"
BAD_COLOR = "#c62828"
D1_COLOR = "#1f5fa8"
D2_COLOR = "#c2571a"
CONCEPT_COLOR = "#6a1b9a"
BAR_COLOR = "#607d8b"
DATASET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
DATASET_TITLES = {
    "mll23": "MLL23",
    "acevedo": "Acevedo",
    "matek19": "Matek19",
    "bmc": "BMC",
    "hehr": "AML Hehr",
}
OVERLAY_NOTE = "segmentation map (Fig. 3): each patch shaded by its activation"
#: brightness kept by a patch where the latent is silent, so that the cell stays readable (Fig. 3
#: itself draws those patches black: 0.0)
OVERLAY_FLOOR = 0.3


def _ds(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{x:.{digits}g}" if np.isfinite(x) else "n/a"


def _pct(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0%"
    return f"{100 * x:.2g}%" if x < 0.1 else f"{100 * x:.0f}%"


def _is_synthetic(tag: str) -> bool:
    return "synthetic" in tag.lower()


def _colors(view: LatentView) -> dict[str, str]:
    return {d: DATASET_COLORS[k % len(DATASET_COLORS)] for k, d in enumerate(view.stats["dataset"])}


# ------------------------------------------------------------------------------- the words
def _filter_lines(view: LatentView) -> list[tuple[str, bool]]:
    """The two filters as (text, passed)."""
    f, row = view.filters, view.row()
    lm = row["log10_mean_act"]
    if f.threshold is None:
        thr = ("threshold off", True)
    elif view.above_threshold:
        thr = (f"\u2713 above threshold (log10 mean activation {lm:.2f} > {f.threshold:g})", True)
    else:
        thr = (
            f"\u2717 below threshold (log10 mean activation {_fmt(lm)} \u2264 {f.threshold:g})",
            False,
        )
    if view.fires_everywhere:
        ev = (f"\u2717 fires everywhere ({view.everywhere_reason})", False)
    else:
        parts = []
        if f.max_frequency is not None:
            parts.append(f"frequency \u2264 {f.max_frequency:g}")
        if f.max_patch_frequency is not None and np.isfinite(row["patch_frequency"]):
            parts.append(f"patch frequency \u2264 {f.max_patch_frequency:g}")
        ev = ("\u2713 specific, does not fire everywhere (" + ", ".join(parts) + ")", True)
    return [thr, ev]


def _entropy(value: float) -> str:
    """An entropy in nats, 2 decimals; a single label's entropy is -0.0 in floating point (-p log p
    summed with p = 1), written 0.00."""
    return f"{value + 0.0:.2f}"


def _summary(view: LatentView, sep: str = "  \u00b7  ") -> str:
    row = view.row()
    n = int(row["n_images"])
    fired = f" ({round(row['frequency'] * n)} of {n})" if n > 0 else ""
    ent = row["entropy"]
    parts = [
        f"{_ds(view.reference)}: frequency {_fmt(row['frequency'])}{fired}",
        f"mean activation {_fmt(row['mean_act'])}",
        f"label entropy {_entropy(ent)} nats" if ent >= 0 else "label entropy n/a (< k images)",
    ]
    if np.isfinite(row["patch_frequency"]):
        parts.append(f"fires on {_pct(row['patch_frequency'])} of patches")
    return sep.join(parts)


def _best_concept(view: LatentView) -> str:
    if view.concepts is None or not len(view.concepts):
        return ""
    c = view.concepts.iloc[0]
    return f"best ground-truth concept: {c['concept']} (patch AUROC {c['auroc']:.2f})"


def _difference(view: LatentView) -> str:
    if view.difference is None or view.pair is None:
        return ""
    a, b = (disease_name(d) for d in view.pair)
    return (
        f"{a} \u2212 {b}: {view.difference:+.3g} patches per image "
        f"(rank {view.difference_rank + 1} of {view.d_sae} by size)"
    )


def _reading(view: LatentView) -> str:
    """One sentence a reader can check against the panels: top labels, the disease using it most."""
    parts = []
    mix = view.label_mix.get(view.reference)
    if mix is not None and len(mix):
        k = int(mix.sum())
        top = ", ".join(f"{lab} ({int(n)}/{k})" for lab, n in mix.head(3).items())
        parts.append(f"its top {_ds(view.reference)} images are {top}")
    if view.diseases is not None and len(view.diseases):
        vals = view.diseases["value"].to_numpy()
        if vals.max() > 0:
            d = str(view.diseases["disease"].iloc[int(np.argmax(vals))])
            parts.append(
                f"in the cohort it is used most by {disease_name(d)} patients "
                f"({vals.max():.2g} patches per image, median of the diseases {np.median(vals):.2g})"
            )
    return "; ".join(parts)


def caption_text(view: LatentView, position: str = "") -> str:
    """The caption as plain text: the latent, where it is in the list, its statistics, filters."""
    head = f"latent {view.latent}"
    if position:
        head += f" | {position}"
    if not view.ok:
        return f"{head} | {view.message}"
    parts = [head, _summary(view, ", ")] + [t for t, _ in _filter_lines(view)]
    parts += [p for p in (_best_concept(view), _difference(view), _reading(view)) if p]
    return " | ".join(parts)


def caption_html(view: LatentView, position: str = "") -> str:
    """The widget's caption: :func:`caption_text`'s content, the filters coloured."""
    esc = html.escape
    head = f"<b style='font-size:15px'>latent {view.latent}</b>"
    if position:
        head += f" <span style='color:#555'>&nbsp;{esc(position)}</span>"
    if view.tag:
        color = BAD_COLOR if _is_synthetic(view.tag) else "#555"
        head += f" <span style='color:{color};font-weight:bold'>&nbsp;[{esc(view.tag)}]</span>"
    if not view.ok:
        return (
            f"<div style='line-height:1.5'>{head}<br>"
            f"<span style='color:{BAD_COLOR}'>{esc(view.message)}</span></div>"
        )
    badges = " &nbsp;&nbsp; ".join(
        f"<span style='color:{OK_COLOR if ok else BAD_COLOR}'>{esc(t)}</span>"
        for t, ok in _filter_lines(view)
    )
    lines = [head, esc(_summary(view)), badges]
    extra = [esc(p) for p in (_best_concept(view), _difference(view)) if p]
    if extra:
        lines.append(" &nbsp;|&nbsp; ".join(extra))
    reading = _reading(view)
    if reading:
        lines.append(f"<span style='color:#333'>{esc(reading[0].upper() + reading[1:])}.</span>")
    return "<div style='line-height:1.5'>" + "<br>".join(lines) + "</div>"


# ------------------------------------------------------------------------------ the mosaic
@functools.cache
def _font(size: int, bold: bool = False) -> Any:
    import os

    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text + "\u2026"


def _tile(item: Any, px: int, overlay: bool) -> np.ndarray:
    """One thumbnail: the Fig. 3 map over the image, the image, or the map alone (no image)."""
    if item.image is not None:
        img = np.asarray(item.image)
        if img.shape[0] != px or img.shape[1] != px:
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((px, px), Image.BILINEAR))
        if overlay and item.patch_map is not None:
            seg = segmentation_map(item.patch_map, img, mode="scaled").astype(np.float32)
            out = OVERLAY_FLOOR * img.astype(np.float32) + (1 - OVERLAY_FLOOR) * seg
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return img
    if item.patch_map is not None:
        import matplotlib

        m = np.asarray(item.patch_map, dtype=np.float64)
        top = m.max()
        rgb = matplotlib.colormaps["magma"](m / top if top > 0 else m)[..., :3]
        rep = max(px // m.shape[0], 1)
        rgb = np.repeat(np.repeat(rgb, rep, 0), rep, 1)[:px, :px]
        out = np.full((px, px, 3), 235, dtype=np.uint8)
        out[: rgb.shape[0], : rgb.shape[1]] = (rgb * 255).astype(np.uint8)
        return out
    return np.full((px, px, 3), 235, dtype=np.uint8)


def mosaic_image(
    view: LatentView, n_images: int = 5, *, px: int = 112, overlay: bool = True
) -> np.ndarray | None:
    """The top images of the latent, one row per dataset, titled: (H, W, 3) uint8 (PIL-drawn).

    Each row starts with the dataset's name and how often the latent fires there; each image is
    titled with its label and activation. With ``overlay`` each image carries Fig. 3's
    segmentation map (:func:`~cytosae.analysis.retrieval.segmentation_map`, ``mode="scaled"``);
    where an image is not at hand its patch activations are drawn as a heat map. None when the
    view has no top images (statistics only).
    """
    from PIL import Image, ImageDraw

    datasets = [d for d in view.stats["dataset"] if view.top.get(d)] if view.ok else []
    if not datasets:
        return None
    have_images = any(it.image is not None for d in datasets for it in view.top[d])
    label_w, gap, title_h, head_h = 96, 8, 30, 24
    cell_w, row_h = px + gap, title_h + px + gap
    W = label_w + n_images * cell_w
    H = head_h + len(datasets) * row_h
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    f_small, f_bold = _font(10), _font(12, bold=True)
    if overlay and have_images:
        head = "Top images per dataset \u2014 " + OVERLAY_NOTE
    elif have_images:
        head = "Top images per dataset"
    else:
        head = "Top images per dataset \u2014 patch activations (images not at hand)"
    draw.text((4, 4), _fit(draw, head, f_bold, W - 8), fill="black", font=f_bold)
    for r, d in enumerate(datasets):
        y0 = head_h + r * row_h
        row = view.row(d)
        draw.text((4, y0 + title_h + px // 2 - 24), _ds(d), fill="black", font=f_bold)
        draw.text((4, y0 + title_h + px // 2 - 6), "fires on", fill="#444", font=f_small)
        draw.text(
            (4, y0 + title_h + px // 2 + 7),
            f"{_pct(row['frequency'])} of images",
            fill="#444",
            font=f_small,
        )
        for j, it in enumerate(view.top[d][:n_images]):
            x0 = label_w + j * cell_w
            canvas.paste(Image.fromarray(_tile(it, px, overlay)), (x0, y0 + title_h))
            for size in (11, 10, 9):  # the largest font that fits the label, else cut it
                f_label = _font(size)
                if draw.textlength(it.label, font=f_label) <= px:
                    break
            label = _fit(draw, it.label, f_label, px)
            draw.text((x0, y0 + 2), label, fill="black", font=f_label)
            draw.text((x0, y0 + 16), f"activation {it.activation:.3g}", fill="#555", font=f_small)
    return np.asarray(canvas)


def _encode_png(arr: np.ndarray, level: int = 1) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def mosaic_png(
    view: LatentView, n_images: int = 5, *, px: int = 112, overlay: bool = True
) -> bytes:
    """PNG bytes of :func:`mosaic_image` (a dead or out-of-range latent: :func:`message_png`)."""
    img = mosaic_image(view, n_images, px=px, overlay=overlay)
    if img is None:
        return message_png(view)
    return _encode_png(img)


def notice_png(title: str, text: str, *, width: int = 640, color: str = BAD_COLOR) -> bytes:
    """A small card with a title and one line of text (PNG bytes)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, 70), "#fafafa")
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 8), title, fill="black", font=_font(15, bold=True))
    draw.text((10, 36), _fit(draw, text, _font(11), width - 20), fill=color, font=_font(11))
    return _encode_png(np.asarray(canvas))


def message_png(view: LatentView) -> bytes:
    """The card shown instead of images: why there is nothing to show (or: statistics only)."""
    if view.message:
        return notice_png(f"latent {view.latent}", view.message)
    return notice_png(
        f"latent {view.latent}", "no images at hand: statistics only", color="#555555"
    )


# --------------------------------------------------------------------------- HTML and SVG
def _png_uri(arr: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(_encode_png(arr, level=6)).decode()


def _section(title: str, body: str) -> str:
    return (
        "<div style='margin:0 0 12px 0'>"
        f"<div style='font-weight:bold;font-size:13px;margin-bottom:3px'>{html.escape(title)}</div>"
        f"{body}</div>"
    )


def _note_html(text: str) -> str:
    return f"<div style='color:#777;font-size:12px'>{html.escape(text)}</div>"


def _bars_html(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    vmax: float,
    colors: Sequence[str] | str = BAR_COLOR,
    fmt: str = "{:.3g}",
    vmin: float = 0.0,
) -> str:
    """Horizontal bars as HTML (one row per label, value written after the bar)."""
    if isinstance(colors, str):
        colors = [colors] * len(labels)
    rows = []
    span = vmax - vmin if vmax > vmin else 1.0
    for lab, v, c in zip(labels, values, colors):
        w = 100 * min(max((float(v) - vmin) / span, 0.0), 1.0)
        rows.append(
            "<div style='display:flex;align-items:center;font-size:12px;margin:1px 0'>"
            "<div style='width:118px;text-align:right;padding-right:5px;white-space:nowrap;"
            f"overflow:hidden;text-overflow:ellipsis' title='{html.escape(str(lab))}'>"
            f"{html.escape(str(lab))}</div>"
            "<div style='flex:1;background:#f0f0f0;height:12px'>"
            f"<div style='width:{w:.1f}%;background:{c};height:12px'></div></div>"
            f"<div style='width:44px;padding-left:4px'>{html.escape(fmt.format(v))}</div></div>"
        )
    return "".join(rows)


def _nice_ticks(lo: float, hi: float, n: int = 4) -> np.ndarray:
    if hi <= lo:
        return np.array([lo])
    ticks = np.arange(np.ceil(lo), np.floor(hi) + 1)
    if len(ticks) < 2:
        ticks = np.round(np.linspace(lo, hi, 3), 1)
    while len(ticks) > n:
        ticks = ticks[::2]
    return ticks


def _pow10(t: float) -> str:
    v = 10.0**t
    return f"{v:.0e}" if v < 1e-3 or v >= 1e3 else f"{v:.3g}"


def histogram_svg(view: LatentView, width: int = 280, height: int = 150) -> str:
    """The image-level activation histogram, one step line per dataset (inline SVG + legend)."""
    if view.histogram_edges is None:
        return _note_html("no per-image activations (statistics only)")
    e = np.asarray(view.histogram_edges)
    ml, mr, mt, mb = 36, 8, 6, 30
    pw, ph = width - ml - mr, height - mt - mb
    ymax = max((int(c.max()) for c in view.histogram.values() if len(c)), default=1) or 1

    def sx(x: float) -> float:
        return ml + pw * (x - e[0]) / (e[-1] - e[0])

    def sy(y: float) -> float:
        return mt + ph * (1 - y / ymax)

    parts = [
        (
            f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
            "style='font-family:sans-serif;font-size:10px'>"
        ),
        f"<line x1='{ml}' y1='{mt + ph}' x2='{ml + pw}' y2='{mt + ph}' stroke='#333'/>",
        f"<line x1='{ml}' y1='{mt}' x2='{ml}' y2='{mt + ph}' stroke='#333'/>",
        f"<text x='{ml - 4}' y='{mt + 8}' text-anchor='end'>{ymax}</text>",
        f"<text x='{ml - 4}' y='{mt + ph}' text-anchor='end'>0</text>",
        (
            f"<text x='10' y='{mt + ph / 2}' transform='rotate(-90 10 {mt + ph / 2})' "
            "text-anchor='middle'>images</text>"
        ),
        (
            f"<text x='{ml + pw / 2}' y='{height - 2}' text-anchor='middle'>"
            "image-level activation (log scale)</text>"
        ),
    ]
    for t in _nice_ticks(float(e[0]), float(e[-1])):
        x = sx(float(t))
        parts.append(
            f"<line x1='{x:.1f}' y1='{mt + ph}' x2='{x:.1f}' y2='{mt + ph + 3}' stroke='#333'/>"
        )
        parts.append(
            f"<text x='{x:.1f}' y='{mt + ph + 13}' text-anchor='middle'>{_pow10(t)}</text>"
        )
    colors = _colors(view)
    legend = []
    for d, counts in view.histogram.items():
        pts = [f"{sx(e[0]):.1f},{sy(0):.1f}"]
        for k, c in enumerate(counts):
            pts += [f"{sx(e[k]):.1f},{sy(c):.1f}", f"{sx(e[k + 1]):.1f},{sy(c):.1f}"]
        pts.append(f"{sx(e[-1]):.1f},{sy(0):.1f}")
        parts.append(
            f"<polyline fill='none' stroke='{colors[d]}' stroke-width='1.6' points='{' '.join(pts)}'/>"
        )
        n = int(view.row(d)["n_images"])
        legend.append(
            f"<span style='color:{colors[d]};white-space:nowrap'>\u25a0 {_ds(d)} "
            f"{int(counts.sum())}/{n}</span>"
        )
    parts.append("</svg>")
    return "".join(parts) + f"<div style='font-size:11px'>{' &nbsp;'.join(legend)}</div>"


def landscape_svg(view: LatentView, width: int = 280, height: int = 170) -> str:
    """Fig. 2A of the reference dataset (density) with this latent starred (inline SVG)."""
    ls = view.landscape
    if ls is None:
        return ""
    xe, ye = np.asarray(ls["x_edges"]), np.asarray(ls["y_edges"])
    d = np.log1p(np.asarray(ls["density"], dtype=np.float64))[::-1]  # rows top = high y
    g = (
        (255 - 200 * d / d.max()).astype(np.uint8)
        if d.max() > 0
        else np.full(d.shape, 255, np.uint8)
    )
    uri = _png_uri(np.repeat(g[..., None], 3, axis=2))
    ml, mr, mt, mb = 36, 8, 6, 30
    pw, ph = width - ml - mr, height - mt - mb

    def sx(x: float) -> float:
        return ml + pw * (x - xe[0]) / (xe[-1] - xe[0])

    def sy(y: float) -> float:
        return mt + ph * (1 - (y - ye[0]) / (ye[-1] - ye[0]))

    parts = [
        (
            f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
            "style='font-family:sans-serif;font-size:10px'>"
        ),
        (
            f"<image href='{uri}' x='{ml}' y='{mt}' width='{pw}' height='{ph}' "
            "preserveAspectRatio='none' style='image-rendering:pixelated'/>"
        ),
        f"<rect x='{ml}' y='{mt}' width='{pw}' height='{ph}' fill='none' stroke='#333'/>",
        (
            f"<text x='{ml + pw / 2}' y='{height - 2}' text-anchor='middle'>"
            "log10 activation frequency</text>"
        ),
        (
            f"<text x='10' y='{mt + ph / 2}' transform='rotate(-90 10 {mt + ph / 2})' "
            "text-anchor='middle'>log10 mean activation</text>"
        ),
    ]
    for t in _nice_ticks(float(xe[0]), float(xe[-1])):
        parts.append(
            f"<text x='{sx(float(t)):.1f}' y='{mt + ph + 12}' text-anchor='middle'>{t + 0:g}</text>"
        )
    for t in _nice_ticks(float(ye[0]), float(ye[-1])):
        parts.append(
            f"<text x='{ml - 3}' y='{sy(float(t)) + 3:.1f}' text-anchor='end'>{t + 0:g}</text>"
        )
    thr = ls.get("threshold")
    if thr is not None and ye[0] <= thr <= ye[-1]:
        y = sy(thr)
        parts.append(
            f"<line x1='{ml}' y1='{y:.1f}' x2='{ml + pw}' y2='{y:.1f}' stroke='{BAD_COLOR}' "
            "stroke-dasharray='4,3'/>"
            f"<text x='{ml + 3}' y='{y - 3:.1f}' fill='{BAD_COLOR}'>threshold</text>"
        )
    x, y = ls["x"], ls["y"]
    if np.isfinite(x) and np.isfinite(y):
        cx, cy = sx(x), sy(y)
        star = " ".join(
            f"{cx + r * np.sin(a):.1f},{cy - r * np.cos(a):.1f}"
            for k, (r, a) in enumerate((7 if k % 2 == 0 else 3, k * np.pi / 5) for k in range(10))
        )
        parts.append(
            f"<polygon points='{star}' fill='{BAD_COLOR}' stroke='white' stroke-width='0.8'/>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _label_mix_html(view: LatentView) -> tuple[str, str]:
    d = view.reference
    mix = view.label_mix.get(d)
    if mix is None or not len(mix):
        return "Labels of its top images", _note_html("no reference images")
    k = int(mix.sum())
    top = mix.head(6)
    body = _bars_html(list(top.index), list(top.to_numpy()), vmax=k, fmt="{:.0f}")
    others = []
    for name, m in view.label_mix.items():
        if name == d or not len(m):
            continue
        others.append(f"{_ds(name)}: {m.index[0]} ({int(m.iloc[0])}/{int(m.sum())})")
    if others:
        body += (
            "<div style='font-size:11px;color:#444;margin-top:4px'>most common elsewhere: "
            + html.escape("; ".join(others))
            + "</div>"
        )
    return f"Labels of its top {k} {_ds(d)} images", body


def stats_table_html(view: LatentView) -> str:
    """The latent's statistics in every dataset (a small table)."""
    rows = "".join(
        f"<tr><td>{html.escape(_ds(r.dataset))}</td><td>{_fmt(r.frequency)}</td>"
        f"<td>{_fmt(r.mean_act)}</td><td>{_entropy(r.entropy) if r.entropy >= 0 else 'n/a'}</td></tr>"
        for r in view.stats.itertuples()
    )
    return (
        "<table style='font-size:12px;border-collapse:collapse;width:100%'>"
        "<tr style='color:#555'><td>dataset</td><td>frequency</td><td>mean act.</td>"
        f"<td>entropy</td></tr>{rows}</table>"
    )


def side_html(view: LatentView) -> str:
    """The left column: statistics per dataset, activation histogram, label mix, landscape."""
    if not view.ok:
        return ""
    title, mix = _label_mix_html(view)
    return (
        "<div style='width:290px'>"
        + _section("Statistics per dataset", stats_table_html(view))
        + _section("Activation over images", histogram_svg(view))
        + _section(title, mix)
        + _section(
            f"Its place in the latent landscape ({_ds(view.reference)})", landscape_svg(view)
        )
        + "</div>"
    )


def cohort_html(view: LatentView) -> str:
    """The right column: disease barcodes, top patients, ground-truth concepts (where known)."""
    if not view.ok:
        return ""
    out = []
    if view.diseases is not None:
        df = view.diseases
        pair = view.pair or ("", "")
        colors = [
            D1_COLOR if d == pair[0] else D2_COLOR if d == pair[1] else "#9e9e9e"
            for d in df["disease"]
        ]
        vals = df["value"].to_numpy()
        body = _bars_html(
            [disease_name(d) for d in df["disease"]],
            vals,
            vmax=float(vals.max()) if len(vals) and vals.max() > 0 else 1.0,
            colors=colors,
            fmt="{:.2g}",
        )
        body += (
            "<div style='font-size:11px;color:#555'>patches above \u03c4 per image, "
            "mean over each disease's patients (Eq. 2-3)</div>"
        )
        diff = _difference(view)
        if diff:
            body += f"<div style='font-size:12px;margin-top:4px'>{html.escape(diff)}</div>"
        out.append(_section("AML cohort (Hehr): disease barcodes", body))
        if view.patients is not None and len(view.patients):
            rows = "".join(
                f"<tr><td>{html.escape(str(p))}</td><td>{html.escape(disease_name(d))}</td>"
                f"<td style='text-align:right'>{v:.3g}</td></tr>"
                for p, d, v in zip(
                    view.patients["patient"], view.patients["disease"], view.patients["value"]
                )
            )
            out.append(
                _section(
                    "Patients that use it most",
                    "<table style='font-size:12px;border-collapse:collapse'>"
                    "<tr style='color:#555'><td>patient</td><td>diagnosis</td><td>barcode</td></tr>"
                    f"{rows}</table>",
                )
            )
    if view.concepts is not None:
        df = view.concepts
        if len(df):
            body = _bars_html(
                [str(c).replace("_", " ") for c in df["concept"]],
                df["auroc"].to_numpy(),
                vmax=1.0,
                vmin=0.5,
                colors=[CONCEPT_COLOR] + ["#b39ddb"] * (len(df) - 1),
                fmt="{:.2f}",
            )
            body += (
                "<div style='font-size:11px;color:#555'>patch-level AUROC against the synthetic "
                f"world's ground truth ({_ds(view.concept_dataset)}); 0.5 = chance, "
                "\u2265 0.9 = recovered</div>"
            )
        else:
            body = _note_html("no evaluated concept")
        out.append(_section("Ground truth: the concepts it detects", body))
    if not out:
        out.append(_note_html("no cohort or ground truth in this run"))
    return "<div style='width:290px'>" + "".join(out) + "</div>"


# ---------------------------------------------------------------------- the static figure
def _style(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=9.5, loc="left", fontweight="bold")
    ax.tick_params(labelsize=7.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, color="0.45")
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_histogram(ax: Any, view: LatentView) -> dict[str, Any]:
    _style(ax, "")
    if view.histogram_edges is None:
        _note(ax, "no per-image activations\n(statistics only)")
        return {}
    e = np.asarray(view.histogram_edges)
    colors = _colors(view)
    for d, counts in view.histogram.items():
        n = int(view.row(d)["n_images"])
        ax.stairs(counts, e, color=colors[d], lw=1.5, label=f"{_ds(d)} {int(counts.sum())}/{n}")
    ticks = _nice_ticks(float(e[0]), float(e[-1]))
    ax.set_xticks(ticks, [_pow10(t) for t in ticks])
    ax.set_xlabel("image-level activation (log scale)", fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.05))
    return {"edges": e, "counts": dict(view.histogram)}


def _plot_bars(
    ax: Any,
    labels: Sequence[str],
    values: np.ndarray,
    *,
    colors: Sequence[str] | str,
    fmt: str,
    xlim: tuple[float, float],
) -> None:
    y = np.arange(len(labels))[::-1]
    left = xlim[0]
    ax.barh(y, np.asarray(values) - left, left=left, color=colors, height=0.7)
    ax.set_yticks(y, [str(s)[:24] for s in labels], fontsize=8)
    ax.set_xlim(*xlim)
    for yy, v in zip(y, values):
        ax.text(v, yy, " " + fmt.format(v), va="center", fontsize=7.5)


def _plot_label_mix(ax: Any, view: LatentView) -> dict[str, Any]:
    d = view.reference
    mix = view.label_mix.get(d)
    _style(ax, "")
    if mix is None or not len(mix):
        _note(ax, "no reference images")
        return {}
    k = int(mix.sum())
    top = mix.head(6)
    _plot_bars(ax, list(top.index), top.to_numpy(), colors=BAR_COLOR, fmt="{:.0f}", xlim=(0, k))
    ax.set_xlabel("images", fontsize=8)
    return {"labels": list(top.index), "counts": top.to_numpy()}


def _plot_landscape(ax: Any, view: LatentView) -> dict[str, Any]:
    _style(ax, "")
    ls = view.landscape
    if ls is None:
        return {}
    xe, ye = ls["x_edges"], ls["y_edges"]
    ax.imshow(
        np.log1p(ls["density"]),
        origin="lower",
        extent=(xe[0], xe[-1], ye[0], ye[-1]),
        aspect="auto",
        cmap="Greys",
        interpolation="nearest",
    )
    if ls.get("threshold") is not None:
        ax.axhline(ls["threshold"], color=BAD_COLOR, lw=0.9, ls="--")
        ax.text(xe[0], ls["threshold"], " threshold", fontsize=7, color=BAD_COLOR, va="bottom")
    x, y = ls["x"], ls["y"]
    if np.isfinite(x) and np.isfinite(y):
        ax.plot([x], [y], marker="*", ms=15, mec="white", mew=0.8, color=BAD_COLOR)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel("log10 activation frequency", fontsize=8)
    ax.set_ylabel("log10 mean activation", fontsize=8)
    return {"x": x, "y": y}


def _plot_cohort(ax: Any, view: LatentView) -> dict[str, Any]:
    _style(ax, "AML cohort (Hehr): disease barcodes")
    if view.diseases is None:
        _note(ax, "no cohort in this run")
        return {}
    df = view.diseases
    pair = view.pair or ("", "")
    colors = [
        D1_COLOR if d == pair[0] else D2_COLOR if d == pair[1] else "#9e9e9e" for d in df["disease"]
    ]
    vals = df["value"].to_numpy()
    top = float(vals.max()) if len(vals) else 0.0
    _plot_bars(
        ax,
        [disease_name(d) for d in df["disease"]],
        vals,
        colors=colors,
        fmt="{:.2g}",
        xlim=(0, top * 1.3 if top > 0 else 1),
    )
    ax.set_xlabel("patches > \u03c4 per image (Eq. 2-3)", fontsize=8)
    lines = []
    if view.difference is not None and view.pair is not None:
        a, b = (disease_name(d) for d in view.pair)
        lines.append(f"{a} \u2212 {b}: {view.difference:+.3g}")
        lines.append(f"(rank {view.difference_rank + 1} of {view.d_sae} by size)")
    if view.patients is not None and len(view.patients):
        lines.append("")
        lines.append("patients that use it most:")
        for p, d, v in zip(
            view.patients["patient"][:4], view.patients["disease"][:4], view.patients["value"][:4]
        ):
            lines.append(f"  {p}  {disease_name(d):<14} {v:.3g}")
    ax.text(
        -0.55,
        -0.3,
        "\n".join(lines),
        transform=ax.transAxes,
        fontsize=8,
        va="top",
        family="monospace",
    )
    return {"diseases": df, "patients": view.patients}


def _plot_concepts(ax: Any, view: LatentView) -> dict[str, Any]:
    if view.concepts is None:
        ax.set_axis_off()
        return {}
    _style(ax, "Ground truth: the concepts it detects")
    df = view.concepts
    if not len(df):
        _note(ax, "no evaluated concept")
        return {}
    vals = df["auroc"].to_numpy()
    _plot_bars(
        ax,
        [str(c).replace("_", " ") for c in df["concept"]],
        vals,
        colors=[CONCEPT_COLOR] + ["#b39ddb"] * (len(df) - 1),
        fmt="{:.2f}",
        xlim=(0.5, 1.08),
    )
    ax.axvline(0.9, color="0.3", lw=0.8, ls="--")
    ax.set_xticks([0.5, 0.7, 0.9, 1.0])
    ax.set_xlabel(f"patch AUROC on {_ds(view.concept_dataset)} (0.5 = chance)", fontsize=8)
    return {"concepts": list(df["concept"]), "auroc": vals}


def dashboard_figure(
    view: LatentView, *, n_images: int = 5, overlay: bool = True, pyplot: bool = True
) -> tuple[Any, dict[str, Any]]:
    """The whole dashboard of one latent as one matplotlib figure (for ``figures/``).

    The same view, panels and mosaic as the widget (:func:`mosaic_image`), laid out on fixed
    rectangles: the header (latent, run label, statistics, the two filters, the best concept);
    the histogram, the label mix and the landscape on the left; the top images in the middle;
    the cohort and the concepts on the right. Pure: it depends on its arguments only.

    Args:
        view: :meth:`~cytosae.analysis.explorer.ExplorerData.view` of the latent.
        n_images: top images per dataset.
        overlay: Fig. 3's segmentation map over the images (False: the images).
        pyplot: make it with pyplot, so a notebook shows it (False: a bare ``Figure``).

    Returns:
        The figure and ``{"view", "mosaic", "panels"}``.
    """
    if pyplot:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=FIGSIZE)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=FIGSIZE)
    fig.patch.set_facecolor("white")
    fig.text(0.012, 0.965, f"Latent {view.latent}", fontsize=18, fontweight="bold", va="center")
    sub = f"of {view.d_sae} SAE latents"
    if view.tag:
        sub += f"  \u00b7  {view.tag}"
    fig.text(
        0.02 + 0.0128 * len(f"Latent {view.latent}"),
        0.962,
        sub,
        fontsize=10,
        va="center",
        color="0.3",
    )
    if _is_synthetic(view.tag):
        fig.text(
            0.988,
            0.965,
            "SYNTHETIC DATA \u2014 not real cells",
            fontsize=11,
            fontweight="bold",
            ha="right",
            va="center",
            color="white",
            bbox={"boxstyle": "round,pad=0.35", "fc": BAD_COLOR, "ec": "none"},
        )
    if not view.ok:
        fig.text(0.012, 0.85, view.message, fontsize=12, color=BAD_COLOR)
        return fig, {"view": view, "mosaic": None, "panels": {}}
    fig.text(0.012, 0.928, _summary(view), fontsize=10, va="center")
    for k, (text, ok) in enumerate(_filter_lines(view)):
        fig.text(
            0.012 + 0.36 * k,
            0.897,
            text,
            fontsize=9.5,
            va="center",
            color=OK_COLOR if ok else BAD_COLOR,
        )
    best = _best_concept(view)
    if best:
        fig.text(0.988, 0.928, best, fontsize=10, ha="right", va="center", color=CONCEPT_COLOR)
    reading = _reading(view)
    if reading:
        fig.text(0.012, 0.866, reading[0].upper() + reading[1:] + ".", fontsize=9.5, va="center")
    panels: dict[str, Any] = {}
    col = 0.012  # the left column's panel titles start here

    def titled(rect: tuple[float, float, float, float], title: str) -> Any:
        ax = fig.add_axes(rect)
        fig.text(col, rect[1] + rect[3] + 0.012, title, fontsize=9.5, fontweight="bold")
        return ax

    panels["histogram"] = _plot_histogram(
        titled((0.045, 0.61, 0.14, 0.18), "Activation over images"), view
    )
    mix = view.label_mix.get(view.reference)
    k = int(mix.sum()) if mix is not None else 0
    panels["label_mix"] = _plot_label_mix(
        titled((0.125, 0.35, 0.14, 0.17), f"Labels of its top {k} {_ds(view.reference)} images"),
        view,
    )
    panels["landscape"] = _plot_landscape(
        titled(
            (0.045, 0.06, 0.22, 0.2), f"Its place in the latent landscape ({_ds(view.reference)})"
        ),
        view,
    )
    img = mosaic_image(view, n_images, overlay=overlay)
    grid = fig.add_axes((0.3, 0.02, 0.47, 0.82))
    grid.set_axis_off()
    if img is None:
        grid.text(0, 1, "no images at hand: statistics only", va="top", fontsize=11, color="0.4")
    else:
        grid.imshow(img, interpolation="lanczos")
        grid.set_anchor("N")
    panels["cohort"] = _plot_cohort(fig.add_axes((0.87, 0.56, 0.115, 0.25)), view)
    panels["concepts"] = _plot_concepts(fig.add_axes((0.87, 0.08, 0.1, 0.15)), view)
    return fig, {"view": view, "mosaic": img, "panels": panels}
