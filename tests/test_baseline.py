"""The embedding baseline of Fig. 4B: same patients, same folds, majority rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cytosae.analysis import baseline, probe
from cytosae.analysis.barcodes import patient_barcodes


class FakeStore:
    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens
        self.n_images, self.n_tokens, self.d_model = tokens.shape

    def iter_images(self, batch_images: int = 64):
        for s in range(0, self.n_images, batch_images):
            idx = np.arange(s, min(s + batch_images, self.n_images))
            yield idx, self.tokens[idx]


def test_image_and_patient_embeddings():
    tok = torch.arange(5 * 3 * 2, dtype=torch.float32).reshape(5, 3, 2)
    store = FakeStore(tok)
    cls = baseline.image_embeddings(store, "cls", batch_images=2)
    mean = baseline.image_embeddings(store, "mean_patch", batch_images=2)
    np.testing.assert_array_equal(cls, tok[:, 0].numpy())
    np.testing.assert_allclose(mean, tok[:, 1:].mean(1).numpy())
    man = pd.DataFrame({"patient": ["b", "a", "b", "", "a"]})
    E, ids = baseline.patient_embeddings(cls, man)
    assert ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(E, [cls[[1, 4]].mean(0), cls[[0, 2]].mean(0)])
    # the order of barcodes_from_stats' patients
    _, ids2 = patient_barcodes(np.ones((5, 3)), man["patient"].to_numpy())
    assert ids.tolist() == ids2.tolist()
    with pytest.raises(ValueError, match="kind must be"):
        baseline.image_embeddings(store, "max")


def test_compare_probes_uses_the_same_folds_for_every_model():
    rng = np.random.default_rng(0)
    y = np.repeat(["A", "B", "C"], 10)
    codes = np.repeat([0, 1, 2], 10)
    barcodes = rng.poisson(1.0, size=(30, 20)).astype(float)
    barcodes[:, :3] += 4 * np.eye(3)[codes]  # three informative latents
    mean_acts = np.full(20, 0.1)
    mean_acts[10:] = 1e-5  # below -3: zeroed for the barcode probe
    emb = {
        "good": np.eye(3)[codes] + rng.normal(0, 0.1, (30, 3)),
        "noise": rng.normal(size=(30, 4)),
    }
    t = baseline.compare_probes(barcodes, mean_acts, emb, y, threshold=-3, seed=1)
    assert t["model"].tolist() == [
        "barcode probe",
        "embedding baseline (good)",
        "embedding baseline (noise)",
    ]
    assert t["features"][0] == "10 latents above -3"
    assert t["majority_rate"].tolist() == [pytest.approx(1 / 3)] * 3
    ref = probe.cross_validate(np.where(mean_acts > 1e-3, barcodes, 0), y, seed=1)
    assert t["f1_folds"][0] == tuple(ref["f1_folds"])
    assert t["f1_mean"][1] > 0.9 and t["f1_mean"][2] < t["f1_mean"][1]
    assert baseline.majority_rate(["a", "a", "b"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="has 3 rows for 30 patients"):
        baseline.compare_probes(barcodes, mean_acts, {"x": np.ones((3, 2))}, y)
