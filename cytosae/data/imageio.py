"""Robust image reading to RGB uint8.

Only the formats a blood-cell dataset ships are opened (:data:`IMAGE_FORMATS`: PNG, JPEG, TIFF,
BMP, GIF, WebP, PPM/PGM), whatever the file's extension: content in any other format (EPS, whose
Pillow plugin runs Ghostscript, PSD, ICNS, ...) is ``not an image``. Only regular files are read
(never a FIFO or a device), and images above Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 MP by default) are refused before any pixel is decoded,
whether Pillow would merely warn (``DecompressionBombWarning``, up to twice the limit) or
raise (``DecompressionBombError``).

Conversions applied where they are sound (every one is lossless for the RGB content, or a
fixed documented mapping):

* EXIF orientation: an image whose EXIF (or TIFF) ``Orientation`` tag is not 1 is rotated /
  flipped upright with ``ImageOps.exif_transpose`` first, as the authors' loader (Hugging Face
  ``datasets``' ``Image`` feature) does. It changes numbers only for images that carry such a
  tag; a corrupt EXIF block is ignored (the image is read as stored).
* ``RGB`` -> as is.
* ``RGBA``/``RGBa``/``PA`` and ``P`` with transparency: ``alpha="drop"`` (default) discards the
  alpha channel and keeps the stored colour values, which is exactly what the official
  pipeline's ``Image.convert("RGB")`` does (Matek19/Hehr TIFFs carry an all-opaque alpha);
  ``alpha="white"`` composites the image on a white background instead.
* ``L``, ``LA``, ``P``, ``1`` (grey, palette, bilevel) -> RGB by replication / palette lookup.
* ``I;16``/``I;16B``/``I;16L`` (16-bit grey) -> 8-bit by the fixed linear map
  ``round(v * 255 / 65535)``. This deliberately differs from the authors' ``convert("RGB")``,
  which clips every value above 255 to 255 (a typical 16-bit micrograph becomes almost uniformly
  white); the linear map keeps the image's content and is the sounder choice. None of the five
  public datasets ships 16-bit images, so the paper's numbers are unaffected.
  ``I`` (32-bit int) and ``F`` (float): values already within 0..255 are kept, within 0..65535
  scaled as 16-bit, otherwise min-max scaled per image (logged).
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` -> RGB with Pillow's converter.
* Multi-frame files: the first frame.

Files that cannot be read soundly are reported with a reason: ``zero-byte file``,
``missing file``, ``not a regular file``, ``cannot open file (...)``, ``not an image``,
``truncated or corrupt image data (...)``, ``image too large (...)``. :func:`try_read_rgb`
returns ``(None, reason)``; :func:`read_rgb` (strict) raises :class:`ImageReadError`.

Geometry (applied by the extraction, :func:`geometry_check`; not by the readers): an image
whose shorter side is below :data:`MIN_SIDE` (14 px, one ViT patch) is skipped with the reason
``image too small``: stretched to 224 px, each of its pixels would cover more than one patch, so
its tokens describe interpolation, not a cell. An image whose aspect ratio exceeds
:data:`MAX_ASPECT` (4:1) is kept (the square resize is the official preprocessing) but reported
in a warning, since the cell is then visibly squashed.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

ALPHA_MODES: tuple[str, ...] = ("drop", "white")

#: Pillow formats that may be opened (by content, whatever the extension); everything else is
#: "not an image". MPO is how Pillow opens some multi-picture JPEGs.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "TIFF", "BMP", "GIF", "WEBP", "PPM")

#: Smallest accepted image side in pixels (one ViT patch); smaller images are skipped.
MIN_SIDE = 14
#: Aspect ratios (long side / short side) above this are reported in a warning.
MAX_ASPECT = 4.0

#: The decoding rules that change which images are kept or their numbers (part of the store key).
DECODE_RULES: dict[str, object] = {
    "formats": list(IMAGE_FORMATS),
    "exif_orientation": "applied (ImageOps.exif_transpose)",
    "uint16": "round(v * 255 / 65535)",
    "min_side": MIN_SIDE,
    "max_pixels": "PIL.Image.MAX_IMAGE_PIXELS",
}

# magic bytes -> format name, to tell a damaged image from a file that is no image at all
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
)


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


class UnreadableImagesError(ImageReadError, ValueError):
    """Strict mode: images of a run could not be used (every one named, up to ``limit``).

    Attributes:
        bad: ``(path, reason)`` of every image that could not be used.
        note: what happened to the work done (e.g. which shards were kept).
        path, reason: the first bad file and its reason (as :class:`ImageReadError`).
    """

    def __init__(
        self, bad: list[tuple[str, str]], note: str = "", *, limit: int = 20, what: str = ""
    ) -> None:
        self.bad = [(str(p), str(r)) for p, r in bad]
        self.note = note
        self.limit = limit
        self.what = what or f"{len(self.bad)} image(s) cannot be used"
        first_path, first_reason = self.bad[0] if self.bad else ("", "")
        lines = [f"strict mode: {self.what}:"]
        lines += [f"  {p}: {r}" for p, r in self.bad[:limit]]
        if len(self.bad) > limit:
            lines.append(f"  ... and {len(self.bad) - limit} more")
        if note:
            lines.append(note)
        Exception.__init__(self, "\n".join(lines))
        self.path, self.reason = first_path, first_reason

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):
        return (_rebuild_unreadable, (self.bad, self.note, self.limit, self.what))


def _rebuild_unreadable(
    bad: list[tuple[str, str]], note: str, limit: int, what: str
) -> UnreadableImagesError:
    return UnreadableImagesError(bad, note, limit=limit, what=what)


def printable_path(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes of a file name shown as ``\\xNN``."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def geometry_check(width: int, height: int) -> tuple[str, str]:
    """``(skip_reason, warning)`` of an image's size (each ``""`` when there is none).

    Below :data:`MIN_SIDE` on the shorter side: skipped; aspect ratio above :data:`MAX_ASPECT`:
    kept, with a warning.
    """
    short, long = min(width, height), max(width, height)
    if short < MIN_SIDE:
        reason = (
            f"image too small: {width}x{height} px, shorter side below {MIN_SIDE} px "
            "(one ViT patch)"
        )
        return reason, ""
    if long > MAX_ASPECT * short:
        return "", (
            f"extreme aspect ratio {width}x{height} px (beyond {MAX_ASPECT:g}:1), "
            "squashed by the square resize"
        )
    return "", ""


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


def _allowed_formats() -> list[str]:
    Image.init()
    return [f for f in IMAGE_FORMATS if f in Image.OPEN]


def _sniff(head: bytes) -> str:
    """The image format whose magic bytes ``head`` starts with ("" when none)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), "")


