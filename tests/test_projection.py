"""Seeded UMAP maps reproduce exactly; the latent map carries the review-sampling clusters."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cytosae.analysis import projection, thresholds


@pytest.mark.slow  # numba compiles umap-learn's kernels on the first call (some seconds)
def test_umap_maps_are_deterministic_and_labelled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    a = projection.umap_coords(X, seed=3)
    b = projection.umap_coords(X, seed=3)
    assert a.shape == (30, 2) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="at least 3 points"):
        projection.umap_coords(X[:2])

    patients = pd.DataFrame({"patient": [f"p{i}" for i in range(12)], "disease": ["A", "B"] * 6})
    mean_acts = np.r_[np.full(5, 0.1), np.full(5, 1e-5)]
    pm = projection.patient_map(rng.poisson(2, (12, 10)).astype(float), patients, mean_acts)
    assert (
        pm[["patient", "disease"]].equals(patients) and pm[["umap_x", "umap_y"]].notna().all().all()
    )

    S = 60
    stats = SimpleNamespace(
        mean_acts=10 ** rng.uniform(-2.5, 0, S), sparsity=10 ** rng.uniform(-3, 0, S)
    )
    stats.mean_acts[:5] = 1e-5  # below the threshold: not clustered, not mapped
    sample = thresholds.sample_latents_for_review(stats, threshold=-3, k=4, per_cluster=2)
    lm = projection.latent_map(rng.normal(size=(S, 16)), stats, k=4, sampled=sample["latent"])
    assert len(lm) == S - 5 and set(lm["latent"]).isdisjoint(range(5))
    got = lm.set_index("latent").loc[sample["latent"], "cluster"].to_numpy()
    np.testing.assert_array_equal(got, sample["cluster"].to_numpy())  # the clusters sampled from
    assert lm["sampled"].sum() == len(sample)


def test_review_clusters_are_those_of_the_sampling():
    rng = np.random.default_rng(1)
    ma, sp = 10 ** rng.uniform(-4, 0, 80), 10 ** rng.uniform(-3, 0, 80)
    cl = thresholds.review_clusters((ma, sp), threshold=-3, k=5)
    s = thresholds.sample_latents_for_review((ma, sp), threshold=-3, k=5, per_cluster=3)
    assert (cl["log10_mean_act"] > -3).all()
    lookup = cl.set_index("latent")["cluster"]
    assert (lookup.loc[s["latent"]].to_numpy() == s["cluster"].to_numpy()).all()
