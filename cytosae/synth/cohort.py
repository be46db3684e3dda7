"""An AML Hehr-like cohort: patients, their differentials and the cells drawn from them.

Each patient has a disease (bag label), a differential (in %) drawn from a Dirichlet around the
disease's mean differential, and per-patient hallmark prevalences (e.g. the share of cup-like
blasts in NPM1).  A quarter of AML patients are *subtle*: their differential is pulled towards the
healthy one and their hallmarks are rarer.  The cells of a patient are allocated to the
differential's categories by largest remainder (so the drawn cells reproduce the differential as
closely as the image count allows), then each cell's type is drawn with the hallmark prevalences.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

BAG_LABELS: tuple[str, ...] = ("CBFB_MYH11", "NPM1", "PML_RARA", "RUNX1_RUNX1T1", "control")

#: differential columns of the real metadata.csv (percent)
DIFF_COLUMNS: tuple[str, ...] = (
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
)

#: exactly the columns of the real metadata.csv
METADATA_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "sex_1f_2m",
    "age",
    "bag_label",
    "instance_count",
    "leucocytes_per_\u00b5l",
    *DIFF_COLUMNS,
    "pb_total",
)

# mean differential (%) per disease, in DIFF_COLUMNS order
_MEAN_DIFF: dict[str, tuple[float, ...]] = {
    #              blast  pro  myel meta band  seg   eos  baso mono lymph react neopl other
    "control": (0.0, 0.0, 0.0, 0.0, 3.0, 57.0, 3.0, 0.7, 6.5, 28.0, 1.0, 0.0, 0.8),
    "NPM1": (48.0, 1.0, 1.0, 0.5, 1.5, 12.0, 1.0, 0.3, 14.0, 18.0, 0.5, 0.0, 2.2),
    "CBFB_MYH11": (38.0, 1.5, 2.0, 1.0, 2.0, 12.0, 8.0, 0.5, 16.0, 16.0, 0.5, 0.0, 2.5),
    "PML_RARA": (8.0, 52.0, 2.0, 1.0, 1.0, 10.0, 0.5, 0.2, 2.0, 20.0, 0.5, 0.0, 2.8),
    "RUNX1_RUNX1T1": (40.0, 4.0, 6.0, 3.0, 3.0, 16.0, 2.5, 0.5, 4.0, 19.0, 0.5, 0.0, 1.5),
}

#: hallmark prevalence ranges (uniform) per disease
_HALLMARKS: dict[str, dict[str, tuple[float, float]]] = {
    "NPM1": {"cup_blast": (0.15, 0.6), "monoblast": (0.05, 0.3)},
    "CBFB_MYH11": {"abnormal_eos": (0.4, 0.95), "monoblast": (0.15, 0.5)},
    "PML_RARA": {"atypical_pro": (0.7, 1.0), "faggot": (0.03, 0.2)},
    "RUNX1_RUNX1T1": {"long_auer": (0.15, 0.55), "dysplastic_neut": (0.15, 0.5)},
    "control": {},
}

_OTHER_TYPES = ("normoblast", "smudge_cell", "plasma_cell", "lymphocyte_large_granular")


@dataclasses.dataclass(frozen=True)
class Patient:
    """One synthetic patient."""

    patient_id: str
    bag_label: str
    sex_1f_2m: int
    age: int
    leucocytes_per_ul: int
    subtle: bool
    differential: tuple[float, ...]  # percent, DIFF_COLUMNS order, sums to 100
    hallmarks: dict[str, float]
    cells: tuple[str, ...]  # cell type of each image


def _largest_remainder(p: np.ndarray, n: int) -> np.ndarray:
    raw = p * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def _cell_type(category: str, disease: str, hm: dict[str, float], rng: np.random.Generator) -> str:
    u = rng.random()
    if category == "pb_myeloblast":
        if disease == "NPM1":
            if u < hm["cup_blast"]:
                return "blast_cup"
            return "monoblast" if rng.random() < hm["monoblast"] else "myeloblast"
        if disease == "CBFB_MYH11":
            return "monoblast" if u < hm["monoblast"] else "myeloblast"
        if disease == "RUNX1_RUNX1T1":
            return "blast_auer_long" if u < hm["long_auer"] else "myeloblast"
        return "myeloblast"
    if category == "pb_promyelocyte":
        if disease == "PML_RARA":
            if u < hm["faggot"]:
                return "faggot_cell"
            return "promyelocyte_atypical" if rng.random() < hm["atypical_pro"] else "promyelocyte"
        return "promyelocyte"
    if category == "pb_neutrophil_segmented":
        if disease == "RUNX1_RUNX1T1" and u < hm["dysplastic_neut"]:
            return "neutrophil_dysplastic"
        return "neutrophil_segmented"
    if category == "pb_eosinophil":
        if disease == "CBFB_MYH11" and u < hm["abnormal_eos"]:
            return "eosinophil_abnormal"
        return "eosinophil"
    if category == "pb_other":
        return _OTHER_TYPES[int(rng.integers(len(_OTHER_TYPES)))]
    return {
        "pb_myelocyte": "myelocyte",
        "pb_metamyelocyte": "metamyelocyte",
        "pb_neutrophil_band": "neutrophil_band",
        "pb_basophil": "basophil",
        "pb_monocyte": "monocyte",
        "pb_lymph_typ": "lymphocyte",
        "pb_lymph_atyp_react": "lymphocyte_reactive",
        "pb_lymph_atyp_neopl": "lymphocyte_neoplastic",
    }[category]


def make_cohort(
    patients_per_disease: int,
    images_per_patient: int,
    rng: np.random.Generator,
    *,
    concentration: float = 30.0,
    subtle_fraction: float = 0.25,
) -> list[Patient]:
    """Draw the cohort (patients in BAG_LABELS order, then by index).

    Args:
        patients_per_disease: patients per bag label.
        images_per_patient: cells (images) per patient.
        rng: generator (fixes everything).
        concentration: Dirichlet concentration around the disease's mean differential (lower =
            more varied patients).
        subtle_fraction: share of AML patients pulled towards the healthy differential.
    """
    n_total = patients_per_disease * len(BAG_LABELS)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n_total:
        code = "".join(letters[rng.integers(0, 26, 3)])
        if code not in seen:
            seen.add(code)
            ids.append(code)
    control = np.array(_MEAN_DIFF["control"]) / 100
    out: list[Patient] = []
    k = 0
    for disease in BAG_LABELS:
        mean = np.array(_MEAN_DIFF[disease]) / 100
        for _ in range(patients_per_disease):
            subtle = disease != "control" and rng.random() < subtle_fraction
            base = mean
            scale = 1.0
            if subtle:
                lam = rng.uniform(0.25, 0.55)
                base = lam * mean + (1 - lam) * control
                scale = 0.5
            alpha = concentration * base + 0.02 * (base > 0)
            p = rng.dirichlet(np.maximum(alpha, 1e-3)) * (base > 0)
            p = p / p.sum()
            hm = {
                name: float(rng.uniform(lo, hi) * scale)
                for name, (lo, hi) in _HALLMARKS[disease].items()
            }
            counts = _largest_remainder(p, images_per_patient)
            cats = np.repeat(np.arange(len(DIFF_COLUMNS)), counts)
            rng.shuffle(cats)
            cells = tuple(_cell_type(DIFF_COLUMNS[c], disease, hm, rng) for c in cats)
            pct = np.round(p * 100, 1)
            pct[np.argmax(pct)] += round(100.0 - float(pct.sum()), 1)
            out.append(
                Patient(
                    patient_id=ids[k],
                    bag_label=disease,
                    sex_1f_2m=int(rng.integers(1, 3)),
                    age=int(rng.integers(20, 86)),
                    leucocytes_per_ul=int(
                        rng.lognormal(np.log(6500 if disease == "control" else 25000), 0.5)
                    ),
                    subtle=subtle,
                    differential=tuple(float(round(x, 1)) for x in pct),
                    hallmarks=hm,
                    cells=cells,
                )
            )
            k += 1
    return out


def metadata_frame(patients: list[Patient]) -> pd.DataFrame:
    """The metadata.csv table (exactly :data:`METADATA_COLUMNS`)."""
    rows = []
    for p in patients:
        row: dict[str, object] = {
            "patient_id": p.patient_id,
            "sex_1f_2m": p.sex_1f_2m,
            "age": p.age,
            "bag_label": p.bag_label,
            "instance_count": len(p.cells),
            "leucocytes_per_\u00b5l": p.leucocytes_per_ul,
        }
        row.update(dict(zip(DIFF_COLUMNS, p.differential)))
        row["pb_total"] = round(float(sum(p.differential)), 1)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(METADATA_COLUMNS))


def cohort_composition(patients: list[Patient]) -> pd.DataFrame:
    """Fraction of each drawn cell type per patient (rows: patients, with bag_label and subtle)."""
    rows = []
    for p in patients:
        s = pd.Series(p.cells).value_counts(normalize=True)
        rows.append(
            {
                "patient_id": p.patient_id,
                "bag_label": p.bag_label,
                "subtle": p.subtle,
                **s.to_dict(),
            }
        )
    df = pd.DataFrame(rows).fillna(0.0)
    return df
