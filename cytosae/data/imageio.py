"""Robust image reading to RGB uint8.

Conversions applied where they are sound (every one is lossless for the RGB content, or a
fixed documented mapping):

* ``RGB`` -> as is.
* ``RGBA``/``RGBa``/``PA`` and ``P`` with transparency: ``alpha="drop"`` (default) discards the
  alpha channel and keeps the stored colour values, which is exactly what the official
  pipeline's ``Image.convert("RGB")`` does (Matek19/Hehr TIFFs carry an all-opaque alpha);
  ``alpha="white"`` composites the image on a white background instead.
* ``L``, ``LA``, ``P``, ``1`` (grey, palette, bilevel) -> RGB by replication / palette lookup.
* ``I;16``/``I;16B``/``I;16L`` (16-bit grey) -> 8-bit by the fixed linear map ``round(v * 255 / 65535)``.
  ``I`` (32-bit int) and ``F`` (float): values already within 0..255 are kept, within 0..65535
  scaled as 16-bit, otherwise min-max scaled per image (logged).
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` -> RGB with Pillow's converter.
* Multi-frame files: the first frame.

Files that cannot be read soundly are reported with a reason: ``zero-byte file``,
``missing file``, ``not an image``, ``truncated or corrupt image data``. :func:`try_read_rgb`
returns ``(None, reason)``; :func:`read_rgb` (strict) raises :class:`ImageReadError`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

ALPHA_MODES: tuple[str, ...] = ("drop", "white")


class ImageReadError(Exception):
    """An image could not be read soundly.

    Attributes:
        path: the file.
        reason: a short reason (``zero-byte file``, ``not an image``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader workers
        return (type(self), (self.path, self.reason))


def _scale_to_uint8(arr: np.ndarray, path: str | Path) -> np.ndarray:
    a = arr.astype(np.float64)
    if a.size == 0:
        return a.astype(np.uint8)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if lo >= 0 and hi <= 255:
        return np.rint(a).astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)
    log.info("%s: values %g..%g outside 0..65535, min-max scaled to 8 bit", path, lo, hi)
    span = hi - lo if hi > lo else 1.0
    return np.rint((a - lo) * (255.0 / span)).astype(np.uint8)


def to_rgb(img: Image.Image, *, alpha: str = "drop", path: str | Path = "<image>") -> Image.Image:
    """Convert an opened image to mode ``RGB`` (uint8) following the module's rules."""
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(img), path)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = img.convert("RGBA")
        if alpha == "drop":
            return rgba.convert("RGB")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def try_read_rgb(path: str | Path, *, alpha: str = "drop") -> tuple[Image.Image | None, str]:
    """Read ``path`` as an RGB image.

    Returns:
        ``(image, "")`` on success, ``(None, reason)`` when the file cannot be read soundly.
    """
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return None, "missing file"
    except OSError as exc:
        return None, f"cannot stat file: {exc}"
    if size == 0:
        return None, "zero-byte file"
    try:
        with Image.open(p) as im:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            rgb = to_rgb(im, alpha=alpha, path=p)
            rgb.load()
            if rgb is im:
                rgb = im.copy()
    except UnidentifiedImageError:
        return None, "not an image"
    except Image.DecompressionBombError as exc:
        return None, f"image too large: {exc}"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return None, f"truncated or corrupt image data ({exc})"
    if rgb.width == 0 or rgb.height == 0:
        return None, "empty image (0 pixels)"
    return rgb, ""


def read_rgb(path: str | Path, *, alpha: str = "drop") -> Image.Image:
    """Strict :func:`try_read_rgb`: raises :class:`ImageReadError` with the reason."""
    img, reason = try_read_rgb(path, alpha=alpha)
    if img is None:
        raise ImageReadError(path, reason)
    return img


def read_rgb_array(path: str | Path, *, alpha: str = "drop") -> np.ndarray:
    """Strict read to a ``(H, W, 3)`` uint8 array."""
    return np.asarray(read_rgb(path, alpha=alpha), dtype=np.uint8)
