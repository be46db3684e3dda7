"""Ground-truth concept recovery on a hand-made 2-image, 2x2-grid world."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cytosae.analysis.recovery import (
    align_patch_fractions,
    collect_patch_sample,
    concept_recovery,
    groundtruth_cell_types,
    recover_concepts,
)


class FakeSAE(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.eye(d))
        self.cfg = SimpleNamespace(d_sae=d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W)


class FakeStore:
    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens
        self.n_images, self.n_tokens = tokens.shape[:2]
        self.manifest = pd.DataFrame({"path": [f"/d/{i}.png" for i in range(self.n_images)]})

    def iter_images(self, b: int):
        for s in range(0, self.n_images, b):
            idx = np.arange(s, min(s + b, self.n_images))
            yield idx, self.tokens[idx]


def world() -> tuple[FakeStore, np.ndarray]:
    c0 = np.array([[1, 0, 0.6, 0.2], [0, 0.9, 0, 0]])
    c1 = np.array([[0, 1, 0, 0], [1, 0, 0, 0.5]])
    pf = np.stack([c0, c1], 1).reshape(2, 2, 2, 2).astype(np.float32)
    lat1 = np.array([[0, 1, 0, 0], [0.8, 0, 0, 0.1]])
    tokens = torch.zeros(2, 5, 3)
    tokens[:, 1:, 0] = torch.tensor(c0, dtype=torch.float32)
    tokens[:, 1:, 1] = torch.tensor(lat1, dtype=torch.float32)
    tokens[:, 1:, 2] = 0.3
    tokens[:, 0, :] = 5.0  # CLS must be ignored
    return FakeStore(tokens), pf


def test_recovery_hand_values() -> None:
    store, pf = world()
    res = concept_recovery(
        FakeSAE(3),
        store,
        pf,
        ["c0", "c1"],
        n_candidates=3,
        progress=False,
        batch_images=1,
        min_positive=1,
    )
    assert res.n_patches == 8
    pc = res.per_concept.set_index("concept")
    assert pc.loc["c0", "best_latent"] == 0 and pc.loc["c1", "best_latent"] == 1
    assert pc.loc["c0", "auroc"] == 1.0 and pc.loc["c1", "auroc"] == 1.0
    assert pc.loc["c0", "iou_at_zero"] == pytest.approx(0.75)  # the 0.2 patch fires but is not c0
    assert pc.loc["c0", "iou"] == 1.0 and pc.loc["c1", "iou"] == 1.0
    np.testing.assert_allclose(res.auroc.loc["c1", 0], 0.1)
    np.testing.assert_allclose(res.auroc.loc["c0", 1], 0.2)
    np.testing.assert_allclose(res.auroc[2], [0.5, 0.5])
    assert res.recovered_fraction == 1.0 and res.n_monosemantic == 2
    lat = res.latents.set_index("latent")
    assert bool(lat.loc[2, "monosemantic"]) is False and lat.loc[
        0, "second_auroc"
    ] == pytest.approx(0.1)
    # rare concepts (3 positive patches < min_positive) are reported but not counted
    rare = concept_recovery(
        FakeSAE(3), store, pf, ["c0", "c1"], n_candidates=3, progress=False, min_positive=4
    )
    assert not rare.per_concept["evaluated"].any() and rare.recovered_fraction == 0.0
    assert rare.per_concept["auroc"].tolist() == [1.0, 1.0]


def test_subsample_is_seeded_and_bounded() -> None:
    store, pf = world()
    A1, Y1 = collect_patch_sample(FakeSAE(3), store, pf, max_patches=4, seed=3, progress=False)
    A2, Y2 = collect_patch_sample(FakeSAE(3), store, pf, max_patches=4, seed=3, progress=False)
    assert (A1 != A2).nnz == 0 and (Y1 == Y2).all()
    assert 0 < A1.shape[0] < 8 and A1.shape[1] == 3
    with pytest.raises(ValueError, match="patch_fractions has 1 images"):
        collect_patch_sample(FakeSAE(3), store, pf[:1], progress=False)


def test_recover_concepts_monosemantic_definition() -> None:
    # latent 0 detects both concepts (polysemantic): best 1.0, second 1.0 -> not monosemantic
    Y = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=bool)
    A = np.array([[1.0], [2.0], [0.0], [0.0]])
    res = recover_concepts(A, Y, ["a", "b"], min_positive=2)
    assert res.recovered_fraction == 1.0 and res.n_monosemantic == 0
    with pytest.raises(ValueError, match="3 concept names"):
        recover_concepts(A, Y, ["a", "b", "c"])


def test_align_patch_fractions(tmp_path) -> None:
    gt = SimpleNamespace(
        index=pd.DataFrame({"relpath": ["b/1.png", "a/0.png"]}),
        patch_fractions=np.array([[[[1.0]]], [[[0.0]]]]),
    )
    man = pd.DataFrame({"path": [str(tmp_path / "a/0.png"), str(tmp_path / "b/1.png")]})
    out = align_patch_fractions(gt, tmp_path, man)
    np.testing.assert_array_equal(out.ravel(), [0.0, 1.0])
    man2 = pd.DataFrame({"path": [str(tmp_path / "c.png")]})
    with pytest.raises(ValueError, match=r"c.png"):
        align_patch_fractions(gt, tmp_path, man2)


def test_groundtruth_cell_types_by_resolved_path(tmp_path) -> None:
    gt = SimpleNamespace(
        root=tmp_path,
        index=pd.DataFrame({"relpath": ["b/1.png", "a/0.png"], "cell_type": ["blast", "eos"]}),
    )
    paths = [str(tmp_path / "a" / ".." / "a" / "0.png"), tmp_path / "b/1.png", "elsewhere.png"]
    assert groundtruth_cell_types(gt, paths) == ["eos", "blast", "?"]
