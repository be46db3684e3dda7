"""Dataset adapters: an on-disk layout -> a manifest DataFrame.

Every adapter walks one real on-disk layout (the layout a user has after unpacking the
public archive, which is also the layout the synthetic world writes) and returns a
manifest with exactly the columns :data:`MANIFEST_COLUMNS`:

``image_id``
    path relative to the dataset root, posix separators, no extension; unique and stable.
``path``
    absolute path string.
``dataset``
    the adapter kind (``mll23``, ``acevedo``, ...; ``imagefolder``/``csv`` may be renamed).
``label``
    the fine class name (MLL23 folder name, Acevedo prefix class, Matek19/BMC abbreviation,
    Hehr bag label).
``patient``, ``disease``
    ``""`` where unknown.
``split``
    ``"all"`` unless the dataset defines one.

Rows are sorted by ``image_id``. Folders whose name starts with ``_`` or ``.`` (for example the
synthetic world's ``_groundtruth/``) and ``__MACOSX`` are ignored everywhere. Files an adapter
refuses on purpose (the known broken BMC file) are listed in ``manifest.attrs["skipped"]`` as
``(path, reason)`` pairs and logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cytosae.data.catalog import ACEVEDO_PREFIX_CLASSES, BMC_KNOWN_BROKEN, MATEK19_CLASSES

log = logging.getLogger(__name__)

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "dataset",
    "label",
    "patient",
    "disease",
    "split",
)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm"}
)

DATASET_KINDS: tuple[str, ...] = (
    "mll23",
    "acevedo",
    "matek19",
    "bmc",
    "hehr",
    "imagefolder",
    "csv",
)


class DatasetLayoutError(ValueError):
    """The folder does not have the layout the adapter expects (names the root)."""


# --------------------------------------------------------------------------- helpers


def is_ignored_name(name: str) -> bool:
    """True for folder/file names every adapter skips (``_*``, ``.*``, ``__MACOSX``)."""
    return name.startswith("_") or name.startswith(".") or name == "__MACOSX"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_ignored_name(p.name))


def _images_in(folder: Path, exts: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not is_ignored_name(p.name) and p.suffix.lower() in exts
    )


def walk_images(root: Path, exts: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[Path]:
    """All image files below ``root`` (sorted), skipping ignored folders and files."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
        for f in sorted(filenames):
            if not is_ignored_name(f) and Path(f).suffix.lower() in exts:
                yield Path(dirpath) / f


def _found_summary(root: Path, limit: int = 6) -> str:
    try:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    except OSError as exc:
        return f"<cannot list: {exc}>"
    if not entries:
        return "an empty folder"
    more = f" ... ({len(entries)} entries)" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _check_root(root: str | Path, kind: str) -> Path:
    r = Path(root).expanduser()
    if not r.exists():
        raise DatasetLayoutError(f"{kind}: dataset root {r} does not exist")
    if not r.is_dir():
        raise DatasetLayoutError(f"{kind}: dataset root {r} is not a folder")
    return r.resolve()


def _image_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    suffix = Path(rel).suffix
    return rel[: -len(suffix)] if suffix else rel


def _row(
    path: Path,
    root: Path,
    dataset: str,
    label: str,
    patient: str = "",
    disease: str = "",
    split: str = "all",
) -> dict[str, str]:
    return {
        "image_id": _image_id(path, root),
        "path": str(path),
        "dataset": dataset,
        "label": label,
        "patient": patient,
        "disease": disease,
        "split": split,
    }


