"""Fault injection on the input side: bad images, bad folders and bad paths, driven through the
real ``cytosae extract`` command on the tiny backbone.

Every bad input gets a sound conversion or a skip with the file and the reason listed; the run
finishes and says what it skipped; token rows stay aligned with the manifest; in strict mode the
run stops with a message naming every bad file (exit status 2, no traceback); nothing outside
the dataset root is read and no code from a weights file runs. ``BAD_INPUTS`` below is the
inventory (input -> expected outcome) the tests check.
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

from cytosae.cli import main
from cytosae.data.adapters import load_manifest, manifest_digest
from cytosae.data.imageio import MIN_SIDE, read_rgb, read_rgb_array, try_read_rgb
from cytosae.model.backbone import BackboneConfig, load_backbone, preprocess
from cytosae.store.reader import TokenStore

SEED = 5


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def model():
    return load_backbone(BackboneConfig(arch="tiny-test", init_seed=SEED))


def _argv(
    kind: str, root: Path, runs: Path, *extra: str, shard: int = 4, workers: int = 0
) -> list[str]:
    return [
        "extract",
        "--dataset",
        kind,
        "--root",
        str(root),
        "--arch",
        "tiny-test",
        "--init-seed",
        str(SEED),
        "--batch-size",
        "2",
        "--shard-size",
        str(shard),
        "--workers",
        str(workers),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--runs",
        str(runs),
        "--no-progress",
        *extra,
    ]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _stores(runs: Path) -> list[Path]:
    tokens = runs / "tokens"
    return sorted(tokens.iterdir()) if tokens.is_dir() else []


# --------------------------------------------------------------------------- file makers


def _rgb(path: Path, seed: int, size: tuple[int, int] = (32, 32), mode: str = "RGB") -> Path:
    """A random image of ``size`` (width, height) in ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L")
    elif mode == "RGBA":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), mode="RGBA")
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(16)
    elif mode == "CMYK":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), mode="CMYK")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    img.save(path)
    return path


