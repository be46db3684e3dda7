"""Writers of the five synthetic datasets in the on-disk layouts of the real ones.

See ``shared/reference/datasets.md``.  Each dataset is planned first (:func:`plan_dataset`: one
:class:`ImageJob` per image, a pure function of the config), then rendered image by image with a
generator seeded by ``(seed, dataset code, image index)`` so any subset renders identically, and
written into a temporary folder that is renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from cytosae.atomic import atomic_dir
from cytosae.data.catalog import DATASET_ROOTS, MLL23_CLASSES
from cytosae.synth.cohort import Patient, make_cohort, metadata_frame
from cytosae.synth.config import SYNTH_DATASETS, SynthConfig
from cytosae.synth.groundtruth import GroundTruthWriter
from cytosae.synth.render import Scene, render_scene
from cytosae.synth.stains import DATASET_DOMAIN

log = logging.getLogger(__name__)

#: fixed code per dataset, part of every per-image seed
DATASET_CODE: dict[str, int] = {"mll23": 1, "acevedo": 2, "matek19": 3, "bmc": 4, "hehr": 5}


#: native (H, W) and field of view (um across the larger side) per dataset
NATIVE_SIZE: dict[str, tuple[int, int]] = {
    "mll23": (288, 288),
    "acevedo": (363, 360),
    "matek19": (400, 400),
    "bmc": (250, 250),
    "hehr": (144, 144),
}
FIELD_UM: dict[str, float] = {
    "mll23": 25.0,
    "acevedo": 36.0,
    "matek19": 28.0,
    "bmc": 25.0,
    "hehr": 25.0,
}

ACEVEDO_GROUPS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "basophil": (("BA", "basophil", 1.0),),
    "eosinophil": (("EO", "eosinophil", 1.0),),
    "erythroblast": (("ERB", "normoblast", 1.0),),
    "ig": (
        ("PMY", "promyelocyte", 0.3),
        ("MY", "myelocyte", 0.35),
        ("MMY", "metamyelocyte", 0.25),
        ("IG", "", 0.1),
    ),
    "lymphocyte": (("LY", "lymphocyte", 1.0),),
    "monocyte": (("MO", "monocyte", 1.0),),
    "neutrophil": (
        ("SNE", "neutrophil_segmented", 0.6),
        ("BNE", "neutrophil_band", 0.3),
        ("NEUTROPHIL", "", 0.1),
    ),
    "platelet": (("PLATELET", "platelet", 1.0),),
}
_ACEVEDO_UNSPECIFIED = {
    "IG": ("promyelocyte", "myelocyte", "metamyelocyte"),
    "NEUTROPHIL": ("neutrophil_segmented", "neutrophil_band"),
}

MATEK19_CLASSES: dict[str, tuple[str, str]] = {
    "BAS": ("basophil", "Basophil"),
    "EBO": ("normoblast", "Erythroblast"),
    "EOS": ("eosinophil", "Eosinophil"),
    "KSC": ("smudge_cell", "Smudge cell"),
    "LYA": ("lymphocyte_reactive", "Lymphocyte (atypical)"),
    "LYT": ("lymphocyte", "Lymphocyte (typical)"),
    "MMZ": ("metamyelocyte", "Metamyelocyte"),
    "MOB": ("monoblast", "Monoblast"),
    "MON": ("monocyte", "Monocyte"),
    "MYB": ("myelocyte", "Myelocyte"),
    "MYO": ("myeloblast", "Myeloblast"),
    "NGB": ("neutrophil_band", "Neutrophil (band)"),
    "NGS": ("neutrophil_segmented", "Neutrophil (segmented)"),
    "PMB": ("promyelocyte_atypical", "Promyelocyte (bilobled)"),
    "PMO": ("promyelocyte", "Promyelocyte"),
}

BMC_CLASSES: dict[str, str] = {
    "ABE": "eosinophil_abnormal",
    "ART": "artefact",
    "BAS": "basophil",
    "BLA": "myeloblast",
    "EBO": "normoblast",
    "EOS": "eosinophil",
    "FGC": "faggot_cell",
    "HAC": "hairy_cell",
    "KSC": "smudge_cell",
    "LYI": "lymphocyte_immature",
    "LYT": "lymphocyte",
    "MMZ": "metamyelocyte",
    "MON": "monocyte",
    "MYB": "myelocyte",
    "NGB": "neutrophil_band",
    "NGS": "neutrophil_segmented",
    "NIF": "not_identifiable",
    "OTH": "other",
    "PEB": "proerythroblast",
    "PLM": "plasma_cell",
    "PMO": "promyelocyte",
}


@dataclasses.dataclass(frozen=True)
class ImageJob:
    """One image to render and write (paths relative to the dataset root)."""

    relpath: str
    cell_type: str
    label: str
    fmt: str  # "tiff" | "jpeg"
    rgba: bool = False
    patient: str = ""
    disease: str = ""


def _plan_rng(cfg: SynthConfig, name: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, DATASET_CODE[name], 2**31 - 1])


def image_rng(cfg: SynthConfig, name: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of dataset ``name``: depends on nothing else."""
    return np.random.default_rng([cfg.seed, DATASET_CODE[name], int(index)])


