"""Uncertainty of the figures over seeds: the spread of a case, and paired differences between two
cases. ``scipy.stats`` only; no pytest, no TensorFlow.

Per run: :func:`resnet_harness.training.metrics.run_intervals` (computed when the case runs).

Over seeds (:func:`seed_summary`, :func:`paired_difference`): mean, sample standard deviation and
a Student t interval (``scipy.stats.t``), and a paired t-test on the per-seed differences whose
standard error never falls below what test-set sampling alone gives. How many seeds a question
needs (:func:`power`, :func:`seeds_needed`, :func:`detectable`): the noncentral t, integrated
over the chi distribution (exact at every n >= 2). With 5
seeds an exact sign or Wilcoxon test cannot reach p < 0.05 (its smallest two-sided p is
2^(1-n) = 0.0625), so it could never call anything "better"; the t-test can, assuming the
per-seed differences are roughly normal, which they are for averages over thousands of images.
"""

from __future__ import annotations

import math
import warnings
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
    standard error behind both, whether the test-set floor set it (``floored``), the degrees of
    freedom of its t distribution and the part of its variance that a shared test set adds
    (``shared``: 0 when every seed has its own test images)."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float
    se: float = math.nan
    floored: bool = False
    df: float = math.nan
    shared: float = 0.0

    def interval(self, level: float) -> tuple[float, float]:
        """The t interval of the mean difference at ``level`` (e.g. a look's adjusted one)."""
        if not (self.se > 0 and self.df > 0):
            return math.nan, math.nan
        half = float(sps.t.ppf(0.5 + level / 2, self.df)) * self.se
        return self.mean - half, self.mean + half


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL,
                      within: Sequence[float] | None = None, shared: float = 0.0) -> Paired:
    """Paired comparison of ``b`` against ``a`` (the same seeds in the same order).

    ``within``: per seed, the variance that sampling the test set adds to its difference
    independently of the other seeds (``analysis.pairing``). The seeds' spread already holds
    it, but with few seeds that spread can come out far too small (two seeds that moved by
    exactly the same amount have none), so the seeds' variance is never taken below its mean.
    ``shared``: the variance of the test-set offset common to every seed (one test set shared
    by all seeds), which more seeds never average away. Then

        se^2 = max(s^2, mean(within)) / n + shared

    with Welch-Satterthwaite's degrees of freedom ``(n - 1) * (se^2 / seed term)^2`` (the
    shared term is estimated from thousands of images: its own degrees of freedom are taken
    as infinite). A standard error of 0 (no spread, no floor) gives no interval and p NaN:
    nothing is known about the difference's uncertainty, which is not certainty.
    """
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    summary = seed_summary(diffs, level)
    n = summary.n
    if n < 2:
        return Paired(n, summary.mean, math.nan, math.nan, math.nan)
    spread = summary.std ** 2
    floor = float(np.nanmean(within)) if within is not None and len(within) else 0.0
    floor = floor if math.isfinite(floor) else 0.0
    shared = shared if math.isfinite(shared) and shared > 0 else 0.0
    seed_term = max(spread, floor) / n
    variance = seed_term + shared
    if variance <= (1e-12 * max(1.0, abs(summary.mean))) ** 2:  # no spread, no floor
        return Paired(n, summary.mean, math.nan, math.nan, math.nan, 0.0, False, n - 1.0)
    se = math.sqrt(variance)
    df = (n - 1) * (variance / seed_term) ** 2 if seed_term > 0 else math.inf
    df = min(df, 1e6)
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    # The paired t-test (scipy.stats.ttest_1samp on the differences when neither the floor nor
    # a shared test set adds to the seeds' spread), written out so that the same standard
    # error gives the interval and the p-value.
    p_value = float(2 * sps.t.sf(abs(summary.mean) / se, df))
    return Paired(n, summary.mean, summary.mean - half, summary.mean + half, p_value, se,
                  floor > spread, df, shared)


_LOGIT = np.linspace(-27.6, 27.6, 4001)
_Q = 1 / (1 + np.exp(-(_LOGIT[1:] + _LOGIT[:-1]) / 2))  # midpoints
_DQ = np.diff(1 / (1 + np.exp(-_LOGIT)))