def _exif_rotated(path: Path, seed: int) -> Path:
    """A 40x24 JPEG stored sideways with EXIF orientation 6 (display: rotate 90 degrees)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    return path


def _truncated(path: Path, fmt: str, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format=fmt)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    b = bytearray(buf.getvalue())
    b[16:20] = width.to_bytes(4, "big")
    b[20:24] = height.to_bytes(4, "big")
    b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(b))
    return path


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\n"


def _bytes_path(folder: Path, raw_name: bytes) -> bytes:
    return os.fsencode(folder) + b"/" + raw_name


#: The inventory of bad inputs the suite tries (input -> expected outcome), for the record; each
#: entry is built and its outcome asserted by the tests below.
BAD_INPUTS: dict[str, str] = {
    "zero-byte .tif": "skipped: zero-byte file",
    "truncated JPEG": "skipped: truncated or corrupt image data",
    "truncated TIFF": "skipped: truncated or corrupt image data",
    "truncated LZW TIFF (no IFD)": "skipped: truncated or corrupt image data (TIFF header)",
    "text file named .tif": "skipped: not an image",
    "EPS content named .tif": "skipped: not an image (Ghostscript never runs)",
    "16-bit grey TIFF": "kept: round(v*255/65535), grey replicated",
    "RGBA PNG": "kept: alpha dropped (= convert('RGB'))",
    "grey PNG": "kept: replicated (= convert('RGB'))",
    "palette PNG": "kept: palette lookup (= convert('RGB'))",
    "CMYK JPEG": "kept: Pillow's CMYK->RGB (= convert('RGB'))",
    "EXIF-rotated JPEG (orientation 6)": "kept: rotated upright (= exif_transpose)",
    "bomb header 30000x30000 (error level)": "skipped: image too large",
    "bomb header 10000x10000 (warning level)": "skipped: image too large, never decoded",
    "5x5 image": "skipped: image too small",
    "300x10 image": "skipped: image too small",
    "200x20 image (10:1)": "kept, aspect-ratio warning",
    "duplicate names in two folders": "kept: distinct image ids",
    "same name, two extensions (one folder)": "both skipped: image id is not unique",
    "name with spaces": "kept",
    "non-UTF-8 file name": "skipped: file name is not valid UTF-8",
    "non-UTF-8 folder name": "skipped: folder name is not valid UTF-8",
    "file symlink leaving the root": "skipped: symlink leaves the dataset root",
    "folder symlink leaving the root": "skipped: symlink leaves the dataset root",
    "folder symlink back to the root (loop)": "skipped: symlink loop",
    "folder symlink back to its parent (loop)": "skipped: symlink loop",
    "cycle of file symlinks": "skipped: symlink loop",
    "broken symlink": "skipped: broken symlink",
    "symlink inside the root": "kept (followed)",
    "image in the imagefolder root": "skipped: outside any label folder",
    "_-named image (imagefolder)": "skipped: starts with '_'",
    "image in a _-folder (imagefolder)": "skipped: starts with '_'",
    "__MACOSX / .hidden images": "ignored, counted in a log line",
    "empty class folder": "no rows, warning",
    "empty root": "exit 2: expected <layout>, found an empty folder",
    "images in _groundtruth/ of a dataset layout": "ignored, counted in a log line",
    "hehr metadata.csv symlinked from outside": "not read, listed; disease from the folder",
    "csv: absolute path /etc/hostname": "skipped: path outside the dataset root",
    "csv: ../outside/secret.tif": "skipped: outside the root (read with --allow-outside-root)",
    "csv: symlink to outside": "skipped: path outside the dataset root",
    "csv: symlink loop": "skipped: symlink loop",
    "csv: empty path": "skipped: empty path",
    "csv: missing file": "skipped: missing file",
    "csv: a folder": "skipped: not a regular file",
    "csv: FIFO": "skipped: not a regular file (never opened)",
    "csv file not UTF-8": "exit 2 naming the CSV",
    "manifest with non-UTF-8 path (API)": "ValueError naming the row, no codec error",
    "malicious pickle .pth (zip)": "exit 2, refused before any code runs, no store folder",
    "malicious pickle .pth (legacy)": "exit 2, refused before any code runs, no store folder",
    "strict: unreadable images": "exit 2 naming every one, clean shards kept",
    "strict: cached non-strict store": "exit 2 naming the skipped images of that store",
    "strict: adapter refusals": "exit 2 naming them, nothing computed, no store folder",
}


def _bad_tree(base: Path) -> tuple[Path, dict[str, str]]:
    """An imagefolder with every image-level and folder-level fault; returns the root and the
    expected skipped files (printable path -> reason substring)."""
    root = base / "ds"
    outside = base / "outside"
    _rgb(outside / "secret.png", 99)
    _rgb(outside / "dir" / "s2.png", 98)
    good, bad, other = root / "good", root / "bad", root / "other"
    _rgb(good / "rgb.png", 1)
    _rgb(good / "rgba.png", 2, mode="RGBA")
    _rgb(good / "grey.png", 3, mode="L")
    _rgb(good / "palette.png", 4, mode="P")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(good / "cmyk.jpg", quality=100)
    _rgb(good / "deep16.tif", 5, mode="I;16")
    _exif_rotated(good / "exif6.jpg", 6)
    _rgb(good / "wide.png", 7, size=(200, 20))
    _rgb(good / "with space.png", 8)
    _rgb(good / "dup.png", 9)
    _rgb(other / "dup.png", 10)
    os.symlink(other / "dup.png", good / "link_in.png")  # inside the root: followed
    (root / "empty").mkdir()
    expected: dict[str, str] = {}

    def bad_file(p: Path, reason: str) -> None:
        expected[str(p)] = reason

    (bad / "zero.tif").parent.mkdir(parents=True)
    (bad / "zero.tif").write_bytes(b"")
    bad_file(bad / "zero.tif", "zero-byte file")
    bad_file(_truncated(bad / "truncj.jpg", "JPEG", 11), "truncated or corrupt image data")
    bad_file(_truncated(bad / "trunc.tif", "TIFF", 12), "truncated or corrupt image data")
    (bad / "text.tif").write_text("definitely not an image\n" * 20)
    bad_file(bad / "text.tif", "not an image")
    (bad / "eps.tif").write_bytes(EPS)
    bad_file(bad / "eps.tif", "not an image")
    bad_file(_png_claiming(bad / "bomb.png", 30000, 30000), "image too large")
    bad_file(_png_claiming(bad / "bombw.png", 10000, 10000), "image too large")
    bad_file(_rgb(bad / "tiny.png", 13, size=(5, 5)), "image too small")
    bad_file(_rgb(bad / "thin.png", 14, size=(300, 10)), "image too small")
    bad_file(_rgb(bad / "twin.png", 21), "image id 'bad/twin' is not unique")
    bad_file(_rgb(bad / "twin.jpg", 22), "image id 'bad/twin' is not unique")
    # names (a file system that refuses names that are not UTF-8 cannot hold these) and symlinks
    try:
        raw = _bytes_path(bad, b"caf\xe9.png")  # Latin-1 name: not UTF-8
        Path(os.fsdecode(raw)).write_bytes((good / "rgb.png").read_bytes())
        bad_file(Path(os.fsdecode(bad) + "/caf\\xe9.png"), "file name is not valid UTF-8")
        os.mkdir(_bytes_path(root, b"\xffclass"))
        _rgb(Path(os.fsdecode(_bytes_path(root, b"\xffclass"))) / "x.png", 15)
        bad_file(Path(str(root) + "/\\xffclass"), "folder name is not valid UTF-8")
    except OSError:
        pass
    os.symlink(outside / "secret.png", bad / "link_out.png")
    bad_file(bad / "link_out.png", "symlink leaves the dataset root")
    os.symlink(outside / "dir", root / "linkdir_out")
    bad_file(root / "linkdir_out", "symlink leaves the dataset root")
    os.symlink(root, root / "loop")
    bad_file(root / "loop", "symlink loop")
    os.symlink("..", bad / "up")
    bad_file(bad / "up", "symlink loop")
    os.symlink("cyc_b.png", bad / "cyc_a.png")
    os.symlink("cyc_a.png", bad / "cyc_b.png")
    bad_file(bad / "cyc_a.png", "symlink loop")
    bad_file(bad / "cyc_b.png", "symlink loop")
    os.symlink(bad / "nowhere.png", bad / "broken.png")
    bad_file(bad / "broken.png", "broken symlink")
    # imagefolder conventions
    bad_file(_rgb(root / "stray.png", 16), "outside any label folder")
    bad_file(_rgb(good / "_hidden.png", 17), "starts with '_'")
    bad_file(_rgb(root / "_extra" / "x.png", 18), "starts with '_'")
    _rgb(root / "__MACOSX" / "good" / "._rgb.png", 19)  # ignored, counted
    _rgb(root / ".hidden" / "h.png", 20)  # ignored, counted
    return root, expected


def _expected_rgb(path: str) -> Image.Image:
    """The RGB image the authors' preprocessing (convert("RGB") after the EXIF rotation of HF
    ``datasets``) gives, except for 16-bit, which is scaled (see ``imageio``)."""
    with Image.open(path) as im:
        if im.mode.startswith("I;16"):
            v = np.asarray(im).astype(np.float64)
            g = np.rint(v * 255 / 65535).astype(np.uint8)
            return Image.fromarray(np.repeat(g[..., None], 3, -1))
        return ImageOps.exif_transpose(im).convert("RGB")


def _check_alignment(store: TokenStore, model, rows: list[int] | None = None) -> None:
    """``store.get(i)`` == the backbone's tokens of manifest row ``i`` (expected conversion)."""
    rows = list(range(store.n_images)) if rows is None else rows
    x = torch.stack([preprocess(_expected_rgb(store.manifest["path"].iloc[i])) for i in rows])
    with torch.inference_mode():
        want = model(x).numpy()
    got = store.get(rows).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


