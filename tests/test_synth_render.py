"""Renderer and ground truth of the synthetic world: masks are exactly the painted pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cytosae.synth import CELL_TYPES, CONCEPTS, DOMAINS, render_cell, render_scene
from cytosae.synth.groundtruth import (
    masks_from_owner,
    patch_fractions_from_masks,
    resize_operator,
    scene_patch_fractions,
)

FAR = (0.0, 255.0, 0.0)  # no stain colour is near pure green


@pytest.mark.parametrize("k", range(len(CELL_TYPES)))
def test_masks_are_exactly_the_pixels_painted_by_the_element(k: int) -> None:
    cell_type = CELL_TYPES[k]
    domain = DOMAINS[k % len(DOMAINS)]
    scene = render_scene(cell_type, domain, (72, 64), np.random.default_rng(k))
    rgb = scene.paint()
    masks = scene.masks()
    assert rgb.shape == (72, 64, 3) and rgb.dtype == np.uint8
    assert masks.shape == (len(CONCEPTS), 72, 64)
    present = [c for c in CONCEPTS if masks[CONCEPTS.index(c)].any()]
    assert "background" in present or "red_cell" in present
    for c in present:
        changed = (scene.paint(recolor={c: FAR}) != rgb).any(axis=2)
        np.testing.assert_array_equal(changed, masks[CONCEPTS.index(c)], err_msg=f"{cell_type}/{c}")
    # concepts of mutually exclusive elements partition the image
    excl = [
        CONCEPTS.index(c)
        for c in (
            "background",
            "red_cell",
            "platelet",
            "nucleus",
            "cytoplasm_pink",
            "cytoplasm_blue",
            "cytoplasm_grey",
            "cytoplasm_deep_blue",
            "granule_neutrophilic",
            "granule_eosinophilic",
            "granule_basophilic",
            "granule_azurophilic",
            "granule_abnormal_eosinophil",
            "auer_rod",
            "vacuole",
            "hof",
            "smudge",
            "debris",
        )
    ]
    # (projections are tagged with their cytoplasm hue too, so they are counted once)
    assert (masks[excl].sum(axis=0) == 1).all(), cell_type


@pytest.mark.parametrize(
    ("cell_type", "concept"),
    [
        ("eosinophil", "granule_eosinophilic"),
        ("basophil", "granule_basophilic"),
        ("faggot_cell", "faggot_bundle"),
        ("blast_cup", "nucleus_cup"),
        ("hairy_cell", "projections"),
        ("blast_auer_long", "auer_rod"),
        ("neutrophil_band", "nucleus_band"),
        ("neutrophil_segmented", "nucleus_lobed"),
        ("smudge_cell", "smudge"),
        ("platelet", "platelet"),
        ("eosinophil_abnormal", "granule_abnormal_eosinophil"),
        ("myeloblast", "nucleolus"),
        ("artefact", "debris"),
        ("lymphocyte", "chromatin_coarse"),
        ("myeloblast", "chromatin_fine"),
        ("neutrophil_segmented", "granule_neutrophilic"),
        ("promyelocyte", "granule_azurophilic"),
    ],
)
def test_hallmark_concepts_are_drawn(cell_type: str, concept: str) -> None:
    _, masks = render_cell(cell_type, "metafer", 96, np.random.default_rng(5))
    assert masks[CONCEPTS.index(concept)].sum() > 3


def test_hof_and_vacuoles_appear_at_their_rates() -> None:
    hof = [
        render_cell("plasma_cell", "metafer", 64, np.random.default_rng(i))[1][
            CONCEPTS.index("hof")
        ].any()
        for i in range(10)
    ]
    assert sum(hof) >= 6  # hof probability 0.9
    vac = [
        render_cell("monocyte", "metafer", 64, np.random.default_rng(i))[1][
            CONCEPTS.index("vacuole")
        ].any()
        for i in range(10)
    ]
    assert 1 <= sum(vac) <= 10


def test_same_generator_same_pixels_other_seed_differs() -> None:
    a = render_cell("monocyte", "cellavision", 80, np.random.default_rng(3))
    b = render_cell("monocyte", "cellavision", 80, np.random.default_rng(3))
    c = render_cell("monocyte", "cellavision", 80, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any()


def test_domains_differ_in_colour() -> None:
    # Acevedo-like MGG eosinophil granules are orange (R >> B); Metafer ones magenta-purple (B > G)
    means = {}
    for dom in ("cellavision", "metafer"):
        rgb, masks = render_cell("eosinophil", dom, 96, np.random.default_rng(1))
        g = masks[CONCEPTS.index("granule_eosinophilic")]
        means[dom] = rgb[g].astype(float).mean(axis=0)
    assert means["cellavision"][0] - means["cellavision"][2] > 80
    assert means["metafer"][2] > means["metafer"][1]


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="cell type"):
        render_cell("macrophage", "metafer", 32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="stain domain"):
        render_cell("lymphocyte", "giemsa", 32, np.random.default_rng(0))


def _pil_patch_fractions(masks: np.ndarray) -> np.ndarray:
    out = []
    for m in masks.astype(np.float32):
        r = np.asarray(Image.fromarray(m, mode="F").resize((224, 224), Image.Resampling.BILINEAR))
        out.append(r.reshape(16, 14, 16, 14).mean(axis=(1, 3)))
    return np.stack(out)


def test_patch_fractions_hand_made_cases() -> None:
    # at 224 px the resize is the identity: a 7 x 14 rectangle inside patch (2, 3) fills half of it
    m = np.zeros((1, 224, 224), bool)
    m[0, 28:35, 42:56] = True
    fr = patch_fractions_from_masks(m)
    expected = np.zeros((1, 16, 16), np.float32)
    expected[0, 2, 3] = 0.5
    np.testing.assert_allclose(fr, expected, atol=1e-6)
    # a full mask is 1 everywhere at any size (bilinear weights sum to one)
    np.testing.assert_allclose(
        patch_fractions_from_masks(np.ones((1, 50, 37), bool)), 1.0, atol=1e-5
    )
    # 448 px: a block of 28 x 28 input pixels well inside a large region maps to fraction 1
    m = np.zeros((1, 448, 448), bool)
    m[0, 56:168, 56:168] = (
        True  # output patches rows/cols 2..5 (exactly), inner ones untouched by the blur
    )
    fr = patch_fractions_from_masks(m)[0]
    np.testing.assert_allclose(fr[3:5, 3:5], 1.0, atol=1e-6)
    assert fr[0, 0] == 0.0 and fr[10, 10] == 0.0
    np.testing.assert_allclose(fr.sum() * 196, 112 * 112 / 4, rtol=1e-4)  # area is preserved


def test_patch_fractions_equal_block_means_of_pil_resized_masks() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 50, 37)) > 0.6
    np.testing.assert_allclose(
        patch_fractions_from_masks(masks), _pil_patch_fractions(masks), atol=1e-5
    )
    scene = render_scene("eosinophil", "marrow", (81, 77), np.random.default_rng(2))
    via_owner = scene_patch_fractions(scene.owner, scene.tagbits)
    np.testing.assert_allclose(via_owner, _pil_patch_fractions(scene.masks()), atol=1e-5)
    np.testing.assert_array_equal(masks_from_owner(scene.owner, scene.tagbits), scene.masks())
    R = resize_operator(50)
    assert R.shape == (224, 50)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-5)
