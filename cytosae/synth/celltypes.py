"""Per-cell-type parameter ranges (textbook haematology, ``shared/reference/morphology.md``).

Every white-cell type is a :class:`CellSpec`: ranges from which each rendered cell draws its own
size, nucleus, chromatin, cytoplasm, granules and extras.  Sizes are in micrometres.  A few
types are not single white cells (``platelet``, ``artefact``, ``smudge_cell``) and use a
``special`` drawing routine.
"""

from __future__ import annotations

import dataclasses

Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Granules:
    """One granule population: type (concept suffix), colour key, density (fraction of grid sites
    filled), radius range (um), and whether the granules lie over the nucleus too."""

    kind: str
    colour: str
    density: Range
    radius: Range
    covers_nucleus: bool = False


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """Parameter ranges of one cell type.

    Attributes:
        diameter: cell diameter range (um).
        nuc_frac: nucleus radius / cell radius range.
        shapes: nucleus shape -> probability (round, kidney, band, lobed, bilobed, cup).
        nuc_colour: colour key of the nucleus.
        chromatin: "coarse" (clumped, high contrast) or "fine" (open, low contrast).
        eccentric: range of the nucleus offset as a fraction of the free radius.
        nucleoli: range of the number of nucleoli.
        cyto: colour key of the cytoplasm; ``cyto_edge`` the colour towards the membrane.
        hue: cytoplasm hue concept (pink, blue, grey, deep_blue).
        granules: granule populations.
        vacuoles: range of the number of vacuoles.
        hof_p: probability of a perinuclear hof.
        projections: hair-like projections.
        irregular: outline bumpiness (0 = smooth).
        auer: (probability, count lo, count hi, kind) with kind "short" | "long" | "bundle".
        lobes: range of lobes for "lobed" nuclei.
        special: "" for a white cell, else "smudge" | "platelets" | "artefact".
    """

    diameter: Range
    nuc_frac: Range = (0.6, 0.7)
    shapes: tuple[tuple[str, float], ...] = (("round", 1.0),)
    nuc_colour: str = "nucleus_dense"
    chromatin: str = "coarse"
    eccentric: Range = (0.0, 0.3)
    nucleoli: Range = (0, 0)
    cyto: str = "cyto_neutrophil"
    cyto_edge: str = ""
    hue: str = "pink"
    granules: tuple[Granules, ...] = ()
    vacuoles: Range = (0, 0)
    hof_p: float = 0.0
    projections: bool = False
    irregular: float = 0.03
    auer: tuple[float, int, int, str] = (0.0, 0, 0, "short")
    lobes: Range = (3, 4)
    special: str = ""


NEUT_GRAN = Granules("neutrophilic", "gran_neutrophil", (0.45, 0.7), (0.12, 0.2))
AZUR_FEW = Granules("azurophilic", "gran_azurophil", (0.02, 0.08), (0.15, 0.25))

