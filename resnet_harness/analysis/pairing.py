"""The test-set noise of a difference between runs scored on the same test images.

Two runs of one seed are scored on one test set, so their difference has the test-set noise
of the per-image difference, not the sum of two runs' noises: the images both get right or
both get wrong add nothing. This module resamples the test images once per test set (a
Poisson bootstrap, :data:`RESAMPLES` replicates, seeded by the test set's name) and applies the
*same* resampling to every run scored on those images, so that any figure that is a function
of the confusion matrix (accuracy, balanced accuracy, macro F1, a group's or the reduced
classes' recall) gets the replicates of ``sum(sign * figure)`` over the rows of a comparison.

Everything comes from a row's ``test_outcomes`` and ``test_set`` (``storage.outcomes``), which
``results.csv`` carries too: the analysis of a CSV gives what the run folder gives.

Two designs use the replicates differently (``analysis.comparisons``; the derivation is in
``docs/reference.md``, "The variance model"):

- each seed draws its own test subset: a seed's variance is that of its own replicates, and
  it is a floor under the seeds' spread;
- every seed shares one test set: the replicates of the mean over seeds give the test set's
  common offset, which more seeds never average away.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from resnet_harness.storage import outcomes as packed
from resnet_harness.storage import schema

RESAMPLES = 1000  # the variance of a difference to ~4.5% (sqrt(2 / 1000)), the same everywhere
_WEIGHTS: "OrderedDict[tuple[str, int], np.ndarray]" = OrderedDict()
_CELLS: "OrderedDict[str, np.ndarray]" = OrderedDict()
_DECODED: "OrderedDict[str, tuple[np.ndarray, np.ndarray]]" = OrderedDict()


def _remember(cache: OrderedDict, key, value, size: int):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def decoded(row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(y_true, y_pred)`` of a row's ``test_outcomes``; None when it has none."""
    text = row.get("test_outcomes")
    if not isinstance(text, str):
        return None
    if text in _DECODED:
        return _DECODED[text]
    try:
        value = packed.decode(text)
    except packed.OutcomeError:
        return None
    return _remember(_DECODED, text, value, 512)


def _weights(test_set: str, n: int) -> np.ndarray:
    """Poisson(1) resampling weights ``(RESAMPLES, n)`` of a test set, the same every time."""
    key = (test_set, n)
    if key in _WEIGHTS:
        return _WEIGHTS[key]
    rng = np.random.default_rng(zlib.crc32(f"{test_set}:{n}".encode()))
    # uint8: 10 MB for a 10,000-image test set (a Poisson(1) count above 255 has
    # probability ~1e-500).
    weights = rng.poisson(1.0, size=(RESAMPLES, n)).astype(np.uint8)
    return _remember(_WEIGHTS, key, weights, 16)


def _classes(row: Mapping[str, Any]) -> int:
    counts = row.get("test_counts")
    return len(counts) if isinstance(counts, list) and counts else 10


def resampled_confusion(row: Mapping[str, Any]) -> np.ndarray | None:
    """``(RESAMPLES, K, K)`` confusion matrices of a row under its test set's resampling
    (true classes down); None when the row cannot be paired (no outcomes or no test set)."""
    text, test_set = row.get("test_outcomes"), row.get("test_set")
    if not isinstance(test_set, str) or not test_set:
        return None
    if isinstance(text, str) and text in _CELLS:
        return _CELLS[text]
    pair = decoded(row)
    if pair is None:
        return None
    y_true, y_pred = pair
    k = max(_classes(row), int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)
    cells = y_true * k + y_pred
    order = np.argsort(cells, kind="stable")
    cells_sorted = cells[order]
    starts = np.flatnonzero(np.r_[True, cells_sorted[1:] != cells_sorted[:-1]])
    weights = _weights(test_set, len(cells))[:, order]
    out = np.zeros((RESAMPLES, k * k), dtype=np.float64)
    out[:, cells_sorted[starts]] = np.add.reduceat(weights, starts, axis=1, dtype=np.float64)
    return _remember(_CELLS, text, out.reshape(RESAMPLES, k, k), 256)


def _recall(counts: np.ndarray) -> np.ndarray:
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, tp / support, np.nan)


