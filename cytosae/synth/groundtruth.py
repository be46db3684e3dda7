"""Ground truth of the synthetic world: concept masks, per-patch fractions, cell/patient labels.

On-disk format (``<dataset_root>/_groundtruth/``; no pickle anywhere)::

    meta.json               {"format": 1, "dataset", "concepts": [...], "patch_grid": 16,
                             "patch_px": 14, "resize": 224, "resize_method": ..., "config": {...}}
    index.csv               one row per image, in the order of the arrays below: relpath (posix,
                            relative to the dataset root), cell_type, domain, patient, disease,
                            label, height, width, elem_start, elem_count
    element_tags.npy        uint64 (total_elements,): per rendered element, the bit set of its
                            concepts (bit k = CONCEPTS[k]); image i owns rows
                            elem_start[i] : elem_start[i] + elem_count[i]
    owners.npz              zip (deflate) of one uint8 (H, W) array per image, key "i000000", ...:
                            the element id painted last at every pixel
    patch_fractions.npz     zip (deflate) with one member "patch_fractions.npy": float16
                            (n_images, n_concepts, 16, 16) (mostly zeros, so it compresses well)

Concept ``k`` of image ``i`` at pixel ``p`` is ``(element_tags[elem_start + owner[p]] >> k) & 1``:
exactly the pixels the renderer painted with an element carrying that concept.

Patch fractions: each concept mask is turned into float, resized to 224 x 224 with the same
square bilinear resize the backbone uses (PIL ``Image.resize(..., BILINEAR)`` on a mode-"F"
image, i.e. antialiased bilinear), and averaged over the 16 x 16 blocks of 14 x 14 pixels.  The
resize is linear and separable, so it is computed as ``P_h @ mask @ P_w.T`` with
``P = blockmean @ R`` where ``R`` (224, n) is PIL's resize applied to the identity matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from cytosae.synth.render import CONCEPTS, Scene

GT_DIR = "_groundtruth"
FORMAT_VERSION = 1
RESIZE = 224
PATCH_PX = 14
PATCH_GRID = RESIZE // PATCH_PX
INDEX_COLUMNS = (
    "relpath",
    "cell_type",
    "domain",
    "patient",
    "disease",
    "label",
    "height",
    "width",
    "elem_start",
    "elem_count",
)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@functools.lru_cache(maxsize=16)
def resize_operator(n: int, out: int = RESIZE) -> np.ndarray:
    """(out, n) float64 matrix of PIL's bilinear resize along one axis (n -> out samples)."""
    eye = np.eye(n, dtype=np.float32)
    img = Image.fromarray(eye, mode="F").resize((n, out), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def patch_operator(n: int) -> np.ndarray:
    """(16, n) float32: resize to 224 along one axis, then the mean over each 14-px block."""
    R = resize_operator(n)
    return R.reshape(PATCH_GRID, PATCH_PX, n).mean(axis=1).astype(np.float32)


def patch_fractions_from_masks(masks_CHW: np.ndarray) -> np.ndarray:
    """Per-patch fractions (C, 16, 16) float32 of boolean/float masks at native size."""
    m = np.asarray(masks_CHW, dtype=np.float32)
    Ph = patch_operator(m.shape[1])
    Pw = patch_operator(m.shape[2])
    return np.einsum("ph,chw,qw->cpq", Ph, m, Pw, optimize=True).astype(np.float32)


def scene_patch_fractions(owner: np.ndarray, tagbits: np.ndarray) -> np.ndarray:
    """Per-patch concept fractions (C, 16, 16) float32 from an owner map and element tag bits.

    Elements partition the pixels, so each concept's fraction is the sum of its elements'.
    """
    H, W = owner.shape
    E = len(tagbits)
    Ph = patch_operator(H)
    Pw = patch_operator(W)
    onehot = (owner[None] == np.arange(E, dtype=np.uint8)[:, None, None]).astype(np.float32)
    x = onehot.reshape(E * H, W) @ Pw.T  # (E*H, 16)
    frac_E = np.matmul(Ph, x.reshape(E, H, PATCH_GRID))  # (E, 16, 16)
    bits = (
        (tagbits[None, :] >> np.arange(len(CONCEPTS), dtype=np.uint64)[:, None]) & np.uint64(1)
    ).astype(np.float32)
    return (bits @ frac_E.reshape(E, -1)).reshape(len(CONCEPTS), PATCH_GRID, PATCH_GRID)


def masks_from_owner(owner: np.ndarray, tagbits: np.ndarray) -> np.ndarray:
    """(C, H, W) bool concept masks from an owner map and its element tag bits."""
    per_px = np.asarray(tagbits, np.uint64)[owner]
    shifts = np.arange(len(CONCEPTS), dtype=np.uint64)[:, None, None]
    return ((per_px[None] >> shifts) & np.uint64(1)).astype(bool)


def _zip_array(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    """Add one .npy member with a fixed timestamp (so the bytes depend only on the data)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, buf.getvalue(), compresslevel=6)


def _read_zip_array(path: Path, name: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf, zf.open(name) as f:
        return np.lib.format.read_array(io.BytesIO(f.read()), allow_pickle=False)


class GroundTruthWriter:
    """Streams the ground truth of one dataset into ``<root>/_groundtruth/`` (call :meth:`close`)."""

    def __init__(self, root: Path, dataset: str, config: dict[str, Any] | None = None) -> None:
        self.dir = Path(root) / GT_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dataset = dataset
        self.config = config or {}
        self.rows: list[dict[str, Any]] = []
        self.tags: list[np.ndarray] = []
        self.fracs: list[np.ndarray] = []
        self._n_elem = 0
        self._zip = zipfile.ZipFile(
            self.dir / "owners.npz", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
        )

    def add(
        self, relpath: str, scene: Scene, *, label: str, patient: str = "", disease: str = ""
    ) -> None:
        i = len(self.rows)
        tagbits = scene.tagbits
        H, W = scene.owner.shape
        self.rows.append(
            {
                "relpath": relpath,
                "cell_type": scene.cell_type,
                "domain": scene.domain,
                "patient": patient,
                "disease": disease,
                "label": label,
                "height": H,
                "width": W,
                "elem_start": self._n_elem,
                "elem_count": len(tagbits),
            }
        )
        self._n_elem += len(tagbits)
        self.tags.append(tagbits)
        self.fracs.append(scene_patch_fractions(scene.owner, tagbits).astype(np.float16))
        _zip_array(self._zip, f"i{i:06d}.npy", scene.owner)

    def close(self) -> None:
        self._zip.close()
        pd.DataFrame(self.rows, columns=list(INDEX_COLUMNS)).to_csv(
            self.dir / "index.csv", index=False
        )
        tags = np.concatenate(self.tags) if self.tags else np.zeros(0, np.uint64)
        np.save(self.dir / "element_tags.npy", tags.astype(np.uint64), allow_pickle=False)
        fr = (
            np.stack(self.fracs)
            if self.fracs
            else np.zeros((0, len(CONCEPTS), PATCH_GRID, PATCH_GRID), np.float16)
        )
        with zipfile.ZipFile(
            self.dir / "patch_fractions.npz", "w", compression=zipfile.ZIP_DEFLATED
        ) as zf:
            _zip_array(zf, "patch_fractions.npy", fr)
        meta = {
            "format": FORMAT_VERSION,
            "dataset": self.dataset,
            "concepts": list(CONCEPTS),
            "patch_grid": PATCH_GRID,
            "patch_px": PATCH_PX,
            "resize": RESIZE,
            "resize_method": "PIL Image.resize(BILINEAR) of float masks to 224x224, mean over 14x14 blocks",
            "n_images": len(self.rows),
            "config": self.config,
        }
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@dataclasses.dataclass
class GroundTruth:
    """Ground truth of one synthetic dataset (see the module docstring for the format).

    Attributes:
        root: the dataset root.
        index: one row per image: relpath, cell_type, domain, patient, disease, label, height, width, ...
        concepts: concept names (channel order).
        patch_fractions: float32 (n_images, n_concepts, 16, 16) in the row order of ``index``.
        element_tags: uint64 per element (see module docstring).
        meta: the contents of meta.json.
    """

    root: Path
    index: pd.DataFrame
    concepts: tuple[str, ...]
    patch_fractions: np.ndarray
    element_tags: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.index)

    def owner(self, i: int) -> np.ndarray:
        """(H, W) uint8 element-id map of image ``i``."""
        return _read_zip_array(self.root / GT_DIR / "owners.npz", f"i{int(i):06d}.npy")

    def tagbits(self, i: int) -> np.ndarray:
        row = self.index.iloc[int(i)]
        s, n = int(row["elem_start"]), int(row["elem_count"])
        return self.element_tags[s : s + n]

    def masks(self, i: int) -> np.ndarray:
        """(n_concepts, H, W) bool masks of image ``i`` at native size."""
        return masks_from_owner(self.owner(i), self.tagbits(i))

    def concept_index(self, name: str) -> int:
        if name not in self.concepts:
            raise ValueError(f"unknown concept {name!r}; known: {self.concepts}")
        return self.concepts.index(name)

    def image_fractions(self) -> pd.DataFrame:
        """Per image, the mean patch fraction of each concept (n_images x n_concepts)."""
        return pd.DataFrame(self.patch_fractions.mean(axis=(2, 3)), columns=list(self.concepts))


def load_groundtruth(dataset_root: str | Path) -> GroundTruth:
    """Read ``<dataset_root>/_groundtruth/`` written by :func:`cytosae.synth.write_all`.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: when the files disagree (naming the file).
    """
    root = Path(dataset_root)
    d = root / GT_DIR
    for name in ("meta.json", "index.csv", "element_tags.npy", "owners.npz", "patch_fractions.npz"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"ground truth file missing: {d / name}")
    meta = json.loads((d / "meta.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{d / 'meta.json'}: unsupported ground-truth format {meta.get('format')!r}"
        )
    index = pd.read_csv(
        d / "index.csv", keep_default_na=False, dtype={"patient": str, "disease": str, "label": str}
    )
    fr = _read_zip_array(d / "patch_fractions.npz", "patch_fractions.npy").astype(np.float32)
    tags = np.load(d / "element_tags.npy", allow_pickle=False)
    concepts = tuple(meta["concepts"])
    if fr.shape != (len(index), len(concepts), PATCH_GRID, PATCH_GRID):
        raise ValueError(
            f"{d / 'patch_fractions.npz'}: shape {fr.shape} does not match {len(index)} images "
            f"x {len(concepts)} concepts"
        )
    return GroundTruth(root, index, concepts, fr, tags, meta)
