"""The authors' published statistics: loader on synthetic files, published figures on the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cytosae.analysis.thresholds import concept_counts
from cytosae.interop.official_stats import load_official_stats


def test_loader_on_written_files(tmp_path: Path) -> None:
    S = 5
    torch.save(torch.tensor([0.1, 0.0, 1.0, 0.5, 0.2]), tmp_path / "sae_sparsity.pt")
    torch.save(torch.tensor([0.01, float("nan"), 2.0, 1e-4, 0.3]), tmp_path / "sae_mean_acts.pt")
    torch.save(
        torch.arange(S * 2, dtype=torch.float32).reshape(S, 2),
        tmp_path / "max_activating_image_indices.pt",
    )
    torch.save(torch.tensor([[2.0, 1.0]] * S), tmp_path / "max_activating_image_values.pt")
    torch.save(torch.tensor([[0, 1]] * S), tmp_path / "max_activating_image_label_indices.pt")
    st = load_official_stats(tmp_path, dataset="x", label_names=("a", "b"))
    assert st.top_indices.dtype == np.int64 and st.top_indices[4, 1] == 9
    np.testing.assert_allclose(
        st.top_entropy, -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)), rtol=1e-6
    )
    np.testing.assert_array_equal(st.top_label_indices, [[0, 1]] * S)
    from cytosae.analysis.retrieval import reference_images

    ref = reference_images(st, 2)
    assert list(ref["image_index"]) == [4, 5] and list(ref["label"]) == ["a", "b"]
    assert list(concept_counts(st.mean_acts, [-3, -1])["n_concepts"]) == [3, 2]
    (tmp_path / "sae_sparsity.pt").unlink()
    with pytest.raises(FileNotFoundError, match="sae_sparsity"):
        load_official_stats(tmp_path)


@pytest.fixture(scope="module")
def official(shared_reference: Path):
    """Loader of the authors' statistics in ``../shared/reference`` (a missing file fails)."""
    return lambda ds: load_official_stats(shared_reference / "cytosae-official-stats" / ds)


def test_published_mll23_figures(official) -> None:
    st = official("mll23")
    assert st.d_sae == 49152
    assert list(concept_counts(st.mean_acts)["n_concepts"]) == [
        49152,
        49152,
        20803,
        3801,
        3641,
        248,
        1,
    ]
    assert float(np.median(st.sparsity)) == pytest.approx(0.0024, abs=5e-5)
    assert int((st.sparsity == 1).sum()) == 7
    assert int((np.nan_to_num(st.mean_acts) > 0.1).sum()) == 248


@pytest.mark.parametrize(
    ("ds", "n"), [("acevedo", 3816), ("matek", 4116), ("bmc", 4025), ("hehr", 3860)]
)
def test_published_counts_at_minus3(official, ds: str, n: int) -> None:
    st = official(ds)
    assert int(concept_counts(st.mean_acts, [-3])["n_concepts"][0]) == n
    assert st.top_entropy.shape == (49152,)
