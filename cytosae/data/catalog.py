"""The five datasets of the paper: where each sits under a data folder, and what it holds.

One table for everything known about a dataset before reading it: its root (the profiles read
``$CYTOSAE_DATA/<root>``; the synthetic world writes the same layout under its own folder), its
class names as the adapters report them (the class dictionaries live here and
:mod:`cytosae.data.adapters` imports them), and the published image counts that
``cytosae check-data`` compares a folder against. Counts the reference marks as recalled rather
than read are flagged ``approximate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

__all__ = [
    "ACEVEDO_GROUPS",
    "ACEVEDO_PREFIX_CLASSES",
    "BMC_CLASSES",
    "BMC_KNOWN_BROKEN",
    "CATALOG",
    "DATASET_ROOTS",
    "HEHR_BAG_LABELS",
    "MATEK19_CLASSES",
    "MLL23_CLASSES",
    "PAPER_DATASETS",
    "DatasetInfo",
]

#: dataset name -> its root relative to a data folder (the folder the adapter of that name reads)
DATASET_ROOTS: dict[str, str] = {
    "mll23": "mll23",
    "acevedo": "acevedo/PBC_dataset_normal_DIB",
    "matek19": "matek19/AML-Cytomorphology",
    "bmc": "bmc",
    "hehr": "hehr",
}

#: the paper's datasets, in its order
PAPER_DATASETS: tuple[str, ...] = tuple(DATASET_ROOTS)

#: MLL23 class folder -> published images (Shetab Boushehri et al. 2025, data descriptor)
_MLL23_COUNTS: dict[str, int] = {
    "basophil": 616,
    "eosinophil": 2448,
    "hairy_cell": 3265,
    "lymphocyte": 5532,
    "lymphocyte_large_granular": 1849,
    "lymphocyte_neoplastic": 180,
    "lymphocyte_reactive": 33,
    "metamyelocyte": 483,
    "monocyte": 2510,
    "myeloblast": 8606,
    "myelocyte": 747,
    "neutrophil_band": 687,
    "neutrophil_segmented": 7170,
    "normoblast": 2071,
    "plasma_cell": 1658,
    "promyelocyte": 745,
    "promyelocyte_atypical": 2033,
    "smudge_cell": 988,
}

#: the 18 MLL23 class folders (alphabetical)
MLL23_CLASSES: tuple[str, ...] = tuple(_MLL23_COUNTS)

#: Acevedo 2020 group folder -> published images (approximate)
_ACEVEDO_GROUP_COUNTS: dict[str, int] = {
    "basophil": 1218,
    "eosinophil": 3117,
    "erythroblast": 1551,
    "ig": 2895,
    "lymphocyte": 1214,
    "monocyte": 1420,
    "neutrophil": 3329,
    "platelet": 2348,
}

#: the 8 Acevedo group folders
ACEVEDO_GROUPS: tuple[str, ...] = tuple(_ACEVEDO_GROUP_COUNTS)

#: Acevedo 2020 file-name prefix -> fine class name (the paper's 11 classes plus the two
#: "unspecified" prefixes NEUTROPHIL_ and IG_).
ACEVEDO_PREFIX_CLASSES: dict[str, str] = {
    "SNE": "neutrophil_segmented",
    "BNE": "neutrophil_band",
    "NEUTROPHIL": "neutrophil",
    "PMY": "promyelocyte",
    "MY": "myelocyte",
    "MMY": "metamyelocyte",
    "IG": "ig",
    "BA": "basophil",
    "EO": "eosinophil",
    "ERB": "erythroblast",
    "LY": "lymphocyte",
    "MO": "monocyte",
    "PLATELET": "platelet",
}

#: Matek19 abbreviation -> full name. Pitfall: MYB = myelocyte, MYO = myeloblast.
MATEK19_CLASSES: dict[str, str] = {
    "NGS": "neutrophil segmented",
    "NGB": "neutrophil band",
    "LYT": "lymphocyte typical",
    "LYA": "lymphocyte atypical",
    "MYO": "myeloblast",
    "MYB": "myelocyte",
    "MON": "monocyte",
    "MOB": "monoblast",
    "EOS": "eosinophil",
    "BAS": "basophil",
    "EBO": "erythroblast",
    "PMO": "promyelocyte",
    "PMB": "promyelocyte bilobed",
    "KSC": "smudge cell",
    "MMZ": "metamyelocyte",
}

#: Matek19 abbreviation -> published images (approximate; they sum to the exact 18,365)
_MATEK19_COUNTS: dict[str, int] = {
    "NGS": 8484,
    "NGB": 109,
    "LYT": 3937,
    "LYA": 11,
    "MYO": 3268,
    "MYB": 42,
    "MON": 1789,
    "MOB": 26,
    "EOS": 424,
    "BAS": 79,
    "EBO": 78,
    "PMO": 70,
    "PMB": 18,
    "KSC": 15,
    "MMZ": 15,
}

#: BMC abbreviation -> full name (MYB = myelocyte here too).
BMC_CLASSES: dict[str, str] = {
    "ABE": "abnormal eosinophil",
    "ART": "artefact",
    "BAS": "basophil",
    "BLA": "blast",
    "EBO": "erythroblast",
    "EOS": "eosinophil",
    "FGC": "faggot cell",
    "HAC": "hairy cell",
    "KSC": "smudge cell",
    "LYI": "immature lymphocyte",
    "LYT": "lymphocyte",
    "MMZ": "metamyelocyte",
    "MON": "monocyte",
    "MYB": "myelocyte",
    "NGB": "neutrophil band",
    "NGS": "neutrophil segmented",
    "NIF": "not identifiable",
    "OTH": "other",
    "PEB": "proerythroblast",
    "PLM": "plasma cell",
    "PMO": "promyelocyte",
}

#: BMC abbreviation -> published files (the archive's, including the known broken one)
_BMC_COUNTS: dict[str, int] = {
    "ABE": 8,
    "ART": 19630,
    "BAS": 441,
    "BLA": 11973,
    "EBO": 27395,
    "EOS": 5883,
    "FGC": 47,
    "HAC": 409,
    "KSC": 42,
    "LYI": 65,
    "LYT": 26242,
    "MMZ": 3055,
    "MON": 4040,
    "MYB": 6557,
    "NGB": 9968,
    "NGS": 29424,
    "NIF": 3538,
    "OTH": 294,
    "PEB": 2740,
    "PLM": 7629,
    "PMO": 11994,
}

#: Files known to be broken in the public BMC archive (file name -> reason).
BMC_KNOWN_BROKEN: dict[str, str] = {"MYB_05527.jpg": "known broken file in the public BMC archive"}

HEHR_BAG_LABELS: tuple[str, ...] = ("CBFB_MYH11", "NPM1", "PML_RARA", "RUNX1_RUNX1T1", "control")

#: Hehr bag label -> published patients (189 in all)
_HEHR_PATIENTS: dict[str, int] = {
    "CBFB_MYH11": 37,
    "NPM1": 36,
    "PML_RARA": 24,
    "RUNX1_RUNX1T1": 32,
    "control": 60,
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What is published about one of the paper's datasets.

    Attributes:
        name: the adapter kind.
        root: the root relative to a data folder (:data:`DATASET_ROOTS`).
        classes: the expected classes, as the check counts them (see ``class_level``).
        class_level: ``"label"``: a class is the manifest's ``label``; ``"folder"``: the first
            folder of the image id (Acevedo: its 8 group folders, while the adapter's labels are
            the finer file-name prefix classes, whose counts are not published).
        n_images: the published number of image files (BMC: including the known broken one).
        n_images_approximate: ``n_images`` was recalled rather than read.
        class_counts: class -> published images; empty where not published.
        class_counts_approximate: the per-class counts were recalled rather than read.
        patients: Hehr: bag label -> published patients; empty elsewhere.
        note: where the numbers come from, and caveats.
    """

    name: str
    root: str
    classes: tuple[str, ...]
    class_level: Literal["label", "folder"]
    n_images: int
    n_images_approximate: bool = False
    class_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    class_counts_approximate: bool = False
    patients: Mapping[str, int] = dataclasses.field(default_factory=dict)
    note: str = ""