def _mean_recall(classes: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    chosen = list(classes)

    def figure(counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.nanmean(_recall(counts)[..., chosen], axis=-1)
    return figure


def _macro(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    # scikit-learn's macro averages over every class, 0 where undefined (zero_division=0).
    def figure(counts: np.ndarray) -> np.ndarray:
        tp = np.diagonal(counts, axis1=-2, axis2=-1)
        support, predicted = counts.sum(axis=-1), counts.sum(axis=-2)
        with np.errstate(invalid="ignore", divide="ignore"):
            if kind == "recall_macro":
                part = np.where(support > 0, tp / support, 0.0)
            elif kind == "precision_macro":
                part = np.where(predicted > 0, tp / predicted, 0.0)
            else:
                part = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        return part.mean(axis=-1)
    return figure


def _accuracy(counts: np.ndarray) -> np.ndarray:
    return np.trace(counts, axis1=-2, axis2=-1) / counts.sum(axis=(-2, -1))


def _balanced(counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nanmean(_recall(counts), axis=-1)


def figure_of(measure: str, row: Mapping[str, Any], partner: Mapping[str, Any] | None = None
              ) -> Callable[[np.ndarray], np.ndarray] | None:
    """The function of confusion matrices that gives ``measure`` for ``row``; None for a figure
    that needs more than the predicted classes (ROC AUC, weighted averages)."""
    if measure == "accuracy":
        return _accuracy
    if measure == "balanced_accuracy":
        return _balanced
    if measure in ("recall_macro", "precision_macro", "f1_macro"):
        return _macro(measure)
    classes = measured_classes(measure, row, partner)
    return None if classes is None else _mean_recall(classes)


def measured_classes(measure: str, row: Mapping[str, Any],
                     partner: Mapping[str, Any] | None = None) -> list[int] | None:
    """The classes a figure averages the recall of: the reduced classes for
    ``reduced_recall`` (of whichever of the two rows reduced them), a group score's own
    (``Field.classes``); None for other figures."""
    if measure == "reduced_recall":
        reduced = row.get("reduced_classes") or (partner or {}).get("reduced_classes") or []
        return [int(c) for c in reduced] or None
    field = schema.FIELDS_BY_NAME.get(measure)
    if field is not None and field.classes is not None:
        try:
            found = field.classes(row)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        return [int(c) for c in found] if found else None
    return None


def replicates(measure: str, terms: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None,
                                                   int]]) -> np.ndarray | None:
    """The resampled values of ``sum(sign * figure(row))`` over ``terms`` (row, partner,
    sign), all rows scored on one test set; None when they cannot be paired."""
    test_sets = {row.get("test_set") for row, _, _ in terms}
    if len(test_sets) != 1:
        return None
    labels = [decoded(row) for row, _, _ in terms]
    if any(pair is None for pair in labels) or any(
            not np.array_equal(pair[0], labels[0][0]) for pair in labels[1:]):
        return None
    total = np.zeros(RESAMPLES)
    for row, partner, sign in terms:
        figure, counts = figure_of(measure, row, partner), resampled_confusion(row)
        if figure is None or counts is None:
            return None
        total += sign * figure(counts)
    return total


def floor(measure: str, row: Mapping[str, Any], partner: Mapping[str, Any] | None = None
          ) -> float:
    """The smallest variance the test set leaves a figure of ``row``: Agresti and Min's
    (2005) half an image added to each cell of a paired table, ``1 / (n + 2)^2`` over the
    ``n`` images the figure covers (per class for a mean of recalls), so that two runs that
    agree on every image never make a difference exact."""
    counts = row.get("test_counts") or []
    if not counts:
        return 0.0
    classes = measured_classes(measure, row, partner)
    if measure in ("balanced_accuracy", "recall_macro") or classes is not None:
        chosen = classes if classes is not None else [c for c, n in enumerate(counts) if n]
        if not chosen:
            return 0.0
        return sum(1.0 / (counts[c] + 2) ** 2 for c in chosen if c < len(counts)) / (
            len(chosen) ** 2)
    return 1.0 / (sum(counts) + 2) ** 2


def finite_variance(values: np.ndarray | None) -> float:
    """The variance (ddof 1) of replicates, NaN when there are none."""
    if values is None or not len(values) or not np.all(np.isfinite(values)):
        return math.nan
    return float(np.var(values, ddof=1))