# --------------------------------------------------------------------------- the suite


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker"])
def test_bad_tree_end_to_end(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    model,
    workers: int,
) -> None:
    """One imagefolder holding every fault: the run finishes, lists each bad file with its
    reason, keeps every good one with the right conversion, and the rows stay aligned (also
    when decoding runs in a DataLoader worker process)."""
    caplog.set_level(logging.INFO, logger="cytosae")
    root, expected = _bad_tree(tmp_path)
    runs = tmp_path / "runs"
    rc, out, err = _run(_argv("imagefolder", root, runs, workers=workers), capsys)
    assert rc == 0, err
    lines = out.splitlines()
    store = TokenStore(lines[0])
    kept = {
        "good/rgb",
        "good/rgba",
        "good/grey",
        "good/palette",
        "good/cmyk",
        "good/deep16",
        "good/exif6",
        "good/wide",
        "good/with space",
        "good/dup",
        "other/dup",
        "good/link_in",
    }
    assert set(store.manifest["image_id"]) == kept
    assert list(store.manifest["label"]) == [i.split("/")[0] for i in store.manifest["image_id"]]
    # every bad file is listed, with its reason, in skipped.csv and in the command's output
    sk = dict(zip(store.skipped["path"], store.skipped["reason"]))
    assert set(sk) == set(expected), set(sk) ^ set(expected)
    for path, reason in expected.items():
        assert reason in sk[path], (path, sk[path])
    assert f"{len(expected)} skipped" in lines[1]
    assert any("skipped.csv" in line for line in lines)
    assert store.metadata["n_skipped"] == len(expected) == len(store.skipped)
    # conversions and alignment: every stored row is the backbone's tokens of that very file
    _check_alignment(store, model)
    ids = list(store.manifest["image_id"])
    exif = read_rgb(store.manifest["path"][ids.index("good/exif6")])
    assert exif.size == (24, 40)  # upright: stored 40 wide x 24 high, orientation 6
    # warnings and counts in the log
    log = caplog.text
    assert "extreme aspect ratio" in log and "wide.png" in log
    assert "ignored 2 image file(s)" in log and "__MACOSX/" in log and ".hidden/" in log
    assert "hold no images" in log and "empty" in log
    # nothing outside the root made it into the store
    assert not any(str(tmp_path / "outside") in p for p in store.manifest["path"])


