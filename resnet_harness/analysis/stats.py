"""Uncertainty of the figures over seeds: the spread of a case, and paired differences between two
cases. ``scipy.stats`` only; no pytest, no TensorFlow.

Per run: :func:`resnet_harness.training.metrics.run_intervals` (computed when the case runs).

Over seeds (:func:`seed_summary`, :func:`paired_difference`): mean, sample standard deviation and
a Student t interval (``scipy.stats.t``), and a paired t-test on the per-seed differences whose
standard error never falls below what test-set sampling alone gives. How many seeds a question
needs (:func:`power`, :func:`seeds_needed`, :func:`detectable`): the noncentral t
(``scipy.stats.nct``). With 5
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
from scipy.optimize import brentq

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
    """The mean of per-seed differences ``b - a``, its t interval, a paired t-test p-value, the
    standard error behind both and whether the test-set floor set it (``floored``)."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float
    se: float = math.nan
    floored: bool = False


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL,
                      within: Sequence[float] | None = None) -> Paired:
    """Paired comparison of ``b`` against ``a`` (the same seeds in the same order).

    ``within``: per seed, the variance that each run's test-set sampling adds to its difference
    (the two runs' bootstrap variances summed). The seeds' spread already holds it, but with few
    seeds that spread can come out far too small (two seeds that moved by exactly the same
    amount have none), so the standard error is never below what test-set sampling alone gives:
    ``se^2 = max(s^2, mean(within)) / n``. Without ``within``, differences that are all equal
    have no spread and the interval is that one value.
    """
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    summary = seed_summary(diffs, level)
    n = summary.n
    if n < 2:
        return Paired(n, summary.mean, math.nan, math.nan, math.nan)
    spread = summary.std ** 2
    floor = float(np.nanmean(within)) if within is not None and len(within) else 0.0
    floor = floor if math.isfinite(floor) else 0.0
    variance = max(spread, floor)
    if variance <= (1e-12 * max(1.0, abs(summary.mean))) ** 2:  # no spread, no floor
        return Paired(n, summary.mean, summary.mean, summary.mean,
                      1.0 if abs(summary.mean) <= 1e-12 else 0.0, 0.0)
    se = math.sqrt(variance / n)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * se
    # The paired t-test (scipy.stats.ttest_1samp on the differences when the floor does not
    # bite), written out so that the same standard error gives the interval and the p-value.
    p_value = float(2 * sps.t.sf(abs(summary.mean) / se, n - 1))
    return Paired(n, summary.mean, summary.mean - half, summary.mean + half, p_value, se,
                  floor > spread)


def power(n: int, effect: float, alpha: float) -> float:
    """Power of a two-sided one-sample (paired) t-test with ``n`` seeds at level ``alpha`` for a
    true mean difference of ``effect`` standard deviations (noncentral t)."""
    if n < 2:
        return 0.0
    df, crit = n - 1, float(sps.t.ppf(1 - alpha / 2, n - 1))
    shift = abs(effect) * math.sqrt(n)
    if shift - crit > 8:  # certain; scipy's noncentral t returns NaN that far out
        return 1.0
    value = float(sps.nct.sf(crit, df, shift) + sps.nct.cdf(-crit, df, shift))
    return float(shift > crit) if math.isnan(value) else value


MAX_SEEDS_PLANNED = 10_000  # "would need more than this": say so rather than search on


def seeds_needed(effect: float, alpha: float, target: float = 0.8) -> float:
    """The fewest seeds with ``power >= target`` for ``effect`` standard deviations; ``inf``
    when the effect is 0 or more than :data:`MAX_SEEDS_PLANNED` seeds would be needed."""
    if not math.isfinite(effect) or abs(effect) < 1e-12:
        return math.inf
    if power(MAX_SEEDS_PLANNED, effect, alpha) < target:
        return math.inf
    low, high = 2, MAX_SEEDS_PLANNED  # power grows with n: bisect
    while low < high:
        mid = (low + high) // 2
        if power(mid, effect, alpha) >= target:
            high = mid
        else:
            low = mid + 1
    return float(low)


def detectable(n: int, sd: float, alpha: float, target: float = 0.8) -> float:
    """The smallest true difference that ``n`` seeds detect with power ``target`` at level
    ``alpha``, given the per-seed standard deviation ``sd`` of the differences."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return math.nan
    high = 1.0
    while power(n, high, alpha) < target:
        high *= 2
        if high > 1e6:
            return math.inf
    return float(brentq(lambda d: power(n, d, alpha) - target, 0.0, high, xtol=1e-6)) * sd


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
