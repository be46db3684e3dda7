"""Dataset adapters on fixture trees in each real on-disk layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytosae.data.adapters import (
    ACEVEDO_PREFIX_CLASSES,
    MANIFEST_COLUMNS,
    MATEK19_CLASSES,
    DatasetLayoutError,
    describe,
    load_manifest,
    manifest_digest,
)


def _img(path: Path, size: int = 8, mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size, size, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def _junk(root: Path) -> None:
    """Things every adapter must ignore."""
    _img(root / "_groundtruth" / "x" / "x" / "gt.tif")
    _img(root / "__MACOSX" / "a" / "a" / "._junk.tif")
    _img(root / ".hidden" / "h" / "h" / "h.tif")


def _check_columns(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == MANIFEST_COLUMNS
    assert df["image_id"].is_unique
    assert list(df["image_id"]) == sorted(df["image_id"])
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])


def test_mll23(tmp_path: Path) -> None:
    root = tmp_path / "mll23"
    _img(root / "myeloblast" / "myeloblast" / "19-1.PAP.PB~E.1-2.TIF")
    _img(root / "myeloblast" / "myeloblast" / "19-1.PAP.PB~E.1-1.tif")
    _img(root / "basophil" / "basophil" / "b1.tif")
    (root / "basophil" / "basophil" / "notes.txt").write_text("not an image")
    _junk(root)
    df = load_manifest("mll23", root)
    _check_columns(df)
    assert list(df["image_id"]) == [
        "basophil/basophil/b1",
        "myeloblast/myeloblast/19-1.PAP.PB~E.1-1",
        "myeloblast/myeloblast/19-1.PAP.PB~E.1-2",
    ]
    assert list(df["label"]) == ["basophil", "myeloblast", "myeloblast"]
    assert set(df["dataset"]) == {"mll23"} and set(df["split"]) == {"all"}
    assert set(df["patient"]) == {""} and set(df["disease"]) == {""}


def test_mll23_wrong_layout_names_root(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _img(root / "basophil" / "b1.tif")
    with pytest.raises(DatasetLayoutError, match=r"<class>/<class>/\*\.tif.*basophil"):
        load_manifest("mll23", root)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_manifest("mll23", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"empty.*an empty folder"):
        load_manifest("mll23", tmp_path / "empty")


def test_acevedo_fine_and_group(tmp_path: Path) -> None:
    base = tmp_path / "acevedo"
    root = base / "PBC_dataset_normal_DIB"
    files = {
        "neutrophil": ["SNE_1.jpg", "BNE_2.jpg", "NEUTROPHIL_3.jpg"],
        "ig": ["PMY_4.jpg", "MY_5.jpg", "MMY_6.jpg", "IG_7.jpg"],
        "basophil": ["BA_8.jpg"],
        "eosinophil": ["EO_9.jpg"],
        "erythroblast": ["ERB_10.jpg"],
        "lymphocyte": ["LY_11.jpg"],
        "monocyte": ["MO_12.jpg"],
        "platelet": ["PLATELET_13.jpg"],
    }
    for group, names in files.items():
        for n in names:
            _img(root / group / n)
    _junk(root)
    df = load_manifest("acevedo", base)  # the archive's parent folder is accepted too
    _check_columns(df)
    got = dict(zip(df["image_id"], df["label"]))
    assert got["neutrophil/SNE_1"] == "neutrophil_segmented"
    assert got["neutrophil/BNE_2"] == "neutrophil_band"
    assert got["neutrophil/NEUTROPHIL_3"] == "neutrophil"
    assert got["ig/PMY_4"] == "promyelocyte"
    assert got["ig/MY_5"] == "myelocyte"
    assert got["ig/MMY_6"] == "metamyelocyte"
    assert got["ig/IG_7"] == "ig"
    assert got["platelet/PLATELET_13"] == "platelet"
    assert got["erythroblast/ERB_10"] == "erythroblast"
    assert len(df) == 13 and df["label"].nunique() == 13 == len(ACEVEDO_PREFIX_CLASSES)
    groups = load_manifest("acevedo", root, labels="group")
    assert sorted(groups["label"].unique()) == sorted(files)
    assert dict(zip(groups["image_id"], groups["label"]))["ig/MY_5"] == "ig"


def test_acevedo_unknown_prefix(tmp_path: Path) -> None:
    _img(tmp_path / "a" / "neutrophil" / "XYZ_1.jpg")
    with pytest.raises(ValueError, match=r"unknown file-name prefix 'XYZ'.*neutrophil/XYZ_1.jpg"):
        load_manifest("acevedo", tmp_path / "a")


def test_matek19(tmp_path: Path) -> None:
    root = tmp_path / "AML-Cytomorphology"
    _img(root / "MYB" / "MYB_0001.tiff")
    _img(root / "MYO" / "MYO_0001.tiff", mode="RGBA")
    _img(root / "MYO" / "MYO_0002.tiff")
    (root / "annotations.dat").write_text("x")
    (root / "abbreviations.txt").write_text("x")
    _junk(root)
    df = load_manifest("matek19", tmp_path)
    _check_columns(df)
    assert list(df["label"]) == ["MYB", "MYO", "MYO"]
    assert list(df["image_id"]) == ["MYB/MYB_0001", "MYO/MYO_0001", "MYO/MYO_0002"]
    assert MATEK19_CLASSES["MYB"] == "myelocyte" and MATEK19_CLASSES["MYO"] == "myeloblast"
    assert len(MATEK19_CLASSES) == 15


def test_bmc_skips_known_broken(tmp_path: Path) -> None:
    root = tmp_path / "bmc"
    _img(root / "MYB" / "0001" / "MYB_00001.jpg")
    _img(root / "MYB" / "0006" / "MYB_05527.jpg")
    _img(root / "MYB" / "0006" / "MYB_05528.jpg")
    _img(root / "NGS" / "0001" / "NGS_00001.jpg")
    _junk(root)
    df = load_manifest("bmc", root)
    _check_columns(df)
    assert list(df["image_id"]) == [
        "MYB/0001/MYB_00001",
        "MYB/0006/MYB_05528",
        "NGS/0001/NGS_00001",
    ]
    assert list(df["label"]) == ["MYB", "MYB", "NGS"]
    ((skipped_path, reason),) = df.attrs["skipped"]
    assert skipped_path.endswith("MYB_05527.jpg") and "broken" in reason
    assert len(load_manifest("bmc", root, skip_known_broken=False)) == 4
    flat = tmp_path / "flat"
    _img(flat / "MYB" / "MYB_00001.jpg")
    with pytest.raises(DatasetLayoutError, match="numbered sub-folders"):
        load_manifest("bmc", flat)


def test_hehr_patients_and_diseases(tmp_path: Path) -> None:
    root = tmp_path / "hehr"
    layout = {("NPM1", "ABC"): 2, ("control", "XYZ"): 3, ("PML_RARA", "QRS"): 1}
    for (bag, pid), n in layout.items():
        for i in range(n):
            _img(root / "data" / bag / pid / f"image_{i}.tif", size=6)
    pd.DataFrame(
        {
            "patient_id": ["ABC", "XYZ", "QRS"],
            "sex_1f_2m": [1, 2, 1],
            "age": [50, 60, 70],
            "bag_label": ["NPM1", "control", "PML_RARA"],
            "instance_count": [2, 3, 1],
        }
    ).to_csv(root / "metadata.csv", index=False)
    _junk(root)
    df = load_manifest("hehr", root)
    _check_columns(df)
    assert len(df) == 6
    by_patient = df.groupby("patient")["disease"].agg(set).to_dict()
    assert by_patient == {"ABC": {"NPM1"}, "XYZ": {"control"}, "QRS": {"PML_RARA"}}
    assert (df["label"] == df["disease"]).all()
    assert df.loc[df["patient"] == "XYZ", "image_id"].tolist() == [
        "data/control/XYZ/image_0",
        "data/control/XYZ/image_1",
        "data/control/XYZ/image_2",
    ]
    counts = describe(df)
    assert counts.loc[("hehr", "control"), "n_images"] == 3
    assert counts.loc[("hehr", "control"), "n_patients"] == 1
    assert counts["fraction"].sum() == pytest.approx(1.0)
    # metadata disagreeing with the folder is an error naming the patient
    pd.DataFrame({"patient_id": ["ABC"], "bag_label": ["control"]}).to_csv(
        root / "metadata.csv", index=False
    )
    with pytest.raises(DatasetLayoutError, match="patient ABC is in folder NPM1"):
        load_manifest("hehr", root)
    with pytest.raises(DatasetLayoutError, match=r"data/<bag_label>"):
        load_manifest("hehr", tmp_path / "hehr" / "data")


def test_imagefolder_and_csv(tmp_path: Path) -> None:
    root = tmp_path / "if"
    _img(root / "cat" / "a.png")
    _img(root / "cat" / "deep" / "b.jpg")
    _img(root / "dog" / "c.tif")
    _junk(root)
    df = load_manifest("imagefolder", root, name="pets")
    _check_columns(df)
    assert list(df["image_id"]) == ["cat/a", "cat/deep/b", "dog/c"]
    assert list(df["label"]) == ["cat", "cat", "dog"]
    assert set(df["dataset"]) == {"pets"}

    csv_dir = tmp_path / "lists"
    csv_dir.mkdir()
    pd.DataFrame(
        {
            "path": ["../if/cat/a.png", str(root / "dog" / "c.tif")],
            "label": ["x", "y"],
            "patient": ["p1", ""],
        }
    ).to_csv(csv_dir / "m.csv", index=False)
    # both paths lie outside the CSV's folder (the dataset root of a csv manifest): refused
    # unless asked for
    with pytest.raises(DatasetLayoutError, match="outside the dataset root"):
        load_manifest("csv", csv_dir / "m.csv")
    man = load_manifest("csv", csv_dir / "m.csv", allow_outside_root=True)
    _check_columns(man)
    assert list(man["path"]) == [str(root / "cat" / "a.png"), str(root / "dog" / "c.tif")]
    assert list(man["label"]) == ["x", "y"] and list(man["patient"]) == ["p1", ""]
    assert list(man["image_id"]) == ["../if/cat/a", "../if/dog/c"]
    assert set(man["split"]) == {"all"} and set(man["disease"]) == {""}
    pd.DataFrame({"file": ["a.png"]}).to_csv(csv_dir / "bad.csv", index=False)
    with pytest.raises(DatasetLayoutError, match=r"bad.csv has no 'path' column"):
        load_manifest("csv", csv_dir / "bad.csv")


def test_unknown_kind_and_digest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset kind 'foo'"):
        load_manifest("foo", tmp_path)
    _img(tmp_path / "d" / "a" / "1.png")
    _img(tmp_path / "d" / "b" / "2.png")
    df = load_manifest("imagefolder", tmp_path / "d")
    d1 = manifest_digest(df)
    assert d1 == manifest_digest(load_manifest("imagefolder", tmp_path / "d"))
    df2 = df.copy()
    df2.loc[0, "label"] = "z"
    assert manifest_digest(df2) != d1
