"""Check a data folder before a long run: what would break extraction or make it wrong.

Run on your data
----------------
Before a multi-hour extraction, point ``cytosae check-data`` at your data::

    cytosae check-data --data /path/to/data            # the five datasets (default $CYTOSAE_DATA)
    cytosae check-data --dataset imagefolder --root /path/to/my_cells   # one folder, any layout

It reads each dataset with the same adapter the run uses and decodes every image in parallel
(``--no-decode`` only opens headers, for a fast look; ``--workers N``), then prints one block per
dataset: images found against the published count (and per class where published), classes
missing or unexpected, a histogram of image sizes and modes, unreadable files with their reasons
(and files the adapter refuses on purpose, such as BMC's known broken ``MYB_05527.jpg``), the
Hehr cohort (patient folders without images, ``metadata.csv`` rows without a folder, folders
missing from ``metadata.csv``) and the disk the token store will take (``--arch``, ``--runs``)
against the free space. Datasets absent from the folder are listed as absent. ``--json`` prints
the report as JSON instead. The exit status is 1 when a problem was found and 0 otherwise;
warnings (for example counts that differ from the published ones, as they do for any subset or
for the synthetic world) do not fail the check.

Verdict
-------
A **problem** is something that would stop the run or silently make its results wrong:

* the dataset cannot be read: its root is missing (a dataset named explicitly, or one whose top
  folder exists without the root the pipeline reads), its layout is wrong, or it holds no images
  (any error of :func:`cytosae.data.adapters.load_manifest`);
* a paper dataset lacks one of its published classes (per-class results would lose it);
* every image is unreadable (extraction would write an empty store), or, with ``strict=True``
  (``ExtractConfig.strict``), any image is unreadable (extraction stops at the first);
* the token store (``n_images * n_tokens * d * 2`` bytes, float16) does not fit in the free
  space of the runs root, alone or, for a whole data folder, together with the other datasets;
* for a whole data folder: none of the five datasets is there.

A **warning** is worth reading but does not stop the run:

* the number of image files, per dataset or per class, differs from the published one (exact or
  approximate, which the message says); Hehr patients per bag label differ from the published;
* classes that the published dataset does not have (they become classes of their own);
* unreadable images while at least one is readable (non-strict extraction skips and lists them);
* Hehr: no ``metadata.csv``, patient folders without images, ``metadata.csv`` rows without a
  folder, patient folders not in ``metadata.csv``;
* the token store would take more than :data:`DISK_WARN_FRACTION` of the free space.

Files the adapter refuses on purpose are listed but are neither: the published counts include
them, so they are added back (in the class of their first folder) before counts are compared.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from cytosae.config import JsonConfig
from cytosae.data.adapters import DATASET_KINDS, is_ignored_name, load_manifest
from cytosae.data.catalog import CATALOG, DATASET_ROOTS, PAPER_DATASETS, DatasetInfo
from cytosae.data.imageio import try_read_rgb

__all__ = [
    "DISK_WARN_FRACTION",
    "ClassCount",
    "DataFolderReport",
    "DatasetReport",
    "DiskEstimate",
    "FileIssue",
    "HehrCohort",
    "check_data_folder",
    "check_dataset",
    "default_workers",
    "disk_free",
    "human_bytes",
]

log = logging.getLogger(__name__)

#: a token store taking more than this share of the free space is a warning
DISK_WARN_FRACTION = 0.8

#: bytes per stored token value (float16)
_BYTES_PER_VALUE = 2

#: how many names a one-line message lists before "... N more"
_LIST_IN_MESSAGE = 5


@dataclasses.dataclass(frozen=True)
class FileIssue(JsonConfig):
    """A file that will not be read.

    Attributes:
        path: the file.
        reason: why (``not an image``, ``truncated or corrupt image data (...)``, ...).
    """

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ClassCount(JsonConfig):
    """Image files of one class against the published count.

    Attributes:
        name: the class (a manifest label, or Acevedo's group folder).
        found: image files found (files the adapter refuses on purpose included, as published).
        published: the published count; ``None`` where not published.
    """

    name: str
    found: int
    published: int | None = None


@dataclasses.dataclass(frozen=True)
class DiskEstimate(JsonConfig):
    """The disk a token store will take against the free space where it goes.

    Attributes:
        runs_root: the runs root the store is written under.
        arch: the backbone architecture.
        n_images: images in the estimate.
        n_tokens: tokens per image (257 at 224 px).
        d_model: token width of ``arch``.
        bytes_needed: ``n_images * n_tokens * d_model * 2`` (float16).
        bytes_free: free bytes on the file system of ``runs_root`` (or its nearest existing
            ancestor).
        fraction: ``bytes_needed / bytes_free``; ``None`` when nothing is free.
    """

    runs_root: str
    arch: str
    n_images: int
    n_tokens: int
    d_model: int
    bytes_needed: int
    bytes_free: int
    fraction: float | None

    @property
    def fits(self) -> bool:
        """The store fits in the free space."""
        return self.bytes_needed <= self.bytes_free


@dataclasses.dataclass(frozen=True)
class HehrCohort(JsonConfig):
    """The AML Hehr cohort on disk against ``metadata.csv`` and the published patient counts.

    Attributes:
        metadata: the ``metadata.csv`` read; ``""`` when there is none.
        patients: bag label -> patients with at least one image.
        published_patients: bag label -> published patients.
        empty_patients: ``<bag_label>/<patient_id>`` folders without images.
        rows_without_folder: patient ids of ``metadata.csv`` rows with no patient folder.
        folders_not_in_metadata: ``<bag_label>/<patient_id>`` folders not in ``metadata.csv``.
    """

    metadata: str
    patients: dict[str, int]
    published_patients: dict[str, int]
    empty_patients: tuple[str, ...] = ()
    rows_without_folder: tuple[str, ...] = ()
    folders_not_in_metadata: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class DatasetReport(JsonConfig):
    """What :func:`check_dataset` found in one dataset folder.

    Attributes:
        dataset: the adapter kind.
        root: the folder checked (the adapter's root once read).
        present: False when a data-folder check did not find the dataset (nothing else is set).
        n_images: images the run will read (manifest rows).
        published: the published number of image files; ``None`` where not published.
        published_approximate: ``published`` was recalled rather than read.
        class_level: ``label`` or ``folder`` (see :class:`cytosae.data.catalog.DatasetInfo`).
        classes: per class: files found and published, expected classes first.
        expected_classes: the published dataset's classes; empty where none are published.
        class_counts_approximate: the published per-class counts are approximate.
        missing_classes: expected classes without images.
        unexpected_classes: classes found that the published dataset does not have.
        labels: manifest label -> images (Acevedo: the file-name prefix classes).
        decoded: images were fully decoded (False: only their headers were opened).
        sizes: ``"<width>x<height> <mode>"`` -> readable images.
        unreadable: files that cannot be read, with the reason.
        refused: files the adapter refuses on purpose (``manifest.attrs["skipped"]``).
        hehr: the cohort checks (Hehr only).
        disk: the token store's size against the free space.
        problems: what would break the run or make it wrong (see the module docstring).
        warnings: what deserves a look but does not stop the run.
    """

    dataset: str
    root: str
    present: bool = True
    n_images: int = 0
    published: int | None = None
    published_approximate: bool = False
    class_level: str = "label"
    classes: tuple[ClassCount, ...] = ()
    expected_classes: tuple[str, ...] = ()
    class_counts_approximate: bool = False
    missing_classes: tuple[str, ...] = ()
    unexpected_classes: tuple[str, ...] = ()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    decoded: bool = True
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    unreadable: tuple[FileIssue, ...] = ()
    refused: tuple[FileIssue, ...] = ()
    hehr: HehrCohort | None = None
    disk: DiskEstimate | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem was found."""
        return not self.problems


@dataclasses.dataclass(frozen=True)
class DataFolderReport(JsonConfig):
    """What :func:`check_data_folder` found in a data folder holding the paper's datasets.

    Attributes:
        data: the data folder.
        datasets: one report per dataset checked, absent ones included.
        disk: every present dataset's token store together against the free space.
        problems: problems of the folder as a whole (each dataset lists its own).
        warnings: warnings of the folder as a whole.
    """

    data: str
    datasets: tuple[DatasetReport, ...]
    disk: DiskEstimate | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem was found, in the folder or in any dataset."""
        return not self.problems and all(d.ok for d in self.datasets)


# --------------------------------------------------------------------------- helpers


def default_workers() -> int:
    """Decode processes by default: the cores this process may use, at most 8."""
    from cytosae.hardware import available_cpus

    return min(8, available_cpus())


def disk_free(path: str | Path) -> int:
    """Free bytes on the file system of ``path``, or of its nearest existing ancestor."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def human_bytes(n: float) -> str:
    """``7105536`` -> ``"6.8 MiB"`` (binary units)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while abs(n) >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def _listed(items: Sequence[str]) -> str:
    more = f", ... {len(items) - _LIST_IN_MESSAGE} more" if len(items) > _LIST_IN_MESSAGE else ""
    return ", ".join(items[:_LIST_IN_MESSAGE]) + more


def _inspect(job: tuple[str, bool]) -> tuple[str, str]:
    """``(path, decode)`` -> ``("<w>x<h> <mode>", "")`` or ``("", reason)`` (runs in a worker)."""
    path, decode = job
    if decode:
        img, reason = try_read_rgb(path)
        if img is None:
            return "", reason
    else:
        try:
            if os.path.getsize(path) == 0:
                return "", "zero-byte file"
        except FileNotFoundError:
            return "", "missing file"
        except OSError as exc:
            return "", f"cannot stat file: {exc}"
    try:
        with Image.open(path) as im:
            return f"{im.width}x{im.height} {im.mode}", ""
    except UnidentifiedImageError:
        return "", "not an image"
    except Image.DecompressionBombError as exc:
        return "", f"image too large: {exc}"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return "", f"unreadable header ({exc})"


def _scan(
    paths: Sequence[str], *, decode: bool, workers: int, progress: bool, desc: str
) -> Iterator[tuple[str, str]]:
    """:func:`_inspect` over ``paths`` in order, on ``workers`` processes (<= 1: in-process)."""
    jobs = [(p, decode) for p in paths]
    with tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                yield _inspect(job)
                bar.update(1)
            return
        chunk = max(1, min(64, len(jobs) // (workers * 4)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_inspect, jobs, chunksize=chunk):
                yield result
                bar.update(1)


def _token_shape(arch: str) -> tuple[int, int]:
    """(tokens per image, token width) of ``arch``; ``ValueError`` naming an unknown arch."""
    from cytosae.model.backbone import ARCHS, BackboneConfig

    return BackboneConfig(arch=arch).n_tokens, ARCHS[arch].embed_dim


def _disk(n_images: int, arch: str, runs: Path) -> DiskEstimate:
    n_tokens, d = _token_shape(arch)
    needed = n_images * n_tokens * d * _BYTES_PER_VALUE
    free = disk_free(runs)
    return DiskEstimate(
        runs_root=str(runs),
        arch=arch,
        n_images=n_images,
        n_tokens=n_tokens,
        d_model=d,
        bytes_needed=needed,
        bytes_free=free,
        fraction=needed / free if free else None,
    )


def _tight(disk: DiskEstimate) -> bool:
    return disk.fraction is not None and disk.fraction > DISK_WARN_FRACTION


def _disk_verdict(disk: DiskEstimate, what: str) -> tuple[list[str], list[str]]:
    """([problem], []) when ``disk`` does not fit, ([], [warning]) when it is tight."""
    need, free = human_bytes(disk.bytes_needed), human_bytes(disk.bytes_free)
    where = f"under {disk.runs_root} ({disk.arch}, float16)"
    if not disk.fits:
        return [f"{what} would take {need} but only {free} is free {where}"], []
    if _tight(disk):
        return [], [f"{what} would take {disk.fraction:.0%} of the {free} free {where}"]
    return [], []


def _runs(runs_root: str | Path | None) -> Path:
    if runs_root is not None:
        return Path(runs_root).expanduser().absolute()
    from cytosae.paths import runs_root as default_runs_root

    return default_runs_root()


def _top_folder(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).parts[0]


def _class_counts(
    manifest: pd.DataFrame, info: DatasetInfo | None, refused: Sequence[FileIssue]
) -> tuple[Counter[str], Counter[str]]:
    """(images the run reads, files found including the refused ones) per class."""
    if info is not None and info.class_level == "folder":
        keys = manifest["image_id"].str.split("/").str[0]
    else:
        keys = manifest["label"]
    images = Counter(keys.tolist())
    files = images + Counter(_top_folder(f.path, manifest.attrs["root"]) for f in refused)
    return images, files


def _hehr_cohort(
    root: Path, manifest: pd.DataFrame, info: DatasetInfo
) -> tuple[HehrCohort, list[str]]:
    """The cohort checks of an AML Hehr folder (the adapter has already read it)."""
    data = root / "data"
    folders = [
        (bag.name, pat.name)
        for bag in sorted(data.iterdir())
        if bag.is_dir() and not is_ignored_name(bag.name)
        for pat in sorted(bag.iterdir())
        if pat.is_dir() and not is_ignored_name(pat.name)
    ]
    with_images = set(zip(manifest["label"], manifest["patient"]))
    empty = [f"{b}/{p}" for b, p in folders if (b, p) not in with_images]
    patients = manifest.groupby("label")["patient"].nunique().to_dict()
    patients = {lab: int(patients.get(lab, 0)) for lab in (*info.patients, *sorted(patients))}
    warnings = []
    meta_path = root / "metadata.csv"
    rows_without: list[str] = []
    not_in_meta: list[str] = []
    if meta_path.is_file():
        meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
        ids = set(meta["patient_id"].str.strip())
        rows_without = sorted(ids - {p for _, p in folders})
        not_in_meta = [f"{b}/{p}" for b, p in folders if p not in ids]
    else:
        warnings.append(
            f"no metadata.csv at {meta_path}: disease taken from the bag folders, "
            "metadata checks skipped"
        )
    if empty:
        warnings.append(
            f"{len(empty)} patient folder(s) without images (left out of the run): "
            + _listed(empty)
        )
    if rows_without:
        warnings.append(
            f"{len(rows_without)} metadata.csv row(s) without a patient folder under {data}: "
            + _listed(rows_without)
        )
    if not_in_meta:
        warnings.append(
            f"{len(not_in_meta)} patient folder(s) not in metadata.csv (disease taken from the "
            "bag folder): " + _listed(not_in_meta)
        )
    differ = [
        f"{lab} {patients.get(lab, 0)}/{n}"
        for lab, n in info.patients.items()
        if patients.get(lab, 0) != n
    ]
    if differ:
        warnings.append(
            f"patients per bag label differ from the published (found/published): {_listed(differ)}"
        )
    cohort = HehrCohort(
        metadata=str(meta_path) if meta_path.is_file() else "",
        patients=patients,
        published_patients=dict(info.patients),
        empty_patients=tuple(empty),
        rows_without_folder=tuple(rows_without),
        folders_not_in_metadata=tuple(not_in_meta),
    )
    return cohort, warnings


# --------------------------------------------------------------------------- checks


def check_dataset(
    kind: str,
    root: str | Path,
    *,
    arch: str = "dinobloom-b",
    runs_root: str | Path | None = None,
    decode: bool = True,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
) -> DatasetReport:
    """Check one dataset folder the way a run would read it.

    Args:
        kind: the adapter kind, one of :data:`cytosae.data.adapters.DATASET_KINDS`.
        root: the dataset root (``csv``: the CSV file or a folder holding ``manifest.csv``).
        arch: the backbone architecture whose token width sizes the token store.
        runs_root: where the token store goes (default :func:`cytosae.paths.runs_root`).
        decode: decode every image fully (False: open headers only, faster).
        workers: decode processes (default :func:`default_workers`; <= 1: in this process).
        strict: the run will use ``ExtractConfig.strict`` (any unreadable image is a problem).
        progress: show a progress bar.

    Returns:
        The report; its ``problems`` and ``warnings`` follow the module docstring's rule.

    Raises:
        ValueError: unknown ``kind`` or ``arch``.
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {list(DATASET_KINDS)}")
    _token_shape(arch)  # an unknown arch fails before the long part
    runs = _runs(runs_root)
    info = CATALOG.get(kind)
    from_catalog = {
        "published": info.n_images if info else None,
        "published_approximate": info.n_images_approximate if info else False,
        "class_level": info.class_level if info else "label",
        "class_counts_approximate": info.class_counts_approximate if info else False,
    }
    try:
        manifest = load_manifest(kind, root)
    except (ValueError, OSError) as exc:
        return DatasetReport(dataset=kind, root=str(root), problems=(str(exc),), **from_catalog)
    used_root = manifest.attrs["root"]
    n_images = len(manifest)
    problems: list[str] = []
    warnings: list[str] = []

    # classes and counts
    refused = tuple(FileIssue(path=p, reason=r) for p, r in manifest.attrs["skipped"])
    images, files = _class_counts(manifest, info, refused)
    expected = info.classes if info else ()
    unexpected = sorted(set(files) - set(expected)) if info else []
    published_counts = info.class_counts if info else {}
    classes = tuple(
        ClassCount(name=c, found=files.get(c, 0), published=published_counts.get(c))
        for c in ((*expected, *unexpected) if info else sorted(files))
    )
    missing = [c for c in expected if not images.get(c)]
    if missing:
        problems.append(
            f"no images of {len(missing)} of the {len(expected)} published classes: "
            + _listed(missing)
        )
    if unexpected:
        warnings.append(
            f"{len(unexpected)} class(es) the published dataset does not have (read as classes "
            "of their own): " + _listed(unexpected)
        )
    if info is not None:
        n_files = n_images + len(refused)
        approx = " (approximate)" if info.n_images_approximate else ""
        if n_files != info.n_images:
            warnings.append(
                f"{n_files:,} image files, the published dataset has {info.n_images:,}{approx}"
            )
        differ = [
            f"{c.name} {c.found:,}/{c.published:,}"
            for c in classes
            if c.published is not None and c.found != c.published and c.name not in missing
        ]
        if differ:
            approx = " approximate" if info.class_counts_approximate else ""
            warnings.append(
                f"{len(differ)} of {len(info.class_counts)} classes differ from the published"
                f"{approx} counts (found/published): {_listed(differ)}"
            )

    # images: sizes, modes, unreadable files
    n_workers = default_workers() if workers is None else workers
    results = list(
        _scan(
            manifest["path"].tolist(),
            decode=decode,
            workers=n_workers,
            progress=progress,
            desc=f"check-data {kind}",
        )
    )
    sizes = Counter(key for key, _ in results if key)
    unreadable = tuple(
        FileIssue(path=p, reason=reason)
        for p, (_, reason) in zip(manifest["path"], results)
        if reason
    )
    if unreadable:
        first = f"{unreadable[0].path}: {unreadable[0].reason}"
        if len(unreadable) == n_images:
            problems.append(f"all {n_images:,} images are unreadable (first: {first})")
        elif strict:
            problems.append(
                f"{len(unreadable):,} unreadable image(s) stop a strict extraction (first: {first})"
            )
        else:
            warnings.append(
                f"{len(unreadable):,} of {n_images:,} images are unreadable and will be skipped "
                f"(first: {first})"
            )

    hehr = None
    if kind == "hehr":
        hehr, cohort_warnings = _hehr_cohort(Path(used_root), manifest, CATALOG["hehr"])
        warnings.extend(cohort_warnings)

    disk = _disk(n_images, arch, runs)
    disk_problems, disk_warnings = _disk_verdict(disk, f"the {kind} token store")
    problems.extend(disk_problems)
    warnings.extend(disk_warnings)

    report = DatasetReport(
        dataset=kind,
        root=used_root,
        n_images=n_images,
        classes=classes,
        expected_classes=expected,
        missing_classes=tuple(missing),
        unexpected_classes=tuple(unexpected),
        labels=dict(sorted(Counter(manifest["label"].tolist()).items())),
        decoded=decode,
        sizes=dict(sizes.most_common()),
        unreadable=unreadable,
        refused=refused,
        hehr=hehr,
        disk=disk,
        problems=tuple(problems),
        warnings=tuple(warnings),
        **from_catalog,
    )
    log.info(
        "check-data %s: %d images, %d problem(s), %d warning(s) under %s",
        kind,
        n_images,
        len(problems),
        len(warnings),
        used_root,
    )
    return report


def check_data_folder(
    data: str | Path,
    *,
    datasets: Sequence[str] | None = None,
    arch: str = "dinobloom-b",
    runs_root: str | Path | None = None,
    decode: bool = True,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
) -> DataFolderReport:
    """Check the paper's datasets under one data folder (each at its catalog root).

    Args:
        data: the data folder (what ``$CYTOSAE_DATA`` names).
        datasets: the datasets to check; absent ones are then problems. Default: the five,
            and absent ones are only reported as absent.
        arch, runs_root, decode, workers, strict, progress: as for :func:`check_dataset`.

    Returns:
        One :class:`DatasetReport` per dataset, plus the folder-wide disk estimate and verdict.

    Raises:
        FileNotFoundError: ``data`` is not a folder.
        ValueError: a name in ``datasets`` is not one of the paper's datasets; unknown ``arch``.
    """
    folder = Path(data).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist or is not a folder")
    _token_shape(arch)
    names = tuple(datasets) if datasets else PAPER_DATASETS
    for name in names:
        if name not in DATASET_ROOTS:
            raise ValueError(
                f"{name!r} is not one of the paper's datasets {list(PAPER_DATASETS)}; "
                "check other layouts with --dataset KIND --root DIR"
            )
    runs = _runs(runs_root)
    reports = []
    for name in names:
        root = folder / DATASET_ROOTS[name]
        if not (folder / DATASET_ROOTS[name].split("/")[0]).exists():
            named = (f"{name} not found: {root} does not exist",) if datasets else ()
            reports.append(
                DatasetReport(dataset=name, root=str(root), present=False, problems=named)
            )
            continue
        reports.append(
            check_dataset(
                name,
                root,
                arch=arch,
                runs_root=runs,
                decode=decode,
                workers=workers,
                strict=strict,
                progress=progress,
            )
        )
    present = [r for r in reports if r.present]
    problems: list[str] = []
    warnings: list[str] = []
    if not present:
        problems.append(
            f"none of the datasets under {folder}: expected "
            + ", ".join(DATASET_ROOTS[n] + "/" for n in names)
        )
    disk = _disk(sum(r.n_images for r in present), arch, runs)
    if len(present) > 1:  # what no single dataset said already
        disk_problems, disk_warnings = _disk_verdict(
            disk, f"the {len(present)} token stores together"
        )
        each = [r.disk for r in present if r.disk is not None]
        if all(d.fits for d in each):
            problems.extend(disk_problems)
        if not any(_tight(d) or not d.fits for d in each):
            warnings.extend(disk_warnings)
    return DataFolderReport(
        data=str(folder),
        datasets=tuple(reports),
        disk=disk,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )
