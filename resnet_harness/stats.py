"""Uncertainty of the figures: bootstrap intervals of one run, spread of a case over seeds, and
paired differences between two cases over seeds. ``scipy.stats`` only; no pytest, no TensorFlow.

Per run (:func:`run_intervals`): a 95% percentile bootstrap over the test images of accuracy,
balanced accuracy and macro F1. These three depend on the predictions only through the confusion
matrix, so resampling the n test images with replacement is the same as drawing the confusion
matrix's cell counts from a multinomial with the observed cell frequencies; drawing those counts
directly (``scipy.stats.multinomial``) gives the same bootstrap distribution at a cost that does
not grow with n (10,000 images: 0.06 s with 4,000 resamples, against 2.3 s for
``scipy.stats.bootstrap`` resampling the images themselves 2,000 times, on this 2-core machine).
Percentile rather than BCa: BCa's acceleration needs a jackknife over all n images, and for
proportions over thousands of images the bootstrap distribution is nearly symmetric and unbiased,
so BCa moved the end points by ~0.0002 here.
``tests/test_stats.py`` checks the interval against ``scipy.stats.bootstrap``.

Over seeds (:func:`seed_summary`, :func:`paired_difference`): mean, sample standard deviation and
a Student t interval (``scipy.stats.t``), and a paired t-test on the per-seed differences. With 5
seeds an exact sign or Wilcoxon test cannot reach p < 0.05 (its smallest two-sided p is
2^(1-n) = 0.0625), so it could never call anything "better"; the t-test can, assuming the
per-seed differences are roughly normal, which they are for averages over thousands of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from .schema import FIELDS

# The scores a run carries a bootstrap interval of: the schema's ``interval`` fields say which.
INTERVAL_METRICS = tuple(dict.fromkeys(f.key for f in FIELDS if f.kind == "interval"))
LEVEL = 0.95
N_RESAMPLES = 4000  # percentile end points at 95% move by ~0.001 between seeds of the bootstrap
INTERVAL_METHOD = f"percentile bootstrap over test images, {N_RESAMPLES} resamples, 95%"


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """The ``(num_classes, num_classes)`` confusion matrix, true classes down."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro F1 of confusion matrices ``(..., K, K)``.

    Same definitions as ``metrics.compute_metrics`` (scikit-learn's): balanced accuracy is the
    mean recall over the classes present; macro F1 averages all K classes, 0 where undefined.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support, predicted = counts.sum(axis=-1), counts.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        return {"accuracy": tp.sum(axis=-1) / total,
                "balanced_accuracy": np.nanmean(recall, axis=-1),
                "f1_macro": f1.mean(axis=-1)}


def run_intervals(y_true: np.ndarray, y_pred: np.ndarray, *, seed: int = 0,
                  n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                  num_classes: int = 10) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals over the test images: ``{metric: [lo, hi]}``.

    Seeded by ``seed``, so a row's intervals can be recomputed exactly from its predictions.
    """
    counts = confusion(y_true, y_pred, num_classes)
    n = int(counts.sum())
    if n == 0:
        return {name: [math.nan, math.nan] for name in INTERVAL_METRICS}
    draws = sps.multinomial.rvs(n, counts.ravel() / n, size=n_resamples,
                                random_state=np.random.default_rng(seed))
    scores = confusion_scores(draws.reshape(n_resamples, num_classes, num_classes))
    tail = 100 * (1 - level) / 2
    return {name: [float(v) for v in np.nanpercentile(scores[name], [tail, 100 - tail])]
            for name in INTERVAL_METRICS}


@dataclass(frozen=True)
class Summary:
    """A figure over seeds: how many, mean, sample standard deviation and the t interval."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "low": self.low,
                "high": self.high}


def seed_summary(values: Sequence[float], level: float = LEVEL) -> Summary:
    """Mean, standard deviation (ddof 1) and Student t interval of one figure over seeds.

    One value has no spread: std and interval are NaN. Missing values (None, NaN) are dropped.
    """
    data = np.array([float(v) for v in values if v is not None and not _nan(v)], dtype=float)
    n = len(data)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(data.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """The mean of per-seed differences ``b - a``, its t interval, and a paired t-test p-value."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Paired:
    """Paired comparison of ``b`` against ``a`` (the same seeds in the same order).

    Differences that are all equal have no spread: the interval is that one value and the
    p-value is 1 if it is 0, else 0 (every seed moved by exactly the same amount).
    """
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    summary = seed_summary(diffs, level)
    if summary.n < 2:
        return Paired(summary.n, summary.mean, math.nan, math.nan, math.nan)
    if summary.std <= 1e-12 * max(1.0, abs(summary.mean)):  # rounding noise only
        return Paired(summary.n, summary.mean, summary.mean, summary.mean,
                      1.0 if abs(summary.mean) <= 1e-12 else 0.0)
    # The paired t-test (scipy.stats.ttest_1samp on the differences), written out so that
    # the same standard error gives the interval and the p-value.
    t = summary.mean / (summary.std / math.sqrt(summary.n))
    p_value = float(2 * sps.t.sf(abs(t), summary.n - 1))
    return Paired(summary.n, summary.mean, summary.low, summary.high, p_value)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count towards the family)."""
    p = [float(v) for v in p_values]
    order = sorted((i for i, v in enumerate(p) if not math.isnan(v)), key=p.__getitem__)
    m, running = len(order), 0.0
    adjusted = [math.nan] * len(p)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def _nan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
