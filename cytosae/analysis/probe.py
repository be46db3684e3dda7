"""Linear probe on patient barcodes (paper Fig. 4).

Logistic regression with L2 (the sklearn default penalty), solver lbfgs, ``C = c * n / 100``
(c classes, n training samples of the fold; paper Sec. 2 after DinoBloom), stratified 5-fold CV
with shuffling (``random_state=seed``) over patients (one barcode row per patient), weighted F1
reported as mean ± sd (population sd, ``ddof=0``) over the folds.

Features are **not** standardised by default, as in the paper (barcodes are counts on a common
scale); ``standardize=True`` puts a ``StandardScaler`` inside the fold pipeline (fit on the
training fold only). BLAS/OpenMP threads are pinned to one (threadpoolctl) during fitting, so the
numbers reproduce exactly across machines with the same library versions.

Threshold sweep (Fig. 4A): latents with ``log10(mean act) <= t`` (or NaN mean act) are set to zero
before classification; the number kept is reported. A threshold that keeps no latent leaves
all-zero features, whose "F1" is that of a constant prediction (chance), not of the probe: the
sweep warns and lists such thresholds in ``df.attrs["thresholds_without_latents"]``
(``empty="drop"`` leaves their rows out, ``empty="raise"`` refuses them); :func:`confusion_at`
warns about one (its ``n_latents_kept`` is 0).

Inputs are checked first: ``X`` two-dimensional and finite with one row per label, at least two
classes, every class present in every training fold (the error names a missing class).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cytosae.analysis.thresholds import above_threshold, check_threshold

log = logging.getLogger(__name__)

__all__ = ["confusion_at", "cross_validate", "pinned_threads", "probe_C", "sweep"]


@contextlib.contextmanager
def pinned_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP threads to ``n`` (threadpoolctl if available, else env variables)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        old = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: str(n) for k in keys})
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return
    with threadpool_limits(limits=n):
        yield


def probe_C(n_classes: int, n_train: int) -> float:
    """The paper's regularisation ``C = c * n / 100``."""
    return n_classes * n_train / 100.0


def _model(C: float, standardize: bool, max_iter: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter)
    return make_pipeline(StandardScaler(), lr) if standardize else lr