def _frame(
    rows: list[dict[str, str]],
    root: Path,
    kind: str,
    expected: str,
    skipped: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    if not rows:
        raise DatasetLayoutError(
            f"{kind}: expected {expected} under {root}, found {_found_summary(root)}"
        )
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    df = df.sort_values("image_id", kind="stable").reset_index(drop=True)
    dup = df["image_id"][df["image_id"].duplicated()]
    if len(dup):
        raise DatasetLayoutError(
            f"{kind}: image ids are not unique under {root} (same name, different extension?): "
            f"{sorted(set(dup))[:5]}"
        )
    df.attrs["skipped"] = list(skipped or [])
    df.attrs["root"] = str(root)
    if skipped:
        log.warning("%s: skipped %d file(s) under %s: %s", kind, len(skipped), root, skipped[:3])
    return df


def _descend(root: Path, inner: str) -> Path:
    """Accept both ``<root>`` and its parent holding ``<inner>/`` (archive name)."""
    if root.name != inner and (root / inner).is_dir():
        return root / inner
    return root


# --------------------------------------------------------------------------- adapters


def _mll23(root: Path, **_: Any) -> pd.DataFrame:
    expected = "<root>/<class>/<class>/*.tif"
    rows = []
    for cls_dir in _subdirs(root):
        inner = cls_dir / cls_dir.name
        if not inner.is_dir():
            raise DatasetLayoutError(
                f"mll23: expected {expected} under {root}, but {cls_dir} has no inner folder "
                f"{cls_dir.name}/ (found {_found_summary(cls_dir)})"
            )
        for p in _images_in(inner, frozenset({".tif", ".tiff"})):
            rows.append(_row(p, root, "mll23", cls_dir.name))
    return _frame(rows, root, "mll23", expected)


def acevedo_label(file_name: str, *, group: str = "") -> str:
    """Fine Acevedo class from a file name's prefix (``SNE_123.jpg`` -> ``neutrophil_segmented``).

    Raises:
        ValueError: the prefix is unknown (names the file and group).
    """
    prefix = file_name.split("_", 1)[0].upper() if "_" in file_name else ""
    if prefix not in ACEVEDO_PREFIX_CLASSES:
        raise ValueError(
            f"acevedo: unknown file-name prefix {prefix!r} of {group + '/' if group else ''}"
            f"{file_name}; known: {sorted(ACEVEDO_PREFIX_CLASSES)}"
        )
    return ACEVEDO_PREFIX_CLASSES[prefix]


def _acevedo(root: Path, *, labels: str = "fine", **_: Any) -> pd.DataFrame:
    if labels not in ("fine", "group"):
        raise ValueError(f"acevedo: labels must be 'fine' or 'group', got {labels!r}")
    root = _descend(root, "PBC_dataset_normal_DIB")
    expected = "<root>/<group>/<PREFIX>_<n>.jpg"
    rows = []
    for group_dir in _subdirs(root):
        for p in _images_in(group_dir, frozenset({".jpg", ".jpeg"})):
            lab = (
                group_dir.name if labels == "group" else acevedo_label(p.name, group=group_dir.name)
            )
            rows.append(_row(p, root, "acevedo", lab))
    return _frame(rows, root, "acevedo", expected)


def _matek19(root: Path, **_: Any) -> pd.DataFrame:
    root = _descend(root, "AML-Cytomorphology")
    expected = "<root>/<ABB>/<ABB>_0001.tiff"
    rows = []
    for cls_dir in _subdirs(root):
        for p in _images_in(cls_dir, frozenset({".tif", ".tiff"})):
            rows.append(_row(p, root, "matek19", cls_dir.name))
    df = _frame(rows, root, "matek19", expected)
    unknown = sorted(set(df["label"]) - set(MATEK19_CLASSES))
    if unknown:
        log.warning(
            "matek19: class folders not in the known 15 abbreviations under %s: %s", root, unknown
        )
    return df


_BMC_SUBDIR = re.compile(r"^\d{4}(-\d{4})?$")  # "0001-1000" on disk; "0001" accepted


def _bmc(root: Path, *, skip_known_broken: bool = True, **_: Any) -> pd.DataFrame:
    expected = "<root>/<ABB>/<0001-1000>/<ABB>_<NNNNN>.jpg"
    rows: list[dict[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for cls_dir in _subdirs(root):
        subs = [d for d in _subdirs(cls_dir) if _BMC_SUBDIR.match(d.name)]
        if not subs and _images_in(cls_dir):
            raise DatasetLayoutError(
                f"bmc: expected {expected} under {root}, but {cls_dir} holds images directly "
                "(no numbered sub-folders)"
            )
        for sub in subs:
            for p in _images_in(sub, frozenset({".jpg", ".jpeg"})):
                if skip_known_broken and p.name in BMC_KNOWN_BROKEN:
                    skipped.append((str(p), BMC_KNOWN_BROKEN[p.name]))
                    continue
                rows.append(_row(p, root, "bmc", cls_dir.name))
    return _frame(rows, root, "bmc", expected, skipped)


def _hehr(root: Path, *, metadata: str | Path | None = None, **_: Any) -> pd.DataFrame:
    expected = "<root>/data/<bag_label>/<patient_id>/image_<n>.tif and <root>/metadata.csv"
    data = root / "data"
    if not data.is_dir():
        raise DatasetLayoutError(
            f"hehr: expected {expected}, found {_found_summary(root)} in {root}"
        )
    meta_path = Path(metadata) if metadata else root / "metadata.csv"
    disease_of: dict[str, str] = {}
    if meta_path.is_file():
        meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
        for col in ("patient_id", "bag_label"):
            if col not in meta.columns:
                raise DatasetLayoutError(
                    f"hehr: {meta_path} has no column {col!r} (columns: {list(meta.columns)[:8]})"
                )
        disease_of = dict(zip(meta["patient_id"].str.strip(), meta["bag_label"].str.strip()))
    else:
        log.warning("hehr: no metadata.csv at %s; disease taken from the bag folder", meta_path)
    rows = []
    for bag_dir in _subdirs(data):
        for pat_dir in _subdirs(bag_dir):
            pid = pat_dir.name
            disease = disease_of.get(pid, bag_dir.name)
            if disease_of and pid not in disease_of:
                log.warning("hehr: patient %s (%s) is not in %s", pid, pat_dir, meta_path)
            elif disease != bag_dir.name:
                raise DatasetLayoutError(
                    f"hehr: patient {pid} is in folder {bag_dir.name} but {meta_path} says {disease}"
                )
            for p in _images_in(pat_dir, frozenset({".tif", ".tiff"})):
                rows.append(_row(p, root, "hehr", bag_dir.name, patient=pid, disease=disease))
    return _frame(rows, root, "hehr", expected)


def _imagefolder(root: Path, *, name: str = "imagefolder", **_: Any) -> pd.DataFrame:
    expected = "<root>/<label>/**/*.{" + ",".join(sorted(e[1:] for e in IMAGE_EXTENSIONS)) + "}"
    rows = []
    for lab_dir in _subdirs(root):
        for p in walk_images(lab_dir):
            rows.append(_row(p, root, name, lab_dir.name))
    return _frame(rows, root, name, expected)


def _csv(root: Path, *, name: str = "csv", path_column: str = "path", **_: Any) -> pd.DataFrame:
    """``root`` is the CSV file (or a folder holding ``manifest.csv``)."""
    csv_path = root / "manifest.csv" if root.is_dir() else root
    if not csv_path.is_file():
        raise DatasetLayoutError(f"csv: expected a manifest CSV at {csv_path}")
    src = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if path_column not in src.columns:
        raise DatasetLayoutError(
            f"csv: {csv_path} has no {path_column!r} column (columns: {list(src.columns)})"
        )
    base = csv_path.parent.resolve()
    rows = []
    for i, rec in src.iterrows():
        p = Path(rec[path_column]).expanduser()
        p = p if p.is_absolute() else (base / p)
        p = Path(os.path.normpath(p))
        rel = Path(os.path.relpath(p, base)).as_posix()
        default_id = rel[: -len(Path(rel).suffix)] if Path(rel).suffix else rel
        rows.append(
            {
                "image_id": rec.get("image_id") or default_id,
                "path": str(p),
                "dataset": rec.get("dataset") or name,
                "label": rec.get("label", ""),
                "patient": rec.get("patient", ""),
                "disease": rec.get("disease", ""),
                "split": rec.get("split") or "all",
            }
        )
    return _frame(rows, base, name, f"rows in {csv_path}")


_ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "mll23": _mll23,
    "acevedo": _acevedo,
    "matek19": _matek19,
    "bmc": _bmc,
    "hehr": _hehr,
    "imagefolder": _imagefolder,
    "csv": _csv,
}


def load_manifest(kind: str, root: str | Path, **opts: Any) -> pd.DataFrame:
    """Read a dataset folder in its real layout into a manifest.

    Args:
        kind: one of :data:`DATASET_KINDS`.
        root: the dataset root (for ``csv``: the CSV file or a folder holding ``manifest.csv``).
        **opts: adapter options: ``acevedo``: ``labels="fine"|"group"``; ``bmc``:
            ``skip_known_broken=True``; ``hehr``: ``metadata=<path>``; ``imagefolder``/``csv``:
            ``name`` (the ``dataset`` column), ``csv``: ``path_column``.

    Returns:
        DataFrame with columns :data:`MANIFEST_COLUMNS`, sorted by ``image_id``;
        ``attrs["skipped"]`` lists ``(path, reason)`` of files refused on purpose.

    Raises:
        DatasetLayoutError: the root is missing or has the wrong layout (names the root).
        ValueError: unknown ``kind``.
    """
    if kind not in _ADAPTERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {list(DATASET_KINDS)}")
    r = _check_root(root, kind) if kind != "csv" else Path(root).expanduser().resolve()
    df = _ADAPTERS[kind](r, **opts)
    log.info("%s: %d images, %d labels under %s", kind, len(df), df["label"].nunique(), r)
    return df


def validate_manifest(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the problem when ``df`` is not a valid manifest."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    if df["image_id"].duplicated().any():
        dup = df["image_id"][df["image_id"].duplicated()].iloc[0]
        raise ValueError(f"manifest image_id is not unique: {dup!r}")


def manifest_digest(df: pd.DataFrame) -> str:
    """sha256 of the manifest's content (columns :data:`MANIFEST_COLUMNS`, row order kept)."""
    validate_manifest(df)
    text = df.loc[:, list(MANIFEST_COLUMNS)].astype(str).to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def describe(df: pd.DataFrame) -> pd.DataFrame:
    """Counts per (dataset, label): images, patients, and the fraction of the dataset.

    Returns:
        DataFrame indexed by (dataset, label) with columns ``n_images``, ``n_patients``
        (0 where patients are unknown) and ``fraction``, sorted by dataset then label.
    """
    validate_manifest(df)
    g = df.groupby(["dataset", "label"], sort=True)
    out = pd.DataFrame(
        {
            "n_images": g.size(),
            "n_patients": g["patient"].agg(lambda s: s[s != ""].nunique()),
        }
    )
    totals = out.groupby(level="dataset")["n_images"].transform("sum")
    out["fraction"] = out["n_images"] / totals
    return out
