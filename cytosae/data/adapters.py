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
synthetic world's ``_groundtruth/``) and ``__MACOSX`` are ignored everywhere, as are files whose
name starts with ``_`` or ``.``; how many images were ignored that way is logged. The
``imagefolder`` layout has no such convention, so there images in the root (outside any label
folder), in ``_*`` folders or named ``_*`` are listed as skipped instead.

Files an adapter refuses are listed in ``manifest.attrs["skipped"]`` as ``(path, reason)``
pairs, logged, and written to the token store's ``skipped.csv``:

* on purpose: the known broken BMC file (:data:`DELIBERATE_SKIP_REASONS`; ``--strict`` accepts
  these);
* unsafe or unusable paths: a symlink whose target leaves the dataset root, a symlink loop (a
  link back to a folder above it, or a cycle of links), a broken symlink, a file or folder name
  that is not valid UTF-8 (shown with ``\\xNN`` escapes; rename it), a ``csv`` path outside the
  dataset root (the CSV's folder).

The dataset root is the folder given (resolved); for ``csv`` it is the folder holding the CSV.
Nothing outside it is read unless ``allow_outside_root=True`` (``--allow-outside-root``), which
lets ``csv`` paths and symlinks point anywhere (a tree of symlinks into other storage, a CSV of
absolute paths); loops are refused in any case.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cytosae.data.catalog import ACEVEDO_PREFIX_CLASSES, BMC_KNOWN_BROKEN, MATEK19_CLASSES
from cytosae.data.imageio import printable_path

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

#: Reasons of files an adapter leaves out on purpose: listed as skipped, but no ``--strict`` error.
DELIBERATE_SKIP_REASONS: frozenset[str] = frozenset(BMC_KNOWN_BROKEN.values())


class DatasetLayoutError(ValueError):
    """The folder does not have the layout the adapter expects (names the root)."""


# --------------------------------------------------------------------------- helpers


def is_ignored_name(name: str) -> bool:
    """True for folder/file names every adapter skips (``_*``, ``.*``, ``__MACOSX``)."""
    return name.startswith(("_", ".")) or name == "__MACOSX"


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclasses.dataclass(frozen=True)
class _Dir:
    """A folder being walked: its path (under the root), its real location, and the real
    locations of the folders above it (to detect symlink loops)."""

    path: Path
    real: Path
    chain: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class _Entry:
    path: Path
    kind: str  # "dir" | "file" | "bad"
    real: Path | None = None
    reason: str = ""
    dirlike: bool = False


class _Scan:
    """One walk of a dataset root: the entries an adapter may use, and what it refused.

    Every entry is checked once: ignored names (``_*``, ``.*``, ``__MACOSX``) are counted (or,
    with ``list_ignored``, their images listed as skipped), names that are not valid UTF-8 and
    symlinks that leave the root, loop or dangle are listed as skipped with the reason.
    """

    def __init__(
        self, root: Path, kind: str, *, allow_outside_root: bool = False, list_ignored: bool = False
    ) -> None:
        self.root = root
        self.kind = kind
        self.allow_outside_root = allow_outside_root
        self.list_ignored = list_ignored
        self.skipped: list[tuple[str, str]] = []
        self.ignored: dict[str, int] = {}  # ignored folder or file (relative) -> images in it
        self._reported: set[str] = set()
        self._cache: dict[Path, list[_Entry]] = {}

    # ------------------------------------------------------------------ reporting

    def skip(self, path: Path | str, reason: str) -> None:
        """List ``path`` as skipped (once)."""
        shown = printable_path(path)
        if shown not in self._reported:
            self._reported.add(shown)
            self.skipped.append((shown, reason))

    def _rel(self, path: Path) -> str:
        try:
            return printable_path(path.relative_to(self.root).as_posix())
        except ValueError:
            return printable_path(path)

    def _ignore(self, path: Path, is_dir: bool) -> None:
        if is_dir:
            if path.is_symlink():  # an ignored name is never followed, not even to count it
                return
            images = [
                Path(dp) / f
                for dp, dns, fns in os.walk(path)
                for f in sorted(fns)
                if Path(f).suffix.lower() in IMAGE_EXTENSIONS
            ]
        else:
            images = [path] if path.suffix.lower() in IMAGE_EXTENSIONS else []
        if not images:
            return
        if self.list_ignored and path.name.startswith("_") and path.name != "__MACOSX":
            what = "folder" if is_dir else "file"
            for img in images:
                self.skip(
                    img,
                    f"{what} name {path.name!r} starts with '_' (not read by the {self.kind} "
                    "layout; rename it to include it)",
                )
        else:
            self.ignored[self._rel(path) + ("/" if is_dir else "")] = len(images)

    def log_summary(self) -> None:
        """Log what the walk ignored (counts) and refused (the skipped list is logged by
        :func:`_frame`)."""
        if self.ignored:
            n = sum(self.ignored.values())
            shown = ", ".join(f"{k} ({v})" for k, v in sorted(self.ignored.items())[:5])
            more = f", ... ({len(self.ignored)} entries)" if len(self.ignored) > 5 else ""
            log.info(
                "%s: ignored %d image file(s) under %s in folders or files named _*, .* or "
                "__MACOSX (by design): %s%s",
                self.kind,
                n,
                self.root,
                shown,
                more,
            )

    # ------------------------------------------------------------------ walking

    def top(self, folder: Path | None = None) -> _Dir:
        """The walk's start (the root, or a real folder below it)."""
        folder = self.root if folder is None else folder
        chain = tuple(p for p in [*reversed(folder.parents), folder] if _inside(p, self.root))
        return _Dir(folder, folder, chain)

    def _children(self, d: _Dir) -> list[_Entry]:
        if d.path in self._cache:
            return self._cache[d.path]
        out: list[_Entry] = []
        try:
            names = sorted(os.listdir(d.path))
        except OSError as exc:
            self.skip(d.path, f"cannot list folder ({exc.strerror or exc})")
            names = []
        for name in names:
            p = d.path / name
            is_link = p.is_symlink()
            if is_ignored_name(name):
                self._ignore(p, p.is_dir())
                continue
            imagey = Path(name).suffix.lower() in IMAGE_EXTENSIONS
            if not _is_utf8(name):
                isdir = p.is_dir()
                what = "folder" if isdir else "file"
                out.append(
                    _Entry(
                        p,
                        "bad",
                        reason=f"{what} name is not valid UTF-8 (rename it)",
                        dirlike=isdir,
                    )
                )
                continue
            real = d.real / name
            if is_link:
                try:
                    real = Path(os.path.realpath(p, strict=True))
                except OSError as exc:
                    loop = exc.errno == errno.ELOOP
                    reason = (
                        "symlink loop" if loop else "broken symlink (its target does not exist)"
                    )
                    out.append(_Entry(p, "bad", reason=reason, dirlike=loop and not imagey))
                    continue
                if not self.allow_outside_root and not _inside(real, self.root):
                    out.append(
                        _Entry(
                            p,
                            "bad",
                            reason=(
                                f"symlink leaves the dataset root {printable_path(self.root)} "
                                f"(-> {printable_path(real)}; allow_outside_root=True follows it)"
                            ),
                            dirlike=real.is_dir(),
                        )
                    )
                    continue
                if real.is_dir() and real in d.chain:
                    out.append(
                        _Entry(
                            p,
                            "bad",
                            reason=f"symlink loop (points back to {printable_path(real)})",
                            dirlike=True,
                        )
                    )
                    continue
            if p.is_dir():
                out.append(_Entry(p, "dir", real))
            elif p.is_file():
                out.append(_Entry(p, "file", real))
        self._cache[d.path] = out
        return out

    def subdirs(self, d: _Dir) -> list[_Dir]:
        """Usable sub-folders of ``d`` (sorted); refused ones are listed as skipped."""
        out = []
        for e in self._children(d):
            if e.kind == "dir":
                out.append(_Dir(e.path, e.real, (*d.chain, e.real)))
            elif e.kind == "bad" and e.dirlike:
                self.skip(e.path, e.reason)
        return out

    def images_in(self, d: _Dir, exts: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
        """Usable image files of ``d`` with an extension in ``exts`` (sorted); refused ones
        are listed as skipped."""
        out = []
        for e in self._children(d):
            if e.path.suffix.lower() not in exts:
                continue
            if e.kind == "file":
                out.append(e.path)
            elif e.kind == "bad" and not e.dirlike:
                self.skip(e.path, e.reason)
        return out

    def walk(self, d: _Dir, exts: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[Path]:
        """All usable image files below ``d`` (its own, then each sub-folder's, sorted)."""
        yield from self.images_in(d, exts)
        for sub in self.subdirs(d):
            yield from self.walk(sub, exts)


def walk_images(root: Path, exts: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[Path]:
    """All image files below ``root`` (sorted), skipping ignored names, names that are not
    UTF-8 and symlinks that leave ``root`` or loop."""
    r = Path(root).resolve()
    scan = _Scan(r, "walk")
    yield from scan.walk(scan.top(), exts)


def _found_summary(root: Path, limit: int = 6) -> str:
    try:
        entries = sorted(
            printable_path(p.name) + ("/" if p.is_dir() else "") for p in root.iterdir()
        )
    except OSError as exc:
        return f"<cannot list: {exc}>"
    if not entries:
        return "an empty folder"
    more = f" ... ({len(entries)} entries)" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _check_root(root: str | Path, kind: str) -> Path:
    r = Path(root).expanduser()
    if not r.exists():
        raise DatasetLayoutError(f"{kind}: dataset root {printable_path(r)} does not exist")
    if not r.is_dir():
        raise DatasetLayoutError(f"{kind}: dataset root {printable_path(r)} is not a folder")
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
    scan: _Scan,
    skipped: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    skipped = [*scan.skipped, *(skipped or [])]
    scan.log_summary()
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    df = df.sort_values("image_id", kind="stable").reset_index(drop=True)
    dup = df["image_id"].duplicated(keep=False)
    if dup.any():  # ambiguous ids: every file sharing one is listed, none is guessed
        for image_id, path in zip(df["image_id"][dup], df["path"][dup]):
            reason = (
                f"image id {image_id!r} is not unique (another file has the same name with "
                "a different extension, or the CSV repeats it); rename one of them"
            )
            skipped.append((printable_path(path), reason))
        df = df[~dup].reset_index(drop=True)
    if not len(df):
        refused = ""
        if skipped:
            refused = f"; {len(skipped)} file(s) refused, first: " + "; ".join(
                f"{p}: {r}" for p, r in skipped[:3]
            )
        raise DatasetLayoutError(
            f"{kind}: expected {expected} under {printable_path(root)}, found "
            f"{_found_summary(root)}{refused}"
        )
    df.attrs["skipped"] = skipped
    df.attrs["root"] = str(root)
    if skipped:
        log.warning(
            "%s: skipped %d file(s) under %s (listed in manifest.attrs['skipped'] and the "
            "store's skipped.csv): %s",
            kind,
            len(skipped),
            root,
            "; ".join(f"{p}: {r}" for p, r in skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
        )
    return df


def _descend(scan: _Scan, root: Path, inner: str) -> _Dir:
    """Accept both ``<root>`` and its parent holding ``<inner>/`` (archive name)."""
    top = scan.top(root)
    if root.name != inner:
        for d in scan.subdirs(top):
            if d.path.name == inner:
                return d
    return top


# --------------------------------------------------------------------------- adapters


def _mll23(scan: _Scan, **_: Any) -> pd.DataFrame:
    root = scan.root
    expected = "<root>/<class>/<class>/*.tif"
    rows = []
    for cls_dir in scan.subdirs(scan.top()):
        inner = next((d for d in scan.subdirs(cls_dir) if d.path.name == cls_dir.path.name), None)
        if inner is None:
            raise DatasetLayoutError(
                f"mll23: expected {expected} under {root}, but {cls_dir.path} has no inner folder "
                f"{cls_dir.path.name}/ (found {_found_summary(cls_dir.path)})"
            )
        for p in scan.images_in(inner, frozenset({".tif", ".tiff"})):
            rows.append(_row(p, root, "mll23", cls_dir.path.name))
    return _frame(rows, root, "mll23", expected, scan)


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


def _acevedo(scan: _Scan, *, labels: str = "fine", **_: Any) -> pd.DataFrame:
    if labels not in ("fine", "group"):
        raise ValueError(f"acevedo: labels must be 'fine' or 'group', got {labels!r}")
    top = _descend(scan, scan.root, "PBC_dataset_normal_DIB")
    root = top.path
    expected = "<root>/<group>/<PREFIX>_<n>.jpg"
    rows = []
    for group_dir in scan.subdirs(top):
        group = group_dir.path.name
        for p in scan.images_in(group_dir, frozenset({".jpg", ".jpeg"})):
            lab = group if labels == "group" else acevedo_label(p.name, group=group)
            rows.append(_row(p, root, "acevedo", lab))
    return _frame(rows, root, "acevedo", expected, scan)


def _matek19(scan: _Scan, **_: Any) -> pd.DataFrame:
    top = _descend(scan, scan.root, "AML-Cytomorphology")
    root = top.path
    expected = "<root>/<ABB>/<ABB>_0001.tiff"
    rows = []
    for cls_dir in scan.subdirs(top):
        for p in scan.images_in(cls_dir, frozenset({".tif", ".tiff"})):
            rows.append(_row(p, root, "matek19", cls_dir.path.name))
    df = _frame(rows, root, "matek19", expected, scan)
    unknown = sorted(set(df["label"]) - set(MATEK19_CLASSES))
    if unknown:
        log.warning(
            "matek19: class folders not in the known 15 abbreviations under %s: %s", root, unknown
        )
    return df


_BMC_SUBDIR = re.compile(r"^\d{4}(-\d{4})?$")  # "0001-1000" on disk; "0001" accepted


def _bmc(scan: _Scan, *, skip_known_broken: bool = True, **_: Any) -> pd.DataFrame:
    root = scan.root
    expected = "<root>/<ABB>/<0001-1000>/<ABB>_<NNNNN>.jpg"
    rows: list[dict[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for cls_dir in scan.subdirs(scan.top()):
        subs = [d for d in scan.subdirs(cls_dir) if _BMC_SUBDIR.match(d.path.name)]
        if not subs and scan.images_in(cls_dir):
            raise DatasetLayoutError(
                f"bmc: expected {expected} under {root}, but {cls_dir.path} holds images "
                "directly (no numbered sub-folders)"
            )
        for sub in subs:
            for p in scan.images_in(sub, frozenset({".jpg", ".jpeg"})):
                if skip_known_broken and p.name in BMC_KNOWN_BROKEN:
                    skipped.append((str(p), BMC_KNOWN_BROKEN[p.name]))
                    continue
                rows.append(_row(p, root, "bmc", cls_dir.path.name))
    return _frame(rows, root, "bmc", expected, scan, skipped)


def _read_csv(path: Path, kind: str) -> pd.DataFrame:
    """``pd.read_csv`` of a UTF-8 text file, every column as text; errors name the file."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetLayoutError(
            f"{kind}: {printable_path(path)} is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); save it as UTF-8"
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetLayoutError(
            f"{kind}: cannot parse {printable_path(path)} as CSV: {exc}"
        ) from exc


def _hehr(scan: _Scan, *, metadata: str | Path | None = None, **_: Any) -> pd.DataFrame:
    root = scan.root
    expected = "<root>/data/<bag_label>/<patient_id>/image_<n>.tif and <root>/metadata.csv"
    data = next((d for d in scan.subdirs(scan.top()) if d.path.name == "data"), None)
    if data is None:
        raise DatasetLayoutError(
            f"hehr: expected {expected}, found {_found_summary(root)} in {root}"
        )
    meta_path = Path(metadata) if metadata else root / "metadata.csv"
    if (
        not metadata
        and meta_path.is_file()
        and not scan.allow_outside_root
        and not _inside(Path(os.path.realpath(meta_path)), root)
    ):
        scan.skip(meta_path, f"symlink leaves the dataset root {root} (metadata not read)")
        meta_path = root / "metadata.csv (refused: outside the dataset root)"
    disease_of: dict[str, str] = {}
    if meta_path.is_file():
        meta = _read_csv(meta_path, "hehr")
        for col in ("patient_id", "bag_label"):
            if col not in meta.columns:
                raise DatasetLayoutError(
                    f"hehr: {meta_path} has no column {col!r} (columns: {list(meta.columns)[:8]})"
                )
        disease_of = dict(zip(meta["patient_id"].str.strip(), meta["bag_label"].str.strip()))
    else:
        log.warning("hehr: no metadata.csv at %s; disease taken from the bag folder", meta_path)
    rows = []
    for bag_dir in scan.subdirs(data):
        bag = bag_dir.path.name
        for pat_dir in scan.subdirs(bag_dir):
            pid = pat_dir.path.name
            disease = disease_of.get(pid, bag)
            if disease_of and pid not in disease_of:
                log.warning("hehr: patient %s (%s) is not in %s", pid, pat_dir.path, meta_path)
            elif disease != bag:
                raise DatasetLayoutError(
                    f"hehr: patient {pid} is in folder {bag} but {meta_path} says {disease}"
                )
            for p in scan.images_in(pat_dir, frozenset({".tif", ".tiff"})):
                rows.append(_row(p, root, "hehr", bag, patient=pid, disease=disease))
    return _frame(rows, root, "hehr", expected, scan)


def _imagefolder(scan: _Scan, *, name: str = "imagefolder", **_: Any) -> pd.DataFrame:
    root = scan.root
    expected = "<root>/<label>/**/*.{" + ",".join(sorted(e[1:] for e in IMAGE_EXTENSIONS)) + "}"
    top = scan.top()
    for p in scan.images_in(top):
        scan.skip(
            p,
            "image in the dataset root, outside any label folder (the label is the "
            "first folder level: move it into <root>/<label>/)",
        )
    rows = []
    empty = []
    for lab_dir in scan.subdirs(top):
        n0 = len(rows)
        for p in scan.walk(lab_dir):
            rows.append(_row(p, root, name, lab_dir.path.name))
        if len(rows) == n0:
            empty.append(lab_dir.path.name)
    if empty:
        log.warning(
            "%s: %d label folder(s) under %s hold no images: %s",
            name,
            len(empty),
            root,
            [printable_path(e) for e in empty[:10]],
        )
    return _frame(rows, root, name, expected, scan)


def _csv(scan: _Scan, *, name: str = "csv", path_column: str = "path", **_: Any) -> pd.DataFrame:
    """``scan.root`` is the CSV file (or a folder holding ``manifest.csv``); the dataset root is
    the folder holding the CSV: paths outside it are refused unless ``allow_outside_root``."""
    given = scan.root
    csv_path = given / "manifest.csv" if given.is_dir() else given
    if not csv_path.is_file():
        raise DatasetLayoutError(f"csv: expected a manifest CSV at {printable_path(csv_path)}")
    src = _read_csv(csv_path, "csv")
    if path_column not in src.columns:
        raise DatasetLayoutError(
            f"csv: {csv_path} has no {path_column!r} column (columns: {list(src.columns)})"
        )
    base = csv_path.parent.resolve()
    scan.root = base
    rows = []
    for i, rec in src.iterrows():
        raw = rec[path_column].strip()
        if not raw:
            scan.skip(f"{csv_path}:row {int(i) + 2}", "empty path")
            continue
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else (base / p)
        p = Path(os.path.normpath(p))
        try:
            real = Path(os.path.realpath(p, strict=True))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                scan.skip(p, "symlink loop")
                continue
            real = Path(os.path.realpath(p))  # missing: reported as such when it is read
        if not scan.allow_outside_root and not _inside(real, base):
            shown = "" if real == p else f" (-> {printable_path(real)})"
            scan.skip(
                p,
                f"path outside the dataset root {base}{shown}; the root of a csv manifest is "
                "the CSV's folder (allow_outside_root=True / --allow-outside-root reads it)",
            )
            continue
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
    return _frame(rows, base, name, f"rows in {csv_path}", scan)


_ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "mll23": _mll23,
    "acevedo": _acevedo,
    "matek19": _matek19,
    "bmc": _bmc,
    "hehr": _hehr,
    "imagefolder": _imagefolder,
    "csv": _csv,
}


def load_manifest(
    kind: str, root: str | Path, *, allow_outside_root: bool = False, **opts: Any
) -> pd.DataFrame:
    """Read a dataset folder in its real layout into a manifest.

    Args:
        kind: one of :data:`DATASET_KINDS`.
        root: the dataset root (for ``csv``: the CSV file or a folder holding ``manifest.csv``).
        allow_outside_root: follow symlinks (and, for ``csv``, read paths) that lead outside
            the dataset root; by default they are refused and listed as skipped.
        **opts: adapter options: ``acevedo``: ``labels="fine"|"group"``; ``bmc``:
            ``skip_known_broken=True``; ``hehr``: ``metadata=<path>``; ``imagefolder``/``csv``:
            ``name`` (the ``dataset`` column), ``csv``: ``path_column``.

    Returns:
        DataFrame with columns :data:`MANIFEST_COLUMNS`, sorted by ``image_id``;
        ``attrs["skipped"]`` lists ``(path, reason)`` of the files refused (see the module
        docstring), ``attrs["root"]`` the dataset root.

    Raises:
        DatasetLayoutError: the root is missing or has the wrong layout (names the root).
        ValueError: unknown ``kind``.
    """
    if kind not in _ADAPTERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {list(DATASET_KINDS)}")
    r = _check_root(root, kind) if kind != "csv" else Path(root).expanduser().resolve()
    scan = _Scan(r, kind, allow_outside_root=allow_outside_root, list_ignored=kind == "imagefolder")
    df = _ADAPTERS[kind](scan, **opts)
    log.info(
        "%s: %d images, %d labels under %s", kind, len(df), df["label"].nunique(), df.attrs["root"]
    )
    return df


def validate_manifest(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the problem when ``df`` is not a valid manifest."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    if df["image_id"].duplicated().any():
        dup = df["image_id"][df["image_id"].duplicated()].iloc[0]
        raise ValueError(f"manifest image_id is not unique: {dup!r}")
    for col in ("image_id", "path"):
        bad = [v for v in df[col].astype(str) if not _is_utf8(v)]
        if bad:
            raise ValueError(
                f"manifest {col} is not valid UTF-8 text in {len(bad)} row(s), first "
                f"{printable_path(bad[0])!r} (a file name in another encoding: rename the file, "
                "or drop the row)"
            )


def manifest_digest(df: pd.DataFrame) -> str:
    """sha256 of the manifest's content (columns :data:`MANIFEST_COLUMNS`, row order kept)."""
    validate_manifest(df)
    text = df.loc[:, list(MANIFEST_COLUMNS)].astype(str).to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


SKIPPED_COLUMNS: tuple[str, ...] = ("image_id", "path", "reason")


def skipped_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """``manifest.attrs["skipped"]`` as a table with :data:`SKIPPED_COLUMNS` (the rows of the
    store's ``skipped.csv`` for files refused before reading); ``image_id`` is the id the file
    would have had ("" for a path outside the root or a folder)."""
    root = manifest.attrs.get("root")
    rows = []
    for path, reason in manifest.attrs.get("skipped") or []:
        image_id = ""
        if root and not path.endswith("/"):
            rel = Path(os.path.normpath(path))
            if _inside(rel, Path(root)) and rel.suffix.lower() in IMAGE_EXTENSIONS:
                image_id = _image_id(rel, Path(root))
        rows.append((image_id, str(path), str(reason)))
    return pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS), dtype=str)


def is_deliberate_skip(reason: str) -> bool:
    """True for the reason of a file left out on purpose (no ``--strict`` error)."""
    return reason in DELIBERATE_SKIP_REASONS


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