def test_bad_tree_strict_refuses_up_front(tmp_path: Path, capsys, monkeypatch) -> None:
    """Strict mode on the same tree: the adapter's refusals stop it before anything is computed
    (exit 2, every refused file named, no traceback, no store folder)."""
    root, _ = _bad_tree(tmp_path)
    runs = tmp_path / "runs"
    called = []
    monkeypatch.setattr(
        "cytosae.store.extract.load_backbone", lambda *a, **k: called.append(1) or 1 / 0
    )
    rc, _, err = _run(_argv("imagefolder", root, runs, "--strict"), capsys)
    assert rc == 2 and not called
    assert "Traceback" not in err and "strict mode" in err
    for needle in ("link_out.png", "linkdir_out", "loop", "stray.png", "_hidden.png", "twin"):
        assert needle in err, needle
    assert "nothing was computed" in err
    assert _stores(runs) == []


def _mll23_with_bad_files(base: Path) -> Path:
    """An MLL23 tree whose sorted rows are: b0 b1 b2 b3 | m0 m1(zero) m2 m3(trunc) | m4(tiny)
    m5 -> with shard size 4, shard 0 is clean and shards 1, 2 hold bad files."""
    root = base / "mll23"
    for i in range(4):
        _rgb(root / "basophil" / "basophil" / f"b{i}.tif", 30 + i)
    inner = root / "myeloblast" / "myeloblast"
    for i in (0, 2, 5):
        _rgb(inner / f"m{i}.tif", 40 + i)
    (inner / "m1.tif").write_bytes(b"")
    _truncated(inner / "m3.tif", "TIFF", 44)
    _rgb(inner / "m4.tif", 45, size=(5, 5))
    return root


