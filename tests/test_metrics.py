"""compute_metrics against hand-worked cases and an independent NumPy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from resnet_harness.training.metrics import compute_metrics, normalize_proba
from resnet_harness.storage.schema import SCORES as SCALAR_METRICS

# ---------------------------------------------------------------------------------------------
# An independent implementation (plain NumPy, no scikit-learn)


def np_confusion(y_true, y_pred, k):
    cm = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    return cm


def np_prf(cm):
    """Per-class precision, recall, F1 (0 where undefined) and support."""
    tp = np.diag(cm).astype(float)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def np_binary_auc(positive, score):
    """Mann-Whitney: the share of (positive, negative) pairs ranked right, ties counting 1/2."""
    pos, neg = score[positive], score[~positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def np_metrics(y_true, proba, k):
    y_pred = proba.argmax(axis=1)
    cm = np_confusion(y_true, y_pred, k)
    p, r, f, support = np_prf(cm)
    present = np.unique(y_true)
    weights = support / support.sum()
    return {
        "accuracy": np.trace(cm) / cm.sum(),
        "balanced_accuracy": r[present].mean(),
        "precision_macro": p.mean(), "recall_macro": r.mean(), "f1_macro": f.mean(),
        "precision_weighted": (p * weights).sum(), "recall_weighted": (r * weights).sum(),
        "f1_weighted": (f * weights).sum(),
        "roc_auc_ovr_macro": np.mean([np_binary_auc(y_true == c, proba[:, c]) for c in present]),
        "confusion_matrix": cm.tolist(), "auc_classes": len(present),
        "per_class": {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                      "support": support.tolist()},
    }


def assert_matches(got, expected):
    for name, value in expected.items():
        if name == "confusion_matrix":
            assert got[name] == value
        elif name == "per_class":
            for key, values in value.items():
                assert got[name][key] == pytest.approx(values, abs=1e-12), key
        else:
            assert got[name] == pytest.approx(value, abs=1e-12), name


def one_hot_proba(y_pred, k, high=0.8):
    proba = np.full((len(y_pred), k), (1 - high) / (k - 1))
    proba[np.arange(len(y_pred)), y_pred] = high
    return proba


# ---------------------------------------------------------------------------------------------
# Hand-worked cases

# 8 samples, 3 classes.  y_pred = argmax of the probabilities.
#   true 0: predicted 0, 0, 1   true 1: predicted 1, 1, 2   true 2: predicted 2, 0
Y8 = np.array([0, 0, 0, 1, 1, 1, 2, 2])
PRED8 = np.array([0, 0, 1, 1, 1, 2, 2, 0])
HAND8 = {
    "confusion_matrix": [[2, 1, 0], [0, 2, 1], [1, 0, 1]],
    "accuracy": 5 / 8,
    # column sums 3, 3, 2 -> precision 2/3, 2/3, 1/2; row sums 3, 3, 2 -> recall the same
    "precision_macro": (2 / 3 + 2 / 3 + 1 / 2) / 3,  # 11/18
    "recall_macro": 11 / 18, "f1_macro": 11 / 18,
    "precision_weighted": (3 * 2 / 3 + 3 * 2 / 3 + 2 * 1 / 2) / 8,  # 5/8
    "recall_weighted": 5 / 8, "f1_weighted": 5 / 8,
    "balanced_accuracy": 11 / 18,
    "auc_classes": 3,
    "per_class": {"precision": [2 / 3, 2 / 3, 1 / 2], "recall": [2 / 3, 2 / 3, 1 / 2],
                  "f1": [2 / 3, 2 / 3, 1 / 2], "support": [3, 3, 2]},
}


def test_hand_worked_label_metrics():
    proba = one_hot_proba(PRED8, 3)
    got = compute_metrics(Y8, proba, 3)
    assert_matches(got, HAND8)
    assert_matches(got, np_metrics(Y8, proba, 3))
    assert got["accuracy"] == 0.625


# 6 samples, 3 classes, with ties.  Binary one-vs-rest AUCs by counting pairs (2 pos x 4 neg):
#   class 0: pos {.6, .3} vs neg {.5, .2, .1, .2}: 4 + 3 = 7/8
#   class 1: pos {.4, .7} vs neg {.3, .4, .2, .5}: 2.5 (one tie) + 4 = 6.5/8
#   class 2: pos {.7, .3} vs neg {.1, .3, .1, .1}: 4 + 3.5 (one tie) = 7.5/8
Y6 = np.array([0, 0, 1, 1, 2, 2])
P6 = np.array([[0.6, 0.3, 0.1],
               [0.3, 0.4, 0.3],
               [0.5, 0.4, 0.1],
               [0.2, 0.7, 0.1],
               [0.1, 0.2, 0.7],
               [0.2, 0.5, 0.3]])
# argmax: 0, 1, 0, 1, 2, 1 -> true 0: [1, 1, 0], true 1: [1, 1, 0], true 2: [0, 1, 1]
HAND6 = {
    "roc_auc_ovr_macro": (7 / 8 + 6.5 / 8 + 7.5 / 8) / 3,  # 0.875
    "confusion_matrix": [[1, 1, 0], [1, 1, 0], [0, 1, 1]],
    "accuracy": 0.5, "balanced_accuracy": 0.5,
    # precision 1/2, 1/3, 1; recall 1/2 each; F1 1/2, 2/5, 2/3
    "precision_macro": 11 / 18, "recall_macro": 0.5, "f1_macro": 47 / 90,
    "precision_weighted": 11 / 18, "recall_weighted": 0.5, "f1_weighted": 47 / 90,
    "per_class": {"precision": [0.5, 1 / 3, 1.0], "recall": [0.5, 0.5, 0.5],
                  "f1": [0.5, 0.4, 2 / 3], "support": [2, 2, 2]},
}


def test_hand_worked_auc_with_ties():
    got = compute_metrics(Y6, P6, 3)
    assert_matches(got, HAND6)
    assert got["roc_auc_ovr_macro"] == pytest.approx(0.875, abs=1e-12)
    assert_matches(got, np_metrics(Y6, P6, 3))


def test_perfect_and_reversed_ranking():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    perfect = one_hot_proba(y, 3)  # the true class always scores 0.8, the others 0.1
    got = compute_metrics(y, perfect, 3)
    assert got["roc_auc_ovr_macro"] == 1.0
    assert got["accuracy"] == got["balanced_accuracy"] == got["f1_macro"] == 1.0
    assert got["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]]
    reversed_ = np.full((len(y), 3), 0.5)
    reversed_[np.arange(len(y)), y] = 0.0  # the true class always scores lowest
    got = compute_metrics(y, reversed_, 3)
    assert got["roc_auc_ovr_macro"] == 0.0
    assert got["accuracy"] == 0.0


def test_absent_class_auc_over_present_classes():
    # class 2 never occurs in y_true (but is predicted once)
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.7, 0.2, 0.1],
                      [0.4, 0.5, 0.1],
                      [0.3, 0.6, 0.1],
                      [0.3, 0.1, 0.6]])
    got = compute_metrics(y, proba, 3)
    # class 0: pos {.7, .4} vs neg {.3, .3} -> 1.0; class 1: pos {.6, .1} vs neg {.2, .5} -> 2/4
    assert got["roc_auc_ovr_macro"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-12)
    assert got["auc_classes"] == 2
    # predictions 0, 1, 1, 2 -> recall 1/2 for both present classes
    assert got["balanced_accuracy"] == pytest.approx(0.5)
    assert got["accuracy"] == 0.5
    assert got["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    # absent classes count as 0 in the macro averages over all num_classes labels
    assert got["recall_macro"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert got["per_class"]["support"] == [2, 2, 0]
    assert_matches(got, np_metrics(y, proba, 3))


def test_single_present_class_auc_is_nan():
    y = np.array([1, 1, 1])
    got = compute_metrics(y, one_hot_proba(np.array([1, 0, 1]), 3), 3)
    assert math.isnan(got["roc_auc_ovr_macro"]) and got["auc_classes"] == 1
    assert got["accuracy"] == pytest.approx(2 / 3)


def test_balanced_accuracy_under_imbalance():
    # 6 of class 0 (all right), 2 of class 1 (1 right): accuracy 7/8, balanced (1 + 1/2) / 2
    y = np.array([0] * 6 + [1] * 2)
    pred = np.array([0] * 6 + [1, 0])
    got = compute_metrics(y, one_hot_proba(pred, 3), 3)  # class 2 never occurs
    assert got["accuracy"] == pytest.approx(7 / 8)
    assert got["balanced_accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(5))
def test_random_cases_match_numpy(seed):
    rng = np.random.default_rng(seed)
    k = 10
    y = rng.integers(0, k, size=60)
    if seed % 2:
        y[y == 3] = 4  # an absent class on odd seeds
    logits = rng.normal(size=(60, k)) + 1.5 * np.eye(k)[y]
    proba = normalize_proba(np.exp(logits).astype(np.float32))
    got = compute_metrics(y, proba, k)
    assert_matches(got, np_metrics(y, proba, k))
    for name in SCALAR_METRICS:
        assert isinstance(got[name], float) and 0.0 <= got[name] <= 1.0
    assert isinstance(got["auc_classes"], int)


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        compute_metrics(np.array([0, 1, 2]), np.full((4, 3), 1 / 3), 3)
    with pytest.raises(ValueError, match="expected"):
        compute_metrics(np.array([0, 1, 2]), np.full((3, 4), 0.25), 3)


def test_labels_as_column_and_float_dtypes():
    got = compute_metrics(Y8.reshape(-1, 1).astype(np.float32), one_hot_proba(PRED8, 3), 3)
    assert got["accuracy"] == 0.625


def test_normalize_proba():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 10)).astype(np.float32)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # float32 rounding
    out = normalize_proba(softmax)
    assert out.dtype == np.float64 and out.shape == softmax.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=4 * np.finfo(np.float64).eps)
    np.testing.assert_array_equal(out.argmax(axis=1), softmax.argmax(axis=1))
    np.testing.assert_allclose(out, softmax, rtol=1e-6)
    scaled = normalize_proba(np.array([[2.0, 6.0, 2.0]]))
    np.testing.assert_array_equal(scaled, [[0.2, 0.6, 0.2]])