def cross_validate(
    X: np.ndarray,
    y: Sequence[Any],
    *,
    n_splits: int = 5,
    seed: int = 42,
    standardize: bool = False,
    max_iter: int = 5000,
) -> dict[str, Any]:
    """Stratified k-fold CV of the probe.

    Returns:
        dict with ``f1_mean``, ``f1_sd``, ``f1_folds`` (per fold weighted F1), ``oof_pred``
        (out-of-fold predictions, in the order of ``y``) and ``classes``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    y_arr = np.asarray([str(v) for v in y])
    _check_xy(X, y_arr)
    classes, per_class = np.unique(y_arr, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"the probe needs at least 2 classes, the labels hold only {[str(c) for c in classes]}"
        )
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    k = min(n_splits, int(per_class.min()))
    if k < 2:
        raise ValueError(
            f"class {str(classes[per_class.argmin()])!r} has {int(per_class.min())} sample(s); need >= 2 for CV"
        )
    if k < n_splits:
        log.warning(
            "only %d samples in the smallest class: using %d folds instead of %d",
            per_class.min(),
            k,
            n_splits,
        )
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds: list[float] = []
    oof = np.empty(y_arr.shape[0], dtype=object)
    with pinned_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for fold, (tr, te) in enumerate(skf.split(X, y_arr)):
            missing = sorted(str(c) for c in set(classes) - set(y_arr[tr]))
            if missing:
                raise ValueError(
                    f"training fold {fold} has no sample of class(es) {missing}: the probe cannot "
                    "learn them; give each class at least n_splits samples"
                )
            C = probe_C(len(np.unique(y_arr[tr])), len(tr))
            model = _model(C, standardize, max_iter).fit(X[tr], y_arr[tr])
            pred = model.predict(X[te])
            oof[te] = pred
            folds.append(float(f1_score(y_arr[te], pred, average="weighted", zero_division=0)))
    f = np.asarray(folds)
    return {
        "f1_mean": float(f.mean()),
        "f1_sd": float(f.std()),
        "f1_folds": f,
        "oof_pred": oof.astype(str),
        "classes": classes,
    }


def _check_xy(X: np.ndarray, y_arr: np.ndarray) -> None:
    if X.ndim != 2:
        raise ValueError(
            f"the probe's features must be 2-D (samples, latents), got shape {X.shape}"
        )
    if X.shape[0] != y_arr.shape[0]:
        raise ValueError(f"the probe got {X.shape[0]} feature rows but {y_arr.shape[0]} labels")
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(1))
        raise ValueError(f"the probe's features hold NaN or inf values (rows {rows[:5].tolist()})")


def _masked(X: np.ndarray, mean_acts: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    keep = above_threshold(mean_acts, threshold)
    Xm = np.where(keep[None, :], X, 0.0)
    return Xm, int(keep.sum())


def sweep(
    barcodes: np.ndarray,
    y: Sequence[Any],
    mean_acts: np.ndarray,
    thresholds: Iterable[float] = range(-6, 1),
    *,
    n_splits: int = 5,
    seed: int = 42,
    standardize: bool = False,
    max_iter: int = 5000,
    progress: bool = True,
    empty: str = "mark",
) -> pd.DataFrame:
    """Fig. 4A: CV weighted F1 (mean, sd) of the probe with latents below each threshold zeroed.

    Args:
        empty: what to do with a threshold that keeps no latent (its F1 is chance, not the
            probe's): ``"mark"`` (keep the row, warn, list it in
            ``df.attrs["thresholds_without_latents"]``), ``"drop"`` (leave the row out) or
            ``"raise"``.

    Returns:
        DataFrame ``threshold``, ``n_latents_kept``, ``f1_mean``, ``f1_sd``.
    """
    if empty not in ("mark", "drop", "raise"):
        raise ValueError(f"empty must be 'mark', 'drop' or 'raise', got {empty!r}")
    X = np.asarray(barcodes, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != np.asarray(mean_acts).shape[0]:
        raise ValueError(
            f"barcodes of shape {X.shape} do not match mean_acts of "
            f"{np.asarray(mean_acts).shape[0]} latents"
        )
    ts = [check_threshold(t, "sweep threshold") for t in thresholds]
    no_latents: list[float] = []
    rows = []
    for t in tqdm(ts, desc="probe sweep", disable=not progress):
        Xm, kept = _masked(X, mean_acts, float(t))
        if kept == 0:
            if empty == "raise":
                raise ValueError(_no_latent_message(mean_acts, t))
            log.warning(
                "%s; its F1 is that of a constant prediction", _no_latent_message(mean_acts, t)
            )
            no_latents.append(float(t))
            if empty == "drop":
                continue
        r = cross_validate(
            Xm, y, n_splits=n_splits, seed=seed, standardize=standardize, max_iter=max_iter
        )
        rows.append((float(t), kept, r["f1_mean"], r["f1_sd"]))
        log.info("threshold %.1f: %d latents, F1 %.3f ± %.3f", t, kept, r["f1_mean"], r["f1_sd"])
    df = pd.DataFrame(rows, columns=["threshold", "n_latents_kept", "f1_mean", "f1_sd"])
    df.attrs["thresholds_without_latents"] = no_latents
    return df


def _no_latent_message(mean_acts: np.ndarray, t: float) -> str:
    ok = np.asarray(mean_acts, dtype=np.float64)
    ok = ok[np.isfinite(ok) & (ok > 0)]
    top = f"{np.log10(ok.max()):.2f}" if ok.size else "none (no latent ever fired)"
    return (
        f"threshold {t:g} keeps no latent (the largest log10 mean activation is {top}); "
        "choose a lower threshold"
    )


def confusion_at(
    barcodes: np.ndarray,
    y: Sequence[Any],
    mean_acts: np.ndarray,
    threshold: float = -3.0,
    *,
    n_splits: int = 5,
    seed: int = 42,
    standardize: bool = False,
    max_iter: int = 5000,
) -> dict[str, Any]:
    """Fig. 4B: confusion matrix and per-class F1 from out-of-fold predictions at ``threshold``.

    Returns:
        dict with ``confusion`` (DataFrame, rows = true, columns = predicted), ``per_class_f1``
        (Series), ``f1_mean``, ``f1_sd``, ``n_latents_kept``.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    Xm, kept = _masked(np.asarray(barcodes, dtype=np.float64), mean_acts, threshold)
    if kept == 0:
        log.warning(
            "%s; the confusion matrix is that of a constant prediction",
            _no_latent_message(mean_acts, threshold),
        )
    r = cross_validate(
        Xm, y, n_splits=n_splits, seed=seed, standardize=standardize, max_iter=max_iter
    )
    y_arr = np.asarray([str(v) for v in y])
    cls = r["classes"]
    cm = confusion_matrix(y_arr, r["oof_pred"], labels=cls)
    f1 = f1_score(y_arr, r["oof_pred"], labels=cls, average=None, zero_division=0)
    return {
        "confusion": pd.DataFrame(
            cm, index=pd.Index(cls, name="true"), columns=pd.Index(cls, name="predicted")
        ),
        "per_class_f1": pd.Series(f1, index=cls, name="f1"),
        "f1_mean": r["f1_mean"],
        "f1_sd": r["f1_sd"],
        "n_latents_kept": kept,
    }