#: dataset name -> what is published about it, in the paper's order
CATALOG: dict[str, DatasetInfo] = {
    "mll23": DatasetInfo(
        "mll23",
        DATASET_ROOTS["mll23"],
        MLL23_CLASSES,
        "label",
        41621,
        class_counts=_MLL23_COUNTS,
        note="data descriptor counts (they sum to 41,621; the CytoSAE paper says 41,906)",
    ),
    "acevedo": DatasetInfo(
        "acevedo",
        DATASET_ROOTS["acevedo"],
        ACEVEDO_GROUPS,
        "folder",
        17092,
        class_counts=_ACEVEDO_GROUP_COUNTS,
        class_counts_approximate=True,
        note="Acevedo et al. 2020, Data in Brief; classes are the 8 group folders",
    ),
    "matek19": DatasetInfo(
        "matek19",
        DATASET_ROOTS["matek19"],
        tuple(MATEK19_CLASSES),
        "label",
        18365,
        class_counts=_MATEK19_COUNTS,
        class_counts_approximate=True,
        note="Matek et al. 2019, TCIA AML-Cytomorphology_LMU",
    ),
    "bmc": DatasetInfo(
        "bmc",
        DATASET_ROOTS["bmc"],
        tuple(BMC_CLASSES),
        "label",
        171374,
        class_counts=_BMC_COUNTS,
        note="Matek et al. 2021, TCIA; counts include the known broken MYB_05527.jpg",
    ),
    "hehr": DatasetInfo(
        "hehr",
        DATASET_ROOTS["hehr"],
        HEHR_BAG_LABELS,
        "label",
        81214,
        patients=_HEHR_PATIENTS,
        note="Hehr et al. 2023 (SCEMILA); 81,214 images in the authors' run, 189 patients",
    ),
}
