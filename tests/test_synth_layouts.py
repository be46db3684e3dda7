"""The synthetic datasets on disk: real layouts, ground truth round trip, determinism, cohort, CLI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytosae.cli import main
from cytosae.data.catalog import MLL23_CLASSES
from cytosae.synth import SynthConfig, load_groundtruth, write_all
from cytosae.synth.cohort import DIFF_COLUMNS, METADATA_COLUMNS, make_cohort
from cytosae.synth.groundtruth import patch_fractions_from_masks
from cytosae.synth.layouts import (
    ACEVEDO_GROUPS,
    BMC_CLASSES,
    MATEK19_CLASSES,
    plan_dataset,
    render_job,
)

REAL_METADATA_COLUMNS = [
    "patient_id",
    "sex_1f_2m",
    "age",
    "bag_label",
    "instance_count",
    "leucocytes_per_\u00b5l",
    "pb_myeloblast",
    "pb_promyelocyte",
    "pb_myelocyte",
    "pb_metamyelocyte",
    "pb_neutrophil_band",
    "pb_neutrophil_segmented",
    "pb_eosinophil",
    "pb_basophil",
    "pb_monocyte",
    "pb_lymph_typ",
    "pb_lymph_atyp_react",
    "pb_lymph_atyp_neopl",
    "pb_other",
    "pb_total",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], SynthConfig]:
    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig.for_profile("smoke")
    return out, write_all(out, cfg, progress=False), cfg


def _images(root: Path, pattern: str) -> list[Path]:
    return sorted(
        p
        for p in root.glob(pattern)
        if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
    )


def test_roots_are_the_contract_paths(smoke) -> None:
    out, roots, _ = smoke
    assert roots == {
        "mll23": out / "mll23",
        "acevedo": out / "acevedo" / "PBC_dataset_normal_DIB",
        "matek19": out / "matek19" / "AML-Cytomorphology",
        "bmc": out / "bmc",
        "hehr": out / "hehr",
    }
    assert not list(out.glob(".*tmp*"))  # no temporary folder left behind


def test_mll23_layout(smoke) -> None:
    root = smoke[1]["mll23"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith((".", "_"))) == sorted(
        MLL23_CLASSES
    )
    files = _images(root, "*/*/*")
    assert len(files) == 18
    for f in files:
        assert f.parent.name == f.parent.parent.name and f.suffix == ".tif"
        assert re.fullmatch(r"\d\d-\d{4}\.PAP\.PB~[A-H]\.\d-\d{4}\.tif", f.name), f.name
        with Image.open(f) as im:
            assert (
                im.size == (288, 288) and im.mode == "RGB" and im.info["compression"] == "tiff_lzw"
            )


def test_acevedo_layout(smoke) -> None:
    root = smoke[1]["acevedo"]
    assert root.name == "PBC_dataset_normal_DIB"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith((".", "_"))) == sorted(
        ACEVEDO_GROUPS
    )
    files = _images(root, "*/*")
    assert len(files) == 16
    for f in files:
        prefix = f.name.rsplit("_", 1)[0]
        assert prefix in [p[0] for p in ACEVEDO_GROUPS[f.parent.name]], f
        assert re.fullmatch(r"[A-Z]+_\d+\.jpg", f.name)
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.size == (360, 363) and im.mode == "RGB"


def test_matek19_layout(smoke) -> None:
    root = smoke[1]["matek19"]
    assert root.name == "AML-Cytomorphology"
    files = _images(root, "*/*.tiff")
    assert len(files) == 15
    modes = []
    for f in files:
        assert f.name == f"{f.parent.name}_0001.tiff" and f.parent.name in MATEK19_CLASSES
        with Image.open(f) as im:
            assert im.size == (400, 400)
            modes.append(im.mode)
    assert "RGBA" in modes and "RGB" in modes
    abbr = (root / "abbreviations.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in abbr) == sorted(MATEK19_CLASSES)
    ann = (root / "annotations.dat").read_text().splitlines()
    assert len(ann) == 15 and all((root / line.split()[0]).is_file() for line in ann)


def test_bmc_layout(smoke) -> None:
    root = smoke[1]["bmc"]
    files = _images(root, "*/*/*.jpg")
    assert sorted({f.parent.parent.name for f in files}) == sorted(BMC_CLASSES) and len(files) == 21
    for f in files:
        assert f.parent.name == "0001-1000" and f.name == f"{f.parent.parent.name}_00001.jpg"
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.size == (250, 250)


def test_hehr_layout_and_metadata(smoke) -> None:
    root = smoke[1]["hehr"]
    files = _images(root, "data/*/*/*.tif")
    assert len(files) == 5 * 2 * 3
    meta = pd.read_csv(root / "metadata.csv", keep_default_na=False)
    assert list(meta.columns) == REAL_METADATA_COLUMNS == list(METADATA_COLUMNS)
    assert sorted(set(meta["bag_label"])) == [
        "CBFB_MYH11",
        "NPM1",
        "PML_RARA",
        "RUNX1_RUNX1T1",
        "control",
    ]
    for _, row in meta.iterrows():
        assert re.fullmatch(r"[A-Z]{3}", row["patient_id"])
        folder = root / "data" / row["bag_label"] / row["patient_id"]
        assert len(list(folder.glob("image_*.tif"))) == row["instance_count"] == 3
        np.testing.assert_allclose(row[list(DIFF_COLUMNS)].sum(), 100.0, atol=0.05)
        assert row["pb_total"] == pytest.approx(100.0)
    modes = set()
    for f in files:
        assert re.fullmatch(r"image_\d+\.tif", f.name)
        with Image.open(f) as im:
            assert im.size == (144, 144)
            modes.add(im.mode)
    assert modes == {"RGB", "RGBA"}


def test_groundtruth_round_trip_and_subset_rendering(smoke) -> None:
    _, roots, cfg = smoke
    for name, root in roots.items():
        gt = load_groundtruth(root)
        jobs = plan_dataset(name, cfg)
        assert list(gt.index["relpath"]) == [j.relpath for j in jobs]
        assert list(gt.index.columns[:5]) == [
            "relpath",
            "cell_type",
            "domain",
            "patient",
            "disease",
        ]
        assert gt.patch_fractions.shape == (len(jobs), len(gt.concepts), 16, 16)
        assert gt.patch_fractions.dtype == np.float32
        for i in (0, len(jobs) - 1):  # any single image re-renders identically on its own
            scene = render_job(name, cfg, i, jobs[i])
            masks = gt.masks(i)
            np.testing.assert_array_equal(masks, scene.masks())
            # stored patch fractions (float16 on disk) are those of the stored masks
            np.testing.assert_allclose(
                gt.patch_fractions[i], patch_fractions_from_masks(masks), atol=2e-3
            )
            with Image.open(root / jobs[i].relpath) as im:
                arr = np.asarray(im.convert("RGB"))
            assert masks.shape[1:] == arr.shape[:2]
            if jobs[i].fmt == "tiff":  # lossless: the file holds exactly the rendered pixels
                np.testing.assert_array_equal(arr, scene.paint())
            else:
                assert np.abs(arr.astype(int) - scene.paint().astype(int)).mean() < 4
    hehr = load_groundtruth(roots["hehr"])
    assert (hehr.index["patient"] != "").all() and set(hehr.index["disease"]) >= {"NPM1", "control"}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_identical_bytes_other_seed_differs(tmp_path: Path) -> None:
    cfg = SynthConfig.for_profile("smoke", datasets=("acevedo", "hehr"))
    a = write_all(tmp_path / "a", cfg, progress=False)
    b = write_all(tmp_path / "b", cfg, progress=False)
    c = write_all(tmp_path / "c", cfg.replace(seed=1), progress=False)
    for name in ("acevedo", "hehr"):
        da, db, dc = _digests(a[name]), _digests(b[name]), _digests(c[name])
        assert da == db
        assert sum(da[k] != dc.get(k) for k in da) > len(da) // 2
    # idempotent: a second call with the same config leaves the files untouched
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}
    write_all(tmp_path / "a", cfg, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}


def test_config_round_trip_and_validation() -> None:
    cfg = SynthConfig.for_profile("default", seed=7)
    assert SynthConfig.from_json(cfg.to_json()) == cfg and cfg.seed == 7
    assert cfg.n_images() == {"mll23": 720, "acevedo": 160, "matek19": 180, "bmc": 168, "hehr": 640}
    with pytest.raises(ValueError, match="mll23_per_class"):
        SynthConfig(mll23_per_class=0)
    with pytest.raises(ValueError, match="datasets"):
        SynthConfig(datasets=("mnist",))
    with pytest.raises(ValueError, match="profile"):
        SynthConfig.for_profile("huge")


def test_cohort_hallmarks_and_variation() -> None:
    patients = make_cohort(8, 40, np.random.default_rng(0))
    by = {b: [p for p in patients if p.bag_label == b] for b in {p.bag_label for p in patients}}
    hallmark_home = {
        "blast_cup": "NPM1",
        "blast_auer_long": "RUNX1_RUNX1T1",
        "faggot_cell": "PML_RARA",
        "promyelocyte_atypical": "PML_RARA",
        "eosinophil_abnormal": "CBFB_MYH11",
    }
    for cell, home in hallmark_home.items():
        carriers = {p.bag_label for p in patients if cell in p.cells}
        assert carriers <= {home}, cell
    assert any("blast_cup" in p.cells for p in by["NPM1"])
    assert all("myeloblast" not in p.cells for p in by["control"])
    for p in patients:  # the drawn cells follow the differential (largest remainder of 40 images)
        drawn_blasts = sum(
            c in ("myeloblast", "blast_cup", "blast_auer_long", "monoblast") for c in p.cells
        )
        assert abs(drawn_blasts - p.differential[0] / 100 * 40) <= 1.0
    # patients of one disease vary, and subtle patients have fewer blasts than the typical ones
    npm1_blasts = [p.differential[0] for p in by["NPM1"]]
    assert np.std(npm1_blasts) > 3
    subtle = [p.differential[0] for p in patients if p.subtle and p.bag_label != "PML_RARA"]
    typical = [
        p.differential[0]
        for p in patients
        if not p.subtle and p.bag_label not in ("PML_RARA", "control")
    ]
    assert subtle and np.mean(subtle) < np.mean(typical)


def test_cli_writes_requested_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "synth",
        "--out",
        str(tmp_path),
        "--profile",
        "smoke",
        "--seed",
        "3",
        "--datasets",
        "bmc",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert len(list((tmp_path / "bmc").glob("*/0001-1000/*.jpg"))) == 21
    assert f"bmc\t{tmp_path / 'bmc'}" in capsys.readouterr().out
    assert not (tmp_path / "mll23").exists()
