"""Concept counts and KMeans review sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytosae.analysis.thresholds import (
    above_threshold,
    concept_counts,
    log10_safe,
    sample_latents_for_review,
)


def test_concept_counts_hand() -> None:
    m = np.array([1e-7, 2e-5, 1e-3, 0.05, 2.0, np.nan, 0.0], dtype=np.float64)
    df = concept_counts(m)
    assert list(df["threshold"]) == [-6, -5, -4, -3, -2, -1, 0]
    # log10: -7, -4.7, -3, -1.3, 0.3; NaN and 0 never count; strict ">"
    assert list(df["n_concepts"]) == [4, 4, 3, 2, 2, 1, 1]
    np.testing.assert_array_equal(above_threshold(m, -3), [0, 0, 0, 1, 1, 0, 0])
    assert np.isnan(log10_safe(np.array([0.0, -1.0, np.nan]))).all()


def _landscape(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = 10 ** rng.uniform(-5, 0, n)
    freq = 10 ** rng.uniform(-4, 0, n)
    return mean, freq


def test_sample_latents_for_review() -> None:
    mean, freq = _landscape()
    df = sample_latents_for_review((mean, freq), threshold=-3, k=10, per_cluster=5, seed=42)
    assert len(df) == 50 and df["cluster"].value_counts().eq(5).all()
    assert (np.log10(mean[df["latent"]]) > -3).all()
    np.testing.assert_allclose(df["log10_mean_act"], np.log10(mean[df["latent"]]))
    assert df["latent"].is_unique
    again = sample_latents_for_review((mean, freq), seed=42)
    pd.testing.assert_frame_equal(df, again)
    other = sample_latents_for_review((mean, freq), seed=7)
    assert set(other["latent"]) != set(df["latent"])


def test_sample_small_clusters_and_errors() -> None:
    mean = np.array([0.5, 0.6, 0.01, 1e-6])
    freq = np.array([0.1, 0.2, 0.3, 0.4])
    df = sample_latents_for_review((mean, freq), threshold=-3, k=3, per_cluster=5)
    assert sorted(df["latent"]) == [0, 1, 2]  # each cluster smaller than per_cluster: all taken
    with pytest.raises(ValueError, match="need at least k"):
        sample_latents_for_review((mean, freq), threshold=-3, k=4)


def test_review_sheet(tmp_path) -> None:
    from types import SimpleNamespace

    from PIL import Image

    from cytosae.analysis.review import write_review_sheet

    paths = []
    for i in range(2):
        p = tmp_path / f"im{i}.png"
        Image.new("RGB", (10, 10), (100 * i, 0, 0)).save(p)
        paths.append(str(p))
    man = pd.DataFrame({"path": paths, "dataset": ["mll23", "mll23"]})
    stats = SimpleNamespace(
        mean_acts=np.array([0.5, 0.01]),
        sparsity=np.array([0.1, 0.2]),
        top_entropy=np.array([0.0, 0.69]),
        top_indices=np.array([[1, 0], [0, -1]]),
        top_values=np.array([[0.9, 0.3], [0.2, 0.0]]),
        top_label_indices=np.array([[1, 0], [0, -1]]),
        label_names=("eo", "ly"),
    )
    sample = pd.DataFrame({"latent": [0, 1], "cluster": [0, 1]})
    h, c = write_review_sheet(sample, {"mll23": (stats, man)}, tmp_path / "out", thumb_px=8)
    text = h.read_text()
    assert text.count("data:image/png;base64,") == 3 and "ly" in text and "0.9" in text
    df = pd.read_csv(c, keep_default_na=False)
    assert list(df["latent"]) == [0, 1] and (df["annotation"] == "").all()
    assert df["ref_image_indexs"].tolist() == ["1;0", "0"]
    assert df["ref_labels"].tolist() == ["ly;eo", "eo"]
    h2, _ = write_review_sheet(sample, {"mll23": (stats, man)}, tmp_path / "out2", thumb_px=8)
    assert h2.read_bytes() == h.read_bytes()