def test_strict_names_every_bad_file_and_keeps_clean_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model
) -> None:
    root = _mll23_with_bad_files(tmp_path)
    runs = tmp_path / "runs"
    rc, out, err = _run(_argv("mll23", root, runs, "--strict"), capsys)
    assert rc == 2
    assert "Traceback" not in err
    assert "3 image(s) cannot be read" in err
    for name, reason in (
        ("m1.tif", "zero-byte file"),
        ("m3.tif", "truncated"),
        ("m4.tif", "image too small"),
    ):
        assert f"{name}: {reason}" in err, (name, err)
    (folder,) = _stores(runs)
    # the clean shard is kept; the shards holding bad files are not written; not finalised
    assert sorted(p.name for p in folder.glob("shard_*.json")) == ["shard_00000.json"]
    assert not (folder / "COMPLETE").exists()
    assert "1 completed shard(s)" in err
    # a lenient rerun finishes it, reusing shard 0
    mtime = (folder / "shard_00000.npy").stat().st_mtime_ns
    rc, out, err = _run(_argv("mll23", root, runs), capsys)
    assert rc == 0 and out.splitlines()[0] == str(folder)
    assert (folder / "shard_00000.npy").stat().st_mtime_ns == mtime
    store = TokenStore(folder)
    assert store.n_images == 7 and store.metadata["n_skipped"] == 3
    assert sorted(store.skipped["image_id"]) == [
        "myeloblast/myeloblast/m1",
        "myeloblast/myeloblast/m3",
        "myeloblast/myeloblast/m4",
    ]
    _check_alignment(store, model, [0, 3, 4, 6])
    # strict again: the cached store lists skipped images, so it is refused, naming them
    rc, out, err = _run(_argv("mll23", root, runs, "--strict"), capsys)
    assert rc == 2 and "Traceback" not in err
    assert "3 image(s) of the store it would reuse were skipped" in err
    assert "m1.tif: zero-byte file" in err and str(folder) in err


def test_strict_without_any_clean_shard_leaves_no_folder(tmp_path: Path, capsys) -> None:
    root = _mll23_with_bad_files(tmp_path)
    runs = tmp_path / "runs"
    rc, _, err = _run(_argv("mll23", root, runs, "--strict", shard=100), capsys)
    assert rc == 2 and "every shard of this run holds one of them" in err
    assert _stores(runs) == []


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_weights_refused_before_any_code_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], legacy: bool
) -> None:
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    weights = tmp_path / "DinoBloom-S.pth"
    torch.save({"teacher": Evil()}, weights, _use_new_zipfile_serialization=not legacy)
    root = tmp_path / "ds"
    _rgb(root / "a" / "x.png", 1)
    runs = tmp_path / "runs"
    argv = _argv("imagefolder", root, runs, "--weights", str(weights))
    rc, _, err = _run(argv, capsys)
    assert rc == 2
    assert not marker.exists()
    assert str(weights) in err and "Traceback" not in err
    for unsafe in ("weights_only=False", "weights_only", "safe_globals", "trusted source"):
        assert unsafe not in err, unsafe
    assert _stores(runs) == []  # no half-made store folder
    assert (weights.read_bytes()[:2] == b"PK") != legacy  # both torch formats were tried


