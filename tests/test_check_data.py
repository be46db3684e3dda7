"""``cytosae check-data`` on the synthetic smoke world, then on each planted fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytosae.cli import main
from cytosae.data import adapters, catalog, check
from cytosae.data.check import DataFolderReport, DatasetReport, check_data_folder, check_dataset
from cytosae.synth import SynthConfig, write_all

#: images per dataset of the smoke profile: 18 x 1, 8 groups x 2, 15 x 1, 21 x 1, 5 x 2 x 3
SMOKE_IMAGES = {"mll23": 18, "acevedo": 16, "matek19": 15, "bmc": 21, "hehr": 30}
SMOKE_SIZES = {
    "mll23": {"288x288 RGB": 18},
    "acevedo": {"360x363 RGB": 16},
    "matek19": {"400x400 RGB": 12, "400x400 RGBA": 3},
    "bmc": {"250x250 RGB": 21},
    "hehr": {"144x144 RGB": 27, "144x144 RGBA": 3},
}
FREE = 10**12  # bytes "free" in every test unless it says otherwise


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checkdata") / "data"
    write_all(out, SynthConfig.for_profile("smoke"), progress=False)
    return out


@pytest.fixture
def data(smoke: Path, tmp_path: Path) -> Path:
    """A private copy of the smoke folder to plant faults in."""
    return Path(shutil.copytree(smoke, tmp_path / "data"))


@pytest.fixture(autouse=True)
def free_space(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(check, "disk_free", lambda path: FREE)
    monkeypatch.setenv("CYTOSAE_RUNS", str(tmp_path / "runs"))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["check-data", "--no-progress", *args])
    return rc, capsys.readouterr().out


def test_smoke_folder_exact_counts(smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = check_data_folder(smoke, progress=False, workers=1)
    by = {r.dataset: r for r in report.datasets}
    assert list(by) == list(catalog.PAPER_DATASETS) and report.ok
    for name, n in SMOKE_IMAGES.items():
        r = by[name]
        assert (r.present, r.n_images, r.sizes, r.unreadable, r.refused) == (
            True,
            n,
            SMOKE_SIZES[name],
            (),
            (),
        )
        assert r.problems == () and r.missing_classes == () and r.unexpected_classes == ()
        assert r.published == catalog.CATALOG[name].n_images
        assert r.warnings[0] == f"{n} image files, the published dataset has {r.published:,}"
        assert r.disk is not None and r.disk.bytes_needed == n * 257 * 768 * 2
    mll = {c.name: (c.found, c.published) for c in by["mll23"].classes}
    assert len(mll) == 18 and mll["basophil"] == (1, 616) and mll["myeloblast"] == (1, 8606)
    acevedo = {c.name: (c.found, c.published) for c in by["acevedo"].classes}
    assert acevedo == {g: (2, n) for g, n in catalog.CATALOG["acevedo"].class_counts.items()}
    assert by["acevedo"].class_level == "folder" and by["acevedo"].class_counts_approximate
    assert (
        sum(by["acevedo"].labels.values()) == 16 and "neutrophil_segmented" in by["acevedo"].labels
    )
    assert [c.found for c in by["matek19"].classes] == [1] * 15
    assert {c.name: c.found for c in by["hehr"].classes} == dict.fromkeys(
        catalog.HEHR_BAG_LABELS, 6
    )
    hehr = by["hehr"].hehr
    assert hehr is not None and hehr.patients == dict.fromkeys(catalog.HEHR_BAG_LABELS, 2)
    assert hehr.published_patients["control"] == 60 and hehr.metadata.endswith("metadata.csv")
    assert (hehr.empty_patients, hehr.rows_without_folder, hehr.folders_not_in_metadata) == (
        (),
        (),
        (),
    )
    assert report.disk is not None and report.disk.n_images == 100
    assert report.disk.bytes_needed == 100 * 257 * 768 * 2 and report.disk.bytes_free == FREE
    rc, out = _cli(capsys, "--data", str(smoke), "--workers", "2")
    assert rc == 0 and "check-data: 0 problem(s), 10 warning(s)" in out
    assert "  images      18 found; published 41,621" in out
    assert "400x400 RGBA: 3" in out and "5 of 5 present, 100 images" in out


def test_missing_class_is_a_problem(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(data / "mll23" / "basophil")
    r = check_dataset("mll23", data / "mll23", progress=False, workers=1)
    assert r.missing_classes == ("basophil",) and r.n_images == 17 and not r.ok
    assert r.problems == ("no images of 1 of the 18 published classes: basophil",)
    assert {c.name: c.found for c in r.classes}["basophil"] == 0
    rc, out = _cli(capsys, "--dataset", "mll23", "--root", str(data / "mll23"))
    assert rc == 1 and "missing: basophil" in out and "-> exit 1" in out


def test_unexpected_class_is_a_warning(data: Path) -> None:
    extra = data / "mll23" / "giant_cell" / "giant_cell"
    extra.mkdir(parents=True)
    shutil.copy(next((data / "mll23" / "basophil" / "basophil").glob("*.tif")), extra / "g.tif")
    r = check_dataset("mll23", data / "mll23", progress=False, workers=1)
    assert r.ok and r.unexpected_classes == ("giant_cell",) and r.n_images == 19
    assert r.classes[-1] == check.ClassCount("giant_cell", 1, None)
    assert any("giant_cell" in w for w in r.warnings)


def test_broken_images(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiff = min((data / "matek19" / "AML-Cytomorphology" / "NGS").glob("*.tiff"))
    tiff.write_bytes(b"this is not a TIFF" * 10)
    jpeg = min((data / "bmc" / "BLA").rglob("*.jpg"))
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    r = check_dataset("matek19", tiff.parents[1], progress=False, workers=2)  # the process pool
    assert r.unreadable == (check.FileIssue(str(tiff), "not an image"),)
    assert r.ok and r.sizes == {"400x400 RGB": 11, "400x400 RGBA": 3}
    assert "1 of 15 images are unreadable and will be skipped" in r.warnings[-1]
    b = check_dataset("bmc", data / "bmc", progress=False, workers=2)
    assert [f.path for f in b.unreadable] == [str(jpeg)] and b.ok
    assert b.unreadable[0].reason.startswith("truncated or corrupt image data")
    # headers only: the garbage file is caught, the truncated JPEG is not
    fast = check_dataset("bmc", data / "bmc", decode=False, progress=False, workers=1)
    assert fast.unreadable == () and not fast.decoded and fast.sizes == {"250x250 RGB": 21}
    strict = check_dataset("bmc", data / "bmc", strict=True, progress=False, workers=1)
    assert not strict.ok and "stop a strict extraction" in strict.problems[0]
    rc, out = _cli(capsys, "--dataset", "bmc", "--root", str(data / "bmc"))
    assert rc == 0 and f"{jpeg}: truncated or corrupt image data" in out
    assert _cli(capsys, "--dataset", "bmc", "--root", str(data / "bmc"), "--strict")[0] == 1


def test_every_image_unreadable_is_a_problem(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((data / "bmc").rglob("*.jpg"))
    for f in files:
        f.write_bytes(b"")
    r = check_dataset("bmc", data / "bmc", progress=False, workers=1)
    assert len(r.unreadable) == 21 and {f.reason for f in r.unreadable} == {"zero-byte file"}
    assert r.problems == (f"all 21 images are unreadable (first: {files[0]}: zero-byte file)",)
    rc, out = _cli(capsys, "--dataset", "bmc", "--root", str(data / "bmc"))
    assert rc == 1 and "21 of 21 (fully decoded)" in out and "... 11 more" in out


def test_bmc_known_broken_file_is_refused_and_counted(data: Path) -> None:
    myb = data / "bmc" / "MYB" / "0001-1000"
    shutil.copy(myb / "MYB_00001.jpg", myb / "MYB_05527.jpg")
    r = check_dataset("bmc", data / "bmc", progress=False, workers=1)
    assert r.ok and r.n_images == 21 and r.unreadable == ()
    assert r.refused == (
        check.FileIssue(str(myb / "MYB_05527.jpg"), adapters.BMC_KNOWN_BROKEN["MYB_05527.jpg"]),
    )
    assert {c.name: c.found for c in r.classes}["MYB"] == 2  # counted as the archive counts it
    assert r.warnings[0] == "22 image files, the published dataset has 171,374"


def test_hehr_cohort_checks(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hehr = data / "hehr"
    meta = hehr / "metadata.csv"
    first = meta.read_text().splitlines()[1].split(",")
    meta.write_text(meta.read_text() + ",".join(["ZZZ", *first[1:]]) + "\n")
    (hehr / "data" / "NPM1" / "QQQ").mkdir()
    r = check_dataset("hehr", hehr, progress=False, workers=1)
    assert r.ok and r.hehr is not None and r.n_images == 30
    assert r.hehr.rows_without_folder == ("ZZZ",)
    assert r.hehr.empty_patients == ("NPM1/QQQ",)
    assert r.hehr.folders_not_in_metadata == ("NPM1/QQQ",)
    assert r.hehr.patients["NPM1"] == 2  # an empty folder is no patient of the run
    joined = "\n".join(r.warnings)
    assert "1 metadata.csv row(s) without a patient folder" in joined and "ZZZ" in joined
    rc, out = _cli(capsys, "--dataset", "hehr", "--root", str(hehr))
    assert rc == 0 and "metadata.csv rows without a folder: 1\n                ZZZ" in out
    meta.unlink()
    r = check_dataset("hehr", hehr, progress=False, workers=1)
    assert r.ok and r.hehr is not None and r.hehr.metadata == ""
    assert r.hehr.rows_without_folder == () and r.warnings[1].startswith("no metadata.csv at ")


def test_too_little_disk(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(check, "disk_free", lambda path: 1_000_000)
    r = check_dataset("mll23", data / "mll23", progress=False, workers=1)
    assert r.disk is not None and not r.disk.fits and r.disk.fraction == 7_105_536 / 1_000_000
    assert not r.ok and r.problems[0].startswith(
        "the mll23 token store would take 6.8 MiB but only"
    )
    rc, out = _cli(capsys, "--dataset", "mll23", "--root", str(data / "mll23"))
    assert rc == 1 and "would take 6.8 MiB" in out
    # each store fits, all five together do not: one problem of the folder
    total = 100 * 257 * 768 * 2
    monkeypatch.setattr(check, "disk_free", lambda path: total - 1)
    f = check_data_folder(data, progress=False, workers=1)
    assert all(d.ok for d in f.datasets) and not f.ok
    assert f.problems[0].startswith("the 5 token stores together would take 37.6 MiB")
    # a bigger backbone needs twice the disk of ViT-B
    g = check_dataset("mll23", data / "mll23", arch="dinobloom-g", progress=False, workers=1)
    assert g.disk is not None and g.disk.d_model == 1536 and g.disk.bytes_needed == 2 * 7_105_536


def test_json_round_trips(smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _cli(capsys, "--data", str(smoke), "--json", "--workers", "1")
    d = json.loads(out)
    assert rc == 0 and DataFolderReport.from_dict(d).to_dict() == d
    assert DataFolderReport.from_dict(d) == check_data_folder(smoke, progress=False, workers=1)
    one = check_dataset("hehr", smoke / "hehr", progress=False, workers=1)
    assert DatasetReport.from_dict(json.loads(json.dumps(one.to_dict()))) == one


def test_imagefolder_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "cells"
    for path, shape, mode in (
        ("blast/a.png", (32, 40, 3), "RGB"),
        ("blast/slide2/b.png", (32, 40, 4), "RGBA"),
        ("lymphocyte/c.jpg", (20, 20, 3), "RGB"),
        ("lymphocyte/d.png", (20, 20), "L"),
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / path)
    r = check_dataset("imagefolder", root, progress=False, workers=1)
    assert r.ok and r.warnings == () and r.n_images == 4 and r.published is None
    assert r.sizes == {"40x32 RGB": 1, "40x32 RGBA": 1, "20x20 RGB": 1, "20x20 L": 1}
    assert [(c.name, c.found, c.published) for c in r.classes] == [
        ("blast", 2, None),
        ("lymphocyte", 2, None),
    ]
    rc, out = _cli(capsys, "--dataset", "imagefolder", "--root", str(root))
    assert rc == 0 and "2 classes (none published to compare with)" in out
    # the same cells through a manifest CSV, one row pointing at a file that is not there
    rows = ["path,label", "blast/a.png,blast", "lymphocyte/c.jpg,lymphocyte", "gone.png,blast"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    c = check_dataset("csv", root / "manifest.csv", progress=False, workers=1)
    assert c.ok and c.n_images == 3 and c.sizes == {"40x32 RGB": 1, "20x20 RGB": 1}
    assert c.unreadable == (check.FileIssue(str(root / "gone.png"), "missing file"),)
    assert [(x.name, x.found) for x in c.classes] == [("blast", 2), ("lymphocyte", 1)]


def test_absent_datasets(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(data / "acevedo")
    f = check_data_folder(data, progress=False, workers=1)
    acevedo = next(r for r in f.datasets if r.dataset == "acevedo")
    assert f.ok and not acevedo.present and acevedo.problems == () and acevedo.n_images == 0
    assert f.disk is not None and f.disk.n_images == 100 - 16
    rc, out = _cli(capsys, "--data", str(data))
    assert rc == 0 and "4 of 5 present, 84 images; absent: acevedo" in out
    rc, out = _cli(capsys, "--data", str(data), "--dataset", "acevedo", "--dataset", "bmc")
    assert rc == 1 and "acevedo not found:" in out and "== bmc:" in out and "== mll23" not in out
    empty = data.parent / "empty"
    empty.mkdir()
    assert _cli(capsys, "--data", str(empty))[0] == 1


def test_layout_errors_are_problems(data: Path) -> None:
    (data / "mll23" / "basophil" / "basophil").rename(data / "mll23" / "basophil" / "other")
    r = check_dataset("mll23", data / "mll23", progress=False, workers=1)
    assert not r.ok and r.n_images == 0 and "has no inner folder basophil/" in r.problems[0]
    # the top folder is there but not the root the pipeline reads
    inner = data / "acevedo" / "PBC_dataset_normal_DIB"
    inner.rename(data / "acevedo" / "PBC")
    f = check_data_folder(data, datasets=["acevedo"], progress=False, workers=1)
    assert not f.ok and "does not exist" in f.datasets[0].problems[0] and f.datasets[0].present


def test_user_errors_exit_2(
    smoke: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CYTOSAE_DATA", raising=False)
    for args, message in (
        ((), "no data folder: pass --data DIR or set CYTOSAE_DATA"),
        (("--root", str(smoke / "mll23")), "--root needs exactly one --dataset KIND"),
        (("--data", str(smoke), "--arch", "dinobloom-x"), "unknown 'dinobloom-x'"),
        (("--data", str(smoke / "nowhere")), "does not exist or is not a folder"),
        (("--data", str(smoke), "--dataset", "csv"), "check other layouts with --dataset"),
    ):
        assert main(["check-data", "--no-progress", *args]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.setenv("CYTOSAE_DATA", str(smoke))
    rc, out = _cli(capsys, "--dataset", "mll23", "--no-decode")
    assert rc == 0 and "(headers only, not decoded)" in out and "== acevedo" not in out


def test_catalog_is_consistent() -> None:
    for name, info in catalog.CATALOG.items():
        assert info.name == name and info.root == catalog.DATASET_ROOTS[name]
        if info.class_counts:
            assert tuple(info.class_counts) == info.classes
            assert sum(info.class_counts.values()) == info.n_images
    assert catalog.CATALOG["hehr"].n_images == 81214
    assert sum(catalog.CATALOG["hehr"].patients.values()) == 189
    assert tuple(catalog.CATALOG["hehr"].patients) == catalog.HEHR_BAG_LABELS
    assert adapters.MATEK19_CLASSES is catalog.MATEK19_CLASSES  # one copy
    assert adapters.ACEVEDO_PREFIX_CLASSES is catalog.ACEVEDO_PREFIX_CLASSES
    assert catalog.CATALOG["bmc"].classes == tuple(catalog.BMC_CLASSES)