SPECS: dict[str, CellSpec] = {
    # ---- the 18 MLL23 classes
    "basophil": CellSpec(
        diameter=(10, 14),
        nuc_frac=(0.5, 0.62),
        shapes=(("lobed", 0.4), ("bilobed", 0.4), ("kidney", 0.2)),
        lobes=(2, 3),
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(
            Granules("basophilic", "gran_basophil", (0.55, 0.85), (0.15, 0.5), covers_nucleus=True),
        ),
    ),
    "eosinophil": CellSpec(
        diameter=(12.5, 17),
        nuc_frac=(0.58, 0.7),
        shapes=(("bilobed", 0.85), ("lobed", 0.15)),
        lobes=(3, 3),
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(Granules("eosinophilic", "gran_eosinophil", (0.9, 1.0), (0.3, 0.42)),),
    ),
    "hairy_cell": CellSpec(
        diameter=(11, 17),
        nuc_frac=(0.5, 0.62),
        shapes=(("round", 0.5), ("kidney", 0.5)),
        nuc_colour="nucleus_mid",
        chromatin="fine",
        eccentric=(0.0, 0.25),
        cyto="cyto_mono",
        hue="grey",
        projections=True,
    ),
    "lymphocyte": CellSpec(
        diameter=(7, 9.5),
        nuc_frac=(0.82, 0.9),
        eccentric=(0.0, 0.4),
        cyto="cyto_lymph",
        cyto_edge="cyto_lymph_edge",
        hue="blue",
    ),
    "lymphocyte_large_granular": CellSpec(
        diameter=(12, 15.5),
        nuc_frac=(0.5, 0.6),
        shapes=(("round", 0.6), ("kidney", 0.4)),
        eccentric=(0.2, 0.5),
        cyto="cyto_lymph",
        hue="blue",
        granules=(Granules("azurophilic", "gran_azurophil", (0.04, 0.1), (0.2, 0.32)),),
    ),
    "lymphocyte_neoplastic": CellSpec(
        diameter=(7, 9), nuc_frac=(0.86, 0.93), eccentric=(0.0, 0.3), cyto="cyto_lymph", hue="blue"
    ),
    "lymphocyte_reactive": CellSpec(
        diameter=(13, 20),
        nuc_frac=(0.42, 0.58),
        shapes=(("round", 0.6), ("kidney", 0.4)),
        nuc_colour="nucleus_mid",
        chromatin="fine",
        eccentric=(0.1, 0.5),
        cyto="cyto_lymph",
        cyto_edge="cyto_lymph_edge",
        hue="blue",
        irregular=0.09,
    ),
    "metamyelocyte": CellSpec(
        diameter=(10, 14),
        nuc_frac=(0.5, 0.6),
        shapes=(("kidney", 1.0),),
        eccentric=(0.0, 0.3),
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(NEUT_GRAN,),
    ),
    "monocyte": CellSpec(
        diameter=(13, 19),
        nuc_frac=(0.55, 0.66),
        shapes=(("kidney", 0.6), ("lobed", 0.15), ("band", 0.25)),
        lobes=(2, 3),
        nuc_colour="nucleus_mid",
        chromatin="fine",
        eccentric=(0.0, 0.35),
        cyto="cyto_mono",
        hue="grey",
        granules=(Granules("azurophilic", "gran_azurophil", (0.08, 0.2), (0.08, 0.14)),),
        vacuoles=(0, 4),
        irregular=0.08,
    ),
    "myeloblast": CellSpec(
        diameter=(12, 18),
        nuc_frac=(0.75, 0.86),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.0, 0.4),
        nucleoli=(2, 4),
        cyto="cyto_blast",
        hue="blue",
        granules=(AZUR_FEW,),
        auer=(0.06, 1, 1, "short"),
    ),
    "myelocyte": CellSpec(
        diameter=(11, 16),
        nuc_frac=(0.55, 0.66),
        eccentric=(0.3, 0.6),
        nuc_colour="nucleus_mid",
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(NEUT_GRAN, Granules("azurophilic", "gran_azurophil", (0.03, 0.1), (0.15, 0.25))),
    ),
    "neutrophil_band": CellSpec(
        diameter=(10, 12.5),
        nuc_frac=(0.6, 0.72),
        shapes=(("band", 1.0),),
        eccentric=(0.0, 0.15),
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(NEUT_GRAN,),
    ),
    "neutrophil_segmented": CellSpec(
        diameter=(10, 12.5),
        nuc_frac=(0.62, 0.74),
        shapes=(("lobed", 1.0),),
        lobes=(3, 5),
        eccentric=(0.0, 0.15),
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(NEUT_GRAN,),
    ),
    "normoblast": CellSpec(
        diameter=(8, 11),
        nuc_frac=(0.45, 0.6),
        eccentric=(0.2, 0.7),
        cyto="cyto_normoblast",
        hue="pink",
    ),
    "plasma_cell": CellSpec(
        diameter=(9, 15),
        nuc_frac=(0.45, 0.56),
        eccentric=(0.65, 0.9),
        cyto="cyto_plasma",
        cyto_edge="cyto_plasma_edge",
        hue="deep_blue",
        hof_p=0.9,
    ),
    "promyelocyte": CellSpec(
        diameter=(15, 21),
        nuc_frac=(0.55, 0.66),
        shapes=(("round", 0.7), ("kidney", 0.3)),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.3, 0.6),
        nucleoli=(1, 3),
        cyto="cyto_blast",
        hue="blue",
        hof_p=0.6,
        granules=(Granules("azurophilic", "gran_azurophil", (0.35, 0.55), (0.18, 0.32)),),
    ),
    "promyelocyte_atypical": CellSpec(
        diameter=(15, 21),
        nuc_frac=(0.6, 0.7),
        shapes=(("bilobed", 0.6), ("kidney", 0.4)),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.0, 0.3),
        nucleoli=(0, 2),
        cyto="cyto_blast",
        hue="blue",
        granules=(
            Granules(
                "azurophilic", "gran_azurophil", (0.45, 0.7), (0.2, 0.34), covers_nucleus=True
            ),
        ),
        auer=(0.35, 1, 2, "short"),
    ),
    "smudge_cell": CellSpec(diameter=(10, 18), special="smudge"),
    # ---- AML hallmark cells and the extra classes of Acevedo / Matek19 / BMC
    "faggot_cell": CellSpec(
        diameter=(15, 21),
        nuc_frac=(0.6, 0.7),
        shapes=(("bilobed", 0.6), ("kidney", 0.4)),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.0, 0.3),
        nucleoli=(0, 2),
        cyto="cyto_blast",
        hue="blue",
        granules=(Granules("azurophilic", "gran_azurophil", (0.2, 0.5), (0.2, 0.32)),),
        auer=(1.0, 1, 2, "bundle"),
    ),
    "blast_cup": CellSpec(
        diameter=(13, 18),
        nuc_frac=(0.72, 0.82),
        shapes=(("cup", 1.0),),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.0, 0.25),
        nucleoli=(1, 3),
        cyto="cyto_blast",
        hue="blue",
        granules=(AZUR_FEW,),
    ),
    "blast_auer_long": CellSpec(
        diameter=(15, 20),
        nuc_frac=(0.58, 0.7),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.25, 0.5),
        nucleoli=(1, 3),
        cyto="cyto_plasma",
        hue="deep_blue",
        hof_p=0.85,
        granules=(Granules("azurophilic", "gran_azurophil", (0.05, 0.15), (0.18, 0.28)),),
        auer=(1.0, 1, 1, "long"),
    ),
    "eosinophil_abnormal": CellSpec(
        diameter=(13, 17),
        nuc_frac=(0.55, 0.66),
        shapes=(("bilobed", 0.5), ("kidney", 0.3), ("round", 0.2)),
        nuc_colour="nucleus_mid",
        cyto="cyto_neutrophil",
        hue="pink",
        granules=(
            Granules("eosinophilic", "gran_eosinophil", (0.45, 0.65), (0.28, 0.42)),
            Granules("abnormal_eosinophil", "gran_abnormal_eos", (0.25, 0.45), (0.35, 0.55)),
        ),
    ),
    "monoblast": CellSpec(
        diameter=(14, 20),
        nuc_frac=(0.7, 0.8),
        shapes=(("round", 0.6), ("kidney", 0.4)),
        nuc_colour="nucleus_light",
        chromatin="fine",
        eccentric=(0.0, 0.3),
        nucleoli=(1, 3),
        cyto="cyto_mono",
        hue="grey",
        vacuoles=(0, 3),
        irregular=0.06,
    ),
    "neutrophil_dysplastic": CellSpec(
        diameter=(10, 13),
        nuc_frac=(0.6, 0.72),
        shapes=(("bilobed", 0.5), ("lobed", 0.5)),
        lobes=(2, 3),
        cyto="cyto_pale",
        hue="pink",
        granules=(Granules("neutrophilic", "gran_neutrophil", (0.02, 0.08), (0.12, 0.2)),),
        auer=(0.15, 1, 1, "long"),
    ),
    "lymphocyte_immature": CellSpec(
        diameter=(9, 13),
        nuc_frac=(0.8, 0.88),
        nuc_colour="nucleus_blast",
        chromatin="fine",
        eccentric=(0.0, 0.3),
        nucleoli=(1, 2),
        cyto="cyto_lymph",
        hue="blue",
    ),
    "proerythroblast": CellSpec(
        diameter=(14, 19),
        nuc_frac=(0.74, 0.84),
        nuc_colour="nucleus_mid",
        chromatin="fine",
        eccentric=(0.0, 0.25),
        nucleoli=(1, 2),
        cyto="cyto_plasma",
        cyto_edge="cyto_plasma_edge",
        hue="deep_blue",
    ),
    "not_identifiable": CellSpec(
        diameter=(9, 18),
        nuc_frac=(0.5, 0.8),
        shapes=(("round", 0.5), ("kidney", 0.5)),
        nuc_colour="nucleus_light",
        chromatin="fine",
        eccentric=(0.0, 0.5),
        cyto="cyto_pale",
        hue="grey",
        irregular=0.15,
    ),
    "other": CellSpec(
        diameter=(14, 24),
        nuc_frac=(0.35, 0.55),
        shapes=(("round", 0.5), ("lobed", 0.5)),
        lobes=(2, 4),
        nuc_colour="nucleus_mid",
        eccentric=(0.0, 0.5),
        cyto="cyto_mono",
        hue="grey",
        granules=(Granules("basophilic", "gran_basophil", (0.15, 0.3), (0.12, 0.2)),),
        vacuoles=(0, 2),
        irregular=0.06,
    ),
    "platelet": CellSpec(diameter=(2, 3), special="platelets"),
    "artefact": CellSpec(diameter=(6, 14), special="artefact"),
}

#: every renderable cell type
CELL_TYPES: tuple[str, ...] = tuple(SPECS)

#: cytoplasm hue concepts
HUES: tuple[str, ...] = ("pink", "blue", "grey", "deep_blue")
