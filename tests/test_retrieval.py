"""Patch retrieval, reference images and segmentation maps (Fig. 3)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cytosae.analysis.differential import differential_reference_images
from cytosae.analysis.retrieval import (
    highlight_patch,
    load_image,
    patch_cell,
    patch_latents,
    patch_to_token,
    query_patch,
    reference_images,
    reference_table,
    retrieval_latents,
    segmentation_map,
)


class FakeSAE(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.eye(d))
        self.cfg = SimpleNamespace(d_sae=d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W)


def test_indexing_convention() -> None:
    assert patch_to_token(0) == 1 and patch_to_token(57) == 58 and patch_to_token(255) == 256
    assert patch_cell(57) == (3, 9)
    with pytest.raises(ValueError, match="256"):
        patch_to_token(256)


def test_highlighted_tile_is_the_token_read() -> None:
    """A token that is one-hot at patch 57 lights exactly the tile highlight_patch draws."""
    T, S = 257, 4
    tokens = torch.zeros(T, S)
    tokens[patch_to_token(57), 2] = 3.0
    df = patch_latents(FakeSAE(S), tokens, 57, top_n=1)
    assert list(df["latent"]) == [2] and df["activation"].iloc[0] == 3.0
    assert (
        patch_latents(FakeSAE(S), tokens, 56).empty and patch_latents(FakeSAE(S), tokens, 58).empty
    )
    acts_T = tokens[:, 2].numpy()
    img = np.full((224, 224, 3), 200, dtype=np.uint8)
    seg = segmentation_map(acts_T, img, mode="binary", dim=0.0)
    np.testing.assert_array_equal(seg[..., 0] > 0, highlight_patch((224, 224), 57))
    assert highlight_patch((224, 224), 57).sum() == 14 * 14
    assert highlight_patch((224, 224), 57)[3 * 14, 9 * 14]


def test_patch_latents_filter_and_top() -> None:
    tokens = torch.zeros(5, 4)
    tokens[1 + 3] = torch.tensor([0.5, 2.0, 1.0, 0.0])
    stats = SimpleNamespace(
        mean_acts=np.array([0.01, 0.5, np.nan, 0.0]), sparsity=np.array([0.1, 0.2, 1.0, 0.0])
    )
    df = patch_latents(FakeSAE(4), tokens, 3, stats=stats, top_n=1)
    assert list(df["latent"]) == [1, 2, 0]
    assert list(df["dropped"]) == [True, False, False] and list(df["top"]) == [False, True, False]
    df2 = patch_latents(
        FakeSAE(4), tokens, 3, stats=stats, max_mean_act=None, max_sparsity=0.99, top_n=5
    )
    assert list(df2["dropped"]) == [False, True, False] and list(df2["top"]) == [True, False, True]
    stats.patch_frequency = np.array([0.05, 0.01, 0.6, 0.0])
    df3 = patch_latents(
        FakeSAE(4), tokens, 3, stats=stats, max_mean_act=None, max_patch_frequency=0.5, top_n=1
    )
    assert list(df3["latent"]) == [1, 2, 0] and list(df3["dropped"]) == [False, True, False]
    assert list(df3["top"]) == [True, False, False]


def test_segmentation_modes() -> None:
    img = np.full((4, 6, 3), 100, dtype=np.uint8)
    acts = np.array([[2.0, 0.0], [1.0, 0.0]])
    sc = segmentation_map(acts, img, mode="scaled")
    np.testing.assert_array_equal(sc[:, :, 0], [[100] * 3 + [0] * 3] * 2 + [[50] * 3 + [0] * 3] * 2)
    bi = segmentation_map(acts, Image.fromarray(img), mode="binary", dim=0.25)
    np.testing.assert_array_equal(bi[:, :, 1], [[100] * 3 + [25] * 3] * 4)
    assert segmentation_map(np.zeros(5), img).max() == 0  # 5 = CLS + 2x2; all zero -> black
    with pytest.raises(ValueError, match="mode"):
        segmentation_map(acts, img, mode="x")
    with pytest.raises(ValueError, match="square grid"):
        segmentation_map(np.zeros(7), img)


def test_reference_images_and_load(tmp_path) -> None:
    stats = SimpleNamespace(
        top_indices=np.array([[2, 0, -1]]),
        top_values=np.array([[0.9, 0.4, 0.0]]),
        top_label_indices=np.array([[1, 0, -1]]),
        label_names=("a", "b"),
    )
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.new("RGBA", (8, 8), (i, 0, 0, 255)).save(p)
        paths.append(str(p))
    man = pd.DataFrame({"path": paths, "dataset": ["x", "y", "z"]})
    ref = reference_images(stats, 0, manifest=man)
    assert list(ref["image_index"]) == [2, 0] and list(ref["label"]) == ["b", "a"]
    assert list(ref["dataset"]) == ["z", "x"] and len(reference_images(stats, 0, n=1)) == 1
    assert load_image(ref["path"][0]).mode == "RGB"
    with pytest.raises(ValueError, match="nope"):
        load_image(tmp_path / "nope.png")
    diff = pd.DataFrame({"direction": ["d1>d2"], "latent": [0]})
    dr = differential_reference_images(diff, stats, n_images=5)
    assert list(dr["image_index"]) == [2, 0] and (dr["latent"] == 0).all()


def test_reference_table_is_latent_major_and_keyed_by_source() -> None:
    stats = SimpleNamespace(
        top_indices=np.array([[1, 0], [-1, -1], [0, -1]]),
        top_values=np.array([[0.9, 0.4], [0.0, 0.0], [2.0, 0.0]]),
        top_label_indices=np.array([[0, 0], [-1, -1], [0, -1]]),
        label_names=("a",),
    )
    man = pd.DataFrame({"path": ["p0", "p1"], "dataset": ["from_manifest"] * 2})
    t = reference_table({"x": (stats, man), "y": (stats, man)}, [2, 1, 0], n=1)
    assert list(t.columns[:2]) == ["latent", "dataset"] and set(t["dataset"]) == {"x", "y"}
    assert list(zip(t["latent"], t["dataset"], t["path"])) == [
        (2, "x", "p0"),
        (2, "y", "p0"),
        (0, "x", "p1"),
        (0, "y", "p1"),
    ]  # latent 1 never fired: no rows
    assert len(reference_table({"x": (stats, man)}, [1])) == 0


def test_query_patch_from_patch_fractions_or_the_paper_example() -> None:
    labels = pd.Series(["lymphocyte", "eosinophil", "eosinophil", "monocyte"])
    fractions = np.zeros((4, 16, 16))
    fractions[0, 0, 0] = 1.0  # not an eosinophil: ignored
    fractions[1, 2, 3] = 0.4
    fractions[2, 5, 6] = 0.7
    assert query_patch(labels, fractions) == (2, 5 * 16 + 6)
    assert query_patch(labels, fractions.reshape(4, 256)) == (2, 86)
    assert query_patch(labels) == (1, 57)  # without ground truth: patch 57 of the first one
    with pytest.raises(ValueError, match="basophil"):
        query_patch(labels, cell_type="basophil")


def test_retrieval_latents_falls_back_to_the_most_active() -> None:
    hits = pd.DataFrame(
        {"latent": [4, 2, 7], "activation": [3.0, 2.0, 1.0], "dropped": [True, False, False]}
    )
    latents, fallback = retrieval_latents(hits.assign(top=[False, True, True]), 2)
    assert list(latents) == [2, 7] and not fallback
    latents, fallback = retrieval_latents(hits.assign(top=False), 2)
    assert list(latents) == [4, 2] and fallback