def test_csv_paths_are_confined(tmp_path: Path, capsys: pytest.CaptureFixture[str], model) -> None:
    base = tmp_path / "lists"
    _rgb(base / "imgs" / "a.png", 1)
    _rgb(base / "imgs" / "b.png", 2)
    _rgb(tmp_path / "outside" / "secret.tif", 3)
    os.symlink(tmp_path / "outside" / "secret.tif", base / "imgs" / "link.tif")
    os.symlink("loop2.png", base / "imgs" / "loop1.png")
    os.symlink("loop1.png", base / "imgs" / "loop2.png")
    os.mkfifo(base / "imgs" / "fifo.png")
    rows = {
        "imgs/a.png": None,
        "imgs/b.png": None,
        "/etc/hostname": "path outside the dataset root",
        "../outside/secret.tif": "path outside the dataset root",
        "imgs/link.tif": "path outside the dataset root",
        "imgs/loop1.png": "symlink loop",
        "": "empty path",
        "imgs/missing.png": "missing file",
        "imgs": "not a regular file",
        "imgs/fifo.png": "not a regular file",
    }
    pd.DataFrame({"path": list(rows), "label": [f"l{i}" for i in range(len(rows))]}).to_csv(
        base / "m.csv", index=False
    )
    runs = tmp_path / "runs"
    rc, out, err = _run(_argv("csv", base / "m.csv", runs), capsys)
    assert rc == 0, err
    store = TokenStore(out.splitlines()[0])
    assert list(store.manifest["image_id"]) == ["imgs/a", "imgs/b"]
    sk = store.skipped
    reasons = {Path(p).name: r for p, r in zip(sk["path"], sk["reason"])}
    for path, reason in rows.items():
        if reason is None:
            continue
        key = Path(path).name if path else "m.csv:row 8"
        assert reason in reasons[key], (path, reasons)
    assert "/etc/hostname" in set(sk["path"])
    assert not any("outside" in p for p in store.manifest["path"])
    _check_alignment(store, model)
    # the documented opt-in reads paths outside the root (here: the two real images)
    rc, out, err = _run(_argv("csv", base / "m.csv", runs, "--allow-outside-root"), capsys)
    assert rc == 0, err
    store = TokenStore(out.splitlines()[0])
    assert "../outside/secret" in set(store.manifest["image_id"])
    assert store.skipped.set_index("path")["reason"]["/etc/hostname"] in (
        "not an image",
        "missing file",
    )
    # a CSV in another encoding: a clear error naming the file
    (base / "latin1.csv").write_bytes("path,label\nimgs/a.png,caf\xe9\n".encode("latin-1"))
    rc, out, err = _run(_argv("csv", base / "latin1.csv", runs), capsys)
    assert rc == 2 and "latin1.csv is not UTF-8" in err and "Traceback" not in err


def test_empty_root_and_all_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(_argv("imagefolder", tmp_path / "empty", tmp_path / "runs"), capsys)
    assert rc == 2 and "found an empty folder" in err and "Traceback" not in err
    # a root whose only class is a symlink out of it says so (and how to allow it)
    (tmp_path / "outside" / "cls").mkdir(parents=True)
    _rgb(tmp_path / "outside" / "cls" / "a.png", 1)
    (tmp_path / "links").mkdir()
    os.symlink(tmp_path / "outside" / "cls", tmp_path / "links" / "cls")
    rc, _, err = _run(_argv("imagefolder", tmp_path / "links", tmp_path / "runs"), capsys)
    assert rc == 2 and "symlink leaves the dataset root" in err and "allow_outside_root" in err
    rc, out, err = _run(
        _argv("imagefolder", tmp_path / "links", tmp_path / "runs", "--allow-outside-root"), capsys
    )
    assert rc == 0 and "1 images" in out.splitlines()[1]
    assert _stores(tmp_path / "runs")  # only the successful run made a store


# --------------------------------------------------------------------------- library level