def _chi2_nodes(df: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes of the chi-square distribution with ``df`` degrees of freedom and
    their probability weights (cached per df)."""
    key = round(df, 6)
    if key not in _NODES:
        if len(_NODES) > 512:
            _NODES.clear()
        _NODES[key] = (sps.chi2.ppf(_Q, df), _DQ)
    return _NODES[key]


_NODES: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def power(n: int, effect: float, alpha: float, df: float | None = None) -> float:
    """Power of a two-sided one-sample (paired) t-test with ``n`` seeds at level ``alpha`` for a
    true mean difference of ``effect`` standard deviations: ``P(|T| > c)`` for the noncentral
    t with noncentrality ``effect * sqrt(n)`` and ``df`` (default ``n - 1``) degrees of
    freedom, integrated exactly over the chi distribution of the standard error:

        power = E_V[ Phi(-c sqrt(V/df) - lam) + Phi(-c sqrt(V/df) + lam) ],  V ~ chi2(df)

    ``scipy.stats.nct`` (fast) where it answers; it returns NaN far out at 2-4 degrees of
    freedom, where the integral is computed instead (both checked against statsmodels and
    simulation in tests/test_verdicts.py).
    """
    if n < 2 or not 0 < alpha < 1:
        return 0.0
    df = float(n - 1 if df is None else df)
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    shift = abs(effect) * math.sqrt(n)
    if not math.isfinite(shift):
        return 1.0
    if df > 1e5:  # the t is normal
        return float(sps.norm.cdf(-crit - shift) + sps.norm.sf(crit - shift))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = float(sps.nct.sf(crit, df, shift) + sps.nct.cdf(-crit, df, shift))
    if math.isfinite(fast) and -1e-9 <= fast <= 1 + 1e-9:
        return min(1.0, max(0.0, fast))  # where scipy's nct answers, it agrees to 1e-4

    # E over V of P(|Z + lam| > c sqrt(V / df)), on a grid even in the logit of V's quantile,
    # which resolves both tails (mass below 1e-12 left out); exact to ~5e-6 (checked against
    # adaptive quadrature in tests/test_decisive.py).
    v, weight = _chi2_nodes(df)
    scaled = crit * np.sqrt(v / df)
    total = float(np.sum(weight * (sps.norm.cdf(-scaled - shift) + sps.norm.sf(scaled - shift))))
    return float(min(1.0, max(0.0, total)))


MAX_SEEDS_PLANNED = 10_000  # "would need more than this": say so rather than search on


def _power_at(n: int, effect: float, alpha: float, shared: float) -> float:
    # A shared test set's variance (``shared``, in units of one seed's variance) does not
    # shrink with n: the effect shrinks instead, and Welch's degrees of freedom grow.
    if not shared:
        return power(n, effect, alpha)
    inflation = 1 + n * shared
    return power(n, effect / math.sqrt(inflation), alpha, df=(n - 1) * inflation ** 2)


def seeds_needed(effect: float, alpha: float, target: float = 0.8, shared: float = 0.0) -> float:
    """The fewest seeds with ``power >= target`` for ``effect`` standard deviations of one
    seed's difference; ``inf`` when the effect is 0 or more than :data:`MAX_SEEDS_PLANNED`
    seeds would be needed. ``shared``: the variance of a test-set offset common to all seeds,
    in units of one seed's variance (no number of seeds removes it)."""
    if not math.isfinite(effect) or abs(effect) < 1e-12:
        return math.inf
    if _power_at(MAX_SEEDS_PLANNED, effect, alpha, shared) < target:
        return math.inf
    low, high = 2, MAX_SEEDS_PLANNED  # power grows with n: bisect
    while low < high:
        mid = (low + high) // 2
        if _power_at(mid, effect, alpha, shared) >= target:
            high = mid
        else:
            low = mid + 1
    return float(low)


def detectable(n: int, sd: float, alpha: float, target: float = 0.8,
               shared: float = 0.0) -> float:
    """The smallest true difference that ``n`` seeds detect with power ``target`` at level
    ``alpha``, given the per-seed standard deviation ``sd`` of the differences (and a shared
    test set's variance ``shared`` in units of ``sd**2``)."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return math.nan
    high = 1.0
    while _power_at(n, high, alpha, shared) < target:
        high *= 2
        if high > 1e6:
            return math.inf
    return float(brentq(lambda d: _power_at(n, d, alpha, shared) - target, 0.0, high,
                        xtol=1e-6)) * sd


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