def _split(total: int, weights: list[float]) -> list[int]:
    w = np.asarray(weights, float)
    raw = w / w.sum() * total
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


def _plan_mll23(cfg: SynthConfig) -> list[ImageJob]:
    rng = _plan_rng(cfg, "mll23")
    jobs = []
    for c in MLL23_CLASSES:
        for i in range(cfg.mll23_per_class):
            yy = int(rng.integers(18, 22))
            case = int(rng.integers(1000, 9999))
            slide = "ABCDEFGH"[int(rng.integers(8))]
            name = f"{yy}-{case}.PAP.PB~{slide}.{int(rng.integers(1, 4))}-{1000 + i:04d}.tif"
            jobs.append(ImageJob(f"{c}/{c}/{name}", c, c, "tiff"))
    return jobs


def _plan_acevedo(cfg: SynthConfig) -> list[ImageJob]:
    rng = _plan_rng(cfg, "acevedo")
    jobs = []
    for group, prefixes in ACEVEDO_GROUPS.items():
        counts = _split(cfg.acevedo_per_group, [p[2] for p in prefixes])
        numbers = rng.choice(900000, size=cfg.acevedo_per_group, replace=False) + 100000
        k = 0
        for (prefix, ct, _), n in zip(prefixes, counts):
            for _ in range(n):
                cell = (
                    ct
                    or _ACEVEDO_UNSPECIFIED[prefix][
                        int(rng.integers(len(_ACEVEDO_UNSPECIFIED[prefix])))
                    ]
                )
                jobs.append(
                    ImageJob(f"{group}/{prefix}_{int(numbers[k])}.jpg", cell, prefix, "jpeg")
                )
                k += 1
    return jobs


def _plan_matek19(cfg: SynthConfig) -> list[ImageJob]:
    jobs = []
    for abb, (ct, _) in MATEK19_CLASSES.items():
        for i in range(cfg.matek19_per_class):
            jobs.append(ImageJob(f"{abb}/{abb}_{i + 1:04d}.tiff", ct, abb, "tiff"))
    return _with_alpha(jobs, cfg.matek19_rgba_fraction)


def _with_alpha(jobs: list[ImageJob], fraction: float) -> list[ImageJob]:
    """Mark an evenly spread ``fraction`` of the jobs as RGBA (exact share, deterministic)."""
    return [
        dataclasses.replace(j, rgba=np.floor((i + 1) * fraction) > np.floor(i * fraction))
        for i, j in enumerate(jobs)
    ]


def _plan_bmc(cfg: SynthConfig) -> list[ImageJob]:
    jobs = []
    for abb, ct in BMC_CLASSES.items():
        for i in range(1, cfg.bmc_per_class + 1):
            k = (i - 1) // 1000
            sub = f"{k * 1000 + 1:04d}-{(k + 1) * 1000:04d}"
            jobs.append(ImageJob(f"{abb}/{sub}/{abb}_{i:05d}.jpg", ct, abb, "jpeg"))
    return jobs


def hehr_cohort(cfg: SynthConfig) -> list[Patient]:
    """The Hehr-like cohort of this config (deterministic)."""
    return make_cohort(
        cfg.hehr_patients_per_disease,
        cfg.hehr_images_per_patient,
        _plan_rng(cfg, "hehr"),
        concentration=cfg.hehr_concentration,
        subtle_fraction=cfg.hehr_subtle_fraction,
    )


def _plan_hehr(cfg: SynthConfig) -> list[ImageJob]:
    jobs = []
    for p in hehr_cohort(cfg):
        for n, ct in enumerate(p.cells):
            jobs.append(
                ImageJob(
                    f"data/{p.bag_label}/{p.patient_id}/image_{n}.tif",
                    ct,
                    p.bag_label,
                    "tiff",
                    patient=p.patient_id,
                    disease=p.bag_label,
                )
            )
    return _with_alpha(jobs, cfg.hehr_rgba_fraction)


