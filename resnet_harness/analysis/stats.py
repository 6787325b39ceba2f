"""Uncertainty of the figures over seeds: the spread of a case, and paired differences between two
cases. ``scipy.stats`` only; no pytest, no TensorFlow.

Per run: :func:`resnet_harness.training.metrics.run_intervals` (computed when the case runs).

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

LEVEL = 0.95


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
