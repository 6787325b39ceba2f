"""Classification metrics of one case, computed by scikit-learn from the saved test predictions.

Everything here is a pure function of ``(y_true, proba)``, so any metric in a result row can be
recomputed from the ``.npz`` saved beside it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn import metrics as skm

# Scalar metrics and the range each must lie in.
SCALAR_METRICS = (
    "accuracy", "balanced_accuracy",
    "precision_macro", "recall_macro", "f1_macro",
    "precision_weighted", "recall_weighted", "f1_weighted",
    "roc_auc_ovr_macro",
)

# The paper's names for the metrics it reports, mapped to ours (macro averaging: the paper does
# not say which averaging it used; macro is the usual choice under class imbalance). Time and
# memory use the figures that do not depend on the order cases ran in: training time without the
# first step's graph tracing, and the memory the case added above the process's level before it.
PAPER_METRIC = {"accuracy": "accuracy", "precision": "precision_macro",
                "recall": "recall_macro", "f1": "f1_macro", "roc_auc": "roc_auc_ovr_macro",
                "train_time_s": "steady_train_time_s", "test_time_s": "test_time_s",
                "memory_mb": "rss_added_mb"}


def normalize_proba(proba: np.ndarray) -> np.ndarray:
    """Softmax outputs as float64 rows that sum to 1 (float32 rounding can leave them off by 1e-7)."""
    proba = np.asarray(proba, dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True)


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Every metric of a result row from the test labels and predicted class probabilities.

    ``roc_auc_ovr_macro`` is one-vs-rest, macro-averaged over the classes present in ``y_true``
    (it is undefined for an absent class); ``auc_classes`` says how many that was.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(y_true), num_classes):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y_true)}, {num_classes})")
    labels = np.arange(num_classes)
    y_pred = proba.argmax(axis=1)
    out: dict[str, Any] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = p, r, f
    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    present = np.unique(y_true)
    out["roc_auc_ovr_macro"] = _auc_ovr_macro(y_true, proba, present)
    out["auc_classes"] = int(len(present))
    out = {k: float(v) if not isinstance(v, int) else v for k, v in out.items()}
    out["per_class"] = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                        "support": support.tolist()}
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        # sklearn warns when y_pred holds a class absent from y_true; the score is still defined.
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y_true, y_pred))


def _auc_ovr_macro(y_true: np.ndarray, proba: np.ndarray, present: np.ndarray) -> float:
    if len(present) < 2:
        return math.nan
    if len(present) == proba.shape[1]:
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))
    # With absent classes sklearn's multi-class path refuses; average the binary AUCs it would.
    return float(np.mean([skm.roc_auc_score(y_true == c, proba[:, c]) for c in present]))
