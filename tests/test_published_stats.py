"""The authors' published statistics shipped with cytosae: the paper's counts, in every clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytosae.analysis.thresholds import concept_counts
from cytosae.interop.published import PUBLISHED_DATASETS, published_stats


def test_published_mll23_figures_from_the_shipped_vectors() -> None:
    st = published_stats("mll23")
    assert st.d_sae == 49152 and st.meta["real_data"]
    counts = concept_counts(st.mean_acts, range(-6, 1))["n_concepts"].tolist()
    assert counts == [49152, 49152, 20803, 3801, 3641, 248, 1]
    assert float(np.median(st.sparsity)) == pytest.approx(0.0024, abs=5e-5)
    assert int((st.sparsity == 1).sum()) == 7
    assert int((np.nan_to_num(st.mean_acts) > 0.1).sum()) == 248


@pytest.mark.parametrize(
    ("ds", "n"), [("acevedo", 3816), ("matek19", 4116), ("bmc", 4025), ("hehr", 3860)]
)
def test_published_counts_at_minus3_from_the_shipped_vectors(ds: str, n: int) -> None:
    st = published_stats(ds)
    assert int(concept_counts(st.mean_acts, [-3])["n_concepts"][0]) == n
    e = st.top_entropy
    assert e.shape == (49152,) and np.all(e[np.isfinite(e)] >= -1)
    # NaN entropy (published for Acevedo and Matek19) only where the latent never fired
    assert np.all(np.isnan(st.mean_acts)[np.isnan(e)])


def test_unknown_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="no published statistics for 'matek'"):
        published_stats("matek")


def test_shipped_vectors_equal_the_original_files(shared_reference: Path) -> None:
    from cytosae.interop.official_stats import load_official_stats

    folder = {"matek19": "matek"}
    for ds in PUBLISHED_DATASETS:
        orig = load_official_stats(shared_reference / "cytosae-official-stats" / folder.get(ds, ds))
        ours = published_stats(ds)
        for name in ("sparsity", "mean_acts", "top_entropy"):
            np.testing.assert_array_equal(
                getattr(ours, name), getattr(orig, name), err_msg=f"{ds}.{name}"
            )
