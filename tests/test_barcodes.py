"""Patient / disease barcodes (Eq. 2-3) and the official variant, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cytosae.analysis.barcodes import (
    barcodes_from_stats,
    disease_barcodes,
    image_counts,
    patient_barcodes,
)
from cytosae.analysis.differential import differential_latents

COUNTS = sp.csr_matrix(np.array([[1, 0, 2], [3, 0, 0], [0, 4, 0], [2, 2, 2]]))
PATIENTS = ["p1", "p0", "p1", "p2"]


def test_patient_barcodes_paper_mean() -> None:
    X, ids = patient_barcodes(COUNTS, PATIENTS)
    assert list(ids) == ["p0", "p1", "p2"]
    np.testing.assert_allclose(X, [[3, 0, 0], [0.5, 2, 1], [2, 2, 2]])


def test_patient_barcodes_official_sum_over_constant() -> None:
    X, _ = patient_barcodes(COUNTS, PATIENTS, variant="official")
    np.testing.assert_allclose(X * 49152, [[3, 0, 0], [1, 4, 2], [2, 2, 2]])
    X2, _ = patient_barcodes(COUNTS.toarray(), PATIENTS, variant="official", divisor=2)
    np.testing.assert_allclose(X2, [[1.5, 0, 0], [0.5, 2, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="variant"):
        patient_barcodes(COUNTS, PATIENTS, variant="nope")
    with pytest.raises(ValueError, match="3 patient ids for 4"):
        patient_barcodes(COUNTS, PATIENTS[:3])


def test_empty_patient_dropped_and_disease_mean() -> None:
    X, ids = patient_barcodes(COUNTS, ["p1", "", "p1", "p2"])
    assert list(ids) == ["p1", "p2"]
    np.testing.assert_allclose(X, [[0.5, 2, 1], [2, 2, 2]])
    P, _ = patient_barcodes(COUNTS, PATIENTS)
    D, dids = disease_barcodes(P, ["A", "B", "A"])
    assert list(dids) == ["A", "B"]
    np.testing.assert_allclose(D, [[2.5, 1, 1], [0.5, 2, 1]])  # mean over patients, not images


def test_barcodes_from_stats_and_missing_counts() -> None:
    class S:
        counts = COUNTS
        meta = {"include_cls_in_counts": False}  # noqa: RUF012 - a stand-in, read only

    man = pd.DataFrame({"patient": PATIENTS, "disease": ["A", "B", "A", "A"]})
    X, info = barcodes_from_stats(S(), man)
    assert list(info["patient"]) == ["p0", "p1", "p2"]
    assert list(info["disease"]) == ["B", "A", "A"] and list(info["n_images"]) == [1, 2, 1]
    np.testing.assert_allclose(X[1], [0.5, 2, 1])

    class N:
        counts = None

    with pytest.raises(ValueError, match="no per-image counts"):
        image_counts(N())


def test_differential_latents() -> None:
    D = np.array([[5.0, 1.0, 3.0, 0.0], [1.0, 1.0, 0.0, 4.0]])
    df = differential_latents(D, ["A", "B"], "A", "B", n=2)
    a = df[df.direction == "d1>d2"]
    assert list(a["latent"]) == [0, 2] and list(a["diff"]) == [4.0, 3.0]
    b = df[df.direction == "d2>d1"]
    assert list(b["latent"]) == [3]  # only strictly positive differences
    assert list(b["value_d2"]) == [4.0]
    with pytest.raises(ValueError, match="'C'"):
        differential_latents(D, ["A", "B"], "A", "C")