def _too_large(width: int, height: int) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or width * height <= limit:
        return ""
    return (
        f"image too large: {width}x{height} = {width * height} pixels, above the "
        f"decompression-bomb limit of {int(limit)} pixels (PIL.Image.MAX_IMAGE_PIXELS)"
    )


def _upright(im: Image.Image, path: Path) -> Image.Image:
    """``im`` turned upright by its EXIF orientation (as Hugging Face ``datasets`` does)."""
    try:
        orientation = im.getexif().get(ExifTags.Base.Orientation)
    except Exception as exc:  # noqa: BLE001 - a corrupt EXIF block is no reason to lose the image
        log.debug("%s: unreadable EXIF ignored (%s)", printable_path(path), exc)
        return im
    if orientation in (None, 1):
        return im
    return ImageOps.exif_transpose(im)


def try_read_rgb(path: str | Path, *, alpha: str = "drop") -> tuple[Image.Image | None, str]:
    """Read ``path`` as an RGB image (the module's formats, checks and conversions).

    Returns:
        ``(image, "")`` on success, ``(None, reason)`` when the file cannot be read soundly.
    """
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return None, "missing file"
    except OSError as exc:
        return None, f"cannot stat file ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    if st.st_size == 0:
        return None, "zero-byte file"
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        return None, f"cannot open file ({exc.strerror or exc})"
    with fh, warnings.catch_warnings():
        # a warning-level decompression bomb is refused like an error-level one
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(fh, formats=_allowed_formats())
        except UnidentifiedImageError:
            fh.seek(0)
            fmt = _sniff(fh.read(16))
            if fmt:
                return None, f"truncated or corrupt image data ({fmt} header, cannot be parsed)"
            return None, "not an image"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return None, f"image too large: {exc}"
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, not a crash
            return None, f"truncated or corrupt image data ({type(exc).__name__}: {exc})"
        try:
            with im:
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                too_large = _too_large(im.width, im.height)
                if too_large:
                    return None, too_large
                im.load()
                rgb = to_rgb(_upright(im, p), alpha=alpha, path=p)
                rgb.load()
                if rgb is im:
                    rgb = im.copy()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return None, f"image too large: {exc}"
        except MemoryError:
            return None, "image too large (out of memory while decoding)"
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            return None, f"truncated or corrupt image data ({exc})"
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, not a crash
            return None, f"truncated or corrupt image data ({type(exc).__name__}: {exc})"
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
