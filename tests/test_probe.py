"""Logistic-regression probe and threshold sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytosae.analysis.probe import confusion_at, cross_validate, probe_C, sweep


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 classes x 10 patients; latents 0-2 carry the class, 3-7 are noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["A", "B", "C"], 10)
    X = rng.poisson(1.0, size=(30, 8)).astype(float)
    for i, c in enumerate("ABC"):
        X[y == c, i] += 6.0
    mean_acts = np.array([1.0, 1.0, 1.0, 1e-5, 1e-5, 1e-5, np.nan, 1e-4])
    return X, y, mean_acts


def test_probe_C() -> None:
    assert probe_C(5, 151) == pytest.approx(7.55)


def test_cross_validate_separable_and_reproducible() -> None:
    X, y, _ = _data()
    r = cross_validate(X, y)
    assert r["f1_mean"] == 1.0 and r["f1_sd"] == 0.0 and len(r["f1_folds"]) == 5
    np.testing.assert_array_equal(r["oof_pred"], y)
    r2 = cross_validate(X + 0, y, standardize=True)
    assert r2["f1_mean"] == 1.0


def test_sweep_zeroes_latents() -> None:
    X, y, m = _data()
    df = sweep(X, y, m, thresholds=[-6, -4.5, -2, 0], progress=False)
    assert list(df.columns) == ["threshold", "n_latents_kept", "f1_mean", "f1_sd"]
    assert list(df["n_latents_kept"]) == [7, 4, 3, 0]
    assert df["f1_mean"].iloc[2] == 1.0
    # nothing kept: all-zero features -> constant prediction (one class of three)
    assert df["f1_mean"].iloc[3] < 0.4
    pd.testing.assert_frame_equal(df, sweep(X, y, m, thresholds=[-6, -4.5, -2, 0], progress=False))


def test_confusion_at() -> None:
    X, y, m = _data()
    X[0, :3] = [0, 7, 0]  # patient 0 (A) looks like B
    r = confusion_at(X, y, m, threshold=-3)
    cm = r["confusion"]
    assert cm.loc["A", "B"] == 1 and cm.loc["A", "A"] == 9 and int(cm.values.sum()) == 30
    # per-class F1 from out-of-fold predictions: A recall .9 precision 1; B recall 1 precision 10/11
    assert r["per_class_f1"]["A"] == pytest.approx(2 * 0.9 / 1.9)
    assert r["per_class_f1"]["B"] == pytest.approx(2 * (10 / 11) / (1 + 10 / 11))
    assert r["n_latents_kept"] == 3


def test_fold_count_clamped_to_smallest_class() -> None:
    X, y, _ = _data()
    keep = np.r_[0:10, 10:13, 20:30]  # class B has 3 patients -> 3 folds
    r = cross_validate(X[keep], y[keep])
    assert len(r["f1_folds"]) == 3
    with pytest.raises(ValueError, match=r"'B' has 1 sample"):
        cross_validate(X[np.r_[0:10, 10:11, 20:30]], y[np.r_[0:10, 10:11, 20:30]])