def test_dataset_layout_ignores_underscore_folders_but_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cytosae")
    root = tmp_path / "mll23"
    _rgb(root / "basophil" / "basophil" / "b.tif", 1)
    _rgb(root / "_groundtruth" / "a.png", 2)
    _rgb(root / "_groundtruth" / "sub" / "b.png", 3)
    (root / "_groundtruth" / "meta.json").write_text("{}")
    df = load_manifest("mll23", root)
    assert list(df["image_id"]) == ["basophil/basophil/b"] and df.attrs["skipped"] == []
    assert "ignored 2 image file(s)" in caplog.text and "_groundtruth/ (2)" in caplog.text
    # hehr: a metadata.csv symlinked from outside the root is not read
    hehr = tmp_path / "hehr"
    _rgb(hehr / "data" / "NPM1" / "P1" / "image_0.tif", 4)
    pd.DataFrame({"patient_id": ["P1"], "bag_label": ["control"]}).to_csv(
        tmp_path / "meta_outside.csv", index=False
    )
    os.symlink(tmp_path / "meta_outside.csv", hehr / "metadata.csv")
    df = load_manifest("hehr", hehr)
    assert list(df["disease"]) == ["NPM1"]  # from the folder, not the outside file
    assert "symlink leaves the dataset root" in df.attrs["skipped"][0][1]


def test_manifest_with_undecodable_path_is_a_clear_error() -> None:
    df = pd.DataFrame(
        {
            "image_id": ["a"],
            "path": [os.fsdecode(b"/data/caf\xe9.png")],
            "dataset": ["x"],
            "label": ["l"],
            "patient": [""],
            "disease": [""],
            "split": ["all"],
        }
    )
    with pytest.raises(ValueError, match=r"path is not valid UTF-8.*caf\\\\xe9"):
        manifest_digest(df)


def test_reader_details(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the suite's images rely on, checked on the reader directly."""
    # EXIF orientation: rotated like exif_transpose; a plain JPEG is unchanged
    p = _exif_rotated(tmp_path / "r.jpg", 1)
    with Image.open(p) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        stored = np.asarray(im.convert("RGB"))
    got = read_rgb_array(p)
    assert got.shape == (40, 24, 3) and stored.shape == (24, 40, 3)
    np.testing.assert_array_equal(got, want)
    # 16-bit: scaled, not clipped as convert("RGB") would
    v = np.array([[0, 257, 32896, 65535]] * 2, dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "d.tif")
    assert read_rgb_array(tmp_path / "d.tif")[0, :, 0].tolist() == [0, 1, 128, 255]
    # a warning-level bomb is refused before decoding, also with a lowered limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _rgb(tmp_path / "w.png", 2, size=(40, 40))  # 1600 px: above the limit, below twice it
    _rgb(tmp_path / "e.png", 3, size=(50, 50))  # 2500 px: above twice the limit
    for name in ("w.png", "e.png"):
        img, why = try_read_rgb(tmp_path / name)
        assert img is None and why.startswith("image too large"), (name, why)
    monkeypatch.undo()
    # content Pillow would hand to Ghostscript is never opened as an image
    import PIL.EpsImagePlugin as eps

    ran = []
    monkeypatch.setattr(eps, "Ghostscript", lambda *a, **k: ran.append(1))
    (tmp_path / "e.tif").write_bytes(EPS)
    assert try_read_rgb(tmp_path / "e.tif") == (None, "not an image")
    assert not ran
    # a compressed TIFF cut before its directory: a damaged TIFF, not "not an image"
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (1, 2, 3)).save(buf, format="TIFF", compression="tiff_lzw")
    (tmp_path / "lzw.tif").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    img, why = try_read_rgb(tmp_path / "lzw.tif")
    assert img is None and why.startswith("truncated or corrupt image data (TIFF header")
    # a FIFO is never opened (it would block)
    os.mkfifo(tmp_path / "f.png")
    assert try_read_rgb(tmp_path / "f.png") == (None, "not a regular file")
    assert MIN_SIDE == 14
