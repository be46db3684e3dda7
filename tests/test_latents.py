"""encode_pass / LatentStats against hand-computed values (3 images x 5 tokens x 4 latents)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cytosae.analysis.latents import LatentStats, encode_pass, label_entropy


class FakeSAE(torch.nn.Module):
    """encode = ReLU(x @ I): the tokens ARE the activations."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.eye(d))
        self.cfg = SimpleNamespace(d_sae=d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W)


class FakeStore:
    def __init__(self, tokens_NTD: torch.Tensor, manifest: pd.DataFrame) -> None:
        self.tokens = tokens_NTD
        self.manifest = manifest
        self.n_images, self.n_tokens = tokens_NTD.shape[:2]
        self.digest = "fake"

    def iter_images(self, batch_images: int):
        for s in range(0, self.n_images, batch_images):
            idx = np.arange(s, min(s + batch_images, self.n_images))
            yield idx, self.tokens[idx]

    def get(self, idx):
        return self.tokens[np.asarray(idx)]


def tiny() -> tuple[torch.Tensor, pd.DataFrame]:
    f = torch.zeros(3, 5, 4)
    f[0, 1, 0] = 1.0
    f[0, 0, 1] = 1.0
    f[0, 1:, 3] = torch.tensor([0.1, 0.1, 0.5, 0.3])
    f[1, 1, 0], f[1, 2, 0] = 2.0, 3.0
    f[1, 4, 3] = 0.5
    f[2, 0, 1] = 0.5
    f[2, 4, 3] = 1.25
    f[2, 2, 2] = -1.0  # negative pre-activation: ReLU makes it 0
    man = pd.DataFrame(
        {
            "image_id": ["i0", "i1", "i2"],
            "path": ["/x/0", "/x/1", "/x/2"],
            "dataset": ["mll23"] * 3,
            "label": ["a", "b", "a"],
            "patient": ["p0", "p1", "p0"],
            "disease": ["d0", "d1", "d0"],
            "split": ["all"] * 3,
        }
    )
    return f, man


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_encode_pass_hand_values(batch: int) -> None:
    f, man = tiny()
    st = encode_pass(
        FakeSAE(4), FakeStore(f, man), tau=0.2, top_k=2, batch_images=batch, progress=False
    )
    np.testing.assert_allclose(st.sparsity, [2 / 3, 2 / 3, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(st.mean_acts[[0, 1, 3]], [0.6, 0.15, 0.55 / 3], rtol=1e-6)
    assert np.isnan(st.mean_acts[2])
    np.testing.assert_allclose(st.patch_frequency, [3 / 12, 0, 0, 6 / 12], rtol=1e-6)
    np.testing.assert_allclose(st.patch_mean_acts[[0, 3]], [2.0, 2.75 / 6], rtol=1e-6)
    assert np.isnan(st.patch_mean_acts[1]) and np.isnan(st.patch_mean_acts[2])
    np.testing.assert_array_equal(st.top_indices, [[1, 0], [0, 2], [-1, -1], [2, 0]])
    np.testing.assert_allclose(
        st.top_values, [[1.0, 0.2], [0.2, 0.1], [0, 0], [0.25, 0.2]], rtol=1e-6
    )
    h0 = -(5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6))
    np.testing.assert_allclose(st.top_entropy, [h0, 0, -1, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(st.counts.toarray(), [[1, 0, 0, 2], [2, 0, 0, 1], [0, 0, 0, 1]])
    assert st.label_names == ("a", "b")
    np.testing.assert_array_equal(st.labels, [0, 1, 0])
    np.testing.assert_array_equal(st.top_label_indices, [[1, 0], [0, 0], [-1, -1], [0, 0]])
    assert st.n_images == 3 and st.dataset == "mll23" and st.d_sae == 4


def test_counts_include_cls_and_tau() -> None:
    f, man = tiny()
    st = encode_pass(FakeSAE(4), FakeStore(f, man), include_cls_in_counts=True, progress=False)
    np.testing.assert_array_equal(st.counts.toarray(), [[1, 1, 0, 2], [2, 0, 0, 1], [0, 1, 0, 1]])
    st0 = encode_pass(FakeSAE(4), FakeStore(f, man), tau=0.0, progress=False)
    np.testing.assert_array_equal(st0.counts.toarray(), [[1, 0, 0, 4], [2, 0, 0, 1], [0, 0, 0, 1]])
    # top_k larger than the dataset: padded with -1
    assert st.top_indices.shape == (4, 10) and (st.top_indices[:, 3:] == -1).all()
    assert (st.top_entropy == -1).all()


def test_save_load_roundtrip(tmp_path) -> None:
    f, man = tiny()
    st = encode_pass(FakeSAE(4), FakeStore(f, man), top_k=2, progress=False)
    st.save(tmp_path / "s")
    assert not any(p.suffix in (".pkl", ".pt") for p in (tmp_path / "s").iterdir())
    back = LatentStats.load(tmp_path / "s")
    for k in LatentStats._ARRAYS:
        np.testing.assert_array_equal(getattr(back, k), getattr(st, k))
    assert (back.counts != st.counts).nnz == 0
    assert back.label_names == st.label_names and back.meta == st.meta and back.n_images == 3
    with pytest.raises(ValueError, match="could not read"):
        LatentStats.load(tmp_path / "missing")


def test_random_matches_dense_reference() -> None:
    """A random store: the streaming pass equals a dense computation over everything at once."""
    g = torch.Generator().manual_seed(0)
    N, T, D = 11, 10, 6
    x = torch.randn(N, T, D, generator=g)
    man = pd.DataFrame({"label": [str(i % 3) for i in range(N)], "dataset": ["d"] * N})
    sae = FakeSAE(D)
    st = encode_pass(sae, FakeStore(x, man), top_k=3, batch_images=4, progress=False)
    f = torch.relu(x).numpy()
    v = f.mean(1)
    np.testing.assert_allclose(st.sparsity, (v > 0).mean(0), rtol=1e-6)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(
            st.mean_acts, np.where(v > 0, v, 0).sum(0) / (v > 0).sum(0), rtol=1e-5
        )
    np.testing.assert_array_equal(st.top_indices, np.argsort(-v, 0)[:3].T)
    np.testing.assert_array_equal(st.counts.toarray(), (f[:, 1:] > 0.2).sum(1))


def test_label_entropy_direct() -> None:
    v = np.array([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    lab = np.array([[0, 1, 1], [0, 1, 2]])
    h = label_entropy(v, lab, 3)
    assert h[0] == -1  # fewer than k positive
    np.testing.assert_allclose(h[1], math.log(3), rtol=1e-6)