_PLANNERS = {
    "mll23": _plan_mll23,
    "acevedo": _plan_acevedo,
    "matek19": _plan_matek19,
    "bmc": _plan_bmc,
    "hehr": _plan_hehr,
}


def plan_dataset(name: str, cfg: SynthConfig) -> list[ImageJob]:
    """The images of one synthetic dataset, in write (and ground-truth) order."""
    if name not in _PLANNERS:
        raise ValueError(f"unknown synthetic dataset {name!r}; known: {SYNTH_DATASETS}")
    return _PLANNERS[name](cfg)


def render_job(name: str, cfg: SynthConfig, index: int, job: ImageJob) -> Scene:
    """Render image ``index`` of dataset ``name``."""
    return render_scene(
        job.cell_type,
        DATASET_DOMAIN[name],
        NATIVE_SIZE[name],
        image_rng(cfg, name, index),
        field_um=FIELD_UM[name],
    )


def _save(rgb: np.ndarray, path: Path, job: ImageJob, cfg: SynthConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if job.fmt == "jpeg":
        Image.fromarray(rgb, "RGB").save(path, format="JPEG", quality=cfg.jpeg_quality)
        return
    if job.rgba:
        arr = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
        img = Image.fromarray(arr, "RGBA")
    else:
        img = Image.fromarray(rgb, "RGB")
    img.save(path, format="TIFF", compression="tiff_lzw")


def _extras(name: str, root: Path, cfg: SynthConfig, jobs: list[ImageJob]) -> None:
    if name == "matek19":
        (root / "abbreviations.txt").write_text(
            "".join(f"{abb}\t{full}\n" for abb, (_, full) in MATEK19_CLASSES.items())
        )
        # one line per image: path relative to the root, first annotation, second annotation
        # (a re-annotation; approximate stand-in for the real file)
        (root / "annotations.dat").write_text(
            "".join(f"{j.relpath} {j.label} {j.label}\n" for j in jobs)
        )
    elif name == "hehr":
        metadata_frame(hehr_cohort(cfg)).to_csv(root / "metadata.csv", index=False)


_MARKER = ".synth.json"


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Small matmuls of the patch fractions run fastest (and steadiest) on one BLAS thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(1):
        yield


def write_dataset(name: str, out: Path, cfg: SynthConfig, *, bar: tqdm | None = None) -> Path:
    """Write one dataset atomically under ``out`` and return its root (skips when already complete)."""
    out = Path(out)
    top = out / DATASET_ROOTS[name].split("/")[0]
    root = out / DATASET_ROOTS[name]
    marker = {"dataset": name, "config": cfg.digest()}
    jobs = plan_dataset(name, cfg)
    mfile = top / _MARKER
    if mfile.is_file():
        try:
            if json.loads(mfile.read_text()) == marker:
                if bar is not None:
                    bar.update(len(jobs))
                return root
        except (OSError, json.JSONDecodeError):
            pass
    with atomic_dir(top) as tmp_top:
        tmp_root = tmp_top / Path(DATASET_ROOTS[name]).relative_to(top.name)
        tmp_root.mkdir(parents=True, exist_ok=True)
        gt = GroundTruthWriter(tmp_root, name, {"synth_config": cfg.to_dict()})
        for i, job in enumerate(jobs):
            scene = render_job(name, cfg, i, job)
            _save(scene.paint(), tmp_root / job.relpath, job, cfg)
            gt.add(job.relpath, scene, label=job.label, patient=job.patient, disease=job.disease)
            if bar is not None:
                bar.update(1)
        gt.close()
        _extras(name, tmp_root, cfg, jobs)
        (tmp_top / _MARKER).write_text(json.dumps(marker) + "\n")
    log.info("wrote synthetic %s: %d images under %s", name, len(jobs), root)
    return root


def write_all(out: str | Path, cfg: SynthConfig, progress: bool = True) -> dict[str, Path]:
    """Write the synthetic datasets of ``cfg`` under ``out`` in the real on-disk layouts.

    Args:
        out: output folder (created).
        cfg: sizes and seed.
        progress: show a progress bar over all images.

    Returns:
        dataset name -> root folder for the matching adapter in :mod:`cytosae.data.adapters`.
    """
    out = Path(out)
    plans = {name: len(plan_dataset(name, cfg)) for name in cfg.datasets}
    roots: dict[str, Path] = {}
    with (
        _one_blas_thread(),
        tqdm(
            total=sum(plans.values()), desc="synthetic world", unit="img", disable=not progress
        ) as bar,
    ):
        for name in cfg.datasets:
            bar.set_postfix_str(name)
            roots[name] = write_dataset(name, out, cfg, bar=bar)
    return roots
