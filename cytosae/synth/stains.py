"""Stain / scanner domains and their colour tables.

Four domains stand for the four kinds of real data (see ``shared/reference/morphology.md``):

* ``metafer``      Pappenheim stain, Metafer scanner (MLL23, AML Hehr); measured colours.
* ``cellavision``  May-Gruenwald-Giemsa, CellaVision DM96 (Acevedo): warmer, orange eosinophil granules.
* ``precipoint``   Pappenheim, PreciPoint M8 at 100x oil (Matek19): pinker red cells, slightly darker.
* ``marrow``       bone-marrow smears (BMC): denser, more red cells and debris, deeper purple.

Every image draws its own stain jitter (:func:`jittered_palette`), so no two images share colours.
"""

from __future__ import annotations

import numpy as np

DOMAINS: tuple[str, ...] = ("metafer", "cellavision", "precipoint", "marrow")

#: dataset name -> stain domain
DATASET_DOMAIN: dict[str, str] = {
    "mll23": "metafer",
    "hehr": "metafer",
    "acevedo": "cellavision",
    "matek19": "precipoint",
    "bmc": "marrow",
}

RGB = tuple[int, int, int]

_METAFER: dict[str, RGB] = {
    "background": (229, 227, 232),
    "rbc_body": (212, 188, 210),
    "rbc_pallor": (218, 204, 219),
    "nucleus_dense": (96, 36, 113),
    "nucleus_mid": (112, 58, 135),
    "nucleus_blast": (130, 80, 150),
    "nucleus_light": (150, 105, 170),
    "nucleolus": (160, 130, 175),
    "cyto_neutrophil": (215, 190, 215),
    "cyto_lymph": (178, 168, 212),
    "cyto_lymph_edge": (140, 120, 190),
    "cyto_mono": (190, 172, 205),
    "cyto_blast": (155, 135, 192),
    "cyto_plasma": (112, 92, 168),
    "cyto_plasma_edge": (95, 72, 150),
    "cyto_normoblast": (200, 175, 205),
    "cyto_pale": (205, 195, 218),
    "gran_neutrophil": (180, 140, 190),
    "gran_eosinophil": (146, 60, 134),
    "gran_abnormal_eos": (78, 34, 102),
    "gran_basophil": (58, 20, 80),
    "gran_azurophil": (140, 40, 120),
    "auer": (150, 45, 125),
    "platelet_centre": (120, 70, 150),
    "platelet_rim": (205, 195, 225),
    "smudge": (178, 150, 198),
    "smudge_streak": (128, 88, 158),
    "vacuole": (232, 228, 238),
    "debris": (130, 85, 150),
}

_CELLAVISION: dict[str, RGB] = {
    "background": (238, 232, 222),
    "rbc_body": (228, 170, 165),
    "rbc_pallor": (240, 205, 200),
    "nucleus_dense": (85, 50, 125),
    "nucleus_mid": (108, 70, 142),
    "nucleus_blast": (140, 95, 165),
    "nucleus_light": (158, 118, 180),
    "nucleolus": (175, 165, 205),
    "cyto_neutrophil": (232, 205, 215),
    "cyto_lymph": (165, 190, 230),
    "cyto_lymph_edge": (120, 150, 215),
    "cyto_mono": (190, 185, 210),
    "cyto_blast": (140, 155, 205),
    "cyto_plasma": (95, 110, 175),
    "cyto_plasma_edge": (80, 92, 160),
    "cyto_normoblast": (215, 175, 190),
    "cyto_pale": (215, 210, 225),
    "gran_neutrophil": (200, 150, 185),
    "gran_eosinophil": (225, 125, 80),
    "gran_abnormal_eos": (110, 50, 120),
    "gran_basophil": (55, 25, 85),
    "gran_azurophil": (150, 40, 110),
    "auer": (175, 55, 120),
    "platelet_centre": (120, 70, 150),
    "platelet_rim": (205, 195, 225),
    "smudge": (185, 160, 205),
    "smudge_streak": (130, 95, 165),
    "vacuole": (242, 238, 235),
    "debris": (135, 90, 150),
}


def _shift(
    table: dict[str, RGB], delta: dict[str, tuple[int, int, int]], default: tuple[int, int, int]
) -> dict[str, RGB]:
    out: dict[str, RGB] = {}
    for k, (r, g, b) in table.items():
        dr, dg, db = delta.get(k, default)
        out[k] = (
            int(np.clip(r + dr, 0, 255)),
            int(np.clip(g + dg, 0, 255)),
            int(np.clip(b + db, 0, 255)),
        )
    return out


_PRECIPOINT = _shift(
    _METAFER,
    {
        "background": (6, 0, -2),
        "rbc_body": (14, -10, -12),
        "rbc_pallor": (14, -4, -8),
        "nucleus_dense": (8, 6, 14),
        "gran_eosinophil": (40, 10, -10),
    },
    (6, -4, 0),
)

_MARROW = _shift(
    _METAFER,
    {
        "background": (-12, -26, -20),
        "rbc_body": (-8, -34, -30),
        "rbc_pallor": (-4, -24, -20),
        "nucleus_dense": (-14, -8, 0),
        "cyto_neutrophil": (-6, -16, -10),
    },
    (-8, -12, -6),
)

PALETTES: dict[str, dict[str, RGB]] = {
    "metafer": _METAFER,
    "cellavision": _CELLAVISION,
    "precipoint": _PRECIPOINT,
    "marrow": _MARROW,
}

#: per domain: (per-colour jitter sd, global per-channel shift sd, red cells per crop (lo, hi), debris per crop (lo, hi))
DOMAIN_STYLE: dict[str, dict[str, object]] = {
    "metafer": {"jitter": 6.0, "shift": 3.0, "rbc": (2, 7), "debris": (0, 1), "noise": 2.5},
    "cellavision": {"jitter": 6.0, "shift": 3.0, "rbc": (3, 8), "debris": (0, 1), "noise": 2.0},
    "precipoint": {"jitter": 7.0, "shift": 4.0, "rbc": (2, 7), "debris": (0, 1), "noise": 3.0},
    "marrow": {"jitter": 8.0, "shift": 5.0, "rbc": (7, 14), "debris": (2, 6), "noise": 3.5},
}


def jittered_palette(domain: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The domain's colour table with per-image stain jitter.

    Every colour moves by its own N(0, jitter) per channel plus one global shift per channel
    (scanner white balance) shared by all colours of the image.

    Args:
        domain: one of :data:`DOMAINS`.
        rng: the image's generator.

    Returns:
        colour name -> float32 RGB array (3,), clipped to [0, 255].
    """
    if domain not in PALETTES:
        raise ValueError(f"unknown stain domain {domain!r}; known: {DOMAINS}")
    style = DOMAIN_STYLE[domain]
    table = PALETTES[domain]
    names = sorted(table)
    base = np.array([table[k] for k in names], dtype=np.float32)
    shift = rng.normal(0.0, float(style["shift"]), size=3).astype(np.float32)  # type: ignore[arg-type]
    jit = rng.normal(0.0, float(style["jitter"]), size=base.shape).astype(np.float32)  # type: ignore[arg-type]
    bg = names.index("background")
    jit[bg] *= 0.3
    cols = np.clip(base + jit + shift, 0, 255)
    return {k: cols[i] for i, k in enumerate(names)}
