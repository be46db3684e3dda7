"""Robust image reading: sound conversions, reasons for bad files, strict mode."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytosae.data.imageio import ImageReadError, read_rgb, read_rgb_array, try_read_rgb


def test_rgb_roundtrip(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.tif")
    got = read_rgb_array(tmp_path / "a.tif")
    assert got.dtype == np.uint8 and got.shape == (5, 7, 3)
    np.testing.assert_array_equal(got, arr)


def test_rgba_drop_and_white(tmp_path: Path) -> None:
    rgba = np.array(
        [[[200, 100, 50, 255], [200, 100, 50, 0]], [[10, 20, 30, 128], [0, 0, 0, 51]]],
        dtype=np.uint8,
    )
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    dropped = read_rgb_array(tmp_path / "a.png")
    np.testing.assert_array_equal(dropped, rgba[..., :3])  # == Image.convert("RGB")
    white = read_rgb_array(tmp_path / "a.png", alpha="white")
    # composite on white: out = c * a/255 + 255 * (1 - a/255) (Pillow rounds)
    a = rgba[..., 3:].astype(np.float64) / 255
    expect = rgba[..., :3] * a + 255 * (1 - a)
    assert np.abs(white.astype(np.float64) - expect).max() <= 1.0
    assert white[0, 1].tolist() == [255, 255, 255] and white[0, 0].tolist() == [200, 100, 50]


def test_grey_palette_la(tmp_path: Path) -> None:
    g = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(
        read_rgb_array(tmp_path / "g.png"), np.repeat(g[..., None], 3, -1)
    )
    Image.fromarray(np.stack([g, np.full_like(g, 255)], -1), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(
        read_rgb_array(tmp_path / "la.png"), np.repeat(g[..., None], 3, -1)
    )
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 40, 50, 60] + [0] * (256 * 3 - 6))
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    assert read_rgb_array(tmp_path / "p.png").tolist() == [[[10, 20, 30], [40, 50, 60]]]


def test_16bit_scaled(tmp_path: Path) -> None:
    v = np.array([[0, 257], [65535, 32896]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "d.tif")
    with Image.open(tmp_path / "d.tif") as im:
        assert im.mode.startswith("I;16")
    got = read_rgb_array(tmp_path / "d.tif")
    assert got[..., 0].tolist() == [[0, 1], [255, 128]]
    assert (got[..., 0] == got[..., 2]).all()


def test_cmyk(tmp_path: Path) -> None:
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    got = read_rgb_array(tmp_path / "c.jpg")
    assert got.shape == (2, 3, 3)
    assert got[..., 0].min() > 230 and got[..., 1].max() < 25 and got[..., 2].max() < 25  # red


def test_bad_files_reasons_and_strict(tmp_path: Path) -> None:
    (tmp_path / "zero.tif").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("definitely not an image\n" * 10)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90
    )
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases = {
        "zero.tif": "zero-byte",
        "text.jpg": "not an image",
        "trunc.jpg": "truncated",
        "missing.png": "missing",
    }
    for name, reason in cases.items():
        img, why = try_read_rgb(tmp_path / name)
        assert img is None and reason in why, (name, why)
        with pytest.raises(ImageReadError, match=reason) as ei:
            read_rgb(tmp_path / name)
        assert ei.value.path == str(tmp_path / name) and reason in ei.value.reason
    err = pickle.loads(pickle.dumps(ImageReadError("p", "r")))
    assert (err.path, err.reason) == ("p", "r")
    with pytest.raises(ValueError, match="alpha"):
        read_rgb(tmp_path / "zero.tif", alpha="magenta")
